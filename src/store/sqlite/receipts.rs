//! Receipts in SQLite: the statements behind [`crate::store::receipts`] and the funnel.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{SqliteStore, ms, other, ts};
use crate::receipt::{Applied, Funnel, FunnelBy, Receipt};
use crate::store::StoreError;
use crate::store::receipts::{self, DeliveryChange, MessageFacts, ReceiptTx, Unmatched};

struct Tx<'a, 'c>(&'a Transaction<'c>);

const FACTS: &str =
    "SELECT m.id, m.campaign_id, c.name, m.recipient, m.occurrence, m.address, q.state
     FROM messages m JOIN campaigns c ON c.id = m.campaign_id JOIN queue q ON q.message_id = m.id";

fn facts(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageFacts> {
    Ok(MessageFacts {
        id: r.get(0)?,
        campaign_id: r.get(1)?,
        campaign: r.get(2)?,
        recipient: r.get(3)?,
        occurrence: r.get(4)?,
        address: r.get(5)?,
        state: r.get(6)?,
    })
}

impl ReceiptTx for Tx<'_, '_> {
    type Error = rusqlite::Error;

    fn insert_receipt(
        &mut self,
        r: &Receipt,
        message_id: Option<i64>,
        applied: bool,
        now: Timestamp,
    ) -> rusqlite::Result<Option<i64>> {
        let effect = serde_json::to_string(&r.effect).unwrap_or_else(|_| "{}".into());
        let n = self.0.prepare_cached(
            "INSERT INTO receipts (source, dedupe, event, provider_id, reference, address, code, detail, occurred_at, received_at, effect, raw, message_id, applied)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT (source, dedupe) DO NOTHING",
        )?
        .execute(params![
            r.source.as_str(),
            r.dedupe,
            r.event.as_str(),
            r.target.provider_id,
            r.target.reference.as_ref().map(|x| x.to_string()),
            r.target.address,
            r.code,
            r.detail,
            ms(r.occurred_at),
            ms(now),
            effect,
            r.raw,
            message_id,
            applied,
        ])?;
        Ok((n > 0).then(|| self.0.last_insert_rowid()))
    }

    fn message_by_id(&mut self, id: i64) -> rusqlite::Result<Option<MessageFacts>> {
        self.0
            .prepare_cached(&format!("{FACTS} WHERE m.id = ?1"))?
            .query_row([id], facts)
            .optional()
    }

    fn message_by_provider_id(&mut self, id: &str) -> rusqlite::Result<Option<MessageFacts>> {
        self.0
            .prepare_cached(&format!(
                "{FACTS} WHERE q.message_id = (SELECT message_id FROM queue WHERE provider_id = ?1 LIMIT 1)"
            ))?
            .query_row([id], facts)
            .optional()
    }

    fn latest_message(
        &mut self,
        campaign: &str,
        recipient: &str,
    ) -> rusqlite::Result<Option<MessageFacts>> {
        self.0
            .prepare_cached(&format!(
                "{FACTS} WHERE c.name = ?1 AND m.recipient = ?2 ORDER BY m.occurrence DESC LIMIT 1"
            ))?
            .query_row([campaign, recipient], facts)
            .optional()
    }

    fn delivery_rank(&mut self, message_id: i64) -> rusqlite::Result<Option<u8>> {
        self.0
            .prepare_cached("SELECT rank FROM delivery WHERE message_id = ?1")?
            .query_row([message_id], |r| r.get(0))
            .optional()
    }

    fn write_delivery(&mut self, c: &DeliveryChange<'_>) -> rusqlite::Result<()> {
        // The column name comes from a closed list in store::receipts, never from input.
        let set_at = c
            .column
            .map(|col| format!(", {col} = COALESCE({col}, ?6)"))
            .unwrap_or_default();
        let insert_at = c.column.map(|col| format!(", {col}")).unwrap_or_default();
        let insert_val = if c.column.is_some() { ", ?6" } else { "" };
        let sql = format!(
            "INSERT INTO delivery (message_id, campaign_id, status, rank, code, soft_bounces, updated_at{insert_at})
             VALUES (?1, ?2, COALESCE(?3, 'none'), COALESCE(?4, 0), ?5, ?7, ?8{insert_val})
             ON CONFLICT (message_id) DO UPDATE SET
               status = COALESCE(?3, status), rank = COALESCE(?4, rank), code = COALESCE(?5, code),
               soft_bounces = soft_bounces + ?7, updated_at = ?8{set_at}"
        );
        self.0.prepare_cached(&sql)?.execute(params![
            c.message_id,
            c.campaign_id,
            c.status.map(|s| s.0),
            c.status.map(|s| s.1),
            c.code,
            ms(c.at),
            i64::from(c.soft_bounce),
            ms(c.now),
        ])?;
        Ok(())
    }

    fn set_matched(
        &mut self,
        receipt_id: i64,
        message_id: Option<i64>,
        applied: bool,
    ) -> rusqlite::Result<()> {
        self.0
            .prepare_cached("UPDATE receipts SET message_id = ?2, applied = ?3 WHERE id = ?1")?
            .execute(params![receipt_id, message_id, applied])?;
        Ok(())
    }

    fn suppress(
        &mut self,
        address: &str,
        reason: &str,
        source: &str,
        now: Timestamp,
    ) -> rusqlite::Result<bool> {
        let n = self.0.prepare_cached(
            "INSERT INTO suppressions (address, reason, source, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (address) DO NOTHING",
        )?
        .execute(params![address, reason, source, ms(now)])?;
        Ok(n > 0)
    }

    fn unsuppress(&mut self, address: &str, source: &str) -> rusqlite::Result<bool> {
        let n = self
            .0
            .prepare_cached("DELETE FROM suppressions WHERE address = ?1 AND source = ?2")?
            .execute([address, source])?;
        Ok(n > 0)
    }

    fn resend(&mut self, message_id: i64, due_at: Timestamp, note: &str) -> rusqlite::Result<bool> {
        let n = self.0.prepare_cached(
            "UPDATE queue SET state = 'pending', due_at = ?2, last_error = ?3, lease_owner = NULL, lease_until = NULL
             WHERE message_id = ?1 AND state = 'sent'",
        )?
        .execute(params![message_id, ms(due_at), note])?;
        if n > 0 {
            self.0
                .prepare_cached("DELETE FROM delivery WHERE message_id = ?1")?
                .execute([message_id])?;
        }
        Ok(n > 0)
    }

    fn unmatched_since(&mut self, since: Timestamp) -> rusqlite::Result<Vec<Unmatched>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, source, provider_id, reference, event, code, occurred_at, effect FROM receipts
             WHERE applied = 0 AND received_at >= ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([ms(since)], |r| {
            Ok(Unmatched {
                id: r.get(0)?,
                source: r.get(1)?,
                provider_id: r.get(2)?,
                reference: r.get(3)?,
                event: r.get(4)?,
                code: r.get(5)?,
                occurred_at: ts(r.get(6)?),
                effect: r.get(7)?,
            })
        })?;
        rows.collect()
    }

    fn follow_up_rules(&mut self) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT rules FROM campaigns WHERE status = 'active' AND rules LIKE '%\"follows\"%'",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect()
    }

    fn bump_gate(&mut self) -> rusqlite::Result<()> {
        self.0
            .prepare_cached("UPDATE control SET value = value + 1 WHERE name = 'gate'")?
            .execute([])?;
        Ok(())
    }
}

