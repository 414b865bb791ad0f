//! The schedule's persistence, behind a trait so that nothing above it names a back end.
//!
//! Every operation is a domain operation (save a campaign's plan, claim due messages with a
//! lease, record outcomes), never SQL. Two implementations pass one conformance suite
//! (tests/conformance): SQLite, the embedded default, and PostgreSQL, for fleets of `run`
//! workers on several machines. [`open`] picks one from `--db` (a path or a `postgres://`
//! URL). Calls are synchronous; async callers run them on a blocking thread.

pub mod follow_ups;
mod open;
mod outcome;
mod plan_batch;
mod postgres;
pub(crate) mod receipts;
mod sqlite;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use follow_ups::ReleaseStats;
pub use open::{Access, CheckReport, Location, MigrationReport, check, migrate, open};
pub use plan_batch::{BatchSource, MessageRef, PackedText, PlanBatch, PlanSource, RowWriter};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::message::Content;
pub use crate::ramp::{ChannelRamp, RampUsage};
use crate::receipt::{Applied, Funnel, FunnelBy, Receipt};

/// Message states (docs/delivery.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Sending,
    Sent,
    Failed,
    Expired,
    Skipped,
    Cancelled,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Pending,
        State::Sending,
        State::Sent,
        State::Failed,
        State::Expired,
        State::Skipped,
        State::Cancelled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Failed => "failed",
            State::Expired => "expired",
            State::Skipped => "skipped",
            State::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A campaign's run state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Active,
    Paused,
    Cancelled,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Active => "active",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<CampaignStatus> {
        [
            CampaignStatus::Active,
            CampaignStatus::Paused,
            CampaignStatus::Cancelled,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// What dispatch needs to re-apply the time rules (rules 5 and 6 of docs/time-semantics.md) without the
/// campaign files: stored with the campaign at plan time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DispatchRules {
    /// Quiet hours `[start, end)` as `HH:MM:SS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet: Option<(String, String)>,
    /// Allowed weekdays (`mon`..`sun`); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blackout: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after_secs: Option<i64>,
    /// Frequency caps: at most `.0` messages in any `.1` seconds per address and channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<(u32, i64)>,
    /// Messages per second for this campaign (`throttle`), below the channel's own rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<f64>,
    /// `follows:`: the campaign is a follow-up, released per parent message
    /// ([`Store::release_follow_ups`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<crate::follow_up::FollowRule>,
}

/// A campaign as stored by `plan`.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRecord {
    pub name: String,
    pub channel: String,
    pub rules: DispatchRules,
    /// First local instant of a recurring schedule, fixed at the first plan so occurrence
    /// numbers stay stable across re-plans.
    pub recurrence_start: Option<String>,
}

/// What a plan changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanStats {
    pub inserted: u64,
    /// Pending or skipped messages whose content, time, address or state the plan changed.
    pub updated: u64,
    /// Pending or skipped messages the plan computed exactly as stored: left as they are.
    pub unchanged: u64,
    /// Already sent, sending or finished: left untouched.
    pub kept: u64,
    pub skipped: u64,
    /// Pending messages no longer in the plan (recipient left the audience): cancelled.
    pub cancelled: u64,
}

/// A follow-up campaign's progress: recipients planned (drafts), and parent messages whose
/// follow-up is not decided yet (the parent not sent, or its receipt window still open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FollowUpProgress {
    pub drafts: u64,
    pub waiting: u64,
    /// Follow-up messages recorded as not needed (the condition cannot hold).
    pub not_needed: u64,
}

/// A message claimed for sending under a lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    /// The idempotency key ([`message_key`]).
    pub key: String,
    pub campaign: String,
    pub channel: String,
    pub recipient: String,
    /// Which occurrence of the campaign's schedule (0 for a one-shot); a follow-up's is its
    /// parent's.
    pub occurrence: u32,
    pub address: String,
    pub zone: String,
    pub locale: Option<String>,
    pub content: Content,
    /// The template variables as stored (a JSON object), passed on without being parsed:
    /// adapters that send them copy the bytes.
    pub vars: Box<serde_json::value::RawValue>,
    pub planned_at: Timestamp,
    pub due_at: Timestamp,
    /// Attempts already made before this claim.
    pub attempts: u32,
}

