//! Sustained load: 1,000 receipts a second for 30 seconds, every one acknowledged and on
//! disk. The pace is the client's schedule, not an assertion: a slower server makes the test
//! longer, never flaky; what is checked is that nothing is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Server, count};
use crate::harness::run_async;
use crate::support::http::{Reply, TestServer};

const RATE: u64 = 1_000;
const SECONDS: u64 = 30;
const WORKERS: u64 = 20;
const MESSAGES: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_receipts_a_second_for_thirty_seconds_are_all_stored() {
    let replies = (0..MESSAGES)
        .map(|i| Reply::json(200, json!({"id": format!("p-{i}")})))
        .collect();
    let hook = TestServer::start(replies).await;
    let p = crate::harness::hook_project(
        &format!(
            "{{ type: webhook, url: \"{}\", secret_env: HOOK_SECRET, rate: 1000/s }}",
            hook.url("/send")
        ),
        MESSAGES,
    );
    let o = run_async(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let server = Arc::new(Server::start(&p, &[]));
    let ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let per_worker = RATE * SECONDS / WORKERS;
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (server, ok) = (server.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            let client = super::client();
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 * WORKERS / RATE));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..per_worker {
                tick.tick().await;
                let n = w * per_worker + i;
                let status = ["delivered", "read"][((n / MESSAGES as u64) % 2) as usize];
                let body = json!({"id": format!("evt-{n}"), "provider_id": format!("p-{}", n % MESSAGES as u64), "status": status}).to_string();
                let r = client
                    .post(server.url("/webhook/receipts"))
                    .header("X-Disparo-Signature", sign(&body))
                    .body(body)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("receipt {n}: {e}"));
                assert_eq!(r.status().as_u16(), 200, "receipt {n}: {}", r.text().await.unwrap_or_default());
                ok.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = ok.load(Ordering::Relaxed);
    eprintln!(
        "{sent} receipts acknowledged in {elapsed:.1} s ({:.0}/s)",
        sent as f64 / elapsed
    );
    assert_eq!(sent, RATE * SECONDS);
    // Acknowledged means committed: read from another connection, before the server stops.
    assert_eq!(
        count(&p, "SELECT COUNT(*) FROM receipts") as u64,
        RATE * SECONDS,
        "nothing lost"
    );
    assert_eq!(
        count(&p, "SELECT COUNT(*) FROM receipts WHERE message_id IS NULL"),
        0,
        "every one matched"
    );
    assert_eq!(
        count(&p, "SELECT COUNT(*) FROM delivery WHERE status = 'read'") as usize,
        MESSAGES
    );
    let server = Arc::try_unwrap(server).ok().unwrap();
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
}

fn sign(body: &str) -> String {
    crate::support::hmac_sha256_header(b"s3cr3t-hmac", body.as_bytes())
}
