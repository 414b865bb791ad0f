//! Warm-up ramps on SQLite: what a ramped channel used of its ramp day, and the claim's
//! statement that takes no more of its messages than the day has left.
//!
//! A claim runs in a `BEGIN IMMEDIATE` transaction, so the counts it reads (sends of the day,
//! messages held under a live lease by any run) cannot change before it commits: two runs'
//! claims are serialised, and together they never take more than the budget.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use super::{ms, other, ts};
use crate::ramp::{ChannelRamp, Ramp, RampUsage};
use crate::store::StoreError;

/// The first send, the sends of the ramp day `now` is in and the messages held under a live
/// lease, for one channel, read together.
fn counts(
    conn: &Connection,
    channel: &str,
    ramp: &Ramp,
    now: i64,
    lease_now: i64,
) -> Result<(Option<i64>, u64, u64), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT (SELECT MIN(at) FROM sends WHERE channel = ?1),
                    (SELECT COUNT(*) FROM sends WHERE channel = ?1 AND at >= ?2 AND at < ?3),
                    (SELECT COUNT(*) FROM queue q JOIN campaigns c ON c.id = q.campaign_id
                     WHERE q.state = 'sending' AND q.lease_until >= ?4 AND c.channel = ?1)",
        )
        .map_err(other)?;
    // The day's window depends on the first send: read with the one known, again if the
    // answer knows another (a first send recorded meanwhile; inside a claim it cannot be).
    let mut first: Option<i64> = conn
        .prepare_cached("SELECT MIN(at) FROM sends WHERE channel = ?1")
        .map_err(other)?
        .query_row([channel], |r| r.get(0))
        .map_err(other)?;
    loop {
        let day = ramp.day_at(first.map(ts), ts(now));
        let (from, to) = match (day.starts, day.ends()) {
            (Some(s), Some(e)) => (ms(s), ms(e)),
            _ => (0, 0),
        };
        let (seen, sent, held): (Option<i64>, i64, i64) = stmt
            .query_row(params![channel, from, to, lease_now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(other)?;
        if seen == first {
            return Ok((first, sent.max(0) as u64, held.max(0) as u64));
        }
        first = seen;
    }
}

/// See `Store::ramp_usage`.
pub(super) fn usage(
    conn: &Connection,
    ramps: &[ChannelRamp],
    now: i64,
    lease_now: i64,
    campaign: Option<&str>,
) -> Result<Vec<RampUsage>, StoreError> {
    // In due order on `queue_due`: the first of the channel's, without reading the rest.
    let mut next = conn
        .prepare_cached(
            "SELECT q.due_at FROM queue q JOIN campaigns c ON c.id = q.campaign_id
             WHERE q.state = 'pending' AND c.status = 'active' AND c.channel = ?1 AND (?2 IS NULL OR c.name = ?2)
             ORDER BY q.due_at LIMIT 1",
        )
        .map_err(other)?;
    let mut out = Vec::with_capacity(ramps.len());
    for r in ramps {
        let (first, sent, held) = counts(conn, &r.channel, &r.ramp, now, lease_now)?;
        let next_due: Option<i64> = next
            .query_row(params![r.channel, campaign], |row| row.get(0))
            .optional()
            .map_err(other)?;
        out.push(RampUsage {
            channel: r.channel.clone(),
            first_send: first.map(ts),
            sent,
            held,
            next_due: next_due.map(ts),
        });
    }
    Ok(out)
}

/// See `Store::ramp_held_back`.
pub(super) fn held_back(
    conn: &Connection,
    channel: &str,
    before: i64,
    campaign: Option<&str>,
) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM queue q JOIN campaigns c ON c.id = q.campaign_id
             WHERE q.state = 'pending' AND q.due_at < ?2 AND c.status = 'active' AND c.channel = ?1
               AND (?3 IS NULL OR c.name = ?3)",
        )
        .map_err(other)?
        .query_row(params![channel, before, campaign], |r| r.get(0))
        .map_err(other)?;
    Ok(n.max(0) as u64)
}