/// The arguments of one claim (see [`Store::claim`]).
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub owner: &'a str,
    /// What is due is judged at this instant (the run's clock, which `--now` may set).
    pub now: Timestamp,
    /// Leases are judged on the real clock, shared by every process: a lease that expired
    /// before this instant may be taken over.
    pub lease_now: Timestamp,
    pub lease_until: Timestamp,
    pub limit: usize,
    pub campaign: Option<&'a str>,
    /// The ramped channels (`ramp:`): the claim takes no more of a channel's messages than
    /// its ramp day has left (see [`Store::ramp_usage`]), counted inside the claim's
    /// transaction so that a fleet of runs never exceeds a day's budget together.
    pub ramps: &'a [ChannelRamp],
}

/// How one claimed message ended this round.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent {
        provider_id: Option<String>,
    },
    /// Transient failure: back to pending at `due_at`.
    Retry {
        due_at: Timestamp,
        code: Option<String>,
        error: String,
    },
    Failed {
        code: Option<String>,
        error: String,
    },
    /// Failed because the recipient refuses messages; with `suppress` the address is added to
    /// the suppression list.
    Refused {
        code: Option<String>,
        error: String,
        suppress: bool,
    },
    /// Not attempted: rules 5/6 moved it (night, cap) to `due_at`.
    Deferred {
        due_at: Timestamp,
        reasons: String,
    },
    Expired {
        reason: String,
    },
    /// Not attempted: suppressed at dispatch.
    Skipped {
        reason: String,
    },
    /// Not attempted: the run is stopping; back to pending, unchanged.
    Released,
    /// Not attempted: the campaign was cancelled while the message was claimed.
    Cancelled {
        reason: String,
    },
    /// Not an outcome: a send of the message is under way. Recorded with the group commits
    /// for sends not finished by then, so that when a dead run's lease is taken over, only
    /// the messages it really started are on record as possibly sent.
    Started,
}

/// One outcome for [`Store::complete`]. `attempted` outcomes are recorded in `attempts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub id: i64,
    /// The attempt number (1-based) when the message was attempted.
    pub attempt: u32,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub outcome: Outcome,
}

impl Outcome {
    /// Everything but [`Outcome::Started`].
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::Started)
    }
    pub fn attempted(&self) -> bool {
        matches!(
            self,
            Outcome::Sent { .. }
                | Outcome::Retry { .. }
                | Outcome::Failed { .. }
                | Outcome::Refused { .. }
        )
    }
}

/// A campaign's state for `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignSummary {
    pub name: String,
    pub channel: String,
    pub status: CampaignStatus,
    pub status_reason: Option<String>,
    pub counts: BTreeMap<State, u64>,
    pub next_due: Option<Timestamp>,
    pub last_sent: Option<Timestamp>,
    /// Most common errors with their counts, most frequent first.
    pub top_errors: Vec<(String, u64)>,
}

/// A campaign's stored rules and status, for dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignInfo {
    pub name: String,
    pub channel: String,
    pub status: CampaignStatus,
    pub status_reason: Option<String>,
    pub rules: DispatchRules,
}

impl CampaignInfo {
    /// A campaign as stored: its status by name, its rules as JSON text.
    pub(crate) fn from_stored(
        name: &str,
        channel: String,
        status: &str,
        status_reason: Option<String>,
        rules: &str,
    ) -> Result<CampaignInfo, serde_json::Error> {
        Ok(CampaignInfo {
            name: name.to_owned(),
            channel,
            status: CampaignStatus::parse(status).unwrap_or(CampaignStatus::Paused),
            status_reason,
            rules: serde_json::from_str(rules)?,
        })
    }
}

/// One message with its state, for `messages` and `export`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageRow {
    pub key: String,
    pub campaign: String,
    pub recipient: String,
    pub occurrence: u32,
    pub channel: String,
    pub address: String,
    pub zone: String,
    pub state: State,
    pub planned_local: String,
    pub due_at: Timestamp,
    pub attempts: u32,
    pub provider_id: Option<String>,
    pub last_error: Option<String>,
    pub reasons: String,
}

/// Filters for [`Store::messages`].
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub campaign: Option<String>,
    pub state: Option<State>,
    pub recipient: Option<String>,
    pub limit: Option<u64>,
}

/// An opt-out entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppression {
    pub address: String,
    pub reason: Option<String>,
    pub source: Option<String>,
    pub created_at: Timestamp,
}

