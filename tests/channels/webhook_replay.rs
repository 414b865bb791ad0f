//! `webhook` Standard Webhooks signatures: checked by the reference Python library
//! (`standardwebhooks`, pinned in scripts/test-deps.sh) and by the cookbook's receiver,
//! examples/webhook_receiver.py, run here as a real server: a signed call accepted, the same
//! request replayed refused, an old timestamp refused, a tampered body refused.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use super::*;
use crate::support::http::{Recorded, Reply, TestServer};
use crate::support::{build, context, envelope};
use disparo::channel::{Channel, ChannelConfig};
use serde_json::json;

/// A Standard Webhooks secret: `whsec_` and the base64 of a 24-byte key.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn channel(url: &str, secret: &str) -> Channel {
    build(
        &format!("{{ type: webhook, url: '{url}', secret_env: HOOK_SECRET }}"),
        &context(&root(), &[("HOOK_SECRET", secret)]),
    )
}

/// The key bytes of a secret as Standard Webhooks reads `whsec_` ones (decoded here by
/// Python's base64, not ours).
fn key_of(secret: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import base64,sys; s=sys.argv[1]; sys.stdout.buffer.write(base64.b64decode(s[6:]+'==') if s.startswith('whsec_') else s.encode())",
            secret,
        ])
        .output()
        .expect("python3");
    out.stdout
}

fn hmac_b64(key: &[u8], parts: &[&[u8]]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    super::base64_check::encode(&mac.finalize().into_bytes())
}

