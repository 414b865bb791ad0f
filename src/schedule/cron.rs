//! Rule 4: recurring schedules. A cron expression is matched against recipient-local wall-clock
//! times (naive, zone-free); each matching wall time becomes an instant by rule 2, and the
//! occurrences are the distinct instants in order.
//!
//! No cron library's DST policy is involved: wall times are enumerated on a naive calendar and
//! converted here. In a spring-forward gap a wall time converts to a later instant than the
//! wall times just after the gap (02:30 in New York is 03:30 EDT, after 03:00 EDT), so
//! conversions are buffered until no later wall time can produce an earlier instant.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use super::window::SendWindow;
use super::{Placement, place, to_instant};

/// A parsed cron expression, matched on the wall clock.
///
/// Accepted: 5 fields `minute hour day-of-month month day-of-week`, or 6 with a leading
/// `second` field; in each field `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n`, `a-b/n`
/// and `a/n`; month names `JAN`-`DEC`, day names `SUN`-`SAT` (any case); day-of-week 0 or 7 is
/// Sunday; `?` means `*` in the day fields; macros `@yearly`, `@annually`, `@monthly`,
/// `@weekly`, `@daily`, `@midnight`, `@hourly`. When both day fields are restricted (neither
/// starts with `*` or `?`), a day matching either fires (POSIX, as Vixie cron).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WallCron {
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    dom: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    dow: u8,
    dom_star: bool,
    dow_star: bool,
    source: Box<str>,
}

/// Why a cron expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "empty cron expression: write 5 fields (minute hour day-of-month month day-of-week) or 6 with a leading seconds field"
    )]
    Empty,
    #[error(
        "cron expression {expr:?} has {found} field(s): write 5 (minute hour day-of-month month day-of-week) or 6 with a leading seconds field"
    )]
    FieldCount { expr: String, found: usize },
    #[error(
        "unknown cron macro {0:?}: use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
    )]
    UnknownMacro(String),
    #[error("cron {field} field {text:?}: {problem}")]
    Field {
        field: &'static str,
        text: String,
        problem: String,
    },
    #[error("cron expression {expr:?} never fires: {why}")]
    Never { expr: String, why: String },
}

struct FieldSpec {
    name: &'static str,
    min: u8,
    max: u8,
    names: &'static [&'static str],
    /// Whether `?` is accepted (day fields).
    question: bool,
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    question: false,
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    question: false,
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    question: false,
};
const DOM: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    question: true,
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    question: false,
};
const DOW: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    question: true,
};

impl FieldSpec {
    fn err(&self, text: &str, problem: impl Into<String>) -> CronError {
        CronError::Field {
            field: self.name,
            text: text.to_string(),
            problem: problem.into(),
        }
    }

