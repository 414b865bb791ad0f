//! Follow-ups in SQLite: a follow-up campaign's plan stored as drafts, the statements behind
//! [`crate::store::follow_ups`], and the parent facts dispatch and preview read.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{SqliteStore, ms, other, ts};
use crate::follow_up::ParentFacts;
use crate::store::follow_ups::{
    self, FollowUpCampaign, FollowUpTx, Release, ReleaseStats, Undecided,
};
use crate::store::{CampaignRecord, FollowUpProgress, PlanSource, PlanStats, State, StoreError};

/// A parent message's facts: the columns every query below selects first, in this order.
const PARENT: &str = "pm.recipient, pm.occurrence, pq.state, pq.updated_at, dl.delivered_at, dl.read_at, COALESCE(dl.failed_at, dl.bounced_at)";
const PARENT_JOINS: &str = "messages pm JOIN queue pq ON pq.message_id = pm.id LEFT JOIN delivery dl ON dl.message_id = pm.id";

fn parent(r: &rusqlite::Row<'_>) -> rusqlite::Result<ParentFacts> {
    let opt = |i: usize| -> rusqlite::Result<Option<Timestamp>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(ts))
    };
    Ok(ParentFacts {
        recipient: r.get(0)?,
        occurrence: r.get(1)?,
        state: State::parse(&r.get::<_, String>(2)?).unwrap_or(State::Pending),
        settled_at: ts(r.get(3)?),
        delivered_at: opt(4)?,
        read_at: opt(5)?,
        failed_at: opt(6)?,
    })
}

struct Tx<'a, 'c>(&'a Transaction<'c>);

impl FollowUpTx for Tx<'_, '_> {
    type Error = StoreError;

    fn follow_up_campaigns(&mut self) -> Result<Vec<FollowUpCampaign>, StoreError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT id, name, rules FROM campaigns WHERE status = 'active' AND rules LIKE '%\"follows\"%'")
            .map_err(other)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(FollowUpCampaign {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    rules: r.get(2)?,
                })
            })
            .map_err(other)?;
        rows.collect::<Result<_, _>>().map_err(other)
    }

    fn campaign_id(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        self.0
            .query_row("SELECT id FROM campaigns WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(other)
    }

    fn undecided(
        &mut self,
        follow_up: i64,
        parent_id: i64,
        ripe: Timestamp,
        early: &'static str,
    ) -> Result<Vec<Undecided>, StoreError> {
        let sql = format!(
            "SELECT {PARENT}, d.zone, d.skipped, fm.id FROM drafts d
               JOIN messages pm ON pm.campaign_id = ?2 AND pm.recipient = d.recipient
               JOIN queue pq ON pq.message_id = pm.id LEFT JOIN delivery dl ON dl.message_id = pm.id
               LEFT JOIN messages fm ON fm.campaign_id = ?1 AND fm.recipient = d.recipient AND fm.occurrence = pm.occurrence
               LEFT JOIN queue fq ON fq.message_id = fm.id
             WHERE d.campaign_id = ?1 AND pq.state <> 'pending' AND pq.state <> 'sending'
               AND (pq.state <> 'sent' OR pq.updated_at <= ?3 OR {early})
               AND (fm.id IS NULL OR (fq.state = 'cancelled' AND fq.last_error LIKE 'not needed:%' AND fq.updated_at < pq.updated_at))"
        );
        let mut stmt = self.0.prepare_cached(&sql).map_err(other)?;
        let rows = stmt
            .query_map(params![follow_up, parent_id, ms(ripe)], |r| {
                Ok(Undecided {
                    parent: parent(r)?,
                    zone: r.get(7)?,
                    skipped: r.get(8)?,
                    existing: r.get(9)?,
                })
            })
            .map_err(other)?;
        rows.collect::<Result<_, _>>().map_err(other)
    }

    fn insert(&mut self, r: &Release<'_>, now: Timestamp) -> Result<bool, StoreError> {
        if let Some(id) = r.existing {
            let n = self
                .0
                .prepare_cached("UPDATE queue SET state = ?2, due_at = ?3, planned_at = ?3, updated_at = ?4, last_error = ?5 WHERE message_id = ?1 AND state = 'cancelled' AND last_error LIKE 'not needed:%'")
                .map_err(other)?
                .execute(params![id, r.state.as_str(), ms(r.due), ms(now), r.note])
                .map_err(other)?;
            if n > 0 {
                self.0
                    .prepare_cached("UPDATE messages SET reasons = ?2, address = d.address, zone = d.zone, locale = d.locale, content = d.content, vars = d.vars, generation = d.generation FROM drafts d WHERE messages.id = ?1 AND d.campaign_id = messages.campaign_id AND d.recipient = messages.recipient")
                    .map_err(other)?
                    .execute(params![id, r.reasons])
                    .map_err(other)?;
            }
            return Ok(n > 0);
        }
        let n = self
            .0
            .prepare_cached(
                "INSERT INTO messages (campaign_id, recipient, occurrence, address, zone, locale, reasons, content, vars, generation)
                 SELECT campaign_id, recipient, ?3, address, zone, locale, ?4, content, vars, generation
                 FROM drafts WHERE campaign_id = ?1 AND recipient = ?2
                 ON CONFLICT (campaign_id, recipient, occurrence) DO NOTHING",
            )
            .map_err(other)?
            .execute(params![r.follow_up, r.recipient, r.occurrence, r.reasons])
            .map_err(other)?;
        if n == 0 {
            return Ok(false);
        }
        let id = self.0.last_insert_rowid();
        self.0
            .prepare_cached("INSERT INTO queue (message_id, campaign_id, state, due_at, planned_at, updated_at, last_error) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)")
            .map_err(other)?
            .execute(params![id, r.follow_up, r.state.as_str(), ms(r.due), ms(now), r.note])
            .map_err(other)?;
        Ok(true)
    }

    fn bump_gate(&mut self) -> Result<(), StoreError> {
        super::bump_gate(self.0)
    }
}

