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

// ---- Through the CLI: validate refuses each broken limit with file, field and hint; the
// ---- parameter count sees partials; preview --show-request shows the components.

const WA_CONFIG: &str = "timezone: America/Sao_Paulo\nchannels:\n  wa: { type: whatsapp_cloud, phone_number_id: '106540352242922', token_env: WA_TOKEN }\n";

const WA_TEMPLATE: &str = r#"---
whatsapp:
  name: bf
  language: en_US
  category: marketing
  header: { text: "{{headline}}" }
  body:
    - "{{first_name}}"
    - currency: { fallback_value: "{{price}}", code: "{{cur}}", amount_1000: "{{amount}}" }
  buttons:
    - { sub_type: url, text: "{{slug}}" }
    - { sub_type: quick_reply, payload: "{{payload}}" }
    - { sub_type: copy_code, coupon_code: "{{coupon}}" }
---
Hi {{first_name}}, only {{price}}."#;

fn wa_project(template: &str, audience: &str) -> crate::harness::Project {
    let p = crate::harness::Project::empty().env("WA_TOKEN", WA_TOKEN);
    p.file("disparo.yaml", WA_CONFIG)
        .file(
            "campaigns/c.yaml",
            "channel: wa\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-27T10:00 }\n",
        )
        .file("templates/t.hbs", template)
        .file(
            "templates/partials/footer.hbs",
            "Use {{coupon}} by {{until}}.",
        )
        .file("a.csv", audience);
    p
}

const WA_HEAD: &str = "id,phone,first_name,headline,price,cur,amount,slug,payload,coupon\n";
const WA_GOOD: &str = "ok,+5511999990000,Ana,Black Friday,$10.99,USD,10990,bf-ana,STOP,BF26\n";

