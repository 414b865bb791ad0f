//! The PostgreSQL store: one schedule shared by any number of `run` workers on any number of
//! machines, with the same guarantees as SQLite (tests/conformance is the judge).
//!
//! - Claims lock rows with `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same
//!   message and never wait on each other; leases are on the database's clock (`now()`), so
//!   workers whose clocks disagree still agree on who holds what.
//! - `plan` loads its messages with binary `COPY` into a staging table and merges them in SQL,
//!   in one transaction.
//! - A lost connection (a server restart) is reopened with a bounded backoff, and the call
//!   runs again where that is safe (see [`conn::Replay`]).
//!
//! Files: `conn` (connections, errors, retries), `plan` (COPY and merge), `claims` (claims,
//! outcomes, leases, the fleet's heartbeats), `queries` (everything read by commands).

mod claims;
mod conn;
mod follow_ups;
mod plan;
mod queries;
mod ramp;
mod receipts;

use std::sync::{Arc, Mutex, MutexGuard};

use ::postgres::Client;

use self::conn::{Link, Replay, Target, describe};
use super::open::{Access, CheckReport, MigrationReport};
use super::*;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// The advisory lock under which migrations run: ten workers starting at once migrate once.
const MIGRATION_LOCK: i64 = 0x6469_7370_6172_6f01;
/// The advisory lock that serialises claims of capped campaigns (docs/delivery.md).
const CLAIM_LOCK: i64 = 0x6469_7370_6172_6f02;

fn known_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// The schema version in the database (0: no schema).
fn schema_version(client: &mut Client) -> Result<i64, ::postgres::Error> {
    let row = client.query_one(
        "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
        &[],
    )?;
    if !row.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client.query_one(
        "SELECT COALESCE(MAX(version), 0)::bigint FROM refinery_schema_history",
        &[],
    )?;
    Ok(row.get(0))
}

