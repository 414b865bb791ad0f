//! `webhook`: signed JSON calls, its own HTTP/1.1 connections and reqwest's.

use super::base64_check::basic;
use super::*;
use crate::support::http::{Reply, TestServer};
use crate::support::{build, context, envelope};
use disparo::channel::{Channel, ErrorClass};
use serde_json::json;

pub(super) fn webhook(server: &TestServer, extra: &str) -> Channel {
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
