//! Warm-up ramps on PostgreSQL: what a ramped channel used of its ramp day, and the claim's
//! statement that takes no more of its messages than the day has left.
//!
//! Claims skip each other's rows (`FOR UPDATE SKIP LOCKED`), so two could each read the same
//! budget and both take it. A claim that limits a ramped channel therefore first takes a
//! transaction-level advisory lock of that channel (in name order, so two claims never wait
//! for each other crosswise), and only then counts: the next claim of the channel waits for
//! this one's commit, and its statements (read committed) see the messages this one leased.

use std::collections::HashMap;

use ::postgres::{GenericClient, Transaction};
use jiff::Timestamp;

use super::{PostgresStore, conn::Replay, to_ms};
use crate::ramp::{ChannelRamp, Ramp, RampUsage};
use crate::store::{ClaimRequest, StoreError};

/// The advisory-lock space of ramped channels (the first key of `pg_advisory_xact_lock(int,
/// int)`, the second being the channel's `hashtext`): apart from the capped claims' lock,
/// which is a one-key (bigint) lock, a space of its own.
const RAMP_LOCK_SPACE: i32 = 0x6472_7001;

/// The first send, the sends of the ramp day `now` is in and the messages held under a live
/// lease, for one channel, from one statement (one snapshot: a message cannot move from
/// held to sent between two counts and be missed by both).
fn counts(
    client: &mut impl GenericClient,
    channel: &str,
    ramp: &Ramp,
    now: Timestamp,
) -> Result<(Option<Timestamp>, u64, u64), ::postgres::Error> {
    let mut first: Option<Timestamp> = client
        .query_one("SELECT MIN(at) FROM sends WHERE channel = $1", &[&channel])?
        .get(0);
    loop {
        let day = ramp.day_at(first, now);
        // Before any send the day has no window: nothing is counted in it.
        let (from, to) = match (day.starts, day.ends()) {
            (Some(s), Some(e)) => (s, e),
            _ => (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH),
        };
        let row = client.query_one(
            "SELECT (SELECT MIN(at) FROM sends WHERE channel = $1),
                    (SELECT COUNT(*) FROM sends WHERE channel = $1 AND at >= $2 AND at < $3),
                    (SELECT COUNT(*) FROM queue q JOIN campaigns c ON c.id = q.campaign_id
                     WHERE q.state = 'sending' AND q.lease_until >= now() AND c.channel = $1)",
            &[&channel, &from, &to],
        )?;
        let seen: Option<Timestamp> = row.get(0);
        if seen == first {
            let (sent, held): (i64, i64) = (row.get(1), row.get(2));
            return Ok((first, sent.max(0) as u64, held.max(0) as u64));
        }
        // A first send committed between the two reads: count again in its day.
        first = seen;
    }
}

/// What each ramped channel may still send in its current ramp day, with the channel's lock
/// held until the transaction ends; channels whose ramp is over are left out (and not
/// locked: a ramp, once over, stays over).
pub(super) fn limits(
    tx: &mut Transaction<'_>,
    req: &ClaimRequest<'_>,
) -> Result<Vec<(String, u64)>, ::postgres::Error> {
    let now = to_ms(req.now);
    let mut ramps: Vec<&ChannelRamp> = req.ramps.iter().collect();
    ramps.sort_by(|a, b| a.channel.cmp(&b.channel));
    let mut out = Vec::new();
    for r in ramps {
        let first: Option<Timestamp> = tx
            .query_one(
                "SELECT MIN(at) FROM sends WHERE channel = $1",
                &[&r.channel],
            )?
            .get(0);
        if first.is_some() && r.ramp.budget(r.ramp.day_at(first, now).index).is_none() {
            continue;
        }
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&RAMP_LOCK_SPACE, &r.channel],
        )?;
        let (first, sent, held) = counts(tx, &r.channel, &r.ramp, now)?;
        let day = r.ramp.day_at(first, now);
        if let Some(left) = r.ramp.left(day.index, sent + held) {
            out.push((r.channel.clone(), left));
        }
    }
    Ok(out)
}

