//! The embedded store: one SQLite file in WAL mode.
//!
//! Claims run in `BEGIN IMMEDIATE` transactions, so concurrent `run` processes serialise on
//! SQLite's write lock (with a generous busy timeout) and never claim the same row twice.
//! Mutable delivery state lives in the narrow `queue` table; the wide `messages` rows are
//! written at plan time only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::outcome::RecordedOutcome;
use super::*;

mod admin;
mod fleet;
mod follow_ups;
mod ramp;
mod receipts;

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// The newest schema version this build knows.
fn known_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT_MS: u64 = 60_000;

pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The file opened (device, inode), to notice it being deleted or replaced under a
    /// long-running process (see [`SqliteStore::check_file`]).
    file_id: Option<(u64, u64)>,
    /// A second connection for [`Store::gate`], read from the network thread between sends
    /// while the first may be busy with a claim on the store thread.
    reader: Mutex<Option<Connection>>,
    /// Recent sends for frequency caps, built on first use.
    sends: Mutex<SendWindow>,
}

/// Recent successful sends by (channel, address), for frequency caps. `sends` is kept in the
/// order rows were recorded, without an address index (see migrations/V3): the window is
/// read once for the longest span asked for, then brought up to date with the rows appended
/// since. `id` only grows and writers are serialised, so `id > last_id` finds exactly the
/// rows committed since the last look, by this process or any other.
#[derive(Debug, Default)]
struct SendWindow {
    /// Every send with `at > floor` is in `sends`; `None` before the first use.
    floor: Option<i64>,
    last_id: i64,
    sends: HashMap<(String, String), Vec<i64>>,
}

/// How far the window's floor may lag behind what callers ask for before old sends are
/// dropped from memory.
const SEND_WINDOW_SLACK_MS: i64 = 60_000;

impl SendWindow {
    /// Makes the window hold every send with `at > since`, as committed now.
    fn update(&mut self, conn: &Connection, since: i64) -> Result<(), StoreError> {
        match self.floor {
            Some(floor) if floor <= since => {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id, at, channel, address FROM sends WHERE id > ?1 ORDER BY id",
                    )
                    .map_err(other)?;
                let mut rows = stmt.query([self.last_id]).map_err(other)?;
                while let Some(r) = rows.next().map_err(other)? {
                    self.last_id = r.get(0).map_err(other)?;
                    let at: i64 = r.get(1).map_err(other)?;
                    if at > floor {
                        let key = (r.get(2).map_err(other)?, r.get(3).map_err(other)?);
                        self.sends.entry(key).or_default().push(at);
                    }
                }
                if since - floor > SEND_WINDOW_SLACK_MS {
                    self.sends.retain(|_, v| {
                        v.retain(|&a| a > since);
                        !v.is_empty()
                    });
                    self.floor = Some(since);
                }
            }
            _ => {
                // (Re)built in one read transaction, so that `last_id` matches the rows read.
                let tx = conn.unchecked_transaction().map_err(other)?;
                let last_id: i64 = tx
                    .query_row("SELECT COALESCE(MAX(id), 0) FROM sends", [], |r| r.get(0))
                    .map_err(other)?;
                let mut sends: HashMap<(String, String), Vec<i64>> = HashMap::new();
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "SELECT at, channel, address FROM sends WHERE at > ?1 AND id <= ?2",
                        )
                        .map_err(other)?;
                    let mut rows = stmt.query([since, last_id]).map_err(other)?;
                    while let Some(r) = rows.next().map_err(other)? {
                        let at: i64 = r.get(0).map_err(other)?;
                        let key = (r.get(1).map_err(other)?, r.get(2).map_err(other)?);
                        sends.entry(key).or_default().push(at);
                    }
                }
                tx.commit().map_err(other)?;
                *self = SendWindow {
                    floor: Some(since),
                    last_id,
                    sends,
                };
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `["a","b"]`, for `json_each`.
fn json_list(items: &[&str]) -> Result<String, StoreError> {
    serde_json::to_string(items).map_err(other)
}

fn other(e: impl std::fmt::Display) -> StoreError {
    let s = e.to_string();
    if s.contains("database is locked") || s.contains("database is busy") {
        StoreError::Other(format!(
            "the database stayed locked by another disparo process for over {} s: {s}\n  hint: wait for the other process (a long `plan`?) and try again",
            BUSY_TIMEOUT_MS / 1000
        ))
    } else if s.contains("disk is full") || s.contains("database or disk is full") {
        StoreError::Other(format!(
            "the disk is full: {s}\n  hint: free space; nothing was half-written (the transaction was rolled back)"
        ))
    } else if s.contains("readonly") || s.contains("read-only") {
        StoreError::Other(format!(
            "the database is read-only: {s}\n  hint: check the permissions of the file and its folder (SQLite also writes -wal and -shm files beside it)"
        ))
    } else {
        StoreError::Other(format!("database error: {s}"))
    }
}

/// SQLite's default page cache, in KiB (negative: a size, not a page count).
const DEFAULT_CACHE_KIB: i64 = -2000;
/// The page cache while a plan writes: room for the hot index pages of a large campaign
/// (with 2 MB they were spilled to the WAL again and again), well inside the plan's memory
/// budget (100 MB peak for 1M recipients).
const PLAN_CACHE_KIB: i64 = -16384;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// A schema newer than this build knows is refused before anything is written.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, true)
    }

    /// Opens the database at `path`; with `migrate` false, a schema behind this build's is
    /// refused ([`StoreError::Behind`]) instead of being brought up to date.
    fn open_with(path: &Path, migrate: bool) -> Result<SqliteStore, StoreError> {
        let shown = path.display().to_string();
        let open_err = |reason: String, hint: &str| StoreError::Open {
            path: shown.clone(),
            reason,
            hint: hint.into(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(open_err(
                format!("the folder {} does not exist", dir.display()),
                "create the folder, or pass another --db path",
            ));
        }
        if path.is_dir() {
            return Err(open_err(
                "it is a folder".into(),
                "pass the path of a file with --db",
            ));
        }
        let conn = Connection::open(path)
            .map_err(|e| open_err(e.to_string(), "check the path and its permissions"))?;
        let mut conn = conn;
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
            // 16 KiB pages: a fresh database writes ~4x fewer pages per planned message (no effect
            // on an existing file, whose page size is fixed).
            conn.pragma_update(None, "page_size", 16384)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            // A hard cap on the file's size, in pages (documented in docs/delivery.md): lets
            // operators bound the database and tests simulate a full disk.
            if let Some(pages) = std::env::var("DISPARO_DB_MAX_PAGES")
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
            }
            Ok(())
        };
        // Switching a new file to WAL needs it alone, and SQLite answers "locked" at once,
        // without waiting, when another process opens the same new file at that moment
        // (several `plan`s or workers starting together): try again for a while.
        let started = std::time::Instant::now();
        let setup = loop {
            match setup() {
                Err(e)
                    if e.to_string().contains("locked")
                        && started.elapsed().as_millis() < u128::from(BUSY_TIMEOUT_MS) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                done => break done,
            }
        };
        if let Err(e) = setup {
            let s = e.to_string();
            let hint = if s.contains("not a database") || s.contains("malformed") {
                "the file is not a disparo database (or is corrupt); restore it from a backup or pass another --db"
            } else if s.contains("readonly") || s.contains("unable to open") {
                "check that the file and its folder are writable (SQLite writes -wal and -shm files beside it)"
            } else {
                "check the path and its permissions"
            };
            return Err(open_err(s, hint));
        }
        let known = known_version();
        let found = schema_version(&conn).map_err(|e| open_err(e.to_string(), "the file is not a disparo database (or is corrupt); restore it from a backup or pass another --db"))?;
        if found > known {
            return Err(StoreError::NewerSchema {
                path: shown,
                found,
                supported: known,
            });
        }
        if found < known && !migrate {
            return Err(super::open::behind(shown, found, known));
        }
        // Grouped: every migration and its record in one transaction, so that a process that
        // lost the race to migrate (its CREATE fails on what the winner made) finds the
        // winner's record too, and opens.
        if found < known
            && let Err(e) = embedded::migrations::runner()
                .set_grouped(true)
                .run(&mut conn)
        {
            // Another process may have migrated at the same moment; only fail if still behind.
            if schema_version(&conn).unwrap_or(0) < known {
                return Err(open_err(
                    e.to_string(),
                    "the schema could not be updated; check permissions and free disk space",
                ));
            }
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            file_id: file_id(path),
            reader: Mutex::new(None),
            path: path.to_path_buf(),
            sends: Mutex::new(SendWindow::default()),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.check_file()?;
        self.conn.lock().map_err(|_| {
            StoreError::Other("the database connection was poisoned by an earlier panic".into())
        })
    }

    /// Fails once the database file is no longer the one opened: deleted, or replaced by
    /// another file (a new `plan` into the same path). The open connection would go on
    /// reading and writing the unlinked file, where nobody else sees its claims and sends: a
    /// second process would send the same messages again.
    fn check_file(&self) -> Result<(), StoreError> {
        let Some(opened) = self.file_id else {
            return Ok(());
        };
        let what = match file_id(&self.path) {
            Some(now) if now == opened => return Ok(()),
            Some(_) => "replaced by another file",
            None => "removed",
        };
        Err(StoreError::Other(format!(
            "the database file {} was {what} while this process was using it; stopping, so that nothing is sent twice\n  hint: keep the database in place while `disparo run` works; run again to use the file now at that path",
            self.path.display()
        )))
    }

    /// Runs `f` in one write transaction and bumps the gate with it when `f` says it changed
    /// something a run holding claims must see (see [`Store::gate`]).
    fn gated<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(other)?;
        let (value, changed) = f(&tx)?;
        if changed {
            bump_gate(&tx)?;
        }
        tx.commit().map_err(other)?;
        Ok(value)
    }
}

