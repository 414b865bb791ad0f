//! `whatsapp_cloud` against a loopback peer and Meta's own OpenAPI description.

use super::*;
use crate::support::http::{Reply, TestServer};
use crate::support::{build, context, envelope};
use disparo::channel::{Channel, ErrorClass};
use serde_json::json;

pub(super) fn whatsapp(server: &TestServer) -> Channel {
    build(
        &format!(
            "{{ type: whatsapp_cloud, phone_number_id: '106540352242922', token_env: WA_TOKEN, base_url: '{}' }}",
            server.url("/v23.0")
        ),
        &context(&root(), &[("WA_TOKEN", WA_TOKEN)]),
    )
}

fn graph_error(status: u16, code: i64) -> Reply {
    Reply::json(
        status,
        json!({"error": {"message": "(#x) something", "type": "OAuthException", "code": code,
                         "error_data": {"messaging_product": "whatsapp", "details": "details here"},
                         "fbtrace_id": "AbC"}}),
    )
}

#[tokio::test]
async fn whatsapp_sends_the_exact_template_request_and_returns_the_wamid() {
    let server = TestServer::start(vec![Reply::json(
        200,
        json!({"messaging_product": "whatsapp",
               "contacts": [{"input": "+5511987654321", "wa_id": "5511987654321"}],
               "messages": [{"id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI"}]}),
    )])
    .await;
    let channel = whatsapp(&server);
    let env = envelope("+5511987654321");
    let delivered = channel.send(&env).await.expect("sent");
    assert_eq!(
        delivered.provider_id.as_deref(),
        Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI")
    );

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v23.0/106540352242922/messages");
    assert_eq!(
        r.header("authorization"),
        Some(&*format!("Bearer {WA_TOKEN}"))
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let expected = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+5511987654321",
        "type": "template",
        "template": {
            "name": "black_friday_offer",
            "language": {"policy": "deterministic", "code": "pt_BR"},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "Ana"}, {"type": "text", "text": "BF26"}]}]
        },
        "biz_opaque_callback_data": "bf26:ana:0"
    });
    assert_eq!(r.json(), expected);

    // The preview shows that same body, with the token redacted.
    let preview = channel.preview_request(&env);
    assert_eq!(preview["body"], expected);
    assert_eq!(preview["method"], "POST");
    assert_eq!(
        preview["url"],
        server.url("/v23.0/106540352242922/messages")
    );
    assert_eq!(preview["headers"]["Authorization"], "Bearer ***");
}

#[tokio::test]
async fn whatsapp_request_body_validates_against_the_meta_openapi_spec() {
    let server =
        TestServer::start(vec![Reply::json(200, json!({"messages": [{"id": "w1"}]}))]).await;
    whatsapp(&server)
        .send(&envelope("+5511987654321"))
        .await
        .unwrap();
    let body = server.requests()[0].json();
    let check = |b: &serde_json::Value| {
        support::validate_request(
            "meta_business_messaging_api_v23.0.yaml",
            "POST",
            "/{Version}/{Phone-Number-ID}/messages",
            "application/json",
            false,
            b,
        )
    };
    check(&body).unwrap_or_else(|e| panic!("body does not match the Meta spec:\n{e}"));

    // The check bites: the same body without the language policy is refused.
    let mut bad = body.clone();
    bad["template"]["language"]
        .as_object_mut()
        .unwrap()
        .remove("policy");
    assert!(
        check(&bad).is_err(),
        "validator accepted a body without language.policy"
    );
}

#[tokio::test]
async fn whatsapp_errors_are_classified_from_the_graph_error_code() {
    let cases: Vec<(Reply, ErrorClass, &str)> = vec![
        (
            graph_error(400, 130429).header("Retry-After", "2"),
            transient(Some(2)),
            "130429",
        ),
        (graph_error(400, 131056), transient(None), "131056"),
        (
            graph_error(400, 131026),
            ErrorClass::Recipient { suppress: false },
            "131026",
        ),
        (
            graph_error(400, 131050),
            ErrorClass::Recipient { suppress: true },
            "131050",
        ),
        (graph_error(400, 132000), ErrorClass::Breaker, "132000"),
        (graph_error(404, 132001), ErrorClass::Breaker, "132001"),
        (graph_error(400, 132015), ErrorClass::Breaker, "132015"),
        (graph_error(401, 190), ErrorClass::Breaker, "190"),
        (
            Reply::text(403, "Forbidden"),
            ErrorClass::Breaker,
            "HTTP 403",
        ),
        (
            Reply::text(503, "<html>down</html>").header("Retry-After", "30"),
            transient(Some(30)),
            "HTTP 503",
        ),
        (Reply::text(429, "slow down"), transient(None), "HTTP 429"),
        (graph_error(400, 100), ErrorClass::Permanent, "100"),
    ];
    let server = TestServer::start(cases.iter().map(|c| c.0.clone()).collect()).await;
    let channel = whatsapp(&server);
    for (_, class, code) in &cases {
        let err = channel.send(&envelope("+5511987654321")).await.unwrap_err();
        assert_eq!(&err.class, class, "code {code}: {err}");
        assert_eq!(err.code.as_deref(), Some(*code));
    }
}

