//! Pure dispatch helpers: a rate limiter shared by a channel's send tasks, and the retry
//! policy for transient errors. Both are `tokio::time` based, so tests drive them with paused
//! time.
//!
//! ```ignore
//! # async fn demo(channel: disparo::channel::Channel, env: disparo::message::Envelope) {
//! use disparo::channel::limits::{RateLimiter, RetryPolicy};
//! use disparo::units::Rate;
//! let limiter = RateLimiter::new(Rate::per_second(80.0)); // share it with Arc
//! let policy = RetryPolicy::new(5);
//! limiter.acquire().await;
//! if let Err(e) = channel.send(&env).await {
//!     match policy.next_delay(env.attempt, &e) {
//!         Some(wait) => { /* reschedule the message `wait` from now */ }
//!         None => { /* failed: permanent, or out of attempts */ }
//!     }
//! }
//! # }
//! ```

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{ErrorClass, SendError};
use crate::units::Rate;

/// Never more than `n` sends in any window of `period`, spread evenly.
///
/// Two mechanisms, for two reasons:
/// - Slots are spaced evenly (one every `period / n`, a burst of one) rather than handed out in
///   bursts of `n`: the limit that matters is the one the provider measures on arrival, and a
///   burst leaves over connections of varying latency, so the tail of one burst and the head
///   of the next can land inside one second at the provider.
/// - Timers wake late under load (tokio's resolution is 1 ms, and a busy machine adds more), so
///   evenly planned slots can still *start* closer together than planned. The hard guarantee
///   is therefore checked on the actual start instants: a caller that wakes and finds `n`
///   starts within the last `period` (plus the headroom) waits for the oldest to leave it.
///
/// The spacing is [`HEADROOM`] longer than `period / n` (500/s goes out at about 492/s, within
/// 2 % of the limit), which leaves ~15 ms in every window for the varying latency between our
/// start and the provider's arrival.
///
/// `n = floor(rate)` per second for rates of at least 1/s (a fractional part is dropped, so
/// 2.5/s allows 2 in any second); one per `1/rate` seconds below that (`30/m` = one every 2 s).
/// A caller that is cancelled while waiting still uses its slot (the limiter errs on the slow
/// side).
#[derive(Debug)]
pub struct RateLimiter {
    /// The whole rate, as configured; a fleet of workers each takes a share of it.
    full: Rate,
    state: Mutex<LimiterState>,
}

/// The window in force: the whole rate, or this worker's share of it.
#[derive(Debug, Clone, Copy)]
struct Shape {
    n: usize,
    period: Duration,
    interval: Duration,
    /// `period` plus the headroom: the hard check's window.
    guarded: Duration,
}

impl Shape {
    fn of(rate: f64) -> Shape {
        let (n, period) = if rate >= 1.0 {
            (rate.floor().min(1e9) as usize, Duration::from_secs(1))
        } else {
            (1, Duration::from_secs_f64(1.0 / rate.max(1e-6)))
        };
        Shape::window(n, period)
    }

    fn window(n: usize, period: Duration) -> Shape {
        let n = n.max(1);
        Shape {
            n,
            period,
            interval: period.div_f64(n as f64).mul_f64(1.0 + HEADROOM),
            guarded: period.mul_f64(1.0 + HEADROOM),
        }
    }
}

#[derive(Debug)]
struct LimiterState {
    shape: Shape,
    /// The most recent slot planned.
    last_slot: Option<Instant>,
    /// The actual start instants of the last `n` sends, oldest first.
    starts: VecDeque<Instant>,
    /// Nothing starts before this instant (a worker joining a fleet waits until the others
    /// have made room for it).
    hold: Option<Instant>,
}

/// How much of a pause the limiter makes up. When the sender pauses (the dispatcher commits a
/// batch and claims the next), slots that fell in the pause, up to this much, are handed out
/// at once instead of being lost, so the mean rate stays near the limit; the hard window check
/// on actual starts still bounds every window.
pub const CATCH_UP: Duration = Duration::from_millis(50);

