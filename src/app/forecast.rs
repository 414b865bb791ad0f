//! The forecast of a preview: totals over every planned message (when they leave, by hour
//! in UTC and local time, why they moved, SMS segments, warnings), counted as the audience is
//! planned so that a million recipients cost no memory per message; and, for a channel with a
//! warm-up ramp, the ramp days its messages take ([`RampOutlook`]).

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::checks::Checks;
use crate::plan::PlannedRow;
use crate::ramp::forecast::{RampForecast, Start, forecast};
use crate::ramp::{Ramp, RampUsage, thousands};

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

/// What a campaign's channel ramp (`ramp:`) does to its messages, for the forecast: how many
/// go on each ramp day, from where the channel stands (its first send and what it used of the
/// current ramp day, when a database knows them; else from its first day).
#[derive(Debug, Clone, PartialEq)]
pub struct RampOutlook {
    pub channel: String,
    pub ramp: Ramp,
    pub start: Start,
    pub days: RampForecast,
}

impl RampOutlook {
    /// The outlook of the messages `f` counted, on `channel` under `ramp`, at `now`;
    /// `usage` is what the store counted for the channel, if there is a database.
    pub fn of(
        channel: &str,
        ramp: &Ramp,
        usage: Option<&RampUsage>,
        now: Timestamp,
        f: &Forecast,
    ) -> RampOutlook {
        let start = Start {
            now,
            first_send: usage.and_then(|u| u.first_send),
            used: usage.map_or(0, |u| u.sent + u.held),
        };
        // Messages by the hour they fall due; the first at its exact instant (a ramp's first
        // day starts with it when the channel has sent nothing yet).
        let arrivals: Vec<(Timestamp, u64)> = f
            .per_hour
            .iter()
            .map(|(h, n)| {
                let hour = Timestamp::from_second(h * 3600).unwrap_or(Timestamp::UNIX_EPOCH);
                (f.first.map_or(hour, |first| hour.max(first)), *n)
            })
            .collect();
        RampOutlook {
            channel: channel.to_owned(),
            ramp: ramp.clone(),
            days: forecast(ramp, &start, &arrivals),
            start,
        }
    }

    /// The ramp is over for the channel: nothing limits it.
    pub fn over(&self) -> bool {
        self.days.today >= self.ramp.per_day().len()
    }

    /// One line: `whatsapp sends at most 1000, 5000, 20000/day: these 26,000 messages take 3
    /// days (day 1: 1,000 · day 2: 5,000 · day 3: 20,000)`.
    pub fn text(&self) -> String {
        let ramp = self.ramp.describe();
        if self.over() {
            return format!("{}'s ramp ({ramp}) is over: no daily limit", self.channel);
        }
        let n = self.days.messages();
        let mut parts: Vec<String> = self
            .days
            .days
            .iter()
            .map(|d| {
                let used = if d.used > 0 {
                    format!(
                        " ({} of {} already used)",
                        thousands(d.used),
                        thousands(d.budget)
                    )
                } else {
                    String::new()
                };
                format!("day {}: {}{used}", d.day + 1, thousands(d.messages))
            })
            .collect();
        // The current day, spent before this campaign's turn.
        let today = self.days.today;
        if self.start.used > 0 && self.days.days.first().is_none_or(|d| d.day != today) {
            let budget = self.ramp.budget(today).unwrap_or(0);
            parts.insert(
                0,
                format!(
                    "day {}: 0 ({} of {} already used)",
                    today + 1,
                    thousands(self.start.used.min(budget)),
                    thousands(budget)
                ),
            );
        }
        if self.days.after > 0 {
            parts.push(format!(
                "from day {}, ramp over: {}",
                self.ramp.per_day().len() + 1,
                thousands(self.days.after)
            ));
        }
        let k = self.days.days_needed(&self.ramp);
        let now = match self.start.first_send {
            Some(_) => format!(" (ramp day {} now)", self.days.today + 1),
            None => String::new(),
        };
        format!(
            "{} sends at most {ramp}{now}: these {} message(s) take {k} day(s) ({})",
            self.channel,
            thousands(n),
            parts.join(" · ")
        )
    }

    /// The outlook as data (the `ramp` object of `preview --forecast --format json`).
    pub fn json(&self) -> serde_json::Value {
        let days: Vec<serde_json::Value> = self
            .days
            .days
            .iter()
            .map(|d| {
                serde_json::json!({
                    "day": d.day + 1,
                    "starts": d.starts.to_string(),
                    "budget": d.budget,
                    "used": d.used,
                    "messages": d.messages,
                })
            })
            .collect();
        serde_json::json!({
            "channel": self.channel,
            "per_day": self.ramp.per_day(),
            "first_send": self.start.first_send.map(|t| t.to_string()),
            "day_now": self.days.today + 1,
            "used_today": self.start.used,
            "over": self.over(),
            "days": days,
            "after_ramp": self.days.after,
            "ramp_over_at": self.days.over_at.to_string(),
            "days_needed": self.days.days_needed(&self.ramp),
        })
    }
}
