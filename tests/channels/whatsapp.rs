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
