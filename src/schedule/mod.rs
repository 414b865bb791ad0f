//! The pure time engine: recipient-local wall time in, send instant out (docs/time-semantics.md).
//!
//! No I/O and no clock: `now` is always passed in, so `preview`, `plan` and `run` compute the
//! same answers and tests can pin any instant. Everything here works on jiff's civil
//! (wall-clock) types and converts to an instant only at the end, by RFC 5545 (rule 2).
//!
//! - `zones`: rule 1, zone names ([`zone`], [`is_valid_zone`]).
//! - `window`: rule 3, quiet hours, weekdays, blackout dates ([`place`], [`place_instant`]).
//! - `preset`: named quiet-hours profiles ([`QuietPreset`]).
//! - `cron`: rule 4, [`WallCron`] on the wall clock and [`materialise`] for plans.
//! - `dispatch`: rule 7 at plan time ([`plan_at`], [`place_asap`]), rules 5 and 6 at dispatch
//!   ([`at_dispatch`], [`at_dispatch_capped`], [`cap_next_allowed`]).
//!
//! docs/time-semantics.md states the rules as implemented and the decisions taken.

mod cron;
mod dispatch;
mod preset;
mod window;
mod zones;

pub use cron::{CronError, Materialise, Occurrence, Occurrences, WallCron, materialise};
pub use dispatch::{
    Dispatch, FrequencyCap, LatePolicy, OneShot, UnknownLatePolicy, at_dispatch,
    at_dispatch_capped, cap_next_allowed, place_asap, place_occurrence, plan_at,
};
pub use preset::{QuietPreset, UnknownPreset};
pub use window::{
    QuietHours, QuietHoursError, SendWindow, UnknownWeekday, Weekdays, earliest_allowed, place,
    place_instant,
};
pub use zones::{is_valid_zone, zone};

use jiff::civil::DateTime;
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
    /// Both sets of reasons.
    #[must_use]
    pub const fn union(self, other: Reasons) -> Reasons {
        Reasons(self.0 | other.0)
    }
    /// The names of the reasons set (docs/output.md), in a fixed order.
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

impl std::ops::BitOr for Reasons {
    type Output = Reasons;
    fn bitor(self, rhs: Reasons) -> Reasons {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for Reasons {
    fn bitor_assign(&mut self, rhs: Reasons) {
        self.insert(rhs);
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
        .unwrap_or(if local.year() < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
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

/// `2026-11-27T10:00:00-03:00`: what `strftime("%Y-%m-%dT%H:%M:%S%:z")` prints, written
/// directly for the common case (4-digit year, whole-minute offset).
pub fn local_rfc3339(z: &jiff::Zoned) -> String {
    let offset = z.offset().seconds();
    let dt = z.datetime();
    if !(0..=9999).contains(&dt.year()) || offset % 60 != 0 {
        return z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
    }
    fn two(out: &mut String, n: i64) {
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    }
    let mut out = String::with_capacity(25);
    let y = i64::from(dt.year());
    two(&mut out, y / 100);
    two(&mut out, y % 100);
    out.push('-');
    two(&mut out, dt.month().into());
    out.push('-');
    two(&mut out, dt.day().into());
    out.push('T');
    two(&mut out, dt.hour().into());
    out.push(':');
    two(&mut out, dt.minute().into());
    out.push(':');
    two(&mut out, dt.second().into());
    out.push(if offset < 0 { '-' } else { '+' });
    let m = i64::from(offset.abs() / 60);
    two(&mut out, m / 60);
    out.push(':');
    two(&mut out, m % 60);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

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
    fn half_and_quarter_hour_offsets() {
        let t = date(2026, 6, 1).at(12, 0, 0, 0);
        let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
        let kathmandu = TimeZone::get("Asia/Kathmandu").unwrap();
        let chatham = TimeZone::get("Pacific/Chatham").unwrap();
        assert_eq!(to_instant(t, &kolkata).to_string(), "2026-06-01T06:30:00Z");
        assert_eq!(
            to_instant(t, &kathmandu).to_string(),
            "2026-06-01T06:15:00Z"
        );
        assert_eq!(to_instant(t, &chatham).to_string(), "2026-05-31T23:15:00Z");
    }

    #[test]
    fn lord_howe_half_hour_gap() {
        // Lord Howe springs forward 02:00 -> 02:30 (+10:30 -> +11); 02:15 reads as +10:30.
        let tz = TimeZone::get("Australia/Lord_Howe").unwrap();
        let at = to_instant(date(2026, 10, 4).at(2, 15, 0, 0), &tz);
        assert_eq!(at.to_string(), "2026-10-03T15:45:00Z");
    }

    #[test]
    fn edmonton_is_permanently_minus_six_from_2026_11_01() {
        // IANA 2026e: Alberta stays on -06:00 after 2026-11-01 instead of falling back.
        let tz = TimeZone::get("America/Edmonton").unwrap();
        for (y, m, d) in [(2026, 12, 15), (2027, 1, 15), (2027, 7, 15), (2030, 1, 1)] {
            let at = to_instant(date(y, m, d).at(12, 0, 0, 0), &tz);
            assert_eq!(tz.to_offset(at).seconds(), -6 * 3600, "{y}-{m}-{d}");
        }
        let before = to_instant(date(2026, 1, 15).at(12, 0, 0, 0), &tz);
        assert_eq!(tz.to_offset(before).seconds(), -7 * 3600);
    }

    #[test]
    fn reasons_round_trip_names() {
        let mut r = Reasons::empty();
        r.insert(Reasons::LATE);
        r.insert(Reasons::QUIET_HOURS);
        let names: Vec<_> = r.names().collect();
        assert_eq!(names, ["quiet_hours", "late"]);
        assert_eq!(Reasons::from_names(names), r);
    }

    #[test]
    fn local_rfc3339_matches_strftime() {
        let zones = [
            "America/Sao_Paulo",
            "America/St_Johns",
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "Pacific/Chatham",
            "Europe/London",
            "UTC",
        ];
        let instants = [
            "2026-11-27T13:00:00Z",
            "2026-03-29T00:59:59Z",
            "2026-10-25T01:00:00Z",
            "1890-01-01T00:00:00Z", // local mean time: offsets with seconds take strftime
            "0001-01-01T12:00:00Z",
        ];
        for z in zones {
            let tz = jiff::tz::TimeZone::get(z).unwrap();
            for t in instants {
                let at: Timestamp = t.parse().unwrap();
                let zoned = at.to_zoned(tz.clone());
                assert_eq!(
                    local_rfc3339(&zoned),
                    zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                    "{z} {t}"
                );
            }
        }
    }
}
