//! The public face of a run: the channels it sends on, its options, what it did, why it
//! stopped, and the signal that stops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::SignedDuration;
use tokio::sync::Semaphore;

use crate::channel::limits::{RateLimiter, RetryPolicy};
use crate::channel::{Channel, ChannelSettings};
use crate::store::{Outcome, StoreError};

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
    /// Messages claimed and not yet finished, at most (see
    /// [`Dispatcher::run`](super::Dispatcher::run)).
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
    /// Follow-up messages this run released (made pending) and found not needed.
    pub follow_ups_released: u64,
    pub follow_ups_not_needed: u64,
    /// Due messages of ramped channels that had spent their day's budget (`ramp:`) when the
    /// run last found nothing more to claim: they stay pending for the next ramp day.
    pub ramp_held: u64,
    /// When the first of those channels' next ramp day opens (the run's clock).
    pub ramp_opens: Option<jiff::Timestamp>,
    pub interrupted: bool,
}

impl Summary {
    pub(super) fn add(&mut self, o: &Outcome) {
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
    pub(super) fn handled(&self) -> u64 {
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
