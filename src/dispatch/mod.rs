//! `disparo run`: claim due messages with a lease, re-apply the time rules at dispatch
//! (docs/time-semantics.md rules 5 and 6), send through the channels within their limits, and record every
//! outcome — so that nothing is sent twice by our doing and nothing is lost.
//!
//! Order of checks for a claimed message, made at the moment it would leave (after its turn
//! under the channel's rate and the campaign's throttle came): lease still held → campaign
//! still active → address not suppressed → not expired → allowed now on the recipient's wall
//! clock (night, weekday, blackout) → under the frequency cap → send. Anything not sent goes
//! back to `pending` with its new due time, or to a final state with the reason.
//!
//! Leases are short and renewed by a heartbeat while the run lives; a send starts only while
//! the run's confirmed lease has at least half its length left, and is cut when that lease
//! would end: no send of ours is under way once another run may take the message over.

mod clock;
mod facts;
mod fleet;
mod rules;
mod worker;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Semaphore;

pub use clock::Clock;
pub use rules::window_of;

use crate::channel::limits::{RateLimiter, RetryPolicy};
use crate::channel::{Channel, ChannelSettings, ErrorClass, Outgoing, SendError, Vars};
use crate::schedule::{self, Dispatch};
use crate::store::{CampaignStatus, ClaimRequest, Claimed, Completion, Outcome, Store, StoreError};
use facts::{CampaignFacts, CampaignRt, Facts, Held};
use worker::{CommitPolicy, Spent, Worker};

/// A channel ready for dispatch: the adapter and its limits.
#[derive(Debug)]
pub struct ChannelRuntime {
    pub channel: Channel,
    pub settings: ChannelSettings,
    /// Bounds sends in flight on this channel.
    pub in_flight: Arc<Semaphore>,
    /// The channel's messages-per-second limit, shared by all its sends.
    pub limiter: Option<RateLimiter>,
    pub retry: RetryPolicy,
}

impl ChannelRuntime {
    pub fn new(channel: Channel, settings: ChannelSettings) -> ChannelRuntime {
        let permits = settings.concurrency;
        ChannelRuntime {
            limiter: settings.rate.map(RateLimiter::new),
            retry: RetryPolicy::new(settings.max_attempts),
            channel,
            settings,
            in_flight: Arc::new(Semaphore::new(permits)),
        }
    }
}

/// Options of one `run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Only this campaign.
    pub campaign: Option<String>,
    /// Stop after this many messages were handled (sent or otherwise finished).
    pub limit: Option<u64>,
    /// How long a claim is held before another run may take the message over, unless this
    /// run renews it (it does, every [`RunOptions::heartbeat`], while it lives).
    pub lease: SignedDuration,
    /// Messages claimed and not yet finished, at most (see [`Dispatcher::run`]).
    pub batch: usize,
    /// `--once`: also wait for messages that fall due (retries, deferrals) within this long,
    /// then stop. `--watch` runs until stopped.
    pub linger: SignedDuration,
    pub watch: bool,
    /// `--watch`: the longest sleep between two looks at the database, so that campaigns
    /// planned, paused, resumed or cancelled by other processes are noticed.
    pub watch_poll: SignedDuration,
    /// After a stop signal, how long in-flight sends may take before they are aborted (and
    /// their messages given back for a later run, with the same idempotency key).
    pub grace: SignedDuration,
    /// The longest an outcome waits for its group commit while sends go on (outcomes are
    /// also committed with each claim), so that a crash re-sends as little as possible.
    pub flush_every: SignedDuration,
    /// Breaker errors in one run that pause a campaign.
    pub breaker_threshold: u32,
    /// Unique name of this run, written on its claims.
    pub owner: String,
    /// Seeds the jitter of retry backoffs, so that a test can replay the delays the run
    /// draws; `None` (production) seeds it at random.
    pub jitter_seed: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            campaign: None,
            limit: None,
            lease: DEFAULT_LEASE,
            batch: 8192,
            linger: SignedDuration::from_secs(60),
            watch: false,
            watch_poll: SignedDuration::from_secs(1),
            grace: SignedDuration::from_secs(30),
            flush_every: SignedDuration::from_millis(250),
            breaker_threshold: 3,
            owner: default_owner(),
            jitter_seed: None,
        }
    }
}

/// The default lease: long enough for the slowest default send (30 s for an HTTP request)
/// to start and finish inside it with a heartbeat's margin, short enough that a dead run's
/// messages are retried within a minute.
pub const DEFAULT_LEASE: SignedDuration = SignedDuration::from_secs(45);

impl RunOptions {
    /// How often a live run renews its leases: a tenth of the lease, at most 5 s, at least
    /// 50 ms. Sends start only while at least half a lease is confirmed, so a heartbeat may be
    /// late by almost half a lease before sending pauses.
    pub fn heartbeat(&self) -> std::time::Duration {
        (self.lease.unsigned_abs() / 10)
            .min(std::time::Duration::from_secs(5))
            .max(std::time::Duration::from_millis(50))
    }
}

/// `host:pid:random`, so a lease names the process that holds it.
pub fn default_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

/// What one run did, for the summary line and the exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub sent: u64,
    pub failed: u64,
    /// Back to pending for later (night, cap).
    pub deferred: u64,
    /// Back to pending after a transient error (or a send aborted at shutdown), to retry.
    pub retried: u64,
    pub expired: u64,
    pub skipped: u64,
    /// Claimed messages of a campaign cancelled while they were held.
    pub cancelled: u64,
    /// Claims given back because the run was stopping or the campaign was paused.
    pub released: u64,
    /// Campaigns paused by the circuit breaker during this run.
    pub paused: u64,
    /// Outcomes not recorded because another run had taken the message over (our lease
    /// expired while sending: the lease is shorter than a send).
    pub lost: u64,
    pub interrupted: bool,
}

impl Summary {
    fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Sent { .. } => self.sent += 1,
            Outcome::Retry { .. } => self.retried += 1,
            Outcome::Failed { .. } | Outcome::Refused { .. } => self.failed += 1,
            Outcome::Deferred { .. } => self.deferred += 1,
            Outcome::Expired { .. } => self.expired += 1,
            Outcome::Skipped { .. } => self.skipped += 1,
            Outcome::Released => self.released += 1,
            Outcome::Cancelled { .. } => self.cancelled += 1,
            Outcome::Started => {}
        }
    }
    fn handled(&self) -> u64 {
        self.sent + self.failed + self.expired + self.skipped + self.cancelled
    }
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Something that says "stop claiming": set by SIGINT/SIGTERM, or by tests.
#[derive(Debug, Default)]
pub struct Shutdown {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Shutdown {
    pub fn new() -> Arc<Shutdown> {
        Arc::new(Shutdown::default())
    }
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
    /// Resolves once shutdown is triggered.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a trigger in between is not missed.
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
    /// Sleeps until `d` has passed or shutdown is triggered.
    pub async fn sleep(&self, d: std::time::Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.wait() => {}
        }
    }
}

