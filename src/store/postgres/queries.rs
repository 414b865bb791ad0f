//! What commands read and the small changes they make: campaigns, status, messages, sends,
//! suppressions, runs and reports. Text is ordered byte-wise (`COLLATE "C"`), as SQLite orders
//! it, whatever the database's locale.

use std::collections::{BTreeMap, HashMap, HashSet};

use ::postgres::fallible_iterator::FallibleIterator;
use jiff::{SignedDuration, Timestamp};

use super::conn::Replay;
use super::{PostgresStore, millis, to_ms};
use crate::store::{
    AttemptRow, CampaignInfo, CampaignStatus, CampaignSummary, LocalTimes, MessageFilter,
    MessageRow, ReportError, ReportRow, RunStats, State, StoreError, Suppression, message_key,
};

fn u32_of(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(super) fn recurrence_start(
    store: &PostgresStore,
    campaign: &str,
) -> Result<Option<String>, StoreError> {
    store.with("reading a campaign", Replay::Safe, |c| {
        Ok(c.query_opt(
            "SELECT recurrence_start FROM campaigns WHERE name = $1",
            &[&campaign],
        )?
        .and_then(|r| r.get(0)))
    })
}

pub(super) fn next_due(
    store: &PostgresStore,
    campaign: Option<&str>,
    except: &[&str],
) -> Result<Option<Timestamp>, StoreError> {
    store.with("looking up what is due", Replay::Safe, |c| {
        Ok(c.query_one(
            "SELECT MIN(q.due_at) FROM queue q JOIN campaigns c ON c.id = q.campaign_id
             WHERE q.state = 'pending' AND c.status = 'active' AND ($1::text IS NULL OR c.name = $1)
               AND NOT (c.channel = ANY($2))
               -- Uncorrelated: evaluated once, so that no scan skips the left-out channels'
               -- backlog when no other channel is in play.
               AND EXISTS (SELECT 1 FROM campaigns o WHERE o.status = 'active' AND ($1::text IS NULL OR o.name = $1)
                           AND NOT (o.channel = ANY($2)))",
            &[&campaign, &except],
        )?
        .get(0))
    })
}

pub(super) fn campaign(
    store: &PostgresStore,
    name: &str,
) -> Result<Option<CampaignInfo>, StoreError> {
    let row = store.with("reading a campaign", Replay::Safe, |c| {
        Ok(c.query_opt(
            "SELECT channel, status, status_reason, rules FROM campaigns WHERE name = $1",
            &[&name],
        )?
        .map(|r| {
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, Option<String>>(2),
                r.get::<_, String>(3),
            )
        }))
    })?;
    let Some((channel, status, status_reason, rules)) = row else {
        return Ok(None);
    };
    CampaignInfo::from_stored(name, channel, &status, status_reason, &rules)
        .map(Some)
        .map_err(|e| {
            StoreError::Other(format!(
                "the stored rules of campaign {name:?} are not valid: {e}"
            ))
        })
}

pub(super) fn set_campaign_status(
    store: &PostgresStore,
    name: &str,
    status: CampaignStatus,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    let now = to_ms(Timestamp::now());
    let n = store.gated("changing a campaign's status", |tx| {
        let n = tx.execute(
            "UPDATE campaigns SET status = $2, status_reason = $3, updated_at = $4 WHERE name = $1",
            &[&name, &status.as_str(), &reason, &now],
        )?;
        Ok((n, n > 0))
    })?;
    if n == 0 {
        return Err(StoreError::UnknownCampaign(name.into()));
    }
    Ok(())
}

pub(super) fn cancel_pending(store: &PostgresStore, name: &str) -> Result<u64, StoreError> {
    let now = to_ms(Timestamp::now());
    store.gated("cancelling a campaign", |tx| {
        let n = tx.execute(
            "UPDATE queue SET state = 'cancelled', last_error = 'campaign cancelled', updated_at = $2
             WHERE state = 'pending' AND campaign_id = (SELECT id FROM campaigns WHERE name = $1)",
            &[&name, &now],
        )?;
        Ok((n, true))
    })
}

