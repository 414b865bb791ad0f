//! `save_plan` on PostgreSQL: the planned messages stream into a temporary staging table with
//! binary `COPY`, then a few set-based statements merge them into `messages` and `queue` by
//! the same rules as the SQLite store (docs/delivery.md), all in one transaction.

use ::postgres::binary_copy::BinaryCopyInWriter;
use ::postgres::types::Type;

use super::conn::Link;
use super::to_ms;
use crate::store::{CampaignRecord, CampaignStatus, PlanSource, PlanStats, StoreError};

/// Why a plan stopped: the store, or the plan's own source (its text is the error).
enum Stop {
    Db(::postgres::Error),
    Source(String),
}

impl From<::postgres::Error> for Stop {
    fn from(e: ::postgres::Error) -> Stop {
        Stop::Db(e)
    }
}

/// The staged rows joined to what is stored: `kind` -1 new, 1 pending or skipped (updated),
/// 2 cancelled by a re-plan (planned again unless the campaign is cancelled), 0 sent, in
/// flight or finished (kept); `same`: stored exactly as planned now (unchanged).
const MATCH: &str = "CREATE TEMP TABLE plan_match ON COMMIT DROP AS
    SELECT s.*, m.id,
        CASE WHEN m.id IS NULL THEN -1
             WHEN q.state IN ('pending', 'skipped') THEN 1
             WHEN q.state = 'cancelled' AND q.cancelled_by = 'plan' THEN 2
             ELSE 0 END AS kind,
        COALESCE(m.address = s.address AND m.zone = s.zone AND m.locale IS NOT DISTINCT FROM s.locale
            AND m.reasons = s.reasons AND m.content = s.content AND m.vars = s.vars
            AND q.state = CASE WHEN s.skipped IS NULL THEN 'pending' ELSE 'skipped' END
            AND q.due_at = s.at AND q.planned_at = s.at AND q.last_error IS NOT DISTINCT FROM s.skipped
            AND q.cancelled_by IS NULL, false) AS same
    FROM plan_stage s
    LEFT JOIN messages m ON m.campaign_id = $1 AND m.recipient = s.recipient AND m.occurrence = s.occurrence
    LEFT JOIN queue q ON q.message_id = m.id";

/// Rows a plan rewrites; `revivable` is the parameter saying whether rows a re-plan
/// cancelled may come back.
fn rewritten(revivable: &str) -> String {
    format!("((p.kind = 1 AND NOT p.same) OR (p.kind = 2 AND {revivable}))")
}

pub(super) fn save_plan(
    link: &mut Link,
    campaign: &CampaignRecord,
    messages: &mut dyn PlanSource,
) -> Result<PlanStats, StoreError> {
    let client = link.client()?;
    let result = (|| -> Result<PlanStats, Stop> {
        let mut tx = client.transaction()?;
        let stats = merge(&mut tx, campaign, messages)?;
        tx.commit()?;
        Ok(stats)
    })();
    match result {
        Ok(stats) => Ok(stats),
        Err(Stop::Source(reason)) => Err(StoreError::Other(reason)),
        Err(Stop::Db(e)) => {
            link.forget_if_closed();
            if super::conn::is_retryable(&e) {
                // The plan's source is consumed: it cannot be replayed here. Nothing was stored.
                Err(StoreError::Unavailable {
                    what: format!(
                        "lost the connection to PostgreSQL while saving the plan of {}: {}",
                        campaign.name,
                        super::describe(&e)
                    ),
                    hint: "nothing of this plan was stored; run `disparo plan` again once the server is back".into(),
                })
            } else {
                Err(link.failed("saving a plan", &e))
            }
        }
    }
}

