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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Semaphore;

pub use clock::Clock;
pub use rules::window_of;

use crate::channel::limits::{RateLimiter, RetryPolicy};
use crate::channel::{Channel, ChannelSettings, ErrorClass};
use crate::message::Envelope;
use crate::schedule::{self, Dispatch};
use crate::store::{CampaignInfo, CampaignStatus, Claimed, Completion, Outcome, Store, StoreError};

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
    /// Messages claimed per transaction.
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
    /// While sending, outcomes are written at least this often, so that a crash re-sends as
    /// little as possible.
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
            batch: 1024,
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

/// Everything the rules need about one claimed batch, read in one store round trip.
struct BatchFacts {
    campaigns: HashMap<String, Option<CampaignRt>>,
    /// Message ids whose address is on the suppression list.
    suppressed: HashSet<i64>,
    /// Recent successful sends per (channel, address), for campaigns with frequency caps.
    recent: HashMap<(String, String), Vec<Timestamp>>,
}

impl BatchFacts {
    /// Reads campaign rules (once per campaign), suppressions (once per address) and recent
    /// sends (once per address, only for campaigns with frequency caps) for a whole batch, in
    /// one blocking call with cached statements.
    fn read(
        store: &dyn Store,
        batch: &[Claimed],
        now: Timestamp,
    ) -> Result<BatchFacts, StoreError> {
        let mut campaigns: HashMap<String, Option<CampaignRt>> = HashMap::new();
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
        let mut suppressed = HashSet::new();
        let mut recent: HashMap<(String, String), Vec<Timestamp>> = HashMap::new();
        let addresses: Vec<&str> = batch
            .iter()
            .map(|m| m.address.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let on_list = store.suppressed_among(&addresses)?;
        for m in batch {
            if on_list.contains(&m.address) {
                suppressed.insert(m.id);
                continue;
            }
            if let (Some(longest), Some(Some(rt))) = (longest, campaigns.get(&m.campaign))
                && !rt.caps.is_empty()
            {
                let key = (rt.info.channel.clone(), m.address.clone());
                if let std::collections::hash_map::Entry::Vacant(e) = recent.entry(key) {
                    let (channel, address) = e.key();
                    let sends = store.sends_since(channel, address, now - longest)?;
                    e.insert(sends);
                }
            }
        }
        Ok(BatchFacts {
            campaigns,
            suppressed,
            recent,
        })
    }
}

/// A send in flight, remembered so that an aborted send still gets an outcome.
struct InFlight {
    id: i64,
    attempt: u32,
    started: Timestamp,
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

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, RunError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| RunError::Internal(e.to_string()))?
            .map_err(RunError::from)
    }

    /// Messages per claim: `--batch`, but never more than the slowest rate-limited channel
    /// can send in half a lease, so that a claim is not taken over by another run (and sent
    /// twice) while it still waits for its turn under the rate limit.
    fn max_batch(&self) -> usize {
        let lease = self.opts.lease.as_secs_f64().max(1.0);
        self.channels
            .values()
            .filter_map(|c| c.settings.rate)
            .map(|r| ((r.as_per_second() * lease / 2.0).floor() as usize).max(1))
            .fold(self.opts.batch, usize::min)
            .max(1)
    }

    /// Runs until nothing is due (`--once`, after lingering for near-due messages) or until
    /// shutdown (`--watch`).
    pub async fn run(&self) -> Result<Summary, RunError> {
        let mut summary = Summary::default();
        let mut breaker_hits: HashMap<String, u32> = HashMap::new();
        loop {
            if self.shutdown.is_set() {
                break;
            }
            if let Some(limit) = self.opts.limit
                && summary.handled() >= limit
            {
                break;
            }
            let now = self.clock.now();
            let batch = match self.opts.limit {
                Some(l) => self
                    .max_batch()
                    .min((l - summary.handled()).max(1) as usize),
                None => self.max_batch(),
            };
            let (owner, lease_until, campaign) = (
                self.opts.owner.clone(),
                now + self.opts.lease,
                self.opts.campaign.clone(),
            );
            // A claim is never abandoned half-way: once the transaction started, its result is
            // used (and released if we are stopping).
            let claimed = self
                .blocking(move |s| s.claim(&owner, now, lease_until, batch, campaign.as_deref()))
                .await?;
            if claimed.is_empty() {
                let campaign = self.opts.campaign.clone();
                let next = self
                    .blocking(move |s| s.next_due(campaign.as_deref()))
                    .await?;
                let now = self.clock.now();
                let wait = match next {
                    Some(due) if self.opts.watch || due <= now + self.opts.linger => {
                        now.duration_until(due).max(SignedDuration::from_millis(50))
                    }
                    None if self.opts.watch => self.opts.watch_poll,
                    _ => break,
                };
                // In watch mode, look again at least every `watch_poll` to notice campaigns
                // planned, paused, resumed or cancelled by other processes; one indexed query
                // per look, never a busy loop.
                let wait = if self.opts.watch {
                    wait.min(self.opts.watch_poll)
                } else {
                    wait
                };
                self.shutdown.sleep(wait.unsigned_abs()).await;
                continue;
            }
            self.dispatch_batch(claimed, &mut breaker_hits, &mut summary)
                .await?;
        }
        summary.interrupted = self.shutdown.is_set();
        Ok(summary)
    }

    /// Records outcomes (one transaction) and counts them.
    async fn flush(
        &self,
        completions: &mut Vec<Completion>,
        summary: &mut Summary,
    ) -> Result<(), RunError> {
        if completions.is_empty() {
            return Ok(());
        }
        let done = std::mem::take(completions);
        let owner = self.opts.owner.clone();
        let (recorded, done) = self
            .blocking(move |s| s.complete(&owner, &done).map(|n| (n, done)))
            .await?;
        for c in &done {
            summary.add(&c.outcome);
        }
        if recorded < done.len() {
            let lost = (done.len() - recorded) as u64;
            summary.lost += lost;
            tracing::warn!(
                lost,
                "outcomes not recorded: another run took these messages over after our lease expired; use a longer --lease than a send can take"
            );
        }
        Ok(())
    }

    async fn dispatch_batch(
        &self,
        claimed: Vec<Claimed>,
        breaker_hits: &mut HashMap<String, u32>,
        summary: &mut Summary,
    ) -> Result<(), RunError> {
        let claimed = Arc::new(claimed);
        let facts = {
            let (batch, now) = (claimed.clone(), self.clock.now());
            self.blocking(move |s| BatchFacts::read(s, &batch, now))
                .await?
        };
        let claimed = Arc::try_unwrap(claimed).unwrap_or_else(|a| (*a).clone());
        let BatchFacts {
            campaigns,
            suppressed,
            mut recent,
        } = facts;
        let mut completions = Vec::with_capacity(claimed.len());
        let mut sends = tokio::task::JoinSet::new();
        let mut in_flight: HashMap<tokio::task::Id, InFlight> = HashMap::new();
        for m in claimed {
            let now = self.clock.now();
            let attempt = m.attempts + 1;
            let done = |outcome| Completion {
                id: m.id,
                attempt,
                started_at: now,
                finished_at: now,
                outcome,
            };
            let rt = campaigns.get(&m.campaign).and_then(Option::as_ref);
            let Some(rt) =
                rt.filter(|rt| rt.info.status == CampaignStatus::Active && !self.shutdown.is_set())
            else {
                completions.push(done(Outcome::Released));
                continue;
            };
            if suppressed.contains(&m.id) {
                completions.push(done(Outcome::Skipped {
                    reason: "suppressed: the address is on the suppression list".into(),
                }));
                continue;
            }
            let key = (rt.info.channel.clone(), m.address.clone());
            let sent_recently = recent.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(o) = hold_back(&m, rt, sent_recently, now) {
                completions.push(done(o));
                continue;
            }
            let Some(ch) = self.channels.get(&rt.info.channel).cloned() else {
                completions.push(done(Outcome::Failed {
                    code: None,
                    error: format!(
                        "channel {:?} is not configured in disparo.yaml",
                        rt.info.channel
                    ),
                }));
                continue;
            };
            // Waiting for a free slot on the channel; a stop signal ends the wait.
            let permit = tokio::select! {
                p = ch.in_flight.clone().acquire_owned() => {
                    p.map_err(|e| RunError::Internal(e.to_string()))?
                }
                _ = self.shutdown.wait() => {
                    completions.push(done(Outcome::Released));
                    continue;
                }
            };
            if !rt.caps.is_empty() {
                // Counted now, so a second message to the same address in this batch sees it.
                recent.entry(key).or_default().push(now);
            }
            let clock = self.clock.clone();
            let channel_name = rt.info.channel.clone();
            let (id, attempt_no) = (m.id, attempt);
            let handle = sends.spawn(async move {
                let _permit = permit;
                let envelope = Envelope {
                    message_id: m.key.clone(),
                    campaign: m.campaign.clone(),
                    recipient: m.recipient.clone(),
                    channel: channel_name,
                    address: m.address.clone(),
                    locale: m.locale.clone(),
                    content: m.content.clone(),
                    vars: m.vars.clone(),
                    scheduled_at: m.planned_at,
                    attempt,
                    attempt_at: now,
                };
                if let Some(limiter) = &ch.limiter {
                    limiter.acquire().await;
                }
                let result = ch.channel.send(&envelope).await;
                let finished = clock.now();
                (m, attempt, now, finished, result, ch.retry.clone())
            });
            in_flight.insert(
                handle.id(),
                InFlight {
                    id,
                    attempt: attempt_no,
                    started: now,
                },
            );
        }
        // Not-sent outcomes first: they need no network and free their claims at once.
        self.flush(&mut completions, summary).await?;

        let mut last_flush = std::time::Instant::now();
        let flush_every = self.opts.flush_every.unsigned_abs();
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut aborted = false;
        while !sends.is_empty() {
            if deadline.is_none() && self.shutdown.is_set() {
                deadline = Some(tokio::time::Instant::now() + self.opts.grace.unsigned_abs());
            }
            let tick = tokio::time::Instant::from_std(last_flush + flush_every);
            let joined = tokio::select! {
                j = sends.join_next_with_id() => j,
                _ = tokio::time::sleep_until(tick), if !completions.is_empty() => {
                    self.flush(&mut completions, summary).await?;
                    last_flush = std::time::Instant::now();
                    continue;
                }
                _ = self.shutdown.wait(), if deadline.is_none() => continue,
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() && !aborted => {
                    tracing::warn!(
                        in_flight = sends.len(),
                        "grace period over: aborting sends still in flight; they will be retried with the same idempotency key"
                    );
                    sends.abort_all();
                    aborted = true;
                    continue;
                }
            };
            let Some(joined) = joined else { break };
            let (m, attempt, started, finished, result, retry) = match joined {
                Ok((task, v)) => {
                    in_flight.remove(&task);
                    v
                }
                Err(e) if e.is_cancelled() => {
                    if let Some(f) = in_flight.remove(&e.id()) {
                        // It may or may not have reached the provider: pending again, due now,
                        // retried later with the same idempotency key.
                        let at = self.clock.now();
                        completions.push(Completion {
                            id: f.id,
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
                    continue;
                }
                Err(e) => return Err(RunError::Internal(format!("a send task failed: {e}"))),
            };
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
                    ErrorClass::Transient { .. } => match retry.next_delay(attempt, &e) {
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
                        let hits = breaker_hits.entry(campaign.clone()).or_default();
                        *hits += 1;
                        if *hits == self.opts.breaker_threshold {
                            let reason = format!(
                                "circuit breaker: {} ({} errors in a row that fail every message alike); fix the cause, then `disparo resume {campaign}`",
                                e.message, hits
                            );
                            let name = campaign.clone();
                            self.blocking(move |s| {
                                s.set_campaign_status(&name, CampaignStatus::Paused, Some(&reason))
                            })
                            .await?;
                            summary.paused += 1;
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
            completions.push(Completion {
                id: m.id,
                attempt,
                started_at: started,
                finished_at: finished,
                outcome,
            });
        }
        self.flush(&mut completions, summary).await
    }
}

/// Rules applied again at dispatch: expiry, the recipient's wall clock, the frequency cap.
/// `Some(outcome)` when the message must not be sent now.
fn hold_back(
    m: &Claimed,
    rt: &CampaignRt,
    recent: &[Timestamp],
    now: Timestamp,
) -> Option<Outcome> {
    let tz = crate::model::zone(&m.zone).unwrap_or(jiff::tz::TimeZone::UTC);
    match schedule::at_dispatch_capped(
        m.planned_at,
        now,
        &tz,
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
