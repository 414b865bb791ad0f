//! The mutable state of one run: claimed messages queued per campaign and channel, sends
//! under way, and the outbox of outcomes handed over to the store thread in chunks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use futures_util::stream::FuturesUnordered;
use jiff::Timestamp;

use super::claims::RefreshReply;
use super::facts::CampaignFacts;
use super::fleet;
use super::hash::FastHash;
use super::worker::{Spent, Worker};
use super::{ChannelRuntime, Shutdown};
use crate::channel::limits::RateLimiter;
use crate::store::{Claimed, Completion, Outcome, StoreError};

/// The outcome of a claimed message settled without a send (released, skipped, held back),
/// as its next attempt, at `now`.
pub(super) fn settled_unsent(m: &Claimed, now: Timestamp, outcome: Outcome) -> Completion {
    Completion {
        id: m.id,
        attempt: m.attempts + 1,
        started_at: now,
        finished_at: now,
        outcome,
    }
}

/// What [`Channel::prepare`](crate::channel::Channel::prepare) made of a claimed message on
/// the store thread, if anything.
pub(super) type Head = Option<Vec<u8>>;

/// What a claimed batch's messages share while they wait for their turn: the recent sends
/// the frequency caps count.
pub(super) struct Batch {
    pub(super) recent: HashMap<(String, String), Vec<Timestamp>>,
    /// How many outcomes had been handed to the store thread when this batch was claimed:
    /// the facts include the sends among those and none of the later ones.
    pub(super) seen: u64,
}

/// Claimed messages wait in one queue per campaign and channel (a campaign has one channel,
/// unless a re-plan moved it while messages were held): a throttled campaign does not hold up
/// the others on its channel. Nested, so that a message finds its queue without building a key.
pub(super) type Queues = HashMap<String, HashMap<String, VecDeque<Queued>, FastHash>, FastHash>;

/// A claimed message waiting for a free slot on its channel.
pub(super) struct Queued {
    pub(super) m: Claimed,
    pub(super) head: Head,
    pub(super) batch: Arc<Batch>,
}

/// A send this run started for a campaign with a frequency cap. Counted by the caps of later
/// messages to the same address until the store's facts include it.
pub(super) struct OwnSend {
    pub(super) id: i64,
    pub(super) at: Timestamp,
    /// The outcome's number in the hand-over order, once it is known to be a send.
    pub(super) outcome: Option<u64>,
}

/// A send under way: its message back when it ends, or the message id if it panicked.
pub(super) type SendFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<SendDone, i64>> + Send>>;

/// What a send gives back.
pub(super) struct SendDone {
    pub(super) m: Claimed,
    pub(super) head: Head,
    pub(super) ch: Arc<ChannelRuntime>,
    pub(super) attempt: u32,
    pub(super) started: Timestamp,
    pub(super) finished: Timestamp,
    pub(super) result: Result<crate::channel::Delivered, crate::channel::SendError>,
}

/// A send in flight, remembered so that an aborted send still gets an outcome.
pub(super) struct InFlight {
    pub(super) attempt: u32,
    pub(super) started: Timestamp,
    pub(super) capped: Option<(String, String)>,
}

/// Outcomes are handed to the store thread in chunks of this many (or after
/// [`HAND_OVER_AFTER`]), so that the store thread is woken once per chunk, not per message.
pub(super) const HAND_OVER_CHUNK: usize = 256;
pub(super) const HAND_OVER_AFTER: std::time::Duration = std::time::Duration::from_millis(10);
/// The store thread commits as soon as this many outcomes wait.
pub(super) const MAX_PENDING: usize = 8192;

