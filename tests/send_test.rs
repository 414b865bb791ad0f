//! `disparo send-test` against a real HTTP peer on 127.0.0.1: the recipient's rendered
//! message goes now (at night on the recipient's clock too) to the tester's address, with a
//! key of its own, recorded as a test; the recipient's own message stays pending and a cap
//! does not count the test; opt-outs and unknown recipients are refused.

use serde_json::json;

use crate::harness::{Output, Project, run_async};
use crate::support::http::{Reply, TestServer};

/// 03:00 in São Paulo: a night hour no campaign sends at.
const NIGHT: &str = "2026-11-30T06:00:00Z";

fn project(url: &str) -> std::sync::Arc<Project> {
    let p = Project::empty().env("HOOK_SECRET", "s3cr3t-hmac");
    p.file(
        "disparo.yaml",
        &format!("timezone: America/Sao_Paulo\nchannels:\n  hook: {{ type: webhook, url: '{url}', secret_env: HOOK_SECRET }}\n"),
    )
    .file(
        "campaigns/c.yaml",
        "channel: hook\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00, quiet_hours: { start: '21:00', end: '08:00' } }\nfrequency_cap: { max: 1, per: 1d }\n",
    )
    .file("templates/t.hbs", "Oi {{first_name}}, seu cupom {{coupon}}")
    .file(
        "a.csv",
        "id,first_name,phone,coupon\nr1,Ana,+5511920000001,ANA-1\nr2,Bia,+5511920000002,BIA-2\n",
    );
    std::sync::Arc::new(p)
}

/// `disparo [FLAGS] send-test c ARGS` at night, off the runtime; asserts the exit code and
/// that stderr says `says`.
async fn send_test(
    p: &std::sync::Arc<Project>,
    flags: &[&str],
    args: &[&str],
    code: i32,
    says: &str,
) -> Output {
    let mut all = vec!["--now", NIGHT];
    all.extend_from_slice(flags);
    all.extend_from_slice(&["send-test", "c"]);
    all.extend_from_slice(args);
    let o = run_async(p, &all).await;
    assert_eq!(o.code, code, "{args:?}: {}", o.stderr);
    assert!(o.stderr.contains(says), "{args:?}: {}", o.stderr);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_send_goes_now_to_the_tester_and_changes_nothing_of_the_campaign() {
    let hook = TestServer::start(vec![
        Reply::json(200, json!({"id": "prov-test-1"})),
        Reply::json(200, json!({"id": "prov-test-2"})),
        Reply::json(200, json!({"id": "prov-real-1"})),
        Reply::json(200, json!({"id": "prov-real-2"})),
    ])
    .await;
    let p = project(&hook.url("/send"));
    // Before any plan: sent, but nothing to record it in.
    let to = ["--to", "+55 11 90000-9999", "--as", "r2"];
    send_test(&p, &[], &to, 0, "not recorded: there is no database yet").await;

    p.ok(&["-q", "--now", NIGHT, "plan", "c"]);
    let says = "sent r1's message of c to +5511900009999 through hook";
    let o = send_test(
        &p,
        &["--format", "json"],
        &["--to", "+5511900009999"],
        0,
        says,
    )
    .await;
    let shown = o.json_lines();
    assert_eq!(shown[0]["outcome"], "sent");
    assert_eq!(shown[0]["provider_id"], "prov-test-2");

    let requests = hook.requests();
    assert_eq!(requests.len(), 2);
    let (first, second) = (requests[0].json(), requests[1].json());
    assert_eq!(first["to"], "+5511900009999");
    assert_eq!(first["recipient"], "r2");
    assert_eq!(first["body"], "Oi Bia, seu cupom BIA-2");
    // The tester's address stands in the variables too: no customer's phone in the test.
    assert_eq!(first["vars"]["phone"], "+5511900009999");
    assert_eq!(second["recipient"], "r1");
    assert_eq!(second["body"], "Oi Ana, seu cupom ANA-1");
    // A key of its own each time: never the real message's, never the other test's.
    let key = |i: usize| requests[i].header("idempotency-key").unwrap().to_owned();
    assert!(key(0).starts_with("t-") && key(1).starts_with("t-") && key(0) != key(1));

    // Recorded as a test, and only as a test.
    let listed = p
        .ok(&["--format", "json", "send-test", "c", "--list"])
        .json_lines();
    assert_eq!(listed.len(), 1);
    let who = (
        listed[0]["recipient"].as_str(),
        listed[0]["address"].as_str(),
    );
    assert_eq!(who, (Some("r1"), Some("+5511900009999")));
    let msgs = p.messages();
    assert!(msgs.iter().all(|m| m["state"] == "pending"), "{msgs:?}");

    // The real run at 09:00 sends both: the cap (1 a day) does not count the tests.
    let o = run_async(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("2 sent"), "{}", o.stderr);
    let requests = hook.requests();
    assert_eq!(requests.len(), 4);
    for r in &requests[2..] {
        assert!(r.header("idempotency-key").unwrap().starts_with("m-"));
        assert_ne!(r.json()["to"], "+5511900009999");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tests_say_why_and_send_nothing() {
    let hook = TestServer::start(vec![Reply::json(400, json!({"error": "bad to"}))]).await;
    let p = project(&hook.url("/send"));
    p.ok(&["-q", "--now", NIGHT, "plan", "c"]);
    p.ok(&["-q", "suppress", "add", "+5511900001111"]);

    let suppressed = "+5511900001111 is on the suppression list";
    send_test(&p, &[], &["--to", "+5511900001111"], 2, suppressed).await;
    let nobody = ["--to", "+5511900002222", "--as", "nobody"];
    send_test(&p, &[], &nobody, 2, "no message for recipient \"nobody\"").await;
    send_test(&p, &[], &["--to", "12345"], 2, "field `--to`").await;
    assert!(hook.requests().is_empty());

    // The provider refuses it: exit 1, recorded as failed, with the provider's words.
    let to = ["--to", "+5511900002222"];
    send_test(&p, &[], &to, 1, "the channel refused it").await;
    let listed = p
        .ok(&["--format", "json", "send-test", "c", "--list"])
        .json_lines();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["outcome"], "failed");
    let error = listed[0]["error"].as_str().unwrap();
    assert!(error.contains("400"), "{error}");
}
