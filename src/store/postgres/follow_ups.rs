//! Follow-ups in PostgreSQL: the same drafts, release statements and parent facts as the
//! SQLite store (`store/sqlite/follow_ups.rs`), in PostgreSQL's types.

use ::postgres::Transaction;
use jiff::Timestamp;

use super::conn::Replay;
use super::{PostgresStore, to_ms};
use crate::follow_up::ParentFacts;
use crate::store::follow_ups::{
    self, FollowUpCampaign, FollowUpTx, Release, ReleaseStats, Undecided,
};
use crate::store::{FollowUpProgress, PlanStats, State, StoreError};

const PARENT: &str = "pm.recipient, pm.occurrence, pq.state, pq.updated_at, dl.delivered_at, dl.read_at, COALESCE(dl.failed_at, dl.bounced_at)";
const PARENT_JOINS: &str = "messages pm JOIN queue pq ON pq.message_id = pm.id LEFT JOIN delivery dl ON dl.message_id = pm.id";

fn parent(r: &::postgres::Row) -> ParentFacts {
    ParentFacts {
        recipient: r.get(0),
        occurrence: u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX),
        state: State::parse(r.get(2)).unwrap_or(State::Pending),
        settled_at: r.get(3),
        delivered_at: r.get(4),
        read_at: r.get(5),
        failed_at: r.get(6),
    }
}

/// `save_plan` of a follow-up campaign, on the rows `plan` staged in `plan_stage`: drafts
/// upserted (one per recipient), pending follow-up messages given the new content, those of
/// recipients no longer planned cancelled (`cancelled_by = 'plan'`).
pub(super) fn save_drafts(
    tx: &mut Transaction<'_>,
    cid: i64,
    generation: i64,
    now: Timestamp,
) -> Result<PlanStats, ::postgres::Error> {
    let counts = tx.query_one(
        "SELECT COUNT(*) FILTER (WHERE d.recipient IS NULL),
                COUNT(*) FILTER (WHERE d.recipient IS NOT NULL AND NOT same),
                COUNT(*) FILTER (WHERE same),
                COUNT(*) FILTER (WHERE s.skipped IS NOT NULL)
         FROM (SELECT DISTINCT ON (recipient) * FROM plan_stage ORDER BY recipient, occurrence) s
         LEFT JOIN LATERAL (SELECT d.recipient, (d.address = s.address AND d.zone = s.zone AND d.locale IS NOT DISTINCT FROM s.locale
                 AND d.content = s.content AND d.vars = s.vars AND d.skipped IS NOT DISTINCT FROM s.skipped) AS same
             FROM drafts d WHERE d.campaign_id = $1 AND d.recipient = s.recipient) d ON true",
        &[&cid],
    )?;
    let n = |i: usize| counts.get::<_, Option<i64>>(i).unwrap_or(0) as u64;
    tx.execute(
        "INSERT INTO drafts (campaign_id, recipient, address, zone, locale, content, vars, skipped, generation)
         SELECT DISTINCT ON (recipient) $1, recipient, address, zone, locale, content, vars, skipped, $2
         FROM plan_stage ORDER BY recipient, occurrence
         ON CONFLICT (campaign_id, recipient) DO UPDATE SET address = excluded.address, zone = excluded.zone,
            locale = excluded.locale, content = excluded.content, vars = excluded.vars,
            skipped = excluded.skipped, generation = excluded.generation",
        &[&cid, &generation],
    )?;
    tx.execute(
        "DELETE FROM drafts WHERE campaign_id = $1 AND generation < $2",
        &[&cid, &generation],
    )?;
    tx.execute(
        "UPDATE messages m SET address = d.address, zone = d.zone, locale = d.locale, content = d.content, vars = d.vars, generation = d.generation
         FROM drafts d, queue q
         WHERE m.campaign_id = $1 AND d.campaign_id = $1 AND d.recipient = m.recipient
           AND q.message_id = m.id AND q.state = 'pending'",
        &[&cid],
    )?;
    let cancelled = tx.execute(
        "UPDATE queue q SET state = 'cancelled', cancelled_by = 'plan', last_error = 'no longer planned (removed from the audience or the schedule)', updated_at = $2
         FROM messages m
         WHERE q.message_id = m.id AND q.campaign_id = $1 AND q.state = 'pending' AND m.campaign_id = $1
           AND NOT EXISTS (SELECT 1 FROM drafts d WHERE d.campaign_id = $1 AND d.recipient = m.recipient)",
        &[&cid, &now],
    )?;
    super::bump_gate(tx)?;
    Ok(PlanStats {
        inserted: n(0),
        updated: n(1),
        unchanged: n(2),
        kept: 0,
        skipped: n(3),
        cancelled,
    })
}