/// Store failures, each with what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database {path} was written by a newer disparo (schema version {found}, this one knows up to {supported}); it was not changed\n  hint: upgrade disparo, or point --db at another database"
    )]
    NewerSchema {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("cannot open the database {path}: {reason}\n  hint: {hint}")]
    Open {
        path: String,
        reason: String,
        hint: String,
    },
    /// A command that needs an existing schedule found none there.
    #[error(
        "there is no database at {location}\n  hint: run `disparo plan CAMPAIGN` first (it creates the database), or pass --db / DISPARO_DB, or run from the project folder"
    )]
    Missing { location: String },
    /// A read-only command found a schema older than this disparo's: it does not migrate.
    #[error(
        "the database {location} has schema version {found}, this disparo needs {needed}; it was not changed\n  hint: run `disparo db migrate` (or any `disparo plan` or `disparo run`), then try again"
    )]
    Behind {
        location: String,
        found: i64,
        needed: i64,
    },
    /// The database is there but cannot be reached right now (connection lost or refused,
    /// server restarting or shutting down, too many connections, a serialization failure or
    /// deadlock): trying the same again later may well succeed.
    #[error("{what}\n  hint: {hint}")]
    Unavailable { what: String, hint: String },
    #[error("{0}")]
    Other(String),
    #[error("no campaign named {0:?} in the database\n  hint: run `disparo plan {0}` first")]
    UnknownCampaign(String),
}

impl StoreError {
    /// Whether the same call may succeed if tried again later: the database was unreachable
    /// or the transaction lost a race (nothing was changed). Wrong URLs, passwords, missing
    /// databases and schemas from another disparo are not: they need a person.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// What a fleet of workers looks like from one of them (see [`Store::worker_heartbeat`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FleetView {
    pub channels: BTreeMap<String, ChannelFleet>,
}

/// The live workers sending on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChannelFleet {
    /// Live workers on the channel, the asking one included (so at least 1).
    pub live_workers: u32,
    /// Whether every other live worker on it has announced itself since the asking one first
    /// did: they all count it, so a share of the channel's rate computed from `live_workers`
    /// is one every worker uses.
    pub seen_by_all: bool,
}

