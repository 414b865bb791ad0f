//! WhatsApp Cloud API status webhooks through `disparo serve`, after a real `run` sent the
//! campaign to a loopback Cloud API.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Server, client, count, fixture, meta_signature};
use crate::harness::{PLAN_NOW_MONDAY, Project, run_async};
use crate::support::http::{Reply, TestServer};

pub const APP_SECRET: &str = "meta-app-secret-1";
const VERIFY_TOKEN: &str = "verify-me-42";

/// A project whose campaign `c` goes to `n` recipients (+5511920000000, ...) over a
/// whatsapp_cloud channel at `base_url`, planned for Monday 09:00 in São Paulo.
pub fn project(base_url: &str, n: usize) -> std::sync::Arc<Project> {
    let p = Project::empty()
        .env("WA_TOKEN", "EAAG-secret-token")
        .env("WA_APP_SECRET", APP_SECRET)
        .env("WA_VERIFY", VERIFY_TOKEN);
    let mut csv = String::from("id,first_name,phone\n");
    for i in 0..n {
        csv.push_str(&format!("r{i},Ana {i},+55119{:08}\n", 20_000_000 + i));
    }
    p.file(
        "disparo.yaml",
        &format!(
            "timezone: America/Sao_Paulo\nchannels:\n  wa: {{ type: whatsapp_cloud, phone_number_id: \"106540352242922\", token_env: WA_TOKEN, base_url: \"{base_url}\", app_secret_env: WA_APP_SECRET, verify_token_env: WA_VERIFY }}\n"
        ),
    )
    .file("campaigns/c.yaml", "channel: wa\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n")
    .file("templates/t.hbs", "---\nwhatsapp: { name: promo, language: pt_BR, body: [\"{{first_name}}\"] }\n---\nOi {{first_name}}")
    .file("a.csv", &csv);
    p.ok(&["-q", "--now", PLAN_NOW_MONDAY, "plan", "c"]);
    std::sync::Arc::new(p)
}