pub(super) fn summaries(
    store: &PostgresStore,
    campaign: Option<&str>,
) -> Result<Vec<CampaignSummary>, StoreError> {
    let out = store.with("reading the status", Replay::Safe, |c| {
        let campaigns = c.query(
            "SELECT id, name, channel, status, status_reason FROM campaigns
             WHERE ($1::text IS NULL OR name = $1) ORDER BY name COLLATE \"C\"",
            &[&campaign],
        )?;
        let mut out = Vec::new();
        for row in campaigns {
            let id: i64 = row.get(0);
            let mut counts = BTreeMap::new();
            for r in c.query(
                "SELECT state, COUNT(*) FROM queue WHERE campaign_id = $1 GROUP BY state",
                &[&id],
            )? {
                if let Some(s) = State::parse(r.get(0)) {
                    counts.insert(s, r.get::<_, i64>(1) as u64);
                }
            }
            let times = c.query_one(
                "SELECT (SELECT MIN(due_at) FROM queue WHERE campaign_id = $1 AND state = 'pending'),
                        (SELECT MAX(a.finished_at) FROM attempts a JOIN messages m ON m.id = a.message_id
                         WHERE m.campaign_id = $1 AND a.outcome = 'sent')",
                &[&id],
            )?;
            let top_errors = c
                .query(
                    "SELECT a.error, COUNT(*) FROM attempts a JOIN messages m ON m.id = a.message_id
                     WHERE m.campaign_id = $1 AND a.error IS NOT NULL
                     GROUP BY a.error ORDER BY 2 DESC, a.error COLLATE \"C\" LIMIT 5",
                    &[&id],
                )?
                .iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
                .collect();
            out.push(CampaignSummary {
                name: row.get(1),
                channel: row.get(2),
                status: CampaignStatus::parse(row.get(3)).unwrap_or(CampaignStatus::Paused),
                status_reason: row.get(4),
                counts,
                next_due: times.get(0),
                last_sent: times.get(1),
                top_errors,
            });
        }
        Ok(out)
    })?;
    if let Some(name) = campaign
        && out.is_empty()
    {
        return Err(StoreError::UnknownCampaign(name.into()));
    }
    Ok(out)
}

pub(super) fn messages(
    store: &PostgresStore,
    f: &MessageFilter,
) -> Result<Vec<MessageRow>, StoreError> {
    let state = f.state.map(State::as_str);
    let limit = f.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    let rows = store.with("reading messages", Replay::Safe, |c| {
        c.query(
            "SELECT c.name, m.recipient, m.occurrence, c.channel, m.address, m.zone, q.state, q.planned_at, q.due_at,
                    q.attempts, q.provider_id, q.last_error, m.reasons
             FROM messages m JOIN queue q ON q.message_id = m.id JOIN campaigns c ON c.id = m.campaign_id
             WHERE ($1::text IS NULL OR c.name = $1) AND ($2::text IS NULL OR q.state = $2) AND ($3::text IS NULL OR m.recipient = $3)
             ORDER BY c.name COLLATE \"C\", q.due_at, m.recipient COLLATE \"C\", m.occurrence LIMIT $4",
            &[&f.campaign, &state, &f.recipient, &limit],
        )
    })?;
    let mut local = LocalTimes::default();
    Ok(rows
        .iter()
        .map(|r| {
            let (campaign, recipient): (String, String) = (r.get(0), r.get(1));
            let occurrence = u32_of(r.get(2));
            let zone: String = r.get(5);
            MessageRow {
                key: message_key(&campaign, &recipient, occurrence),
                campaign,
                recipient,
                occurrence,
                channel: r.get(3),
                address: r.get(4),
                planned_local: local.format(r.get(7), &zone),
                zone,
                state: State::parse(r.get(6)).unwrap_or(State::Pending),
                due_at: r.get(8),
                attempts: u32_of(r.get(9)),
                provider_id: r.get(10),
                last_error: r.get(11),
                reasons: r.get(12),
            }
        })
        .collect())
}

/// Sends by (channel, address) and time window, on the (channel, address, at) index: never
/// by id, since with several writers sequence order is not commit order.
pub(super) fn sends_among(
    store: &PostgresStore,
    pairs: &[(&str, &str)],
    since: Timestamp,
) -> Result<HashMap<(String, String), Vec<Timestamp>>, StoreError> {
    let mut out: HashMap<(String, String), Vec<Timestamp>> = HashMap::new();
    if pairs.is_empty() {
        return Ok(out);
    }
    let channels: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let addresses: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    let since = to_ms(since);
    let rows = store.with("reading recent sends", Replay::Safe, |c| {
        c.query(
            "SELECT s.channel, s.address, s.at FROM sends s
             JOIN (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[])) AS p(channel, address)
               ON s.channel = p.channel AND s.address = p.address
             WHERE s.at > $3 ORDER BY s.at",
            &[&channels, &addresses, &since],
        )
    })?;
    for r in rows {
        out.entry((r.get(0), r.get(1))).or_default().push(r.get(2));
    }
    Ok(out)
}