/// The outcome of a claimed message settled without a send (released, skipped, held back),
/// as its next attempt, at `now`.
fn settled_unsent(m: &Claimed, now: Timestamp, outcome: Outcome) -> Completion {
    Completion {
        id: m.id,
        attempt: m.attempts + 1,
        started_at: now,
        finished_at: now,
        outcome,
    }
}

/// A claimed batch as the store thread hands it over.
struct ClaimedBatch {
    claimed: Vec<Claimed>,
    heads: Vec<Head>,
    facts: Facts,
    recent: HashMap<(String, String), Vec<Timestamp>>,
    /// The lease the claim took, on the real clock.
    lease_until: Timestamp,
}

/// Where a claimed batch arrives from the store thread.
type ClaimReply = tokio::sync::oneshot::Receiver<Result<ClaimedBatch, StoreError>>;
/// Facts read again for every queued message, with the ids they are about.
type RefreshReply = tokio::sync::oneshot::Receiver<Result<(Facts, Vec<i64>), StoreError>>;
/// A heartbeat's answer (see [`Beat`]).
type RenewReply = tokio::sync::oneshot::Receiver<Result<Beat, StoreError>>;

/// A heartbeat: when the store renewed this run's leases and until when (real clock), whether
/// the run held any, and the fleet as the store sees it (when this run announces channels).
struct Beat {
    at: Timestamp,
    until: Timestamp,
    holding: bool,
    fleet: Option<crate::store::FleetView>,
}

/// What [`Channel::prepare`] made of a claimed message on the store thread, if anything.
type Head = Option<Vec<u8>>;

/// What a claimed batch's messages share while they wait for their turn: the recent sends
/// the frequency caps count.
struct Batch {
    recent: HashMap<(String, String), Vec<Timestamp>>,
    /// How many outcomes had been handed to the store thread when this batch was claimed:
    /// the facts include the sends among those and none of the later ones.
    seen: u64,
}

/// Claimed messages wait in one queue per campaign and channel (a campaign has one channel,
/// unless a re-plan moved it while messages were held): a throttled campaign does not hold up
/// the others on its channel. Nested, so that a message finds its queue without building a key.
type Queues = HashMap<String, HashMap<String, VecDeque<Queued>, FastHash>, FastHash>;

/// A claimed message waiting for a free slot on its channel.
struct Queued {
    m: Claimed,
    head: Head,
    batch: Arc<Batch>,
}

/// A send this run started for a campaign with a frequency cap. Counted by the caps of later
/// messages to the same address until the store's facts include it.
struct OwnSend {
    id: i64,
    at: Timestamp,
    /// The outcome's number in the hand-over order, once it is known to be a send.
    outcome: Option<u64>,
}

/// A send under way: its message back when it ends, or the message id if it panicked.
type SendFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<SendDone, i64>> + Send>>;

/// What a send gives back.
struct SendDone {
    m: Claimed,
    head: Head,
    ch: Arc<ChannelRuntime>,
    attempt: u32,
    started: Timestamp,
    finished: Timestamp,
    result: Result<crate::channel::Delivered, crate::channel::SendError>,
}

/// A send in flight, remembered so that an aborted send still gets an outcome.
struct InFlight {
    attempt: u32,
    started: Timestamp,
    capped: Option<(String, String)>,
}

/// Outcomes are handed to the store thread in chunks of this many (or after
/// [`HAND_OVER_AFTER`]), so that the store thread is woken once per chunk, not per message.
const HAND_OVER_CHUNK: usize = 256;
const HAND_OVER_AFTER: std::time::Duration = std::time::Duration::from_millis(10);
/// The store thread commits as soon as this many outcomes wait.
const MAX_PENDING: usize = 8192;

/// The mutable state of one run of the dispatch loop.
struct Run {
    /// Claimed messages waiting for a slot, per channel and campaign (in claim order).
    queues: Queues,
    queued: usize,
    /// Sends under way, polled by the dispatch loop itself (no task per send).
    sends: FuturesUnordered<SendFuture>,
    /// What an aborted send still needs for its outcome, by message id.
    in_flight: HashMap<i64, InFlight, FastHash>,
    /// Outcomes not yet handed to the store thread.
    outbox: Vec<Completion>,
    /// Finished messages, handed over with the outcomes to be freed on the store thread.
    spent: Vec<Spent>,
    outbox_since: Option<tokio::time::Instant>,
    /// Outcomes handed to the store thread so far (the outbox included).
    handed: u64,
    /// This run's sends to capped campaigns, per (channel, address).
    own_sends: HashMap<(String, String), Vec<OwnSend>>,
    /// Batches with messages still queued, by their `seen`, with how many.
    live_batches: std::collections::BTreeMap<u64, usize>,
    /// The `seen` of the claim under way.
    claim_seen: Option<u64>,
    /// Campaigns this run's circuit breaker paused.
    paused_here: HashSet<String, FastHash>,
    breaker_hits: HashMap<String, u32>,
    zones: HashMap<String, jiff::tz::TimeZone, FastHash>,
    paused: u64,
    /// The latest facts of each campaign with messages held.
    campaigns: HashMap<String, CampaignFacts, FastHash>,
    /// Held messages whose address is suppressed.
    suppressed: HashSet<i64, FastHash>,
    /// The store's gate the facts of every held message are at least as new as.
    gate_seen: Option<u64>,
    gate_checked: Option<tokio::time::Instant>,
    refresh: Option<RefreshReply>,
    /// Until when every lease this run holds is confirmed (real clock).
    leases_until: Option<Timestamp>,
    /// This run's share of the fleet's rates (see [`fleet`]).
    fleet: fleet::Fleet,
    /// Campaign throttles (`throttle:`), shared by the campaign's sends in this run.
    throttles: HashMap<String, (f64, Arc<RateLimiter>), FastHash>,
    /// Per campaign: triggered to cut its sends under way (the circuit breaker tripped).
    aborts: HashMap<String, Arc<Shutdown>, FastHash>,
    /// When the next queued message's turn under a rate limit comes.
    pace_wake: Option<tokio::time::Instant>,
    /// Sends started since the last hand-over (see [`Run::note_started`]).
    unmarked: Vec<i64>,
    /// Draws the jitter of retry backoffs.
    rng: fastrand::Rng,
}

impl Run {
    fn push(&mut self, c: Completion) {
        if self.outbox.is_empty() {
            self.outbox_since = Some(tokio::time::Instant::now());
        }
        self.outbox.push(c);
        self.handed += 1;
    }

    /// Notes a send as under way. At the next hand-over, the sends still under way are
    /// marked "started" for the group commit (not outcomes: not counted in `handed`); one
    /// that already ended needs no mark, which spares nearly every send on a fast endpoint.
    fn note_started(&mut self, id: i64) {
        if self.outbox_since.is_none() {
            self.outbox_since = Some(tokio::time::Instant::now());
        }
        self.unmarked.push(id);
    }