/// The (device, inode) of the file at `path`, if there is one.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn bump_gate(tx: &rusqlite::Transaction) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE control SET value = value + 1 WHERE name = 'gate'")
        .map_err(other)?
        .execute([])
        .map_err(other)?;
    Ok(())
}

/// Inserts the campaign or updates it for a new plan: its id, its new generation and status.
fn upsert_campaign(
    tx: &rusqlite::Transaction,
    campaign: &CampaignRecord,
    now: i64,
) -> Result<(i64, i64, String), StoreError> {
    let rules = serde_json::to_string(&campaign.rules).map_err(other)?;
    tx.query_row(
        "INSERT INTO campaigns (name, channel, rules, recurrence_start, generation, created_at, updated_at, capped)
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5, ?6)
         ON CONFLICT(name) DO UPDATE SET channel = excluded.channel, rules = excluded.rules, capped = excluded.capped,
            recurrence_start = COALESCE(campaigns.recurrence_start, excluded.recurrence_start),
            generation = campaigns.generation + 1, updated_at = excluded.updated_at
         RETURNING id, generation, status",
        params![campaign.name, campaign.channel, rules, campaign.recurrence_start, now, !campaign.rules.caps.is_empty()],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .map_err(other)
}

/// `UnknownCampaign` unless a campaign of that name was planned.
fn require_campaign(conn: &Connection, campaign: &str) -> Result<(), StoreError> {
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM campaigns WHERE name = ?1)",
            [campaign],
            |r| r.get(0),
        )
        .map_err(other)?;
    if exists {
        Ok(())
    } else {
        Err(StoreError::UnknownCampaign(campaign.into()))
    }
}

fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    let exists: bool = conn.query_row("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type='table' AND name='refinery_schema_history')", [], |r| r.get(0))?;
    if !exists {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM refinery_schema_history",
        [],
        |r| r.get(0),
    )
}

/// The claim's filter for frequency caps across runs: a message of a capped campaign is not
/// taken while another run holds one to the same (channel, address) under a live lease, so
/// two runs never both send to an address inside a cap's window (each applies the caps to
/// what it holds). Claims are serialised by `BEGIN IMMEDIATE`, so two claims cannot both take
/// the same address. `?4` is the claiming owner; `?6` (`?1` in the takeover) the lease clock.
const NOT_HELD_BY_ANOTHER: &str = "(c.capped = 0 OR NOT EXISTS (
        SELECT 1 FROM queue h JOIN messages hm ON hm.id = h.message_id JOIN campaigns hc ON hc.id = h.campaign_id
        WHERE h.state = 'sending' AND h.lease_owner <> ?4 AND h.lease_until >= ?6 AND hc.channel = c.channel
          AND hm.address = (SELECT address FROM messages WHERE id = q.message_id)))";
const NOT_HELD_BY_ANOTHER_STALE: &str = "(c.capped = 0 OR NOT EXISTS (
        SELECT 1 FROM queue h JOIN messages hm ON hm.id = h.message_id JOIN campaigns hc ON hc.id = h.campaign_id
        WHERE h.state = 'sending' AND h.lease_owner <> ?4 AND h.lease_until >= ?1 AND hc.channel = c.channel
          AND hm.address = (SELECT address FROM messages WHERE id = q.message_id)))";

/// A leased message: (id, campaign id, planned_at, due_at, attempts).
type Leased = (i64, i64, i64, i64, u32);

