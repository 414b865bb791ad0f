//! Starting a send: the checks at the moment a message would leave, its turn under the
//! rate limits, and the send itself, cut when the lease would end.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::FutureExt;
use jiff::{SignedDuration, Timestamp};

use super::claims::CLAIM_AHEAD;
use super::facts::CampaignRt;
use super::state::{
    Batch, HAND_OVER_CHUNK, Head, InFlight, OwnSend, Queued, Run, SendDone, settled_unsent,
};
use super::worker::Worker;
use super::{ChannelRuntime, Dispatcher, Shutdown};
use crate::channel::limits::RateLimiter;
use crate::channel::{Delivered, ErrorClass, Outgoing, SendError, Vars};
use crate::schedule::{self, Dispatch};
use crate::store::{CampaignStatus, Claimed, Outcome, StoreError};

/// How often, at most, a run reads the store's gate before starting sends. A send started
/// less than this after the last read is ordered before any change committed since: it was
/// judged on the facts of that read.
pub(super) const GATE_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// Error codes of sends this run cut itself.
pub(super) const CODE_LEASE: &str = "lease";
pub(super) const CODE_BREAKER_ABORT: &str = "aborted";

impl Dispatcher {
    /// The campaign's facts if the message may still be sent as far as they tell, else how
    /// it ends this round: released (campaign paused, gone or unreadable), cancelled, or
    /// skipped (suppressed).
    pub(super) fn unsendable(&self, run: &Run, m: &Claimed) -> Result<Arc<CampaignRt>, Outcome> {
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
        if let Some(why) = run.withdrawn.get(&m.id) {
            return Err(Outcome::Cancelled {
                reason: why.clone(),
            });
        }
        Ok(rt)
    }

    /// Starts queued messages while their channels have free slots and their turn under the
    /// rate limits has come, applying the rules of that moment (rules 5 and 6) to each first.
    /// Nothing starts while the facts of what is held are being read again, nor unless the
    /// leases are confirmed for at least half a lease more.
    pub(super) fn start_sends(
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
        let Some(left) = self.lease_left(worker, run, claiming, tnow)? else {
            return Ok(());
        };
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
                if self.not_yet(run, q, [ch.limiter.as_ref(), throttle.as_deref()], tnow) {
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

    /// How long the leases are confirmed for, if sends may start now: only on facts as new as
    /// the store's gate (else they are read again first) and with at least half a lease
    /// confirmed (once the leases ended, everything queued is given back).
    fn lease_left(
        &self,
        worker: &Worker,
        run: &mut Run,
        claiming: bool,
        tnow: tokio::time::Instant,
    ) -> Result<Option<SignedDuration>, StoreError> {
        if run.gate_checked.is_none_or(|t| tnow - t >= GATE_EVERY) {
            let Some(gate) = run.gate.read(self.store.as_ref())? else {
                // No fresh value yet (a store across a network): look again shortly.
                let again = tnow + GATE_EVERY;
                run.pace_wake = Some(run.pace_wake.map_or(again, |w| w.min(again)));
                return Ok(None);
            };
            run.gate_checked = Some(tnow);
            if run.gate_seen != Some(gate) {
                // Someone paused, cancelled, suppressed or re-planned: read again what is
                // held before any more of it goes out (after the claim under way, if any,
                // so that its batch is read too).
                run.gate_checked = None;
                if !claiming {
                    run.refresh = Some(self.request_refresh(worker, run)?);
                }
                return Ok(None);
            }
        }
        let lease_now = self.lease_clock.now();
        let Some(until) = run.leases_until else {
            return Ok(None);
        };
        let left = lease_now.duration_until(until);
        if left < self.opts.lease / 2 {
            // The heartbeat is late: start nothing the lease might not cover.
            if left <= SignedDuration::ZERO {
                self.release_queued(run);
            }
            return Ok(None);
        }
        Ok(Some(left))
    }

    /// Whether the turn of the queue's head under its rate limits is still to come: soon, the
    /// loop wakes for it; not for a while, the whole queue goes back to pending until then.
    fn not_yet(
        &self,
        run: &mut Run,
        q: &mut VecDeque<Queued>,
        limiters: [Option<&RateLimiter>; 2],
        tnow: tokio::time::Instant,
    ) -> bool {
        let ready = limiters
            .into_iter()
            .flatten()
            .filter_map(|l| l.ready_at(tnow))
            .max();
        if let Some(at) = ready {
            if at - tnow > CLAIM_AHEAD.unsigned_abs() {
                // Not its turn for a while: back to pending until then, so that
                // nothing is held long and a later claim judges it afresh.
                let due =
                    self.clock.now() + SignedDuration::try_from(at - tnow).unwrap_or(CLAIM_AHEAD);
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
            return true;
        }
        false
    }

    /// Judges one message at the moment it would leave and, unless a rule holds it back,
    /// takes its turn under the rate limits and starts its send, cut at `cut` if given.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
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
        let key = match self.judge(run, &m, batch, now) {
            Ok(key) => key,
            Err(outcome) => {
                run.push(settled_unsent(&m, now, outcome));
                return;
            }
        };
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
                let result = send_until(&ch, &message, cut, &abort).await;
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

    /// The rules of the moment a message would leave, in their order (see the module docs):
    /// `Ok` with the key its frequency caps count it under, if any, when it may go now; else
    /// how it ends this round.
    fn judge(
        &self,
        run: &mut Run,
        m: &Claimed,
        batch: &Batch,
        now: Timestamp,
    ) -> Result<Option<(String, String)>, Outcome> {
        let rt = self.unsendable(run, m)?;
        let Some(tz) = run.zone(&m.zone) else {
            return Err(Outcome::Failed {
                code: Some("zone".into()),
                error: format!(
                    "the time zone {:?} is unknown to this disparo's time-zone data, so quiet hours cannot be judged; upgrade disparo or re-plan with a known zone",
                    m.zone
                ),
            });
        };
        let capped = !rt.caps.is_empty();
        let key = capped.then(|| (rt.info.channel.clone(), m.address.clone()));
        let held = match &key {
            None => hold_back(m, &rt, &tz, &[], now),
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
                hold_back(m, &rt, &tz, &recent, now)
            }
        };
        match held {
            Some(o) => Err(o),
            None => Ok(key),
        }
    }
}

/// A message's send, cut when this run's lease on it would end (at `cut`, if given) or when
/// the circuit breaker paused its campaign: either way it may or may not have reached the
/// provider, so it ends as a transient error, retried with the same idempotency key.
async fn send_until(
    ch: &ChannelRuntime,
    message: &Outgoing<'_>,
    cut: Option<tokio::time::Instant>,
    abort: &Shutdown,
) -> Result<Delivered, SendError> {
    tokio::select! {
        r = ch.channel.send_outgoing(message) => r,
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
    }
}

/// A claimed message as its channel sends it.
pub(super) fn outgoing<'a>(
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
        row: Some(m.id),
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
