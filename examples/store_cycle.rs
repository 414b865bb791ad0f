//! The dispatch side of the store alone, without the network: claim a batch, record it all
//! as sent in the next claim's transaction, until nothing is due. Prints the store's cost per
//! message; a run's store thread does this work (plus one suppression query per batch).
//!
//! ```text
//! disparo --now 2026-11-26T12:00:00Z plan bench      # a planned database, due at that instant
//! cp disparo.db /tmp/x.db
//! cargo run --release --example store_cycle -- /tmp/x.db 512 2026-11-26T12:00:00Z
//! ```
//!
//! Arguments: the database, the messages per claim (default 512, what a run with the default
//! `--batch` claims), the instant to claim at (default 2026-11-26T12:00:00Z), and optionally
//! a channel and its daily ramp budget (`wa 2000000`): every claim then counts the channel's
//! sends of the ramp day, as a run's claims do under `ramp:`.
//!
//! It changes the database: run it on a copy.
use disparo::store::{ClaimRequest, Completion, Outcome, SqliteStore, Store};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let db = args.next().expect("db");
    let batch: usize = args.next().map(|b| b.parse().unwrap()).unwrap_or(512);
    let store = SqliteStore::open(std::path::Path::new(&db)).unwrap();
    let now: jiff::Timestamp = args
        .next()
        .as_deref()
        .unwrap_or("2026-11-26T12:00:00Z")
        .parse()
        .expect("an RFC 3339 instant");
    let lease = now + jiff::SignedDuration::from_mins(5);
    let ramps: Vec<disparo::ramp::ChannelRamp> = match (args.next(), args.next()) {
        (Some(channel), Some(per_day)) => vec![disparo::ramp::ChannelRamp {
            channel,
            ramp: disparo::ramp::Ramp::new(vec![per_day.parse().expect("a daily budget")])
                .expect("a budget of at least 1"),
        }],
        _ => Vec::new(),
    };
    let mut pending: Vec<Completion> = Vec::new();
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut claim_t = std::time::Duration::ZERO;
    loop {
        let t = Instant::now();
        let (_rec, claimed) = store
            .complete_and_claim(
                &pending,
                &ClaimRequest {
                    owner: "bench",
                    now,
                    lease_now: now,
                    lease_until: lease,
                    limit: batch,
                    campaign: None,
                    ramps: &ramps,
                },
            )
            .unwrap();
        claim_t += t.elapsed();
        if claimed.is_empty() && pending.is_empty() {
            break;
        }
        pending = claimed
            .iter()
            .enumerate()
            .map(|(i, m)| Completion {
                id: m.id,
                attempt: m.attempts + 1,
                started_at: now,
                finished_at: now,
                outcome: Outcome::Sent {
                    provider_id: Some(format!("sink-{}", n + i as u64)),
                },
            })
            .collect();
        n += claimed.len() as u64;
    }
    let el = t0.elapsed();
    println!(
        "{n} messages in {el:?}: {:.1} us/msg (store calls {claim_t:?})",
        el.as_secs_f64() * 1e6 / n as f64
    );
}
