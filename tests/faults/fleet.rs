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
/// `rate` arrivals in any second.
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
    let p = project(&provider.url, "rate: 200/s, concurrency: 8", 1600, "");
    p.ok(&["-q", "plan", "c"]);
    for o in run_fleet(&p, None, 4) {
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    assert_delivered_once_within(&provider, 1600, 200);
}