/// Leases the due pending messages, most due first, at most `req.limit`, and of each
/// `limited` channel at most what it has left: one set-based `UPDATE … RETURNING` (see
/// [`complete_in`] for why one statement).
fn lease_due(
    tx: &rusqlite::Transaction,
    req: &ClaimRequest<'_>,
    limited: &[(String, u64)],
) -> Result<Vec<Leased>, StoreError> {
    let names: Vec<&str> = limited.iter().map(|(c, _)| c.as_str()).collect();
    let others = limited.is_empty() || ramp::others_than(tx, &names, req.campaign)?;
    let Some((picked, ramp_params)) = ramp::picked(
        &format!("q.state = 'pending' AND q.due_at <= ?1 AND c.status = 'active' AND (?3 IS NULL OR c.name = ?3)
                   AND {NOT_HELD_BY_ANOTHER}"),
        limited,
        others,
    ) else {
        return Ok(Vec::new());
    };
    let mut due = tx
        .prepare_cached(
            &format!("UPDATE OR FAIL queue SET state = 'sending', lease_owner = ?4, lease_until = ?5, updated_at = ?1, started_by = NULL
             WHERE message_id IN ({picked})
             RETURNING message_id, campaign_id, planned_at, due_at, attempts"),
        )
        .map_err(other)?;
    let mut bound: Vec<rusqlite::types::Value> = vec![
        ms(req.now).into(),
        (req.limit as i64).into(),
        req.campaign.map(str::to_owned).into(),
        req.owner.to_owned().into(),
        ms(req.lease_until).into(),
        ms(req.lease_now).into(),
    ];
    bound.extend(ramp_params);
    let rows = due
        .query_map(rusqlite::params_from_iter(bound), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(other)?;
    let mut leased = Vec::with_capacity(req.limit);
    for r in rows {
        leased.push(r.map_err(other)?);
    }
    Ok(leased)
}

/// Claims due messages inside `tx` (see [`Store::claim`]). The due pending messages are
/// leased by one set-based `UPDATE … RETURNING` (see [`complete_in`] for why one statement).
fn claim_in(
    tx: &rusqlite::Transaction,
    req: &ClaimRequest<'_>,
) -> Result<Vec<Claimed>, StoreError> {
    let (now, limit, campaign) = (ms(req.now), req.limit, req.campaign);
    let lease_now = ms(req.lease_now);
    let (owner, lease_until) = (req.owner, ms(req.lease_until));
    // Ramped channels take no more than their ramp day has left (sqlite/ramp.rs).
    let limited = ramp::limits(tx, req.ramps, now, lease_now)?;
    let mut leased = lease_due(tx, req, &limited)?;
    let mut left = ramp::left_after(tx, &limited, leased.iter().map(|l| l.1))?;
    // Most due first (RETURNING gives no order).
    leased.sort_unstable_by_key(|&(id, _, _, due, _)| (due, id));
    // A cancelled campaign's messages that a dead run left `sending` are cancelled once
    // their lease expired (nobody may send them; a live run cancels its own on the gate).
    tx.prepare_cached(
        "UPDATE OR FAIL queue SET state = 'cancelled', last_error = 'campaign cancelled (the run holding it had died)', lease_owner = NULL, lease_until = NULL, updated_at = ?2
         WHERE state = 'sending' AND lease_until < ?1
           AND campaign_id IN (SELECT id FROM campaigns WHERE status = 'cancelled')",
    )
    .map_err(other)?
    .execute(params![lease_now, now])
    .map_err(other)?;
    if leased.len() < limit {
        // Then messages whose lease expired (the run holding them crashed or was killed).
        let stale: Vec<(i64, String, i64, bool, String)> = {
            let mut stale = tx
                .prepare_cached(
                    &format!("SELECT q.message_id, COALESCE(q.lease_owner, '?'), q.updated_at, q.started_by IS NOT NULL AND q.started_by = q.lease_owner, c.channel FROM queue q JOIN campaigns c ON c.id = q.campaign_id
                     WHERE q.state = 'sending' AND q.lease_until < ?1 AND c.status = 'active' AND (?3 IS NULL OR c.name = ?3)
                       AND {NOT_HELD_BY_ANOTHER_STALE}
                     ORDER BY q.due_at LIMIT ?2"),
                )
                .map_err(other)?;
            stale
                .query_map(
                    params![lease_now, (limit - leased.len()) as i64, campaign, owner],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .map_err(other)?
                .collect::<Result<_, _>>()
                .map_err(other)?
        };
        // A lost lease of a message whose send had started is an attempt of unknown outcome
        // (`attempts` row `lease_expired`: it may or may not have reached the provider), and
        // a message whose runs keep dying while sending it fails after MAX_LEASE_LOSSES
        // instead of looping. A message the dead run never started is simply taken over: it
        // spends no attempt and leaves nothing on record.
        let mut lost = tx.prepare_cached("UPDATE queue SET attempts = attempts + 1, lease_losses = lease_losses + 1, last_error = ?2 WHERE message_id = ?1 RETURNING attempts, lease_losses").map_err(other)?;
        let mut lost_attempt = tx.prepare_cached("INSERT INTO attempts (message_id, attempt, started_at, finished_at, outcome, provider_id, code, error) VALUES (?1, ?2, ?3, ?4, 'lease_expired', NULL, 'lease_expired', ?5)").map_err(other)?;
        let mut give_up = tx.prepare_cached("UPDATE OR FAIL queue SET state = 'failed', lease_owner = NULL, lease_until = NULL, started_by = NULL, updated_at = ?2, last_error = ?3 WHERE message_id = ?1").map_err(other)?;
        let mut lease = tx
            .prepare_cached(
                "UPDATE queue SET state = 'sending', lease_owner = ?2, lease_until = ?3, updated_at = ?4, started_by = NULL WHERE message_id = ?1
                 RETURNING message_id, campaign_id, planned_at, due_at, attempts",
            )
            .map_err(other)?;
        for (id, holder, claimed_at, was_started, channel) in stale {
            // A ramped channel's expired leases count against what its day has left, too.
            if left.get(&channel) == Some(&0) {
                continue;
            }
            if was_started {
                let error = super::outcome::lease_lost(&holder);
                let (attempts, losses): (u32, i64) = lost
                    .query_row(params![id, error], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(other)?;
                lost_attempt
                    .execute(params![id, attempts, claimed_at, now, error])
                    .map_err(other)?;
                if losses >= super::outcome::MAX_LEASE_LOSSES {
                    let reason = super::outcome::gave_up(losses, &holder);
                    give_up.execute(params![id, now, reason]).map_err(other)?;
                    continue;
                }
            }
            if let Some(n) = left.get_mut(&channel) {
                *n -= 1;
            }
            leased.push(
                lease
                    .query_row(params![id, owner, lease_until, now], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(other)?,
            );
        }
    }
    let mut load = tx
        .prepare_cached(
            "SELECT recipient, occurrence, address, zone, locale, content, vars FROM messages WHERE id = ?1",
        )
        .map_err(other)?;
    let mut camp = tx
        .prepare_cached("SELECT name, channel FROM campaigns WHERE id = ?1")
        .map_err(other)?;
    // Campaign id -> (name, channel): a batch rarely spans more than a few campaigns.
    let mut campaigns: HashMap<i64, (String, String)> = HashMap::new();
    let mut out = Vec::with_capacity(leased.len());
    for (id, cid, planned_at, due_at, attempts) in leased {
        let (name, channel) = match campaigns.entry(cid) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                camp.query_row([cid], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(other)?,
            ),
        };
        let bad = |i, e: serde_json::Error| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
        };
        let c = load
            .query_row([id], |r| {
                let recipient: String = r.get(0)?;
                let occurrence: u32 = r.get(1)?;
                let content: Content =
                    serde_json::from_str(r.get_ref(5)?.as_str()?).map_err(|e| bad(5, e))?;
                let vars =
                    serde_json::value::RawValue::from_string(r.get(6)?).map_err(|e| bad(6, e))?;
                Ok(Claimed {
                    id,
                    key: message_key(name, &recipient, occurrence),
                    campaign: name.clone(),
                    channel: channel.clone(),
                    recipient,
                    occurrence,
                    address: r.get(2)?,
                    zone: r.get(3)?,
                    locale: r.get(4)?,
                    content,
                    vars,
                    planned_at: ts(planned_at),
                    due_at: ts(due_at),
                    attempts,
                })
            })
            .map_err(other)?;
        out.push(c);
    }
    Ok(out)
}

/// Records outcomes inside `tx` (see [`Store::complete`]); returns how many were recorded.
///
/// Sends, nearly all outcomes of a run, are written set-based: one `UPDATE` of their queue
/// rows and one `INSERT … SELECT` into `sends`, after one `INSERT` per attempt. The queue's
/// `CHECK` on `state` is compiled into a lookup table SQLite builds on every run of a
/// statement, which costs more than the rest of a one-row `UPDATE`; set-based, it is built
/// once per batch. Every write is `OR FAIL`: none can violate a constraint, and with the
/// default (ABORT) SQLite keeps a statement journal, a copy of every page a statement
/// changes, so that the statement alone can be undone.
fn complete_in(
    tx: &rusqlite::Transaction,
    owner: &str,
    completions: &[Completion],
) -> Result<usize, StoreError> {
    if completions.is_empty() {
        return Ok(0);
    }
    let ids = |cs: &mut dyn Iterator<Item = &Completion>| -> Result<String, StoreError> {
        serde_json::to_string(&cs.map(|c| c.id).collect::<Vec<_>>()).map_err(other)
    };
    // The messages whose lease this run still holds; another run took the others over after
    // our lease expired, and its outcome wins.
    let held: HashSet<i64> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT message_id FROM queue WHERE message_id IN (SELECT value FROM json_each(?1))
                 AND +state = 'sending' AND +lease_owner = ?2",
            )
            .map_err(other)?;
        stmt.query_map(params![ids(&mut completions.iter())?, owner], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(other)?
        .collect::<Result<_, _>>()
        .map_err(other)?
    };
    let (mine, started) = super::outcome::split(completions, &held);
    let mine = || mine.iter().copied();
    if !started.is_empty() {
        tx.prepare_cached(
            "UPDATE OR FAIL queue SET started_by = ?2 WHERE message_id IN (SELECT value FROM json_each(?1))",
        )
        .map_err(other)?
        .execute(params![serde_json::to_string(&started).map_err(other)?, owner])
        .map_err(other)?;
    }
    {
        let mut attempt = tx.prepare_cached("INSERT OR FAIL INTO attempts (message_id, attempt, started_at, finished_at, outcome, provider_id, code, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)").map_err(other)?;
        for c in mine().filter(|c| c.outcome.attempted()) {
            let r = RecordedOutcome::of(&c.outcome);
            attempt
                .execute(params![
                    c.id,
                    c.attempt,
                    ms(c.started_at),
                    ms(c.finished_at),
                    r.outcome,
                    r.provider,
                    r.code,
                    r.error
                ])
                .map_err(other)?;
        }
    }
    let is_sent = |c: &&Completion| matches!(c.outcome, Outcome::Sent { .. });
    if mine().any(|c| is_sent(&c)) {
        // The attempt just recorded carries what differs per message.
        let sent = ids(&mut mine().filter(is_sent))?;
        tx.prepare_cached(
            "UPDATE OR FAIL queue SET state = 'sent', last_error = NULL, lease_owner = NULL, lease_until = NULL,
                (attempts, provider_id, updated_at) = (
                    SELECT a.attempt, COALESCE(a.provider_id, queue.provider_id), a.finished_at FROM attempts a
                    WHERE a.message_id = queue.message_id ORDER BY a.id DESC LIMIT 1)
             WHERE message_id IN (SELECT value FROM json_each(?1))",
        )
        .map_err(other)?
        .execute([&sent])
        .map_err(other)?;
        tx.prepare_cached(
            "INSERT OR FAIL INTO sends (at, channel, address)
             SELECT q.updated_at, c.channel, m.address
             FROM json_each(?1) AS j JOIN queue q ON q.message_id = j.value
                JOIN messages m ON m.id = j.value JOIN campaigns c ON c.id = m.campaign_id",
        )
        .map_err(other)?
        .execute([&sent])
        .map_err(other)?;
    }
    {
        let mut set = tx
            .prepare_cached(
                "UPDATE OR FAIL queue SET state = ?2, due_at = COALESCE(?3, due_at), attempts = ?4, provider_id = COALESCE(?5, provider_id),
                    last_error = ?6, lease_owner = NULL, lease_until = NULL, updated_at = ?7
                 WHERE message_id = ?1",
            )
            .map_err(other)?;
        for c in mine().filter(|c| !is_sent(c)) {
            let r = RecordedOutcome::of(&c.outcome);
            let attempts_after = if c.outcome.attempted() {
                c.attempt
            } else {
                c.attempt.saturating_sub(1)
            };
            set.execute(params![
                c.id,
                r.state.as_str(),
                r.due.map(ms),
                attempts_after,
                r.provider,
                r.error,
                ms(c.finished_at)
            ])
            .map_err(other)?;
        }
    }
    let mut suppress = None;
    let mut reasons = None;
    for c in mine() {
        match &c.outcome {
            Outcome::Refused {
                suppress: true,
                error,
                ..
            } => {
                let stmt = match &mut suppress {
                    Some(s) => s,
                    None => suppress.insert(tx.prepare_cached("INSERT INTO suppressions (address, reason, source, created_at) SELECT address, ?2, 'provider', ?3 FROM messages WHERE id = ?1 ON CONFLICT(address) DO NOTHING").map_err(other)?),
                };
                if stmt
                    .execute(params![c.id, error, ms(c.finished_at)])
                    .map_err(other)?
                    > 0
                {
                    // Other runs holding messages to this address must see it before they send.
                    bump_gate(tx)?;
                }
            }
            Outcome::Deferred { reasons: r, .. } if !r.is_empty() => {
                let stmt = match &mut reasons {
                    Some(s) => s,
                    None => reasons.insert(
                        tx.prepare_cached("UPDATE messages SET reasons = ?2 WHERE id = ?1")
                            .map_err(other)?,
                    ),
                };
                stmt.execute(params![c.id, r]).map_err(other)?;
            }
            _ => {}
        }
    }
    Ok(mine().count())
}

impl Store for SqliteStore {
    fn save_plan(
        &self,
        campaign: &CampaignRecord,
        messages: &mut dyn PlanSource,
    ) -> Result<PlanStats, StoreError> {
        let mut conn = self.conn()?;
        // For the plan's bulk writes: no foreign-key checks (every id written here was assigned
        // in this transaction, so they hold by construction) and a larger page cache. Immediate
        // foreign-key checks make every statement keep a statement journal, which wrote each
        // touched 16 KiB page to a temporary file again (measured: 200k extra writes per 1M
        // messages); a 2 MB cache spilled the same hot index pages to the WAL over and over.
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(other)?;
        conn.pragma_update(None, "cache_size", PLAN_CACHE_KIB)
            .map_err(other)?;
        let saved = if campaign.rules.follows.is_some() {
            self.save_drafts_in(&mut conn, campaign, messages)
        } else {
            self.save_plan_in(&mut conn, campaign, messages)
        };
        let restored = conn
            .pragma_update(None, "foreign_keys", "ON")
            .and_then(|()| conn.pragma_update(None, "cache_size", DEFAULT_CACHE_KIB));
        let stats = saved?;
        restored.map_err(other)?;
        drop(conn);
        // The campaign's rules may have changed: runs holding its claims re-read them.
        self.gated(|_| Ok(((), true)))?;
        Ok(stats)
    }

    fn recurrence_start(&self, campaign: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            "SELECT recurrence_start FROM campaigns WHERE name = ?1",
            [campaign],
            |r| r.get(0),
        )
        .optional()
        .map(Option::flatten)
        .map_err(other)
    }

    fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
        campaign: Option<&str>,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.complete_and_claim(
            &[],
            &ClaimRequest {
                owner,
                now,
                lease_now: now,
                lease_until,
                limit,
                campaign,
                ramps: &[],
            },
        )
        .map(|(_, claimed)| claimed)
    }

    fn complete(&self, owner: &str, completions: &[Completion]) -> Result<usize, StoreError> {
        if completions.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(other)?;
        let recorded = complete_in(&tx, owner, completions)?;
        tx.commit().map_err(other)?;
        Ok(recorded)
    }

    fn complete_and_claim(
        &self,
        completions: &[Completion],
        claim: &ClaimRequest<'_>,
    ) -> Result<(usize, Vec<Claimed>), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(other)?;
        let recorded = complete_in(&tx, claim.owner, completions)?;
        let claimed = if claim.limit > 0 {
            claim_in(&tx, claim)?
        } else {
            Vec::new()
        };
        tx.commit().map_err(other)?;
        Ok((recorded, claimed))
    }

    fn gate(&self) -> Result<u64, StoreError> {
        self.check_file()?;
        let mut reader = self
            .reader
            .lock()
            .map_err(|_| StoreError::Other("the gate reader was poisoned".into()))?;
        if reader.is_none() {
            let conn = Connection::open(&self.path).map_err(other)?;
            conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
                .map_err(other)?;
            *reader = Some(conn);
        }
        let Some(conn) = reader.as_ref() else {
            return Err(StoreError::Other("the gate reader is not open".into()));
        };
        let value: i64 = conn
            .prepare_cached("SELECT value FROM control WHERE name = 'gate'")
            .map_err(other)?
            .query_row([], |r| r.get(0))
            .map_err(other)?;
        Ok(value as u64)
    }

    fn renew_leases(&self, owner: &str, until: Timestamp) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        let n = conn
            .prepare_cached(
                "UPDATE OR FAIL queue SET lease_until = ?2 WHERE state = 'sending' AND lease_owner = ?1",
            )
            .map_err(other)?
            .execute(params![owner, ms(until)])
            .map_err(other)?;
        Ok(n as u64)
    }

    fn next_due(
        &self,
        campaign: Option<&str>,
        except: &[&str],
    ) -> Result<Option<Timestamp>, StoreError> {
        let conn = self.conn()?;
        if !except.is_empty() && !ramp::others_than(&conn, except, campaign)? {
            return Ok(None);
        }
        let pending: Option<i64> = conn
            .prepare_cached(
                "SELECT MIN(q.due_at) FROM queue q JOIN campaigns c ON c.id = q.campaign_id WHERE q.state = 'pending' AND c.status = 'active' AND (?1 IS NULL OR c.name = ?1)
                   AND c.channel NOT IN (SELECT value FROM json_each(?2))",
            )
            .map_err(other)?
            .query_row(params![campaign, json_list(except)?], |r| r.get(0))
            .map_err(other)?;
        Ok(pending.map(ts))
    }

    fn next_lease_expiry(
        &self,
        campaign: Option<&str>,
        except: &[&str],
    ) -> Result<Option<Timestamp>, StoreError> {
        let conn = self.conn()?;
        if !except.is_empty() && !ramp::others_than(&conn, except, campaign)? {
            return Ok(None);
        }
        let lease: Option<i64> = conn
            .prepare_cached(
                "SELECT MIN(q.lease_until) FROM queue q JOIN campaigns c ON c.id = q.campaign_id WHERE q.state = 'sending' AND c.status = 'active' AND (?1 IS NULL OR c.name = ?1)
                   AND c.channel NOT IN (SELECT value FROM json_each(?2))",
            )
            .map_err(other)?
            .query_row(params![campaign, json_list(except)?], |r| r.get(0))
            .map_err(other)?;
        Ok(lease.map(ts))
    }

    fn ramp_usage(
        &self,
        ramps: &[ChannelRamp],
        now: Timestamp,
        lease_now: Timestamp,
        campaign: Option<&str>,
    ) -> Result<Vec<RampUsage>, StoreError> {
        if ramps.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn()?;
        // One read transaction: the counts of every channel from one snapshot.
        let tx = conn.unchecked_transaction().map_err(other)?;
        let usage = ramp::usage(&tx, ramps, ms(now), ms(lease_now), campaign)?;
        tx.commit().map_err(other)?;
        Ok(usage)
    }

    fn ramp_held_back(
        &self,
        channel: &str,
        before: Timestamp,
        campaign: Option<&str>,
    ) -> Result<u64, StoreError> {
        ramp::held_back(&*self.conn()?, channel, ms(before), campaign)
    }

    fn campaign(&self, name: &str) -> Result<Option<CampaignInfo>, StoreError> {
        let conn = self.conn()?;
        let row: Option<(String, String, Option<String>, String)> = conn
            .query_row(
                "SELECT channel, status, status_reason, rules FROM campaigns WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(other)?;
        let Some((channel, status, status_reason, rules)) = row else {
            return Ok(None);
        };
        CampaignInfo::from_stored(name, channel, &status, status_reason, &rules)
            .map(Some)
            .map_err(other)
    }

    fn set_campaign_status(
        &self,
        name: &str,
        status: CampaignStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = self.gated(|tx| {
            let n = tx
                .execute("UPDATE campaigns SET status = ?2, status_reason = ?3, updated_at = ?4 WHERE name = ?1", params![name, status.as_str(), reason, ms(Timestamp::now())])
                .map_err(other)?;
            Ok((n, n > 0))
        })?;
        if n == 0 {
            Err(StoreError::UnknownCampaign(name.into()))
        } else {
            Ok(())
        }
    }

    fn cancel_pending(&self, name: &str) -> Result<u64, StoreError> {
        self.gated(|tx| {
            let n = tx
                .execute(
                    "UPDATE queue SET state = 'cancelled', last_error = 'campaign cancelled', updated_at = ?2 WHERE state = 'pending' AND campaign_id = (SELECT id FROM campaigns WHERE name = ?1)",
                    params![name, ms(Timestamp::now())],
                )
                .map_err(other)?;
            Ok((n as u64, true))
        })
    }

    fn summaries(&self, campaign: Option<&str>) -> Result<Vec<CampaignSummary>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT id, name, channel, status, status_reason FROM campaigns WHERE (?1 IS NULL OR name = ?1) ORDER BY name").map_err(other)?;
        let campaigns: Vec<(i64, String, String, String, Option<String>)> = stmt
            .query_map(params![campaign], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(other)?
            .collect::<Result<_, _>>()
            .map_err(other)?;
        if let Some(name) = campaign
            && campaigns.is_empty()
        {
            return Err(StoreError::UnknownCampaign(name.into()));
        }
        let mut out = Vec::new();
        for (id, name, channel, status, status_reason) in campaigns {
            let mut counts = BTreeMap::new();
            let mut st = conn
                .prepare_cached(
                    "SELECT state, COUNT(*) FROM queue WHERE campaign_id = ?1 GROUP BY state",
                )
                .map_err(other)?;
            for r in st
                .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(other)?
            {
                let (s, n) = r.map_err(other)?;
                let n = n as u64;
                if let Some(s) = State::parse(&s) {
                    counts.insert(s, n);
                }
            }
            let next_due: Option<i64> = conn
                .query_row(
                    "SELECT MIN(due_at) FROM queue WHERE campaign_id = ?1 AND state = 'pending'",
                    [id],
                    |r| r.get(0),
                )
                .map_err(other)?;
            let last_sent: Option<i64> = conn
                .query_row("SELECT MAX(a.finished_at) FROM attempts a JOIN messages m ON m.id = a.message_id WHERE m.campaign_id = ?1 AND a.outcome = 'sent'", [id], |r| r.get(0))
                .map_err(other)?;
            let mut errs = conn
                .prepare_cached("SELECT a.error, COUNT(*) FROM attempts a JOIN messages m ON m.id = a.message_id WHERE m.campaign_id = ?1 AND a.error IS NOT NULL GROUP BY a.error ORDER BY 2 DESC, 1 LIMIT 5")
                .map_err(other)?;
            let top_errors = errs
                .query_map([id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
                .map_err(other)?
                .collect::<Result<_, _>>()
                .map_err(other)?;
            out.push(CampaignSummary {
                name,
                channel,
                status: CampaignStatus::parse(&status).unwrap_or(CampaignStatus::Paused),
                status_reason,
                counts,
                next_due: next_due.map(ts),
                last_sent: last_sent.map(ts),
                top_errors,
            });
        }
        Ok(out)
    }

    fn messages(&self, f: &MessageFilter) -> Result<Vec<MessageRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT m.id, c.name, m.recipient, m.occurrence, c.channel, m.address, m.zone, q.state, q.planned_at, q.due_at, q.attempts, q.provider_id, q.last_error, m.reasons
                 FROM messages m JOIN queue q ON q.message_id = m.id JOIN campaigns c ON c.id = m.campaign_id
                 WHERE (?1 IS NULL OR c.name = ?1) AND (?2 IS NULL OR q.state = ?2) AND (?3 IS NULL OR m.recipient = ?3)
                 ORDER BY c.name, q.due_at, m.recipient, m.occurrence LIMIT ?4",
            )
            .map_err(other)?;
        let mut local = LocalTimes::default();
        let rows = stmt
            .query_map(
                params![
                    f.campaign,
                    f.state.map(State::as_str),
                    f.recipient,
                    f.limit.map(|l| l as i64).unwrap_or(-1)
                ],
                |r| {
                    let (campaign, recipient, occurrence): (String, String, u32) =
                        (r.get(1)?, r.get(2)?, r.get(3)?);
                    let zone: String = r.get(6)?;
                    Ok(MessageRow {
                        key: message_key(&campaign, &recipient, occurrence),
                        campaign,
                        recipient,
                        occurrence,
                        channel: r.get(4)?,
                        address: r.get(5)?,
                        planned_local: local.format(ts(r.get(8)?), &zone),
                        zone,
                        state: State::parse(&r.get::<_, String>(7)?).unwrap_or(State::Pending),
                        due_at: ts(r.get(9)?),
                        attempts: r.get(10)?,
                        provider_id: r.get(11)?,
                        last_error: r.get(12)?,
                        reasons: r.get(13)?,
                    })
                },
            )
            .map_err(other)?;
        rows.collect::<Result<_, _>>().map_err(other)
    }

    fn sends_among(
        &self,
        pairs: &[(&str, &str)],
        since: Timestamp,
    ) -> Result<HashMap<(String, String), Vec<Timestamp>>, StoreError> {
        let mut out = HashMap::new();
        if pairs.is_empty() {
            return Ok(out);
        }
        let conn = self.conn()?;
        let mut window = self.sends.lock().map_err(|_| {
            StoreError::Other("the send window was poisoned by an earlier panic".into())
        })?;
        window.update(&conn, ms(since))?;
        for &(channel, address) in pairs {
            let key = (channel.to_owned(), address.to_owned());
            if let Some(v) = window.sends.get(&key) {
                let mut at: Vec<i64> = v.iter().copied().filter(|&a| a > ms(since)).collect();
                if !at.is_empty() {
                    at.sort_unstable();
                    out.insert(key, at.into_iter().map(ts).collect());
                }
            }
        }
        Ok(out)
    }

    fn suppress(
        &self,
        address: &str,
        reason: Option<&str>,
        source: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.gated(|tx| {
            let n = tx
                .execute("INSERT INTO suppressions (address, reason, source, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(address) DO NOTHING", params![address, reason, source, ms(now)])
                .map_err(other)?;
            Ok((n > 0, n > 0))
        })
    }

    fn unsuppress(&self, address: &str) -> Result<bool, StoreError> {
        self.gated(|tx| {
            let n = tx
                .execute("DELETE FROM suppressions WHERE address = ?1", [address])
                .map_err(other)?;
            Ok((n > 0, n > 0))
        })
    }

    fn suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT address, reason, source, created_at FROM suppressions ORDER BY address",
            )
            .map_err(other)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Suppression {
                    address: r.get(0)?,
                    reason: r.get(1)?,
                    source: r.get(2)?,
                    created_at: ts(r.get(3)?),
                })
            })
            .map_err(other)?;
        rows.collect::<Result<_, _>>().map_err(other)
    }

    fn is_suppressed(&self, address: &str) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM suppressions WHERE address = ?1)")
            .map_err(other)?;
        stmt.query_row([address], |r| r.get(0)).map_err(other)
    }

    fn suppressed_among(
        &self,
        addresses: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if addresses.is_empty() {
            return Ok(std::collections::HashSet::new());
        }
        let conn = self.conn()?;
        let list = serde_json::to_string(addresses).map_err(other)?;
        let mut stmt = conn
            .prepare_cached("SELECT address FROM suppressions WHERE address IN (SELECT value FROM json_each(?1))")
            .map_err(other)?;
        let rows = stmt
            .query_map([list], |r| r.get::<_, String>(0))
            .map_err(other)?;
        rows.collect::<Result<_, _>>().map_err(other)
    }

    fn last_run(
        &self,
        campaign: &str,
        gap: jiff::SignedDuration,
    ) -> Result<Option<RunStats>, StoreError> {
        let conn = self.conn()?;
        let row: (i64, Option<i64>, Option<i64>, Option<i64>, i64) = conn
            .query_row(
                "WITH a AS (
                    SELECT a.started_at AS s, a.finished_at AS f, a.outcome AS o
                    FROM attempts a JOIN messages m ON m.id = a.message_id JOIN campaigns c ON c.id = m.campaign_id
                    WHERE c.name = ?1),
                 b AS (SELECT s, s - MAX(f) OVER (ORDER BY s ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS pause FROM a),
                 st AS (SELECT MAX(s) AS start FROM b WHERE pause IS NULL OR pause > ?2)
                 SELECT COUNT(*), MIN(a.s), MAX(a.s), MAX(a.f), COALESCE(SUM(a.o = 'sent'), 0)
                 FROM a, st WHERE st.start IS NOT NULL AND a.s >= st.start",
                params![campaign, gap.as_millis() as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .map_err(other)?;
        Ok(match row {
            (n, Some(s), Some(l), Some(f), sent) if n > 0 => Some(RunStats {
                started_at: ts(s),
                last_started_at: ts(l),
                finished_at: ts(f),
                attempts: n as u64,
                sent: sent as u64,
            }),
            _ => None,
        })
    }

    fn report(
        &self,
        campaign: &str,
        each: &mut dyn FnMut(ReportRow) -> std::io::Result<()>,
    ) -> Result<u64, ReportError> {
        let conn = self.conn()?;
        require_campaign(&conn, campaign)?;
        let mut stmt = conn
            .prepare(
                "SELECT m.id, c.name, m.recipient, m.occurrence, c.channel, m.address, m.zone, m.locale, q.state,
                        NULL, q.planned_at, q.due_at, m.reasons, q.attempts, q.provider_id, q.last_error,
                        (SELECT MIN(a.started_at) FROM attempts a WHERE a.message_id = m.id),
                        (SELECT MAX(a.finished_at) FROM attempts a WHERE a.message_id = m.id),
                        (SELECT a.outcome FROM attempts a WHERE a.message_id = m.id ORDER BY a.attempt DESC, a.id DESC LIMIT 1),
                        (SELECT a.code FROM attempts a WHERE a.message_id = m.id ORDER BY a.attempt DESC, a.id DESC LIMIT 1),
                        (SELECT MAX(a.finished_at) FROM attempts a WHERE a.message_id = m.id AND a.outcome = 'sent'),
                        d.status, d.delivered_at, d.read_at, d.code, d.opted_out_at,
                        json_extract(m.content, '$.variant')
                 FROM messages m JOIN queue q ON q.message_id = m.id JOIN campaigns c ON c.id = m.campaign_id
                 LEFT JOIN delivery d ON d.message_id = m.id
                 WHERE c.name = ?1
                 ORDER BY q.due_at, m.recipient, m.occurrence",
            )
            .map_err(other)?;
        let mut rows = stmt.query([campaign]).map_err(other)?;
        let mut n = 0;
        let mut local = LocalTimes::default();
        while let Some(r) = rows.next().map_err(other)? {
            let row = (|| -> rusqlite::Result<ReportRow> {
                let (campaign, recipient, occurrence): (String, String, u32) =
                    (r.get(1)?, r.get(2)?, r.get(3)?);
                let (zone, planned_at): (String, i64) = (r.get(6)?, r.get(10)?);
                Ok(ReportRow {
                    message_id: message_key(&campaign, &recipient, occurrence),
                    campaign,
                    recipient,
                    occurrence,
                    channel: r.get(4)?,
                    address: r.get(5)?,
                    planned_local: local.format(ts(planned_at), &zone),
                    zone,
                    locale: r.get(7)?,
                    state: State::parse(&r.get::<_, String>(8)?).unwrap_or(State::Pending),
                    planned_at: ts(planned_at),
                    due_at: ts(r.get(11)?),
                    reasons: r.get(12)?,
                    attempts: r.get(13)?,
                    provider_id: r.get(14)?,
                    last_error: r.get(15)?,
                    first_attempt_at: r.get::<_, Option<i64>>(16)?.map(ts),
                    last_attempt_at: r.get::<_, Option<i64>>(17)?.map(ts),
                    last_outcome: r.get(18)?,
                    last_code: r.get(19)?,
                    sent_at: r.get::<_, Option<i64>>(20)?.map(ts),
                    delivery: r.get::<_, Option<String>>(21)?.filter(|s| s != "none"),
                    delivered_at: r.get::<_, Option<i64>>(22)?.map(ts),
                    read_at: r.get::<_, Option<i64>>(23)?.map(ts),
                    delivery_code: r.get(24)?,
                    opted_out_at: r.get::<_, Option<i64>>(25)?.map(ts),
                    variant: r.get(26)?,
                })
            })()
            .map_err(other)?;
            each(row)?;
            n += 1;
        }
        Ok(n)
    }

    fn worker_heartbeat(
        &self,
        owner: &str,
        channels: &[&str],
        ttl: jiff::SignedDuration,
    ) -> Result<FleetView, StoreError> {
        self.heartbeat(owner, channels, ttl)
    }

    fn record_receipts(
        &self,
        receipts: &[crate::receipt::Receipt],
        now: Timestamp,
    ) -> Result<Vec<crate::receipt::Applied>, StoreError> {
        self.record_receipts_in(receipts, now)
    }

    fn match_receipts(&self, since: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        self.match_receipts_in(since, now)
    }

    fn funnel(
        &self,
        campaign: Option<&str>,
        by: crate::receipt::FunnelBy,
    ) -> Result<Vec<crate::receipt::Funnel>, StoreError> {
        self.funnel_in(campaign, by)
    }

    fn retire_worker(&self, owner: &str) -> Result<(), StoreError> {
        self.retire(owner)
    }

    fn release_follow_ups(&self, now: Timestamp) -> Result<ReleaseStats, StoreError> {
        self.release_follow_ups_in(now)
    }

    fn parent_facts(
        &self,
        parent: &str,
        recipients: Option<&[&str]>,
    ) -> Result<Vec<crate::follow_up::ParentFacts>, StoreError> {
        self.parent_facts_in(parent, recipients)
    }

    fn follow_up_progress(
        &self,
        campaign: &str,
        parent: &str,
    ) -> Result<FollowUpProgress, StoreError> {
        self.follow_up_progress_in(campaign, parent)
    }

    fn record_test_send(&self, t: &super::TestSend) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO test_sends (campaign, recipient, channel, address, sent_at, outcome, provider_id, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![t.campaign, t.recipient, t.channel, t.address, ms(t.sent_at), t.outcome, t.provider_id, t.error],
        )
        .map_err(other)?;
        Ok(())
    }

    fn test_sends(&self, campaign: Option<&str>) -> Result<Vec<super::TestSend>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT campaign, recipient, channel, address, sent_at, outcome, provider_id, error
                 FROM test_sends WHERE (?1 IS NULL OR campaign = ?1) ORDER BY sent_at, id",
            )
            .map_err(other)?;
        let rows = stmt
            .query_map([campaign], |r| {
                Ok(super::TestSend {
                    campaign: r.get(0)?,
                    recipient: r.get(1)?,
                    channel: r.get(2)?,
                    address: r.get(3)?,
                    sent_at: ts(r.get(4)?),
                    outcome: r.get(5)?,
                    provider_id: r.get(6)?,
                    error: r.get(7)?,
                })
            })
            .map_err(other)?;
        rows.collect::<Result<_, _>>().map_err(other)
    }

    fn report_attempts(
        &self,
        campaign: &str,
        each: &mut dyn FnMut(AttemptRow) -> std::io::Result<()>,
    ) -> Result<u64, ReportError> {
        let conn = self.conn()?;
        require_campaign(&conn, campaign)?;
        let mut stmt = conn
            .prepare(
                "SELECT m.id, c.name, m.recipient, m.occurrence, m.address, a.attempt, a.started_at, a.finished_at,
                        a.outcome, a.provider_id, a.code, a.error
                 FROM attempts a JOIN messages m ON m.id = a.message_id JOIN campaigns c ON c.id = m.campaign_id
                 WHERE c.name = ?1
                 ORDER BY m.recipient, m.occurrence, a.attempt, a.id",
            )
            .map_err(other)?;
        let mut rows = stmt.query([campaign]).map_err(other)?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(other)? {
            let row = (|| -> rusqlite::Result<AttemptRow> {
                let (campaign, recipient, occurrence): (String, String, u32) =
                    (r.get(1)?, r.get(2)?, r.get(3)?);
                Ok(AttemptRow {
                    message_id: message_key(&campaign, &recipient, occurrence),
                    campaign,
                    recipient,
                    occurrence,
                    address: r.get(4)?,
                    attempt: r.get(5)?,
                    started_at: ts(r.get(6)?),
                    finished_at: ts(r.get(7)?),
                    outcome: r.get(8)?,
                    provider_id: r.get(9)?,
                    code: r.get(10)?,
                    error: r.get(11)?,
                })
            })()
            .map_err(other)?;
            each(row)?;
            n += 1;
        }
        Ok(n)
    }
}

