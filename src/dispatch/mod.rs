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

use std::collections::HashMap;
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
            batch: 256,
            linger: SignedDuration::from_secs(60),
            watch: false,
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
    /// Back to pending for later (night, cap, retry after a transient error).
    pub deferred: u64,
    pub retried: u64,
    pub expired: u64,
    pub skipped: u64,
    /// Claims given back because the run was stopping or the campaign was paused.
    pub released: u64,
    /// Campaigns paused by the circuit breaker during this run.
    pub paused: u64,
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
    /// Sleeps until `d` has passed or shutdown is triggered.
    pub async fn sleep(&self, d: std::time::Duration) {
        if self.is_set() {
            return;
        }
        let notified = self.notify.notified();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = notified => {}
        }
    }
}

/// The dispatcher of one run.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    channels: HashMap<String, Arc<ChannelRuntime>>,
    clock: Clock,
    opts: RunOptions,
    shutdown: Arc<Shutdown>,
    /// Sends this run started, per (channel, address), for frequency caps: the store only
    /// knows a send once its batch completes, and two messages to one address can be in the
    /// same batch. Counted when the send starts, so a failed send errs on the safe side.
    started: std::sync::Mutex<HashMap<(String, String), Vec<Timestamp>>>,
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
            started: std::sync::Mutex::new(HashMap::new()),
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

    /// Runs until nothing is due (`--once`, after lingering for near-due messages) or until
    /// shutdown (`--watch`).
    pub async fn run(&self) -> Result<Summary, RunError> {
        let mut summary = Summary::default();
        let mut breaker_hits: HashMap<String, u32> = HashMap::new();
        loop {
            if self.shutdown.is_set() {
                summary.interrupted = true;
                break;
            }
            if let Some(limit) = self.opts.limit
                && summary.handled() >= limit
            {
                break;
            }
            let now = self.clock.now();
            let batch = match self.opts.limit {
                Some(l) => self.opts.batch.min((l - summary.handled()).max(1) as usize),
                None => self.opts.batch,
            };
            let (owner, lease_until, campaign) = (
                self.opts.owner.clone(),
                now + self.opts.lease,
                self.opts.campaign.clone(),
            );
            let claimed = self
                .blocking(move |s| s.claim(&owner, now, lease_until, batch, campaign.as_deref()))
                .await?;
            if claimed.is_empty() {
                let campaign = self.opts.campaign.clone();
                let next = self
                    .blocking(move |s| s.next_due(campaign.as_deref()))
                    .await?;
                let wait = match next {
                    Some(due) if self.opts.watch || due <= now + self.opts.linger => {
                        now.duration_until(due).max(SignedDuration::from_millis(50))
                    }
                    None if self.opts.watch => SignedDuration::from_secs(5),
                    _ => break,
                };
                // In watch mode, wake at least every few seconds to notice newly planned,
                // paused or resumed campaigns written by other processes.
                let wait = if self.opts.watch {
                    wait.min(SignedDuration::from_secs(5))
                } else {
                    wait
                };
                self.shutdown.sleep(wait.unsigned_abs()).await;
                continue;
            }
            let completions = self
                .dispatch_batch(claimed, &mut breaker_hits, &mut summary)
                .await?;
            for c in &completions {
                summary.add(&c.outcome);
            }
            let owner = self.opts.owner.clone();
            self.blocking(move |s| s.complete(&owner, &completions))
                .await?;
        }
        Ok(summary)
    }

    async fn dispatch_batch(
        &self,
        claimed: Vec<Claimed>,
        breaker_hits: &mut HashMap<String, u32>,
        summary: &mut Summary,
    ) -> Result<Vec<Completion>, RunError> {
        let mut infos: HashMap<String, Option<CampaignInfo>> = HashMap::new();
        let mut completions = Vec::with_capacity(claimed.len());
        let mut sends = tokio::task::JoinSet::new();
        for m in claimed {
            let now = self.clock.now();
            if !infos.contains_key(&m.campaign) {
                let name = m.campaign.clone();
                let info = self.blocking(move |s| s.campaign(&name)).await?;
                infos.insert(m.campaign.clone(), info);
            }
            let info = infos.get(&m.campaign).cloned().flatten();
            let attempt = m.attempts + 1;
            let done = |outcome| Completion {
                id: m.id,
                attempt,
                started_at: now,
                finished_at: now,
                outcome,
            };
            let Some(info) =
                info.filter(|i| i.status == CampaignStatus::Active && !self.shutdown.is_set())
            else {
                completions.push(done(Outcome::Released));
                continue;
            };
            if let Some(o) = self.hold_back(&m, &info, now).await? {
                completions.push(done(o));
                continue;
            }
            let Some(rt) = self.channels.get(&info.channel).cloned() else {
                completions.push(done(Outcome::Failed {
                    code: None,
                    error: format!(
                        "channel {:?} is not configured in disparo.yaml",
                        info.channel
                    ),
                }));
                continue;
            };
            let permit = rt
                .in_flight
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| RunError::Internal(e.to_string()))?;
            let clock = self.clock.clone();
            sends.spawn(async move {
                let _permit = permit;
                let envelope = Envelope {
                    message_id: m.key.clone(),
                    campaign: m.campaign.clone(),
                    recipient: m.recipient.clone(),
                    channel: info.channel.clone(),
                    address: m.address.clone(),
                    locale: m.locale.clone(),
                    content: m.content.clone(),
                    vars: m.vars.clone(),
                    scheduled_at: m.planned_at,
                    attempt,
                    attempt_at: now,
                };
                if let Some(limiter) = &rt.limiter {
                    limiter.acquire().await;
                }
                let result = rt.channel.send(&envelope).await;
                let finished = clock.now();
                (
                    m,
                    info.name.clone(),
                    attempt,
                    now,
                    finished,
                    result,
                    rt.retry.clone(),
                )
            });
        }
        while let Some(joined) = sends.join_next().await {
            let (m, campaign, attempt, started, finished, result, retry) =
                joined.map_err(|e| RunError::Internal(format!("a send task failed: {e}")))?;
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
        Ok(completions)
    }

    /// Rules applied again at dispatch: suppression, expiry, the recipient's wall clock, the
    /// frequency cap. `Some(outcome)` when the message must not be sent now.
    async fn hold_back(
        &self,
        m: &Claimed,
        info: &CampaignInfo,
        now: Timestamp,
    ) -> Result<Option<Outcome>, RunError> {
        let address = m.address.clone();
        if self.blocking(move |s| s.is_suppressed(&address)).await? {
            return Ok(Some(Outcome::Skipped {
                reason: "suppressed: the address is on the suppression list".into(),
            }));
        }
        let rules = &info.rules;
        let tz = crate::model::zone(&m.zone).unwrap_or(jiff::tz::TimeZone::UTC);
        let window = window_of(rules);
        let caps: Vec<schedule::FrequencyCap> = rules
            .caps
            .iter()
            .map(|&(max, per)| schedule::FrequencyCap {
                max,
                per: SignedDuration::from_secs(per),
            })
            .collect();
        let cap_key = (info.channel.clone(), m.address.clone());
        let recent = match caps.iter().map(|c| c.per).max() {
            Some(longest) => {
                let (channel, address) = cap_key.clone();
                let mut recent = self
                    .blocking(move |s| s.sends_since(&channel, &address, now - longest))
                    .await?;
                let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
                recent.extend(started.get(&cap_key).into_iter().flatten().copied());
                recent
            }
            None => Vec::new(),
        };
        let expire_after = rules.expire_after_secs.map(SignedDuration::from_secs);
        Ok(
            match schedule::at_dispatch_capped(
                m.planned_at,
                now,
                &tz,
                &window,
                expire_after,
                &recent,
                &caps,
            ) {
                Dispatch::SendNow => {
                    if !caps.is_empty() {
                        self.started
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(cap_key)
                            .or_default()
                            .push(now);
                    }
                    None
                }
                Dispatch::Defer(p) => Some(Outcome::Deferred {
                    due_at: p.at,
                    reasons: p.reasons.names().collect::<Vec<_>>().join(","),
                }),
                Dispatch::Expired { late_by } => Some(Outcome::Expired {
                    reason: format!(
                        "expired: its earliest allowed send time is {} after the planned {} (expire_after {})",
                        crate::units::Duration::from_secs(late_by.as_secs()),
                        m.planned_at,
                        crate::units::Duration::from_secs(rules.expire_after_secs.unwrap_or(0))
                    ),
                }),
                Dispatch::Never => Some(Outcome::Expired {
                    reason:
                        "no allowed send time remains (days, blackout dates or caps allow nothing)"
                            .into(),
                }),
            },
        )
    }
}
