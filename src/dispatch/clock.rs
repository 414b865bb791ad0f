//! The run's notion of "now": the real clock, or `--now`/`DISPARO_NOW` advancing in real time
//! from the moment the run started, so previews, what-ifs and tests can pin the date while
//! retries and `--watch` still see time pass.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Clone)]
pub struct Clock {
    base: Option<(Timestamp, Instant)>,
}

impl Clock {
    pub fn real() -> Clock {
        Clock { base: None }
    }
    /// A clock that reads `at` now and advances from there.
    pub fn starting_at(at: Timestamp) -> Clock {
        Clock {
            base: Some((at, Instant::now())),
        }
    }
    pub fn now(&self) -> Timestamp {
        match self.base {
            None => Timestamp::now(),
            Some((at, started)) => {
                let elapsed =
                    SignedDuration::try_from(started.elapsed()).unwrap_or(SignedDuration::ZERO);
                at.checked_add(elapsed).unwrap_or(at)
            }
        }
    }
}