    fn hand_over(&mut self, worker: &Worker) -> Result<(), StoreError> {
        self.outbox_since = None;
        for id in std::mem::take(&mut self.unmarked) {
            if let Some(f) = self.in_flight.get(&id) {
                self.outbox.push(Completion {
                    id,
                    attempt: f.attempt,
                    started_at: f.started,
                    finished_at: f.started,
                    outcome: Outcome::Started,
                });
            }
        }
        worker.complete(
            std::mem::take(&mut self.outbox),
            std::mem::take(&mut self.spent),
        )
    }

    /// A queued message of the batch `seen` left the queue.
    fn dequeued(&mut self, seen: u64) {
        self.queued -= 1;
        if let std::collections::btree_map::Entry::Occupied(mut e) = self.live_batches.entry(seen) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
                self.prune_own_sends();
            }
        }
    }

    /// Forgets own sends that every batch still to be handled (the one being claimed
    /// included) already sees in its facts.
    fn prune_own_sends(&mut self) {
        let oldest = self
            .live_batches
            .keys()
            .next()
            .copied()
            .into_iter()
            .chain(self.claim_seen)
            .min()
            .unwrap_or(self.handed);
        self.own_sends.retain(|_, v| {
            v.retain(|s| s.outcome.is_none_or(|o| o >= oldest));
            !v.is_empty()
        });
    }

    /// The outcome of a send to a capped campaign is known: keep it as a send, or forget it.
    fn own_send_done(&mut self, key: &(String, String), id: i64, sent: bool) {
        let number = self.handed;
        if let Some(v) = self.own_sends.get_mut(key) {
            if sent {
                for s in v.iter_mut().filter(|s| s.id == id && s.outcome.is_none()) {
                    s.outcome = Some(number);
                }
            } else {
                v.retain(|s| s.id != id || s.outcome.is_some());
            }
            if v.is_empty() {
                self.own_sends.remove(key);
            }
        }
    }

    /// The recipient's zone; `None` for a name this build's time-zone data does not know
    /// (quiet hours cannot be judged: the message is not sent).
    fn zone(&mut self, name: &str) -> Option<jiff::tz::TimeZone> {
        if let Some(tz) = self.zones.get(name) {
            return Some(tz.clone());
        }
        let tz = crate::model::zone(name)?;
        self.zones.insert(name.to_owned(), tz.clone());
        Some(tz)
    }

    /// The campaign's throttle in this run, made on first use and kept while its rate stays
    /// the same (a re-plan may change it).
    fn throttle_for(&mut self, campaign: &str) -> Option<Arc<RateLimiter>> {
        let rate = self
            .campaigns
            .get(campaign)
            .and_then(Option::as_ref)
            .and_then(|rt| rt.info.rules.throttle)
            .filter(|r| r.is_finite() && *r > 0.0)?;
        if let Some((r, limiter)) = self.throttles.get(campaign)
            && *r == rate
        {
            return Some(limiter.clone());
        }
        let limiter = Arc::new(RateLimiter::new(crate::units::Rate::per_second(rate)));
        self.throttles
            .insert(campaign.to_owned(), (rate, limiter.clone()));
        Some(limiter)
    }

    fn abort_for(&mut self, campaign: &str) -> Arc<Shutdown> {
        if let Some(a) = self.aborts.get(campaign) {
            return a.clone();
        }
        self.aborts.entry(campaign.to_owned()).or_default().clone()
    }

    /// Messages held: queued, or being sent.
    fn holding(&self) -> bool {
        self.queued > 0 || !self.sends.is_empty()
    }
}

/// A multiply-rotate hasher (FxHash) for the run's per-message maps, keyed by message ids,
/// campaign, channel and zone names from the run's own database: nothing an outsider picks to
/// collide, so no need for SipHash's resistance to that.
type FastHash = std::hash::BuildHasherDefault<FxHasher>;

#[derive(Default)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// How often, at most, a run reads the store's gate before starting sends. A send started
/// less than this after the last read is ordered before any change committed since: it was
/// judged on the facts of that read.
const GATE_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// Error codes of sends this run cut itself.
const CODE_LEASE: &str = "lease";
const CODE_BREAKER_ABORT: &str = "aborted";

