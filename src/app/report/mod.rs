//! `disparo report CAMPAIGN`: what a campaign did, gathered from the store for people to look
//! at — the funnel (whole, by locale, by zone: the very lines `status --by` and `export
//! --funnel` print), sends per hour in UTC and on the recipients' own clocks, failures by
//! code, and how long people took to read — and written as one self-contained HTML page
//! ([`html`]) or printed as JSON.
//!
//! Everything comes through the [`Store`] trait: the funnel from [`Store::funnel`], the rest
//! summed from [`Store::report`]'s rows (the rows `export` prints), so the figures are the
//! store's and the page works on SQLite and PostgreSQL alike. See docs/reports.md.

pub mod html;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::Error;
use crate::diag::Problem;
use crate::receipt::{Funnel, FunnelBy};
use crate::store::{CampaignStatus, ReportRow, State, Store, StoreError};

/// A campaign's report, as gathered at `generated_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub campaign: String,
    pub channel: String,
    pub status: CampaignStatus,
    pub status_reason: Option<String>,
    pub generated_at: Timestamp,
    /// Messages by queue state (`status`'s counts).
    pub states: BTreeMap<State, u64>,
    /// Messages the report's rows covered (every state, cancelled ones included).
    pub messages: u64,
    pub funnel: FunnelLine,
    pub by_locale: Vec<FunnelLine>,
    pub by_zone: Vec<FunnelLine>,
    /// Per A/B variant; empty for a campaign without `variants:`.
    pub by_variant: Vec<FunnelLine>,
    pub sends: Sends,
    /// Failures grouped by where they happened and the provider's code, most frequent first.
    pub failures: Vec<FailureGroup>,
    pub time_to_read: ReadTimes,
    /// The chain of follow-ups the campaign belongs to (first step first), each step's funnel
    /// and progress; empty when it neither follows nor is followed.
    pub steps: Vec<crate::app::follow_up::Step>,
}

/// One funnel line with its rates (as `status` and `export --funnel` show them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelLine {
    #[serde(flatten)]
    pub counts: Funnel,
    pub delivered_pct: Option<f64>,
    pub read_pct: Option<f64>,
}

impl From<Funnel> for FunnelLine {
    fn from(counts: Funnel) -> FunnelLine {
        FunnelLine {
            delivered_pct: counts.delivered_pct(),
            read_pct: counts.read_pct(),
            counts,
        }
    }
}

/// When the messages in state `sent` left (their successful attempt's end): per UTC hour, and
/// per hour of the day on each recipient's own clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sends {
    /// Messages counted: those in state `sent` (the funnel's `sent`).
    pub total: u64,
    /// Hours with sends, in order.
    pub per_utc_hour: Vec<HourCount>,
    /// Index 0 is 00:00–00:59 on the recipient's clock.
    pub per_local_hour: [u64; 24],
    /// Sent messages whose zone is unknown to this disparo (not in `per_local_hour`).
    pub without_zone: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourCount {
    /// The hour's first instant.
    pub hour: Timestamp,
    pub count: u64,
}

/// Where a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The send itself failed for good (queue state `failed`): the last attempt's code.
    Send,
    /// Accepted by the provider, reported failed afterwards by a receipt.
    Receipt,
    /// A hard bounce.
    Bounce,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Send => "send",
            Stage::Receipt => "receipt",
            Stage::Bounce => "bounce",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureGroup {
    pub stage: Stage,
    /// The provider's code (`HTTP 400`, `131026`, `5.1.1`); `None` when it gave none.
    pub code: Option<String>,
    pub count: u64,
    /// The first error text of the group, for people (failed sends only; receipts carry a
    /// code).
    pub example: Option<String>,
}