/// Inserts new messages of one plan: the message row and its queue row, with ids assigned
/// here as SQLite would (max + 1, ascending; the plan's write lock is held, so nobody else
/// assigns any). One single-row statement per table and message: a multi-row INSERT always
/// keeps a statement journal (every page it touches copied to a temporary file first):
/// measured on 1M messages, 128-row statements wrote 515k pages there and took 40% more CPU.
struct NewRows<'c> {
    message: rusqlite::CachedStatement<'c>,
    queue: rusqlite::CachedStatement<'c>,
    next_id: i64,
    campaign: i64,
    generation: i64,
    now: i64,
}

impl<'c> NewRows<'c> {
    fn prepare(
        tx: &'c rusqlite::Transaction<'_>,
        campaign: i64,
        generation: i64,
        now: i64,
    ) -> Result<NewRows<'c>, StoreError> {
        let next_id = tx
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM messages", [], |r| {
                r.get(0)
            })
            .map_err(other)?;
        Ok(NewRows {
            message: tx.prepare_cached("INSERT INTO messages (id, campaign_id, recipient, occurrence, address, zone, locale, reasons, content, vars, generation) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)").map_err(other)?,
            queue: tx.prepare_cached("INSERT INTO queue (message_id, campaign_id, state, due_at, planned_at, updated_at, last_error) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)").map_err(other)?,
            next_id,
            campaign,
            generation,
            now,
        })
    }

    /// Stores `m` as `pending`, or `skipped` with its reason.
    fn insert(&mut self, m: &MessageRef<'_>) -> Result<(), StoreError> {
        let id = self.next_id;
        let state = if m.skipped.is_some() {
            State::Skipped
        } else {
            State::Pending
        };
        self.message
            .execute(params![
                id,
                self.campaign,
                m.recipient,
                m.occurrence,
                m.address,
                m.zone,
                m.locale,
                m.reasons,
                m.content,
                m.vars,
                self.generation
            ])
            .map_err(other)?;
        self.queue
            .execute(params![
                id,
                self.campaign,
                state.as_str(),
                ms(m.at),
                self.now,
                m.skipped
            ])
            .map_err(other)?;
        self.next_id += 1;
        Ok(())
    }
}