    fn value(&self, field: &str, s: &str, range_end: bool) -> Result<u8, CronError> {
        if s.is_empty() {
            return Err(self.err(field, "a value is missing"));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            let v: u32 = s.parse().map_err(|_| self.err(field, "number too large"))?;
            if v < u32::from(self.min) || v > u32::from(self.max) {
                return Err(self.err(
                    field,
                    format!("{v} is out of range {}-{}", self.min, self.max),
                ));
            }
            return Ok(v as u8);
        }
        if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            let offset = if self.min == 0 { 0 } else { 1 };
            let v = i as u8 + offset;
            // `FRI-SUN`: Sunday as the end of a day-of-week range means 7.
            if range_end && self.name == "day-of-week" && v == 0 {
                return Ok(7);
            }
            return Ok(v);
        }
        let hint = if self.names.is_empty() {
            format!("expected a number {}-{}", self.min, self.max)
        } else {
            format!(
                "expected a number {}-{} or a name {}-{}",
                self.min,
                self.max,
                self.names[0],
                self.names[self.names.len() - 1]
            )
        };
        if matches!(s, "L" | "l" | "W" | "w") || s.contains('#') || s.ends_with(['L', 'W']) {
            return Err(self.err(field, format!("{s:?} (L, W, #) is not supported; {hint}")));
        }
        Err(self.err(field, format!("{s:?} is not valid; {hint}")))
    }

    /// Parses one field into a bit set (bit `v` for value `v`) and whether it is a `*`/`?` field.
    fn parse(&self, field: &str) -> Result<(u64, bool), CronError> {
        let star = field.starts_with('*') || (self.question && field.starts_with('?'));
        let mut bits = 0u64;
        for item in field.split(',') {
            if item.is_empty() {
                return Err(self.err(field, "empty list item (stray comma?)"));
            }
            let (base, step) = match item.split_once('/') {
                Some((b, s)) => {
                    let step: u32 = s.parse().map_err(|_| {
                        self.err(field, format!("step {s:?} is not a positive number"))
                    })?;
                    if step == 0 {
                        return Err(self.err(field, "a step of 0 never advances"));
                    }
                    (b, Some(step))
                }
                None => (item, None),
            };
            let (lo, hi) = if base == "*" || (self.question && base == "?") {
                if self.question && base == "?" && step.is_some() {
                    return Err(self.err(field, "`?` takes no step"));
                }
                (self.min, self.max)
            } else if let Some((a, b)) = base.split_once('-') {
                let lo = self.value(field, a, false)?;
                let hi = self.value(field, b, true)?;
                if lo > hi {
                    return Err(self.err(
                        field,
                        format!("range {a}-{b} runs backwards; write the smaller value first"),
                    ));
                }
                (lo, hi)
            } else {
                let v = self.value(field, base, false)?;
                // `a/n` means from a to the end in steps of n.
                if step.is_some() {
                    (v, self.max)
                } else {
                    (v, v)
                }
            };
            let step = step.unwrap_or(1);
            let mut v = u32::from(lo);
            while v <= u32::from(hi) {
                bits |= 1u64 << v;
                v += step;
            }
        }
        Ok((bits, star))
    }
}

const DAYS_IN_MONTH: [u8; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

fn is_leap(y: i16) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i16, m: u8) -> u8 {
    if m == 2 && !is_leap(y) {
        28
    } else {
        DAYS_IN_MONTH[usize::from(m)]
    }
}

/// Day of week, Sunday = 0 (Sakamoto's method; proleptic Gregorian).
fn weekday_sun0(y: i16, m: u8, d: u8) -> u8 {
    const T: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let mut y = i32::from(y);
    if m < 3 {
        y -= 1;
    }
    let w = (y + y.div_euclid(4) - y.div_euclid(100)
        + y.div_euclid(400)
        + T[usize::from(m - 1)]
        + i32::from(d))
    .rem_euclid(7);
    w as u8
}

/// Lowest set bit at or above `from`, if any.
fn next_bit(bits: u64, from: u8) -> Option<u8> {
    if from >= 64 {
        return None;
    }
    let masked = bits & (u64::MAX << from);
    (masked != 0).then(|| masked.trailing_zeros() as u8)
}

/// How many years ahead a wall-time search looks (29 February on a given weekday recurs
/// within 28 years).
const SEARCH_YEARS: i16 = 30;

