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
//!
//! Where things are: `options.rs` the public types of a run; `state.rs` its mutable state
//! (queues, sends under way, the outbox and its hand-over); `drive.rs` the loop; `claims.rs`
//! claims and the facts of what is held; `start.rs` the checks at the moment of the send and
//! starting it; `finish.rs` outcomes, retries and the circuit breaker; `heartbeat.rs` leases
//! and the fleet (`fleet.rs` the shares); `ramp.rs` what the channels' warm-up ramps hold
//! back and when their next day opens; `worker.rs` the store thread; `facts.rs`,
//! `rules.rs` and `clock.rs` what the rules know, the windows and the run's clock; `hash.rs`
//! the maps' hasher.

mod claims;
mod clock;
mod drive;
mod facts;
mod finish;
mod fleet;
mod gate;
mod hash;
mod heartbeat;
mod options;
mod ramp;
mod rules;
mod start;
mod state;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;

pub use clock::Clock;
pub use options::{
    ChannelRuntime, DEFAULT_LEASE, RunError, RunOptions, Shutdown, Summary, default_owner,
};
pub use rules::window_of;

use crate::ramp::ChannelRamp;
use crate::store::Store;
use state::{MAX_PENDING, Run};
use worker::{CommitPolicy, Worker};

/// The dispatcher of one run.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    channels: HashMap<String, Arc<ChannelRuntime>>,
    clock: Clock,
    /// Leases are judged on the real clock by every process, whatever `--now` says.
    lease_clock: Clock,
    opts: RunOptions,
    shutdown: Arc<Shutdown>,
    /// The channels with a warm-up ramp: every claim is limited by them (`ramp.rs`).
    ramps: Arc<[ChannelRamp]>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        channels: HashMap<String, Arc<ChannelRuntime>>,
        clock: Clock,
        opts: RunOptions,
        shutdown: Arc<Shutdown>,
    ) -> Dispatcher {
        let mut ramps: Vec<ChannelRamp> = channels
            .iter()
            .filter_map(|(name, c)| {
                Some(ChannelRamp {
                    channel: name.clone(),
                    ramp: c.settings.ramp.clone()?,
                })
            })
            .collect();
        ramps.sort_by(|a, b| a.channel.cmp(&b.channel));
        Dispatcher {
            ramps: ramps.into(),
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
        let mut run = Run::new(self.opts.jitter_seed, gate::Gate::for_store(&self.store));
        let result = match self.join_fleet(&worker, &mut run).await {
            Ok(()) => match self.release_follow_ups(&worker, &mut run).await {
                Ok(()) => self.drive(&worker, &mut run).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if result.is_ok() && self.opts.watch && !run.ramp_closed.is_empty() {
            // The summary says what the ramps hold back now, not when they closed.
            let mut closed = std::mem::take(&mut run.ramp_closed);
            if let Err(e) = self.count_held_back(&worker, &mut closed).await {
                tracing::debug!("could not count what the ramps hold back: {e}");
            }
            run.ramp_closed = closed;
        }
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
        summary.follow_ups_released = run.follow_ups.released;
        summary.follow_ups_not_needed = run.follow_ups.not_needed;
        (summary.ramp_held, summary.ramp_opens) = ramp::held_back(&run.ramp_closed);
        summary.interrupted = self.shutdown.is_set();
        Ok(summary)
    }
}