/// The dispatcher of one run.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    channels: HashMap<String, Arc<ChannelRuntime>>,
    clock: Clock,
    /// Leases are judged on the real clock by every process, whatever `--now` says.
    lease_clock: Clock,
    opts: RunOptions,
    shutdown: Arc<Shutdown>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        channels: HashMap<String, Arc<ChannelRuntime>>,
        clock: Clock,
        opts: RunOptions,
        shutdown: Arc<Shutdown>,
    ) -> Dispatcher {
        Dispatcher {
            store,
            channels,
            clock,
            lease_clock: Clock::real(),
            opts,
            shutdown,
        }
    }

    /// Judges leases on `clock` instead of the wall clock. For tests on paused tokio time
    /// ([`Clock::tokio`]): heartbeats, lease cuts and reclaims then happen at exact instants
    /// of the paused clock. A production run keeps the wall clock, which every process
    /// sharing the database reads alike.
    pub fn with_lease_clock(mut self, clock: Clock) -> Dispatcher {
        self.lease_clock = clock;
        self
    }

    /// Messages claimed and not yet finished, at most: see [`claim_bound`].
    fn max_batch(&self) -> usize {
        claim_bound(
            self.opts.batch,
            self.opts.lease,
            self.channels.values().filter_map(|c| c.settings.rate),
        )
    }

    /// Runs until nothing is due (`--once`, after lingering for near-due messages) or until
    /// shutdown (`--watch`).
    ///
    /// The loop keeps claimed messages flowing: the next claim is made (on the store thread)
    /// while the current one is being sent, as soon as at most half of `max_batch` is left,
    /// and outcomes are committed in groups by the store thread.
    pub async fn run(&self) -> Result<Summary, RunError> {
        let worker = Worker::start(
            self.store.clone(),
            self.opts.owner.clone(),
            CommitPolicy {
                flush_every: self.opts.flush_every.unsigned_abs(),
                max_pending: MAX_PENDING,
            },
            self.clock.follows_tokio() || self.lease_clock.follows_tokio(),
        )?;
        let mut run = Run {
            queues: HashMap::default(),
            queued: 0,
            sends: FuturesUnordered::new(),
            in_flight: HashMap::default(),
            outbox: Vec::with_capacity(HAND_OVER_CHUNK),
            spent: Vec::with_capacity(HAND_OVER_CHUNK),
            outbox_since: None,
            handed: 0,
            own_sends: HashMap::new(),
            live_batches: Default::default(),
            claim_seen: None,
            paused_here: HashSet::default(),
            breaker_hits: HashMap::new(),
            zones: HashMap::default(),
            paused: 0,
            campaigns: HashMap::default(),
            suppressed: HashSet::default(),
            gate_seen: None,
            gate_checked: None,
            refresh: None,
            leases_until: None,
            fleet: fleet::Fleet::default(),
            throttles: HashMap::default(),
            aborts: HashMap::default(),
            pace_wake: None,
            unmarked: Vec::new(),
            rng: self
                .opts
                .jitter_seed
                .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
        };
        let result = match self.join_fleet(&worker, &mut run).await {
            Ok(()) => self.drive(&worker, &mut run).await,
            Err(e) => Err(e),
        };
        // Whatever happened, record what is known before stopping. (After a store error the
        // in-flight sends are dropped: their leases expire and they are retried later.)
        run.sends.clear();
        let handed = run.hand_over(&worker);
        if !self.channels.is_empty() {
            // The others' shares grow at their next heartbeat instead of after our lease.
            let owner = self.opts.owner.clone();
            if let Err(e) = worker.call(move |s| s.retire_worker(&owner)).await {
                tracing::debug!("could not retire from the fleet (it expires by itself): {e}");
            }
        }
        let finished = worker.finish().await;
        result?;
        handed?;
        let mut summary = finished?;
        summary.paused = run.paused;
        summary.interrupted = self.shutdown.is_set();
        Ok(summary)
    }

    async fn drive(&self, worker: &Worker, run: &mut Run) -> Result<(), RunError> {
        let max_batch = self.max_batch();
        let mut claim: Option<ClaimReply> = None;
        let mut renew: Option<RenewReply> = None;
        // The last claim found nothing: look at `next_due` once everything is finished.
        let mut drained = false;
        let mut stopping = false;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut aborted = false;
        // Made once, not per turn of the loop (a turn per finished send): each would register
        // with a waiter list or the timer wheel every time.
        let failed = worker.failed();
        let stop = self.shutdown.wait();
        let far = std::time::Duration::from_secs(3600);
        let hand_over_timer = tokio::time::sleep(far);
        let pace_timer = tokio::time::sleep(far);
        let heartbeat_every = self.opts.heartbeat();
        let heartbeat_timer = tokio::time::sleep(heartbeat_every);
        tokio::pin!(failed, stop, hand_over_timer, pace_timer, heartbeat_timer);
        let mut hand_over_armed: Option<tokio::time::Instant> = None;
        let mut pace_armed: Option<tokio::time::Instant> = None;
        loop {
            if !stopping && self.shutdown.is_set() {
                stopping = true;
                self.release_queued(run);
            }
            if stopping && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + self.opts.grace.unsigned_abs());
            }
            if !stopping {
                self.start_sends(worker, run, claim.is_some())?;
            }
            if run.outbox.len() >= HAND_OVER_CHUNK {
                run.hand_over(worker)?;
            }
            let outstanding = run.queued + run.sends.len();
            if claim.is_none() && run.refresh.is_none() && !stopping && !drained {
                let want = match self.opts.limit {
                    // With --limit, claim only what is left, known once all is recorded.
                    Some(limit) => {
                        if outstanding > 0 {
                            0
                        } else {
                            run.hand_over(worker)?;
                            let handled = worker.flush().await?.handled();
                            if handled >= limit {
                                break;
                            }
                            max_batch.min((limit - handled) as usize)
                        }
                    }
                    None if outstanding <= max_batch / 2 => max_batch - outstanding,
                    None => 0,
                };
                if want > 0 {
                    run.hand_over(worker)?;
                    run.claim_seen = Some(run.handed);
                    claim = Some(self.request_claim(worker, want)?);
                }
            }
            if claim.is_none() && outstanding == 0 {
                if stopping {
                    break;
                }
                if drained {
                    // Nothing due right now: everything is recorded; wait for what falls due.
                    run.hand_over(worker)?;
                    worker.flush().await?;
                    let campaign = self.opts.campaign.clone();
                    let (due, lease) = worker
                        .call(move |s| {
                            let c = campaign.as_deref();
                            Ok((s.next_due(c)?, s.next_lease_expiry(c)?))
                        })
                        .await?;
                    // How long until the next due message (on the run's clock) or the next
                    // lease another run may have left behind (on the real clock).
                    let until_due = due.map(|d| self.clock.now().duration_until(d));
                    let until_lease = lease.map(|l| self.lease_clock.now().duration_until(l));
                    let next = until_due.into_iter().chain(until_lease).min();
                    // Another run's lease: a live run renews it, and finishes or gives back
                    // what it holds at any moment; look again every heartbeat instead of
                    // sleeping a whole lease (a fleet's idle workers would linger that long).
                    let next = match (until_due, until_lease) {
                        (d, Some(l)) if d.is_none_or(|d| l < d) => {
                            let beat = SignedDuration::try_from(self.opts.heartbeat())
                                .unwrap_or(SignedDuration::from_secs(5));
                            next.map(|n| n.min(beat))
                        }
                        _ => next,
                    };
                    let wait = match next {
                        Some(w) if self.opts.watch || w <= self.opts.linger => {
                            w.max(SignedDuration::from_millis(50))
                        }
                        None if self.opts.watch => self.opts.watch_poll,
                        _ => break,
                    };
                    // In watch mode, look again at least every `watch_poll` to notice
                    // campaigns planned, paused, resumed or cancelled by other processes; one
                    // indexed query per look, never a busy loop.
                    let wait = if self.opts.watch {
                        wait.min(self.opts.watch_poll)
                    } else {
                        wait
                    };
                    self.shutdown.sleep(wait.unsigned_abs()).await;
                    drained = false;
                    // Asleep, this run made no heartbeat: its announcement may have expired,
                    // and then the others no longer count it. Join again before claiming.
                    self.join_fleet(worker, run).await?;
                    continue;
                }
            }
            if let Some(t) = run.outbox_since.map(|t| t + HAND_OVER_AFTER)
                && hand_over_armed != Some(t)
            {
                hand_over_timer.as_mut().reset(t);
                hand_over_armed = Some(t);
            }
            if let Some(t) = run.pace_wake
                && pace_armed != Some(t)
            {
                pace_timer.as_mut().reset(t);
                pace_armed = Some(t);
            }
            let holding = run.holding() || claim.is_some();
            tokio::select! {
                e = &mut failed => return Err(e.into()),
                r = async { claim.as_mut().expect("guarded").await }, if claim.is_some() => {
                    claim = None;
                    let seen = run.claim_seen.take().unwrap_or(run.handed);
                    let batch = r.map_err(|_| RunError::Internal("the store thread has stopped".into()))??;
                    if batch.claimed.is_empty() {
                        drained = true;
                    }
                    self.accept(run, batch, seen, stopping);
                }
                r = async { run.refresh.as_mut().expect("guarded").await }, if run.refresh.is_some() => {
                    run.refresh = None;
                    let (facts, ids) = r.map_err(|_| RunError::Internal("the store thread has stopped".into()))??;
                    run.paused += facts.paused as u64;
                    run.suppressed.retain(|id| !ids.contains(id));
                    run.suppressed.extend(facts.suppressed);
                    run.campaigns.extend(facts.campaigns);
                    run.gate_seen = Some(facts.gate);
                }
                r = async { renew.as_mut().expect("guarded").await }, if renew.is_some() => {
                    renew = None;
                    let beat = r.map_err(|_| RunError::Internal("the store thread has stopped".into()))??;
                    if let Some(view) = &beat.fleet {
                        self.take_shares(run, view);
                    }
                    let Beat { at, until, holding, .. } = beat;
                    if !holding {
                        continue;
                    }
                    if run.leases_until.is_some_and(|held| at > held) {
                        // Renewed too late: another run may have taken some of what is queued
                        // over meanwhile. Give it all back (only what is still ours is
                        // recorded) and claim again.
                        tracing::warn!("this run's leases expired before the heartbeat renewed them (the store was slow?); giving back what was not started");
                        self.release_queued(run);
                    }
                    run.leases_until = Some(until);
                }
                _ = &mut heartbeat_timer, if renew.is_none() && (holding || !self.channels.is_empty()) => {
                    heartbeat_timer.as_mut().reset(tokio::time::Instant::now() + heartbeat_every);
                    renew = Some(self.request_renew(worker, holding)?);
                }
                done = run.sends.next(), if !run.sends.is_empty() => {
                    if let Some(done) = done {
                        self.finished(worker, run, done).await?;
                    }
                }
                _ = &mut hand_over_timer, if run.outbox_since.is_some() => {
                    run.hand_over(worker)?;
                }
                _ = &mut pace_timer, if run.pace_wake.is_some() => {
                    run.pace_wake = None;
                }
                _ = &mut stop, if !stopping => {}
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() && !aborted && !run.sends.is_empty() => {
                    tracing::warn!(
                        in_flight = run.sends.len(),
                        "grace period over: aborting sends still in flight; they will be retried with the same idempotency key"
                    );
                    self.abort_sends(run);
                    aborted = true;
                }
            }
        }
        Ok(())
    }

    /// Asks the store thread to record the outcomes handed over so far and claim up to
    /// `limit` messages, then read the batch's facts, all in one round trip.
    fn request_claim(&self, worker: &Worker, limit: usize) -> Result<ClaimReply, StoreError> {
        let now = self.clock.now();
        let lease_now = self.lease_clock.now();
        let clock = self.clock.clone();
        let (owner, lease_until, campaign) = (
            self.opts.owner.clone(),
            lease_now + self.opts.lease,
            self.opts.campaign.clone(),
        );
        let channels = self.channels.clone();
        worker.with_pending(move |s, pending| {
            let (recorded, claimed) = s.complete_and_claim(
                pending,
                &ClaimRequest {
                    owner: &owner,
                    now,
                    lease_now,
                    lease_until,
                    limit,
                    campaign: campaign.as_deref(),
                },
            )?;
            let facts = Facts::read(
                s,
                claimed
                    .iter()
                    .map(|m| (m.id, m.campaign.as_str(), m.address.as_str())),
            )?;
            let recent = facts::recent_sends(
                s,
                &claimed,
                &facts.campaigns,
                &facts.suppressed,
                clock.now(),
            )?;
            // Off the network thread: what each channel can make of its messages already.
            let heads = claimed
                .iter()
                .map(|m| {
                    let ch = channels.get(&m.channel)?;
                    ch.channel
                        .prepare(&outgoing(m, m.attempts + 1, m.due_at, None))
                })
                .collect();
            Ok((
                recorded,
                ClaimedBatch {
                    claimed,
                    heads,
                    facts,
                    recent,
                    lease_until,
                },
            ))
        })
    }

    /// The heartbeat: extends every lease this run holds by a whole lease from now, and
    /// announces this run on its channels to the fleet.
    fn request_renew(&self, worker: &Worker, holding: bool) -> Result<RenewReply, StoreError> {
        let (clock, owner, lease) = (
            self.lease_clock.clone(),
            self.opts.owner.clone(),
            self.opts.lease,
        );
        let channels: Vec<String> = self.channels.keys().cloned().collect();
        worker.request(move |s| {
            let at = clock.now();
            let until = at + lease;
            if holding {
                s.renew_leases(&owner, until)?;
            }
            let fleet = if channels.is_empty() {
                None
            } else {
                let names: Vec<&str> = channels.iter().map(String::as_str).collect();
                Some(s.worker_heartbeat(&owner, &names, lease)?)
            };
            Ok(Beat {
                at,
                until,
                holding,
                fleet,
            })
        })
    }

    /// Announces this run to the fleet and takes its shares, now.
    async fn beat_now(
        &self,
        worker: &Worker,
        run: &mut Run,
    ) -> Result<Option<crate::store::FleetView>, RunError> {
        if self.channels.is_empty() {
            return Ok(None);
        }
        let (owner, lease) = (self.opts.owner.clone(), self.opts.lease);
        let channels: Vec<String> = self.channels.keys().cloned().collect();
        let view = worker
            .call(move |s| {
                let names: Vec<&str> = channels.iter().map(String::as_str).collect();
                s.worker_heartbeat(&owner, &names, lease)
            })
            .await?;
        self.take_shares(run, &view);
        Ok(Some(view))
    }

    /// Before the first claim: announces this run and waits until every other live worker
    /// on its channels counts it (they shrink their shares when they do), then one settling
    /// window ([`fleet`]). Alone, it starts at once.
    async fn join_fleet(&self, worker: &Worker, run: &mut Run) -> Result<(), RunError> {
        let poll = self
            .opts
            .heartbeat()
            .min(std::time::Duration::from_millis(250));
        let mut waited = false;
        while let Some(view) = self.beat_now(worker, run).await? {
            if fleet::Fleet::settled(&view) || self.shutdown.is_set() {
                if waited {
                    tracing::info!(
                        "every other worker counts this one now; sending at this worker's share"
                    );
                }
                break;
            }
            waited = true;
            self.shutdown.sleep(poll).await;
        }
        Ok(())
    }

    /// Applies the fleet's view to the channel limiters and campaign throttles of this run.
    fn take_shares(&self, run: &mut Run, view: &crate::store::FleetView) {
        let hold_for = self.opts.heartbeat() * 2;
        run.fleet.apply(
            view,
            &self.channels,
            &run.throttles,
            &run.campaigns,
            tokio::time::Instant::now(),
            hold_for,
        );
    }

    /// Reads the facts of every queued message again (the gate moved).
    fn request_refresh(&self, worker: &Worker, run: &Run) -> Result<RefreshReply, StoreError> {
        let held: Vec<Held> = run
            .queues
            .values()
            .flat_map(HashMap::values)
            .flatten()
            .map(|q| Held::of(&q.m))
            .collect();
        worker.request(move |s| {
            let facts = Facts::read(
                s,
                held.iter()
                    .map(|h| (h.id, h.campaign.as_str(), h.address.as_str())),
            )?;
            Ok((facts, held.iter().map(|h| h.id).collect()))
        })
    }

    /// Takes a claimed batch in: messages that cannot be sent whatever the time are settled
    /// at once; the others wait in their channel's queue.
    fn accept(&self, run: &mut Run, batch: ClaimedBatch, seen: u64, stopping: bool) {
        let ClaimedBatch {
            claimed,
            heads,
            facts,
            recent,
            lease_until,
        } = batch;
        if claimed.is_empty() {
            return;
        }
        // Every held message's facts are at least as new as the oldest read.
        run.gate_seen = Some(match run.gate_seen {
            Some(g) if run.holding() => g.min(facts.gate),
            _ => facts.gate,
        });
        run.leases_until = Some(match run.leases_until {
            Some(held) if run.holding() => held.min(lease_until),
            _ => lease_until,
        });
        run.paused += facts.paused as u64;
        run.campaigns.extend(facts.campaigns);
        run.suppressed.extend(facts.suppressed);
        let batch = Arc::new(Batch { recent, seen });
        let now = self.clock.now();
        let mut queued = 0;
        for (m, head) in claimed.into_iter().zip(heads) {
            let settle = |outcome| settled_unsent(&m, now, outcome);
            let channel = match self.unsendable(run, &m) {
                Err(outcome) => {
                    run.push(settle(outcome));
                    continue;
                }
                Ok(_) if stopping => {
                    run.push(settle(Outcome::Released));
                    continue;
                }
                Ok(rt) => rt.info.channel.clone(),
            };
            if !self.channels.contains_key(&channel) {
                run.push(settle(Outcome::Failed {
                    code: None,
                    error: format!("channel {channel:?} is not configured in disparo.yaml"),
                }));
                continue;
            }
            queued += 1;
            let by_channel = match run.queues.get_mut(&m.campaign) {
                Some(q) => q,
                None => run.queues.entry(m.campaign.clone()).or_default(),
            };
            let q = match by_channel.get_mut(&channel) {
                Some(q) => q,
                None => by_channel.entry(channel).or_default(),
            };
            q.push_back(Queued {
                m,
                head,
                batch: batch.clone(),
            });
        }
        if queued > 0 {
            run.queued += queued;
            *run.live_batches.entry(batch.seen).or_default() += queued;
        }
    }

    /// The campaign's facts if the message may still be sent as far as they tell, else how
    /// it ends this round: released (campaign paused, gone or unreadable), cancelled, or
    /// skipped (suppressed).
    fn unsendable(&self, run: &Run, m: &Claimed) -> Result<Arc<CampaignRt>, Outcome> {
        let rt = run
            .campaigns
            .get(&m.campaign)
            .cloned()
            .flatten()
            .ok_or(Outcome::Released)?;
        match rt.info.status {
            CampaignStatus::Active if !run.paused_here.contains(&m.campaign) => {}
            CampaignStatus::Cancelled => {
                return Err(Outcome::Cancelled {
                    reason: "campaign cancelled while the message was claimed".into(),
                });
            }
            _ => return Err(Outcome::Released),
        }
        if run.suppressed.contains(&m.id) {
            return Err(Outcome::Skipped {
                reason: "suppressed: the address is on the suppression list".into(),
            });
        }
        Ok(rt)
    }

    /// Stopping (or the leases lapsed): every claimed message not started yet goes back to
    /// pending, unchanged.
    fn release_queued(&self, run: &mut Run) {
        let now = self.clock.now();
        let queues = std::mem::take(&mut run.queues);
        for q in queues.into_values().flat_map(HashMap::into_values) {
            for Queued { m, batch, .. } in q {
                run.push(settled_unsent(&m, now, Outcome::Released));
                run.dequeued(batch.seen);
            }
        }
    }

    /// Starts queued messages while their channels have free slots and their turn under the
    /// rate limits has come, applying the rules of that moment (rules 5 and 6) to each first.
    /// Nothing starts while the facts of what is held are being read again, nor unless the
    /// leases are confirmed for at least half a lease more.
    fn start_sends(
        &self,
        worker: &Worker,
        run: &mut Run,
        claiming: bool,
    ) -> Result<(), StoreError> {
        run.pace_wake = None;
        if run.queued == 0 || run.refresh.is_some() {
            return Ok(());
        }
        let tnow = tokio::time::Instant::now();
        if run.gate_checked.is_none_or(|t| tnow - t >= GATE_EVERY) {
            let gate = self.store.gate()?;
            run.gate_checked = Some(tnow);
            if run.gate_seen != Some(gate) {
                // Someone paused, cancelled, suppressed or re-planned: read again what is
                // held before any more of it goes out (after the claim under way, if any,
                // so that its batch is read too).
                run.gate_checked = None;
                if !claiming {
                    run.refresh = Some(self.request_refresh(worker, run)?);
                }
                return Ok(());
            }
        }
        let lease_now = self.lease_clock.now();
        let Some(until) = run.leases_until else {
            return Ok(());
        };
        let left = lease_now.duration_until(until);
        if left < self.opts.lease / 2 {
            // The heartbeat is late: start nothing the lease might not cover.
            if left <= SignedDuration::ZERO {
                self.release_queued(run);
            }
            return Ok(());
        }
        // Every send is cut when the lease would end (less a margin for the clock).
        let margin = (self.opts.lease / 10).min(SignedDuration::from_secs(1));
        let covered = (left - margin).unsigned_abs();
        let cut = tnow + covered;
        let mut queues = std::mem::take(&mut run.queues);
        for (campaign, q) in queues.iter_mut().flat_map(|(campaign, by_channel)| {
            by_channel
                .iter_mut()
                .map(move |(ch, q)| ((campaign, ch), q))
        }) {
            let (campaign, channel) = campaign;
            let Some(ch) = self.channels.get(channel) else {
                continue;
            };
            let throttle = run.throttle_for(campaign);
            while !q.is_empty() {
                let ready = [ch.limiter.as_ref(), throttle.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.ready_at(tnow))
                    .max();
                if let Some(at) = ready {
                    if at - tnow > CLAIM_AHEAD.unsigned_abs() {
                        // Not its turn for a while: back to pending until then, so that
                        // nothing is held long and a later claim judges it afresh.
                        let due = self.clock.now()
                            + SignedDuration::try_from(at - tnow).unwrap_or(CLAIM_AHEAD);
                        let now = self.clock.now();
                        for Queued { m, batch, .. } in q.drain(..) {
                            run.push(settled_unsent(
                                &m,
                                now,
                                Outcome::Deferred {
                                    due_at: due,
                                    reasons: String::new(),
                                },
                            ));
                            run.dequeued(batch.seen);
                        }
                    } else {
                        run.pace_wake = Some(run.pace_wake.map_or(at, |w| w.min(at)));
                    }
                    break;
                }
                let Ok(permit) = ch.in_flight.clone().try_acquire_owned() else {
                    break;
                };
                let Some(Queued { m, head, batch }) = q.pop_front() else {
                    break;
                };
                // No timer when the adapter's own bound ends the send inside the lease anyway.
                let cut = (ch.channel.send_timeout() >= covered).then_some(cut);
                self.start(run, ch, throttle.as_deref(), permit, m, head, &batch, cut);
                // After the start: the batch's facts stay whole while its messages are judged.
                run.dequeued(batch.seen);
                if run.outbox.len() >= HAND_OVER_CHUNK {
                    run.hand_over(worker)?;
                }
            }
        }
        queues.retain(|_, by_channel| {
            by_channel.retain(|_, q| !q.is_empty());
            !by_channel.is_empty()
        });
        run.queues = queues;
        Ok(())
    }

    /// Judges one message at the moment it would leave and, unless a rule holds it back,
    /// takes its turn under the rate limits and starts its send, cut at `cut` if given.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        run: &mut Run,
        ch: &Arc<ChannelRuntime>,
        throttle: Option<&RateLimiter>,
        permit: tokio::sync::OwnedSemaphorePermit,
        m: Claimed,
        head: Head,
        batch: &Batch,
        cut: Option<tokio::time::Instant>,
    ) {
        let now = self.clock.now();
        let attempt = m.attempts + 1;
        let settle = |outcome| settled_unsent(&m, now, outcome);
        let rt = match self.unsendable(run, &m) {
            Ok(rt) => rt,
            Err(outcome) => {
                run.push(settle(outcome));
                return;
            }
        };
        let Some(tz) = run.zone(&m.zone) else {
            run.push(settle(Outcome::Failed {
                code: Some("zone".into()),
                error: format!(
                    "the time zone {:?} is unknown to this disparo's time-zone data, so quiet hours cannot be judged; upgrade disparo or re-plan with a known zone",
                    m.zone
                ),
            }));
            return;
        };
        let capped = !rt.caps.is_empty();
        let key = capped.then(|| (rt.info.channel.clone(), m.address.clone()));
        let held = match &key {
            None => hold_back(&m, &rt, &tz, &[], now),
            Some(key) => {
                // Sends the store knew of when the batch was claimed, and this run's sends
                // it did not know of yet.
                let mut recent: Vec<Timestamp> = batch.recent.get(key).cloned().unwrap_or_default();
                if let Some(own) = run.own_sends.get(key) {
                    recent.extend(
                        own.iter()
                            .filter(|s| s.outcome.is_none_or(|o| o >= batch.seen))
                            .map(|s| s.at),
                    );
                    recent.sort();
                }
                hold_back(&m, &rt, &tz, &recent, now)
            }
        };
        if let Some(o) = held {
            run.push(settle(o));
            return;
        }
        let tnow = tokio::time::Instant::now();
        for limiter in [ch.limiter.as_ref(), throttle].into_iter().flatten() {
            limiter.take(tnow);
        }
        if let Some(key) = &key {
            // Counted now, so a later message to the same address sees it.
            run.own_sends.entry(key.clone()).or_default().push(OwnSend {
                id: m.id,
                at: now,
                outcome: None,
            });
        }
        let clock = self.clock.clone();
        let ch = ch.clone();
        let abort = run.abort_for(&m.campaign);
        let id = m.id;
        run.sends.push(Box::pin(
            std::panic::AssertUnwindSafe(async move {
                let _permit = permit;
                let message = outgoing(&m, attempt, now, head.as_deref());
                let result = tokio::select! {
                    r = ch.channel.send_outgoing(&message) => r,
                    _ = async {
                        match cut {
                            Some(cut) => tokio::time::sleep_until(cut).await,
                            None => std::future::pending().await,
                        }
                    } => Err(SendError {
                        class: ErrorClass::Transient { retry_after: None },
                        code: Some(CODE_LEASE.into()),
                        message: "no answer before this run's lease on the message would end; it may or may not have reached the provider, and is retried with the same idempotency key".into(),
                    }),
                    _ = abort.wait() => Err(SendError {
                        class: ErrorClass::Transient { retry_after: None },
                        code: Some(CODE_BREAKER_ABORT.into()),
                        message: "cut while in flight: the circuit breaker paused the campaign; it may or may not have reached the provider, and is sent again with the same idempotency key when the campaign resumes".into(),
                    }),
                };
                let finished = clock.now();
                SendDone {
                    m,
                    head,
                    ch,
                    attempt,
                    started: now,
                    finished,
                    result,
                }
            })
            .catch_unwind()
            .map(move |r| r.map_err(|_| id)),
        ));
        run.in_flight.insert(
            id,
            InFlight {
                attempt,
                started: now,
                capped: key,
            },
        );
        run.note_started(id);
    }

    /// The grace period is over: every send still under way is dropped (cancelled). Each may
    /// or may not have reached the provider: pending again, due now, retried later with the
    /// same idempotency key.
    fn abort_sends(&self, run: &mut Run) {
        run.sends.clear();
        let at = self.clock.now();
        for (id, f) in std::mem::take(&mut run.in_flight) {
            if let Some(key) = &f.capped {
                run.own_send_done(key, id, false);
            }
            run.push(Completion {
                id,
                attempt: f.attempt,
                started_at: f.started,
                finished_at: at,
                outcome: Outcome::Retry {
                    due_at: at,
                    code: Some("aborted".into()),
                    error: "send aborted at shutdown after the grace period; the provider may or may not have received it".into(),
                },
            });
        }
    }

    /// A send ended: turn its result into an outcome.
    async fn finished(
        &self,
        worker: &Worker,
        run: &mut Run,
        done: Result<SendDone, i64>,
    ) -> Result<(), RunError> {
        let done = match done {
            Ok(done) => done,
            Err(id) => {
                return Err(RunError::Internal(format!(
                    "the send of message {id} panicked"
                )));
            }
        };
        let capped = run.in_flight.remove(&done.m.id).and_then(|f| f.capped);
        let SendDone {
            m,
            head,
            ch,
            attempt,
            started,
            finished,
            result,
        } = done;
        let outcome = match result {
            Ok(d) => Outcome::Sent {
                provider_id: d.provider_id,
            },
            Err(e) if e.code.as_deref() == Some(crate::channel::STDOUT_CLOSED) => {
                // Whoever read our output is gone: stop quietly, give the message back.
                self.shutdown.trigger();
                Outcome::Released
            }
            // Cut by the breaker: not the message's fault, keep it for the resume.
            Err(e) if e.code.as_deref() == Some(CODE_BREAKER_ABORT) => Outcome::Retry {
                due_at: finished,
                code: e.code,
                error: e.message,
            },
            Err(e) => match e.class {
                ErrorClass::Transient { .. } => {
                    match ch.retry.next_delay_with(&mut run.rng, attempt, &e) {
                        // Exponential backoff with full jitter, never sooner than Retry-After
                        // (however large: a date past the end of time is the end of time).
                        Some(delay) => Outcome::Retry {
                            due_at: SignedDuration::try_from(delay)
                                .ok()
                                .and_then(|d| finished.checked_add(d).ok())
                                .unwrap_or(Timestamp::MAX),
                            code: e.code,
                            error: e.message,
                        },
                        None => Outcome::Failed {
                            code: e.code,
                            error: format!("{} (gave up after {attempt} attempts)", e.message),
                        },
                    }
                }
                ErrorClass::Permanent => Outcome::Failed {
                    code: e.code,
                    error: e.message,
                },
                ErrorClass::Recipient { suppress } => Outcome::Refused {
                    code: e.code,
                    error: e.message,
                    suppress,
                },
                ErrorClass::Breaker => {
                    self.breaker_hit(worker, run, &m.campaign, &e.message)
                        .await?;
                    // Not the message's fault: keep it for when the campaign resumes.
                    Outcome::Retry {
                        due_at: finished,
                        code: e.code,
                        error: e.message,
                    }
                }
            },
        };
        if let Some(key) = &capped {
            let sent = matches!(outcome, Outcome::Sent { .. });
            run.own_send_done(key, m.id, sent);
        }
        run.push(Completion {
            id: m.id,
            attempt,
            started_at: started,
            finished_at: finished,
            outcome,
        });
        run.spent.push((m, head));
        Ok(())
    }

    /// Counts an error that fails every message of `campaign` alike; at the threshold, pauses
    /// the campaign (committed before anything else of it is judged) and cuts its sends still
    /// in flight.
    async fn breaker_hit(
        &self,
        worker: &Worker,
        run: &mut Run,
        campaign: &str,
        message: &str,
    ) -> Result<(), RunError> {
        let hits = run.breaker_hits.entry(campaign.to_owned()).or_default();
        *hits += 1;
        if *hits != self.opts.breaker_threshold {
            return Ok(());
        }
        let reason = format!(
            "circuit breaker: {message} ({hits} errors in a row that fail every message alike); fix the cause, then `disparo resume {campaign}`"
        );
        run.paused_here.insert(campaign.to_owned());
        run.abort_for(campaign).trigger();
        let name = campaign.to_owned();
        worker
            .call(move |s| s.set_campaign_status(&name, CampaignStatus::Paused, Some(&reason)))
            .await?;
        run.paused += 1;
        tracing::error!(campaign = %campaign, "campaign paused by the circuit breaker: {message}");
        Ok(())
    }
}