/// How long after the send people read: over every message with both instants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadTimes {
    pub count: u64,
    /// Nearest-rank percentiles, in whole seconds.
    pub median_secs: Option<i64>,
    pub p90_secs: Option<i64>,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub label: &'static str,
    /// `[from_secs, to_secs)`; no `to_secs` for the last.
    pub from_secs: i64,
    pub to_secs: Option<i64>,
    pub count: u64,
}

/// The time-to-read histogram's edges, in seconds, with their labels.
const BUCKETS: [(&str, i64, Option<i64>); 7] = [
    ("under 1 min", 0, Some(60)),
    ("1–5 min", 60, Some(300)),
    ("5–15 min", 300, Some(900)),
    ("15 min–1 h", 900, Some(3600)),
    ("1–6 h", 3600, Some(21_600)),
    ("6–24 h", 21_600, Some(86_400)),
    ("1 day or more", 86_400, None),
];

/// An error text kept as an example at most this long (in characters).
const EXAMPLE_CHARS: usize = 300;

/// Gathers `campaign`'s report from the store, at `now`.
pub fn gather(store: &dyn Store, campaign: &str, now: Timestamp) -> Result<Report, Error> {
    let info = store
        .campaign(campaign)?
        .ok_or_else(|| StoreError::UnknownCampaign(campaign.to_owned()))?;
    let states = store
        .summaries(Some(campaign))?
        .into_iter()
        .next()
        .map(|s| s.counts)
        .unwrap_or_default();
    let whole = store
        .funnel(Some(campaign), FunnelBy::Campaign)?
        .into_iter()
        .next()
        .unwrap_or_else(|| Funnel {
            campaign: campaign.to_owned(),
            ..Funnel::default()
        });
    let lines = |by| -> Result<Vec<FunnelLine>, StoreError> {
        Ok(store
            .funnel(Some(campaign), by)?
            .into_iter()
            .map(FunnelLine::from)
            .collect())
    };
    let by_locale = lines(FunnelBy::Locale)?;
    let by_zone = lines(FunnelBy::Zone)?;
    let mut by_variant = lines(FunnelBy::Variant)?;
    // A campaign without variants has one group, unnamed: nothing to split.
    by_variant.retain(|l| l.counts.group.as_deref().is_some_and(|g| !g.is_empty()));
    let mut acc = Accumulator::default();
    let messages = store.report(campaign, &mut |row| {
        acc.add(&row);
        Ok(())
    })?;
    Ok(Report {
        campaign: info.name,
        channel: info.channel,
        status: info.status,
        status_reason: info.status_reason,
        generated_at: now,
        states,
        messages,
        funnel: whole.into(),
        by_locale,
        by_zone,
        by_variant,
        sends: acc.sends(),
        failures: acc.failures(),
        time_to_read: read_times(acc.read_secs),
        steps: crate::app::follow_up::chain(store, campaign)?,
    })
}

/// What the rows add up to, one row at a time (a campaign's rows are streamed, never held).
#[derive(Default)]
struct Accumulator {
    total: u64,
    per_utc: BTreeMap<i64, u64>,
    per_local: [u64; 24],
    without_zone: u64,
    zones: HashMap<String, Option<TimeZone>>,
    failures: HashMap<(Stage, Option<String>), (u64, Option<String>)>,
    read_secs: Vec<i64>,
}

impl Accumulator {
    fn add(&mut self, row: &ReportRow) {
        if row.state == State::Sent
            && let Some(at) = row.sent_at
        {
            self.total += 1;
            *self
                .per_utc
                .entry(at.as_second().div_euclid(3600) * 3600)
                .or_default() += 1;
            let tz = self
                .zones
                .entry(row.zone.clone())
                .or_insert_with(|| crate::model::zone(&row.zone));
            match tz {
                Some(tz) => self.per_local[usize::from(at.to_zoned(tz.clone()).hour() as u8)] += 1,
                None => self.without_zone += 1,
            }
        }
        if row.state == State::Failed {
            self.failure(
                Stage::Send,
                row.last_code.clone(),
                row.last_error.as_deref(),
            );
        }
        match row.delivery.as_deref() {
            Some("failed") => self.failure(Stage::Receipt, row.delivery_code.clone(), None),
            Some("bounced") => self.failure(Stage::Bounce, row.delivery_code.clone(), None),
            _ => {}
        }
        if let (Some(sent), Some(read)) = (row.sent_at, row.read_at) {
            let ms = read.as_millisecond() - sent.as_millisecond();
            // A provider's clock a little behind ours reads "before it was sent": no time.
            self.read_secs.push(ms.max(0) / 1000);
        }
    }