impl WallCron {
    pub fn parse(expr: &str) -> Result<WallCron, CronError> {
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(CronError::Empty);
        }
        let expanded = if let Some(m) = trimmed.strip_prefix('@') {
            match m.to_ascii_lowercase().as_str() {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => return Err(CronError::UnknownMacro(trimmed.to_string())),
            }
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => (None, &fields[..]),
            6 => (Some(fields[0]), &fields[1..]),
            n => {
                return Err(CronError::FieldCount {
                    expr: trimmed.to_string(),
                    found: n,
                });
            }
        };
        let seconds = match sec {
            Some(s) => SECOND.parse(s)?.0,
            None => 1,
        };
        let minutes = MINUTE.parse(rest[0])?.0;
        let hours = HOUR.parse(rest[1])?.0 as u32;
        let (dom, dom_star) = DOM.parse(rest[2])?;
        let months = MONTH.parse(rest[3])?.0 as u16;
        let (dow_raw, dow_star) = DOW.parse(rest[4])?;
        // Fold 7 onto 0: both are Sunday.
        let dow = ((dow_raw | (dow_raw >> 7)) & 0x7f) as u8;
        let cron = WallCron {
            seconds,
            minutes,
            hours,
            dom: dom as u32,
            months,
            dow,
            dom_star,
            dow_star,
            source: trimmed.into(),
        };
        cron.check_can_fire()?;
        Ok(cron)
    }

    /// A day-of-month list restricted alone to days no chosen month has (`0 0 31 2 *`).
    fn check_can_fire(&self) -> Result<(), CronError> {
        if self.dom_star || !self.dow_star {
            return Ok(());
        }
        let possible = (1..=12u8).filter(|m| self.months & (1 << m) != 0).any(|m| {
            next_bit(u64::from(self.dom), 1).is_some_and(|d| d <= DAYS_IN_MONTH[usize::from(m)])
        });
        if possible {
            Ok(())
        } else {
            Err(CronError::Never {
                expr: self.source.to_string(),
                why: "no chosen month has the chosen day of the month".into(),
            })
        }
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn day_matches(&self, y: i16, m: u8, d: u8) -> bool {
        let dom_ok = self.dom & (1 << d) != 0;
        let dow_ok = self.dow & (1 << weekday_sun0(y, m, d)) != 0;
        if !self.dom_star && !self.dow_star {
            dom_ok || dow_ok
        } else {
            dom_ok && dow_ok
        }
    }

    /// Whether a wall-clock time matches (to the second; a time with a fraction never does).
    pub fn matches(&self, wall: DateTime) -> bool {
        wall.subsec_nanosecond() == 0
            && self.seconds & (1 << wall.second()) != 0
            && self.minutes & (1 << wall.minute()) != 0
            && self.hours & (1 << wall.hour()) != 0
            && self.months & (1 << wall.month()) != 0
            && self.day_matches(wall.year(), wall.month() as u8, wall.day() as u8)
    }

    /// The first matching wall time at or after `from`, on the naive calendar. `None` when
    /// nothing matches within 30 years or before the end of the calendar.
    pub fn next_wall_from(&self, from: DateTime) -> Option<DateTime> {
        let mut y = from.year();
        let mut mo = from.month() as u8;
        let mut d = from.day() as u8;
        let mut h = from.hour() as u8;
        let mut mi = from.minute() as u8;
        let mut s = from.second() as u8;
        if from.subsec_nanosecond() > 0 {
            s += 1;
        }
        let limit = y.saturating_add(SEARCH_YEARS);
        loop {
            // Normalise after any carry.
            if s > 59 {
                s = 0;
                mi += 1;
            }
            if mi > 59 {
                mi = 0;
                h += 1;
            }
            if h > 23 {
                h = 0;
                d += 1;
            }
            if mo <= 12 && d > days_in_month(y, mo) {
                d = 1;
                mo += 1;
            }
            if mo > 12 {
                mo = 1;
                y += 1;
            }
            if y > limit || y > 9998 {
                return None;
            }
            match next_bit(u64::from(self.months), mo) {
                Some(m) if m == mo => {}
                Some(m) => {
                    (mo, d, h, mi, s) = (m, 1, 0, 0, 0);
                }
                None => {
                    (mo, d, h, mi, s) = (13, 1, 0, 0, 0);
                    continue;
                }
            }
            if !self.day_matches(y, mo, d) {
                (d, h, mi, s) = (d + 1, 0, 0, 0);
                continue;
            }
            match next_bit(u64::from(self.hours), h) {
                Some(x) if x == h => {}
                Some(x) => (h, mi, s) = (x, 0, 0),
                None => {
                    (h, mi, s) = (24, 0, 0);
                    continue;
                }
            }
            match next_bit(self.minutes, mi) {
                Some(x) if x == mi => {}
                Some(x) => (mi, s) = (x, 0),
                None => {
                    (mi, s) = (60, 0);
                    continue;
                }
            }
            match next_bit(self.seconds, s) {
                Some(x) => s = x,
                None => {
                    s = 60;
                    continue;
                }
            }
            return DateTime::new(y, mo as i8, d as i8, h as i8, mi as i8, s as i8, 0).ok();
        }
    }

    /// The first matching wall time strictly after `wall`.
    pub fn next_wall_after(&self, wall: DateTime) -> Option<DateTime> {
        let from = wall
            .with()
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(SignedDuration::from_secs(1))
            .ok()?;
        self.next_wall_from(from)
    }

    /// Occurrences (wall time, instant) strictly after the instant `after`, in `tz`: distinct
    /// instants in increasing order. When two matching wall times convert to the same instant
    /// (a gap time and the real time it is read as), the earlier wall time is reported.
    pub fn occurrences(&self, tz: &TimeZone, after: Timestamp) -> Occurrences<'_> {
        Occurrences {
            cron: self,
            tz: tz.clone(),
            cursor: Some(first_wall_to_consider(tz, after)),
            after,
            pending: BinaryHeap::new(),
            frontier: None,
            last: None,
        }
    }
}