#[tokio::test]
async fn whatsapp_throttled_send_is_retried_after_retry_after_then_succeeds() {
    let server = TestServer::start(vec![
        graph_error(429, 130429).header("Retry-After", "3"),
        Reply::json(200, json!({"messages": [{"id": "wamid.second"}]})),
    ])
    .await;
    let policy = RetryPolicy::new(5);
    let (result, attempts, delays) =
        send_with_retries(&whatsapp(&server), &envelope("+5511987654321"), &policy).await;
    assert_eq!(result.unwrap().provider_id.as_deref(), Some("wamid.second"));
    assert_eq!(attempts, 2);
    // Full jitter after attempt 1 is at most 1 s, so the 3 s Retry-After wins.
    assert_eq!(delays, vec![Duration::from_secs(3)]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, reqs[1].body, "a retry sends the same request");
}

#[tokio::test]
async fn whatsapp_message_without_template_front_matter_trips_the_breaker() {
    let server = TestServer::start(vec![]).await;
    let mut env = envelope("+5511987654321");
    env.content.whatsapp = None;
    let err = whatsapp(&server).send(&env).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Breaker);
    assert!(server.requests().is_empty());
}

/// The adapter's request, sent to a Prism mock of Meta's own OpenAPI description: accepted
/// (the mock answers its example, whose `wamid` comes back), and the mock does refuse a body
/// the description does not allow, so the acceptance means something.
#[tokio::test]
async fn whatsapp_request_is_accepted_by_a_mock_of_metas_openapi_description() {
    let mock = crate::support::prism::meta();
    let channel = build(
        &format!(
            "{{ type: whatsapp_cloud, phone_number_id: '106540352242922', token_env: WA_TOKEN, base_url: '{}' }}",
            mock.url("/v23.0")
        ),
        &context(&root(), &[("WA_TOKEN", WA_TOKEN)]),
    );
    let delivered = channel
        .send(&envelope("+5511987654321"))
        .await
        .unwrap_or_else(|e| panic!("the Meta mock refused the request: {e:?}\n{}", mock.log()));
    assert!(
        delivered
            .provider_id
            .as_deref()
            .unwrap_or("")
            .starts_with("wamid.")
    );

    let bad = crate::support::prism::request(
        mock,
        "POST",
        "/v23.0/106540352242922/messages",
        &[("Authorization", "Bearer x"), ("Content-Type", "application/json")],
        br#"{"messaging_product":"whatsapp","recipient_type":"individual","to":"5511987654321","type":"template","template":{"name":"bf"}}"#,
    );
    assert_eq!(
        bad.status, 422,
        "the mock accepted a template without a language: {}",
        bad.body
    );
}

// ---- The whole template message: header, buttons, currency, date_time, named parameters,
// ---- the marketing endpoint and biz_opaque_callback_data.

use disparo::message::{
    WaButton, WaCurrency, WaDateTime, WaLocation, WaMedia, WaParam, WhatsappTemplate,
};

fn text(t: &str) -> WaParam {
    WaParam::Text {
        parameter_name: None,
        text: t.into(),
    }
}

fn link(l: &str) -> WaMedia {
    WaMedia {
        link: Some(l.into()),
        ..WaMedia::default()
    }
}

/// The most common marketing shape: an image header, body text + currency + date, a URL
/// button, a quick reply and a copy-code button.
fn rich(header: Option<WaParam>, buttons: Vec<WaButton>) -> WhatsappTemplate {
    WhatsappTemplate {
        name: "black_friday_offer".into(),
        language: "en_US".into(),
        body: vec!["Ana".into()],
        body_params: vec![
            WaParam::Currency {
                parameter_name: None,
                currency: WaCurrency {
                    fallback_value: "$100.99".into(),
                    code: "USD".into(),
                    amount_1000: 100990,
                },
            },
            WaParam::DateTime {
                parameter_name: None,
                date_time: WaDateTime {
                    fallback_value: "February 25, 1977".into(),
                },
            },
        ],
        header,
        buttons,
        category: Some("marketing".into()),
        marketing_endpoint: false,
    }
}

