//! Rule 3: quiet hours, allowed weekdays and blackout dates, judged on the local wall clock.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;

use super::{Placement, Reasons, to_instant};

/// A quiet window `[start, end)` on the local wall clock; `start > end` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub(crate) start: Time,
    pub(crate) end: Time,
}

/// A quiet window that would silently block or allow everything.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuietHoursError {
    #[error(
        "quiet hours start and end are both {0}: the window would be empty or cover the whole day"
    )]
    Empty(Time),
    #[error(
        "quiet hours {start}-{end} last {hours:.1} h; more than 20 h leaves almost no time to send"
    )]
    TooLong { start: Time, end: Time, hours: f64 },
}

impl QuietHours {
    /// Longest window accepted: a longer one is almost certainly a typo (`08:00`-`07:00`).
    pub const MAX_SECONDS: i64 = 20 * 3600;

    pub fn new(start: Time, end: Time) -> Result<QuietHours, QuietHoursError> {
        if start == end {
            return Err(QuietHoursError::Empty(start));
        }
        let q = QuietHours { start, end };
        let secs = q.length_seconds();
        if secs > Self::MAX_SECONDS {
            return Err(QuietHoursError::TooLong {
                start,
                end,
                hours: secs as f64 / 3600.0,
            });
        }
        Ok(q)
    }
    pub fn start(&self) -> Time {
        self.start
    }
    pub fn end(&self) -> Time {
        self.end
    }
    /// Whether the window runs past midnight (`start > end`).
    pub fn crosses_midnight(&self) -> bool {
        self.start > self.end
    }
    fn length_seconds(&self) -> i64 {
        let s = seconds_of_day(self.start);
        let e = seconds_of_day(self.end);
        if s < e { e - s } else { 86_400 - s + e }
    }
    pub fn contains(&self, t: Time) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

fn seconds_of_day(t: Time) -> i64 {
    i64::from(t.hour()) * 3600 + i64::from(t.minute()) * 60 + i64::from(t.second())
}

/// A set of allowed weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Weekdays(u8);

/// A weekday name that is not one of `mon`..`sun`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown weekday {0:?}: use mon, tue, wed, thu, fri, sat or sun")]
pub struct UnknownWeekday(pub String);

impl Weekdays {
    pub const ALL: Weekdays = Weekdays(0b111_1111);
    /// Monday to Friday.
    pub const MON_FRI: Weekdays = Weekdays(0b001_1111);

    pub fn none() -> Weekdays {
        Weekdays(0)
    }
    pub fn with(mut self, day: Weekday) -> Weekdays {
        self.0 |= 1 << day.to_monday_zero_offset();
        self
    }
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.to_monday_zero_offset()) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Days in both sets.
    pub fn intersect(self, other: Weekdays) -> Weekdays {
        Weekdays(self.0 & other.0)
    }
    /// Parses `mon`, `Tuesday`, `WED`, ... (three-letter prefix or full English name).
    pub fn parse_day(name: &str) -> Result<Weekday, UnknownWeekday> {
        let lower = name.trim().to_ascii_lowercase();
        let day = match lower.as_str() {
            "mon" | "monday" => Weekday::Monday,
            "tue" | "tuesday" => Weekday::Tuesday,
            "wed" | "wednesday" => Weekday::Wednesday,
            "thu" | "thursday" => Weekday::Thursday,
            "fri" | "friday" => Weekday::Friday,
            "sat" | "saturday" => Weekday::Saturday,
            "sun" | "sunday" => Weekday::Sunday,
            _ => return Err(UnknownWeekday(name.to_string())),
        };
        Ok(day)
    }
}

impl Default for Weekdays {
    fn default() -> Self {
        Weekdays::ALL
    }
}

impl FromIterator<Weekday> for Weekdays {
    fn from_iter<I: IntoIterator<Item = Weekday>>(iter: I) -> Self {
        iter.into_iter().fold(Weekdays::none(), Weekdays::with)
    }
}

/// When, on the recipient's wall clock, a message may be sent (docs/time-semantics.md rule 3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendWindow {
    pub quiet: Option<QuietHours>,
    pub days: Weekdays,
    /// Local dates on which nothing is sent, sorted and deduplicated.
    pub blackout: Vec<Date>,
}