/// The earliest wall time whose rule-2 instant can be later than `after`: the wall time of
/// `after` itself, or the start of a spring-forward gap just before it whose times read as
/// instants after `after`.
fn first_wall_to_consider(tz: &TimeZone, after: Timestamp) -> DateTime {
    let mut start = tz.to_datetime(after);
    let probe = after
        .checked_add(SignedDuration::from_nanos(1))
        .unwrap_or(after);
    for trans in tz.preceding(probe).take(4) {
        let t = trans.timestamp();
        if after.duration_since(t) > SignedDuration::from_hours(72) {
            break;
        }
        let Ok(just_before) = t.checked_sub(SignedDuration::from_nanos(1)) else {
            continue;
        };
        let before = tz.to_offset(just_before);
        let gap = i64::from(trans.offset().seconds()) - i64::from(before.seconds());
        if gap > 0 && after.duration_since(t) < SignedDuration::from_secs(gap) {
            start = start.min(before.to_datetime(t));
        }
    }
    start
}

impl FromStr for WallCron {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WallCron::parse(s)
    }
}

impl fmt::Display for WallCron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Iterator over a cron's occurrences in one zone; see [`WallCron::occurrences`].
#[derive(Debug, Clone)]
pub struct Occurrences<'a> {
    cron: &'a WallCron,
    tz: TimeZone,
    /// Next wall time to search from; `None` once the cron has no more matches.
    cursor: Option<DateTime>,
    after: Timestamp,
    /// Converted wall times not yet known to be next, smallest instant first.
    pending: BinaryHeap<Reverse<(Timestamp, DateTime)>>,
    /// Every wall time still to come converts to an instant at or after this one.
    frontier: Option<Timestamp>,
    last: Option<Timestamp>,
}

impl Iterator for Occurrences<'_> {
    type Item = (DateTime, Timestamp);

    fn next(&mut self) -> Option<(DateTime, Timestamp)> {
        loop {
            let ready = match (self.pending.peek(), self.cursor) {
                (None, None) => return None,
                (Some(_), None) => true,
                (Some(Reverse((at, _))), Some(_)) => self.frontier.is_some_and(|f| *at <= f),
                (None, Some(_)) => false,
            };
            if ready {
                let Reverse((at, wall)) = self.pending.pop()?;
                if at <= self.after || self.last == Some(at) {
                    continue;
                }
                self.last = Some(at);
                return Some((wall, at));
            }
            let cursor = self.cursor?;
            let Some(wall) = self.cron.next_wall_from(cursor) else {
                self.cursor = None;
                continue;
            };
            self.cursor = self.cron.next_wall_after(wall);
            let amb = self.tz.to_ambiguous_timestamp(wall);
            let in_gap = matches!(amb.offset(), AmbiguousOffset::Gap { .. });
            let at = amb
                .compatible()
                .unwrap_or_else(|_| to_instant(wall, &self.tz));
            // Outside a gap, rule 2 is monotonic from here on: no later wall time reads as an
            // earlier instant (gap times read as instants at or after the gap's transition).
            if !in_gap {
                self.frontier = Some(at);
            }
            self.pending.push(Reverse((at, wall)));
        }
    }
}

/// One materialised occurrence of a recurring schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    /// 0, 1, 2, ... counted from the schedule's `start`; stable across re-plans.
    pub index: u32,
    /// The matching wall time (for a gap time, the wall time as matched, not as read).
    pub wall: DateTime,
    /// Its instant by rule 2.
    pub at: Timestamp,
}