/// The schedule store. Implementations must make `claim` atomic across processes: two
/// concurrent claims never return the same message.
pub trait Store: Send + Sync {
    /// Stores a campaign's plan in one transaction: inserts new messages, updates pending
    /// (and skipped) ones, never touches sent or in-flight ones, cancels pending messages no
    /// longer planned. Nothing is stored if `messages` yields an error.
    fn save_plan(
        &self,
        campaign: &CampaignRecord,
        messages: &mut dyn PlanSource,
    ) -> Result<PlanStats, StoreError>;
    /// The stored start of a recurring campaign, if it was planned before.
    fn recurrence_start(&self, campaign: &str) -> Result<Option<String>, StoreError>;
    /// Claims up to `limit` due messages (pending and due, or with an expired lease) of active
    /// campaigns for `owner` until `lease_until` (no ramp: see [`ClaimRequest::ramps`]).
    fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
        campaign: Option<&str>,
    ) -> Result<Vec<Claimed>, StoreError>;
    /// Records outcomes of messages `owner` holds; a message whose lease was lost is left
    /// alone. Returns how many were recorded.
    fn complete(&self, owner: &str, completions: &[Completion]) -> Result<usize, StoreError>;
    /// [`complete`](Self::complete) then [`claim`](Self::claim) for `claim.owner`, as one
    /// atomic step where the store can (one transaction, one durable commit instead of two).
    /// Returns how many completions were recorded and the claimed messages.
    fn complete_and_claim(
        &self,
        completions: &[Completion],
        claim: &ClaimRequest<'_>,
    ) -> Result<(usize, Vec<Claimed>), StoreError> {
        let recorded = self.complete(claim.owner, completions)?;
        if !claim.ramps.is_empty() {
            return Err(StoreError::Other(
                "this store cannot claim under a channel ramp".into(),
            ));
        }
        let claimed = self.claim(
            claim.owner,
            claim.now,
            claim.lease_until,
            claim.limit,
            claim.campaign,
        )?;
        Ok((recorded, claimed))
    }
    /// A number that grows with every committed change a run holding claims must honour
    /// before its next send: an opt-out, a pause, a resume, a cancel, a re-plan. Cheap (one
    /// row), and readable while another thread of the process writes: a run reads it before
    /// starting sends and re-reads what it holds when it moved.
    fn gate(&self) -> Result<u64, StoreError>;
    /// Whether [`gate`](Self::gate) answers without a network round trip (an embedded
    /// store): a run then reads it on its network thread; otherwise a thread of its own
    /// reads it and the run uses the latest fresh value.
    fn gate_is_cheap(&self) -> bool {
        true
    }
    /// Extends every lease `owner` holds to `until` (the heartbeat of a live run); returns how
    /// many messages it holds.
    fn renew_leases(&self, owner: &str, until: Timestamp) -> Result<u64, StoreError>;
    /// The earliest due instant of a pending message of an active campaign, leaving out the
    /// messages of the channels in `except` (ramped channels whose day's budget is spent).
    fn next_due(
        &self,
        campaign: Option<&str>,
        except: &[&str],
    ) -> Result<Option<Timestamp>, StoreError>;
    /// The earliest lease expiry (real clock) of a message another run holds, in an active
    /// campaign, leaving out the channels in `except`: when it may be taken over.
    fn next_lease_expiry(
        &self,
        campaign: Option<&str>,
        except: &[&str],
    ) -> Result<Option<Timestamp>, StoreError>;
    /// What each ramped channel used of the ramp day `now` is in (docs/delivery.md, "Warm-up
    /// ramp"): its first send, its sends in that day, the messages in state `sending` under a
    /// live lease (judged at `lease_now`, on stores whose leases are on the callers' clock),
    /// and when its next pending message is due (of `campaign` only, if given). The same
    /// counts a claim limits itself by.
    fn ramp_usage(
        &self,
        ramps: &[ChannelRamp],
        now: Timestamp,
        lease_now: Timestamp,
        campaign: Option<&str>,
    ) -> Result<Vec<RampUsage>, StoreError>;
    /// How many pending messages of active campaigns (`campaign`, if given) on `channel` are
    /// due before `before`: what a ramped channel whose day is spent holds back until its
    /// next day opens. Reads every such message: asked for when a run reports, not per look.
    fn ramp_held_back(
        &self,
        channel: &str,
        before: Timestamp,
        campaign: Option<&str>,
    ) -> Result<u64, StoreError>;
    fn campaign(&self, name: &str) -> Result<Option<CampaignInfo>, StoreError>;
    fn set_campaign_status(
        &self,
        name: &str,
        status: CampaignStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Cancels every pending message of a campaign; returns how many.
    fn cancel_pending(&self, name: &str) -> Result<u64, StoreError>;
    fn summaries(&self, campaign: Option<&str>) -> Result<Vec<CampaignSummary>, StoreError>;
    fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageRow>, StoreError>;
    /// Instants of successful sends to `address` on `channel` since `since`, oldest first.
    fn sends_since(
        &self,
        channel: &str,
        address: &str,
        since: Timestamp,
    ) -> Result<Vec<Timestamp>, StoreError> {
        Ok(self
            .sends_among(&[(channel, address)], since)?
            .into_values()
            .next()
            .unwrap_or_default())
    }
    /// [`sends_since`](Self::sends_since) for several (channel, address) pairs at once: one
    /// call for a whole claimed batch. Pairs without sends are left out of the map.
    fn sends_among(
        &self,
        pairs: &[(&str, &str)],
        since: Timestamp,
    ) -> Result<std::collections::HashMap<(String, String), Vec<Timestamp>>, StoreError>;
    fn suppress(
        &self,
        address: &str,
        reason: Option<&str>,
        source: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    fn unsuppress(&self, address: &str) -> Result<bool, StoreError>;
    fn suppressions(&self) -> Result<Vec<Suppression>, StoreError>;
    fn is_suppressed(&self, address: &str) -> Result<bool, StoreError>;
    /// Which of `addresses` are on the suppression list: one query for a whole claimed batch.
    fn suppressed_among(
        &self,
        addresses: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError>;
    /// The latest run of a campaign as its attempts show it: the last burst of attempts with
    /// no pause longer than `gap` between one and the next. `None` before any attempt.
    fn last_run(
        &self,
        campaign: &str,
        gap: jiff::SignedDuration,
    ) -> Result<Option<RunStats>, StoreError>;
    /// The delivery report of a campaign, one row per message with its attempts summed up,
    /// streamed in due order. Returns how many rows were given.
    fn report(
        &self,
        campaign: &str,
        each: &mut dyn FnMut(ReportRow) -> std::io::Result<()>,
    ) -> Result<u64, ReportError>;
    /// Every attempt of a campaign's messages, by recipient, occurrence and attempt, streamed.
    fn report_attempts(
        &self,
        campaign: &str,
        each: &mut dyn FnMut(AttemptRow) -> std::io::Result<()>,
    ) -> Result<u64, ReportError>;
    /// `owner` is alive and sends on `channels` until `ttl` from now (store clock). Returns, per
    /// channel, the number of live workers sending on it (owner included) and whether every other
    /// live worker on it has announced itself since `owner` first did (so it has seen `owner`).
    /// Rates shared by a fleet are split by these counts.
    fn worker_heartbeat(
        &self,
        owner: &str,
        channels: &[&str],
        ttl: jiff::SignedDuration,
    ) -> Result<FleetView, StoreError>;
    /// `owner` stops: its announcements are removed at once, so the others' shares grow
    /// without waiting for its `ttl`.
    fn retire_worker(&self, owner: &str) -> Result<(), StoreError>;
    /// Applies receipts in one transaction, so a batch costs one durable commit: each is
    /// stored once per (source, dedupe), moves its message's delivery status only upwards,
    /// and takes its effect (suppress the address, send again later). Returns what became
    /// of each, in order. Opt-outs move the gate.
    fn record_receipts(
        &self,
        receipts: &[Receipt],
        now: Timestamp,
    ) -> Result<Vec<Applied>, StoreError>;
    /// Applies receipts stored since `since` that found no message when they arrived (a
    /// provider's status can overtake the run's record of the send); returns how many
    /// found it now.
    fn match_receipts(&self, since: Timestamp, now: Timestamp) -> Result<u64, StoreError>;
    /// How far each campaign's messages got (planned → sent → delivered → read, and the
    /// failures and opt-outs), whole or split by locale or zone.
    fn funnel(&self, campaign: Option<&str>, by: FunnelBy) -> Result<Vec<Funnel>, StoreError>;
    /// Records a test send (`disparo send-test`), apart from the campaign's messages: it never
    /// marks a message sent, never counts against a cap and is not in the funnel.
    fn record_test_send(&self, t: &TestSend) -> Result<(), StoreError>;
    /// The test sends recorded, of one campaign or all, oldest first.
    fn test_sends(&self, campaign: Option<&str>) -> Result<Vec<TestSend>, StoreError>;
    /// Turns follow-up drafts into messages where the parent's facts decide them at `now`:
    /// pending at the instant the condition names (placed by the follow-up's own window), or
    /// cancelled as not needed; at most once per (follow-up, recipient, parent occurrence),
    /// however many processes release at once. See [`follow_ups`].
    fn release_follow_ups(&self, now: Timestamp) -> Result<ReleaseStats, StoreError>;
    /// The messages of campaign `parent` with their state and receipts (of `recipients`
    /// only, when given): what a follow-up is judged on.
    fn parent_facts(
        &self,
        parent: &str,
        recipients: Option<&[&str]>,
    ) -> Result<Vec<crate::follow_up::ParentFacts>, StoreError>;
    /// How far a follow-up campaign has come: its drafts, and parent messages not decided yet.
    fn follow_up_progress(
        &self,
        campaign: &str,
        parent: &str,
    ) -> Result<FollowUpProgress, StoreError>;
}

/// One test send, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestSend {
    pub campaign: String,
    /// The audience recipient whose message was rendered.
    pub recipient: String,
    pub channel: String,
    /// Where it went (the tester's address, not the recipient's).
    pub address: String,
    pub sent_at: Timestamp,
    /// `sent` or `failed`.
    pub outcome: String,
    pub provider_id: Option<String>,
    pub error: Option<String>,
}

/// A campaign's last run, from its attempts' timestamps (for `status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStats {
    pub started_at: Timestamp,
    /// When the run's last attempt started.
    pub last_started_at: Timestamp,
    pub finished_at: Timestamp,
    pub attempts: u64,
    pub sent: u64,
}