impl SendWindow {
    /// A window with the blackout dates sorted and deduplicated (the lookup needs that).
    pub fn new(quiet: Option<QuietHours>, days: Weekdays, mut blackout: Vec<Date>) -> SendWindow {
        blackout.sort_unstable();
        blackout.dedup();
        SendWindow {
            quiet,
            days,
            blackout,
        }
    }
    pub fn is_blackout(&self, d: Date) -> bool {
        !self.blackout.is_empty() && self.blackout.binary_search(&d).is_ok()
    }
    /// Whether anything may be sent on local date `d` (allowed weekday, not blacked out).
    pub fn allows_date(&self, d: Date) -> bool {
        self.days.contains(d.weekday()) && !self.is_blackout(d)
    }
    /// Whether a local wall time is allowed as it is (rule 3 would not move it).
    pub fn allows(&self, t: DateTime) -> bool {
        self.allows_date(t.date()) && !self.quiet.is_some_and(|q| q.contains(t.time()))
    }
}

/// How far [`earliest_allowed`] looks before giving up.
const SEARCH_DAYS: usize = 400;

/// Rule 3 on the wall clock: the earliest local time at or after `target` that is outside
/// quiet hours, on an allowed weekday and not a blackout date. Without quiet hours, a target
/// on a disallowed day keeps its wall time on the next allowed day (not 00:00). `None` when no such time exists
/// within the next 400 days (no allowed weekday, or every date blacked out).
pub fn earliest_allowed(target: DateTime, window: &SendWindow) -> Option<(DateTime, Reasons)> {
    let mut t = target;
    let mut reasons = Reasons::empty();
    // A day moved past (weekday, blackout) is looked at from its start when quiet hours apply
    // (the earliest allowed time, rule 3); without quiet hours every time of the day is
    // allowed, and the target keeps its wall time on the next allowed day.
    let day_start = if window.quiet.is_some() {
        Time::midnight()
    } else {
        target.time()
    };
    for _ in 0..(SEARCH_DAYS * 3) {
        let date = t.date();
        if window.is_blackout(date) {
            reasons.insert(Reasons::BLACKOUT);
            t = date.tomorrow().ok()?.to_datetime(day_start);
            continue;
        }
        if !window.days.contains(date.weekday()) {
            reasons.insert(Reasons::WEEKDAY);
            t = date.tomorrow().ok()?.to_datetime(day_start);
            continue;
        }
        if let Some(q) = window.quiet
            && q.contains(t.time())
        {
            reasons.insert(Reasons::QUIET_HOURS);
            let end_date = if q.start > q.end && t.time() >= q.start {
                date.tomorrow().ok()?
            } else {
                date
            };
            t = end_date.to_datetime(q.end);
            continue;
        }
        return Some((t, reasons));
    }
    None
}

/// Rules 2 and 3 together: the instant a message aimed at local `target` is sent.
pub fn place(target: DateTime, tz: &TimeZone, window: &SendWindow) -> Option<Placement> {
    let (local, reasons) = earliest_allowed(target, window)?;
    Some(Placement {
        local,
        at: to_instant(local, tz),
        reasons,
    })
}

