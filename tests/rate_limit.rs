//! A channel's rate limit measured where it matters, at the provider: a run against a
//! loopback server configured at N/s never lets N + 1 requests arrive within one second.
//!
//! Its own test binary, so that no CPU-heavy test shares its process while arrivals are timed.

use crate::harness::{hook_project, run_async as run};
use crate::support::http::{Reply, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_at_the_server() {
    let n = 45;
    let server = TestServer::start(
        (0..n)
            .map(|i| Reply::json(200, json!({"id": format!("h{i}")})))
            .collect(),
    )
    .await;
    let p = hook_project(
        &format!(
            "{{ type: webhook, url: \"{}\", rate: 15/s }}",
            server.url("/hook")
        ),
        n,
    );
    let o = run(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut at: Vec<std::time::Instant> = server.requests().iter().map(|r| r.at).collect();
    at.sort();
    assert_eq!(at.len(), n);
    for (i, start) in at.iter().enumerate() {
        let in_window = at[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < std::time::Duration::from_secs(1))
            .count();
        assert!(
            in_window <= 15,
            "{in_window} requests within one second at a 15/s limit"
        );
    }
}