    fn failure(&mut self, stage: Stage, code: Option<String>, error: Option<&str>) {
        let entry = self.failures.entry((stage, code)).or_default();
        entry.0 += 1;
        if entry.1.is_none() {
            entry.1 = error.map(|e| e.chars().take(EXAMPLE_CHARS).collect());
        }
    }

    fn sends(&self) -> Sends {
        Sends {
            total: self.total,
            per_utc_hour: self
                .per_utc
                .iter()
                .filter_map(|(secs, n)| {
                    Some(HourCount {
                        hour: Timestamp::from_second(*secs).ok()?,
                        count: *n,
                    })
                })
                .collect(),
            per_local_hour: self.per_local,
            without_zone: self.without_zone,
        }
    }

    fn failures(&self) -> Vec<FailureGroup> {
        let mut out: Vec<FailureGroup> = self
            .failures
            .iter()
            .map(|((stage, code), (count, example))| FailureGroup {
                stage: *stage,
                code: code.clone(),
                count: *count,
                example: example.clone(),
            })
            .collect();
        out.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.stage.cmp(&b.stage))
                .then(a.code.cmp(&b.code))
        });
        out
    }
}

/// The median, 90th percentile and histogram of times to read (seconds).
fn read_times(mut secs: Vec<i64>) -> ReadTimes {
    secs.sort_unstable();
    let buckets = BUCKETS
        .iter()
        .map(|(label, from, to)| Bucket {
            label,
            from_secs: *from,
            to_secs: *to,
            count: secs
                .iter()
                .filter(|s| **s >= *from && to.is_none_or(|to| **s < to))
                .count() as u64,
        })
        .collect();
    ReadTimes {
        count: secs.len() as u64,
        median_secs: nearest_rank(&secs, 50),
        p90_secs: nearest_rank(&secs, 90),
        buckets,
    }
}

/// The `p`th percentile of sorted values by nearest rank: the smallest value with at least
/// `p` per cent of the values at or below it.
fn nearest_rank(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Writes `report` as an HTML page at `path`, whole or not at all: into a temporary file
/// beside it, flushed to disk, then renamed over `path`. A failure leaves `path` as it was.
pub fn write_html(report: &Report, path: &Path) -> Result<(), Error> {
    write_atomically(path, html::render(report).as_bytes())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let problem = |what: &str, e: std::io::Error| -> Error {
        Problem::new(format!("cannot write the report: {what}: {e}"))
            .in_file(path)
            .hint("check that the folder exists and is writable, and that FILE is not a folder")
            .into()
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| {
            Error::from(
                Problem::new("the report needs a file name, not a folder")
                    .in_file(path)
                    .hint("write e.g. --html report.html"),
            )
        })?
        .to_string_lossy();
    let (tmp, mut file) = (0..100)
        .find_map(|i| {
            let tmp = dir.join(format!(".{name}.{}.{i}.tmp", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(f) => Some(Ok((tmp, f))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => Some(Err(e)),
            }
        })
        .unwrap_or_else(|| {
            Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "no free temporary name beside it",
            ))
        })
        .map_err(|e| problem("cannot create a temporary file beside it", e))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| problem("writing", e))
        .and_then(|()| {
            drop(file);
            std::fs::rename(&tmp, path).map_err(|e| problem("putting it in place", e))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests;