/// How far ahead a run claims for a rate-limited channel, at most: what it sends in this
/// long. A claimed batch's facts (campaign paused or cancelled, suppressions) are read when it
/// is claimed, so this bounds how late a change made meanwhile is noticed.
const CLAIM_AHEAD: SignedDuration = SignedDuration::from_secs(2);

/// Messages claimed and not yet finished, at most: `batch`, but never more than the slowest
/// rate-limited channel sends in half a lease (so that a claim is not taken over by another
/// run, and sent twice, while it still waits for its turn under the rate limit), nor in
/// [`CLAIM_AHEAD`]. Without a rate limit a batch is sent in a fraction of a second, so large
/// batches cost nothing in freshness and save commits.
fn claim_bound(
    batch: usize,
    lease: SignedDuration,
    rates: impl Iterator<Item = crate::units::Rate>,
) -> usize {
    let ahead = (lease.as_secs_f64() / 2.0)
        .min(CLAIM_AHEAD.as_secs_f64())
        .max(0.5);
    rates
        .map(|r| ((r.as_per_second() * ahead).floor() as usize).max(1))
        .fold(batch, usize::min)
        .max(1)
}

/// A claimed message as its channel sends it.
fn outgoing<'a>(
    m: &'a Claimed,
    attempt: u32,
    attempt_at: Timestamp,
    prepared: Option<&'a [u8]>,
) -> Outgoing<'a> {
    Outgoing {
        message_id: &m.key,
        campaign: &m.campaign,
        recipient: &m.recipient,
        channel: &m.channel,
        address: &m.address,
        locale: m.locale.as_deref(),
        content: &m.content,
        vars: Vars::Raw(&m.vars),
        scheduled_at: m.planned_at,
        attempt,
        attempt_at,
        prepared,
    }
}