impl SqliteStore {
    fn save_plan_in(
        &self,
        conn: &mut Connection,
        campaign: &CampaignRecord,
        messages: &mut dyn PlanSource,
    ) -> Result<PlanStats, StoreError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(other)?;
        let now = ms(Timestamp::now());
        let (cid, generation, status) = upsert_campaign(&tx, campaign, now)?;
        // A message a re-plan cancelled (`cancelled_by = 'plan'`) is planned again when a
        // plan includes it; one cancelled any other way never is, and nothing of a cancelled
        // campaign is (`disparo cancel` is final).
        let revivable = status != CampaignStatus::Cancelled.as_str();
        let fresh = generation == 1;
        let mut stats = PlanStats::default();
        let mut new_rows = NewRows::prepare(&tx, cid, generation, now)?;
        if fresh {
            // A new campaign has nothing to look up or update: rows go in as they come.
            while let Some(item) = messages.next_message() {
                let m = item.map_err(StoreError::Other)?;
                if m.skipped.is_some() {
                    stats.skipped += 1;
                }
                new_rows.insert(&m)?;
                stats.inserted += 1;
            }
            drop(new_rows);
            tx.commit().map_err(other)?;
            return Ok(stats);
        }
        {
            // The third column says whether the stored row is what this plan computes (same
            // content, variables, address, zone, locale, reasons, state, time and skip reason):
            // such a row is only marked as still planned, and counted unchanged, not updated.
            let mut find = tx.prepare_cached("SELECT m.id, CASE WHEN q.state = 'pending' OR q.state = 'skipped' THEN 1 WHEN q.state = 'cancelled' AND q.cancelled_by = 'plan' THEN 2 ELSE 0 END,
                    (m.address IS ?4 AND m.zone IS ?5 AND m.locale IS ?6 AND m.reasons IS ?7 AND m.content IS ?8 AND m.vars IS ?9
                     AND q.state = ?10 AND q.due_at = ?11 AND q.planned_at = ?11 AND q.last_error IS ?12 AND q.cancelled_by IS NULL)
                 FROM messages m JOIN queue q ON q.message_id = m.id WHERE m.campaign_id = ?1 AND m.recipient = ?2 AND m.occurrence = ?3").map_err(other)?;
            let mut update_msg = tx.prepare_cached("UPDATE messages SET address = ?2, zone = ?3, locale = ?4, reasons = ?5, content = ?6, vars = ?7, generation = ?8 WHERE id = ?1").map_err(other)?;
            let mut update_q = tx.prepare_cached("UPDATE queue SET state = ?2, due_at = ?3, planned_at = ?3, updated_at = ?4, last_error = ?5, cancelled_by = NULL WHERE message_id = ?1").map_err(other)?;
            let mut touch = tx
                .prepare_cached("UPDATE messages SET generation = ?2 WHERE id = ?1")
                .map_err(other)?;
            while let Some(item) = messages.next_message() {
                let m = item.map_err(StoreError::Other)?;
                let state = if m.skipped.is_some() {
                    State::Skipped
                } else {
                    State::Pending
                };
                if m.skipped.is_some() {
                    stats.skipped += 1;
                }
                // 1: pending or skipped, updated; 2: cancelled by a re-plan, planned again
                // unless the campaign is cancelled; 0: sent, in flight or done, kept.
                let existing: Option<(i64, u8, bool)> = find
                    .query_row(
                        params![
                            cid,
                            m.recipient,
                            m.occurrence,
                            m.address,
                            m.zone,
                            m.locale,
                            m.reasons,
                            m.content,
                            m.vars,
                            state.as_str(),
                            ms(m.at),
                            m.skipped
                        ],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()
                    .map_err(other)?;
                match existing {
                    None => {
                        new_rows.insert(&m)?;
                        stats.inserted += 1;
                    }
                    Some((id, 1, true)) => {
                        touch.execute(params![id, generation]).map_err(other)?;
                        stats.unchanged += 1;
                    }
                    Some((id, kind, _)) if kind == 1 || (kind == 2 && revivable) => {
                        update_msg
                            .execute(params![
                                id, m.address, m.zone, m.locale, m.reasons, m.content, m.vars,
                                generation
                            ])
                            .map_err(other)?;
                        update_q
                            .execute(params![id, state.as_str(), ms(m.at), now, m.skipped])
                            .map_err(other)?;
                        stats.updated += 1;
                    }
                    Some((id, _, _)) => {
                        touch.execute(params![id, generation]).map_err(other)?;
                        stats.kept += 1;
                    }
                }
            }
        }
        drop(new_rows);
        stats.cancelled = tx
            .execute(
                "UPDATE queue SET state = 'cancelled', cancelled_by = 'plan', last_error = 'no longer planned (removed from the audience or the schedule)', updated_at = ?3
                 WHERE campaign_id = ?1 AND state = 'pending'
                   AND message_id IN (SELECT id FROM messages WHERE campaign_id = ?1 AND generation < ?2)",
                params![cid, generation, now],
            )
            .map_err(other)? as u64;
        tx.commit().map_err(other)?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database planned by a disparo that stored the key and the local time (schema V1)
    /// opens under V2 with the same message key and local planned time, now computed.
    #[test]
    fn v1_database_migrates_and_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            embedded::migrations::runner()
                .set_target(refinery::Target::Version(1))
                .run(&mut conn)
                .unwrap();
            conn.execute_batch(
                "INSERT INTO campaigns (id, name, channel, rules, created_at, updated_at) VALUES (1, 'bf', 'sms', '{}', 0, 0);
                 INSERT INTO messages (id, campaign_id, recipient, occurrence, key, address, zone, locale, planned_local, content, vars, generation)
                   VALUES (1, 1, 'c001', 0, 'stored-key-is-ignored', '+5511999990000', 'America/Sao_Paulo', 'pt-BR', '2026-11-27T10:00:00-03:00', '{\"body\":\"Oi\"}', '{}', 1);
                 INSERT INTO queue (message_id, campaign_id, state, due_at, planned_at, updated_at) VALUES (1, 1, 'pending', 1795784400000, 1795784400000, 0);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let rows = store.messages(&MessageFilter::default()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].key, message_key("bf", "c001", 0));
        assert_eq!(rows[0].planned_local, "2026-11-27T10:00:00-03:00");
        assert_eq!(rows[0].state, State::Pending);
        let conn = store.conn().unwrap();
        let bad = conn.execute(
            "INSERT INTO queue (message_id, campaign_id, state, due_at, planned_at, updated_at) VALUES (2, 1, 'bogus', 0, 0, 0)",
            [],
        );
        assert!(bad.is_err(), "the state CHECK survives the rebuild");
    }
}