/// A PostgreSQL schedule. Keeps two connections: the store thread's, and the gate reader's
/// (`gate()` is called from the network thread while the store thread writes).
pub struct PostgresStore {
    target: Arc<Target>,
    main: Mutex<Link>,
    reader: Mutex<Link>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.target.shown)
            .finish()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` and checks its schema for `access`. Fails at once,
    /// with a hint, when the server cannot be reached (no retrying before the first
    /// connection: a wrong URL should not look like a hang).
    pub fn open(url: &str, access: Access) -> Result<PostgresStore, StoreError> {
        let target = Arc::new(Target::parse(url)?);
        let mut client = target.connect().map_err(|e| target.connect_error(&e))?;
        let found = schema_version(&mut client).map_err(|e| read_error(&target, &e))?;
        let known = known_version();
        if found > known {
            return Err(newer(&target, found, known));
        }
        if found == 0 && access != Access::Create {
            return Err(StoreError::Missing {
                location: target.shown.clone(),
            });
        }
        if found < known {
            if access == Access::ReadOnly {
                return Err(super::open::behind(target.shown.clone(), found, known));
            }
            migrate_locked(&target, &mut client)?;
        }
        Ok(PostgresStore {
            main: Mutex::new(Link::new(target.clone(), Some(client))),
            reader: Mutex::new(Link::new(target.clone(), None)),
            target,
        })
    }

    pub(crate) fn migrate(url: &str) -> Result<MigrationReport, StoreError> {
        let target = Target::parse(url)?;
        let mut client = target.connect().map_err(|e| target.connect_error(&e))?;
        let (from, to, applied) = migrate_locked(&target, &mut client)?;
        Ok(MigrationReport {
            backend: "postgres",
            location: target.shown.clone(),
            from,
            to,
            applied,
        })
    }

    pub(crate) fn check(url: &str) -> Result<CheckReport, StoreError> {
        let target = Target::parse(url)?;
        let mut client = target.connect().map_err(|e| target.connect_error(&e))?;
        let found = schema_version(&mut client).map_err(|e| read_error(&target, &e))?;
        if found == 0 {
            return Err(StoreError::Missing {
                location: target.shown.clone(),
            });
        }
        let server: String = client
            .query_one("SELECT current_setting('server_version')", &[])
            .map_err(|e| read_error(&target, &e))?
            .get(0);
        let known = known_version();
        Ok(CheckReport {
            backend: "postgres",
            location: target.shown.clone(),
            schema_version: found,
            known_version: known,
            state: CheckReport::state_of(found, known),
            server_version: format!("PostgreSQL {server}"),
        })
    }

    fn link(&self, reader: bool) -> Result<MutexGuard<'_, Link>, StoreError> {
        let m = if reader { &self.reader } else { &self.main };
        m.lock().map_err(|_| {
            StoreError::Other("the database connection was poisoned by an earlier panic".into())
        })
    }

    /// Runs `f` on the main connection (see [`Link::run`]). The synchronous client drives
    /// its own small runtime, which must not start inside another: called from async code,
    /// the call runs on a scoped thread.
    fn with<T: Send>(
        &self,
        what: &str,
        replay: Replay,
        f: impl FnMut(&mut Client) -> Result<T, ::postgres::Error> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| self.link(false)?.run(what, replay, f))
    }

    /// Runs `f` in one transaction that bumps the gate when `f` says it changed something a
    /// run holding claims must see.
    fn gated<T: Send>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut ::postgres::Transaction<'_>) -> Result<(T, bool), ::postgres::Error>
        + Send,
    ) -> Result<T, StoreError> {
        self.with(what, Replay::Safe, |client| {
            let mut tx = client.transaction()?;
            let (value, changed) = f(&mut tx)?;
            if changed {
                bump_gate(&mut tx)?;
            }
            tx.commit()?;
            Ok(value)
        })
    }
}

/// Runs `f` where the synchronous client may block: here, or on a scoped thread when this
/// thread is inside a tokio runtime.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Refuses to run a call that cannot move to another thread (it borrows a plan's source or a
/// report's writer) inside a tokio runtime, where the client would panic.
fn require_off_runtime(what: &str) -> Result<(), StoreError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(StoreError::Other(format!(
            "bug: the PostgreSQL store was asked to {what} from inside an async runtime; call it from a blocking thread"
        )));
    }
    Ok(())
}

fn bump_gate(tx: &mut ::postgres::Transaction<'_>) -> Result<(), ::postgres::Error> {
    tx.execute(
        "UPDATE control SET value = value + 1 WHERE name = 'gate'",
        &[],
    )?;
    Ok(())
}

fn newer(target: &Target, found: i64, known: i64) -> StoreError {
    StoreError::NewerSchema {
        path: target.shown.clone(),
        found,
        supported: known,
    }
}

fn read_error(target: &Target, e: &::postgres::Error) -> StoreError {
    if conn::is_retryable(e) {
        return target.connect_error(e);
    }
    StoreError::Open {
        path: target.shown.clone(),
        reason: describe(e),
        hint: "check that the URL names a disparo database and that its user may read it".into(),
    }
}

/// Brings the schema up to date under [`MIGRATION_LOCK`]; returns the versions before and
/// after and the migrations applied. The version is read again once the lock is held:
/// another worker may have migrated meanwhile.
fn migrate_locked(
    target: &Target,
    client: &mut Client,
) -> Result<(i64, i64, Vec<String>), StoreError> {
    let fail = |e: &dyn std::fmt::Display| {
        StoreError::Open {
        path: target.shown.clone(),
        reason: e.to_string(),
        hint: "the schema could not be updated; check that the user may create tables in this database".into(),
    }
    };
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| fail(&describe(&e)))?;
    let result = (|| {
        let from = schema_version(client).map_err(|e| fail(&describe(&e)))?;
        let known = known_version();
        if from > known {
            return Err(newer(target, from, known));
        }
        let mut applied = Vec::new();
        if from < known {
            let report = embedded::migrations::runner()
                .set_grouped(true)
                .run(client)
                .map_err(|e| fail(&e))?;
            applied = report
                .applied_migrations()
                .iter()
                .map(|m| m.to_string())
                .collect();
        }
        let to = schema_version(client).map_err(|e| fail(&describe(&e)))?;
        Ok((from, to, applied))
    })();
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    let done = result?;
    unlocked.map_err(|e| fail(&describe(&e)))?;
    Ok(done)
}

/// Instants are stored to the millisecond, as SQLite stores them: what is read back equals
/// what was written, on both stores.
fn to_ms(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t)
}

fn millis(d: jiff::SignedDuration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(if d.is_negative() { i64::MIN } else { i64::MAX })
}

impl Store for PostgresStore {
    fn save_plan(
        &self,
        campaign: &CampaignRecord,
        messages: &mut dyn PlanSource,
    ) -> Result<PlanStats, StoreError> {
        require_off_runtime("save a plan")?;
        let mut link = self.link(false)?;
        plan::save_plan(&mut link, campaign, messages)
    }

    fn recurrence_start(&self, campaign: &str) -> Result<Option<String>, StoreError> {
        queries::recurrence_start(self, campaign)
    }

    fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
        campaign: Option<&str>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let req = ClaimRequest {
            owner,
            now,
            lease_now: now,
            lease_until,
            limit,
            campaign,
            ramps: &[],
        };
        self.complete_and_claim(&[], &req).map(|(_, c)| c)
    }

    fn complete(&self, owner: &str, completions: &[Completion]) -> Result<usize, StoreError> {
        if completions.is_empty() {
            return Ok(0);
        }
        self.with("recording outcomes", Replay::Safe, |client| {
            let mut tx = client.transaction()?;
            let n = claims::complete_in(&mut tx, owner, completions)?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn complete_and_claim(
        &self,
        completions: &[Completion],
        claim: &ClaimRequest<'_>,
    ) -> Result<(usize, Vec<Claimed>), StoreError> {
        let claimed = self.with("claiming messages", Replay::Safe, |client| {
            let mut tx = client.transaction()?;
            let n = claims::complete_in(&mut tx, claim.owner, completions)?;
            let claimed = if claim.limit > 0 {
                claims::claim_in(&mut tx, claim)?
            } else {
                Vec::new()
            };
            tx.commit()?;
            Ok((n, claimed))
        })?;
        let (n, rows) = claimed;
        Ok((n, claims::load_claimed(rows)?))
    }

    fn gate_is_cheap(&self) -> bool {
        false
    }

    fn gate(&self) -> Result<u64, StoreError> {
        off_runtime(|| {
            self.link(true)?
                .run("reading the gate", Replay::Safe, |client| {
                    let row =
                        client.query_one("SELECT value FROM control WHERE name = 'gate'", &[])?;
                    Ok(row.get::<_, i64>(0) as u64)
                })
        })
    }

    fn renew_leases(&self, owner: &str, until: Timestamp) -> Result<u64, StoreError> {
        claims::renew_leases(self, owner, until)
    }

    fn next_due(
        &self,
        campaign: Option<&str>,
        except: &[&str],
    ) -> Result<Option<Timestamp>, StoreError> {
        queries::next_due(self, campaign, except)
    }

    fn next_lease_expiry(
        &self,
        campaign: Option<&str>,
        except: &[&str],
    ) -> Result<Option<Timestamp>, StoreError> {
        claims::next_lease_expiry(self, campaign, except)
    }

    fn ramp_usage(
        &self,
        ramps: &[ChannelRamp],
        now: Timestamp,
        _lease_now: Timestamp,
        campaign: Option<&str>,
    ) -> Result<Vec<RampUsage>, StoreError> {
        if ramps.is_empty() {
            return Ok(Vec::new());
        }
        ramp::usage(self, ramps, now, campaign)
    }

    fn ramp_held_back(
        &self,
        channel: &str,
        before: Timestamp,
        campaign: Option<&str>,
    ) -> Result<u64, StoreError> {
        ramp::held_back(self, channel, before, campaign)
    }

    fn campaign(&self, name: &str) -> Result<Option<CampaignInfo>, StoreError> {
        queries::campaign(self, name)
    }

    fn set_campaign_status(
        &self,
        name: &str,
        status: CampaignStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        queries::set_campaign_status(self, name, status, reason)
    }

    fn cancel_pending(&self, name: &str) -> Result<u64, StoreError> {
        queries::cancel_pending(self, name)
    }

    fn summaries(&self, campaign: Option<&str>) -> Result<Vec<CampaignSummary>, StoreError> {
        queries::summaries(self, campaign)
    }

    fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageRow>, StoreError> {
        queries::messages(self, filter)
    }

    fn sends_among(
        &self,
        pairs: &[(&str, &str)],
        since: Timestamp,
    ) -> Result<std::collections::HashMap<(String, String), Vec<Timestamp>>, StoreError> {
        queries::sends_among(self, pairs, since)
    }

    fn suppress(
        &self,
        address: &str,
        reason: Option<&str>,
        source: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        queries::suppress(self, address, reason, source, now)
    }

    fn unsuppress(&self, address: &str) -> Result<bool, StoreError> {
        queries::unsuppress(self, address)
    }

    fn suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        queries::suppressions(self)
    }

    fn is_suppressed(&self, address: &str) -> Result<bool, StoreError> {
        Ok(!self.suppressed_among(&[address])?.is_empty())
    }

    fn suppressed_among(
        &self,
        addresses: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        queries::suppressed_among(self, addresses)
    }

    fn last_run(
        &self,
        campaign: &str,
        gap: jiff::SignedDuration,
    ) -> Result<Option<RunStats>, StoreError> {
        queries::last_run(self, campaign, gap)
    }

    fn report(
        &self,
        campaign: &str,
        each: &mut dyn FnMut(ReportRow) -> std::io::Result<()>,
    ) -> Result<u64, ReportError> {
        require_off_runtime("write a report")?;
        queries::report(self, campaign, each)
    }

    fn report_attempts(
        &self,
        campaign: &str,
        each: &mut dyn FnMut(AttemptRow) -> std::io::Result<()>,
    ) -> Result<u64, ReportError> {
        require_off_runtime("write a report")?;
        queries::report_attempts(self, campaign, each)
    }

    fn worker_heartbeat(
        &self,
        owner: &str,
        channels: &[&str],
        ttl: jiff::SignedDuration,
    ) -> Result<FleetView, StoreError> {
        claims::worker_heartbeat(self, owner, channels, ttl)
    }

    fn record_receipts(
        &self,
        batch: &[crate::receipt::Receipt],
        now: Timestamp,
    ) -> Result<Vec<crate::receipt::Applied>, StoreError> {
        receipts::record_receipts(self, batch, now)
    }

    fn match_receipts(&self, since: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        receipts::match_receipts(self, since, now)
    }

    fn funnel(
        &self,
        campaign: Option<&str>,
        by: crate::receipt::FunnelBy,
    ) -> Result<Vec<crate::receipt::Funnel>, StoreError> {
        receipts::funnel(self, campaign, by)
    }

    fn record_test_send(&self, t: &crate::store::TestSend) -> Result<(), StoreError> {
        self.with("recording a test send", Replay::Never, |c| {
            c.execute(
                "INSERT INTO test_sends (campaign, recipient, channel, address, sent_at, outcome, provider_id, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&t.campaign, &t.recipient, &t.channel, &t.address, &t.sent_at, &t.outcome, &t.provider_id, &t.error],
            )
        })?;
        Ok(())
    }

    fn release_follow_ups(&self, now: Timestamp) -> Result<crate::store::ReleaseStats, StoreError> {
        follow_ups::release(self, now)
    }

    fn parent_facts(
        &self,
        parent: &str,
        recipients: Option<&[&str]>,
    ) -> Result<Vec<crate::follow_up::ParentFacts>, StoreError> {
        follow_ups::parent_facts(self, parent, recipients)
    }

    fn follow_up_progress(
        &self,
        campaign: &str,
        parent: &str,
    ) -> Result<crate::store::FollowUpProgress, StoreError> {
        follow_ups::progress(self, campaign, parent)
    }

    fn test_sends(
        &self,
        campaign: Option<&str>,
    ) -> Result<Vec<crate::store::TestSend>, StoreError> {
        let rows = self.with("reading test sends", Replay::Safe, |c| {
            c.query(
                "SELECT campaign, recipient, channel, address, sent_at, outcome, provider_id, error
                 FROM test_sends WHERE ($1::text IS NULL OR campaign = $1) ORDER BY sent_at, id",
                &[&campaign],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| crate::store::TestSend {
                campaign: r.get(0),
                recipient: r.get(1),
                channel: r.get(2),
                address: r.get(3),
                sent_at: r.get(4),
                outcome: r.get(5),
                provider_id: r.get(6),
                error: r.get(7),
            })
            .collect())
    }

    fn retire_worker(&self, owner: &str) -> Result<(), StoreError> {
        self.with("retiring a worker", Replay::Safe, |client| {
            client.execute("DELETE FROM workers WHERE owner = $1", &[&owner])?;
            Ok(())
        })
    }
}
