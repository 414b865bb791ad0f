//! A fleet of `run` workers on one schedule (issue #14): every message exactly once, and the
//! channel's rate never exceeded by the workers together, at the sink, in any second.

use std::time::Duration;

use super::dispatch::{Hit, Provider, finish, project, spawn};
use crate::harness::Project;

const MINUTE: Duration = Duration::from_secs(60);

/// The most requests that arrived at the sink in any window of one second.
pub fn busiest_second(hits: &[Hit]) -> usize {
    let mut at: Vec<_> = hits.iter().map(|h| h.at).collect();
    at.sort();
    let mut most = 0;
    let mut first = 0;
    for last in 0..at.len() {
        while at[last] - at[first] >= Duration::from_secs(1) {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

/// `workers` `run --once` processes started together on `p` (whose database `db` is, if not
/// the project's file), each to the end; the sink's hits.
pub fn run_fleet(p: &Project, db: Option<&str>, workers: usize) -> Vec<crate::harness::Output> {
    let mut args = vec!["run", "--once", "--lease", "10s"];
    if let Some(db) = db {
        args.splice(0..0, ["--db", db]);
    }
    let children: Vec<_> = (0..workers).map(|_| spawn(p, false, &args)).collect();
    children
        .into_iter()
        .map(|c| finish(c, 5 * MINUTE))
        .collect()
}

/// Checks what a fleet delivered: each of `n` messages accepted exactly once, and at most
/// `rate` arrivals in any second. (The sink stamps a request when its thread has read it: on a
/// loaded machine a stalled sink thread stamps late, and the requests of all connections can
/// bunch up. The fleets here keep few connections open, so that bunching stays inside the
/// limiter's 1.5 % headroom and the check measures the workers, not the sink's scheduling.)
pub fn assert_delivered_once_within(provider: &Provider, n: usize, rate: usize) {
    let accepted = provider.accepted();
    let repeated: Vec<_> = accepted.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    assert_eq!(accepted.len(), n, "every message delivered once");
    let busiest = busiest_second(&provider.hits());
    assert!(
        busiest <= rate,
        "{busiest} requests arrived within one second at a channel rate of {rate}/s"
    );
}

/// Four workers on one SQLite file, a 200/s channel, 1,600 messages (about 8 s at the whole
/// rate): each message once, never more than 200 in a second, although each worker alone
/// would send at 200/s.
#[test]
fn four_workers_on_one_sqlite_file_share_the_channel_rate() {
    let provider = Provider::ok();
    let p = project(&provider.url, "rate: 200/s, concurrency: 2", 1600, "");
    p.ok(&["-q", "plan", "c"]);
    for o in run_fleet(&p, None, 4) {
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    assert_delivered_once_within(&provider, 1600, 200);
}

// ---------------------------------------------------------------------------------------------
// The same fleet on PostgreSQL: a real server, a throwaway cluster on 127.0.0.1.

use crate::harness::pg::PgCluster;

/// A project planned into a fresh database of `cluster`: `n` messages on a webhook channel to
/// `provider` with `channel` settings. Returns the project and the database's URL.
fn planned_on_postgres(
    cluster: &PgCluster,
    provider: &Provider,
    channel: &str,
    n: usize,
) -> (Project, String) {
    let url = cluster.fresh_database();
    let p = project(&provider.url, channel, n, "");
    p.ok(&["-q", "--db", &url, "plan", "c"]);
    (p, url)
}

/// Issue #14's fleet test: 4 `run` workers against one PostgreSQL database and a loopback
/// sink, 20,000 messages: every message exactly once, the combined rate within the channel's
/// limit (2,000/s here) in every 1-second window at the sink.
#[test]
fn four_workers_on_one_postgres_database_deliver_20000_messages_once_within_the_rate() {
    let provider = Provider::ok();
    let (p, url) = planned_on_postgres(
        PgCluster::shared(),
        &provider,
        "rate: 2000/s, concurrency: 4",
        20_000,
    );
    for o in run_fleet(&p, Some(&url), 4) {
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    }
    assert_delivered_once_within(&provider, 20_000, 2000);
    let status = p.ok(&["--db", &url, "--format", "json", "status"]);
    assert_eq!(status.json_lines()[0]["sent"], 20_000, "{}", status.stdout);
}

/// A worker SIGKILLed mid-run: its leases expire and the others finish its work; the only
/// repeats are messages that were in flight at the kill (sent, outcome not yet committed),
/// each with the same idempotency key (the sink checks the key against the message id).
#[test]
fn a_killed_worker_leaves_its_messages_to_the_others_and_only_in_flight_ones_repeat() {
    let provider = Provider::ok();
    let (p, url) = planned_on_postgres(
        PgCluster::shared(),
        &provider,
        "rate: 300/s, concurrency: 4",
        3000,
    );
    let args = ["--db", &url, "run", "--once", "--lease", "3s"];
    let mut doomed = spawn(&p, false, &args);
    provider.wait_for(200, MINUTE);
    let others: Vec<_> = (0..2).map(|_| spawn(&p, false, &args)).collect();
    provider.wait_for(600, MINUTE);
    doomed.kill().unwrap();
    let killed_at = std::time::Instant::now();
    doomed.wait().unwrap();
    for o in others.into_iter().map(|c| finish(c, 5 * MINUTE)) {
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    let arrivals = provider.arrivals();
    assert_eq!(arrivals.len(), 3000, "every message arrived");
    // "In flight" as the store defines it: sent and not yet committed. Outcomes are committed
    // in groups every 250 ms, so a repeat must have first arrived at most that long (plus a
    // margin for the machine) before the kill, and arrive twice, never more.
    let hits = provider.hits();
    for (key, count) in arrivals.iter().filter(|(_, c)| **c > 1) {
        assert_eq!(*count, 2, "{key} arrived {count} times");
        let first = hits.iter().find(|h| &h.key == key).unwrap().at;
        assert!(
            killed_at.duration_since(first) < Duration::from_millis(750),
            "{key} repeated although it was sent {:?} before the kill",
            killed_at.duration_since(first)
        );
    }
    assert!(busiest_second(&provider.hits()) <= 300);
    let status = p.ok(&["--db", &url, "--format", "json", "status"]);
    assert_eq!(status.json_lines()[0]["sent"], 3000, "{}", status.stdout);
}

/// The PostgreSQL server restarted mid-run (`pg_ctl restart`): the workers reconnect and
/// finish; nothing lost, nothing repeated beyond messages in flight; one clear log line; no
/// panic.
#[test]
fn workers_ride_out_a_server_restart() {
    let cluster = PgCluster::start();
    let provider = Provider::ok();
    let (p, url) = planned_on_postgres(&cluster, &provider, "rate: 300/s, concurrency: 4", 2400);
    let args = ["--db", &url, "run", "--once", "--lease", "10s"];
    let workers: Vec<_> = (0..2).map(|_| spawn(&p, false, &args)).collect();
    provider.wait_for(400, MINUTE);
    cluster.restart();
    let outs: Vec<_> = workers.into_iter().map(|c| finish(c, 5 * MINUTE)).collect();
    for o in &outs {
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    }
    assert!(
        outs.iter()
            .any(|o| o.stderr.contains("lost the connection to PostgreSQL")),
        "no worker said it lost the connection: {:?}",
        outs.iter().map(|o| &o.stderr).collect::<Vec<_>>()
    );
    let arrivals = provider.arrivals();
    assert_eq!(arrivals.len(), 2400, "every message arrived");
    let repeated = arrivals.values().filter(|c| **c > 1).count();
    assert!(
        repeated <= 8,
        "{repeated} messages repeated (8 sends in flight at most)"
    );
    let status = p.ok(&["--db", &url, "--format", "json", "status"]);
    assert_eq!(status.json_lines()[0]["sent"], 2400, "{}", status.stdout);
}

/// Wrong URL, wrong password, server down, a database from a newer disparo: exit 4 with a
/// hint, from `run` and `status` alike, the password never shown.
#[test]
fn unusable_postgres_locations_are_exit_4_with_a_hint() {
    let cluster = PgCluster::shared();
    let p = Project::example();
    let good = cluster.fresh_database();
    p.ok(&["--db", &good, "db", "migrate"]);
    let wrong_password = good.replace(crate::harness::pg::PASSWORD, "not-the-password");
    let down = PgCluster::start();
    let down_url = down.fresh_database();
    down.stop();
    let cases = [
        ("wrong password", wrong_password.clone()),
        ("unknown database", cluster.url_for("no_such_database_here")),
        ("server down", down_url.clone()),
        (
            "no server at that port",
            "postgres://u:secret-pw@127.0.0.1:1/db?sslmode=disable".to_owned(),
        ),
    ];
    for (what, url) in &cases {
        for args in [&["status"][..], &["run"], &["db", "check"]] {
            let mut a = vec!["--db", url.as_str()];
            a.extend_from_slice(args);
            let o = p.expect(4, &a);
            assert!(o.stderr.contains("hint:"), "{what} {args:?}: {}", o.stderr);
            assert!(
                !o.stderr.contains("not-the-password") && !o.stderr.contains("secret-pw"),
                "{what}: the password was shown: {}",
                o.stderr
            );
        }
    }
    let mut client = postgres::Client::connect(&good, postgres::NoTls).unwrap();
    client
        .batch_execute("INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (99, 'future', '2030-01-01', '0')")
        .unwrap();
    for args in [&["status"][..], &["run"], &["db", "migrate"]] {
        let mut a = vec!["--db", good.as_str()];
        a.extend_from_slice(args);
        let o = p.expect(4, &a);
        assert!(o.stderr.contains("newer"), "{args:?}: {}", o.stderr);
    }
}

/// On PostgreSQL the gate is read by a thread of its own: an opt-out committed by another
/// process while a batch is in hand is still honoured before the next send.
#[test]
fn an_opt_out_during_a_batch_is_honoured_on_postgres() {
    use super::dispatch::{Answer, phone};
    let provider = Provider::scripted(|hit, _| {
        if hit.n == 1 {
            Answer::ok().held()
        } else {
            Answer::ok()
        }
    });
    let (p, url) = planned_on_postgres(PgCluster::shared(), &provider, "concurrency: 1", 5);
    let child = spawn(&p, false, &["--db", &url, "run", "--once"]);
    provider.wait_for(1, MINUTE);
    let held = provider.hits()[0].recipient.clone();
    let target = if held == "r4" { 3 } else { 4 };
    p.ok(&["--db", &url, "suppress", "add", &phone(target)]);
    provider.release();
    let o = finish(child, 2 * MINUTE);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let hits = provider.hits();
    assert!(
        hits.iter().all(|h| h.recipient != format!("r{target}")),
        "r{target} was messaged after its opt-out was committed"
    );
    assert_eq!(hits.len(), 4, "the other four were sent");
}