pub(super) fn suppress(
    store: &PostgresStore,
    address: &str,
    reason: Option<&str>,
    source: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let now = to_ms(now);
    store.gated("adding a suppression", |tx| {
        let n = tx.execute(
            "INSERT INTO suppressions (address, reason, source, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (address) DO NOTHING",
            &[&address, &reason, &source, &now],
        )?;
        Ok((n > 0, n > 0))
    })
}

pub(super) fn unsuppress(store: &PostgresStore, address: &str) -> Result<bool, StoreError> {
    store.gated("removing a suppression", |tx| {
        let n = tx.execute("DELETE FROM suppressions WHERE address = $1", &[&address])?;
        Ok((n > 0, n > 0))
    })
}

pub(super) fn suppressions(store: &PostgresStore) -> Result<Vec<Suppression>, StoreError> {
    let rows = store.with("reading suppressions", Replay::Safe, |c| {
        c.query(
            "SELECT address, reason, source, created_at FROM suppressions ORDER BY address COLLATE \"C\"",
            &[],
        )
    })?;
    Ok(rows
        .iter()
        .map(|r| Suppression {
            address: r.get(0),
            reason: r.get(1),
            source: r.get(2),
            created_at: r.get(3),
        })
        .collect())
}

pub(super) fn suppressed_among(
    store: &PostgresStore,
    addresses: &[&str],
) -> Result<HashSet<String>, StoreError> {
    if addresses.is_empty() {
        return Ok(HashSet::new());
    }
    let list: Vec<&str> = addresses.to_vec();
    let rows = store.with("reading suppressions", Replay::Safe, |c| {
        c.query(
            "SELECT address FROM suppressions WHERE address = ANY($1)",
            &[&list],
        )
    })?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) fn last_run(
    store: &PostgresStore,
    campaign: &str,
    gap: SignedDuration,
) -> Result<Option<RunStats>, StoreError> {
    let gap_ms = millis(gap);
    let row = store.with("reading the last run", Replay::Safe, |c| {
        c.query_one(
            "WITH a AS (
                SELECT a.started_at AS s, a.finished_at AS f, a.outcome AS o
                FROM attempts a JOIN messages m ON m.id = a.message_id JOIN campaigns c ON c.id = m.campaign_id
                WHERE c.name = $1),
             b AS (SELECT s, s - MAX(f) OVER (ORDER BY s ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS pause FROM a),
             st AS (SELECT MAX(s) AS start FROM b WHERE pause IS NULL OR pause > $2::bigint * interval '1 millisecond')
             SELECT COUNT(*), MIN(a.s), MAX(a.s), MAX(a.f), COUNT(*) FILTER (WHERE a.o = 'sent')
             FROM a, st WHERE st.start IS NOT NULL AND a.s >= st.start",
            &[&campaign, &gap_ms],
        )
    })?;
    let n: i64 = row.get(0);
    let (s, l, f): (Option<Timestamp>, Option<Timestamp>, Option<Timestamp>) =
        (row.get(1), row.get(2), row.get(3));
    Ok(match (s, l, f) {
        (Some(s), Some(l), Some(f)) if n > 0 => Some(RunStats {
            started_at: s,
            last_started_at: l,
            finished_at: f,
            attempts: n as u64,
            sent: row.get::<_, i64>(4) as u64,
        }),
        _ => None,
    })
}

fn require_campaign(
    client: &mut ::postgres::Client,
    campaign: &str,
) -> Result<bool, ::postgres::Error> {
    Ok(client
        .query_one(
            "SELECT EXISTS(SELECT 1 FROM campaigns WHERE name = $1)",
            &[&campaign],
        )?
        .get(0))
}

/// Streams `sql`'s rows for `campaign` (its only parameter) through `each`; the report is
/// written as it is read, so it is not retried once begun.
fn stream(
    store: &PostgresStore,
    campaign: &str,
    sql: &str,
    each: &mut dyn FnMut(&::postgres::Row) -> Result<(), ReportError>,
) -> Result<u64, ReportError> {
    let mut link = store.link(false)?;
    let result = (|| -> Result<u64, ReportError> {
        let client = link.client()?;
        let db = |e: ::postgres::Error| {
            StoreError::Other(format!(
                "PostgreSQL failed while writing a report: {}",
                super::describe(&e)
            ))
        };
        if !require_campaign(client, campaign).map_err(db)? {
            return Err(StoreError::UnknownCampaign(campaign.into()).into());
        }
        let mut rows = client.query_raw(sql, [campaign]).map_err(db)?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(db)? {
            each(&row)?;
            n += 1;
        }
        Ok(n)
    })();
    link.forget_if_closed();
    result
}

