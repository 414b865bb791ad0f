//! A channel's warm-up ramp (`ramp:` in `disparo.yaml`): how many messages it may send on each
//! of its first days, as new WhatsApp numbers (messaging tiers) and new email domains need.
//!
//! Pure arithmetic, no I/O: which ramp day an instant is in, what is left of its budget, when
//! the next day opens (used by the stores' claims and by `run`'s report), and how many days a
//! campaign's messages take (`preview`'s forecast, in [`forecast`]). Ramp day 0 starts at the
//! channel's first successful send; day k is `[first + k·24 h, first + (k+1)·24 h)`; after the
//! last entry the ramp is over and nothing limits the channel. Before any send, day 0 is the
//! day of the first send still to come. Shown to people counting from 1 ("day 1").
//!
//! `config.rs` reads the YAML list and says what is wrong with an entry.

mod config;
pub mod forecast;

use jiff::{SignedDuration, Timestamp};

pub use config::{RampConfig, RampError};

/// The length of one ramp day: 24 hours of elapsed time (not a calendar day: a daylight-saving
/// change does not make one 23 or 25 hours long).
pub const DAY: SignedDuration = SignedDuration::from_hours(24);

/// The most entries a ramp may have: more is surely a mistake (and keeps every instant a
/// ramp computes far inside the representable range).
pub const MAX_DAYS: usize = 1000;

/// A checked ramp: at least one entry, each at least 1 message per day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ramp {
    per_day: Vec<u64>,
}

impl Ramp {
    /// The ramp of these daily budgets; `None` when the list is empty, longer than
    /// [`MAX_DAYS`], or has a 0.
    pub fn new(per_day: Vec<u64>) -> Option<Ramp> {
        (!per_day.is_empty() && per_day.len() <= MAX_DAYS && per_day.iter().all(|&n| n > 0))
            .then_some(Ramp { per_day })
    }

    pub fn per_day(&self) -> &[u64] {
        &self.per_day
    }

    /// The budget of ramp day `day` (0-based); `None` once the ramp is over.
    pub fn budget(&self, day: usize) -> Option<u64> {
        self.per_day.get(day).copied()
    }

    /// The ramp day `now` is in, for a channel whose first send was at `first` (`None`: no
    /// send yet, so `now` is in day 0, which starts with the first send). An instant before
    /// the first send (clocks that disagree) is in day 0 too.
    pub fn day_at(&self, first: Option<Timestamp>, now: Timestamp) -> RampDay {
        let Some(first) = first else {
            return RampDay {
                index: 0,
                starts: None,
            };
        };
        let elapsed = now.duration_since(first).as_millis().max(0);
        let index = elapsed / DAY.as_millis();
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        // Past the ramp's end the window no longer matters: keep the instant in range.
        let shown = index.min(self.per_day.len());
        RampDay {
            index,
            starts: Some(day_start(first, shown)),
        }
    }

    /// How many more messages day `day` allows when `used` are already sent or being sent
    /// in it; `None` when the ramp is over (no limit).
    pub fn left(&self, day: usize, used: u64) -> Option<u64> {
        self.budget(day).map(|b| b.saturating_sub(used))
    }

    /// The entries as the issue writes them: `1000, 5000, 20000/day`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self.per_day.iter().map(u64::to_string).collect();
        format!("{}/day", parts.join(", "))
    }
}

/// The instant ramp day `day` starts, for a channel whose first send was at `first`.
/// Saturates at the end of time (a ramp has at most [`MAX_DAYS`] days, far from it).
pub fn day_start(first: Timestamp, day: usize) -> Timestamp {
    let ms = i64::try_from(day)
        .ok()
        .and_then(|d| d.checked_mul(DAY.as_millis() as i64));
    ms.and_then(|ms| first.checked_add(SignedDuration::from_millis(ms)).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Which ramp day an instant is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RampDay {
    /// 0-based; at or past the ramp's length once it is over.
    pub index: usize,
    /// When the day started; `None` before the channel's first send (day 0 starts with it).
    /// Past the ramp's end, the start of the first day after it.
    pub starts: Option<Timestamp>,
}

impl RampDay {
    /// When the next ramp day opens, if known.
    pub fn ends(&self) -> Option<Timestamp> {
        self.starts
            .map(|s| s.checked_add(DAY).unwrap_or(Timestamp::MAX))
    }
}

/// One channel's ramp, as a claim needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRamp {
    pub channel: String,
    pub ramp: Ramp,
}

/// What the store counted for one ramped channel (see `Store::ramp_usage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RampUsage {
    pub channel: String,
    /// The channel's first successful send, if any.
    pub first_send: Option<Timestamp>,
    /// Successful sends in the ramp day of the instant asked about.
    pub sent: u64,
    /// Messages of the channel in state `sending` under a live lease (any run's): they will
    /// count once sent, so the budget already reckons with them.
    pub held: u64,
    /// The earliest due instant of a pending message of an active campaign on the channel.
    pub next_due: Option<Timestamp>,
}