/// How much longer than `period / n` the spacing between slots is.
pub const HEADROOM: f64 = 0.015;

impl RateLimiter {
    pub fn new(rate: Rate) -> RateLimiter {
        RateLimiter::shaped(rate, Shape::of(rate.as_per_second()))
    }

    /// At most `n` in any window of `period`, spaced evenly.
    pub fn with_window(n: usize, period: Duration) -> RateLimiter {
        let rate = Rate::per_second(n.max(1) as f64 / period.as_secs_f64().max(1e-9));
        RateLimiter::shaped(rate, Shape::window(n, period))
    }

    fn shaped(full: Rate, shape: Shape) -> RateLimiter {
        RateLimiter {
            full,
            state: Mutex::new(LimiterState {
                shape,
                last_slot: None,
                starts: VecDeque::with_capacity(shape.n.min(65_536)),
                hold: None,
            }),
        }
    }

    /// The number of sends allowed per window, and the window.
    pub fn window(&self) -> (usize, Duration) {
        let shape = self.state().shape;
        (shape.n, shape.period)
    }

    /// Limits this limiter to a `1/workers` share of the whole rate, for a worker of a fleet
    /// that sends on the same channel. Each share keeps its own window on actual starts, so
    /// the shares together never exceed the whole rate in any window once every worker has
    /// taken its share; starts already made still count against the new window.
    pub fn share(&self, workers: u32) {
        let shape = Shape::of(self.full.as_per_second() / f64::from(workers.max(1)));
        let mut st = self.state();
        st.shape = shape;
        while st.starts.len() > shape.n {
            st.starts.pop_front();
        }
    }

    /// Starts nothing before `until` (`None`: no hold).
    pub fn hold_until(&self, until: Option<Instant>) {
        self.state().hold = until;
    }

    /// How long after every other worker took its share this one waits before its first
    /// start: one whole window, so that the other workers' starts from before they shrank
    /// have left every window this worker sends in.
    pub fn settle(&self) -> Duration {
        self.state().shape.guarded
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until one more message may go out, and counts it as started.
    pub async fn acquire(&self) {
        tokio::time::sleep_until(self.reserve()).await;
        loop {
            let wait_until = {
                let mut st = self.state();
                let now = Instant::now();
                let full = st.starts.len() >= st.shape.n;
                match st.starts.front() {
                    Some(&oldest) if full && now < oldest + st.shape.guarded => {
                        oldest + st.shape.guarded
                    }
                    _ => {
                        if full {
                            st.starts.pop_front();
                        }
                        st.starts.push_back(now);
                        return;
                    }
                }
            };
            tokio::time::sleep_until(wait_until).await;
        }
    }

    /// When one more message could go out, without waiting or taking the slot: `None` if
    /// now. With [`take`](Self::take), for a caller that judges a message at the moment it
    /// leaves (the dispatcher applies quiet hours and expiry after the wait, not before).
    pub fn ready_at(&self, now: Instant) -> Option<Instant> {
        let st = self.state();
        let slot = st.last_slot.map(|prev| prev + st.shape.interval);
        let window = match st.starts.front() {
            Some(&oldest) if st.starts.len() >= st.shape.n => Some(oldest + st.shape.guarded),
            _ => None,
        };
        slot.into_iter()
            .chain(window)
            .chain(st.hold)
            .max()
            .filter(|&at| at > now)
    }

    /// Counts a start now: call it only when [`ready_at`](Self::ready_at) said `None`.
    pub fn take(&self, now: Instant) {
        let mut st = self.state();
        let slot = match st.last_slot {
            Some(prev) => (prev + st.shape.interval).max(now.checked_sub(CATCH_UP).unwrap_or(now)),
            None => now,
        };
        st.last_slot = Some(slot.min(now));
        if st.starts.len() >= st.shape.n {
            st.starts.pop_front();
        }
        st.starts.push_back(now);
    }

    /// Plans the next evenly spaced slot without waiting and returns when it starts. (The
    /// hard window check happens in [`acquire`](Self::acquire).)
    pub fn reserve(&self) -> Instant {
        let now = Instant::now();
        let mut st = self.state();
        let slot = match st.last_slot {
            Some(prev) => (prev + st.shape.interval).max(now.checked_sub(CATCH_UP).unwrap_or(now)),
            None => now,
        };
        let slot = st.hold.map_or(slot, |h| slot.max(h));
        st.last_slot = Some(slot);
        slot
    }
}

/// When to try a transient failure again: exponential backoff with full jitter
/// (`delay = random(0 ..= min(cap, base * 2^(attempt-1)))`, AWS's "full jitter"), raised to
/// the provider's `Retry-After` when that is longer, and nothing after `max_attempts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff ceiling (default 1 s).
    pub base: Duration,
    /// The largest backoff ceiling (default 5 min). A provider's `Retry-After` may exceed it.
    pub cap: Duration,
    /// Attempts in all, the first included (default 5).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::new(5)
    }
}