/// Runs the reference library's `Webhook(secret).verify(body, headers)` on a recorded
/// request; `Err` with its complaint when it refuses.
fn reference_verify(secret: &str, headers: &[(String, String)], body: &[u8]) -> Result<(), String> {
    crate::support::require_python(&["standardwebhooks"]);
    let script = "import json, os, sys\nfrom standardwebhooks import Webhook\ns = os.environ['SECRET']\nkey = s if s.startswith('whsec_') else s.encode()\ntry:\n    Webhook(key).verify(sys.stdin.buffer.read(), json.loads(os.environ['HEADERS']), json_parse=False)\nexcept Exception as e:\n    print(type(e).__name__, e); sys.exit(1)\n";
    let headers: serde_json::Map<String, serde_json::Value> =
        headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut child = Command::new("python3")
        .args(["-c", script])
        .env("SECRET", secret)
        .env("HEADERS", serde_json::Value::Object(headers).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

async fn capture(secret: &str, id: &str) -> Recorded {
    let server = TestServer::start(vec![Reply::json(200, json!({"id": "x"}))]).await;
    let mut env = envelope("+5511987654321");
    env.message_id = id.into();
    channel(&server.url("/hook"), secret)
        .send(&env)
        .await
        .expect("sent");
    server.requests().remove(0)
}

/// Both secret forms: the reference library accepts the adapter's `webhook-*` headers, the
/// legacy `X-Disparo-Signature` is the HMAC of the body with the same key, and the library
/// refuses the request once one byte of the body changes (the check bites).
#[tokio::test]
async fn standard_webhooks_signature_is_accepted_by_the_reference_library() {
    for secret in [WHSEC, HOOK_SECRET] {
        let r = capture(secret, "bf26:ana:0").await;
        assert_eq!(r.header("webhook-id"), Some("bf26:ana:0"));
        assert_eq!(r.header("idempotency-key"), Some("bf26:ana:0"));
        let ts: u64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(ts.abs_diff(now) <= 5, "timestamp {ts} is not now ({now})");
        reference_verify(secret, &r.headers, &r.body)
            .unwrap_or_else(|e| panic!("{secret}: the reference library refused: {e}"));
        let key = key_of(secret);
        let sig = hmac_b64(
            &key,
            &[b"bf26:ana:0.", ts.to_string().as_bytes(), b".", &r.body],
        );
        assert_eq!(r.header("webhook-signature"), Some(&*format!("v1,{sig}")));
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
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
        let mut tampered = r.body.clone();
        let at = tampered.iter().position(|&b| b == b'A').unwrap();
        tampered[at] = b'B';
        assert!(reference_verify(secret, &r.headers, &tampered).is_err());
    }
}

/// A `whsec_` secret that is not base64 is refused when the channel is built, naming the
/// variable and not showing the secret.
#[test]
fn a_malformed_whsec_secret_is_a_config_error() {
    let config: ChannelConfig = crate::support::config(
        "{ type: webhook, url: 'http://127.0.0.1:9/h', secret_env: HOOK_SECRET }",
    );
    for bad in ["whsec_not*base64*at-all", "whsec_"] {
        let err = Channel::build("hook", &config, &context(&root(), &[("HOOK_SECRET", bad)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HOOK_SECRET") && err.contains("whsec_"),
            "{err}"
        );
        assert!(!err.contains("base64*at"), "the secret leaked: {err}");
    }
}

/// examples/webhook_receiver.py on a free port; killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
}

impl Receiver {
    fn start(secret: &str) -> Receiver {
        let mut child = Command::new("python3")
            .arg(support::manifest_dir().join("examples/webhook_receiver.py"))
            .arg("0")
            .env("DISPARO_WEBHOOK_SECRET", secret)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the receiver did not start: {line:?}"));
        Receiver { child, port }
    }

    /// POSTs `body` with `headers` as given; the answer's status.
    fn post(&self, headers: &[(String, String)], body: &[u8]) -> u16 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut head = format!(
            "POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            if !["host", "connection", "content-length"].contains(&k.to_ascii_lowercase().as_str())
            {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn with(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let v = if k.eq_ignore_ascii_case(name) {
                value
            } else {
                v
            };
            (k.clone(), v.to_string())
        })
        .collect()
}

#[tokio::test]
async fn the_cookbook_receiver_accepts_a_signed_call_and_refuses_replays_stale_and_tampered() {
    crate::support::require_python(&["json"]);
    let receiver = Receiver::start(WHSEC);
    // A real call from the adapter: accepted, the receiver's answer id is the message id.
    let live = channel(&format!("http://127.0.0.1:{}/hook", receiver.port), WHSEC);
    let delivered = live.send(&envelope("+5511987654321")).await.unwrap();
    assert_eq!(delivered.provider_id.as_deref(), Some("bf26:ana:0"));

    // The exact bytes of another call, captured, then sent to the receiver as an attacker
    // who saw them would.
    let r = capture(WHSEC, "bf26:bia:0").await;
    assert_eq!(
        receiver.post(&r.headers, &r.body),
        200,
        "the first delivery"
    );
    assert_eq!(
        receiver.post(&r.headers, &r.body),
        409,
        "the same request replayed"
    );

    // Tampered body, same headers.
    let r2 = capture(WHSEC, "bf26:caio:0").await;
    let mut t2 = r2.body.clone();
    let at = t2.iter().position(|&b| b == b'A').unwrap();
    t2[at] = b'B';
    assert_eq!(receiver.post(&r2.headers, &t2), 401, "a tampered body");

    // Correctly signed, but 10 minutes old: refused, while the same signed now is accepted
    // (so the refusal is the timestamp's).
    let key = key_of(WHSEC);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed_at = |ts: u64| {
        let sig = hmac_b64(
            &key,
            &[b"bf26:caio:0.", ts.to_string().as_bytes(), b".", &r2.body],
        );
        with(
            &with(&r2.headers, "webhook-timestamp", &ts.to_string()),
            "webhook-signature",
            &format!("v1,{sig}"),
        )
    };
    assert_eq!(
        receiver.post(&signed_at(now - 600), &r2.body),
        401,
        "an old timestamp"
    );
    assert_eq!(
        receiver.post(&signed_at(now - 60), &r2.body),
        200,
        "a fresh one"
    );
    // A retry of a processed message (new timestamp, same id): success without acting twice.
    assert_eq!(
        receiver.post(&signed_at(now - 30), &r2.body),
        200,
        "a retry"
    );
}

/// The receiver in docs/cookbook.md is examples/webhook_receiver.py, verbatim.
#[test]
fn the_cookbook_block_is_the_example_file() {
    let dir = support::manifest_dir();
    let file = std::fs::read_to_string(dir.join("examples/webhook_receiver.py")).unwrap();
    let book = std::fs::read_to_string(dir.join("docs/cookbook.md")).unwrap();
    let start = book
        .find("```python\n#!/usr/bin/env python3\n\"\"\"Receives disparo webhook messages")
        .expect("the receiver's block in docs/cookbook.md")
        + "```python\n".len();
    let end = start + book[start..].find("\n```\n").unwrap() + 1;
    assert_eq!(
        &book[start..end],
        file,
        "docs/cookbook.md's receiver differs from the example file"
    );
}
