//! Receipts from a webhook channel's endpoint, signed like the calls disparo makes to it:
//! Standard Webhooks (signed here by its reference library, `standardwebhooks`) or
//! `X-Disparo-Signature`.

use serde_json::{Value, json};

use super::{Server, client, count};
use crate::harness::run_async;
use crate::support::http::{Reply, TestServer};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Standard Webhooks headers for `body`, from the reference library, at `timestamp`.
fn standard_headers(id: &str, timestamp: i64, body: &str) -> (String, String) {
    crate::support::require_python(&["standardwebhooks"]);
    let script = "import sys, os, datetime\nfrom standardwebhooks import Webhook\n\
        t = datetime.datetime.fromtimestamp(int(sys.argv[2]), tz=datetime.timezone.utc)\n\
        print(Webhook(os.environ['SECRET']).sign(sys.argv[1], t, sys.stdin.read()))";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, id, &timestamp.to_string()])
        .env("SECRET", SECRET)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    (
        timestamp.to_string(),
        String::from_utf8(out.stdout).unwrap().trim().to_owned(),
    )
}

async fn post(server: &Server, body: &str, headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = client()
        .post(server.url("/webhook/receipts"))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_reports_delivery_by_the_reference_disparo_posted() {
    let hook = TestServer::start(vec![
        Reply::json(200, json!({"id": "sink-1"})),
        Reply::json(200, json!({"id": "sink-2"})),
    ])
    .await;
    let p = crate::harness::hook_project(
        &format!(
            "{{ type: webhook, url: \"{}\", secret_env: HOOK_SECRET }}",
            hook.url("/send")
        ),
        2,
    );
    // The project's secret for receipts is the Standard Webhooks one.
    let p = {
        let p = std::sync::Arc::try_unwrap(p)
            .ok()
            .unwrap()
            .env("HOOK_SECRET", SECRET);
        std::sync::Arc::new(p)
    };
    let o = run_async(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let references: Vec<String> = hook
        .requests()
        .iter()
        .map(|r| {
            r.json()["reference"]
                .as_str()
                .expect("the call carries its reference")
                .to_owned()
        })
        .collect();
    let server = Server::start(&p, &[]);
    let now = jiff::Timestamp::now().as_second();
    let body = json!({"events": [
        {"id": "evt-1", "reference": references[0], "status": "delivered", "at": "2026-11-30T12:00:05Z"},
        {"id": "evt-2", "reference": references[1], "status": "read", "at": "2026-11-30T12:03:00Z"},
    ]})
    .to_string();
    let (ts, sig) = standard_headers("msg_1", now, &body);
    let headers = [
        ("webhook-id", "msg_1".to_string()),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ];
    let (code, answer) = post(&server, &body, &headers).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["results"], json!(["recorded", "recorded"]));
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM delivery WHERE delivered_at IS NOT NULL OR read_at IS NOT NULL"
        ),
        2
    );
    // A replay of the same post (captured and sent again) changes nothing.
    let (_, again) = post(&server, &body, &headers).await;
    assert_eq!(again["results"], json!(["duplicate", "duplicate"]));
    // The legacy signature alone is accepted too; a wrong one is not.
    let legacy_body = json!({"id": "evt-3", "provider_id": "sink-1", "status": "read"}).to_string();
    let key = base64_decode(SECRET.strip_prefix("whsec_").unwrap());
    let (code, _) = post(
        &server,
        &legacy_body,
        &[(
            "X-Disparo-Signature",
            crate::support::hmac_sha256_header(&key, legacy_body.as_bytes()),
        )],
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = post(
        &server,
        &legacy_body,
        &[(
            "X-Disparo-Signature",
            crate::support::hmac_sha256_header(b"wrong", legacy_body.as_bytes()),
        )],
    )
    .await;
    assert_eq!(code, 401);
    // A signature older than five minutes is refused even if right: a replay window.
    let (ts, sig) = standard_headers("msg_2", now - 600, &body);
    let (code, _) = post(
        &server,
        &body,
        &[
            ("webhook-id", "msg_2".into()),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ],
    )
    .await;
    assert_eq!(code, 401);
    // A bad event names itself.
    let bad = json!([{"reference": references[0], "status": "delivered"}, {"status": "read"}])
        .to_string();
    let (ts, sig) = standard_headers("msg_3", now, &bad);
    let (code, answer) = post(
        &server,
        &bad,
        &[
            ("webhook-id", "msg_3".into()),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ],
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("event 2: names no message"),
        "{answer}"
    );
    assert_eq!(
        count(&p, "SELECT COUNT(*) FROM receipts"),
        3,
        "nothing of a refused post is stored"
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