/// The `picked` CTE of the claim's `UPDATE` (see `claims::claim_in`) under `filter` (the
/// claim's conditions on `q` and `c`, with `$1`…`$5` as there) when channels are limited:
/// the due messages of the other channels, and of each limited one at most what it has left
/// (`$6` the limited channels, `$7`/`$8` each one's name and what it has left), most due
/// first, at most `$2` in all. Rows locked and not picked stay unclaimed. The other
/// channels' messages are read only when `$9` (an active campaign sends on one, see
/// [`others_than`]): otherwise the scan in due order would skip the limited channels' whole
/// backlog, row by row, to find none.
pub(super) fn picked(filter: &str) -> String {
    format!(
        "open_rows AS (
            SELECT q.message_id, q.due_at FROM queue q JOIN campaigns c ON c.id = q.campaign_id
            WHERE $9::bool AND {filter} AND NOT (c.channel = ANY($6::text[]))
            ORDER BY q.due_at LIMIT $2 FOR UPDATE OF q SKIP LOCKED),
         ramped AS (
            SELECT r.message_id, r.due_at FROM UNNEST($7::text[], $8::bigint[]) AS l(channel, n)
            CROSS JOIN LATERAL (
                SELECT q.message_id, q.due_at FROM queue q JOIN campaigns c ON c.id = q.campaign_id
                WHERE {filter} AND c.channel = l.channel
                ORDER BY q.due_at LIMIT l.n FOR UPDATE OF q SKIP LOCKED) r),
         picked AS (
            SELECT message_id FROM (SELECT * FROM open_rows UNION ALL SELECT * FROM ramped) u
            ORDER BY due_at LIMIT $2)"
    )
}

/// Whether an active campaign (`campaign`, if given) sends on a channel outside `channels`.
pub(super) fn others_than(
    client: &mut impl GenericClient,
    channels: &[&str],
    campaign: Option<&str>,
) -> Result<bool, ::postgres::Error> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM campaigns WHERE status = 'active' AND ($1::text IS NULL OR name = $1)
               AND NOT (channel = ANY($2)))",
            &[&campaign, &channels],
        )?
        .get(0))
}

/// The parameters `$6`…`$8` of [`picked`].
pub(super) fn picked_params(limited: &[(String, u64)]) -> (Vec<String>, Vec<String>, Vec<i64>) {
    let all = limited.iter().map(|(c, _)| c.clone()).collect();
    let (open, left): (Vec<String>, Vec<i64>) = limited
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| (c.clone(), i64::try_from(*n).unwrap_or(i64::MAX)))
        .unzip();
    (all, open, left)
}

/// What is left to the limited channels once the claimed messages (by id) are counted.
pub(super) fn left_after(
    tx: &mut Transaction<'_>,
    limited: &[(String, u64)],
    ids: &[i64],
) -> Result<HashMap<String, u64>, ::postgres::Error> {
    let mut left: HashMap<String, u64> = limited.iter().cloned().collect();
    if left.is_empty() || ids.is_empty() {
        return Ok(left);
    }
    for row in tx.query(
        "SELECT c.channel, COUNT(*) FROM queue q JOIN campaigns c ON c.id = q.campaign_id
         WHERE q.message_id = ANY($1) GROUP BY c.channel",
        &[&ids],
    )? {
        let (channel, n): (String, i64) = (row.get(0), row.get(1));
        if let Some(l) = left.get_mut(&channel) {
            *l = l.saturating_sub(n.max(0) as u64);
        }
    }
    Ok(left)
}

/// See `Store::ramp_usage` (leases are judged on the server's clock).
pub(super) fn usage(
    store: &PostgresStore,
    ramps: &[ChannelRamp],
    now: Timestamp,
    campaign: Option<&str>,
) -> Result<Vec<RampUsage>, StoreError> {
    let now = to_ms(now);
    store.with("reading the channels' ramps", Replay::Safe, |client| {
        let mut tx = client.transaction()?;
        let mut out = Vec::with_capacity(ramps.len());
        for r in ramps {
            let (first, sent, held) = counts(&mut tx, &r.channel, &r.ramp, now)?;
            // In due order on `queue_due`: the first of the channel's, without reading the rest.
            let next_due: Option<Timestamp> = tx
                .query_opt(
                    "SELECT q.due_at FROM queue q JOIN campaigns c ON c.id = q.campaign_id
                     WHERE q.state = 'pending' AND c.status = 'active' AND c.channel = $1 AND ($2::text IS NULL OR c.name = $2)
                     ORDER BY q.due_at LIMIT 1",
                    &[&r.channel, &campaign],
                )?
                .map(|row| row.get(0));
            out.push(RampUsage {
                channel: r.channel.clone(),
                first_send: first,
                sent,
                held,
                next_due,
            });
        }
        tx.commit()?;
        Ok(out)
    })
}

/// See `Store::ramp_held_back`.
pub(super) fn held_back(
    store: &PostgresStore,
    channel: &str,
    before: Timestamp,
    campaign: Option<&str>,
) -> Result<u64, StoreError> {
    let before = to_ms(before);
    let n: i64 = store.with("counting what a ramp holds back", Replay::Safe, |client| {
        Ok(client
            .query_one(
                "SELECT COUNT(*) FROM queue q JOIN campaigns c ON c.id = q.campaign_id
                 WHERE q.state = 'pending' AND q.due_at < $2 AND c.status = 'active' AND c.channel = $1
                   AND ($3::text IS NULL OR c.name = $3)",
                &[&channel, &before, &campaign],
            )?
            .get(0))
    })?;
    Ok(n.max(0) as u64)
}