fn button(index: u8, sub_type: &str, parameter: WaParam) -> WaButton {
    WaButton {
        index,
        sub_type: sub_type.into(),
        parameter,
    }
}

fn with(wa: WhatsappTemplate) -> disparo::message::Envelope {
    let mut env = envelope("+15551234567");
    env.content.whatsapp = Some(wa);
    env
}

fn image_url_quick_reply(first: u8) -> WhatsappTemplate {
    rich(
        Some(WaParam::Image {
            image: link("https://cdn.example.com/bf.jpg"),
        }),
        vec![
            button(first, "url", text("bf-ana")),
            button(
                first + 1,
                "quick_reply",
                WaParam::Payload {
                    payload: "STOP_PROMOS".into(),
                },
            ),
        ],
    )
}

/// The exact bytes of the most common shape, as Meta's reference writes each object.
#[tokio::test]
async fn whatsapp_sends_header_image_currency_date_and_buttons_byte_exact() {
    let server = TestServer::start(vec![Reply::json(
        200,
        json!({"messages": [{"id": "wamid.r"}]}),
    )])
    .await;
    let channel = whatsapp(&server);
    let env = with(image_url_quick_reply(0));
    channel.send(&env).await.expect("sent");
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v23.0/106540352242922/messages");
    let expected = concat!(
        r#"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+15551234567","type":"template","#,
        r#""template":{"name":"black_friday_offer","language":{"policy":"deterministic","code":"en_US"},"components":["#,
        r#"{"type":"header","parameters":[{"type":"image","image":{"link":"https://cdn.example.com/bf.jpg"}}]},"#,
        r#"{"type":"body","parameters":[{"type":"text","text":"Ana"},"#,
        r#"{"type":"currency","currency":{"fallback_value":"$100.99","code":"USD","amount_1000":100990}},"#,
        r#"{"type":"date_time","date_time":{"fallback_value":"February 25, 1977"}}]},"#,
        r#"{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"bf-ana"}]},"#,
        r#"{"type":"button","sub_type":"quick_reply","index":"1","parameters":[{"type":"payload","payload":"STOP_PROMOS"}]}]},"#,
        r#""biz_opaque_callback_data":"bf26:ana:0"}"#
    );
    assert_eq!(String::from_utf8_lossy(&r.body), expected);
    // preview --show-request shows the same body.
    assert_eq!(
        channel.preview_request(&env)["body"],
        serde_json::from_str::<serde_json::Value>(expected).unwrap()
    );
}

fn meta_channel(mock: &crate::support::prism::Prism) -> Channel {
    build(
        &format!(
            "{{ type: whatsapp_cloud, phone_number_id: '106540352242922', token_env: WA_TOKEN, base_url: '{}' }}",
            mock.url("/v23.0")
        ),
        &context(&root(), &[("WA_TOKEN", WA_TOKEN)]),
    )
}

/// Every new request shape, sent by the adapter to a Prism mock of Meta's description, is
/// accepted (the mock answers 422 with the violations for a body the description refuses).
#[tokio::test]
async fn whatsapp_every_template_shape_is_accepted_by_the_meta_mock() {
    let mock = crate::support::prism::meta();
    let channel = meta_channel(mock);
    let media = |kind: &str| -> WaParam {
        let m = link(&format!("https://cdn.example.com/x.{kind}"));
        match kind {
            "jpg" => WaParam::Image { image: m },
            "mp4" => WaParam::Video { video: m },
            _ => WaParam::Document {
                document: WaMedia {
                    id: Some("1013859600285441".into()),
                    link: None,
                    filename: Some("invoice.pdf".into()),
                },
            },
        }
    };
    let named = WhatsappTemplate {
        body: vec![],
        body_params: vec![
            WaParam::Text {
                parameter_name: Some("first_name".into()),
                text: "Ana".into(),
            },
            WaParam::Currency {
                parameter_name: Some("price".into()),
                currency: WaCurrency {
                    fallback_value: "R$ 10,00".into(),
                    code: "BRL".into(),
                    amount_1000: 10000,
                },
            },
        ],
        ..rich(None, vec![])
    };
    let cases: Vec<(&str, WhatsappTemplate)> = vec![
        // Button indexes from 1: the description's `index` pattern `^[2-6, 11-14]$` is a
        // character class that admits "1".."6" but not "0" (Meta's own examples send "0");
        // the test below shows that is the only objection.
        (
            "image header, url and quick reply buttons",
            image_url_quick_reply(1),
        ),
        ("text header", rich(Some(text("Black Friday")), vec![])),
        ("video header", rich(Some(media("mp4")), vec![])),
        (
            "document header by id with filename",
            rich(Some(media("pdf")), vec![]),
        ),
        (
            "location header",
            rich(
                Some(WaParam::Location {
                    location: WaLocation {
                        latitude: "-23.5505".into(),
                        longitude: "-46.6333".into(),
                        name: Some("Loja Centro".into()),
                        address: Some("Rua A, 1, São Paulo".into()),
                    },
                }),
                vec![],
            ),
        ),
        ("named parameters", named),
    ];
    let mut refused = Vec::new();
    for (what, wa) in cases {
        if let Err(e) = channel.send(&with(wa)).await {
            refused.push(format!("{what}: {e}"));
        }
    }
    assert!(
        refused.is_empty(),
        "the Meta mock refused:\n{}\n{}",
        refused.join("\n"),
        mock.log()
    );
}

