//! Rates shared by a fleet of workers: every `run` that shares a database announces the
//! channels it sends on (a heartbeat row in the store, renewed with its leases) and takes a
//! `1/n` share of each channel's rate and of each campaign's throttle, `n` the live workers on
//! that channel. Four workers on one 80/s WhatsApp number send 20/s each.
//!
//! Why shares and not a token bucket row: a bucket would cost a database round trip per send
//! (or per handful), on the path the provider's rate makes hot, and its windows would be on the
//! database's clock while the provider counts arrivals; a share costs one write per heartbeat,
//! and each worker's own limiter keeps its window on actual starts.
//!
//! The sum stays within the rate in every window because a worker starts sending only once
//! every other live worker has announced itself after it did (so each of them counts it and
//! shrank its share at that announcement), plus one whole window so that their starts from
//! before they shrank have left every window it sends in. A worker that leaves retires at
//! once; one that dies stops counting when its announcement expires, one lease after its last
//! heartbeat, by which time it has stopped sending (a send starts only on a confirmed lease).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::time::Instant;

use super::ChannelRuntime;
use super::facts::CampaignFacts;
use crate::channel::limits::RateLimiter;
use crate::store::FleetView;

/// This worker's view of the fleet: the live workers per channel it announced.
#[derive(Debug, Default)]
pub(super) struct Fleet {
    workers: HashMap<String, u32>,
    /// Channels held until the other workers have counted this one.
    held: HashSet<String>,
}

impl Fleet {
    /// Whether every channel of the view is shared with workers that all count this one.
    pub(super) fn settled(view: &FleetView) -> bool {
        view.channels.values().all(|c| c.seen_by_all)
    }

    /// Live workers on `channel` (1 until the store has said otherwise).
    pub(super) fn workers_on(&self, channel: &str) -> u32 {
        self.workers.get(channel).copied().unwrap_or(1).max(1)
    }

    /// Takes the shares `view` gives: each channel's limiter and the throttles of campaigns
    /// on it. A channel whose other workers do not all count this one yet (its announcement
    /// expired and was made again) starts nothing until they do, plus a settling window.
    pub(super) fn apply<S: std::hash::BuildHasher>(
        &mut self,
        view: &FleetView,
        channels: &HashMap<String, Arc<ChannelRuntime>>,
        throttles: &HashMap<String, (f64, Arc<RateLimiter>), S>,
        campaigns: &HashMap<String, CampaignFacts, S>,
        now: Instant,
        hold_for: std::time::Duration,
    ) {
        let mut released = HashSet::new();
        for (name, c) in &view.channels {
            self.workers.insert(name.clone(), c.live_workers);
            if !c.seen_by_all {
                if self.held.insert(name.clone()) {
                    tracing::info!(channel = %name, workers = c.live_workers, "waiting for the other workers to count this one before sending on the channel");
                }
            } else if self.held.remove(name) {
                released.insert(name.as_str());
            }
            if let Some(limiter) = channels.get(name).and_then(|ch| ch.limiter.as_ref()) {
                self.take_share(limiter, name, &released, now, hold_for);
            }
        }
        for (campaign, (_, limiter)) in throttles {
            if let Some(Some(rt)) = campaigns.get(campaign) {
                self.take_share(limiter, &rt.info.channel, &released, now, hold_for);
            }
        }
    }

    /// `limiter` (of `channel`, or of a campaign on it) at this worker's share, held while
    /// the channel is, and for one settling window after.
    pub(super) fn take_share(
        &self,
        limiter: &RateLimiter,
        channel: &str,
        released: &HashSet<&str>,
        now: Instant,
        hold_for: std::time::Duration,
    ) {
        limiter.share(self.workers_on(channel));
        if self.held.contains(channel) {
            // Until a heartbeat says every other worker counts this one (the next one
            // renews the hold).
            limiter.hold_until(Some(now + hold_for));
        } else if released.contains(channel) {
            limiter.hold_until(Some(now + limiter.settle()));
        }
    }
}
