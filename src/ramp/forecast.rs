//! How many ramp days a campaign's messages take: each day's budget, less what the channel
//! already sent (or is sending) in the current day, spent on the messages due by the day's
//! end, the rest carried to the next day, until the ramp is over.

use jiff::Timestamp;

use super::{Ramp, day_start};

/// Where the channel stands when the forecast is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub now: Timestamp,
    /// The channel's first successful send, when a database knows one. Without one, ramp day
    /// 0 starts with the campaign's first message (or now, if that is past).
    pub first_send: Option<Timestamp>,
    /// Messages already sent or being sent in the ramp day of `now`.
    pub used: u64,
}

/// The campaign's messages that go in one ramp day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayShare {
    /// 0-based.
    pub day: usize,
    pub starts: Timestamp,
    pub budget: u64,
    /// Already used before this campaign (the current day only).
    pub used: u64,
    pub messages: u64,
}

/// The campaign's messages spread over ramp days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RampForecast {
    /// The ramp day of `now` (0-based; at or past the ramp's length when it is over).
    pub today: usize,
    /// Ramp days that carry messages, in order.
    pub days: Vec<DayShare>,
    /// Messages left once the ramp is over: they go without a daily limit, when due.
    pub after: u64,
    /// When the ramp is over.
    pub over_at: Timestamp,
}

impl RampForecast {
    /// Days from the first that carries messages to the last, counting the first day after
    /// the ramp when messages are left for it; 0 without messages.
    pub fn days_needed(&self, ramp: &Ramp) -> usize {
        let after_day = ramp.per_day().len();
        let first = self.days.first().map_or(after_day, |d| d.day);
        let last = if self.after > 0 {
            after_day
        } else {
            match self.days.last() {
                Some(d) => d.day,
                None => return 0,
            }
        };
        last.saturating_sub(first) + 1
    }

    pub fn messages(&self) -> u64 {
        self.days.iter().map(|d| d.messages).sum::<u64>() + self.after
    }
}

/// Spreads `arrivals` (when messages fall due, with how many, oldest first) over the ramp days
/// from `start`.
pub fn forecast(ramp: &Ramp, start: &Start, arrivals: &[(Timestamp, u64)]) -> RampForecast {
    let origin = start
        .first_send
        .unwrap_or_else(|| arrivals.first().map_or(start.now, |a| a.0.max(start.now)));
    let today = ramp.day_at(Some(origin), start.now).index;
    let mut next = 0;
    let mut backlog: u64 = 0;
    let mut days = Vec::new();
    for (day, &budget) in ramp.per_day().iter().enumerate().skip(today) {
        let end = day_start(origin, day + 1);
        while let Some(&(at, n)) = arrivals.get(next)
            && at < end
        {
            backlog = backlog.saturating_add(n);
            next += 1;
        }
        let used = if day == today { start.used } else { 0 };
        let messages = backlog.min(budget.saturating_sub(used));
        backlog -= messages;
        if messages > 0 {
            days.push(DayShare {
                day,
                starts: day_start(origin, day),
                budget,
                used,
                messages,
            });
        }
        if backlog == 0 && next == arrivals.len() {
            break;
        }
    }
    let rest: u64 = arrivals[next..].iter().map(|a| a.1).sum();
    RampForecast {
        today,
        days,
        after: backlog.saturating_add(rest),
        over_at: day_start(origin, ramp.per_day().len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ramp::DAY;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ramp(days: &[u64]) -> Ramp {
        Ramp::new(days.to_vec()).unwrap()
    }

    fn shares(f: &RampForecast) -> Vec<(usize, u64)> {
        f.days.iter().map(|d| (d.day, d.messages)).collect()
    }

    const NOW: &str = "2026-11-26T12:00:00Z";

    fn fresh() -> Start {
        Start {
            now: t(NOW),
            first_send: None,
            used: 0,
        }
    }

    #[test]
    fn messages_all_due_at_once_fill_each_day_in_turn() {
        let r = ramp(&[1000, 5000, 20000]);
        let f = forecast(&r, &fresh(), &[(t(NOW), 26_000)]);
        assert_eq!(shares(&f), [(0, 1000), (1, 5000), (2, 20000)]);
        assert_eq!((f.after, f.days_needed(&r), f.messages()), (0, 3, 26_000));
        assert_eq!(f.days[1].starts, t(NOW) + DAY);
        assert_eq!(f.over_at, t(NOW) + DAY * 3);
        // More than the ramp holds: the rest goes on the first day after it, unlimited.
        let f = forecast(&r, &fresh(), &[(t(NOW), 30_000)]);
        assert_eq!((f.after, f.days_needed(&r)), (4_000, 4));
        // Fewer than the first day's budget: one day.
        let f = forecast(&r, &fresh(), &[(t(NOW), 800)]);
        assert_eq!((shares(&f), f.days_needed(&r)), (vec![(0, 800)], 1));
    }

    #[test]
    fn without_a_first_send_day_0_starts_with_the_first_message() {
        let r = ramp(&[10, 10]);
        let first = t("2026-11-27T10:00:00Z");
        let f = forecast(&r, &fresh(), &[(first, 5), (first + DAY, 12)]);
        assert_eq!(f.days[0].starts, first);
        // Day 1 starts exactly when the second wave is due: it takes 10, 2 after the ramp.
        assert_eq!(shares(&f), [(0, 5), (1, 10)]);
        assert_eq!((f.after, f.days_needed(&r)), (2, 3));
    }

    #[test]
    fn what_the_channel_already_used_today_comes_off_the_current_day() {
        let r = ramp(&[3, 5]);
        let first = t("2026-11-26T08:00:00Z");
        let start = Start {
            now: t(NOW),
            first_send: Some(first),
            used: 2,
        };
        let f = forecast(&r, &start, &[(t(NOW), 20)]);
        assert_eq!(f.today, 0);
        assert_eq!(shares(&f), [(0, 1), (1, 5)]);
        assert_eq!(f.days[0].used, 2);
        assert_eq!(f.days[1].starts, first + DAY);
        assert_eq!(f.after, 14);
        // A day later the first day is gone.
        let later = Start {
            now: first + DAY,
            used: 0,
            ..start
        };
        let f = forecast(&r, &later, &[(t(NOW), 20)]);
        assert_eq!((f.today, shares(&f), f.after), (1, vec![(1, 5)], 15));
        // Once over, everything goes without a limit.
        let over = Start {
            now: first + DAY * 2,
            ..later
        };
        let f = forecast(&r, &over, &[(t(NOW), 20)]);
        assert_eq!(
            (f.today, f.days.len(), f.after, f.days_needed(&r)),
            (2, 0, 20, 1)
        );
    }

    #[test]
    fn messages_due_later_wait_for_their_day_and_empty_days_carry_nothing() {
        let r = ramp(&[100, 100, 100, 100]);
        let f = forecast(&r, &fresh(), &[(t(NOW), 50), (t(NOW) + DAY * 3, 150)]);
        assert_eq!(shares(&f), [(0, 50), (3, 100)]);
        assert_eq!((f.after, f.days_needed(&r)), (50, 5));
        // Nothing planned: nothing needed.
        let f = forecast(&r, &fresh(), &[]);
        assert_eq!((f.days.len(), f.after, f.days_needed(&r)), (0, 0, 0));
        // Due far after the ramp's end: all after it.
        let f = forecast(&r, &fresh(), &[(t(NOW), 1), (t(NOW) + DAY * 400, 7)]);
        assert_eq!((shares(&f), f.after), (vec![(0, 1)], 7));
    }
}