/// Where the description itself is wrong, the mock's refusal names only that: index "0"
/// (every Meta example sends it) fails the broken pattern, and `copy_code` (Meta's coupon
/// code templates guide: `sub_type` COPY_CODE, a `coupon_code` parameter) is missing from
/// the `sub_type` enum. Everything else of those requests is accepted.
#[tokio::test]
async fn whatsapp_meta_mock_objects_only_to_its_own_gaps_for_index_0_and_copy_code() {
    let mock = crate::support::prism::meta();
    let server = TestServer::start(vec![
        Reply::json(200, json!({"messages": [{"id": "w1"}]})),
        Reply::json(200, json!({"messages": [{"id": "w2"}]})),
    ])
    .await;
    let channel = whatsapp(&server);
    let coupon = rich(
        None,
        vec![button(
            1,
            "copy_code",
            WaParam::CouponCode {
                coupon_code: "BF26".into(),
            },
        )],
    );
    for wa in [image_url_quick_reply(0), coupon] {
        channel.send(&with(wa)).await.unwrap();
    }
    for (r, expected) in server.requests().iter().zip(["pattern", "enum"]) {
        let answer = crate::support::prism::request(
            mock,
            "POST",
            "/v23.0/106540352242922/messages",
            &[
                ("Authorization", "Bearer x"),
                ("Content-Type", "application/json"),
            ],
            &r.body,
        );
        assert_eq!(answer.status, 422, "{}", answer.body);
        let v: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        // Errors at the body's top are the other message types of the `oneOf` (text, audio..);
        // those inside `template` are the template branch's.
        let errors: Vec<serde_json::Value> = v["validation"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["location"].to_string().contains("template"))
            .collect();
        assert!(!errors.is_empty(), "{}", answer.body);
        for e in &errors {
            let path = e["location"].to_string();
            assert!(
                (path.contains("index") || path.contains("sub_type")) && e["code"] == expected,
                "unexpected objection {e}"
            );
        }
    }
}

/// `endpoint: marketing_messages`: the same template goes to `/marketing_messages`, without
/// `biz_opaque_callback_data` (the description's request is closed and has no such field),
/// accepted by the mock and by the schema check (that schema is closed).
#[tokio::test]
async fn whatsapp_marketing_endpoint_posts_to_marketing_messages_and_the_mock_accepts() {
    let mut wa = image_url_quick_reply(1);
    wa.marketing_endpoint = true;
    let env = with(wa);
    let server = TestServer::start(vec![Reply::json(
        200,
        json!({"messages": [{"id": "wamid.m"}]}),
    )])
    .await;
    let channel = whatsapp(&server);
    channel.send(&env).await.unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v23.0/106540352242922/marketing_messages");
    let body = r.json();
    assert!(body.get("biz_opaque_callback_data").is_none(), "{body}");
    assert_eq!(
        channel.preview_request(&env)["url"],
        server.url("/v23.0/106540352242922/marketing_messages")
    );
    support::validate_request(
        "meta_business_messaging_api_v23.0.yaml",
        "POST",
        "/{Version}/{Phone-Number-ID}/marketing_messages",
        "application/json",
        false, // the schema itself is closed (`additionalProperties: false`)
        &body,
    )
    .unwrap_or_else(|e| panic!("not a marketing_messages request:\n{e}"));
    // The closed check bites: the callback data /messages carries is refused here.
    let mut bad = body.clone();
    bad["biz_opaque_callback_data"] = json!("bf26:ana:0");
    assert!(
        support::validate_request(
            "meta_business_messaging_api_v23.0.yaml",
            "POST",
            "/{Version}/{Phone-Number-ID}/marketing_messages",
            "application/json",
            false,
            &bad,
        )
        .is_err()
    );

    let mock = crate::support::prism::meta();
    let delivered = meta_channel(mock)
        .send(&env)
        .await
        .unwrap_or_else(|e| panic!("the Meta mock refused: {e}\n{}", mock.log()));
    assert!(delivered.provider_id.is_some());
}