impl Occurrence {
    /// Rule 3 on this occurrence's wall time (the message it becomes may move).
    pub fn place(&self, tz: &TimeZone, window: &SendWindow) -> Option<Placement> {
        place(self.wall, tz, window)
    }
}

/// Iterator returned by [`materialise`].
#[derive(Debug, Clone)]
pub struct Materialise<'a> {
    inner: Occurrences<'a>,
    next_index: u64,
    until: Option<Date>,
    /// Wall dates past this end the iteration (the last one `until` could still admit).
    stop_after: Option<Date>,
    count: Option<u32>,
    horizon: Timestamp,
}

/// The occurrences a plan stores for one recipient: those of `cron` in `tz` at or after the
/// instant of local `start` (rule 2), numbered from 0 in instant order; limited to wall dates
/// up to `until` (inclusive), to the first `count` occurrences, and to instants up to
/// `horizon` (inclusive). The numbering depends only on `cron`, `tz` and `start`, so planning
/// again with a later horizon gives the same indices to the same occurrences and appends new
/// ones.
pub fn materialise<'a>(
    cron: &'a WallCron,
    tz: &TimeZone,
    start: DateTime,
    until: Option<Date>,
    count: Option<u32>,
    horizon: Timestamp,
) -> Materialise<'a> {
    let first = to_instant(start, tz);
    let after = first
        .checked_sub(SignedDuration::from_nanos(1))
        .unwrap_or(first);
    Materialise {
        inner: cron.occurrences(tz, after),
        next_index: 0,
        until,
        // A gap time on the `until` date can read as an instant after a wall time of the next
        // day; look two days past `until` before stopping.
        stop_after: until.map(|u| u.checked_add(jiff::Span::new().days(2)).unwrap_or(u)),
        count,
        horizon,
    }
}

