//! The dispatch loop: claims ahead, starts sends, hands outcomes over, renews leases, and
//! waits for whatever comes next, until nothing is due or the run is stopped.

use std::pin::Pin;

use futures_util::stream::StreamExt;
use jiff::SignedDuration;
use tokio::sync::oneshot::error::RecvError;
use tokio::time::{Instant, Sleep};

use super::claims::{ClaimReply, ClaimedBatch};
use super::facts::Facts;
use super::heartbeat::{Beat, RenewReply};
use super::state::{HAND_OVER_AFTER, HAND_OVER_CHUNK, Run};
use super::worker::Worker;
use super::{Dispatcher, RunError};
use crate::store::StoreError;

/// How often an idle run looks for follow-ups to release when it sent nothing since.
const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl Dispatcher {
    /// The loop of one run: one turn per event (a claim, a refresh or a heartbeat back, a
    /// send ended, a timer), each turn first starting what may start and claiming ahead.
    pub(super) async fn drive(&self, worker: &Worker, run: &mut Run) -> Result<(), RunError> {
        let max_batch = self.max_batch();
        let mut claim: Option<ClaimReply> = None;
        let mut renew: Option<RenewReply> = None;
        // The last claim found nothing: look at `next_due` once everything is finished.
        let mut drained = false;
        let mut stopping = false;
        let mut deadline: Option<Instant> = None;
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
        let mut hand_over_armed: Option<Instant> = None;
        let mut pace_armed: Option<Instant> = None;
        loop {
            if !stopping && self.shutdown.is_set() {
                stopping = true;
                self.release_queued(run);
            }
            if stopping && deadline.is_none() {
                deadline = Some(Instant::now() + self.opts.grace.unsigned_abs());
            }
            if !stopping {
                self.start_sends(worker, run, claim.is_some())?;
            }
            if run.outbox.len() >= HAND_OVER_CHUNK {
                run.hand_over(worker)?;
            }
            let outstanding = run.queued + run.sends.len();
            if claim.is_none() && run.refresh.is_none() && !stopping && !drained {
                match self.claim_size(worker, run, outstanding, max_batch).await? {
                    None => break,
                    Some(0) => {}
                    Some(want) => claim = Some(self.claim(worker, run, want)?),
                }
            }
            if claim.is_none() && outstanding == 0 {
                if stopping {
                    break;
                }
                if drained {
                    if !self.wait_for_due(worker, run).await? {
                        break;
                    }
                    drained = false;
                    // Asleep, this run made no heartbeat: its announcement may have expired,
                    // and then the others no longer count it. Join again before claiming.
                    self.join_fleet(worker, run).await?;
                    continue;
                }
            }
            let hand_over_at = run.outbox_since.map(|t| t + HAND_OVER_AFTER);
            arm(hand_over_timer.as_mut(), &mut hand_over_armed, hand_over_at);
            arm(pace_timer.as_mut(), &mut pace_armed, run.pace_wake);
            let holding = run.holding() || claim.is_some();
            tokio::select! {
                e = &mut failed => return Err(e.into()),
                r = async { claim.as_mut().expect("guarded").await }, if claim.is_some() => {
                    claim = None;
                    if self.claimed(run, r, stopping)? {
                        drained = true;
                    }
                }
                r = async { run.refresh.as_mut().expect("guarded").await }, if run.refresh.is_some() => {
                    run.refresh = None;
                    let (facts, ids) = answer(r)?;
                    refreshed(run, facts, ids);
                }
                r = async { renew.as_mut().expect("guarded").await }, if renew.is_some() => {
                    renew = None;
                    self.renewed(run, answer(r)?);
                }
                _ = &mut heartbeat_timer, if renew.is_none() && (holding || !self.channels.is_empty()) => {
                    heartbeat_timer.as_mut().reset(Instant::now() + heartbeat_every);
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
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() && !aborted && !run.sends.is_empty() => {
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

    /// How many messages to claim now, with `outstanding` held: topped up to `max_batch`
    /// once at most half of it is left. `None` when `--limit` is reached: the run is over.
    async fn claim_size(
        &self,
        worker: &Worker,
        run: &mut Run,
        outstanding: usize,
        max_batch: usize,
    ) -> Result<Option<usize>, RunError> {
        Ok(Some(match self.opts.limit {
            // With --limit, claim only what is left, known once all is recorded.
            Some(limit) => {
                if outstanding > 0 {
                    0
                } else {
                    run.hand_over(worker)?;
                    let handled = worker.flush().await?.handled();
                    if handled >= limit {
                        return Ok(None);
                    }
                    max_batch.min((limit - handled) as usize)
                }
            }
            None if outstanding <= max_batch / 2 => max_batch - outstanding,
            None => 0,
        }))
    }

    /// Hands the outbox over and asks for `want` more messages, in that order: the claim
    /// records the outcomes before it reads the facts of what it claims.
    fn claim(&self, worker: &Worker, run: &mut Run, want: usize) -> Result<ClaimReply, StoreError> {
        run.hand_over(worker)?;
        run.claim_seen = Some(run.handed);
        self.request_claim(worker, want)
    }

    /// A claim came back: its batch is taken in. `true` when it was empty (nothing is due
    /// right now).
    fn claimed(
        &self,
        run: &mut Run,
        r: Result<Result<ClaimedBatch, StoreError>, RecvError>,
        stopping: bool,
    ) -> Result<bool, RunError> {
        let seen = run.claim_seen.take().unwrap_or(run.handed);
        let batch = answer(r)?;
        let drained = batch.claimed.is_empty();
        self.accept(run, batch, seen, stopping);
        Ok(drained)
    }

    /// A heartbeat came back: the fleet's shares are taken, and the leases it renewed are
    /// this run's new horizon, unless it renewed them too late.
    fn renewed(&self, run: &mut Run, beat: Beat) {
        if let Some(view) = &beat.fleet {
            self.take_shares(run, view);
        }
        let Beat {
            at, until, holding, ..
        } = beat;
        if !holding {
            return;
        }
        if run.leases_until.is_some_and(|held| at > held) {
            // Renewed too late: another run may have taken some of what is queued
            // over meanwhile. Give it all back (only what is still ours is
            // recorded) and claim again.
            tracing::warn!(
                "this run's leases expired before the heartbeat renewed them (the store was slow?); giving back what was not started"
            );
            self.release_queued(run);
        }
        run.leases_until = Some(until);
    }

    /// Turns follow-up drafts whose parent messages are decided into messages (see
    /// `store::follow_ups`): at the start of the run and whenever it has nothing left to
    /// send, so that a follow-up falling due during a long `--watch` run is found.
    pub(super) async fn release_follow_ups(
        &self,
        worker: &Worker,
        run: &mut Run,
    ) -> Result<(), RunError> {
        let now = self.clock.now();
        run.released_at = Some((Instant::now(), run.handed));
        let stats = worker.call(move |s| s.release_follow_ups(now)).await?;
        if stats.released + stats.not_needed > 0 {
            tracing::info!(
                released = stats.released,
                not_needed = stats.not_needed,
                "follow-ups decided"
            );
        }
        run.follow_ups.released += stats.released;
        run.follow_ups.not_needed += stats.not_needed;
        Ok(())
    }

    /// Nothing is held and the last claim found nothing: records everything, then sleeps
    /// until the next message falls due or a lease another run left behind ends. `false`
    /// when the run is over instead (`--once` and nothing due within the linger).
    async fn wait_for_due(&self, worker: &Worker, run: &mut Run) -> Result<bool, RunError> {
        run.hand_over(worker)?;
        worker.flush().await?;
        // Again when this run's own outcomes may have decided parents, or a while has passed
        // (receipts arrive meanwhile): a release reads every undecided parent message.
        let due_again = run
            .released_at
            .is_none_or(|(at, handed)| handed != run.handed || at.elapsed() >= RELEASE_EVERY);
        let before = run.follow_ups.released;
        if due_again {
            self.release_follow_ups(worker, run).await?;
        }
        if run.follow_ups.released > before {
            // Some may be due now: claim again at once.
            return Ok(true);
        }
        // Ramped channels that spent their day's budget are left out of what is due: their
        // messages wait for the next ramp day (on the run's clock, as their sends are timed).
        let mut idle = self.look_idle(worker).await?;
        // What they hold back is counted when it is reported: as `--once` ends, and when a
        // channel closes (`--watch` looks every second: the count reads the whole backlog).
        if !idle.closed.is_empty()
            && (!self.opts.watch || super::ramp::newly_closed(&run.ramp_seen, &idle.closed))
        {
            self.count_held_back(worker, &mut idle.closed).await?;
        }
        super::ramp::announce(&mut run.ramp_seen, &idle.closed);
        let opens = idle.closed.iter().filter_map(|c| c.wakes()).min();
        run.ramp_closed = idle.closed;
        // How long until the next due message (on the run's clock) or the next
        // lease another run may have left behind (on the real clock).
        let until_due = idle
            .due
            .into_iter()
            .chain(opens)
            .min()
            .map(|d| self.clock.now().duration_until(d));
        let until_lease = idle.lease.map(|l| self.lease_clock.now().duration_until(l));
        let next = until_due.into_iter().chain(until_lease).min();
        let wait = match next {
            Some(w) if self.opts.watch || w <= self.opts.linger => {
                w.max(SignedDuration::from_millis(50))
            }
            None if self.opts.watch => self.opts.watch_poll,
            _ => return Ok(false),
        };
        // In watch mode, look again at least every `watch_poll` to notice
        // campaigns planned, paused, resumed or cancelled by other processes; one
        // indexed query per look, never a busy loop.
        let wait = if self.opts.watch {
            wait.min(self.opts.watch_poll)
        } else {
            wait
        };
        // Another run's lease: a live run renews it, and finishes or gives back what it holds
        // at any moment; look again every heartbeat instead of sleeping a whole lease (a
        // fleet's idle workers would linger that long after the work is done).
        let wait = match (until_due, until_lease) {
            (d, Some(l)) if d.is_none_or(|d| l < d) => wait.min(
                SignedDuration::try_from(self.opts.heartbeat())
                    .unwrap_or(SignedDuration::from_secs(5)),
            ),
            _ => wait,
        };
        self.shutdown.sleep(wait.unsigned_abs()).await;
        Ok(true)
    }
}

/// A store thread's answer, or why there is none.
fn answer<T>(r: Result<Result<T, StoreError>, RecvError>) -> Result<T, RunError> {
    Ok(r.map_err(|_| RunError::Internal("the store thread has stopped".into()))??)
}

/// The facts of everything held, read again: they replace those of the same messages.
fn refreshed(run: &mut Run, facts: Facts, ids: Vec<i64>) {
    run.paused += facts.paused as u64;
    run.suppressed.retain(|id| !ids.contains(id));
    run.suppressed.extend(facts.suppressed);
    run.withdrawn.retain(|id, _| !ids.contains(id));
    run.withdrawn.extend(facts.withdrawn);
    run.campaigns.extend(facts.campaigns);
    run.gate_seen = Some(facts.gate);
}

/// Points `timer` at `at`, unless it already points there: a reset registers with the timer
/// wheel again, once per turn of the loop otherwise.
fn arm(timer: Pin<&mut Sleep>, armed: &mut Option<Instant>, at: Option<Instant>) {
    if let Some(t) = at
        && *armed != Some(t)
    {
        timer.reset(t);
        *armed = Some(t);
    }
}