/// Sends campaign `c` to a loopback Cloud API that gives each message the id `wamid.T<i>`;
/// returns, per recipient number (without `+`), the id and the callback data sent.
pub async fn send(n: usize) -> (std::sync::Arc<Project>, HashMap<String, (String, String)>) {
    let replies = (0..n)
        .map(|i| Reply::json(200, json!({"messaging_product": "whatsapp", "messages": [{"id": format!("wamid.T{i}")}]})))
        .collect();
    let api = TestServer::start(replies).await;
    let p = project(&api.url(""), n);
    let o = run_async(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let ids: HashMap<String, String> = p
        .messages()
        .iter()
        .map(|m| {
            (
                m["address"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('+')
                    .to_owned(),
                m["provider_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut out = HashMap::new();
    for r in api.requests() {
        let body = r.json();
        let to = body["to"]
            .as_str()
            .unwrap()
            .trim_start_matches('+')
            .to_owned();
        let callback = body["biz_opaque_callback_data"]
            .as_str()
            .expect("the adapter sends biz_opaque_callback_data")
            .to_owned();
        out.insert(to.clone(), (ids[&to].clone(), callback));
    }
    assert_eq!(out.len(), n);
    (p, out)
}

/// Meta's status notification (the fixture) for one message.
pub fn status(id: &str, status: &str, recipient: &str, callback: Option<&str>, at: i64) -> Value {
    let mut v: Value = serde_json::from_str(&fixture("whatsapp_status_delivered.json")).unwrap();
    let s = &mut v["entry"][0]["changes"][0]["value"]["statuses"][0];
    s["id"] = json!(id);
    s["status"] = json!(status);
    s["recipient_id"] = json!(recipient);
    s["timestamp"] = json!(at.to_string());
    match callback {
        Some(c) => s["biz_opaque_callback_data"] = json!(c),
        None => {
            s.as_object_mut()
                .unwrap()
                .remove("biz_opaque_callback_data");
        }
    }
    if status == "read" {
        s.as_object_mut().unwrap().remove("pricing");
    }
    v
}

/// POSTs `body` to /whatsapp signed with `secret` (or unsigned).
pub async fn post(server: &Server, body: &[u8], secret: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .post(server.url("/whatsapp"))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(s) = secret {
        req = req.header("X-Hub-Signature-256", meta_signature(s, body));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn delivery(p: &Project, recipient: &str) -> String {
    let db = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
    db.query_row(
        "SELECT COALESCE((SELECT d.status FROM delivery d WHERE d.message_id = m.id), 'none') FROM messages m WHERE m.recipient = ?1",
        [recipient],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_sent_to_whatsapp_gets_its_receipts_back_once_and_never_backwards() {
    let (p, sent) = send(4).await;
    let server = Server::start(&p, &[]);
    let base = 1_796_119_200;
    // r0, r1: delivered then read. r2: read arrives before delivered. r3: delivered only,
    // named by the callback reference alone (as if our record of Meta's id were lost).
    let mut posts = Vec::new();
    for (i, events) in [
        (0, vec!["delivered", "read"]),
        (1, vec!["delivered", "read"]),
        (2, vec!["read", "delivered"]),
        (3, vec!["delivered"]),
    ] {
        let to = format!("55119{:08}", 20_000_000 + i);
        let (id, callback) = &sent[&to];
        for (k, e) in events.iter().enumerate() {
            let id = if i == 3 {
                "wamid.unknown-to-disparo"
            } else {
                id.as_str()
            };
            posts.push(status(id, e, &to, Some(callback), base + k as i64));
        }
    }
    for body in &posts {
        // Each payload is what Meta's own schema describes.
        crate::support::validate_component(
            "meta_business_messaging_api_v23.0.yaml",
            "WebhookPayload",
            body,
        )
        .unwrap_or_else(|e| panic!("fixture does not match Meta's schema: {e}"));
        let (code, answer) = post(&server, body.to_string().as_bytes(), Some(APP_SECRET)).await;
        assert_eq!(code, 200, "{answer}");
    }
    // Meta retries a delivery it thinks failed: stored once.
    let (code, answer) = post(&server, posts[0].to_string().as_bytes(), Some(APP_SECRET)).await;
    assert_eq!(
        (code, answer["results"][0].as_str()),
        (200, Some("duplicate")),
        "{answer}"
    );
    assert_eq!(count(&p, "SELECT COUNT(*) FROM receipts"), 7);
    assert_eq!(
        [
            delivery(&p, "r0"),
            delivery(&p, "r1"),
            delivery(&p, "r2"),
            delivery(&p, "r3")
        ],
        ["read", "read", "read", "delivered"],
        "a late `delivered` never takes r2 back from read"
    );
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM delivery WHERE read_at IS NOT NULL AND delivered_at IS NULL"
        ),
        1,
        "r2's read came first"
    );
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_or_wrongly_signed_statuses_are_refused_and_store_nothing() {
    let (p, sent) = send(1).await;
    let server = Server::start(&p, &[]);
    let (id, callback) = &sent["5511920000000"];
    let body = status(id, "read", "5511920000000", Some(callback), 1_796_119_200).to_string();
    for secret in [None, Some("not-the-app-secret")] {
        let (code, answer) = post(&server, body.as_bytes(), secret).await;
        assert_eq!(code, 401, "{answer}");
    }
    // A signature of other bytes (the body changed on the way).
    let forged = client()
        .post(server.url("/whatsapp"))
        .header("X-Hub-Signature-256", meta_signature(APP_SECRET, b"{}"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    assert_eq!(count(&p, "SELECT COUNT(*) FROM receipts"), 0);
    assert_eq!(delivery(&p, "r0"), "none");
    assert!(
        server.log().contains("refused: missing or wrong signature"),
        "{}",
        server.log()
    );
    // Meta's subscription handshake: the challenge only for our verify token.
    let ok = client()
        .get(server.url(
            "/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me-42&hub.challenge=1158201444",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let bad = client()
        .get(server.url("/whatsapp?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_defer_or_suppress_and_a_suppressed_number_is_never_messaged_again() {
    let (p, sent) = send(3).await;
    let server = Server::start(&p, &[]);
    // r1: Meta's per-user marketing limit: sent again a day later, not failed.
    let mut limit: Value =
        serde_json::from_str(&fixture("whatsapp_status_failed_131049.json")).unwrap();
    limit["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = json!(sent["5511920000001"].0);
    let (code, _) = post(&server, limit.to_string().as_bytes(), Some(APP_SECRET)).await;
    assert_eq!(code, 200);
    // r0: the user stopped marketing messages (131050).
    let mut stop = status(
        &sent["5511920000000"].0,
        "failed",
        "5511920000000",
        None,
        1_796_119_300,
    );
    stop["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"] = json!([{"code": 131050, "title": "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business"}]);
    stop["entry"][0]["changes"][0]["value"]["statuses"][0]
        .as_object_mut()
        .unwrap()
        .remove("pricing");
    let (code, _) = post(&server, stop.to_string().as_bytes(), Some(APP_SECRET)).await;
    assert_eq!(code, 200);
    // r2: a marketing opt-out through user_preferences.
    let prefs = fixture("whatsapp_user_preferences_stop.json");
    let (code, answer) = post(&server, prefs.as_bytes(), Some(APP_SECRET)).await;
    assert_eq!(code, 200, "{answer}");
    drop(server);

    let msgs = p.messages();
    let by = |r: &str| msgs.iter().find(|m| m["recipient"] == r).unwrap().clone();
    assert_eq!(by("r1")["state"], "pending", "131049 sends again later");
    assert_eq!(
        by("r1")["due_at"],
        "2026-12-02T10:01:00Z",
        "24 h after Meta's timestamp"
    );
    let suppressed = p.ok(&["--format", "json", "suppress", "list"]).json_lines();
    let numbers: Vec<&str> = suppressed
        .iter()
        .map(|s| s["address"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["+5511920000000", "+5511920000002"]);
    // Any other campaign, on any channel, skips them at plan time.
    p.file(
        "campaigns/again.yaml",
        "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-07T09:00 }\n",
    );
    p.ok(&["-q", "--now", "2026-12-03T11:00:00Z", "plan", "again"]);
    let again: Vec<Value> = p
        .messages()
        .into_iter()
        .filter(|m| m["campaign"] == "again")
        .collect();
    let skipped: Vec<&str> = again
        .iter()
        .filter(|m| m["state"] == "skipped")
        .map(|m| m["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["r0", "r2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_is_kept_and_a_huge_body_is_refused() {
    let p = project("http://127.0.0.1:9", 1);
    let server = Server::start(&p, &[]);
    let body = status(
        "wamid.never-sent",
        "delivered",
        "5511920000000",
        None,
        1_796_119_200,
    )
    .to_string();
    let (code, answer) = post(&server, body.as_bytes(), Some(APP_SECRET)).await;
    assert_eq!(
        (code, answer["results"][0].as_str()),
        (200, Some("unmatched")),
        "{answer}"
    );
    assert_eq!(
        count(&p, "SELECT COUNT(*) FROM receipts WHERE message_id IS NULL"),
        1
    );
    // 10 MB: refused before it is read, nothing stored.
    let huge = vec![b' '; 10 * 1024 * 1024];
    let r = client()
        .post(server.url("/whatsapp"))
        .header("X-Hub-Signature-256", meta_signature(APP_SECRET, &huge))
        .body(huge)
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status().as_u16(), 413),
        // The server may close the connection while the client still writes.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    assert_eq!(count(&p, "SELECT COUNT(*) FROM receipts"), 1);
    let health: Value = client()
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["unmatched"], 1);
}