fn merge(
    tx: &mut ::postgres::Transaction<'_>,
    campaign: &CampaignRecord,
    messages: &mut dyn PlanSource,
) -> Result<PlanStats, Stop> {
    let now = to_ms(jiff::Timestamp::now());
    let rules = serde_json::to_string(&campaign.rules)
        .map_err(|e| Stop::Source(format!("cannot store the campaign's rules: {e}")))?;
    let row = tx.query_one(
        "INSERT INTO campaigns (name, channel, rules, recurrence_start, generation, created_at, updated_at, capped)
         VALUES ($1, $2, $3, $4, 1, $5, $5, $6)
         ON CONFLICT (name) DO UPDATE SET channel = excluded.channel, rules = excluded.rules, capped = excluded.capped,
            recurrence_start = COALESCE(campaigns.recurrence_start, excluded.recurrence_start),
            generation = campaigns.generation + 1, updated_at = excluded.updated_at
         RETURNING id, generation, status",
        &[&campaign.name, &campaign.channel, &rules, &campaign.recurrence_start, &now, &!campaign.rules.caps.is_empty()],
    )?;
    let (cid, generation, status): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
    let revivable = status != CampaignStatus::Cancelled.as_str();
    tx.batch_execute(
        "CREATE TEMP TABLE plan_stage (recipient text, occurrence bigint, address text, zone text, locale text,
            reasons text, content text, vars text, at timestamptz, skipped text) ON COMMIT DROP",
    )?;
    copy_in(tx, messages)?;
    tx.batch_execute("ANALYZE plan_stage")?;
    if campaign.rules.follows.is_some() {
        return Ok(super::follow_ups::save_drafts(tx, cid, generation, now)?);
    }
    // The rows this plan may rewrite are locked first, so that no worker claims one between
    // the look at its state and the rewrite (claims skip locked rows); SQLite gets the same
    // from its single writer.
    tx.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM queue WHERE campaign_id = $1 AND state IN ('pending', 'skipped', 'cancelled') FOR UPDATE) AS locked",
        &[&cid],
    )?;
    tx.execute(MATCH, &[&cid])?;
    tx.execute(
        "UPDATE messages m SET generation = $1 FROM plan_match p
         WHERE m.id = p.id AND (p.kind = 0 OR (p.kind = 1 AND p.same) OR (p.kind = 2 AND NOT $2))",
        &[&generation, &revivable],
    )?;
    tx.execute(
        &format!(
            "UPDATE messages m SET address = p.address, zone = p.zone, locale = p.locale, reasons = p.reasons,
                content = p.content, vars = p.vars, generation = $2
             FROM plan_match p WHERE m.id = p.id AND m.campaign_id = $1 AND {}",
            rewritten("$3")
        ),
        &[&cid, &generation, &revivable],
    )?;
    tx.execute(
        &format!(
            "UPDATE queue q SET state = CASE WHEN p.skipped IS NULL THEN 'pending' ELSE 'skipped' END,
                due_at = p.at, planned_at = p.at, updated_at = $3, last_error = p.skipped, cancelled_by = NULL
             FROM plan_match p WHERE q.message_id = p.id AND q.campaign_id = $1 AND {}
               AND (q.state IN ('pending', 'skipped') OR (q.state = 'cancelled' AND q.cancelled_by = 'plan'))",
            rewritten("$2")
        ),
        &[&cid, &revivable, &now],
    )?;
    tx.execute(
        "WITH ins AS (
            INSERT INTO messages (campaign_id, recipient, occurrence, address, zone, locale, reasons, content, vars, generation)
            SELECT $1, recipient, occurrence, address, zone, locale, reasons, content, vars, $2
            FROM plan_match WHERE kind = -1
            RETURNING id, recipient, occurrence)
         INSERT INTO queue (message_id, campaign_id, state, due_at, planned_at, updated_at, last_error)
         SELECT ins.id, $1, CASE WHEN p.skipped IS NULL THEN 'pending' ELSE 'skipped' END, p.at, p.at, $3, p.skipped
         FROM ins JOIN plan_match p ON p.kind = -1 AND p.recipient = ins.recipient AND p.occurrence = ins.occurrence",
        &[&cid, &generation, &now],
    )?;
    let counts = tx.query_one(
        &format!(
            "SELECT COUNT(*) FILTER (WHERE p.kind = -1), COUNT(*) FILTER (WHERE {}),
                COUNT(*) FILTER (WHERE p.kind = 1 AND p.same), COUNT(*) FILTER (WHERE p.kind = 0 OR (p.kind = 2 AND NOT $1)),
                COUNT(*) FILTER (WHERE p.skipped IS NOT NULL)
             FROM plan_match p",
            rewritten("$1")
        ),
        &[&revivable],
    )?;
    let n = |i: usize| counts.get::<_, i64>(i) as u64;
    let cancelled = tx.execute(
        "UPDATE queue SET state = 'cancelled', cancelled_by = 'plan', last_error = 'no longer planned (removed from the audience or the schedule)', updated_at = $3
         WHERE campaign_id = $1 AND state = 'pending'
           AND message_id IN (SELECT id FROM messages WHERE campaign_id = $1 AND generation < $2)",
        &[&cid, &generation, &now],
    )?;
    // The campaign's rules may have changed: runs holding its claims re-read them.
    super::bump_gate(tx)?;
    Ok(PlanStats {
        inserted: n(0),
        updated: n(1),
        unchanged: n(2),
        kept: n(3),
        skipped: n(4),
        cancelled,
    })
}

/// Streams the plan's messages into `plan_stage` with binary COPY. A source error aborts the
/// COPY (the writer is dropped unfinished) and so the transaction.
fn copy_in(
    tx: &mut ::postgres::Transaction<'_>,
    messages: &mut dyn PlanSource,
) -> Result<(), Stop> {
    let sink = tx.copy_in(
        "COPY plan_stage (recipient, occurrence, address, zone, locale, reasons, content, vars, at, skipped) FROM STDIN BINARY",
    )?;
    let types = [
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TEXT,
    ];
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    while let Some(item) = messages.next_message() {
        let m = item.map_err(Stop::Source)?;
        let occurrence = i64::from(m.occurrence);
        let at = to_ms(m.at);
        writer.write(&[
            &m.recipient,
            &occurrence,
            &m.address,
            &m.zone,
            &m.locale,
            &m.reasons,
            &m.content,
            &m.vars,
            &at,
            &m.skipped,
        ])?;
    }
    writer.finish()?;
    Ok(())
}
