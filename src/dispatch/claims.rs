//! Claims and facts: asking the store thread for the next batch and for the facts of what
//! is held, taking a batch in, giving unstarted messages back, and how much to claim.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::Dispatcher;
use super::facts::{self, Facts, Held, HeldRef};
use super::start::outgoing;
use super::state::{Batch, Head, Queued, Run, settled_unsent};
use super::worker::Worker;
use crate::store::{ClaimRequest, Claimed, Outcome, StoreError};

/// A claimed batch as the store thread hands it over.
pub(super) struct ClaimedBatch {
    pub(super) claimed: Vec<Claimed>,
    heads: Vec<Head>,
    facts: Facts,
    recent: HashMap<(String, String), Vec<Timestamp>>,
    /// The lease the claim took, on the real clock.
    lease_until: Timestamp,
}

/// Where a claimed batch arrives from the store thread.
pub(super) type ClaimReply = tokio::sync::oneshot::Receiver<Result<ClaimedBatch, StoreError>>;
/// Facts read again for every queued message, with the ids they are about.
pub(super) type RefreshReply =
    tokio::sync::oneshot::Receiver<Result<(Facts, Vec<i64>), StoreError>>;

impl Dispatcher {
    /// Messages claimed and not yet finished, at most: see [`claim_bound`].
    pub(super) fn max_batch(&self) -> usize {
        claim_bound(
            self.opts.batch,
            self.opts.lease,
            self.channels.values().filter_map(|c| c.settings.rate),
        )
    }

    /// Asks the store thread to record the outcomes handed over so far and claim up to
    /// `limit` messages, then read the batch's facts, all in one round trip.
    pub(super) fn request_claim(
        &self,
        worker: &Worker,
        limit: usize,
    ) -> Result<ClaimReply, StoreError> {
        let now = self.clock.now();
        let lease_now = self.lease_clock.now();
        let clock = self.clock.clone();
        let (owner, lease_until, campaign) = (
            self.opts.owner.clone(),
            lease_now + self.opts.lease,
            self.opts.campaign.clone(),
        );
        let channels = self.channels.clone();
        let ramps = self.ramps.clone();
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
                    ramps: &ramps,
                },
            )?;
            let facts = Facts::read(s, claimed.iter().map(HeldRef::of), now)?;
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

    /// Reads the facts of every queued message again (the gate moved).
    pub(super) fn request_refresh(
        &self,
        worker: &Worker,
        run: &Run,
    ) -> Result<RefreshReply, StoreError> {
        let held: Vec<Held> = run
            .queues
            .values()
            .flat_map(HashMap::values)
            .flatten()
            .map(|q| Held::of(&q.m))
            .collect();
        let now = self.clock.now();
        worker.request(move |s| {
            let facts = Facts::read(s, held.iter().map(Held::as_ref), now)?;
            Ok((facts, held.iter().map(|h| h.id).collect()))
        })
    }

    /// Takes a claimed batch in: messages that cannot be sent whatever the time are settled
    /// at once; the others wait in their channel's queue.
    pub(super) fn accept(&self, run: &mut Run, batch: ClaimedBatch, seen: u64, stopping: bool) {
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
        run.withdrawn.extend(facts.withdrawn);
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

    /// Stopping (or the leases lapsed): every claimed message not started yet goes back to
    /// pending, unchanged.
    pub(super) fn release_queued(&self, run: &mut Run) {
        let now = self.clock.now();
        let queues = std::mem::take(&mut run.queues);
        for q in queues.into_values().flat_map(HashMap::into_values) {
            for Queued { m, batch, .. } in q {
                run.push(settled_unsent(&m, now, Outcome::Released));
                run.dequeued(batch.seen);
            }
        }
    }
}

/// How far ahead a run claims for a rate-limited channel, at most: what it sends in this
/// long. A claimed batch's facts (campaign paused or cancelled, suppressions) are read when it
/// is claimed, so this bounds how late a change made meanwhile is noticed.
pub(super) const CLAIM_AHEAD: SignedDuration = SignedDuration::from_secs(2);

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
