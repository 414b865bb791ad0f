//! Workers announcing themselves for rates shared by a fleet (see [`Store::worker_heartbeat`]).
//!
//! "Seen since" is decided on the `fleet` counter, not on clocks: every heartbeat takes the
//! next value inside its write transaction, and SQLite serialises writers, so a heartbeat
//! numbered above another worker's registration ran after that registration committed and
//! counted it.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use rusqlite::params;

use super::{SqliteStore, other};
use crate::store::{ChannelFleet, FleetView, StoreError};

impl SqliteStore {
    pub(super) fn heartbeat(
        &self,
        owner: &str,
        channels: &[&str],
        ttl: SignedDuration,
    ) -> Result<FleetView, StoreError> {
        let now = Timestamp::now().as_millisecond();
        let expires = now.saturating_add(ttl.as_millis() as i64);
        let list = serde_json::to_string(channels).map_err(other)?;
        self.gated(|tx| {
            let seq: i64 = tx
                .query_row(
                    "UPDATE control SET value = value + 1 WHERE name = 'fleet' RETURNING value",
                    [],
                    |r| r.get(0),
                )
                .map_err(other)?;
            tx.execute(
                "DELETE FROM workers WHERE expires_at <= ?1 OR (owner = ?2 AND channel NOT IN (SELECT value FROM json_each(?3)))",
                params![now, owner, list],
            )
            .map_err(other)?;
            tx.execute(
                "INSERT INTO workers (owner, channel, first_seq, last_seq, expires_at)
                 SELECT ?1, value, ?2, ?2, ?3 FROM json_each(?4) WHERE true
                 ON CONFLICT (owner, channel) DO UPDATE SET last_seq = excluded.last_seq, expires_at = excluded.expires_at",
                params![owner, seq, expires, list],
            )
            .map_err(other)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT w.channel, COUNT(*), SUM(w.owner <> me.owner AND w.last_seq <= me.first_seq)
                     FROM workers w JOIN workers me ON me.owner = ?1 AND me.channel = w.channel
                     WHERE w.expires_at > ?2 OR w.owner = ?1
                     GROUP BY w.channel",
                )
                .map_err(other)?;
            let rows = stmt
                .query_map(params![owner, now], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
                .map_err(other)?;
            let mut channels = BTreeMap::new();
            for row in rows {
                let (channel, live, unseen) = row.map_err(other)?;
                channels.insert(
                    channel,
                    ChannelFleet {
                        live_workers: u32::try_from(live).unwrap_or(u32::MAX),
                        seen_by_all: unseen == 0,
                    },
                );
            }
            Ok((FleetView { channels }, false))
        })
    }

    pub(super) fn retire(&self, owner: &str) -> Result<(), StoreError> {
        self.gated(|tx| {
            tx.execute("DELETE FROM workers WHERE owner = ?1", [owner])
                .map_err(other)?;
            Ok(((), false))
        })
    }
}
