//! Receipts in PostgreSQL: the statements behind [`crate::store::receipts`] and the funnel.

use ::postgres::Transaction;
use jiff::Timestamp;

use super::conn::Replay;
use super::{PostgresStore, to_ms};
use crate::receipt::{Applied, Funnel, FunnelBy, Receipt};
use crate::store::StoreError;
use crate::store::receipts::{self, DeliveryChange, MessageFacts, ReceiptTx, Unmatched};

struct Tx<'a, 'c>(&'a mut Transaction<'c>);

const FACTS: &str =
    "SELECT m.id, m.campaign_id, c.name, m.recipient, m.occurrence, m.address, q.state
     FROM messages m JOIN campaigns c ON c.id = m.campaign_id JOIN queue q ON q.message_id = m.id";

fn facts(r: &::postgres::Row) -> MessageFacts {
    MessageFacts {
        id: r.get(0),
        campaign_id: r.get(1),
        campaign: r.get(2),
        recipient: r.get(3),
        occurrence: u32::try_from(r.get::<_, i64>(4)).unwrap_or(u32::MAX),
        address: r.get(5),
        state: r.get(6),
    }
}

impl ReceiptTx for Tx<'_, '_> {
    type Error = ::postgres::Error;

    fn insert_receipt(
        &mut self,
        r: &Receipt,
        message_id: Option<i64>,
        applied: bool,
        now: Timestamp,
    ) -> Result<Option<i64>, Self::Error> {
        let effect = serde_json::to_string(&r.effect).unwrap_or_else(|_| "{}".into());
        let reference = r.target.reference.as_ref().map(|x| x.to_string());
        let row = self.0.query_opt(
            "INSERT INTO receipts (source, dedupe, event, provider_id, reference, address, code, detail, occurred_at, received_at, effect, raw, message_id, applied)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (source, dedupe) DO NOTHING RETURNING id",
            &[
                &r.source.as_str(),
                &r.dedupe,
                &r.event.as_str(),
                &r.target.provider_id,
                &reference,
                &r.target.address,
                &r.code,
                &r.detail,
                &to_ms(r.occurred_at),
                &to_ms(now),
                &effect,
                &r.raw,
                &message_id,
                &applied,
            ],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    fn message_by_id(&mut self, id: i64) -> Result<Option<MessageFacts>, Self::Error> {
        Ok(self
            .0
            .query_opt(&format!("{FACTS} WHERE m.id = $1"), &[&id])?
            .map(|r| facts(&r)))
    }

    fn message_by_provider_id(&mut self, id: &str) -> Result<Option<MessageFacts>, Self::Error> {
        Ok(self
            .0
            .query_opt(&format!("{FACTS} WHERE q.provider_id = $1 LIMIT 1"), &[&id])?
            .map(|r| facts(&r)))
    }

    fn latest_message(
        &mut self,
        campaign: &str,
        recipient: &str,
    ) -> Result<Option<MessageFacts>, Self::Error> {
        Ok(self
            .0
            .query_opt(
                &format!("{FACTS} WHERE c.name = $1 AND m.recipient = $2 ORDER BY m.occurrence DESC LIMIT 1"),
                &[&campaign, &recipient],
            )?
            .map(|r| facts(&r)))
    }

    fn delivery_rank(&mut self, message_id: i64) -> Result<Option<u8>, Self::Error> {
        Ok(self
            .0
            .query_opt(
                "SELECT rank FROM delivery WHERE message_id = $1 FOR UPDATE",
                &[&message_id],
            )?
            .map(|r| u8::try_from(r.get::<_, i16>(0)).unwrap_or(0)))
    }

    fn write_delivery(&mut self, c: &DeliveryChange<'_>) -> Result<(), Self::Error> {
        // The column name comes from a closed list in store::receipts, never from input.
        // The instant is a parameter ($8) only when a column takes it: PostgreSQL cannot type
        // a parameter the statement never uses (a soft bounce sets no instant).
        let set_at = c
            .column
            .map(|col| format!(", {col} = COALESCE(delivery.{col}, $8)"))
            .unwrap_or_default();
        let insert_at = c.column.map(|col| format!(", {col}")).unwrap_or_default();
        let insert_val = if c.column.is_some() { ", $8" } else { "" };
        let sql = format!(
            "INSERT INTO delivery (message_id, campaign_id, status, rank, code, soft_bounces, updated_at{insert_at})
             VALUES ($1, $2, COALESCE($3::text, 'none'), COALESCE($4::smallint, 0), $5, $6, $7{insert_val})
             ON CONFLICT (message_id) DO UPDATE SET
               status = COALESCE($3::text, delivery.status), rank = COALESCE($4::smallint, delivery.rank),
               code = COALESCE($5, delivery.code), soft_bounces = delivery.soft_bounces + $6, updated_at = $7{set_at}"
        );
        let status = c.status.map(|s| s.0);
        let rank = c.status.map(|s| i16::from(s.1));
        let soft = i64::from(c.soft_bounce);
        let (now, at) = (to_ms(c.now), to_ms(c.at));
        let mut params: Vec<&(dyn ::postgres::types::ToSql + Sync)> = vec![
            &c.message_id,
            &c.campaign_id,
            &status,
            &rank,
            &c.code,
            &soft,
            &now,
        ];
        if c.column.is_some() {
            params.push(&at);
        }
        self.0.execute(&sql, &params)?;
        Ok(())
    }

    fn set_matched(
        &mut self,
        receipt_id: i64,
        message_id: Option<i64>,
        applied: bool,
    ) -> Result<(), Self::Error> {
        self.0.execute(
            "UPDATE receipts SET message_id = $2, applied = $3 WHERE id = $1",
            &[&receipt_id, &message_id, &applied],
        )?;
        Ok(())
    }

    fn suppress(
        &mut self,
        address: &str,
        reason: &str,
        source: &str,
        now: Timestamp,
    ) -> Result<bool, Self::Error> {
        let n = self.0.execute(
            "INSERT INTO suppressions (address, reason, source, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (address) DO NOTHING",
            &[&address, &reason, &source, &to_ms(now)],
        )?;
        Ok(n > 0)
    }

    fn unsuppress(&mut self, address: &str, source: &str) -> Result<bool, Self::Error> {
        let n = self.0.execute(
            "DELETE FROM suppressions WHERE address = $1 AND source = $2",
            &[&address, &source],
        )?;
        Ok(n > 0)
    }

    fn resend(
        &mut self,
        message_id: i64,
        due_at: Timestamp,
        note: &str,
    ) -> Result<bool, Self::Error> {
        let n = self.0.execute(
            "UPDATE queue SET state = 'pending', due_at = $2, last_error = $3, lease_owner = NULL, lease_until = NULL
             WHERE message_id = $1 AND state = 'sent'",
            &[&message_id, &to_ms(due_at), &note],
        )?;
        if n > 0 {
            self.0
                .execute("DELETE FROM delivery WHERE message_id = $1", &[&message_id])?;
        }
        Ok(n > 0)
    }

    fn unmatched_since(&mut self, since: Timestamp) -> Result<Vec<Unmatched>, Self::Error> {
        let rows = self.0.query(
            "SELECT id, source, provider_id, reference, event, code, occurred_at, effect FROM receipts
             WHERE NOT applied AND received_at >= $1 ORDER BY id",
            &[&to_ms(since)],
        )?;
        Ok(rows
            .iter()
            .map(|r| Unmatched {
                id: r.get(0),
                source: r.get(1),
                provider_id: r.get(2),
                reference: r.get(3),
                event: r.get(4),
                code: r.get(5),
                occurred_at: r.get(6),
                effect: r.get(7),
            })
            .collect())
    }

    fn bump_gate(&mut self) -> Result<(), Self::Error> {
        super::bump_gate(self.0)
    }

    fn follow_up_rules(&mut self) -> Result<Vec<String>, Self::Error> {
        Ok(self
            .0
            .query(
                "SELECT rules FROM campaigns WHERE status = 'active' AND rules LIKE '%\"follows\"%'",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}

pub(super) fn record_receipts(
    store: &PostgresStore,
    batch: &[Receipt],
    now: Timestamp,
) -> Result<Vec<Applied>, StoreError> {
    store.with("recording receipts", Replay::Safe, |c| {
        let mut tx = c.transaction()?;
        let out = receipts::apply_all(&mut Tx(&mut tx), batch, now)?;
        tx.commit()?;
        Ok(out)
    })
}

pub(super) fn match_receipts(
    store: &PostgresStore,
    since: Timestamp,
    now: Timestamp,
) -> Result<u64, StoreError> {
    store.with("matching receipts", Replay::Safe, |c| {
        let mut tx = c.transaction()?;
        let n = receipts::match_unmatched(&mut Tx(&mut tx), since, now)?;
        tx.commit()?;
        Ok(n)
    })
}

pub(super) fn funnel(
    store: &PostgresStore,
    campaign: Option<&str>,
    by: FunnelBy,
) -> Result<Vec<Funnel>, StoreError> {
    let (group, join) = match by {
        FunnelBy::Campaign => ("NULL::text", ""),
        FunnelBy::Locale => (
            "COALESCE(m.locale, '')",
            "JOIN messages m ON m.id = q.message_id",
        ),
        FunnelBy::Zone => ("m.zone", "JOIN messages m ON m.id = q.message_id"),
        FunnelBy::Variant => (
            "COALESCE(m.content::json->>'variant', '')",
            "JOIN messages m ON m.id = q.message_id",
        ),
    };
    let sql = format!(
        "SELECT c.name, {group},
                COUNT(*) FILTER (WHERE q.state <> 'cancelled'), COUNT(*) FILTER (WHERE q.state = 'sent'),
                COUNT(*) FILTER (WHERE d.delivered_at IS NOT NULL OR d.read_at IS NOT NULL),
                COUNT(*) FILTER (WHERE d.read_at IS NOT NULL),
                COUNT(*) FILTER (WHERE q.state = 'failed' OR d.failed_at IS NOT NULL),
                COUNT(*) FILTER (WHERE q.state <> 'failed' AND d.failed_at IS NOT NULL),
                COUNT(*) FILTER (WHERE d.bounced_at IS NOT NULL),
                COUNT(*) FILTER (WHERE d.opted_out_at IS NOT NULL)
         FROM queue q JOIN campaigns c ON c.id = q.campaign_id {join}
         LEFT JOIN delivery d ON d.message_id = q.message_id
         WHERE ($1::text IS NULL OR c.name = $1)
         GROUP BY 1, 2 ORDER BY c.name COLLATE \"C\", {group} COLLATE \"C\""
    );
    if let Some(name) = campaign {
        let found = store.with("reading a campaign", Replay::Safe, |c| {
            c.query_opt("SELECT 1 FROM campaigns WHERE name = $1", &[&name])
        })?;
        if found.is_none() {
            return Err(StoreError::UnknownCampaign(name.into()));
        }
    }
    let rows = store.with("reading the funnel", Replay::Safe, |c| {
        c.query(&sql, &[&campaign])
    })?;
    let n = |r: &::postgres::Row, i: usize| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
    Ok(rows
        .iter()
        .map(|r| Funnel {
            campaign: r.get(0),
            group: r.get(1),
            planned: n(r, 2),
            sent: n(r, 3),
            delivered: n(r, 4),
            read: n(r, 5),
            failed: n(r, 6),
            undelivered: n(r, 7),
            bounced: n(r, 8),
            opted_out: n(r, 9),
        })
        .collect())
}
