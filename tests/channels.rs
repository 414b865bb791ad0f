//! Channel adapters against real servers on 127.0.0.1 that each test starts: a loopback HTTP
//! server (tests/support/http.rs), a real SMTP server (aiosmtpd) and a shell script.
//! Needs `scripts/test-deps.sh` run once (Python packages for SMTP and schema checks).

use crate::support;
use std::time::Duration;

use crate::support::http::{Reply, TestServer};
use crate::support::{build, context, envelope};
use base64_check::basic;
use disparo::channel::limits::{RateLimiter, RetryPolicy};
use disparo::channel::{Channel, ChannelBuildError, ErrorClass, SendError};
use disparo::message::Envelope;
use disparo::units::Rate;
use serde_json::json;

const WA_TOKEN: &str = "EAAG-wa-secret-token-1234";
const TW_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TW_TOKEN: &str = "tw-secret-auth-token-5678";
const HOOK_SECRET: &str = "hook-hmac-secret-9012";
const SMTP_USER: &str = "mailer";
const SMTP_PASS: &str = "smtp-secret-password-3456";

fn root() -> std::path::PathBuf {
    support::manifest_dir()
}

/// Sends with the retry policy as the dispatcher would, without sleeping: returns the
/// final result, the attempts made and the delays the policy asked for.
async fn send_with_retries(
    channel: &Channel,
    env: &Envelope,
    policy: &RetryPolicy,
) -> (
    Result<disparo::channel::Delivered, SendError>,
    u32,
    Vec<Duration>,
) {
    let mut env = env.clone();
    let mut delays = Vec::new();
    loop {
        match channel.send(&env).await {
            Ok(d) => return (Ok(d), env.attempt, delays),
            Err(e) => match policy.next_delay(env.attempt, &e) {
                Some(d) => {
                    delays.push(d);
                    env.attempt += 1;
                }
                None => return (Err(e), env.attempt, delays),
            },
        }
    }
}

fn transient(after: Option<u64>) -> ErrorClass {
    ErrorClass::Transient {
        retry_after: after.map(Duration::from_secs),
    }
}

// ───────────────────────────── WhatsApp Cloud ─────────────────────────────

fn whatsapp(server: &TestServer) -> Channel {
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
        }
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

// ───────────────────────────── Twilio ─────────────────────────────

