//! `disparo run`: claim due messages with a lease, re-apply the time rules at dispatch
//! (SPEC §4 rules 5 and 6), send through the channels within their limits, and record every
//! outcome — so that nothing is sent twice by our doing and nothing is lost.
//!
//! Order of checks for a claimed message: campaign still active → address not suppressed →
//! not expired → allowed now on the recipient's wall clock (night, weekday, blackout) → under
//! the frequency cap → send. Anything not sent goes back to `pending` with its new due time,
//! or to a final state with the reason.

mod clock;
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
use crate::channel::{Channel, ChannelSettings, ErrorClass, Outgoing, Vars};
use crate::schedule::{self, Dispatch};
use crate::store::{
    CampaignInfo, CampaignStatus, ClaimRequest, Claimed, Completion, Outcome, Store, StoreError,
};
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
    /// How long a claim is held before another run may take the message over.
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
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            campaign: None,
            limit: None,
            lease: SignedDuration::from_mins(5),
            batch: 8192,
            linger: SignedDuration::from_secs(60),
            watch: false,
            watch_poll: SignedDuration::from_secs(1),
            grace: SignedDuration::from_secs(30),
            flush_every: SignedDuration::from_millis(250),
            breaker_threshold: 3,
            owner: default_owner(),
        }
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
        }
    }
    fn handled(&self) -> u64 {
        self.sent + self.failed + self.expired + self.skipped
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

/// A campaign's rules as dispatch uses them, computed once per batch.
struct CampaignRt {
    info: CampaignInfo,
    window: schedule::SendWindow,
    caps: Vec<schedule::FrequencyCap>,
    expire_after: Option<SignedDuration>,
}

impl CampaignRt {
    fn new(info: CampaignInfo) -> CampaignRt {
        let rules = &info.rules;
        CampaignRt {
            window: window_of(rules),
            caps: rules
                .caps
                .iter()
                .map(|&(max, per)| schedule::FrequencyCap {
                    max,
                    per: SignedDuration::from_secs(per),
                })
                .collect(),
            expire_after: rules.expire_after_secs.map(SignedDuration::from_secs),
            info,
        }
    }
    fn longest_cap(&self) -> Option<SignedDuration> {
        self.caps.iter().map(|c| c.per).max()
    }
}

/// Everything the rules need about one claimed batch, read on the store thread right after
/// the claim, in the same round trip.
struct BatchFacts {
    campaigns: HashMap<String, Option<CampaignRt>, FastHash>,
    /// Message ids whose address is on the suppression list.
    suppressed: HashSet<i64, FastHash>,
    /// Recent successful sends per (channel, address), for campaigns with frequency caps.
    recent: HashMap<(String, String), Vec<Timestamp>>,
}

impl BatchFacts {
    /// Reads campaign rules (once per campaign), suppressions (one query for the batch) and
    /// recent sends (one call for the batch, only for campaigns with frequency caps).
    fn read(
        store: &dyn Store,
        batch: &[Claimed],
        now: Timestamp,
    ) -> Result<BatchFacts, StoreError> {
        let mut campaigns: HashMap<String, Option<CampaignRt>, FastHash> = HashMap::default();
        for m in batch {
            if !campaigns.contains_key(&m.campaign) {
                let rt = store.campaign(&m.campaign)?.map(CampaignRt::new);
                campaigns.insert(m.campaign.clone(), rt);
            }
        }
        let longest = campaigns
            .values()
            .flatten()
            .filter_map(CampaignRt::longest_cap)
            .max();
        let mut suppressed = HashSet::default();
        let addresses: Vec<&str> = batch
            .iter()
            .map(|m| m.address.as_str())
            .collect::<HashSet<_, FastHash>>()
            .into_iter()
            .collect();
        let on_list = store.suppressed_among(&addresses)?;
        let mut capped: HashSet<(&str, &str)> = HashSet::new();
        for m in batch {
            if on_list.contains(&m.address) {
                suppressed.insert(m.id);
                continue;
            }
            if let Some(Some(rt)) = campaigns.get(&m.campaign)
                && !rt.caps.is_empty()
            {
                capped.insert((rt.info.channel.as_str(), m.address.as_str()));
            }
        }
        let recent = match longest {
            Some(longest) if !capped.is_empty() => {
                let pairs: Vec<(&str, &str)> = capped.into_iter().collect();
                store.sends_among(&pairs, now - longest)?
            }
            _ => HashMap::new(),
        };
        Ok(BatchFacts {
            campaigns,
            suppressed,
            recent,
        })
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

/// Where a claimed batch and its facts arrive from the store thread.
type ClaimReply =
    tokio::sync::oneshot::Receiver<Result<(Vec<Claimed>, Vec<Head>, BatchFacts), StoreError>>;

/// What [`Channel::prepare`] made of a claimed message on the store thread, if anything.
type Head = Option<Vec<u8>>;

/// A claimed batch's facts, shared by its messages while they wait for their turn.
struct Batch {
    facts: BatchFacts,
    /// How many outcomes had been handed to the store thread when this batch was claimed:
    /// the facts include the sends among those and none of the later ones.
    seen: u64,
}

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
    /// Claimed messages waiting for a slot, per channel (in claim order within a channel).
    queues: HashMap<String, VecDeque<Queued>, FastHash>,
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
}

impl Run {
    fn push(&mut self, c: Completion) {
        if self.outbox.is_empty() {
            self.outbox_since = Some(tokio::time::Instant::now());
        }
        self.outbox.push(c);
        self.handed += 1;
    }

    fn hand_over(&mut self, worker: &Worker) -> Result<(), StoreError> {
        self.outbox_since = None;
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

    fn zone(&mut self, name: &str) -> jiff::tz::TimeZone {
        if let Some(tz) = self.zones.get(name) {
            return tz.clone();
        }
        let tz = crate::model::zone(name).unwrap_or(jiff::tz::TimeZone::UTC);
        self.zones.insert(name.to_owned(), tz.clone());
        tz
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

/// The dispatcher of one run.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    channels: HashMap<String, Arc<ChannelRuntime>>,
    clock: Clock,
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
            opts,
            shutdown,
        }
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
        };
        let result = self.drive(&worker, &mut run).await;
        // Whatever happened, record what is known before stopping. (After a store error the
        // in-flight sends are dropped: their leases expire and they are retried later.)
        run.sends.clear();
        let handed = run.hand_over(&worker);
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
        // The last claim found nothing: look at `next_due` once everything is finished.
        let mut drained = false;
        let mut stopping = false;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut aborted = false;
        // Made once, not per turn of the loop (a turn per finished send): each would register
        // with a waiter list or the timer wheel every time.
        let failed = worker.failed();
        let stop = self.shutdown.wait();
        let hand_over_timer = tokio::time::sleep(std::time::Duration::from_secs(3600));
        tokio::pin!(failed, stop, hand_over_timer);
        let mut hand_over_armed: Option<tokio::time::Instant> = None;
        loop {
            if !stopping && self.shutdown.is_set() {
                stopping = true;
                self.release_queued(run);
            }
            if stopping && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + self.opts.grace.unsigned_abs());
            }
            if !stopping {
                self.start_sends(worker, run)?;
            }
            if run.outbox.len() >= HAND_OVER_CHUNK {
                run.hand_over(worker)?;
            }
            let outstanding = run.queued + run.sends.len();
            if claim.is_none() && !stopping && !drained {
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
                    let next = worker
                        .call(move |s| s.next_due(campaign.as_deref()))
                        .await?;
                    let now = self.clock.now();
                    let wait = match next {
                        Some(due) if self.opts.watch || due <= now + self.opts.linger => {
                            now.duration_until(due).max(SignedDuration::from_millis(50))
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
                    continue;
                }
            }
            if let Some(t) = run.outbox_since.map(|t| t + HAND_OVER_AFTER)
                && hand_over_armed != Some(t)
            {
                hand_over_timer.as_mut().reset(t);
                hand_over_armed = Some(t);
            }
            tokio::select! {
                e = &mut failed => return Err(e.into()),
                r = async { claim.as_mut().expect("guarded").await }, if claim.is_some() => {
                    claim = None;
                    let seen = run.claim_seen.take().unwrap_or(run.handed);
                    let (claimed, heads, facts) = r.map_err(|_| RunError::Internal("the store thread has stopped".into()))??;
                    if claimed.is_empty() {
                        drained = true;
                    }
                    self.accept(run, claimed, heads, facts, seen, stopping);
                }
                done = run.sends.next(), if !run.sends.is_empty() => {
                    if let Some(done) = done {
                        self.finished(worker, run, done).await?;
                    }
                }
                _ = &mut hand_over_timer, if run.outbox_since.is_some() => {
                    run.hand_over(worker)?;
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
        let clock = self.clock.clone();
        let (owner, lease_until, campaign) = (
            self.opts.owner.clone(),
            now + self.opts.lease,
            self.opts.campaign.clone(),
        );
        let channels = self.channels.clone();
        worker.with_pending(move |s, pending| {
            let (recorded, claimed) = s.complete_and_claim(
                pending,
                &ClaimRequest {
                    owner: &owner,
                    now,
                    lease_until,
                    limit,
                    campaign: campaign.as_deref(),
                },
            )?;
            let facts = BatchFacts::read(s, &claimed, clock.now())?;
            // Off the network thread: what each channel can make of its messages already.
            let heads = claimed
                .iter()
                .map(|m| {
                    let ch = channels.get(&m.channel)?;
                    ch.channel
                        .prepare(&outgoing(m, m.attempts + 1, m.due_at, None))
                })
                .collect();
            Ok((recorded, (claimed, heads, facts)))
        })
    }

    /// Takes a claimed batch in: messages that cannot be sent whatever the time are settled
    /// at once; the others wait in their channel's queue.
    fn accept(
        &self,
        run: &mut Run,
        claimed: Vec<Claimed>,
        heads: Vec<Head>,
        facts: BatchFacts,
        seen: u64,
        stopping: bool,
    ) {
        let batch = Arc::new(Batch { facts, seen });
        let now = self.clock.now();
        let mut queued = 0;
        for (m, head) in claimed.into_iter().zip(heads) {
            let settle = |outcome| settled_unsent(&m, now, outcome);
            let rt = batch
                .facts
                .campaigns
                .get(&m.campaign)
                .and_then(Option::as_ref);
            let Some(rt) = rt.filter(|rt| rt.info.status == CampaignStatus::Active && !stopping)
            else {
                run.push(settle(Outcome::Released));
                continue;
            };
            if batch.facts.suppressed.contains(&m.id) {
                run.push(settle(Outcome::Skipped {
                    reason: "suppressed: the address is on the suppression list".into(),
                }));
                continue;
            }
            if !self.channels.contains_key(&rt.info.channel) {
                run.push(settle(Outcome::Failed {
                    code: None,
                    error: format!(
                        "channel {:?} is not configured in disparo.yaml",
                        rt.info.channel
                    ),
                }));
                continue;
            }
            queued += 1;
            let q = run.queues.entry(rt.info.channel.clone()).or_default();
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

    /// Stopping: every claimed message not started yet goes back to pending, unchanged.
    fn release_queued(&self, run: &mut Run) {
        let now = self.clock.now();
        let queues = std::mem::take(&mut run.queues);
        for q in queues.into_values() {
            for Queued { m, batch, .. } in q {
                run.push(Completion {
                    id: m.id,
                    attempt: m.attempts + 1,
                    started_at: now,
                    finished_at: now,
                    outcome: Outcome::Released,
                });
                run.dequeued(batch.seen);
            }
        }
    }

    /// Starts queued messages while their channels have free slots, applying the rules of
    /// the moment (rules 5 and 6) to each first.
    fn start_sends(&self, worker: &Worker, run: &mut Run) -> Result<(), StoreError> {
        if run.queued == 0 {
            return Ok(());
        }
        let mut queues = std::mem::take(&mut run.queues);
        for (channel, q) in queues.iter_mut() {
            let Some(ch) = self.channels.get(channel) else {
                continue;
            };
            while !q.is_empty() {
                let Ok(permit) = ch.in_flight.clone().try_acquire_owned() else {
                    break;
                };
                let Some(Queued { m, head, batch }) = q.pop_front() else {
                    break;
                };
                self.start(run, ch, permit, m, head, &batch);
                // After the start: the batch's facts stay whole while its messages are judged.
                run.dequeued(batch.seen);
                if run.outbox.len() >= HAND_OVER_CHUNK {
                    run.hand_over(worker)?;
                }
            }
        }
        queues.retain(|_, q| !q.is_empty());
        run.queues = queues;
        Ok(())
    }

    fn start(
        &self,
        run: &mut Run,
        ch: &Arc<ChannelRuntime>,
        permit: tokio::sync::OwnedSemaphorePermit,
        m: Claimed,
        head: Head,
        batch: &Batch,
    ) {
        let now = self.clock.now();
        let attempt = m.attempts + 1;
        let settle = |outcome| settled_unsent(&m, now, outcome);
        let rt = batch
            .facts
            .campaigns
            .get(&m.campaign)
            .and_then(Option::as_ref);
        let Some(rt) = rt.filter(|_| !run.paused_here.contains(&m.campaign)) else {
            // Paused by the circuit breaker since it was claimed.
            run.push(settle(Outcome::Released));
            return;
        };
        let tz = run.zone(&m.zone);
        let capped = !rt.caps.is_empty();
        let key = capped.then(|| (rt.info.channel.clone(), m.address.clone()));
        let held = match &key {
            None => hold_back(&m, rt, &tz, &[], now),
            Some(key) => {
                // Sends the store knew of when the batch was claimed, and this run's sends
                // it did not know of yet.
                let mut recent: Vec<Timestamp> =
                    batch.facts.recent.get(key).cloned().unwrap_or_default();
                if let Some(own) = run.own_sends.get(key) {
                    recent.extend(
                        own.iter()
                            .filter(|s| s.outcome.is_none_or(|o| o >= batch.seen))
                            .map(|s| s.at),
                    );
                    recent.sort();
                }
                hold_back(&m, rt, &tz, &recent, now)
            }
        };
        if let Some(o) = held {
            run.push(settle(o));
            return;
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
        let id = m.id;
        run.sends.push(Box::pin(
            std::panic::AssertUnwindSafe(async move {
                let _permit = permit;
                if let Some(limiter) = &ch.limiter {
                    limiter.acquire().await;
                }
                let message = outgoing(&m, attempt, now, head.as_deref());
                let result = ch.channel.send_outgoing(&message).await;
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
            Err(e) => match e.class {
                ErrorClass::Transient { .. } => match ch.retry.next_delay(attempt, &e) {
                    // Exponential backoff with full jitter, never sooner than Retry-After.
                    Some(delay) => Outcome::Retry {
                        due_at: finished
                            + SignedDuration::try_from(delay)
                                .unwrap_or(SignedDuration::from_secs(300)),
                        code: e.code,
                        error: e.message,
                    },
                    None => Outcome::Failed {
                        code: e.code,
                        error: format!("{} (gave up after {attempt} attempts)", e.message),
                    },
                },
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
                    let campaign = m.campaign.clone();
                    let hits = run.breaker_hits.entry(campaign.clone()).or_default();
                    *hits += 1;
                    if *hits == self.opts.breaker_threshold {
                        let reason = format!(
                            "circuit breaker: {} ({} errors in a row that fail every message alike); fix the cause, then `disparo resume {campaign}`",
                            e.message, hits
                        );
                        let name = campaign.clone();
                        worker
                            .call(move |s| {
                                s.set_campaign_status(&name, CampaignStatus::Paused, Some(&reason))
                            })
                            .await?;
                        run.paused += 1;
                        run.paused_here.insert(campaign.clone());
                        tracing::error!(campaign = %campaign, "campaign paused by the circuit breaker: {}", e.message);
                    }
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