/// What each ramped channel may still send in its current ramp day; channels whose ramp is
/// over are left out (nothing limits them).
pub(super) fn limits(
    conn: &Connection,
    ramps: &[ChannelRamp],
    now: i64,
    lease_now: i64,
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut out = Vec::new();
    let mut first_send = conn
        .prepare_cached("SELECT MIN(at) FROM sends WHERE channel = ?1")
        .map_err(other)?;
    for r in ramps {
        // A ramp, once over, stays over: nothing to count.
        let first: Option<i64> = first_send
            .query_row([&r.channel], |row| row.get(0))
            .map_err(other)?;
        if first.is_some()
            && r.ramp
                .budget(r.ramp.day_at(first.map(ts), ts(now)).index)
                .is_none()
        {
            continue;
        }
        let (first, sent, held) = counts(conn, &r.channel, &r.ramp, now, lease_now)?;
        let day = r.ramp.day_at(first.map(ts), ts(now));
        if let Some(left) = r.ramp.left(day.index, sent + held) {
            out.push((r.channel.clone(), left));
        }
    }
    Ok(out)
}

/// Whether an active campaign (`campaign`, if given) sends on a channel outside `channels`.
/// When none does, the claim and the look at what is due need not read past the messages
/// of those channels (a ramped channel's backlog, which a scan in due order would skip row
/// by row: 240 ms per look with 1M of them).
pub(super) fn others_than(
    conn: &Connection,
    channels: &[&str],
    campaign: Option<&str>,
) -> Result<bool, StoreError> {
    let list = serde_json::to_string(channels).map_err(other)?;
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM campaigns WHERE status = 'active' AND (?1 IS NULL OR name = ?1)
           AND channel NOT IN (SELECT value FROM json_each(?2)))",
    )
    .map_err(other)?
    .query_row(params![campaign, list], |r| r.get(0))
    .map_err(other)
}

/// The `SELECT` of due message ids for the claim's `UPDATE`, under `filter` (the claim's
/// conditions on `q` and `c`): most due first, at most `?2`, and of each limited channel
/// at most what it has left (none of one with nothing left); the other channels' only when
/// `others` (an active campaign sends on one). Parameters from `?7` on are returned to be
/// bound after the claim's six. `None`: nothing may be claimed.
pub(super) fn picked(
    filter: &str,
    limited: &[(String, u64)],
    others: bool,
) -> Option<(String, Vec<Value>)> {
    let from = "FROM queue q JOIN campaigns c ON c.id = q.campaign_id";
    if limited.is_empty() {
        return Some((
            format!("SELECT q.message_id {from} WHERE {filter} ORDER BY q.due_at LIMIT ?2"),
            Vec::new(),
        ));
    }
    let mut values = Vec::new();
    let mut arms = Vec::new();
    if others {
        let names: Vec<&str> = limited.iter().map(|(c, _)| c.as_str()).collect();
        values.push(Value::Text(
            serde_json::to_string(&names).unwrap_or_else(|_| "[]".into()),
        ));
        arms.push(format!(
            "SELECT * FROM (SELECT q.message_id AS id, q.due_at AS due {from}
            WHERE {filter} AND c.channel NOT IN (SELECT value FROM json_each(?7)) ORDER BY q.due_at LIMIT ?2)"
        ));
    }
    for (channel, left) in limited.iter().filter(|(_, left)| *left > 0) {
        let n = values.len() + 7;
        arms.push(format!(
            "SELECT * FROM (SELECT q.message_id AS id, q.due_at AS due {from}
            WHERE {filter} AND c.channel = ?{n} ORDER BY q.due_at LIMIT ?{})",
            n + 1
        ));
        values.push(Value::Text(channel.clone()));
        values.push(Value::Integer(i64::try_from(*left).unwrap_or(i64::MAX)));
    }
    if arms.is_empty() {
        return None;
    }
    let sql = format!(
        "SELECT id FROM ({}) ORDER BY due LIMIT ?2",
        arms.join("\n UNION ALL ")
    );
    Some((sql, values))
}

/// What is left to the limited channels once `taken` (campaign ids of the messages the claim
/// took) is counted, by channel.
pub(super) fn left_after(
    conn: &Connection,
    limited: &[(String, u64)],
    taken: impl Iterator<Item = i64>,
) -> Result<HashMap<String, u64>, StoreError> {
    let mut left: HashMap<String, u64> = limited.iter().cloned().collect();
    if left.is_empty() {
        return Ok(left);
    }
    let channels: HashMap<i64, String> = conn
        .prepare_cached("SELECT id, channel FROM campaigns")
        .map_err(other)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(other)?
        .collect::<Result<_, _>>()
        .map_err(other)?;
    for cid in taken {
        if let Some(n) = channels.get(&cid).and_then(|c| left.get_mut(c)) {
            *n = n.saturating_sub(1);
        }
    }
    Ok(left)
}