impl RampUsage {
    /// The ramp day of `now`.
    pub fn day(&self, ramp: &Ramp, now: Timestamp) -> RampDay {
        ramp.day_at(self.first_send, now)
    }

    /// What is left of the day's budget: its entry less the sent and held; `None` once the
    /// ramp is over.
    pub fn left(&self, ramp: &Ramp, now: Timestamp) -> Option<u64> {
        ramp.left(self.day(ramp, now).index, self.sent + self.held)
    }

    /// The channel's budget for `now` is used up.
    pub fn closed(&self, ramp: &Ramp, now: Timestamp) -> bool {
        self.left(ramp, now) == Some(0)
    }
}

/// `26000` → `26,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ramp(days: &[u64]) -> Ramp {
        Ramp::new(days.to_vec()).unwrap()
    }

    #[test]
    fn only_non_empty_lists_of_positive_budgets_are_ramps() {
        assert!(Ramp::new(vec![]).is_none());
        assert!(Ramp::new(vec![3, 0]).is_none());
        assert!(Ramp::new(vec![1; MAX_DAYS + 1]).is_none());
        assert_eq!(ramp(&[3, 5]).per_day(), [3, 5]);
    }

    #[test]
    fn the_day_counts_whole_24_hours_from_the_first_send() {
        let r = ramp(&[3, 5]);
        let first = t("2026-11-30T12:00:00Z");
        let day = |now: &str| r.day_at(Some(first), t(now));
        assert_eq!(day("2026-11-30T12:00:00Z").index, 0);
        assert_eq!(day("2026-12-01T11:59:59.999Z").index, 0);
        assert_eq!(
            day("2026-12-01T12:00:00Z").index,
            1,
            "a day is [start, end)"
        );
        assert_eq!(
            day("2026-12-01T12:00:00Z").starts,
            Some(t("2026-12-01T12:00:00Z"))
        );
        assert_eq!(
            day("2026-12-01T12:00:00Z").ends(),
            Some(t("2026-12-02T12:00:00Z"))
        );
        assert_eq!(day("2026-12-02T13:00:00Z").index, 2);
        assert_eq!(r.budget(2), None, "after the last entry the ramp is over");
        // Far past the end: the window stays at the first day after the ramp.
        let late = day("2030-01-01T00:00:00Z");
        assert!(late.index > 1000);
        assert_eq!(late.starts, Some(t("2026-12-02T12:00:00Z")));
        // An instant before the first send (another machine's clock) is in day 0.
        assert_eq!(day("2026-11-30T11:00:00Z").index, 0);
        assert_eq!(day("2026-11-30T11:00:00Z").starts, Some(first));
    }

    #[test]
    fn daylight_saving_does_not_stretch_a_day() {
        let r = ramp(&[1, 1]);
        let first = t("2026-03-07T15:00:00Z");
        assert_eq!(
            r.day_at(Some(first), t("2026-03-08T15:00:00Z")).index,
            1,
            "a ramp day is 24 h of elapsed time, across America/New_York's spring-forward"
        );
    }

    #[test]
    fn before_any_send_it_is_day_0_and_its_end_is_unknown() {
        let r = ramp(&[3, 5]);
        let d = r.day_at(None, t("2026-11-30T12:00:00Z"));
        assert_eq!((d.index, d.starts, d.ends()), (0, None, None));
    }

    #[test]
    fn what_is_left_counts_sent_and_held_and_never_goes_below_zero() {
        let r = ramp(&[3, 5]);
        assert_eq!(r.left(0, 0), Some(3));
        assert_eq!(r.left(0, 2), Some(1));
        assert_eq!(r.left(0, 7), Some(0));
        assert_eq!(r.left(1, 0), Some(5));
        assert_eq!(r.left(2, 1_000_000), None);
        let first = t("2026-11-30T12:00:00Z");
        let usage = RampUsage {
            channel: "wa".into(),
            first_send: Some(first),
            sent: 2,
            held: 1,
            next_due: Some(first),
        };
        assert!(usage.closed(&r, t("2026-11-30T18:00:00Z")));
        assert_eq!(usage.left(&r, t("2026-12-01T12:00:00Z")), Some(2));
        assert_eq!(usage.left(&r, t("2026-12-02T12:00:00Z")), None);
    }

    #[test]
    fn day_starts_saturate_instead_of_panicking() {
        assert_eq!(day_start(Timestamp::MAX, 3), Timestamp::MAX);
        assert_eq!(day_start(Timestamp::UNIX_EPOCH, usize::MAX), Timestamp::MAX);
        let r = ramp(&[1]);
        assert!(r.day_at(Some(Timestamp::MIN), Timestamp::MAX).index > 1);
    }

    #[test]
    fn budgets_are_described_with_thousands_separators() {
        assert_eq!(
            ramp(&[1000, 5000, 20000]).describe(),
            "1000, 5000, 20000/day"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