fn twilio(server: &TestServer, sender: &str) -> Channel {
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

mod base64_check {
    /// `Basic base64(user:password)`, written out here rather than trusting reqwest's.
    pub fn basic(user: &str, password: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let input = format!("{user}:{password}").into_bytes();
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        format!("Basic {out}")
    }
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

// ───────────────────────────── Webhook ─────────────────────────────

fn webhook(server: &TestServer, extra: &str) -> Channel {
    build(
        &format!(
            "{{ type: webhook, url: '{}', headers: {{ X-Team: growth }}{extra} }}",
            server.url("/hooks/send")
        ),
        &context(&root(), &[("HOOK_SECRET", HOOK_SECRET)]),
    )
}

#[tokio::test]
async fn webhook_posts_signed_json_with_an_idempotency_key() {
    let server = TestServer::start(vec![Reply::json(202, json!({"id": "hook-1"}))]).await;
    let channel = webhook(&server, ", secret_env: HOOK_SECRET");
    let env = envelope("+5511987654321");
    let delivered = channel.send(&env).await.unwrap();
    assert_eq!(delivered.provider_id.as_deref(), Some("hook-1"));

    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hooks/send");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("idempotency-key"), Some("bf26:ana:0"));
    assert_eq!(r.header("x-team"), Some("growth"));
    // The signature is the HMAC-SHA256 of the exact body bytes, recomputed here.
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(&r.body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        r.header("x-disparo-signature"),
        Some(&*format!("sha256={hex}"))
    );
    assert_eq!(
        r.json(),
        json!({
            "id": "bf26:ana:0", "campaign": "black-friday", "recipient": "ana", "channel": "test",
            "to": "+5511987654321", "locale": "pt-BR",
            "body": "Olá Ana! Tom & Jerry: use o cupom BF26.", "subject": "Ana, sua oferta chegou",
            "whatsapp": {"name": "black_friday_offer", "language": "pt_BR", "body": ["Ana", "BF26"]},
            "vars": {"first_name": "Ana", "coupon": "BF26"},
            "scheduled_at": "2026-11-27T13:00:00Z", "attempt": 1, "attempt_at": "2026-11-27T13:00:05Z"
        })
    );
    let preview = channel.preview_request(&env);
    assert_eq!(preview["body"], r.json());
    assert_eq!(preview["headers"]["X-Disparo-Signature"], "sha256=***");
    assert_eq!(preview["headers"]["Idempotency-Key"], "bf26:ana:0");
}

#[tokio::test]
async fn webhook_put_without_secret_sends_no_signature_and_accepts_any_2xx_body() {
    let server = TestServer::start(vec![Reply::text(204, "")]).await;
    let channel = webhook(&server, ", method: put");
    let delivered = channel.send(&envelope("+5511987654321")).await.unwrap();
    assert_eq!(delivered.provider_id, None);
    let r = &server.requests()[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.header("x-disparo-signature"), None);
}

#[tokio::test]
async fn webhook_errors_are_classified_by_status() {
    let cases: Vec<(Reply, ErrorClass)> = vec![
        (
            Reply::text(429, "slow").header("Retry-After", "4"),
            transient(Some(4)),
        ),
        (Reply::text(500, "boom"), transient(None)),
        (Reply::text(400, "bad"), ErrorClass::Permanent),
        (Reply::text(404, "nope"), ErrorClass::Permanent),
        (Reply::text(401, "who"), ErrorClass::Breaker),
    ];
    let server = TestServer::start(cases.iter().map(|c| c.0.clone()).collect()).await;
    let channel = webhook(&server, "");
    for (reply, class) in &cases {
        let err = channel.send(&envelope("+5511987654321")).await.unwrap_err();
        assert_eq!(&err.class, class, "HTTP {}: {err}", reply.status);
    }
}

/// Plain-http webhooks keep connections alive between sends; a connection the server closes
/// (saying so, or silently once idle) is not used again: the next send opens a new one.
/// Where the first request in `seen` ends (its head, and a body of the announced length), and
/// its head in lower case; `None` until it is all there.
fn request_end(seen: &[u8]) -> Option<(usize, String)> {
    let text = String::from_utf8_lossy(seen);
    let end = text.find("\r\n\r\n")?;
    let head = text[..end].to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    (seen.len() >= end + 4 + len).then_some((end + 4 + len, head))
}

#[tokio::test]
async fn webhook_opens_a_new_connection_when_the_server_closed_the_last() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    // Each connection answers one request, then closes: with `Connection: close` on the first,
    // without a word on the others.
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                // Head and a body of the announced length.
                loop {
                    let k = conn.read(&mut buf).await.unwrap();
                    if k == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..k]);
                    if request_end(&seen).is_some() {
                        break;
                    }
                }
                let close = if n == 0 { "Connection: close\r\n" } else { "" };
                let body = format!("{{\"id\":\"c{n}\"}}");
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{close}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                conn.write_all(reply.as_bytes()).await.unwrap();
                conn.shutdown().await.unwrap();
            });
        }
    });
    let channel = build(
        &format!("{{ type: webhook, url: '{url}' }}"),
        &context(&root(), &[]),
    );
    for i in 0..3 {
        let d = channel.send(&envelope("+5511987654321")).await;
        assert_eq!(d.unwrap().provider_id, Some(format!("c{i}")), "send {i}");
        // Long enough for the silent close to arrive before the next send.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// A plain-http webhook reads answers the way servers write them: in pieces, after a
/// `100 Continue`, chunked (with extensions and trailers), with an error status, or as an
/// HTTP/1.0 body that ends when the server closes; a connection is used again only when its
/// last answer left it usable.
#[tokio::test]
async fn webhook_reads_chunked_informational_and_close_delimited_answers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    // Per request, in order: the pieces of its answer, and whether the server closes after.
    let script: Vec<(Vec<&'static str>, bool)> = vec![
        (
            vec![
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                "7\r\n{\"id\":\"\r\n5;ext=1\r\nch",
                "unk\r\n",
                "2\r\n\"}\r\n0\r\nX-Trailer: t\r\n",
                "\r\n",
            ],
            false,
        ),
        (
            vec![
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nbu",
                "sy",
            ],
            false,
        ),
        (vec!["HTTP/1.0 200 OK\r\n\r\n{\"id\":", "\"old\"}"], true),
        (
            vec!["HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"id\":\"new\"}"],
            false,
        ),
    ];
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    let script = std::sync::Arc::new(script);
    tokio::spawn(async move {
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (script, next) = (script.clone(), next.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    // One whole request: head, and a body of the announced length.
                    let used = loop {
                        if let Some((end, head)) = request_end(&seen) {
                            assert!(head.contains("\r\ncontent-length: "), "{head}");
                            assert!(head.contains("\r\nidempotency-key: "), "{head}");
                            break end;
                        }
                        let k = conn.read(&mut buf).await.unwrap();
                        if k == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..k]);
                    };
                    seen.drain(..used);
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let (pieces, close) = &script[n];
                    for piece in pieces {
                        conn.write_all(piece.as_bytes()).await.unwrap();
                        conn.flush().await.unwrap();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if *close {
                        conn.shutdown().await.unwrap();
                        return;
                    }
                }
            });
        }
    });
    let channel = build(
        &format!("{{ type: webhook, url: '{url}' }}"),
        &context(&root(), &[]),
    );
    let env = envelope("+5511987654321");
    let first = channel.send(&env).await.unwrap();
    assert_eq!(first.provider_id.as_deref(), Some("chunk"));
    let busy = channel.send(&env).await.unwrap_err();
    assert_eq!(busy.class, transient(Some(3)), "{busy}");
    assert!(
        busy.message.contains("HTTP 503") && busy.message.contains("busy"),
        "{busy}"
    );
    let old = channel.send(&env).await.unwrap();
    assert_eq!(old.provider_id.as_deref(), Some("old"));
    let new = channel.send(&env).await.unwrap();
    assert_eq!(new.provider_id.as_deref(), Some("new"));
    // The first three on one connection; the HTTP/1.0 answer ended it.
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// With a proxy named in the environment, a plain-http webhook goes through reqwest (which
/// honours it) instead of its own connections: the request is the same either way.
#[tokio::test]
async fn webhook_request_is_the_same_through_reqwest_and_its_own_connections() {
    let server = TestServer::start(vec![
        Reply::json(200, json!({"id": "own"})),
        Reply::json(200, json!({"id": "reqwest"})),
    ])
    .await;
    let yaml = format!(
        "{{ type: webhook, url: '{}', headers: {{ X-Team: growth }}, secret_env: HOOK_SECRET }}",
        server.url("/hooks/send")
    );
    let own = build(&yaml, &context(&root(), &[("HOOK_SECRET", HOOK_SECRET)]));
    // The variable only steers the choice here (reqwest reads the real environment).
    let through_reqwest = build(
        &yaml,
        &context(
            &root(),
            &[
                ("HOOK_SECRET", HOOK_SECRET),
                ("HTTP_PROXY", "http://proxy.invalid:3128"),
            ],
        ),
    );
    let env = envelope("+5511987654321");
    assert_eq!(
        own.send(&env).await.unwrap().provider_id.as_deref(),
        Some("own")
    );
    assert_eq!(
        through_reqwest
            .send(&env)
            .await
            .unwrap()
            .provider_id
            .as_deref(),
        Some("reqwest")
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    // (The user agent is the run's client's: these tests build a bare reqwest client.)
    assert_eq!(
        reqs[0].header("user-agent"),
        Some(concat!("disparo/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(reqs[0].method, reqs[1].method);
    assert_eq!(reqs[0].path, reqs[1].path);
    assert_eq!(reqs[0].body, reqs[1].body);
    for h in [
        "content-type",
        "idempotency-key",
        "x-team",
        "x-disparo-signature",
        "host",
        "content-length",
    ] {
        assert!(reqs[0].header(h).is_some(), "{h} missing");
        assert_eq!(reqs[0].header(h), reqs[1].header(h), "{h}");
    }
}

/// A redirect is not followed (a 301/302 would turn the POST into a GET without the message):
/// it is a permanent error that says where the endpoint moved.
#[tokio::test]
async fn webhook_redirect_is_not_followed() {
    let server = TestServer::start(vec![
        Reply::text(301, "").header("Location", "http://elsewhere.example/hook"),
        Reply::json(200, json!({"id": "never"})),
    ])
    .await;
    let err = webhook(&server, "")
        .send(&envelope("+5511987654321"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(
        err.message.contains("HTTP 301") && err.message.contains("http://elsewhere.example/hook"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn webhook_503_with_retry_after_is_retried_then_succeeds() {
    let server = TestServer::start(vec![
        Reply::text(503, "maintenance").header("Retry-After", "120"),
        Reply::json(200, json!({"id": 7})),
    ])
    .await;
    let (result, attempts, delays) = send_with_retries(
        &webhook(&server, ""),
        &envelope("+5511987654321"),
        &RetryPolicy::new(5),
    )
    .await;
    assert_eq!(result.unwrap().provider_id.as_deref(), Some("7"));
    assert_eq!(attempts, 2);
    assert_eq!(delays, vec![Duration::from_secs(120)]);
}

#[tokio::test]
async fn network_errors_are_transient() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let channel = build(
        &format!("{{ type: webhook, url: 'http://127.0.0.1:{port}/x' }}"),
        &context(&root(), &[]),
    );
    let err = channel.send(&envelope("+1")).await.unwrap_err();
    assert_eq!(err.class, transient(None), "{err}");
}

// ───────────────────────────── SMTP ─────────────────────────────

#[tokio::test]
async fn smtp_plain_text_message_with_login() {
    let mut server = support::SmtpServer::start(None, Some((SMTP_USER, SMTP_PASS))).await;
    let channel = build(
        &format!(
            "{{ type: smtp, host: 127.0.0.1, port: {}, tls: none, username_env: SMTP_USER, password_env: SMTP_PASS, from: 'Loja <news@loja.example>' }}",
            server.port
        ),
        &context(
            &root(),
            &[("SMTP_USER", SMTP_USER), ("SMTP_PASS", SMTP_PASS)],
        ),
    );
    let env = envelope("ana@example.com");
    let delivered = channel.send(&env).await.expect("sent");
    assert_eq!(
        delivered.provider_id.as_deref(),
        Some("<bf26-ana-0@loja.example>")
    );

    let got = server.received().await;
    assert_eq!(got.mail_from, "news@loja.example");
    assert_eq!(got.rcpt_tos, vec!["ana@example.com"]);
    assert!(!got.tls);
    assert_eq!(got.login.as_deref(), Some(SMTP_USER));
    assert_eq!(got.headers["from"], "Loja <news@loja.example>");
    assert_eq!(got.headers["to"], "ana@example.com");
    assert_eq!(got.headers["subject"], "Ana, sua oferta chegou");
    assert_eq!(got.headers["message-id"], "<bf26-ana-0@loja.example>");
    assert_eq!(got.content_type, "text/plain");
    assert_eq!(got.parts.len(), 1);
    assert_eq!(
        got.parts[0].text.trim_end(),
        "Olá Ana! Tom & Jerry: use o cupom BF26."
    );

    let preview = channel.preview_request(&env);
    assert_eq!(preview["rcpt_to"], "ana@example.com");
    assert!(
        preview["message"]
            .as_str()
            .unwrap()
            .contains("Message-ID: <bf26-ana-0@loja.example>")
    );
}

#[tokio::test]
async fn smtp_starttls_multipart_text_and_html() {
    let certs = support::Certs::generate();
    let mut server = support::SmtpServer::start(Some(&certs), Some((SMTP_USER, SMTP_PASS))).await;
    let ctx = context(
        &root(),
        &[("SMTP_USER", SMTP_USER), ("SMTP_PASS", SMTP_PASS)],
    );
    let channel = build(
        &format!(
            "{{ type: smtp, host: 127.0.0.1, port: {}, tls: starttls, ca_cert: '{}', username_env: SMTP_USER, password_env: SMTP_PASS, from: 'news@loja.example' }}",
            server.port,
            certs.ca().display()
        ),
        &ctx,
    );
    let mut env = envelope("ana@example.com");
    env.content.html = Some("<p>Olá Ana! Tom &amp; Jerry</p>".into());
    channel.send(&env).await.expect("sent over STARTTLS");

    let got = server.received().await;
    assert!(got.tls, "the message went over TLS");
    assert_eq!(got.login.as_deref(), Some(SMTP_USER));
    assert_eq!(got.content_type, "multipart/alternative");
    let types: Vec<&str> = got.parts.iter().map(|p| p.content_type.as_str()).collect();
    assert_eq!(types, vec!["text/plain", "text/html"]);
    assert_eq!(
        got.parts[0].text.trim_end(),
        "Olá Ana! Tom & Jerry: use o cupom BF26."
    );
    assert_eq!(
        got.parts[1].text.trim_end(),
        "<p>Olá Ana! Tom &amp; Jerry</p>"
    );

    // Without trusting the test CA the certificate is refused, and that is not retried.
    let untrusting = build(
        &format!(
            "{{ type: smtp, host: 127.0.0.1, port: {}, tls: starttls, username_env: SMTP_USER, password_env: SMTP_PASS, from: 'news@loja.example' }}",
            server.port
        ),
        &ctx,
    );
    let err = untrusting.send(&env).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Breaker, "{err}");
}

#[tokio::test]
async fn smtp_wrong_password_trips_the_breaker_without_leaking_it() {
    let server = support::SmtpServer::start(None, Some((SMTP_USER, SMTP_PASS))).await;
    let channel = build(
        &format!(
            "{{ type: smtp, host: 127.0.0.1, port: {}, tls: none, username_env: SMTP_USER, password_env: SMTP_PASS, from: 'news@loja.example' }}",
            server.port
        ),
        &context(
            &root(),
            &[
                ("SMTP_USER", SMTP_USER),
                ("SMTP_PASS", "wrong-password-777"),
            ],
        ),
    );
    let err = channel
        .send(&envelope("ana@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Breaker, "{err}");
    assert_eq!(err.code.as_deref(), Some("535"));
    assert!(!err.message.contains("wrong-password-777"));
}

// ───────────────────────────── Command ─────────────────────────────

fn command(mode: &str, capture: &std::path::Path, timeout: &str) -> Channel {
    build(
        &format!(
            "{{ type: command, program: tests/fixtures/command/send.sh, args: [{mode}, '{}'], timeout: {timeout} }}",
            capture.display()
        ),
        &context(&root(), &[]),
    )
}

#[tokio::test]
async fn command_success_reads_the_message_on_stdin_and_the_id_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("in.json");
    let channel = command("ok", &capture, "30s");
    let env = envelope("+5511987654321");
    let delivered = channel.send(&env).await.unwrap();
    assert_eq!(delivered.provider_id.as_deref(), Some("cmd-42"));
    let input: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&capture).unwrap()).unwrap();
    assert_eq!(input["id"], "bf26:ana:0");
    assert_eq!(input["to"], "+5511987654321");
    assert_eq!(input["body"], "Olá Ana! Tom & Jerry: use o cupom BF26.");
    assert_eq!(channel.preview_request(&env)["stdin"], input);
}

#[tokio::test]
async fn command_exit_status_classifies_errors() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("in.json");
    let env = envelope("+1");

    let err = command("transient", &capture, "30s")
        .send(&env)
        .await
        .unwrap_err();
    assert_eq!(err.class, transient(Some(7)), "{err}");
    assert_eq!(err.code.as_deref(), Some("exit 75"));
    assert!(err.message.contains("upstream busy"));

    let err = command("retry", &capture, "30s")
        .send(&env)
        .await
        .unwrap_err();
    assert_eq!(err.class, transient(None), "{err}");

    let err = command("permanent", &capture, "30s")
        .send(&env)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("invalid number"));
}

#[tokio::test]
async fn command_timeout_kills_the_program_and_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("in.json");
    let started = std::time::Instant::now();
    let err = command("hang", &capture, "1s")
        .send(&envelope("+1"))
        .await
        .unwrap_err();
    assert_eq!(err.class, transient(None), "{err}");
    assert_eq!(err.code.as_deref(), Some("timeout"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

// ───────────────────────────── Limits ─────────────────────────────

/// Every window of `period` holds at most `n` of the (sorted) instants.
fn assert_window(times: &[tokio::time::Instant], n: usize, period: Duration) {
    for i in n..times.len() {
        assert!(
            times[i] - times[i - n] >= period,
            "{} sends within {period:?} (at #{i})",
            n + 1
        );
    }
}

#[tokio::test(start_paused = true)]
async fn rate_limiter_never_exceeds_n_per_second_across_tasks() {
    let limiter = std::sync::Arc::new(RateLimiter::new(Rate::per_second(80.0)));
    let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (limiter, times) = (limiter.clone(), times.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..125 {
                limiter.acquire().await;
                times.lock().unwrap().push(tokio::time::Instant::now());
                // Uneven work between sends.
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..20))).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut times = times.lock().unwrap().clone();
    times.sort();
    assert_eq!(times.len(), 1000);
    assert_window(&times, 80, Duration::from_secs(1));
    // And it is not slower than it must be: 1000 at 80/s is 12 full windows after the first.
    let took = *times.last().unwrap() - start;
    assert!(
        took >= Duration::from_secs(12) && took < Duration::from_secs(13),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limiter_slow_rates_space_messages_out() {
    let limiter = RateLimiter::new("30/m".parse::<Rate>().unwrap());
    let mut times = Vec::new();
    for _ in 0..5 {
        limiter.acquire().await;
        times.push(tokio::time::Instant::now());
    }
    assert_window(&times, 1, Duration::from_secs(2));
    // Four intervals of 2 s, each 0.5 % longer (the limiter's headroom for jitter).
    assert_eq!(
        times[4] - times[0],
        Duration::from_secs(8).mul_f64(1.0 + disparo::channel::limits::HEADROOM)
    );
}

#[test]
fn retry_policy_backs_off_with_full_jitter_honours_retry_after_and_stops() {
    let policy = RetryPolicy::new(6);
    let mut rng = fastrand::Rng::with_seed(7);
    let err = SendError::transient("boom");
    for attempt in 1..6 {
        for _ in 0..200 {
            let d = policy.next_delay_with(&mut rng, attempt, &err).unwrap();
            assert!(d <= policy.ceiling(attempt), "attempt {attempt}: {d:?}");
        }
    }
    assert_eq!(policy.ceiling(5), Duration::from_secs(16));
    // The provider's Retry-After wins when longer, even past the cap.
    let throttled = SendError {
        class: transient(Some(900)),
        code: None,
        message: String::new(),
    };
    assert_eq!(
        policy.next_delay_with(&mut rng, 1, &throttled),
        Some(Duration::from_secs(900))
    );
    assert_eq!(
        policy.next_delay_with(&mut rng, 6, &err),
        None,
        "out of attempts"
    );
    assert_eq!(policy.next_delay(1, &SendError::permanent("no")), None);
    let mut breaker = SendError::permanent("no");
    breaker.class = ErrorClass::Breaker;
    assert_eq!(policy.next_delay(1, &breaker), None);
}

// ───────────────────────────── Config, secrets ─────────────────────────────

#[test]
fn a_missing_secret_names_the_channel_the_key_and_the_variable() {
    let config = support::config(
        "{ type: twilio, account_sid_env: TW_SID, auth_token_env: TW_TOKEN, from: '+1555' }",
    );
    let ctx = context(&root(), &[("TW_SID", TW_SID)]);
    let err = Channel::build("sms", &config, &ctx).unwrap_err();
    assert_eq!(
        err,
        ChannelBuildError::MissingEnv {
            channel: "sms".into(),
            key: "auth_token_env".into(),
            var: "TW_TOKEN".into()
        }
    );
    let text = err.to_string();
    assert!(text.contains("`sms`") && text.contains("auth_token_env") && text.contains("TW_TOKEN"));
    assert!(!text.contains(TW_SID));
}

#[test]
fn configs_refuse_unknown_keys_and_apply_adapter_defaults() {
    let bad: Result<disparo::channel::ChannelConfig, _> = serde_saphyr::from_str(
        "{ type: whatsapp_cloud, phone_number_id: '1', token_env: T, base_ulr: 'http://x' }",
    );
    assert!(bad.is_err(), "a misspelt key must be refused");
    let wa =
        support::config("{ type: whatsapp_cloud, phone_number_id: 106540352242922, token_env: T }");
    match &wa {
        disparo::channel::ChannelConfig::WhatsappCloud(c) => {
            assert_eq!(c.phone_number_id, "106540352242922")
        }
        other => panic!("{other:?}"),
    }
    let s = wa.settings();
    assert_eq!(s.rate.map(|r| r.as_per_second()), Some(80.0));
    assert_eq!(s.address_field, "phone");
    let smtp = support::config("{ type: smtp, host: h, from: 'a@b.c' }");
    assert_eq!(smtp.settings().address_field, "email");
    let both = support::config(
        "{ type: twilio, account_sid_env: A, auth_token_env: B, from: '+1', messaging_service_sid: MG1 }",
    );
    let ctx = context(&root(), &[("A", TW_SID), ("B", TW_TOKEN)]);
    assert!(matches!(
        Channel::build("sms", &both, &ctx),
        Err(ChannelBuildError::Invalid { .. })
    ));
}

#[tokio::test]
async fn secrets_never_appear_in_debug_previews_or_errors() {
    // Every provider answers an error whose text echoes the channel's credentials back.
    let server = TestServer::start(vec![
        Reply::json(
            401,
            json!({"error": {"message": format!("bad token {WA_TOKEN}"), "code": 190}}),
        ),
        Reply::json(
            401,
            json!({"code": 20003, "message": format!("bad login {TW_SID}:{TW_TOKEN}")}),
        ),
        Reply::text(401, &format!("bad signature key {HOOK_SECRET}")),
    ])
    .await;
    let env = envelope("+5511987654321");
    let channels = [
        whatsapp(&server),
        twilio(&server, "from: '+15550001111'"),
        webhook(&server, ", secret_env: HOOK_SECRET"),
    ];
    let secrets = [
        WA_TOKEN,
        TW_SID,
        TW_TOKEN,
        HOOK_SECRET,
        SMTP_PASS,
        SMTP_USER,
    ];
    let check = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "{what} shows a secret: {text}");
        }
    };
    for channel in &channels {
        check("Debug", &format!("{channel:?}"));
        check("preview", &channel.preview_request(&env).to_string());
        let err = channel.send(&env).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Breaker);
        check("error", &err.to_string());
        check("error Debug", &format!("{err:?}"));
    }
    let smtp = build(
        "{ type: smtp, host: 127.0.0.1, port: 1, username_env: U, password_env: P, from: 'a@b.example' }",
        &context(&root(), &[("U", SMTP_USER), ("P", SMTP_PASS)]),
    );
    check("Debug", &format!("{smtp:?}"));
    check(
        "preview",
        &smtp
            .preview_request(&envelope("ana@example.com"))
            .to_string(),
    );
    let err = smtp.send(&envelope("ana@example.com")).await.unwrap_err();
    check("error", &err.to_string());

    // A transport error to Twilio does not show the account SID that is in its URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = build(
        &format!(
            "{{ type: twilio, account_sid_env: S, auth_token_env: T, from: '+1', base_url: 'http://127.0.0.1:{port}' }}"
        ),
        &context(&root(), &[("S", TW_SID), ("T", TW_TOKEN)]),
    );
    let err = closed.send(&env).await.unwrap_err();
    assert!(matches!(err.class, ErrorClass::Transient { .. }));
    check("network error", &err.to_string());
}

/// A server that answers each request in full and then closes the connection (here without
/// `Connection: close`; the same race exists when a server's keep-alive timeout fires just as a
/// request goes out). `PlainHttp::idle` cannot always see the close (tokio's cached readiness),
/// so a request may be written to a connection the server already closed: it never reached the
/// server, and must not fail the send (and burn an attempt). The reqwest client, asked the
/// same way, is the comparison.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_send_does_not_fail_when_the_server_closed_after_its_last_answer() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let count = count.clone();
            std::thread::spawn(move || {
                // One request (head and announced body), one answer, then close.
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let k = match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => k,
                    };
                    seen.extend_from_slice(&buf[..k]);
                    if request_end(&seen).is_some() {
                        break;
                    }
                }
                let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = format!("{{\"id\":\"c{n}\"}}");
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes());
                // Dropped: closed.
            });
        }
    });
    const SENDS: usize = 1000;
    let channel = build(
        &format!("{{ type: webhook, url: '{url}' }}"),
        &context(&root(), &[]),
    );
    let env = envelope("+5511987654321");
    let mut own_failures = Vec::new();
    for i in 0..SENDS {
        if let Err(e) = channel.send(&env).await {
            own_failures.push(format!("send {i}: {e}"));
        }
    }
    let client = reqwest::Client::new();
    let mut reqwest_failures = 0;
    for _ in 0..SENDS {
        let r = client
            .post(&url)
            .header("Idempotency-Key", "k")
            .body("{}")
            .send()
            .await;
        if r.is_err() {
            reqwest_failures += 1;
        }
    }
    assert!(
        own_failures.is_empty(),
        "{} of {SENDS} sends failed on connections the server had closed (reqwest: {reqwest_failures} of {SENDS}); first: {:?}",
        own_failures.len(),
        own_failures.first()
    );
}

/// Credentials in a plain-http webhook URL (`http://user:pass@host/...`) become
/// `Authorization: Basic ...`, and `Host` is the host alone (the own connections once put
/// `user:pass@host:port` into `Host`: hyper's `Authority` keeps the userinfo).
#[tokio::test]
async fn webhook_url_credentials_become_basic_auth_not_part_of_host() {
    let server = TestServer::start(vec![Reply::json(200, json!({"id": "ok"}))]).await;
    let url = server
        .url("/hook")
        .replacen("http://", "http://hook:s3cret@", 1);
    let channel = build(
        &format!("{{ type: webhook, url: '{url}' }}"),
        &context(&root(), &[]),
    );
    let _ = channel.send(&envelope("+5511987654321")).await;
    let r = &server.requests()[0];
    let host = r.header("host").unwrap_or_default().to_string();
    assert!(
        !host.contains('@'),
        "Host header carries the credentials: {host:?}"
    );
    assert_eq!(
        r.header("authorization"),
        Some(&*basic("hook", "s3cret")),
        "no basic auth; Host was {host:?}"
    );
}