impl RunStats {
    pub fn seconds(&self) -> f64 {
        (self.finished_at.as_millisecond() - self.started_at.as_millisecond()).max(0) as f64
            / 1000.0
    }
    /// Attempts per second, counted as the rate limiter counts them: it spaces the starts of
    /// sends evenly (a burst of one), so n attempts whose starts span t seconds ran at
    /// (n - 1) / t. Dividing n by first start to last finish, as before, showed "85/s" on an
    /// 80/s channel. Instants are stored to the millisecond, so the span can be read up to
    /// 1 ms short: it is taken 1 ms longer, never above the rate. One attempt: over its time.
    pub fn per_second(&self) -> f64 {
        if self.attempts < 2 {
            return self.attempts as f64 / self.seconds().max(0.001);
        }
        let span_ms = (self.last_started_at.as_millisecond() - self.started_at.as_millisecond())
            .max(0) as f64;
        (self.attempts - 1) as f64 / ((span_ms + 1.0) / 1000.0)
    }
}

/// One message of the delivery report (`export`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    pub message_id: String,
    pub campaign: String,
    pub recipient: String,
    pub occurrence: u32,
    pub channel: String,
    pub address: String,
    pub zone: String,
    pub locale: Option<String>,
    pub state: State,
    pub planned_local: String,
    pub planned_at: Timestamp,
    pub due_at: Timestamp,
    pub reasons: String,
    pub attempts: u32,
    pub first_attempt_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    pub last_outcome: Option<String>,
    pub last_code: Option<String>,
    pub provider_id: Option<String>,
    pub sent_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// How far the message got after it was sent, by its receipts (`sent`, `delivered`,
    /// `read`, `failed`, `bounced`); `None` without a receipt.
    pub delivery: Option<String>,
    pub delivered_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
    /// The provider's code of a late failure or bounce.
    pub delivery_code: Option<String>,
    pub opted_out_at: Option<Timestamp>,
    /// The A/B variant that rendered it (`variants:`), if any.
    pub variant: Option<String>,
}

