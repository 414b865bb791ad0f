//! The pure time engine: recipient-local wall time in, send instant out (SPEC §4).
//!
//! No I/O and no clock: `now` is always passed in, so `preview`, `plan` and `run` compute the
//! same answers and tests can pin any instant. Everything here works on jiff's civil
//! (wall-clock) types and converts to an instant only at the end, by RFC 5545 (rule 2).

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// Why a message was moved from its target; shown by `preview` and stored with the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reasons(u8);

impl Reasons {
    pub const QUIET_HOURS: Reasons = Reasons(1);
    pub const WEEKDAY: Reasons = Reasons(2);
    pub const BLACKOUT: Reasons = Reasons(4);
    pub const LATE: Reasons = Reasons(8);
    pub const CAP: Reasons = Reasons(16);
    const NAMES: [(Reasons, &'static str); 5] = [
        (Reasons::QUIET_HOURS, "quiet_hours"),
        (Reasons::WEEKDAY, "weekday"),
        (Reasons::BLACKOUT, "blackout"),
        (Reasons::LATE, "late"),
        (Reasons::CAP, "cap"),
    ];

    pub fn empty() -> Reasons {
        Reasons(0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn contains(self, other: Reasons) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn insert(&mut self, other: Reasons) {
        self.0 |= other.0;
    }
    /// The SPEC §3 names of the reasons set, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(r, _)| self.contains(*r))
            .map(|(_, n)| n)
    }
    /// Parses the names written by [`Reasons::names`]; unknown names are ignored.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Reasons {
        let mut out = Reasons::empty();
        for name in names {
            if let Some((r, _)) = Self::NAMES.iter().find(|(_, n)| *n == name) {
                out.insert(*r);
            }
        }
        out
    }
}

/// A quiet window `[start, end)` on the local wall clock; `start > end` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: Time,
    end: Time,
}

/// A quiet window that would silently block or allow everything.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuietHoursError {
    #[error("quiet hours start and end are both {0}: the window would be empty or cover the whole day")]
    Empty(Time),
    #[error("quiet hours {start}-{end} last {hours:.1} h; more than 20 h leaves almost no time to send")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weekdays(u8);

impl Weekdays {
    pub const ALL: Weekdays = Weekdays(0b111_1111);
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
}

impl Default for Weekdays {
    fn default() -> Self {
        Weekdays::ALL
    }
}

/// When, on the recipient's wall clock, a message may be sent (SPEC §4 rule 3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendWindow {
    pub quiet: Option<QuietHours>,
    pub days: Weekdays,
    /// Local dates on which nothing is sent, sorted and deduplicated.
    pub blackout: Vec<Date>,
}

impl SendWindow {
    fn is_blackout(&self, d: Date) -> bool {
        self.blackout.binary_search(&d).is_ok()
    }
}

/// Where a target landed: the allowed wall time, its instant, and why it moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub local: DateTime,
    pub at: Timestamp,
    pub reasons: Reasons,
}

/// Rule 2: a local wall time to an instant, by RFC 5545. A time in a DST gap takes the offset
/// in force before the gap; an ambiguous time takes its first occurrence. That is exactly
/// jiff's `compatible` disambiguation.
pub fn to_instant(local: DateTime, tz: &TimeZone) -> Timestamp {
    tz.to_ambiguous_timestamp(local)
        .compatible()
        // Only dates near jiff's range limits (years -9999 / 9999) fail; model validation
        // keeps dates within years 1970-2200, so clamp rather than panic.
        .unwrap_or(if local.year() < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

/// Rule 3 on the wall clock: the earliest local time at or after `target` that is outside
/// quiet hours, on an allowed weekday and not a blackout date. `None` when no such time exists
/// within the next 400 days (no allowed weekday, or every date blacked out).
pub fn earliest_allowed(target: DateTime, window: &SendWindow) -> Option<(DateTime, Reasons)> {
    let mut t = target;
    let mut reasons = Reasons::empty();
    for _ in 0..(400 * 3) {
        let date = t.date();
        if window.is_blackout(date) {
            reasons.insert(Reasons::BLACKOUT);
            t = date.tomorrow().ok()?.to_datetime(Time::midnight());
            continue;
        }
        if !window.days.contains(date.weekday()) {
            reasons.insert(Reasons::WEEKDAY);
            t = date.tomorrow().ok()?.to_datetime(Time::midnight());
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

/// The local wall time of an instant in a zone.
pub fn to_local(at: Timestamp, tz: &TimeZone) -> DateTime {
    tz.to_datetime(at)
}

/// One day later on the wall clock, same time; `None` past the end of the calendar.
pub fn next_day(local: DateTime) -> Option<DateTime> {
    local.checked_add(1.day()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    #[test]
    fn gap_time_takes_offset_before_gap() {
        let at = to_instant(date(2026, 3, 8).at(2, 30, 0, 0), &ny());
        assert_eq!(at.to_string(), "2026-03-08T07:30:00Z");
    }

    #[test]
    fn ambiguous_time_takes_first_occurrence() {
        let at = to_instant(date(2026, 11, 1).at(1, 30, 0, 0), &ny());
        assert_eq!(at.to_string(), "2026-11-01T05:30:00Z");
    }

    #[test]
    fn quiet_hours_across_midnight_move_to_morning() {
        let w = SendWindow {
            quiet: Some(QuietHours::new(time(21, 0, 0, 0), time(8, 0, 0, 0)).unwrap()),
            ..SendWindow::default()
        };
        let (t, r) = earliest_allowed(date(2026, 11, 27).at(22, 15, 0, 0), &w).unwrap();
        assert_eq!(t, date(2026, 11, 28).at(8, 0, 0, 0));
        assert_eq!(r.names().collect::<Vec<_>>(), ["quiet_hours"]);
    }

    #[test]
    fn disallowed_weekend_moves_to_monday_after_quiet_hours() {
        let w = SendWindow {
            quiet: Some(QuietHours::new(time(21, 0, 0, 0), time(8, 0, 0, 0)).unwrap()),
            days: Weekdays::none()
                .with(Weekday::Monday)
                .with(Weekday::Tuesday)
                .with(Weekday::Wednesday)
                .with(Weekday::Thursday)
                .with(Weekday::Friday),
            blackout: vec![],
        };
        // Saturday 10:00 -> Monday 08:00 (Monday 00:00 is inside quiet hours).
        let (t, r) = earliest_allowed(date(2026, 11, 28).at(10, 0, 0, 0), &w).unwrap();
        assert_eq!(t, date(2026, 11, 30).at(8, 0, 0, 0));
        assert!(r.contains(Reasons::WEEKDAY) && r.contains(Reasons::QUIET_HOURS));
    }

    #[test]
    fn quiet_window_validation() {
        assert!(QuietHours::new(time(8, 0, 0, 0), time(8, 0, 0, 0)).is_err());
        assert!(QuietHours::new(time(8, 0, 0, 0), time(6, 0, 0, 0)).is_err());
        assert!(QuietHours::new(time(20, 0, 0, 0), time(16, 0, 0, 0)).is_ok());
    }
}
