//! `disparo run` end to end through real adapters against servers on 127.0.0.1: what the
//! dispatcher records, how it retries, when the circuit breaker pauses a campaign, and that
//! a channel's rate limit holds at the server.

use crate::harness;
use crate::support;
use std::sync::Arc;

use crate::harness::{Project, hook_project, run_async as run};
use crate::support::http::{Reply, TestServer};
use serde_json::json;

const PLAN_NOW: &str = harness::PLAN_NOW_MONDAY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_error_is_retried_after_retry_after_with_the_same_key_and_recorded() {
    let server = TestServer::start(vec![
        Reply::text(503, "busy").header("Retry-After", "1"),
        Reply::json(200, json!({"id": "hook-42"})),
    ])
    .await;
    let p = hook_project(
        &format!(
            "{{ type: webhook, url: \"{}\", secret_env: HOOK_SECRET }}",
            server.url("/hook")
        ),
        1,
    );
    let o = run(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let key = reqs[0].header("Idempotency-Key").unwrap().to_owned();
    assert_eq!(reqs[1].header("Idempotency-Key"), Some(key.as_str()));
    assert!(
        reqs[1].at.duration_since(reqs[0].at) >= std::time::Duration::from_millis(950),
        "Retry-After: 1 not honoured"
    );
    let msgs = p.messages();
    assert_eq!(msgs[0]["state"], "sent");
    assert_eq!(msgs[0]["provider_id"], "hook-42");
    assert_eq!(msgs[0]["attempts"], 2);
    assert_eq!(msgs[0]["key"], key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_error_is_not_retried() {
    let server = TestServer::start(vec![Reply::json(400, json!({"error": "bad request"}))]).await;
    let p = hook_project(
        &format!("{{ type: webhook, url: \"{}\" }}", server.url("/hook")),
        1,
    );
    let o = run(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 1, "some failed: {}", o.stderr);
    assert_eq!(server.requests().len(), 1);
    let m = &p.messages()[0];
    assert_eq!(m["state"], "failed");
    assert_eq!(m["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_not_found_trips_the_breaker_and_pauses_the_campaign() {
    let not_found = || {
        Reply::json(
            404,
            json!({"error": {"message": "(#132001) Template name does not exist in the translation", "type": "OAuthException", "code": 132001}}),
        )
    };
    let server = TestServer::start((0..6).map(|_| not_found()).collect()).await;
    let p = hook_project(
        &format!(
            "{{ type: whatsapp_cloud, phone_number_id: \"10987\", token_env: WA_TOKEN, base_url: \"{}\", concurrency: 1 }}",
            server.url("/v23.0")
        ),
        6,
    );
    let o = run(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        server.requests().len() < 6 || o.stderr.contains("paused"),
        "the breaker let the whole audience through"
    );
    let status = p.ok(&["--format", "json", "status"]).json_lines();
    assert_eq!(status[0]["status"], "paused");
    assert!(
        status[0]["status_reason"]
            .as_str()
            .unwrap()
            .contains("132001"),
        "{}",
        status[0]
    );
    // Nothing failed for good: the messages wait for the fix.
    assert_eq!(status[0]["failed"], 0);
    assert!(!p.read("disparo.db").contains("EAAG-secret-token"));
    p.ok(&["resume", "c"]);
    assert_eq!(
        p.ok(&["--format", "json", "status"]).json_lines()[0]["status"],
        "active"
    );
}

/// The shipped example, switched to the real WhatsApp Cloud API by editing disparo.yaml only:
/// every request is a template message that validates against Meta's OpenAPI description.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_example_switches_to_whatsapp_cloud_by_config_alone() {
    let replies = (0..62).map(|i| Reply::json(200, json!({"messaging_product": "whatsapp", "contacts": [], "messages": [{"id": format!("wamid.{i}")}]}))).collect();
    let server = TestServer::start(replies).await;
    let p = Project::example().env("WHATSAPP_TOKEN", "EAAG-example-token");
    let config = p.read("disparo.yaml").replace(
        "whatsapp: { type: console, rate: 80/s }",
        &format!("whatsapp: {{ type: whatsapp_cloud, phone_number_id: \"1234567890\", token_env: WHATSAPP_TOKEN, base_url: \"{}\" }}", server.url("/v23.0")),
    );
    assert!(config.contains("whatsapp_cloud"));
    p.file("disparo.yaml", &config);
    p.ok(&[
        "-q",
        "--now",
        "2026-11-26T12:00:00Z",
        "plan",
        "black-friday-2026",
    ]);
    let p = Arc::new(p);
    run(&p, &["--now", "2026-11-27T03:00:00Z", "run", "--once"]).await;
    run(&p, &["--now", "2026-11-27T16:30:00Z", "run", "--once"]).await;
    let reqs = server.requests();
    assert_eq!(reqs.len(), 62);
    let mut validated = std::collections::HashSet::new();
    for r in &reqs {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/v23.0/1234567890/messages")
        );
        assert_eq!(r.header("Authorization"), Some("Bearer EAAG-example-token"));
        let body = r.json();
        assert_eq!(body["type"], "template");
        assert_eq!(body["template"]["name"], "black_friday_offer");
        assert_eq!(
            body["template"]["components"][0]["parameters"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        // One schema check per template language (each check parses the 1 MB spec).
        if validated.insert(body["template"]["language"]["code"].to_string()) {
            support::validate_request(
                "meta_business_messaging_api_v23.0.yaml",
                "POST",
                "/{Version}/{Phone-Number-ID}/messages",
                "application/json",
                false,
                &body,
            )
            .unwrap();
        }
    }
    let ana = reqs
        .iter()
        .map(|r| r.json())
        .find(|b| b["to"] == "+5511926018159")
        .unwrap();
    assert_eq!(
        ana["template"]["language"],
        json!({"policy": "deterministic", "code": "pt_BR"})
    );
    assert_eq!(
        ana["template"]["components"][0]["parameters"][2]["text"],
        "ANA-VIP"
    );
    let msgs = p.messages();
    assert!(
        msgs.iter()
            .all(|m| m["state"] == "sent"
                && m["provider_id"].as_str().unwrap().starts_with("wamid."))
    );
}

/// Secrets come from the environment and go nowhere else: not the database, not the logs at
/// any verbosity, not previews, not error messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_database_logs_previews_or_errors() {
    let server = TestServer::start(vec![
        Reply::json(
            401,
            json!({"error": {"message": "Invalid OAuth access token", "code": 190}})
        );
        3
    ])
    .await;
    let p = hook_project(
        &format!(
            "{{ type: whatsapp_cloud, phone_number_id: \"42\", token_env: WA_TOKEN, base_url: \"{}\" }}",
            server.url("/v23.0")
        ),
        3,
    );
    let mut outputs = Vec::new();
    for v in ["-q", "-v", "-vv", "-vvv"] {
        outputs.push(p.run(&[v, "--now", PLAN_NOW, "preview", "c", "--show-request"]));
        outputs.push(p.run(&[v, "--now", PLAN_NOW, "--format", "json", "preview", "c"]));
        outputs.push(p.run(&[v, "--log-format", "json", "--now", PLAN_NOW, "validate"]));
    }
    outputs.push(
        run(
            &p,
            &["-vvv", "--now", "2026-11-30T12:00:00Z", "run", "--once"],
        )
        .await,
    );
    outputs.push(p.run(&["--format", "json", "status"]));
    outputs.push(p.run(&["--format", "json", "messages"]));
    for o in &outputs {
        for text in [&o.stdout, &o.stderr] {
            assert!(
                !text.contains("EAAG-secret-token"),
                "secret leaked:\n{text}"
            );
        }
    }
    assert!(
        outputs.iter().any(|o| o.stdout.contains("Bearer ***")),
        "the preview should show the redacted header"
    );
    // The 401s reached the server with the real token, and the database holds none of it.
    assert_eq!(
        server.requests()[0].header("Authorization"),
        Some("Bearer EAAG-secret-token")
    );
    for file in ["disparo.db", "disparo.db-wal"] {
        let bytes = std::fs::read(p.path().join(file)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("EAAG-secret-token"),
            "secret in {file}"
        );
    }
    // A missing secret is an error naming the variable, not a value.
    let unset = Project::empty();
    unset.file("disparo.yaml", "channels:\n  wa: { type: whatsapp_cloud, phone_number_id: \"42\", token_env: NOT_SET_ANYWHERE }\n")
        .file("campaigns/c.yaml", "channel: wa\ntemplate: t\naudience: a.csv\n")
        .file("templates/t.hbs", "---\nwhatsapp: { name: x, language: en, body: [] }\n---\nhi")
        .file("a.csv", "id,phone\n1,+5511999990000\n");
    unset.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    let o = unset.expect(2, &["--now", PLAN_NOW, "run"]);
    assert!(
        o.stderr.contains("NOT_SET_ANYWHERE")
            && o.stderr.contains("token_env")
            && o.stderr.contains("hint:"),
        "{}",
        o.stderr
    );
}
