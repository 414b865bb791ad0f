//! What every conformance test uses: a database of each back end, plans built in memory, and
//! the `conformance!` macro that runs one test body against both stores.

use disparo::store::{
    Access, CampaignRecord, ClaimRequest, Claimed, Completion, DispatchRules, Location,
    MessageFilter, MessageRef, Outcome, PlanSource, PlanStats, State, Store, StoreError,
};
use jiff::{SignedDuration, Timestamp};

use crate::harness::pg::PgCluster;

/// Runs each test body against SQLite (`sqlite`) and PostgreSQL (`postgres`).
macro_rules! conformance {
    ($($(#[$meta:meta])* fn $name:ident($db:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                $(#[$meta])*
                fn body($db: $crate::conformance::support::Db) $body
                #[test]
                fn sqlite() {
                    body($crate::conformance::support::Db::sqlite())
                }
                #[test]
                fn postgres() {
                    body($crate::conformance::support::Db::postgres())
                }
            }
        )*
    };
}
pub(crate) use conformance;

/// A database nobody has opened yet.
pub struct Db {
    pub location: Location,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        Db {
            location: Location::Sqlite(dir.path().join("disparo.db")),
            _dir: Some(dir),
        }
    }

    pub fn postgres() -> Db {
        Db {
            location: Location::Postgres(PgCluster::shared().fresh_database()),
            _dir: None,
        }
    }

    pub fn open(&self, access: Access) -> Result<Box<dyn Store>, StoreError> {
        disparo::store::open(&self.location, access)
    }

    /// The store as `plan` opens it (creating the schema).
    pub fn create(&self) -> Box<dyn Store> {
        self.open(Access::Create).unwrap()
    }

    /// The store as a worker opens it: another process's connection to the same database.
    pub fn writer(&self) -> Box<dyn Store> {
        self.open(Access::Write).unwrap()
    }
}

/// One planned message, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub recipient: String,
    pub occurrence: u32,
    pub address: String,
    pub zone: String,
    pub locale: Option<String>,
    pub at: Timestamp,
    pub reasons: String,
    pub content: String,
    pub vars: String,
    pub skipped: Option<String>,
}

/// `recipient` at its own address, due at `at`.
pub fn msg(recipient: &str, at: Timestamp) -> Msg {
    Msg {
        recipient: recipient.to_owned(),
        occurrence: 0,
        address: format!("+55119{:08}", hash(recipient) % 100_000_000),
        zone: "America/Sao_Paulo".into(),
        locale: Some("pt-BR".into()),
        at,
        reasons: String::new(),
        content: format!(r#"{{"body":"Oi {recipient}"}}"#),
        vars: format!(r#"{{"name":"{recipient}"}}"#),
        skipped: None,
    }
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    })
}

impl Msg {
    pub fn to(mut self, address: &str) -> Msg {
        self.address = address.to_owned();
        self
    }
    pub fn body(mut self, body: &str) -> Msg {
        self.content = format!(r#"{{"body":"{body}"}}"#);
        self
    }
    pub fn skipped(mut self, reason: &str) -> Msg {
        self.skipped = Some(reason.to_owned());
        self
    }
    pub fn occurrence(mut self, n: u32) -> Msg {
        self.occurrence = n;
        self
    }
}

/// A plan read from memory; with `fail_after`, the source fails after that many messages.
pub struct Plan<'a> {
    rows: &'a [Msg],
    next: usize,
    fail_after: Option<usize>,
}

impl<'a> Plan<'a> {
    pub fn of(rows: &'a [Msg]) -> Plan<'a> {
        Plan {
            rows,
            next: 0,
            fail_after: None,
        }
    }
    pub fn failing_after(rows: &'a [Msg], n: usize) -> Plan<'a> {
        Plan {
            rows,
            next: 0,
            fail_after: Some(n),
        }
    }
}

impl PlanSource for Plan<'_> {
    fn next_message(&mut self) -> Option<Result<MessageRef<'_>, String>> {
        if self.fail_after == Some(self.next) {
            self.next += 1;
            return Some(Err("the audience broke at row 3".into()));
        }
        let m = self.rows.get(self.next)?;
        self.next += 1;
        Some(Ok(MessageRef {
            recipient: &m.recipient,
            occurrence: m.occurrence,
            address: &m.address,
            zone: &m.zone,
            locale: m.locale.as_deref(),
            at: m.at,
            reasons: &m.reasons,
            content: &m.content,
            vars: &m.vars,
            skipped: m.skipped.as_deref(),
        }))
    }
}

pub fn campaign(name: &str) -> CampaignRecord {
    CampaignRecord {
        name: name.to_owned(),
        channel: "sms".into(),
        rules: DispatchRules::default(),
        recurrence_start: None,
    }
}