struct Tx<'a, 'c>(&'a mut Transaction<'c>);

impl FollowUpTx for Tx<'_, '_> {
    type Error = ::postgres::Error;

    fn follow_up_campaigns(&mut self) -> Result<Vec<FollowUpCampaign>, Self::Error> {
        // Locked (as a re-plan's upsert of the campaign locks it) so that a release and a
        // re-plan of the same follow-up take turns: READ COMMITTED would let the re-plan's
        // cancel miss a message the release inserted from a draft the re-plan removes.
        let rows = self.0.query(
            "SELECT id, name, rules FROM campaigns WHERE status = 'active' AND rules LIKE '%\"follows\"%' ORDER BY id FOR NO KEY UPDATE",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| FollowUpCampaign {
                id: r.get(0),
                name: r.get(1),
                rules: r.get(2),
            })
            .collect())
    }

    fn campaign_id(&mut self, name: &str) -> Result<Option<i64>, Self::Error> {
        Ok(self
            .0
            .query_opt("SELECT id FROM campaigns WHERE name = $1", &[&name])?
            .map(|r| r.get(0)))
    }

    fn undecided(
        &mut self,
        follow_up: i64,
        parent_id: i64,
        ripe: Timestamp,
        early: &'static str,
    ) -> Result<Vec<Undecided>, Self::Error> {
        let sql = format!(
            "SELECT {PARENT}, d.zone, d.skipped, fm.id FROM drafts d
               JOIN messages pm ON pm.campaign_id = $2 AND pm.recipient = d.recipient
               JOIN queue pq ON pq.message_id = pm.id LEFT JOIN delivery dl ON dl.message_id = pm.id
               LEFT JOIN messages fm ON fm.campaign_id = $1 AND fm.recipient = d.recipient AND fm.occurrence = pm.occurrence
               LEFT JOIN queue fq ON fq.message_id = fm.id
             WHERE d.campaign_id = $1 AND pq.state NOT IN ('pending', 'sending')
               AND (pq.state <> 'sent' OR pq.updated_at <= $3 OR {early})
               AND (fm.id IS NULL OR (fq.state = 'cancelled' AND fq.last_error LIKE 'not needed:%' AND fq.updated_at < pq.updated_at))"
        );
        let rows = self
            .0
            .query(&sql, &[&follow_up, &parent_id, &to_ms(ripe)])?;
        Ok(rows
            .iter()
            .map(|r| Undecided {
                parent: parent(r),
                zone: r.get(7),
                skipped: r.get(8),
                existing: r.get(9),
            })
            .collect())
    }

    fn insert(&mut self, r: &Release<'_>, now: Timestamp) -> Result<bool, Self::Error> {
        if let Some(id) = r.existing {
            let n = self.0.execute(
                "UPDATE queue SET state = $2, due_at = $3, planned_at = $3, updated_at = $4, last_error = $5 WHERE message_id = $1 AND state = 'cancelled' AND last_error LIKE 'not needed:%'",
                &[&id, &r.state.as_str(), &to_ms(r.due), &to_ms(now), &r.note],
            )?;
            if n > 0 {
                self.0.execute(
                    "UPDATE messages m SET reasons = $2, address = d.address, zone = d.zone, locale = d.locale, content = d.content, vars = d.vars, generation = d.generation
                     FROM drafts d WHERE m.id = $1 AND d.campaign_id = m.campaign_id AND d.recipient = m.recipient",
                    &[&id, &r.reasons],
                )?;
            }
            return Ok(n > 0);
        }
        let occurrence = i64::from(r.occurrence);
        let row = self.0.query_opt(
            "INSERT INTO messages (campaign_id, recipient, occurrence, address, zone, locale, reasons, content, vars, generation)
             SELECT campaign_id, recipient, $3, address, zone, locale, $4, content, vars, generation
             FROM drafts WHERE campaign_id = $1 AND recipient = $2
             ON CONFLICT (campaign_id, recipient, occurrence) DO NOTHING RETURNING id",
            &[&r.follow_up, &r.recipient, &occurrence, &r.reasons],
        )?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id: i64 = row.get(0);
        self.0.execute(
            "INSERT INTO queue (message_id, campaign_id, state, due_at, planned_at, updated_at, last_error) VALUES ($1, $2, $3, $4, $4, $5, $6)",
            &[&id, &r.follow_up, &r.state.as_str(), &to_ms(r.due), &to_ms(now), &r.note],
        )?;
        Ok(true)
    }

    fn bump_gate(&mut self) -> Result<(), Self::Error> {
        super::bump_gate(self.0)
    }
}

