//! `twilio` against a loopback peer and Twilio's own OpenAPI description.

use super::base64_check::basic;
use super::*;
use crate::support::http::{Reply, TestServer};
use crate::support::{build, context, envelope};
use disparo::channel::{Channel, ErrorClass};
use disparo::message::TwilioContent;
use serde_json::json;

pub(super) fn twilio(server: &TestServer, sender: &str) -> Channel {
    build(
        &format!(
            "{{ type: twilio, account_sid_env: TW_SID, auth_token_env: TW_TOKEN, {sender}, base_url: '{}' }}",
            server.url("")
        ),
        &context(&root(), &[("TW_SID", TW_SID), ("TW_TOKEN", TW_TOKEN)]),
    )
}

fn twilio_error(status: u16, code: i64) -> Reply {
    Reply::json(
        status,
        json!({"code": code, "message": "The 'To' number is not valid.",
               "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status}),
    )
}

fn form(body: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(body).expect("form-encoded body")
}

/// Checks a form body against Twilio's CreateMessage request schema. `--closed` also refuses
/// a field the schema does not declare (Twilio ignores unknown ones, so a misspelt field
/// would otherwise pass). A form carries strings: each value is read as the type the schema
/// gives its field (integer, boolean), and a repeated field (`MediaUrl`) as a list, so a
/// value that does not parse stays a string and is refused.
fn check_twilio(form: &[(String, String)]) -> Result<(), String> {
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/specs/twilio_api_v2010.json"))
            .unwrap(),
    )
    .unwrap();
    let props = &spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"]["requestBody"]
        ["content"]["application/x-www-form-urlencoded"]["schema"]["properties"];
    let typed = |k: &str, v: &str| match props[k]["type"].as_str() {
        Some("integer") => v.parse::<i64>().map_or_else(|_| json!(v), |n| json!(n)),
        Some("boolean") => match v {
            "true" => json!(true),
            "false" => json!(false),
            _ => json!(v),
        },
        _ => json!(v),
    };
    let mut instance = serde_json::Map::new();
    for (k, v) in form {
        if props[k.as_str()]["type"] == "array" {
            let list = instance.entry(k.clone()).or_insert_with(|| json!([]));
            list.as_array_mut().unwrap().push(json!(v));
        } else {
            instance.insert(k.clone(), typed(k, v));
        }
    }
    support::validate_request(
        "twilio_api_v2010.json",
        "POST",
        "/2010-04-01/Accounts/{AccountSid}/Messages.json",
        "application/x-www-form-urlencoded",
        true,
        &serde_json::Value::Object(instance),
    )
}

#[tokio::test]
async fn twilio_sends_the_exact_form_request_and_returns_the_sid() {
    let server = TestServer::start(vec![Reply::json(
        201,
        json!({"sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "status": "queued"}),
    )])
    .await;
    let channel = twilio(&server, "from: '+15550001111'");
    let env = envelope("+5511987654321");
    let delivered = channel.send(&env).await.expect("sent");
    assert_eq!(
        delivered.provider_id.as_deref(),
        Some("SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    );
    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        format!("/2010-04-01/Accounts/{TW_SID}/Messages.json")
    );
    assert_eq!(r.header("authorization"), Some(&*basic(TW_SID, TW_TOKEN)));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // Twilio reads no idempotency header on CreateMessage: none is sent as if it did.
    assert_eq!(r.header("i-twilio-idempotency-token"), None);
    let fields = form(&r.text());
    assert_eq!(
        fields,
        vec![
            ("To".to_string(), "+5511987654321".to_string()),
            ("From".to_string(), "+15550001111".to_string()),
            (
                "Body".to_string(),
                "Olá Ana! Tom & Jerry: use o cupom BF26.".to_string()
            ),
        ]
    );
    check_twilio(&fields).unwrap_or_else(|e| panic!("body does not match the Twilio spec:\n{e}"));
    // The check bites: a misspelt field is refused.
    let mut bad = fields.clone();
    bad[2].0 = "Bdy".into();
    assert!(check_twilio(&bad).is_err());

    let preview = channel.preview_request(&env);
    assert_eq!(
        preview["body"],
        json!(r.text()),
        "preview shows the exact body"
    );
    assert_eq!(preview["headers"]["Authorization"], "Basic ***");
    assert!(
        preview["headers"]
            .get("I-Twilio-Idempotency-Token")
            .is_none()
    );
}

#[tokio::test]
async fn twilio_with_a_messaging_service_validates_against_the_spec() {
    let server = TestServer::start(vec![Reply::json(201, json!({"sid": "SM1"}))]).await;
    let channel = twilio(
        &server,
        "messaging_service_sid: MG0123456789abcdef0123456789abcdef",
    );
    channel.send(&envelope("+5511987654321")).await.unwrap();
    let fields = form(&server.requests()[0].text());
    assert_eq!(fields[1].0, "MessagingServiceSid");
    check_twilio(&fields).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn twilio_errors_are_classified_from_the_error_code() {
    let cases: Vec<(Reply, ErrorClass, &str)> = vec![
        (
            twilio_error(429, 20429).header("Retry-After", "5"),
            transient(Some(5)),
            "20429",
        ),
        (Reply::text(503, "unavailable"), transient(None), "HTTP 503"),
        (twilio_error(400, 21211), ErrorClass::Permanent, "21211"),
        (
            twilio_error(400, 21610),
            ErrorClass::Recipient { suppress: true },
            "21610",
        ),
        (twilio_error(401, 20003), ErrorClass::Breaker, "20003"),
        (
            Reply::text(403, "forbidden"),
            ErrorClass::Breaker,
            "HTTP 403",
        ),
        (twilio_error(400, 21602), ErrorClass::Permanent, "21602"),
    ];
    let server = TestServer::start(cases.iter().map(|c| c.0.clone()).collect()).await;
    let channel = twilio(&server, "from: '+15550001111'");
    for (_, class, code) in &cases {
        let err = channel.send(&envelope("+5511987654321")).await.unwrap_err();
        assert_eq!(&err.class, class, "code {code}: {err}");
        assert_eq!(err.code.as_deref(), Some(*code));
    }
}

/// A list of the account's messages with none of ours in it.
fn empty_list() -> Reply {
    Reply::json(200, json!({"messages": [], "page": 0, "page_size": 100}))
}

#[tokio::test]
async fn twilio_5xx_is_retried_after_a_lookup_then_succeeds() {
    let server = TestServer::start(vec![
        Reply::text(500, "oops"),
        empty_list(),
        Reply::json(201, json!({"sid": "SM2"})),
    ])
    .await;
    let (result, attempts, delays) = send_with_retries(
        &twilio(&server, "from: '+15550001111'"),
        &envelope("+5511987654321"),
        &RetryPolicy::new(3),
    )
    .await;
    assert_eq!(result.unwrap().provider_id.as_deref(), Some("SM2"));
    assert_eq!(attempts, 2);
    assert!(delays[0] <= Duration::from_secs(1));
    let reqs = server.requests();
    let methods: Vec<&str> = reqs.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "GET", "POST"]);
    assert_eq!(reqs[0].body, reqs[2].body, "the retry sends the same form");
}

#[tokio::test]
async fn transient_errors_stop_after_max_attempts() {
    let server = TestServer::start(vec![
        Reply::text(502, "bad gateway"),
        empty_list(),
        Reply::text(502, "bad gateway"),
        empty_list(),
        Reply::text(502, "bad gateway"),
    ])
    .await;
    let (result, attempts, delays) = send_with_retries(
        &twilio(&server, "from: '+15550001111'"),
        &envelope("+5511987654321"),
        &RetryPolicy::new(3),
    )
    .await;
    assert!(matches!(
        result.unwrap_err().class,
        ErrorClass::Transient { .. }
    ));
    assert_eq!(attempts, 3);
    assert_eq!(delays.len(), 2);
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!((server.requests().len(), posts), (5, 3));
}

/// The adapter's form, sent to a Prism mock of Twilio's own OpenAPI description: accepted
/// (the example's SID comes back); a wrong account SID or a missing credential is refused.
#[tokio::test]
async fn twilio_request_is_accepted_by_a_mock_of_twilios_openapi_description() {
    let mock = crate::support::prism::twilio();
    let channel = build(
        &format!(
            "{{ type: twilio, account_sid_env: TW_SID, auth_token_env: TW_TOKEN, from: '+15550001111', base_url: '{}' }}",
            mock.url("")
        ),
        &context(
            &root(),
            &[
                ("TW_SID", crate::support::prism::TWILIO_SID),
                ("TW_TOKEN", TW_TOKEN),
            ],
        ),
    );
    let delivered = channel
        .send(&envelope("+5511987654321"))
        .await
        .unwrap_or_else(|e| panic!("the Twilio mock refused the request: {e:?}\n{}", mock.log()));
    assert!(
        delivered
            .provider_id
            .as_deref()
            .unwrap_or("")
            .starts_with("SM")
    );

    let path = "/2010-04-01/Accounts/AC123/Messages.json";
    let bad = crate::support::prism::request(
        mock,
        "POST",
        path,
        &[
            ("Authorization", &basic("AC123", "t")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"To=%2B5511987654321&Body=x",
    );
    assert_eq!(
        bad.status, 422,
        "the mock accepted a malformed account SID: {}",
        bad.body
    );
    let path = format!(
        "/2010-04-01/Accounts/{}/Messages.json",
        crate::support::prism::TWILIO_SID
    );
    let anon = crate::support::prism::request(
        mock,
        "POST",
        &path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"To=%2B5511987654321&Body=x",
    );
    assert_eq!(
        anon.status, 401,
        "the mock accepted a request without credentials: {}",
        anon.body
    );
}

const MG: &str = "MG9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const HX: &str = "HXb5b62575e6e4ff6129ad7c8efe1f983e";

/// A `twilio` channel at `base` with `keys` (the sender and options) and the given SID.
fn twilio_at(base: &str, sid: &str, keys: &str) -> Channel {
    build(
        &format!(
            "{{ type: twilio, account_sid_env: TW_SID, auth_token_env: TW_TOKEN, {keys}, base_url: '{base}' }}"
        ),
        &context(&root(), &[("TW_SID", sid), ("TW_TOKEN", TW_TOKEN)]),
    )
}

/// Ana's message as a Content Template with two variables.
fn content_envelope() -> Envelope {
    let mut env = envelope("+5511987654321");
    env.content.twilio = Some(TwilioContent {
        content_sid: Some(HX.into()),
        variables: [("1", "Ana"), ("2", "BF26")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
        media_url: Vec::new(),
    });
    env
}

/// Every option a channel can add, and media from the template: the widest form.
const ALL_OPTIONS: &str = "messaging_service_sid: MG9f8e7d6c5b4a39281706f5e4d3c2b1a0, status_callback: 'https://hooks.example.com/tw?src=disparo', validity_period: 600, shorten_urls: true, send_at: true";

/// [`media_envelope_two_hours_ahead`] without its media: what Prism can read (see
/// `twilio_media_urls_are_repeated_fields_which_prism_cannot_read`).
fn options_envelope_two_hours_ahead() -> Envelope {
    let mut env = media_envelope_two_hours_ahead();
    env.content.twilio = None;
    env
}

fn media_envelope_two_hours_ahead() -> Envelope {
    let mut env = envelope("+5511987654321");
    env.scheduled_at = "2026-11-27T15:00:00Z".parse().unwrap();
    env.content.twilio = Some(TwilioContent {
        content_sid: None,
        variables: Default::default(),
        media_url: vec![
            "https://example.com/bf26.png".into(),
            "https://example.com/b.pdf".into(),
        ],
    });
    env
}

#[tokio::test]
async fn twilio_whatsapp_prefix_goes_on_to_exactly_once_for_a_whatsapp_sender() {
    let cases = [
        (
            "from: 'whatsapp:+15550001111'",
            "+5511987654321",
            "whatsapp:+5511987654321",
        ),
        (
            "from: 'whatsapp:+15550001111'",
            "whatsapp:+5511987654321",
            "whatsapp:+5511987654321",
        ),
        (
            "from: '+15550001111'",
            "whatsapp:+5511987654321",
            "+5511987654321",
        ),
        (
            &format!("messaging_service_sid: {MG}, whatsapp: true"),
            "+5511987654321",
            "whatsapp:+5511987654321",
        ),
        (
            &format!("messaging_service_sid: {MG}"),
            "+5511987654321",
            "+5511987654321",
        ),
    ];
    for (keys, address, to) in cases {
        let server = TestServer::start(vec![Reply::json(201, json!({"sid": "SM1"}))]).await;
        twilio_at(&server.url(""), TW_SID, keys)
            .send(&envelope(address))
            .await
            .unwrap();
        let fields = form(&server.requests()[0].text());
        assert_eq!(fields[0], ("To".into(), to.into()), "{keys} to {address}");
        check_twilio(&fields).unwrap_or_else(|e| panic!("{e}"));
    }
    // The audience may write the prefix: it is the same phone.
    assert_eq!(
        disparo::address::normalize_phone("whatsapp:+5511987654321").unwrap(),
        "+5511987654321"
    );
}

#[tokio::test]
async fn twilio_content_template_is_sent_byte_exact_without_a_body() {
    let server = TestServer::start(vec![Reply::json(201, json!({"sid": "SM1"}))]).await;
    let channel = twilio_at(&server.url(""), TW_SID, "from: 'whatsapp:+15550001111'");
    let env = content_envelope();
    channel.send(&env).await.unwrap();
    let r = &server.requests()[0];
    assert_eq!(
        r.text(),
        "To=whatsapp%3A%2B5511987654321&From=whatsapp%3A%2B15550001111&ContentSid=HXb5b62575e6e4ff6129ad7c8efe1f983e&ContentVariables=%7B%221%22%3A%22Ana%22%2C%222%22%3A%22BF26%22%7D"
    );
    let fields = form(&r.text());
    assert_eq!(fields[3].1, r#"{"1":"Ana","2":"BF26"}"#);
    check_twilio(&fields).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(channel.preview_request(&env)["body"], json!(r.text()));
}

#[tokio::test]
async fn twilio_options_and_media_are_sent_byte_exact_and_match_the_spec() {
    let server = TestServer::start(vec![Reply::json(201, json!({"sid": "SM1"}))]).await;
    let channel = twilio_at(&server.url(""), TW_SID, ALL_OPTIONS);
    let env = media_envelope_two_hours_ahead();
    channel.send(&env).await.unwrap();
    let r = &server.requests()[0];
    assert_eq!(
        r.text(),
        "To=%2B5511987654321&MessagingServiceSid=MG9f8e7d6c5b4a39281706f5e4d3c2b1a0\
         &Body=Ol%C3%A1+Ana%21+Tom+%26+Jerry%3A+use+o+cupom+BF26.\
         &MediaUrl=https%3A%2F%2Fexample.com%2Fbf26.png&MediaUrl=https%3A%2F%2Fexample.com%2Fb.pdf\
         &StatusCallback=https%3A%2F%2Fhooks.example.com%2Ftw%3Fsrc%3Ddisparo%26disparo_key%3Dbf26%253Aana%253A0\
         &ValidityPeriod=600&ShortenUrls=true&ScheduleType=fixed&SendAt=2026-11-27T15%3A00%3A00Z"
    );
    let fields = form(&r.text());
    check_twilio(&fields).unwrap_or_else(|e| panic!("{e}"));
    // The check bites on types too: a period that is not a number is refused.
    let mut bad = fields.clone();
    let at = bad.iter().position(|(k, _)| k == "ValidityPeriod").unwrap();
    bad[at].1 = "ten".into();
    assert!(check_twilio(&bad).is_err());
    let preview = channel.preview_request(&env);
    assert_eq!(preview["body"], json!(r.text()));
    assert_eq!(
        preview["form"]["MediaUrl"],
        json!(["https://example.com/bf26.png", "https://example.com/b.pdf"])
    );

    // Due in 10 minutes: too close for Twilio to hold, so sent now, without SendAt.
    let server = TestServer::start(vec![Reply::json(201, json!({"sid": "SM1"}))]).await;
    let mut soon = env.clone();
    soon.scheduled_at = "2026-11-27T13:10:05Z".parse().unwrap();
    twilio_at(&server.url(""), TW_SID, ALL_OPTIONS)
        .send(&soon)
        .await
        .unwrap();
    let fields = form(&server.requests()[0].text());
    assert!(
        !fields
            .iter()
            .any(|(k, _)| k == "SendAt" || k == "ScheduleType")
    );
}

/// Every new form shape, sent by the adapter to the Prism mock of Twilio's description
/// (media aside: see the next test).
#[tokio::test]
async fn twilio_new_forms_are_accepted_by_the_mock_of_twilios_description() {
    let mock = crate::support::prism::twilio();
    let sid = crate::support::prism::TWILIO_SID;
    let cases = [
        (
            "from: 'whatsapp:+15550001111'".to_string(),
            content_envelope(),
        ),
        (ALL_OPTIONS.to_string(), options_envelope_two_hours_ahead()),
        (
            format!("messaging_service_sid: {MG}, whatsapp: true"),
            envelope("whatsapp:+5511987654321"),
        ),
    ];
    for (keys, env) in cases {
        let delivered = twilio_at(&mock.url(""), sid, &keys)
            .send(&env)
            .await
            .unwrap_or_else(|e| panic!("the mock refused {keys}: {e:?}\n{}", mock.log()));
        assert!(delivered.provider_id.unwrap_or_default().starts_with("SM"));
    }
}

/// `MediaUrl` goes as a repeated field, as OpenAPI's default for an array in a form
/// (`style: form, explode: true`) and Twilio's own libraries write it; the closed schema check
/// above accepts it. Prism's form parser reads an array only from `MediaUrl[]=` keys and so
/// refuses the repeated field whatever its value: this pins that the refusal is that and
/// nothing else, so the rest of the media form is still checked by the mock.
#[tokio::test]
async fn twilio_media_urls_are_repeated_fields_which_prism_cannot_read() {
    let mock = crate::support::prism::twilio();
    let sid = crate::support::prism::TWILIO_SID;
    let server = TestServer::start(vec![Reply::json(201, json!({"sid": "SM1"}))]).await;
    twilio_at(&server.url(""), sid, ALL_OPTIONS)
        .send(&media_envelope_two_hours_ahead())
        .await
        .unwrap();
    let post = &server.requests()[0];
    let auth = post.header("authorization").unwrap();
    let headers = [
        ("Authorization", auth),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let answer = crate::support::prism::request(mock, "POST", &post.path, &headers, &post.body);
    assert_eq!(answer.status, 422, "{}", answer.body);
    let violations: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let locations: Vec<&serde_json::Value> = violations["validation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["location"])
        .collect();
    assert_eq!(locations, [&json!(["body", "MediaUrl"])], "{}", answer.body);
    // The same form with Prism's bracketed keys is accepted: nothing else in it is wrong.
    let bracketed = post.text().replace("MediaUrl=", "MediaUrl%5B%5D=");
    let answer =
        crate::support::prism::request(mock, "POST", &post.path, &headers, bracketed.as_bytes());
    assert_eq!(answer.status, 201, "{}", answer.body);
}

/// A list answer holding `messages`.
fn listing(messages: serde_json::Value) -> Reply {
    Reply::json(
        200,
        json!({"messages": messages, "page": 0, "page_size": 100}),
    )
}

fn listed(sid: &str, body: &str, created: &str) -> serde_json::Value {
    json!({"sid": sid, "to": "+5511987654321", "from": "+15550001111", "body": body,
           "direction": "outbound-api", "status": "queued", "date_created": created,
           "date_sent": null, "messaging_service_sid": null})
}

#[tokio::test]
async fn twilio_lost_answer_is_found_by_the_retry_and_not_sent_twice() {
    let ours = "Olá Ana! Tom & Jerry: use o cupom BF26.";
    let server = TestServer::start(vec![
        Reply::drop_connection(),
        listing(json!([
            listed(
                "SMother1",
                "another campaign",
                "Fri, 27 Nov 2026 13:00:03 +0000"
            ),
            listed("SMours42", ours, "Fri, 27 Nov 2026 13:00:05 +0000"),
        ])),
    ])
    .await;
    let channel = twilio(&server, "from: '+15550001111'");
    let mut env = envelope("+5511987654321");
    let first = channel.send(&env).await.unwrap_err();
    assert!(
        matches!(first.class, ErrorClass::Transient { .. }),
        "{first}"
    );
    env.attempt = 2;
    let second = channel.send(&env).await.expect("found");
    assert_eq!(second.provider_id.as_deref(), Some("SMours42"));
    let reqs = server.requests();
    let methods: Vec<&str> = reqs.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "GET"], "no second POST");
    assert_eq!(
        reqs[1].path,
        format!(
            "/2010-04-01/Accounts/{TW_SID}/Messages.json?To=%2B5511987654321&From=%2B15550001111&PageSize=100"
        )
    );
    assert_eq!(
        reqs[1].header("authorization"),
        Some(&*basic(TW_SID, TW_TOKEN))
    );
}

#[tokio::test]
async fn twilio_retry_sends_again_when_the_listing_has_no_such_message() {
    let ours = "Olá Ana! Tom & Jerry: use o cupom BF26.";
    let server = TestServer::start(vec![
        Reply::drop_connection(),
        listing(json!([
            // Same text, but created before this message's window: an earlier campaign.
            listed("SMold", ours, "Thu, 26 Nov 2026 13:00:05 +0000"),
            listed("SMelse", "Olá Ana!", "Fri, 27 Nov 2026 13:00:05 +0000"),
        ])),
        Reply::json(201, json!({"sid": "SMnew"})),
        // A content template cannot be recognised: its retry posts without a lookup.
        Reply::json(201, json!({"sid": "SMtpl"})),
        // A failed lookup sends nothing.
        Reply::text(503, "down"),
    ])
    .await;
    let channel = twilio(&server, "from: '+15550001111'");
    let mut env = envelope("+5511987654321");
    channel.send(&env).await.unwrap_err();
    env.attempt = 2;
    let d = channel.send(&env).await.unwrap();
    assert_eq!(d.provider_id.as_deref(), Some("SMnew"));
    let mut tpl = content_envelope();
    tpl.attempt = 2;
    assert_eq!(
        channel.send(&tpl).await.unwrap().provider_id.as_deref(),
        Some("SMtpl")
    );
    let e = channel.send(&env).await.unwrap_err();
    assert!(matches!(e.class, ErrorClass::Transient { .. }), "{e}");
    let methods: Vec<String> = server.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["POST", "GET", "POST", "POST", "GET"]);
}

/// The lookup's list call against the Prism mock. The adapter's own call is accepted as a
/// request: the mock's only complaint is about its own answer (the description's example
/// has relative `*_page_uri` values that fail its `format: uri`), which is why the exact call
/// the adapter made (recorded by the loopback server) is then replayed with
/// `Prefer: dynamic=true` and answered 200. The mock checks the query: a page size past the
/// maximum is refused.
#[tokio::test]
async fn twilio_lookup_list_call_is_accepted_by_the_mock() {
    let mock = crate::support::prism::twilio();
    let sid = crate::support::prism::TWILIO_SID;
    let mut env = envelope("+5511987654321");
    env.attempt = 2;
    let err = twilio_at(&mock.url(""), sid, "from: '+15550001111'")
        .send(&env)
        .await
        .unwrap_err();
    assert!(err.message.contains("looking up"), "{err}");
    // 500, not the 422 of a refused request: the mock found fault with its own answer only.
    assert_eq!(err.code.as_deref(), Some("HTTP 500"), "{err}");

    let server =
        TestServer::start(vec![empty_list(), Reply::json(201, json!({"sid": "SM1"}))]).await;
    twilio_at(&server.url(""), sid, "from: 'whatsapp:+15550001111'")
        .send(&env)
        .await
        .unwrap();
    let get = &server.requests()[0];
    assert_eq!(get.method, "GET");
    let auth = get.header("authorization").unwrap().to_string();
    let ok = crate::support::prism::request(
        mock,
        "GET",
        &get.path,
        &[("Authorization", &auth), ("Prefer", "dynamic=true")],
        b"",
    );
    assert_eq!(ok.status, 200, "{} refused: {}", get.path, ok.body);
    let page: serde_json::Value = serde_json::from_str(&ok.body).unwrap();
    assert!(page["messages"].is_array());
    let bad = crate::support::prism::request(
        mock,
        "GET",
        &get.path.replace("PageSize=100", "PageSize=5000"),
        &[("Authorization", &auth), ("Prefer", "dynamic=true")],
        b"",
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
}

#[test]
fn twilio_config_errors_name_the_key_and_what_to_do() {
    let ctx = context(&root(), &[("TW_SID", TW_SID), ("TW_TOKEN", TW_TOKEN)]);
    let cases = [
        ("from: '+1555', validity_period: 0", "validity_period: 0"),
        ("from: '+1555', validity_period: 36001", "1 to 36000"),
        (
            "from: '+1555', shorten_urls: true",
            "`shorten_urls: true` needs `messaging_service_sid`",
        ),
        (
            "from: '+1555', send_at: true",
            "`send_at: true` needs `messaging_service_sid`",
        ),
        ("from: '+1555', whatsapp: true", "contradicts"),
        ("from: 'whatsapp:+1555', whatsapp: false", "contradicts"),
        (
            "from: '+1555', status_callback: 'https://x.example/cb?disparo_key=1'",
            "already has a `disparo_key`",
        ),
        (
            "from: '+1555', status_callback: 'not a url'",
            "status_callback",
        ),
    ];
    for (keys, want) in cases {
        let yaml = format!(
            "{{ type: twilio, account_sid_env: TW_SID, auth_token_env: TW_TOKEN, {keys} }}"
        );
        let err = match serde_saphyr::from_str::<disparo::channel::ChannelConfig>(&yaml) {
            Err(e) => e.to_string(),
            Ok(config) => Channel::build("sms", &config, &ctx)
                .map(|_| ())
                .expect_err(keys)
                .to_string(),
        };
        assert!(err.contains(want), "{keys}: {err}");
    }
}