/// One delivery attempt (`export --attempts`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRow {
    pub message_id: String,
    pub campaign: String,
    pub recipient: String,
    pub occurrence: u32,
    pub address: String,
    pub attempt: u32,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub outcome: String,
    pub provider_id: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
}

/// A report failed in the store or while writing it out.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the report: {0}")]
    Write(#[from] std::io::Error),
}

/// A planned instant on the recipient's wall clock (RFC 3339 with offset), for reports: the
/// store keeps the instant and the zone name, not the text. Zones are looked up once per name.
#[derive(Default)]
pub(crate) struct LocalTimes {
    zones: std::collections::HashMap<String, Option<jiff::tz::TimeZone>>,
}

impl LocalTimes {
    /// Empty for a message without a zone (an invalid recipient stored as skipped).
    pub(crate) fn format(&mut self, at: Timestamp, zone: &str) -> String {
        if zone.is_empty() {
            return String::new();
        }
        if !self.zones.contains_key(zone) {
            self.zones.insert(zone.to_owned(), crate::model::zone(zone));
        }
        match self.zones.get(zone) {
            Some(Some(tz)) => crate::schedule::local_rfc3339(&at.to_zoned(tz.clone())),
            _ => String::new(),
        }
    }
}

/// The stable identity of a message: the idempotency key providers see. Computed for every
/// planned message, so it is written without per-byte formatting.
pub fn message_key(campaign: &str, recipient: &str, occurrence: u32) -> String {
    use sha2::{Digest, Sha256};
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Length-prefixed fields: no campaign/recipient pair can collide with another by moving
    // bytes across the boundary.
    let mut h = Sha256::new();
    h.update((campaign.len() as u64).to_be_bytes());
    h.update(campaign.as_bytes());
    h.update((recipient.len() as u64).to_be_bytes());
    h.update(recipient.as_bytes());
    h.update(occurrence.to_be_bytes());
    let d = h.finalize();
    let mut s = String::with_capacity(26);
    s.push_str("m-");
    for b in &d[..12] {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::message_key;

    /// The key is what providers de-duplicate on: it must be the same in every version.
    #[test]
    fn message_key_is_stable() {
        assert_eq!(
            message_key("black-friday-2026", "c001", 0),
            "m-9de8072142291495d0f61052"
        );
        assert_ne!(
            message_key("black-friday-2026", "c001", 1),
            message_key("black-friday-2026", "c001", 0)
        );
        assert_ne!(
            message_key("a\u{0}b", "c", 0),
            message_key("a", "b\u{0}c", 0)
        );
    }
}