/// A campaign with a frequency cap: at most one message per address and day.
pub fn capped(name: &str) -> CampaignRecord {
    let mut c = campaign(name);
    c.rules.caps = vec![(1, 86_400)];
    c
}

pub fn plan(store: &dyn Store, c: &CampaignRecord, rows: &[Msg]) -> PlanStats {
    store.save_plan(c, &mut Plan::of(rows)).unwrap()
}

pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The instant due messages are judged at in most tests, and messages due before it.
pub const T: &str = "2026-11-30T12:00:00Z";

pub fn t() -> Timestamp {
    ts(T)
}

pub fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

/// `n` messages `r0`.. due one minute apart from an hour before [`T`].
pub fn audience(n: usize) -> Vec<Msg> {
    (0..n)
        .map(|i| msg(&format!("r{i}"), t() - mins(60) + mins(i as i64)))
        .collect()
}

/// Claims up to `limit` at `now` for a lease of `lease` (on the same clock).
pub fn claim_at(
    store: &dyn Store,
    owner: &str,
    now: Timestamp,
    lease: SignedDuration,
    limit: usize,
) -> Vec<Claimed> {
    claim_under(store, owner, now, lease, limit, &[])
}

/// [`claim_at`] with ramped channels (a claim takes no more than their day has left).
pub fn claim_under(
    store: &dyn Store,
    owner: &str,
    now: Timestamp,
    lease: SignedDuration,
    limit: usize,
    ramps: &[disparo::ramp::ChannelRamp],
) -> Vec<Claimed> {
    store
        .complete_and_claim(
            &[],
            &ClaimRequest {
                owner,
                now,
                lease_now: now,
                lease_until: now + lease,
                limit,
                campaign: None,
                ramps,
            },
        )
        .unwrap()
        .1
}

/// Claims up to `limit` at [`T`] for a one-minute lease.
pub fn claim(store: &dyn Store, owner: &str, limit: usize) -> Vec<Claimed> {
    claim_at(store, owner, t(), mins(1), limit)
}

pub fn recipients(claimed: &[Claimed]) -> Vec<String> {
    claimed.iter().map(|c| c.recipient.clone()).collect()
}

pub fn sent(c: &Claimed, at: Timestamp) -> Completion {
    finished(
        c,
        at,
        Outcome::Sent {
            provider_id: Some(format!("p-{}", c.recipient)),
        },
    )
}

/// `c`'s next attempt, started and ended at `at`, with `outcome`.
pub fn finished(c: &Claimed, at: Timestamp, outcome: Outcome) -> Completion {
    Completion {
        id: c.id,
        attempt: c.attempts + 1,
        started_at: at,
        finished_at: at,
        outcome,
    }
}

/// Each message's recipient and state, in recipient order.
pub fn states(store: &dyn Store) -> Vec<(String, State)> {
    let mut rows: Vec<(String, State)> = store
        .messages(&MessageFilter::default())
        .unwrap()
        .into_iter()
        .map(|m| (format!("{}/{}", m.campaign, m.recipient), m.state))
        .collect();
    rows.sort();
    rows
}

pub fn count(store: &dyn Store, state: State) -> usize {
    states(store).iter().filter(|(_, s)| *s == state).count()
}

/// Runs `sql` on the database directly (what another program, or another disparo, did).
pub fn raw_sql(db: &Db, sql: &str) {
    match &db.location {
        Location::Sqlite(path) => rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(sql)
            .unwrap(),
        Location::Postgres(url) => postgres::Client::connect(url, postgres::NoTls)
            .unwrap()
            .batch_execute(sql)
            .unwrap(),
    }
}

/// One number from the database directly.
pub fn raw_i64(db: &Db, sql: &str) -> i64 {
    match &db.location {
        Location::Sqlite(path) => rusqlite::Connection::open(path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap(),
        Location::Postgres(url) => postgres::Client::connect(url, postgres::NoTls)
            .unwrap()
            .query_one(sql, &[])
            .unwrap()
            .get(0),
    }
}

/// Takes the newest migration back out (its objects and its record): the database of the
/// disparo before it. Returns the schema version left (versions may skip numbers).
pub fn undo_last_migration(db: &Db) -> i64 {
    raw_sql(
        db,
        "DROP INDEX sends_by_channel;
         DELETE FROM refinery_schema_history WHERE version = (SELECT MAX(version) FROM refinery_schema_history);",
    );
    raw_i64(
        db,
        "SELECT CAST(MAX(version) AS BIGINT) FROM refinery_schema_history",
    )
}
