//! Claims, outcomes and leases, on the database's clock; and the fleet's heartbeats.
//!
//! A lease's end is `now()` + (lease_until − lease_now) from the worker's request, and every
//! "has it expired" is judged against `now()`: the workers' clocks only measure durations, so
//! two workers whose clocks disagree by minutes still agree on who holds what.

use std::collections::{BTreeMap, HashMap, HashSet};

use ::postgres::Transaction;
use jiff::{SignedDuration, Timestamp};

use super::conn::Replay;
use super::{CLAIM_LOCK, PostgresStore, millis, ramp, to_ms};
use crate::message::Content;
use crate::store::outcome::{MAX_LEASE_LOSSES, RecordedOutcome, gave_up, lease_lost};
use crate::store::{
    ChannelFleet, ClaimRequest, Claimed, Completion, FleetView, Outcome, StoreError, message_key,
};

/// The claim's filter for frequency caps across runs (see the SQLite store): a message of a
/// capped campaign is not taken while another run holds one to the same (channel, address)
/// under a live lease. `owner` is the parameter of the claiming owner (`$4`).
fn not_held_by_another(owner: &str) -> String {
    format!(
        "(NOT c.capped OR NOT EXISTS (
        SELECT 1 FROM queue h JOIN messages hm ON hm.id = h.message_id JOIN campaigns hc ON hc.id = h.campaign_id
        WHERE h.state = 'sending' AND h.lease_owner <> {owner} AND h.lease_until >= now() AND hc.channel = c.channel
          AND hm.address = (SELECT address FROM messages WHERE id = q.message_id)))"
    )
}

/// A leased message as the transaction returns it, parsed after the commit.
pub(super) struct Leased {
    id: i64,
    campaign: String,
    channel: String,
    recipient: String,
    occurrence: i64,
    address: String,
    zone: String,
    locale: Option<String>,
    content: String,
    vars: String,
    planned_at: Timestamp,
    due_at: Timestamp,
    attempts: i64,
}

/// Claims inside `tx` (see `Store::claim`): the due pending messages first, most due first,
/// then messages whose lease expired.
pub(super) fn claim_in(
    tx: &mut Transaction<'_>,
    req: &ClaimRequest<'_>,
) -> Result<Vec<Leased>, ::postgres::Error> {
    let now = to_ms(req.now);
    let lease_ms = millis(req.lease_until.duration_since(req.lease_now));
    let limit = i64::try_from(req.limit).unwrap_or(i64::MAX);
    let (owner, campaign) = (req.owner, req.campaign);
    // Claims of capped campaigns are serialised, so two cannot both take one address; other
    // claims only skip each other's rows.
    let capped: bool = tx
        .query_one(
            "SELECT EXISTS(SELECT 1 FROM campaigns WHERE capped AND status = 'active')",
            &[],
        )?
        .get(0);
    if capped {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK])?;
    }
    // Ramped channels take no more than their ramp day has left (postgres/ramp.rs).
    let limited = ramp::limits(tx, req)?;
    let filter = format!(
        "q.state = 'pending' AND q.due_at <= $1 AND c.status = 'active' AND ($3::text IS NULL OR c.name = $3)
                  AND {}",
        not_held_by_another("$4")
    );
    let update = "UPDATE queue SET state = 'sending', lease_owner = $4, lease_until = now() + $5::bigint * interval '1 millisecond',
                updated_at = $1, started_by = NULL
             FROM picked WHERE queue.message_id = picked.message_id
             RETURNING queue.message_id, queue.due_at";
    let due = if limited.is_empty() {
        tx.query(
            &format!(
                "WITH picked AS (
                SELECT q.message_id FROM queue q JOIN campaigns c ON c.id = q.campaign_id
                WHERE {filter}
                ORDER BY q.due_at LIMIT $2 FOR UPDATE OF q SKIP LOCKED)
             {update}"
            ),
            &[&now, &limit, &campaign, &owner, &lease_ms],
        )?
    } else {
        let (all, open, left) = ramp::picked_params(&limited);
        let names: Vec<&str> = all.iter().map(String::as_str).collect();
        let others = ramp::others_than(tx, &names, campaign)?;
        tx.query(
            &format!("WITH {} {update}", ramp::picked(&filter)),
            &[
                &now, &limit, &campaign, &owner, &lease_ms, &all, &open, &left, &others,
            ],
        )?
    };
    let mut ids: Vec<(Timestamp, i64)> = due.iter().map(|r| (r.get(1), r.get(0))).collect();
    ids.sort_unstable();
    let mut ids: Vec<i64> = ids.into_iter().map(|(_, id)| id).collect();
    // A cancelled campaign's messages that a dead run left `sending` are cancelled once
    // their lease expired.
    tx.execute(
        "UPDATE queue SET state = 'cancelled', last_error = 'campaign cancelled (the run holding it had died)', lease_owner = NULL, lease_until = NULL, updated_at = $1
         WHERE state = 'sending' AND lease_until < now()
           AND campaign_id IN (SELECT id FROM campaigns WHERE status = 'cancelled')",
        &[&now],
    )?;
    if ids.len() < req.limit {
        let left = ramp::left_after(tx, &limited, &ids)?;
        take_over(tx, req, &mut ids, left)?;
    }
    load(tx, &ids)
}