/// Rule 3 applied to an instant rather than a wall time (used for "now" and at dispatch).
///
/// The instant's own wall time goes through rule 3. If it is allowed, the answer is the
/// instant itself (not its wall time converted back, which in a fall-back overlap would be the
/// first occurrence, up to an hour earlier). If it moved, the moved wall time is converted by
/// rule 2; should that land before `at` (only possible when `at` is the second pass through an
/// overlap), the later reading of that wall time is used, and failing that `at` itself. The
/// result is never before `at`.
pub fn place_instant(at: Timestamp, tz: &TimeZone, window: &SendWindow) -> Option<Placement> {
    let wall = tz.to_datetime(at);
    let (local, reasons) = earliest_allowed(wall, window)?;
    if local == wall {
        return Some(Placement { local, at, reasons });
    }
    let mut moved = to_instant(local, tz);
    if moved < at {
        moved = tz
            .to_ambiguous_timestamp(local)
            .later()
            .ok()
            .filter(|t| *t >= at)
            .unwrap_or(at);
    }
    Some(Placement {
        local,
        at: moved,
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn night() -> QuietHours {
        QuietHours::new(time(21, 0, 0, 0), time(8, 0, 0, 0)).unwrap()
    }

    #[test]
    fn quiet_hours_across_midnight_move_to_morning() {
        let w = SendWindow {
            quiet: Some(night()),
            ..SendWindow::default()
        };
        let (t, r) = earliest_allowed(date(2026, 11, 27).at(22, 15, 0, 0), &w).unwrap();
        assert_eq!(t, date(2026, 11, 28).at(8, 0, 0, 0));
        assert_eq!(r.names().collect::<Vec<_>>(), ["quiet_hours"]);
    }

    #[test]
    fn early_morning_moves_to_same_day_end() {
        let w = SendWindow::new(Some(night()), Weekdays::ALL, vec![]);
        let (t, _) = earliest_allowed(date(2026, 11, 27).at(3, 0, 0, 0), &w).unwrap();
        assert_eq!(t, date(2026, 11, 27).at(8, 0, 0, 0));
    }

    #[test]
    fn quiet_end_is_allowed_start_is_not() {
        let q = night();
        assert!(!q.contains(time(8, 0, 0, 0)));
        assert!(q.contains(time(21, 0, 0, 0)));
        assert!(q.contains(time(7, 59, 59, 999_999_999)));
    }

    #[test]
    fn disallowed_weekend_moves_to_monday_after_quiet_hours() {
        let w = SendWindow {
            quiet: Some(night()),
            days: Weekdays::MON_FRI,
            blackout: vec![],
        };
        // Saturday 10:00 -> Monday 08:00 (Monday 00:00 is inside quiet hours).
        let (t, r) = earliest_allowed(date(2026, 11, 28).at(10, 0, 0, 0), &w).unwrap();
        assert_eq!(t, date(2026, 11, 30).at(8, 0, 0, 0));
        assert!(r.contains(Reasons::WEEKDAY) && r.contains(Reasons::QUIET_HOURS));
    }

    #[test]
    fn blackout_christmas_moves_to_boxing_day() {
        let w = SendWindow::new(Some(night()), Weekdays::ALL, vec![date(2026, 12, 25)]);
        let (t, r) = earliest_allowed(date(2026, 12, 25).at(10, 0, 0, 0), &w).unwrap();
        assert_eq!(t, date(2026, 12, 26).at(8, 0, 0, 0));
        assert_eq!(r.names().collect::<Vec<_>>(), ["quiet_hours", "blackout"]);
    }

    #[test]
    fn without_quiet_hours_a_moved_day_keeps_the_wall_time() {
        let w = SendWindow::new(None, Weekdays::MON_FRI, vec![date(2026, 11, 30)]);
        // Saturday 10:30 -> Sunday (weekday) -> Monday (blackout) -> Tuesday 10:30.
        let (t, r) = earliest_allowed(date(2026, 11, 28).at(10, 30, 0, 0), &w).unwrap();
        assert_eq!(t, date(2026, 12, 1).at(10, 30, 0, 0));
        assert!(r.contains(Reasons::WEEKDAY) && r.contains(Reasons::BLACKOUT));
    }

    #[test]
    fn no_allowed_day_gives_none() {
        let w = SendWindow::new(None, Weekdays::none(), vec![]);
        assert!(earliest_allowed(date(2026, 1, 1).at(10, 0, 0, 0), &w).is_none());
    }

    #[test]
    fn quiet_window_validation() {
        assert!(QuietHours::new(time(8, 0, 0, 0), time(8, 0, 0, 0)).is_err());
        assert!(QuietHours::new(time(8, 0, 0, 0), time(6, 0, 0, 0)).is_err());
        assert!(QuietHours::new(time(20, 0, 0, 0), time(16, 0, 0, 0)).is_ok());
    }

    #[test]
    fn weekday_names_parse() {
        assert_eq!(Weekdays::parse_day("MON").unwrap(), Weekday::Monday);
        assert_eq!(Weekdays::parse_day("sunday").unwrap(), Weekday::Sunday);
        assert!(Weekdays::parse_day("mo").is_err());
    }

    #[test]
    fn instant_in_second_pass_of_overlap_is_not_moved_backwards() {
        // New York, 2026-11-01: 01:00-02:00 happens twice. At 01:15 EST (06:15Z) with quiet
        // hours ending 01:30 the wall time moves to 01:30, whose first reading (05:30Z) is in
        // the past; the second reading (06:30Z) is used.
        let tz = TimeZone::get("America/New_York").unwrap();
        let w = SendWindow::new(
            Some(QuietHours::new(time(21, 0, 0, 0), time(1, 30, 0, 0)).unwrap()),
            Weekdays::ALL,
            vec![],
        );
        let now: Timestamp = "2026-11-01T06:15:00Z".parse().unwrap();
        let p = place_instant(now, &tz, &w).unwrap();
        assert_eq!(p.at.to_string(), "2026-11-01T06:30:00Z");
    }
}