#[test]
fn whatsapp_validate_refuses_each_broken_limit_with_its_field() {
    let long = |n: usize| "x".repeat(n);
    let rows = [
        (
            "header",
            format!("h,+5511999990001,Bia,{},$1,USD,1000,s,P,C1\n", long(61)),
            "whatsapp.header.text",
        ),
        (
            "newline",
            "n,+5511999990002,\"Bia\nMaria\",H,$1,USD,1000,s,P,C1\n".to_owned(),
            "whatsapp.body[0]",
        ),
        (
            "spaces",
            "sp,+5511999990003,Bia     Maria,H,$1,USD,1000,s,P,C1\n".to_owned(),
            "whatsapp.body[0]",
        ),
        (
            "body",
            format!("b,+5511999990004,{},H,$1,USD,1000,s,P,C1\n", long(1025)),
            "whatsapp.body[0]",
        ),
        (
            "currency",
            "cu,+5511999990005,Bia,H,$1,DOLLARS,1000,s,P,C1\n".to_owned(),
            "whatsapp.body[1].code",
        ),
        (
            "amount",
            "am,+5511999990006,Bia,H,$1,USD,10.99,s,P,C1\n".to_owned(),
            "whatsapp.body[1].amount_1000",
        ),
        (
            "url",
            format!("u,+5511999990007,Bia,H,$1,USD,1000,{},P,C1\n", long(2001)),
            "whatsapp.buttons[0].text",
        ),
        (
            "payload",
            format!("p,+5511999990008,Bia,H,$1,USD,1000,s,{},C1\n", long(1001)),
            "whatsapp.buttons[1].payload",
        ),
        (
            "coupon",
            "co,+5511999990009,Bia,H,$1,USD,1000,s,P,BLACKFRIDAY2026X\n".to_owned(),
            "whatsapp.buttons[2].coupon_code",
        ),
    ];
    let mut failures = Vec::new();
    for (what, row, field) in rows {
        let p = wa_project(WA_TEMPLATE, &format!("{WA_HEAD}{WA_GOOD}{row}"));
        let o = p.run(&["validate", "c"]);
        let ok = o.code == 2
            && o.stderr.contains(field)
            && o.stderr.contains("templates/t.hbs")
            && o.stderr.contains("hint:");
        if !ok {
            failures.push(format!("{what}: exit {}\n{}", o.code, o.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The good recipient alone passes, with no warning about it.
    let p = wa_project(WA_TEMPLATE, &format!("{WA_HEAD}{WA_GOOD}"));
    p.ok(&["validate", "c"]);
}

#[test]
fn whatsapp_parameter_count_sees_partials_through_the_cli() {
    let audience = "id,phone,first_name,coupon,until\nok,+5511999990000,Ana,BF26,Sunday\n";
    let t = |body: &str| {
        format!(
            "---\nwhatsapp: {{ name: bf, language: pt_BR, category: marketing, body: {body} }}\n---\nOi {{{{first_name}}}}! {{{{> footer}}}}"
        )
    };
    // Three placeholders, two of them in the partial: three parameters are right.
    let p = wa_project(
        &t(r#"["{{first_name}}", "{{coupon}}", "{{until}}"]"#),
        audience,
    );
    p.ok(&["validate", "c"]);
    // One parameter for the body's own placeholder only: refused, counting the partial's.
    let p = wa_project(&t(r#"["{{first_name}}"]"#), audience);
    let o = p.expect(2, &["validate", "c"]);
    assert!(
        o.stderr.contains("whatsapp.body")
            && o.stderr.contains("3 placeholder(s)")
            && o.stderr.contains("templates/t.hbs"),
        "{}",
        o.stderr
    );
    // Named: one key per distinct placeholder, the partial's included.
    let p = wa_project(
        &t(r#"{ first_name: "{{first_name}}", coupon: "{{coupon}}", until: "{{until}}" }"#),
        audience,
    );
    p.ok(&["validate", "c"]);
    let p = wa_project(
        &t(r#"{ first_name: "{{first_name}}", coupon: "{{coupon}}" }"#),
        audience,
    );
    let o = p.expect(2, &["validate", "c"]);
    assert!(
        o.stderr.contains("whatsapp.body") && o.stderr.contains("until"),
        "{}",
        o.stderr
    );
}

#[test]
fn whatsapp_preview_show_request_shows_the_components_and_warns_of_plus_one() {
    let p = wa_project(
        WA_TEMPLATE,
        &format!(
            "{WA_HEAD}{WA_GOOD}us,+12125554743,Mary,Black Friday,$10.99,USD,10990,bf-mary,STOP,BF26\n"
        ),
    );
    let o = p.ok(&[
        "--now",
        "2026-11-26T12:00:00Z",
        "preview",
        "c",
        "--show-request",
        "--format",
        "json",
    ]);
    let lines: Vec<serde_json::Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ana = lines
        .iter()
        .find(|l| l["recipient"] == "ok")
        .expect("Ana's message");
    let body = &ana["request"]["body"];
    assert_eq!(
        ana["request"]["url"],
        "https://graph.facebook.com/v23.0/106540352242922/messages"
    );
    assert_eq!(
        body["template"]["components"],
        json!([
            {"type": "header", "parameters": [{"type": "text", "text": "Black Friday"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                {"type": "currency", "currency": {"fallback_value": "$10.99", "code": "USD", "amount_1000": 10990}}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "bf-ana"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "1", "parameters": [{"type": "payload", "payload": "STOP"}]},
            {"type": "button", "sub_type": "copy_code", "index": "2", "parameters": [{"type": "coupon_code", "coupon_code": "BF26"}]}
        ])
    );
    assert!(
        body["biz_opaque_callback_data"]
            .as_str()
            .is_some_and(|m| m.starts_with("m-")),
        "{body}"
    );
    assert!(!o.stdout.contains(WA_TOKEN) && !o.stderr.contains(WA_TOKEN));
    // The +1 recipient: warned, with the count, at preview and validate.
    // JSON carries it in the message's `warnings`; the table preview also sums it up.
    let mary = lines.iter().find(|l| l["recipient"] == "us").unwrap();
    assert!(mary["warnings"].to_string().contains("+1 number"), "{mary}");
    let v = p.ok(&["validate", "c"]);
    assert!(
        v.stderr.contains("+1 number") && v.stderr.contains("recipient us"),
        "{}",
        v.stderr
    );
    // The table preview shows header and buttons.
    let t = p.ok(&[
        "--now",
        "2026-11-26T12:00:00Z",
        "preview",
        "c",
        "--recipient",
        "ok",
    ]);
    assert!(
        t.stdout.contains("params: Ana | $10.99 · header text: Black Friday · button 0 url: bf-ana · button 1 quick_reply: STOP · button 2 copy_code: BF26"),
        "{}",
        t.stdout
    );
    assert!(
        t.stderr
            .contains("1 message(s): marketing WhatsApp template to a +1 number"),
        "{}",
        t.stderr
    );
}