impl RetryPolicy {
    pub fn new(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            max_attempts: max_attempts.max(1),
        }
    }

    /// After attempt number `attempt` (1 for the first) failed with `error`: how long to wait
    /// before the next one, or `None` when the message has failed for good (the error is not
    /// transient, or that was the last attempt).
    pub fn next_delay(&self, attempt: u32, error: &SendError) -> Option<Duration> {
        self.next_delay_with(&mut fastrand::Rng::new(), attempt, error)
    }

    /// [`next_delay`](Self::next_delay) with a given random source (seed it in tests).
    pub fn next_delay_with(
        &self,
        rng: &mut fastrand::Rng,
        attempt: u32,
        error: &SendError,
    ) -> Option<Duration> {
        match error.class {
            ErrorClass::Transient { retry_after } => self.backoff_with(rng, attempt, retry_after),
            _ => None,
        }
    }

    /// The delay after a transient failure of attempt `attempt`, given the provider's
    /// `retry_after`; `None` once `attempt >= max_attempts`.
    pub fn backoff_with(
        &self,
        rng: &mut fastrand::Rng,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let ceiling = self.ceiling(attempt);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jittered = Duration::from_nanos(rng.u64(0..=nanos));
        Some(match retry_after {
            Some(provider) if provider > jittered => provider.min(super::MAX_RETRY_AFTER),
            _ => jittered,
        })
    }

    /// `min(cap, base * 2^(attempt-1))`: the most the jittered backoff can be.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        self.base
            .checked_mul(1u32 << exp.min(31))
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = RetryPolicy::new(10);
        assert_eq!(p.ceiling(1), Duration::from_secs(1));
        assert_eq!(p.ceiling(2), Duration::from_secs(2));
        assert_eq!(p.ceiling(4), Duration::from_secs(8));
        assert_eq!(p.ceiling(40), Duration::from_secs(300));
    }

    /// `ready_at`/`take` keep the same promise as `acquire`: never more than `n` starts in
    /// any window of `period` (plus the headroom), spaced evenly, on paused time.
    #[tokio::test(start_paused = true)]
    async fn ready_at_and_take_space_starts_and_hold_the_window() {
        let limiter = RateLimiter::new(Rate::per_second(4.0));
        let t0 = Instant::now();
        let mut starts = Vec::new();
        while starts.len() < 12 {
            let now = Instant::now();
            match limiter.ready_at(now) {
                None => {
                    limiter.take(now);
                    starts.push(now - t0);
                }
                Some(at) => {
                    assert!(at > now);
                    tokio::time::advance(at - now).await;
                }
            }
        }
        for w in starts.windows(5) {
            assert!(
                w[4] - w[0] >= Duration::from_secs(1),
                "5 starts within a second: {starts:?}"
            );
        }
        for w in starts.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_millis(250), "{starts:?}");
        }
    }

    /// Starts of one limiter on paused time, driven by `ready_at`/`take`, until `until`.
    async fn starts_until(limiter: &RateLimiter, t0: Instant, until: Duration) -> Vec<Duration> {
        let mut starts = Vec::new();
        loop {
            let now = Instant::now();
            if now - t0 >= until {
                return starts;
            }
            match limiter.ready_at(now) {
                None => {
                    limiter.take(now);
                    starts.push(now - t0);
                }
                Some(at) => tokio::time::advance((at - now).min(t0 + until - now)).await,
            }
        }
    }

    /// The most starts in any window of one second.
    fn busiest_second(starts: &[Duration]) -> usize {
        starts
            .iter()
            .map(|&a| {
                starts
                    .iter()
                    .filter(|&&b| b >= a && b < a + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// A fleet of four: each takes a quarter, a worker that joins holds until the others
    /// shrank plus one settling window; in every second the four together stay within the
    /// whole rate, before and after the joiner starts.
    #[tokio::test(start_paused = true)]
    async fn shares_of_a_fleet_stay_within_the_whole_rate_in_every_window() {
        let rate = Rate::per_second(80.0);
        let old: Vec<RateLimiter> = (0..3).map(|_| RateLimiter::new(rate)).collect();
        let joiner = RateLimiter::new(rate);
        for l in &old {
            l.share(3);
        }
        assert_eq!(old[0].window(), (26, Duration::from_secs(1)));
        let t0 = Instant::now();
        // The joiner announces itself at 2 s; the others shrink to a quarter at their next
        // heartbeats (2.3 s, 2.6 s, 2.9 s); it starts one settling window after the last.
        joiner.share(4);
        joiner.hold_until(Some(t0 + Duration::from_millis(2900) + joiner.settle()));
        let mut all = Vec::new();
        let mut step = Duration::ZERO;
        let mut shrunk = [false; 3];
        while step < Duration::from_secs(6) {
            step += Duration::from_millis(5);
            for (i, l) in old.iter().enumerate() {
                if !shrunk[i] && step >= Duration::from_millis(2300 + 300 * i as u64) {
                    l.share(4);
                    shrunk[i] = true;
                }
            }
            let now = Instant::now();
            for l in old.iter().chain([&joiner]) {
                while l.ready_at(Instant::now()).is_none() {
                    l.take(Instant::now());
                    all.push(Instant::now() - t0);
                }
            }
            tokio::time::advance(t0 + step - now).await;
        }
        all.sort();
        assert!(
            busiest_second(&all) <= 80,
            "{} in one second",
            busiest_second(&all)
        );
        let joined: Vec<_> = all
            .iter()
            .filter(|&&t| t >= Duration::from_secs(5))
            .collect();
        assert!(
            joined.len() >= 75,
            "the fleet keeps near the whole rate: {}",
            joined.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_shrinks_the_window_at_once_and_counts_earlier_starts() {
        let limiter = RateLimiter::new(Rate::per_second(10.0));
        let t0 = Instant::now();
        let before = starts_until(&limiter, t0, Duration::from_secs(2)).await;
        assert!(busiest_second(&before) <= 10);
        limiter.share(2);
        assert_eq!(limiter.window(), (5, Duration::from_secs(1)));
        let after = starts_until(&limiter, t0, Duration::from_secs(5)).await;
        let later: Vec<Duration> = after
            .into_iter()
            .filter(|&t| t >= Duration::from_secs(2))
            .collect();
        assert!(busiest_second(&later) <= 5, "{later:?}");
    }

    #[test]
    fn fractional_rates_round_down_to_a_window() {
        assert_eq!(
            RateLimiter::new(Rate::per_second(2.5)).window(),
            (2, Duration::from_secs(1))
        );
        assert_eq!(
            RateLimiter::new(Rate::per_second(0.5)).window(),
            (1, Duration::from_secs(2))
        );
    }
}