/// Rules applied again at dispatch: expiry, the recipient's wall clock, the frequency cap.
/// `Some(outcome)` when the message must not be sent now.
fn hold_back(
    m: &Claimed,
    rt: &CampaignRt,
    tz: &jiff::tz::TimeZone,
    recent: &[Timestamp],
    now: Timestamp,
) -> Option<Outcome> {
    match schedule::at_dispatch_capped(
        m.planned_at,
        now,
        tz,
        &rt.window,
        rt.expire_after,
        recent,
        &rt.caps,
    ) {
        Dispatch::SendNow => None,
        Dispatch::Defer(p) => Some(Outcome::Deferred {
            due_at: p.at,
            reasons: p.reasons.names().collect::<Vec<_>>().join(","),
        }),
        Dispatch::Expired { late_by } => Some(Outcome::Expired {
            reason: format!(
                "expired: its earliest allowed send time is {} after the planned {} (expire_after {})",
                crate::units::Duration::from_secs(late_by.as_secs()),
                m.planned_at,
                crate::units::Duration::from_secs(rt.info.rules.expire_after_secs.unwrap_or(0))
            ),
        }),
        Dispatch::Never => Some(Outcome::Expired {
            reason: "no allowed send time remains (days, blackout dates or caps allow nothing)"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::claim_bound;
    use crate::units::Rate;
    use jiff::SignedDuration;

    #[test]
    fn claims_are_bounded_by_the_slowest_rate_within_half_a_lease_and_two_seconds() {
        let mins = SignedDuration::from_mins;
        let none = std::iter::empty::<Rate>;
        // No rate limit: the batch as given (at least 1).
        assert_eq!(claim_bound(8192, mins(5), none()), 8192);
        assert_eq!(claim_bound(0, mins(5), none()), 1);
        // A rate limit: at most two seconds of sending, whatever the lease.
        assert_eq!(
            claim_bound(8192, mins(5), [Rate::per_second(500.0)].into_iter()),
            1000
        );
        assert_eq!(
            claim_bound(100, mins(5), [Rate::per_second(500.0)].into_iter()),
            100
        );
        // The slowest channel decides.
        let rates = [Rate::per_second(500.0), Rate::per_second(80.0)];
        assert_eq!(claim_bound(8192, mins(5), rates.into_iter()), 160);
        // A short lease: half of it (at least half a second), so a claim is sent before
        // another run may take it over.
        let secs = SignedDuration::from_secs;
        assert_eq!(
            claim_bound(8192, secs(2), [Rate::per_second(80.0)].into_iter()),
            80
        );
        assert_eq!(
            claim_bound(8192, secs(0), [Rate::per_second(80.0)].into_iter()),
            40
        );
        // At least one message, however slow the channel.
        assert_eq!(
            claim_bound(8192, mins(5), [Rate::per_second(0.01)].into_iter()),
            1
        );
    }
}