/// Takes over messages whose lease expired (their run crashed or was killed), as the SQLite
/// store does: a started send counts as an attempt of unknown outcome, and a message whose
/// runs keep dying fails after `MAX_LEASE_LOSSES`. A ramped channel takes at most what its
/// day has left (`budget`).
fn take_over(
    tx: &mut Transaction<'_>,
    req: &ClaimRequest<'_>,
    ids: &mut Vec<i64>,
    mut budget: HashMap<String, u64>,
) -> Result<(), ::postgres::Error> {
    let now = to_ms(req.now);
    let lease_ms = millis(req.lease_until.duration_since(req.lease_now));
    let left = i64::try_from(req.limit - ids.len()).unwrap_or(i64::MAX);
    let (owner, campaign) = (req.owner, req.campaign);
    let stale = tx.query(
        &format!(
            "SELECT q.message_id, COALESCE(q.lease_owner, '?'), q.updated_at, q.started_by IS NOT NULL AND q.started_by = q.lease_owner, c.channel
             FROM queue q JOIN campaigns c ON c.id = q.campaign_id
             WHERE q.state = 'sending' AND q.lease_until < now() AND c.status = 'active' AND ($2::text IS NULL OR c.name = $2)
               AND {}
             ORDER BY q.due_at LIMIT $1 FOR UPDATE OF q SKIP LOCKED",
            not_held_by_another("$3")
        ),
        &[&left, &campaign, &owner],
    )?;
    for row in stale {
        let (id, holder, claimed_at, was_started): (i64, String, Timestamp, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let channel: String = row.get(4);
        if budget.get(&channel) == Some(&0) {
            continue;
        }
        if was_started {
            let error = lease_lost(&holder);
            let r = tx.query_one(
                "UPDATE queue SET attempts = attempts + 1, lease_losses = lease_losses + 1, last_error = $2 WHERE message_id = $1 RETURNING attempts, lease_losses",
                &[&id, &error],
            )?;
            let (attempts, losses): (i64, i64) = (r.get(0), r.get(1));
            tx.execute(
                "INSERT INTO attempts (message_id, attempt, started_at, finished_at, outcome, provider_id, code, error) VALUES ($1, $2, $3, $4, 'lease_expired', NULL, 'lease_expired', $5)",
                &[&id, &attempts, &claimed_at, &now, &error],
            )?;
            if losses >= MAX_LEASE_LOSSES {
                let reason = gave_up(losses, &holder);
                tx.execute(
                    "UPDATE queue SET state = 'failed', lease_owner = NULL, lease_until = NULL, started_by = NULL, updated_at = $2, last_error = $3 WHERE message_id = $1",
                    &[&id, &now, &reason],
                )?;
                continue;
            }
        }
        tx.execute(
            "UPDATE queue SET state = 'sending', lease_owner = $2, lease_until = now() + $3::bigint * interval '1 millisecond', updated_at = $4, started_by = NULL WHERE message_id = $1",
            &[&id, &owner, &lease_ms, &now],
        )?;
        if let Some(n) = budget.get_mut(&channel) {
            *n -= 1;
        }
        ids.push(id);
    }
    Ok(())
}

/// The leased messages' fields, in the order of `ids`.
fn load(tx: &mut Transaction<'_>, ids: &[i64]) -> Result<Vec<Leased>, ::postgres::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx.query(
        "SELECT m.id, c.name, c.channel, m.recipient, m.occurrence, m.address, m.zone, m.locale, m.content, m.vars,
                q.planned_at, q.due_at, q.attempts
         FROM messages m JOIN campaigns c ON c.id = m.campaign_id JOIN queue q ON q.message_id = m.id
         WHERE m.id = ANY($1)",
        &[&ids],
    )?;
    let mut by_id: HashMap<i64, Leased> = rows
        .into_iter()
        .map(|r| {
            let l = Leased {
                id: r.get(0),
                campaign: r.get(1),
                channel: r.get(2),
                recipient: r.get(3),
                occurrence: r.get(4),
                address: r.get(5),
                zone: r.get(6),
                locale: r.get(7),
                content: r.get(8),
                vars: r.get(9),
                planned_at: r.get(10),
                due_at: r.get(11),
                attempts: r.get(12),
            };
            (l.id, l)
        })
        .collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// The claimed messages, their JSON parsed (after the commit: a row that does not parse is
/// a bug or a hand-edited database, not a reason to roll the claim back).
pub(super) fn load_claimed(rows: Vec<Leased>) -> Result<Vec<Claimed>, StoreError> {
    rows.into_iter()
        .map(|l| {
            let bad = |what: &str, e: serde_json::Error| {
                StoreError::Other(format!(
                    "the stored {what} of message {} ({}/{}) is not valid JSON: {e}",
                    l.id, l.campaign, l.recipient
                ))
            };
            let content: Content =
                serde_json::from_str(&l.content).map_err(|e| bad("content", e))?;
            let vars = serde_json::value::RawValue::from_string(l.vars.clone())
                .map_err(|e| bad("variables", e))?;
            let occurrence = u32::try_from(l.occurrence).unwrap_or(u32::MAX);
            Ok(Claimed {
                id: l.id,
                key: message_key(&l.campaign, &l.recipient, occurrence),
                campaign: l.campaign,
                channel: l.channel,
                recipient: l.recipient,
                occurrence,
                address: l.address,
                zone: l.zone,
                locale: l.locale,
                content,
                vars,
                planned_at: l.planned_at,
                due_at: l.due_at,
                attempts: u32::try_from(l.attempts).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// Records outcomes inside `tx` for the messages `owner` still holds (locked, so that no
/// takeover runs meanwhile); returns how many. Idempotent: once recorded, a message is no
/// longer held, so a repeat after a lost answer records nothing.
pub(super) fn complete_in(
    tx: &mut Transaction<'_>,
    owner: &str,
    completions: &[Completion],
) -> Result<usize, ::postgres::Error> {
    if completions.is_empty() {
        return Ok(0);
    }
    let all: Vec<i64> = completions.iter().map(|c| c.id).collect();
    let held: HashSet<i64> = tx
        .query(
            "SELECT message_id FROM queue WHERE message_id = ANY($1) AND state = 'sending' AND lease_owner = $2 FOR UPDATE",
            &[&all, &owner],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (mine, started) = crate::store::outcome::split(completions, &held);
    if !started.is_empty() {
        tx.execute(
            "UPDATE queue SET started_by = $2 WHERE message_id = ANY($1)",
            &[&started, &owner],
        )?;
    }
    record_attempts(tx, &mine)?;
    let (sent, rest): (Vec<&Completion>, Vec<&Completion>) = mine
        .iter()
        .partition(|c| matches!(c.outcome, Outcome::Sent { .. }));
    if !sent.is_empty() {
        let ids: Vec<i64> = sent.iter().map(|c| c.id).collect();
        let attempt: Vec<i64> = sent.iter().map(|c| i64::from(c.attempt)).collect();
        let provider: Vec<Option<&str>> = sent
            .iter()
            .map(|c| RecordedOutcome::of(&c.outcome).provider)
            .collect();
        let finished: Vec<Timestamp> = sent.iter().map(|c| to_ms(c.finished_at)).collect();
        tx.execute(
            "UPDATE queue SET state = 'sent', last_error = NULL, lease_owner = NULL, lease_until = NULL,
                attempts = u.attempt, provider_id = COALESCE(u.provider, queue.provider_id), updated_at = u.finished
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::timestamptz[]) AS u(id, attempt, provider, finished)
             WHERE queue.message_id = u.id",
            &[&ids, &attempt, &provider, &finished],
        )?;
        tx.execute(
            "INSERT INTO sends (at, channel, address)
             SELECT u.finished, c.channel, m.address
             FROM UNNEST($1::bigint[], $2::timestamptz[]) AS u(id, finished)
                JOIN messages m ON m.id = u.id JOIN campaigns c ON c.id = m.campaign_id",
            &[&ids, &finished],
        )?;
    }
    if !rest.is_empty() {
        let ids: Vec<i64> = rest.iter().map(|c| c.id).collect();
        let w: Vec<RecordedOutcome<'_>> = rest
            .iter()
            .map(|c| RecordedOutcome::of(&c.outcome))
            .collect();
        let state: Vec<&str> = w.iter().map(|w| w.state.as_str()).collect();
        let due: Vec<Option<Timestamp>> = w.iter().map(|w| w.due.map(to_ms)).collect();
        let attempts: Vec<i64> = rest
            .iter()
            .map(|c| {
                i64::from(if c.outcome.attempted() {
                    c.attempt
                } else {
                    c.attempt.saturating_sub(1)
                })
            })
            .collect();
        let provider: Vec<Option<&str>> = w.iter().map(|w| w.provider).collect();
        let error: Vec<Option<&str>> = w.iter().map(|w| w.error).collect();
        let finished: Vec<Timestamp> = rest.iter().map(|c| to_ms(c.finished_at)).collect();
        tx.execute(
            "UPDATE queue SET state = u.state, due_at = COALESCE(u.due, queue.due_at), attempts = u.attempts,
                provider_id = COALESCE(u.provider, queue.provider_id), last_error = u.error,
                lease_owner = NULL, lease_until = NULL, updated_at = u.finished
             FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[])
                AS u(id, state, due, attempts, provider, error, finished)
             WHERE queue.message_id = u.id",
            &[&ids, &state, &due, &attempts, &provider, &error, &finished],
        )?;
    }
    for c in &mine {
        match &c.outcome {
            Outcome::Refused {
                suppress: true,
                error,
                ..
            } => {
                let added = tx.execute(
                    "INSERT INTO suppressions (address, reason, source, created_at)
                     SELECT address, $2, 'provider', $3 FROM messages WHERE id = $1
                     ON CONFLICT (address) DO NOTHING",
                    &[&c.id, error, &to_ms(c.finished_at)],
                )?;
                if added > 0 {
                    // Other runs holding messages to this address must see it before they send.
                    super::bump_gate(tx)?;
                }
            }
            Outcome::Deferred { reasons, .. } if !reasons.is_empty() => {
                tx.execute(
                    "UPDATE messages SET reasons = $2 WHERE id = $1",
                    &[&c.id, reasons],
                )?;
            }
            _ => {}
        }
    }
    Ok(mine.len())
}

/// One `attempts` row per attempted outcome, in one statement.
fn record_attempts(
    tx: &mut Transaction<'_>,
    mine: &[&Completion],
) -> Result<(), ::postgres::Error> {
    let tried: Vec<&&Completion> = mine.iter().filter(|c| c.outcome.attempted()).collect();
    if tried.is_empty() {
        return Ok(());
    }
    let w: Vec<RecordedOutcome<'_>> = tried
        .iter()
        .map(|c| RecordedOutcome::of(&c.outcome))
        .collect();
    let ids: Vec<i64> = tried.iter().map(|c| c.id).collect();
    let attempt: Vec<i64> = tried.iter().map(|c| i64::from(c.attempt)).collect();
    let started: Vec<Timestamp> = tried.iter().map(|c| to_ms(c.started_at)).collect();
    let finished: Vec<Timestamp> = tried.iter().map(|c| to_ms(c.finished_at)).collect();
    let outcome: Vec<&str> = w.iter().map(|w| w.outcome).collect();
    let provider: Vec<Option<&str>> = w.iter().map(|w| w.provider).collect();
    let code: Vec<Option<&str>> = w.iter().map(|w| w.code).collect();
    let error: Vec<Option<&str>> = w.iter().map(|w| w.error).collect();
    tx.execute(
        "INSERT INTO attempts (message_id, attempt, started_at, finished_at, outcome, provider_id, code, error)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[])",
        &[&ids, &attempt, &started, &finished, &outcome, &provider, &code, &error],
    )?;
    Ok(())
}

/// Extends `owner`'s leases to `now()` + (until − this machine's clock now).
pub(super) fn renew_leases(
    store: &PostgresStore,
    owner: &str,
    until: Timestamp,
) -> Result<u64, StoreError> {
    let lease_ms = millis(until.duration_since(Timestamp::now()));
    store.with("renewing leases", Replay::Safe, |client| {
        client.execute(
            "UPDATE queue SET lease_until = now() + $2::bigint * interval '1 millisecond' WHERE state = 'sending' AND lease_owner = $1",
            &[&owner, &lease_ms],
        )
    })
}

/// The earliest lease expiry, moved to this machine's clock: this clock's now + (expiry −
/// the database's now).
pub(super) fn next_lease_expiry(
    store: &PostgresStore,
    campaign: Option<&str>,
    except: &[&str],
) -> Result<Option<Timestamp>, StoreError> {
    let left: Option<i64> = store.with("looking up leases", Replay::Safe, |client| {
        let row = client.query_one(
            "SELECT (EXTRACT(EPOCH FROM MIN(q.lease_until) - now()) * 1000)::bigint
             FROM queue q JOIN campaigns c ON c.id = q.campaign_id
             WHERE q.state = 'sending' AND c.status = 'active' AND ($1::text IS NULL OR c.name = $1)
               AND NOT (c.channel = ANY($2))
               AND EXISTS (SELECT 1 FROM campaigns o WHERE o.status = 'active' AND ($1::text IS NULL OR o.name = $1)
                           AND NOT (o.channel = ANY($2)))",
            &[&campaign, &except],
        )?;
        Ok(row.get(0))
    })?;
    Ok(left.map(|ms| Timestamp::now() + SignedDuration::from_millis(ms)))
}

/// See `Store::worker_heartbeat`. Three steps, so that "seen since" is exact on the
/// database's clock: the announcement commits (a newcomer without `first_seen`); then
/// `first_seen` is taken in a statement after that commit; then the others are read. A
/// worker whose `last_seen` (taken before its own read) is later than this one's
/// `first_seen` read the table after this one was in it.
pub(super) fn worker_heartbeat(
    store: &PostgresStore,
    owner: &str,
    channels: &[&str],
    ttl: SignedDuration,
) -> Result<FleetView, StoreError> {
    let ttl_ms = millis(ttl);
    let list: Vec<&str> = channels.to_vec();
    let rows = store.with("announcing this worker", Replay::Safe, |client| {
        let mut tx = client.transaction()?;
        tx.execute(
            "DELETE FROM workers WHERE expires_at <= clock_timestamp() OR (owner = $1 AND NOT (channel = ANY($2)))",
            &[&owner, &list],
        )?;
        tx.execute(
            "INSERT INTO workers (owner, channel, first_seen, last_seen, expires_at)
             SELECT $1, ch, NULL, clock_timestamp(), clock_timestamp() + $3::bigint * interval '1 millisecond'
             FROM UNNEST($2::text[]) AS ch
             ON CONFLICT (owner, channel) DO UPDATE SET last_seen = excluded.last_seen, expires_at = excluded.expires_at",
            &[&owner, &list, &ttl_ms],
        )?;
        tx.commit()?;
        client.execute(
            "UPDATE workers SET first_seen = clock_timestamp() WHERE owner = $1 AND first_seen IS NULL",
            &[&owner],
        )?;
        client.query(
            "SELECT w.channel, COUNT(*),
                    COUNT(*) FILTER (WHERE w.owner <> me.owner AND (me.first_seen IS NULL OR w.last_seen <= me.first_seen))
             FROM workers w JOIN workers me ON me.owner = $1 AND me.channel = w.channel
             WHERE w.expires_at > clock_timestamp() OR w.owner = $1
             GROUP BY w.channel",
            &[&owner],
        )
    })?;
    let mut view = BTreeMap::new();
    for r in rows {
        let (channel, live, unseen): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
        view.insert(
            channel,
            ChannelFleet {
                live_workers: u32::try_from(live).unwrap_or(u32::MAX),
                seen_by_all: unseen == 0,
            },
        );
    }
    Ok(FleetView { channels: view })
}