pub(super) fn release(store: &PostgresStore, now: Timestamp) -> Result<ReleaseStats, StoreError> {
    // Idempotent by the message's identity: a repeat after a lost commit inserts nothing more.
    store.with("releasing follow-ups", Replay::Safe, |c| {
        let any = c
            .query_one("SELECT EXISTS (SELECT 1 FROM drafts)", &[])?
            .get::<_, bool>(0);
        if !any {
            return Ok(ReleaseStats::default());
        }
        let mut tx = c.transaction()?;
        let stats = follow_ups::release_all(&mut Tx(&mut tx), now)?;
        tx.commit()?;
        Ok(stats)
    })
}

pub(super) fn parent_facts(
    store: &PostgresStore,
    name: &str,
    recipients: Option<&[&str]>,
) -> Result<Vec<ParentFacts>, StoreError> {
    let sql = format!(
        "SELECT {PARENT} FROM {PARENT_JOINS}
         WHERE pm.campaign_id = (SELECT id FROM campaigns WHERE name = $1)
           AND ($2::text[] IS NULL OR pm.recipient = ANY($2))"
    );
    let list: Option<Vec<&str>> = recipients.map(|r| r.to_vec());
    let rows = store.with("reading a parent campaign's messages", Replay::Safe, |c| {
        c.query(&sql, &[&name, &list])
    })?;
    Ok(rows.iter().map(parent).collect())
}

pub(super) fn progress(
    store: &PostgresStore,
    campaign: &str,
    parent: &str,
) -> Result<FollowUpProgress, StoreError> {
    let row = store.with("reading a follow-up's progress", Replay::Safe, |c| {
        c.query_opt(
            "SELECT (SELECT COUNT(*) FROM drafts WHERE campaign_id = f.id),
                    (SELECT COUNT(*) FROM drafts d JOIN messages pm ON pm.campaign_id = (SELECT id FROM campaigns WHERE name = $2) AND pm.recipient = d.recipient
                      WHERE d.campaign_id = f.id
                        AND NOT EXISTS (SELECT 1 FROM messages fm WHERE fm.campaign_id = f.id AND fm.recipient = d.recipient AND fm.occurrence = pm.occurrence)),
                    (SELECT COUNT(*) FROM queue q WHERE q.campaign_id = f.id AND q.state = 'cancelled' AND q.last_error LIKE 'not needed:%')
             FROM campaigns f WHERE f.name = $1",
            &[&campaign, &parent],
        )
    })?;
    Ok(row
        .map(|r| FollowUpProgress {
            drafts: r.get::<_, i64>(0) as u64,
            waiting: r.get::<_, i64>(1) as u64,
            not_needed: r.get::<_, i64>(2) as u64,
        })
        .unwrap_or_default())
}
