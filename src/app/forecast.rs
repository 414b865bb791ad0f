//! The forecast of a preview: totals over every planned message (when they leave, by hour
//! in UTC and local time, why they moved, SMS segments, warnings), counted as the audience is
//! planned so that a million recipients cost no memory per message.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::checks::Checks;
use crate::plan::PlannedRow;

/// Totals over every planned message, for the forecast.
#[derive(Debug, Default)]
pub struct Forecast {
    pub recipients: u64,
    pub messages: u64,
    pub errors: u64,
    pub suppressed: u64,
    pub late_skipped: u64,
    pub moved: BTreeMap<&'static str, u64>,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    /// Messages per UTC hour (hours since the epoch).
    pub per_hour: BTreeMap<i64, u64>,
    pub per_hour_of_day_utc: [u64; 24],
    pub per_hour_of_day_local: [u64; 24],
    pub segments: u64,
    pub multi_segment: u64,
    pub with_warnings: u64,
}

pub const REASONS: [&str; 5] = ["quiet_hours", "weekday", "blackout", "late", "cap"];

impl Forecast {
    pub fn add(&mut self, r: &PlannedRow, checks: &Checks, zone: &TimeZone) {
        if let Some(reason) = &r.skipped {
            if reason.starts_with("suppressed") {
                self.suppressed += 1;
            } else {
                self.late_skipped += 1;
            }
            return;
        }
        self.messages += 1;
        for name in r.reasons.names() {
            *self.moved.entry(name).or_default() += 1;
        }
        self.first = Some(self.first.map_or(r.at, |f| f.min(r.at)));
        self.last = Some(self.last.map_or(r.at, |l| l.max(r.at)));
        let hour = r.at.as_second().div_euclid(3600);
        *self.per_hour.entry(hour).or_default() += 1;
        self.per_hour_of_day_utc[hour.rem_euclid(24) as usize] += 1;
        self.per_hour_of_day_local[r.at.to_zoned(zone.clone()).hour() as usize] += 1;
        if let Some(s) = &checks.segments {
            self.segments += s.segments as u64;
            self.multi_segment += u64::from(s.segments > 1);
        }
        self.with_warnings += u64::from(!checks.warnings.is_empty());
    }

    /// Histogram by actual hour when the sends span two days at most, else by hour of day.
    pub fn by_actual_hour(&self) -> bool {
        match (self.first, self.last) {
            (Some(f), Some(l)) => l.as_second() - f.as_second() <= 48 * 3600,
            _ => true,
        }
    }
}