pub(super) fn report(
    store: &PostgresStore,
    campaign: &str,
    each: &mut dyn FnMut(ReportRow) -> std::io::Result<()>,
) -> Result<u64, ReportError> {
    let mut local = LocalTimes::default();
    stream(
        store,
        campaign,
        "SELECT c.name, m.recipient, m.occurrence, c.channel, m.address, m.zone, m.locale, q.state,
                q.planned_at, q.due_at, m.reasons, q.attempts, q.provider_id, q.last_error,
                (SELECT MIN(a.started_at) FROM attempts a WHERE a.message_id = m.id),
                (SELECT MAX(a.finished_at) FROM attempts a WHERE a.message_id = m.id),
                (SELECT a.outcome FROM attempts a WHERE a.message_id = m.id ORDER BY a.attempt DESC, a.id DESC LIMIT 1),
                (SELECT a.code FROM attempts a WHERE a.message_id = m.id ORDER BY a.attempt DESC, a.id DESC LIMIT 1),
                (SELECT MAX(a.finished_at) FROM attempts a WHERE a.message_id = m.id AND a.outcome = 'sent'),
                d.status, d.delivered_at, d.read_at, d.code, d.opted_out_at,
                m.content::json->>'variant'
         FROM messages m JOIN queue q ON q.message_id = m.id JOIN campaigns c ON c.id = m.campaign_id
         LEFT JOIN delivery d ON d.message_id = m.id
         WHERE c.name = $1
         ORDER BY q.due_at, m.recipient COLLATE \"C\", m.occurrence",
        &mut |r| {
            let (campaign, recipient): (String, String) = (r.get(0), r.get(1));
            let occurrence = u32_of(r.get(2));
            let zone: String = r.get(5);
            let planned_at: Timestamp = r.get(8);
            each(ReportRow {
                message_id: message_key(&campaign, &recipient, occurrence),
                campaign,
                recipient,
                occurrence,
                channel: r.get(3),
                address: r.get(4),
                planned_local: local.format(planned_at, &zone),
                zone,
                locale: r.get(6),
                state: State::parse(r.get(7)).unwrap_or(State::Pending),
                planned_at,
                due_at: r.get(9),
                reasons: r.get(10),
                attempts: u32_of(r.get(11)),
                provider_id: r.get(12),
                last_error: r.get(13),
                first_attempt_at: r.get(14),
                last_attempt_at: r.get(15),
                last_outcome: r.get(16),
                last_code: r.get(17),
                sent_at: r.get(18),
                delivery: r.get::<_, Option<String>>(19).filter(|s| s != "none"),
                delivered_at: r.get(20),
                read_at: r.get(21),
                delivery_code: r.get(22),
                opted_out_at: r.get(23),
                variant: r.get(24),
            })?;
            Ok(())
        },
    )
}

pub(super) fn report_attempts(
    store: &PostgresStore,
    campaign: &str,
    each: &mut dyn FnMut(AttemptRow) -> std::io::Result<()>,
) -> Result<u64, ReportError> {
    stream(
        store,
        campaign,
        "SELECT c.name, m.recipient, m.occurrence, m.address, a.attempt, a.started_at, a.finished_at,
                a.outcome, a.provider_id, a.code, a.error
         FROM attempts a JOIN messages m ON m.id = a.message_id JOIN campaigns c ON c.id = m.campaign_id
         WHERE c.name = $1
         ORDER BY m.recipient COLLATE \"C\", m.occurrence, a.attempt, a.id",
        &mut |r| {
            let (campaign, recipient): (String, String) = (r.get(0), r.get(1));
            let occurrence = u32_of(r.get(2));
            each(AttemptRow {
                message_id: message_key(&campaign, &recipient, occurrence),
                campaign,
                recipient,
                occurrence,
                address: r.get(3),
                attempt: u32_of(r.get(4)),
                started_at: r.get(5),
                finished_at: r.get(6),
                outcome: r.get(7),
                provider_id: r.get(8),
                code: r.get(9),
                error: r.get(10),
            })?;
            Ok(())
        },
    )
}