impl Iterator for Materialise<'_> {
    type Item = Occurrence;

    fn next(&mut self) -> Option<Occurrence> {
        loop {
            if let Some(c) = self.count
                && self.next_index >= u64::from(c)
            {
                return None;
            }
            let index = u32::try_from(self.next_index).ok()?;
            let (wall, at) = self.inner.next()?;
            if at > self.horizon {
                return None;
            }
            if let Some(stop) = self.stop_after
                && wall.date() > stop
            {
                return None;
            }
            self.next_index += 1;
            if let Some(u) = self.until
                && wall.date() > u
            {
                continue;
            }
            return Some(Occurrence { index, wall, at });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn cron(s: &str) -> WallCron {
        WallCron::parse(s).unwrap()
    }

    fn fires(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        let tz = TimeZone::get(tz).unwrap();
        cron(expr)
            .occurrences(&tz, after.parse().unwrap())
            .take(n)
            .map(|(_, at)| at.to_string())
            .collect()
    }

    #[test]
    fn daily_0230_fires_at_0330_new_time_on_spring_forward_day() {
        let got = fires("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 3);
        assert_eq!(
            got,
            [
                "2026-03-08T07:30:00Z",
                "2026-03-09T06:30:00Z",
                "2026-03-10T06:30:00Z"
            ]
        );
    }

    #[test]
    fn daily_0130_fires_once_on_fall_back_night() {
        let got = fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2);
        assert_eq!(got, ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]);
    }

    #[test]
    fn gap_time_sorts_after_later_wall_time_and_collides_with_it() {
        // Half-hourly 02:00-03:30 in New York on 2026-03-08: 02:00 and 02:30 do not exist and
        // read as 03:00 and 03:30 EDT, the same instants as the real 03:00 and 03:30.
        let got = fires(
            "*/30 2-3 * * *",
            "America/New_York",
            "2026-03-08T05:00:00Z",
            3,
        );
        assert_eq!(
            got,
            [
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:30:00Z",
                "2026-03-09T06:00:00Z"
            ]
        );
    }

    #[test]
    fn after_inside_the_gaps_reading_still_sees_the_gap_time() {
        // 02:30 reads as 07:30Z; asking after 07:10Z (03:10 EDT) must still return it.
        let got = fires("30 2 * * *", "America/New_York", "2026-03-08T07:10:00Z", 1);
        assert_eq!(got, ["2026-03-08T07:30:00Z"]);
    }

    #[test]
    fn posix_or_when_both_day_fields_restricted() {
        let c = cron("0 9 1,15 * MON");
        assert!(c.matches(date(2026, 6, 1).at(9, 0, 0, 0))); // Monday and the 1st
        assert!(c.matches(date(2026, 6, 8).at(9, 0, 0, 0))); // Monday
        assert!(c.matches(date(2026, 6, 15).at(9, 0, 0, 0))); // the 15th, a Monday too
        assert!(c.matches(date(2026, 7, 15).at(9, 0, 0, 0))); // Wednesday the 15th
        assert!(!c.matches(date(2026, 7, 16).at(9, 0, 0, 0)));
        // With `*` in day-of-month, only the weekday counts.
        let c = cron("0 9 * * MON");
        assert!(!c.matches(date(2026, 7, 15).at(9, 0, 0, 0)));
    }

    #[test]
    fn sunday_is_0_or_7_and_names_work() {
        let sun = date(2026, 6, 7).at(7, 0, 0, 0);
        assert_eq!(sun.weekday(), jiff::civil::Weekday::Sunday);
        for e in [
            "0 7 * * 0",
            "0 7 * * 7",
            "0 7 * * SUN",
            "0 7 * * sun",
            "0 7 * * FRI-SUN",
        ] {
            assert!(cron(e).matches(sun), "{e}");
        }
        assert!(!cron("0 7 * * MON-FRI").matches(sun));
        assert!(cron("0 7 * JUN *").matches(sun));
    }

    #[test]
    fn six_fields_have_leading_seconds() {
        let c = cron("*/20 59 1 * * *");
        assert!(c.matches(date(2026, 1, 1).at(1, 59, 40, 0)));
        assert!(!c.matches(date(2026, 1, 1).at(1, 59, 30, 0)));
        assert!(!cron("59 1 * * *").matches(date(2026, 1, 1).at(1, 59, 40, 0)));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |s: &str| WallCron::parse(s).unwrap_err().to_string();
        assert!(e("0 24 * * *").contains("hour field \"24\": 24 is out of range 0-23"));
        assert!(e("* * * *").contains("has 4 field(s)"));
        assert!(e("0 9 * * FRI-MON").contains("runs backwards"));
        assert!(e("0 9 * * XYZ").contains("or a name SUN-SAT"));
        assert!(e("0 9 L * *").contains("not supported"));
        assert!(e("*/0 * * * *").contains("step of 0"));
        assert!(e("0 0 30 2 *").contains("never fires"));
        assert!(e("").contains("empty"));
        assert!(e("@fortnightly").contains("@daily"));
    }

    #[test]
    fn leap_day_is_found_years_ahead() {
        let c = cron("0 0 29 2 *");
        let w = c.next_wall_from(date(2025, 3, 1).at(0, 0, 0, 0)).unwrap();
        assert_eq!(w, date(2028, 2, 29).at(0, 0, 0, 0));
    }

    #[test]
    fn materialise_indices_are_stable_as_horizon_grows() {
        let tz = TimeZone::get("America/Sao_Paulo").unwrap();
        let c = cron("0 10 * * FRI");
        let start = date(2026, 11, 1).at(0, 0, 0, 0);
        let short: Vec<_> = materialise(
            &c,
            &tz,
            start,
            None,
            None,
            "2026-11-21T00:00:00Z".parse().unwrap(),
        )
        .collect();
        let long: Vec<_> = materialise(
            &c,
            &tz,
            start,
            None,
            None,
            "2026-12-31T00:00:00Z".parse().unwrap(),
        )
        .collect();
        assert_eq!(short.len(), 3);
        assert_eq!(&long[..3], &short[..]);
        assert!(long.iter().enumerate().all(|(i, o)| o.index as usize == i));
        let counted: Vec<_> = materialise(&c, &tz, start, None, Some(2), Timestamp::MAX).collect();
        assert_eq!(counted.len(), 2);
        let until: Vec<_> = materialise(
            &c,
            &tz,
            start,
            Some(date(2026, 11, 13)),
            None,
            Timestamp::MAX,
        )
        .collect();
        assert_eq!(until.len(), 2);
        assert_eq!(until[1].wall, date(2026, 11, 13).at(10, 0, 0, 0));
    }
}