impl SqliteStore {
    /// `save_plan` of a follow-up campaign: its rendered messages become drafts (one per
    /// recipient); pending follow-up messages take the new content; those of recipients no
    /// longer planned are cancelled as a re-plan cancels any (`cancelled_by = 'plan'`).
    pub(super) fn save_drafts_in(
        &self,
        conn: &mut rusqlite::Connection,
        campaign: &CampaignRecord,
        messages: &mut dyn PlanSource,
    ) -> Result<PlanStats, StoreError> {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(other)?;
        let now = ms(Timestamp::now());
        let (cid, generation, _) = super::upsert_campaign(&tx, campaign, now)?;
        let mut stats = PlanStats::default();
        {
            let mut find = tx
                .prepare_cached("SELECT address IS ?3 AND zone IS ?4 AND locale IS ?5 AND content IS ?6 AND vars IS ?7 AND skipped IS ?8 FROM drafts WHERE campaign_id = ?1 AND recipient = ?2")
                .map_err(other)?;
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO drafts (campaign_id, recipient, address, zone, locale, content, vars, skipped, generation)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (campaign_id, recipient) DO UPDATE SET address = excluded.address, zone = excluded.zone,
                        locale = excluded.locale, content = excluded.content, vars = excluded.vars,
                        skipped = excluded.skipped, generation = excluded.generation",
                )
                .map_err(other)?;
            while let Some(item) = messages.next_message() {
                let m = item.map_err(StoreError::Other)?;
                if m.skipped.is_some() {
                    stats.skipped += 1;
                }
                let same: Option<bool> = find
                    .query_row(
                        params![
                            cid,
                            m.recipient,
                            m.address,
                            m.zone,
                            m.locale,
                            m.content,
                            m.vars,
                            m.skipped
                        ],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(other)?;
                match same {
                    None => stats.inserted += 1,
                    Some(true) => stats.unchanged += 1,
                    Some(false) => stats.updated += 1,
                }
                upsert
                    .execute(params![
                        cid,
                        m.recipient,
                        m.address,
                        m.zone,
                        m.locale,
                        m.content,
                        m.vars,
                        m.skipped,
                        generation
                    ])
                    .map_err(other)?;
            }
        }
        tx.execute(
            "DELETE FROM drafts WHERE campaign_id = ?1 AND generation < ?2",
            params![cid, generation],
        )
        .map_err(other)?;
        // Released and not sent yet: the new content, or cancelled when no longer planned.
        tx.execute(
            "UPDATE messages SET address = d.address, zone = d.zone, locale = d.locale, content = d.content, vars = d.vars, generation = d.generation
             FROM drafts d
             WHERE messages.campaign_id = ?1 AND d.campaign_id = ?1 AND d.recipient = messages.recipient
               AND messages.id IN (SELECT message_id FROM queue WHERE campaign_id = ?1 AND state = 'pending')",
            [cid],
        )
        .map_err(other)?;
        stats.cancelled = tx
            .execute(
                "UPDATE queue SET state = 'cancelled', cancelled_by = 'plan', last_error = 'no longer planned (removed from the audience or the schedule)', updated_at = ?2
                 WHERE campaign_id = ?1 AND state = 'pending'
                   AND message_id IN (SELECT m.id FROM messages m WHERE m.campaign_id = ?1
                       AND NOT EXISTS (SELECT 1 FROM drafts d WHERE d.campaign_id = ?1 AND d.recipient = m.recipient))",
                params![cid, now],
            )
            .map_err(other)? as u64;
        tx.commit().map_err(other)?;
        Ok(stats)
    }

