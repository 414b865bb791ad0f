//! `twilio` against a loopback peer and Twilio's own OpenAPI description.

use super::base64_check::basic;
use super::*;
use crate::support::http::{Reply, TestServer};
use crate::support::{build, context, envelope};
use disparo::channel::{Channel, ErrorClass};
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

/// Checks a form body against Twilio's CreateMessage request schema. Form values are strings;
/// `--closed` also refuses a field the schema does not declare (Twilio ignores unknown ones,
/// so a misspelt field would otherwise pass).
fn check_twilio(form: &[(String, String)]) -> Result<(), String> {
    let instance: serde_json::Map<String, serde_json::Value> =
        form.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
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
    assert_eq!(r.header("i-twilio-idempotency-token"), Some("bf26:ana:0"));
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
    assert_eq!(
        preview["headers"]["I-Twilio-Idempotency-Token"],
        "bf26:ana:0"
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

#[tokio::test]
async fn twilio_5xx_is_retried_with_the_same_idempotency_token_then_succeeds() {
    let server = TestServer::start(vec![
        Reply::text(500, "oops"),
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
    assert_eq!(
        reqs[0].header("i-twilio-idempotency-token"),
        reqs[1].header("i-twilio-idempotency-token")
    );
}

#[tokio::test]
async fn transient_errors_stop_after_max_attempts() {
    let server = TestServer::start(vec![Reply::text(502, "bad gateway"); 5]).await;
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
    assert_eq!(server.requests().len(), 3);
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
