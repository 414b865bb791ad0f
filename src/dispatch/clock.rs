//! The run's notion of "now": the real clock, or `--now`/`DISPARO_NOW` advancing in real time
//! from the moment the run started, so previews, what-ifs and tests can pin the date while
//! retries and `--watch` still see time pass; or, for tests on paused tokio time, a start
//! advancing with tokio's clock.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Clone)]
pub struct Clock {
    base: Base,
}

#[derive(Debug, Clone, Copy)]
enum Base {
    /// The system's wall clock.
    Real,
    /// A start, advancing with the process's monotonic clock.
    Since(Timestamp, Instant),
    /// A start, advancing with the tokio runtime's clock.
    Tokio(Timestamp, tokio::time::Instant),
}

impl Clock {
    pub fn real() -> Clock {
        Clock { base: Base::Real }
    }
    /// A clock that reads `at` now and advances from there in real time.
    pub fn starting_at(at: Timestamp) -> Clock {
        Clock {
            base: Base::Since(at, Instant::now()),
        }
    }
    /// A clock that reads `at` now and advances with tokio's clock, so that paused time
    /// (a runtime built with `start_paused(true)`, `tokio::time::advance`) drives a run's
    /// schedule and leases: its timing is tested at exact instants without real sleeps.
    /// Without paused time it advances in real time, like [`starting_at`](Self::starting_at).
    /// Read it on the runtime's thread, or on a thread that entered the runtime (the
    /// dispatcher's store thread does when its clocks follow tokio's).
    pub fn tokio(at: Timestamp) -> Clock {
        Clock {
            base: Base::Tokio(at, tokio::time::Instant::now()),
        }
    }
    /// Whether paused tokio time drives this clock.
    pub(crate) fn follows_tokio(&self) -> bool {
        matches!(self.base, Base::Tokio(..))
    }
    pub fn now(&self) -> Timestamp {
        let (at, elapsed) = match self.base {
            Base::Real => return Timestamp::now(),
            Base::Since(at, started) => (at, started.elapsed()),
            Base::Tokio(at, started) => (at, started.elapsed()),
        };
        let elapsed = SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::ZERO);
        at.checked_add(elapsed).unwrap_or(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const AT: &str = "2026-11-30T12:00:00Z";

    /// Paused time drives `Clock::tokio` to the nanosecond and leaves the clocks of a real
    /// run alone: `--now` (`starting_at`) keeps advancing in real time while tokio's clock
    /// stands still, and never jumps with it.
    #[tokio::test(start_paused = true)]
    async fn only_the_tokio_clock_follows_paused_time() {
        let at: Timestamp = AT.parse().unwrap();
        let paused = Clock::tokio(at);
        let since = Clock::starting_at(at);
        assert!(paused.follows_tokio() && !since.follows_tokio());
        assert!(!Clock::real().follows_tokio());
        assert_eq!(paused.now(), at);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(paused.now(), at, "paused time stands still");
        let real_elapsed = since.now().duration_since(at);
        assert!(
            real_elapsed >= SignedDuration::from_millis(5),
            "{real_elapsed}"
        );
        tokio::time::advance(Duration::from_secs(3600) + Duration::from_nanos(7)).await;
        assert_eq!(
            paused.now(),
            at + SignedDuration::from_secs(3600) + SignedDuration::from_nanos(7)
        );
        assert!(since.now().duration_since(at) < SignedDuration::from_secs(60));
        let wall = Clock::real().now().duration_since(Timestamp::now()).abs();
        assert!(wall < SignedDuration::from_secs(60));
    }
}