impl SqliteStore {
    pub(super) fn record_receipts_in(
        &self,
        batch: &[Receipt],
        now: Timestamp,
    ) -> Result<Vec<Applied>, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(other)?;
        let out = receipts::apply_all(&mut Tx(&tx), batch, now).map_err(other)?;
        tx.commit().map_err(other)?;
        Ok(out)
    }

    pub(super) fn match_receipts_in(
        &self,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(other)?;
        let n = receipts::match_unmatched(&mut Tx(&tx), since, now).map_err(other)?;
        tx.commit().map_err(other)?;
        Ok(n)
    }

    pub(super) fn funnel_in(
        &self,
        campaign: Option<&str>,
        by: FunnelBy,
    ) -> Result<Vec<Funnel>, StoreError> {
        let conn = self.conn()?;
        if let Some(name) = campaign {
            super::require_campaign(&conn, name)?;
        }
        let (group, join) = match by {
            FunnelBy::Campaign => ("NULL", ""),
            FunnelBy::Locale => (
                "COALESCE(m.locale, '')",
                "JOIN messages m ON m.id = q.message_id",
            ),
            FunnelBy::Zone => ("m.zone", "JOIN messages m ON m.id = q.message_id"),
            FunnelBy::Variant => (
                "COALESCE(json_extract(m.content, '$.variant'), '')",
                "JOIN messages m ON m.id = q.message_id",
            ),
        };
        let sql = format!(
            "SELECT c.name, {group},
                    SUM(q.state <> 'cancelled'), SUM(q.state = 'sent'),
                    SUM(d.delivered_at IS NOT NULL OR d.read_at IS NOT NULL), SUM(d.read_at IS NOT NULL),
                    SUM(q.state = 'failed' OR d.failed_at IS NOT NULL),
                    SUM(q.state <> 'failed' AND d.failed_at IS NOT NULL), SUM(d.bounced_at IS NOT NULL),
                    SUM(d.opted_out_at IS NOT NULL)
             FROM queue q JOIN campaigns c ON c.id = q.campaign_id {join}
             LEFT JOIN delivery d ON d.message_id = q.message_id
             WHERE (?1 IS NULL OR c.name = ?1)
             GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let mut stmt = conn.prepare(&sql).map_err(other)?;
        let rows = stmt
            .query_map([campaign], |r| {
                let n = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0) as u64);
                Ok(Funnel {
                    campaign: r.get(0)?,
                    group: r.get(1)?,
                    planned: n(2)?,
                    sent: n(3)?,
                    delivered: n(4)?,
                    read: n(5)?,
                    failed: n(6)?,
                    undelivered: n(7)?,
                    bounced: n(8)?,
                    opted_out: n(9)?,
                })
            })
            .map_err(other)?;
        rows.collect::<Result<_, _>>().map_err(other)
    }
}