    pub(super) fn release_follow_ups_in(&self, now: Timestamp) -> Result<ReleaseStats, StoreError> {
        let mut conn = self.conn()?;
        // Cheap when there is nothing to do: no write lock unless a follow-up exists.
        let any: bool = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM drafts)", [], |r| r.get(0))
            .map_err(other)?;
        if !any {
            return Ok(ReleaseStats::default());
        }
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(other)?;
        let stats = follow_ups::release_all(&mut Tx(&tx), now)?;
        tx.commit().map_err(other)?;
        Ok(stats)
    }

    pub(super) fn parent_facts_in(
        &self,
        parent: &str,
        recipients: Option<&[&str]>,
    ) -> Result<Vec<ParentFacts>, StoreError> {
        let conn = self.conn()?;
        let base = format!(
            "SELECT {PARENT} FROM {PARENT_JOINS} WHERE pm.campaign_id = (SELECT id FROM campaigns WHERE name = ?1)"
        );
        let rows = match recipients {
            None => {
                let mut stmt = conn.prepare_cached(&base).map_err(other)?;
                stmt.query_map([parent], self::parent)
                    .map_err(other)?
                    .collect::<Result<Vec<_>, _>>()
            }
            Some(list) => {
                let sql = format!("{base} AND pm.recipient IN (SELECT value FROM json_each(?2))");
                let list = serde_json::to_string(list).map_err(other)?;
                let mut stmt = conn.prepare_cached(&sql).map_err(other)?;
                stmt.query_map(params![parent, list], self::parent)
                    .map_err(other)?
                    .collect::<Result<Vec<_>, _>>()
            }
        };
        rows.map_err(other)
    }

    pub(super) fn follow_up_progress_in(
        &self,
        campaign: &str,
        parent: &str,
    ) -> Result<FollowUpProgress, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            "SELECT (SELECT COUNT(*) FROM drafts WHERE campaign_id = f.id),
                    (SELECT COUNT(*) FROM drafts d JOIN messages pm ON pm.campaign_id = (SELECT id FROM campaigns WHERE name = ?2) AND pm.recipient = d.recipient
                      WHERE d.campaign_id = f.id
                        AND NOT EXISTS (SELECT 1 FROM messages fm WHERE fm.campaign_id = f.id AND fm.recipient = d.recipient AND fm.occurrence = pm.occurrence)),
                    (SELECT COUNT(*) FROM queue q WHERE q.campaign_id = f.id AND q.state = 'cancelled' AND q.last_error LIKE 'not needed:%')
             FROM campaigns f WHERE f.name = ?1",
            params![campaign, parent],
            |r| {
                Ok(FollowUpProgress {
                    drafts: r.get::<_, i64>(0)? as u64,
                    waiting: r.get::<_, i64>(1)? as u64,
                    not_needed: r.get::<_, i64>(2)? as u64,
                })
            },
        )
        .optional()
        .map_err(other)
        .map(Option::unwrap_or_default)
    }
}