/// The mutable state of one run of the dispatch loop.
pub(super) struct Run {
    /// Claimed messages waiting for a slot, per channel and campaign (in claim order).
    pub(super) queues: Queues,
    pub(super) queued: usize,
    /// Sends under way, polled by the dispatch loop itself (no task per send).
    pub(super) sends: FuturesUnordered<SendFuture>,
    /// What an aborted send still needs for its outcome, by message id.
    pub(super) in_flight: HashMap<i64, InFlight, FastHash>,
    /// Outcomes not yet handed to the store thread.
    pub(super) outbox: Vec<Completion>,
    /// Finished messages, handed over with the outcomes to be freed on the store thread.
    pub(super) spent: Vec<Spent>,
    pub(super) outbox_since: Option<tokio::time::Instant>,
    /// Outcomes handed to the store thread so far (the outbox included).
    pub(super) handed: u64,
    /// This run's sends to capped campaigns, per (channel, address).
    pub(super) own_sends: HashMap<(String, String), Vec<OwnSend>>,
    /// Batches with messages still queued, by their `seen`, with how many.
    pub(super) live_batches: std::collections::BTreeMap<u64, usize>,
    /// The `seen` of the claim under way.
    pub(super) claim_seen: Option<u64>,
    /// Campaigns this run's circuit breaker paused.
    pub(super) paused_here: HashSet<String, FastHash>,
    pub(super) breaker_hits: HashMap<String, u32>,
    pub(super) zones: HashMap<String, jiff::tz::TimeZone, FastHash>,
    pub(super) paused: u64,
    /// The latest facts of each campaign with messages held.
    pub(super) campaigns: HashMap<String, CampaignFacts, FastHash>,
    /// Held messages whose address is suppressed.
    pub(super) suppressed: HashSet<i64, FastHash>,
    /// Held follow-up messages no longer needed, with the reason.
    pub(super) withdrawn: HashMap<i64, String, FastHash>,
    /// What this run's follow-up releases did, summed.
    pub(super) follow_ups: crate::store::ReleaseStats,
    /// When the last release ran, and how many outcomes had been handed over then.
    pub(super) released_at: Option<(tokio::time::Instant, u64)>,
    /// The store's gate the facts of every held message are at least as new as.
    pub(super) gate_seen: Option<u64>,
    pub(super) gate_checked: Option<tokio::time::Instant>,
    /// Where the gate is read from (on the spot, or a watching thread's latest value).
    pub(super) gate: super::gate::Gate,
    pub(super) refresh: Option<RefreshReply>,
    /// Until when every lease this run holds is confirmed (real clock).
    pub(super) leases_until: Option<Timestamp>,
    /// This run's share of the fleet's rates (see [`fleet`]).
    pub(super) fleet: fleet::Fleet,
    /// Campaign throttles (`throttle:`), shared by the campaign's sends in this run.
    pub(super) throttles: HashMap<String, (f64, Arc<RateLimiter>), FastHash>,
    /// Per campaign: triggered to cut its sends under way (the circuit breaker tripped).
    pub(super) aborts: HashMap<String, Arc<Shutdown>, FastHash>,
    /// When the next queued message's turn under a rate limit comes.
    pub(super) pace_wake: Option<tokio::time::Instant>,
    /// Sends started since the last hand-over (see [`Run::note_started`]).
    pub(super) unmarked: Vec<i64>,
    /// Draws the jitter of retry backoffs.
    pub(super) rng: fastrand::Rng,
    /// The ramped channels that had spent their day's budget when the run was last idle.
    pub(super) ramp_closed: Vec<super::ramp::Closed>,
    /// The (channel, ramp day) pairs already announced as spent.
    pub(super) ramp_seen: Vec<(String, usize)>,
}

impl Run {
    pub(super) fn new(jitter_seed: Option<u64>, gate: super::gate::Gate) -> Run {
        Run {
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
            withdrawn: HashMap::default(),
            follow_ups: Default::default(),
            released_at: None,
            gate_seen: None,
            gate_checked: None,
            gate,
            refresh: None,
            leases_until: None,
            fleet: fleet::Fleet::default(),
            throttles: HashMap::default(),
            aborts: HashMap::default(),
            pace_wake: None,
            unmarked: Vec::new(),
            rng: jitter_seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            ramp_closed: Vec::new(),
            ramp_seen: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, c: Completion) {
        if self.outbox.is_empty() {
            self.outbox_since = Some(tokio::time::Instant::now());
        }
        self.outbox.push(c);
        self.handed += 1;
    }

    /// Notes a send as under way. At the next hand-over, the sends still under way are
    /// marked "started" for the group commit (not outcomes: not counted in `handed`); one
    /// that already ended needs no mark, which spares nearly every send on a fast endpoint.
    pub(super) fn note_started(&mut self, id: i64) {
        if self.outbox_since.is_none() {
            self.outbox_since = Some(tokio::time::Instant::now());
        }
        self.unmarked.push(id);
    }

    pub(super) fn hand_over(&mut self, worker: &Worker) -> Result<(), StoreError> {
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
    pub(super) fn dequeued(&mut self, seen: u64) {
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
    pub(super) fn own_send_done(&mut self, key: &(String, String), id: i64, sent: bool) {
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
    pub(super) fn zone(&mut self, name: &str) -> Option<jiff::tz::TimeZone> {
        if let Some(tz) = self.zones.get(name) {
            return Some(tz.clone());
        }
        let tz = crate::model::zone(name)?;
        self.zones.insert(name.to_owned(), tz.clone());
        Some(tz)
    }

    /// The campaign's throttle in this run, made on first use and kept while its rate stays
    /// the same (a re-plan may change it).
    pub(super) fn throttle_for(&mut self, campaign: &str) -> Option<Arc<RateLimiter>> {
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

    pub(super) fn abort_for(&mut self, campaign: &str) -> Arc<Shutdown> {
        if let Some(a) = self.aborts.get(campaign) {
            return a.clone();
        }
        self.aborts.entry(campaign.to_owned()).or_default().clone()
    }

    /// Messages held: queued, or being sent.
    pub(super) fn holding(&self) -> bool {
        self.queued > 0 || !self.sends.is_empty()
    }
}
