//! What the plan pipeline learns about an audience as a whole while it streams it, for
//! `validate`, `preview` and `plan` to say once: the same address under two ids, recipients
//! whose zone was not their own, a one-shot already past for most, the CSV separator used.
//!
//! Counted as the recipients go by; repeated addresses are found in bounded memory
//! ([`addresses`]), so nothing here grows with the audience in RAM.

mod addresses;

use std::path::Path;

use crate::model::audience::CsvDialect;
use crate::model::filter::Filter;
use crate::model::{Campaign, ScheduleKind};
use crate::schedule::LatePolicy;

/// Where a recipient's zone came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZoneSource {
    /// Its own `timezone` field.
    #[default]
    Recipient,
    /// Blank or missing `timezone`: the campaign's zone, else the project's.
    Default,
    /// Blank `timezone`, `zone_from_phone: true`: the only zone of this country code's country.
    Phone(&'static str),
}

impl ZoneSource {
    /// Why the zone is what it is, when it is not the recipient's own (`preview` shows it).
    pub fn note(self, zone: &str) -> Option<String> {
        match self {
            ZoneSource::Recipient => None,
            ZoneSource::Default => Some("zone: default (blank timezone)".to_owned()),
            ZoneSource::Phone(code) => Some(format!("zone {zone} from +{code}")),
        }
    }
}

/// A wall time as campaign files write it: `2026-11-29T21:00`, seconds only when not zero.
pub fn wall(dt: jiff::civil::DateTime) -> String {
    if dt.second() == 0 && dt.subsec_nanosecond() == 0 {
        dt.strftime("%Y-%m-%dT%H:%M").to_string()
    } else {
        dt.strftime("%Y-%m-%dT%H:%M:%S").to_string()
    }
}

/// The audience's file name as problems name it (`a.csv`).
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    )
}

/// Pairs of recipients with one address kept in full; the rest are counted.
const DUPLICATES_SHOWN: usize = 5;

/// The audience-wide facts of one run of the pipeline.
#[derive(Debug, Default)]
pub struct Audit {
    /// Every normalised address so far, for repeats under another id.
    addresses: addresses::Addresses,
    /// (row, id, first row, address) of the first repeats; set by [`Audit::finish`].
    duplicates: Vec<addresses::Repeat>,
    /// How many recipients repeat an earlier one's address; set by [`Audit::finish`].
    pub duplicate_count: u64,
    /// The row after which repeated addresses may have gone unseen (a scratch file in TMPDIR
    /// failed); set by [`Audit::finish`].
    pub duplicates_missing_after: Option<u64>,
    /// Recipients whose zone is the default because their `timezone` is blank.
    pub zone_fallback: u64,
    /// Recipients whose zone came from their phone's country code.
    pub zone_from_phone: u64,
    /// Recipients of a one-shot `at` planned, and those of them already past at plan time.
    pub one_shot: u64,
    pub late: u64,
    /// How a CSV audience was read, and whether the campaign's `delimiter` said so.
    pub csv: Option<(CsvDialect, bool)>,
    /// With `where:`: recipients each top-level clause removed (the first clause a
    /// recipient fails takes it), in the clauses' order.
    pub filtered: Vec<u64>,
}

impl Audit {
    /// Records one planned recipient.
    pub fn recipient(&mut self, row: u64, id: &str, address: &str, zone: ZoneSource) {
        match zone {
            ZoneSource::Recipient => {}
            ZoneSource::Default => self.zone_fallback += 1,
            ZoneSource::Phone(_) => self.zone_from_phone += 1,
        }
        self.addresses.add(row, id, address, DUPLICATES_SHOWN);
    }

    /// Called once the audience has ended: settles what needed the whole audience (the
    /// repeated addresses).
    pub fn finish(&mut self) {
        let (repeats, count, missing_after) = self.addresses.finish(DUPLICATES_SHOWN);
        self.duplicates = repeats;
        self.duplicate_count = count;
        self.duplicates_missing_after = missing_after;
    }

    /// Counts a recipient `where:` removed, against the clause that removed it.
    pub fn filtered_out(&mut self, clause: usize, clauses: usize) {
        if self.filtered.len() < clauses {
            self.filtered.resize(clauses, 0);
        }
        self.filtered[clause] += 1;
    }

    /// How many recipients `where:` removed in all.
    pub fn filtered_total(&self) -> u64 {
        self.filtered.iter().sum()
    }

    /// Each clause of `filter` as written, with how many recipients it removed.
    pub fn removed_by<'f>(&self, filter: &'f Filter) -> Vec<(&'f str, u64)> {
        filter
            .clauses()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.text.as_str(), self.filtered.get(i).copied().unwrap_or(0)))
            .collect()
    }

    /// What the campaign's `where:` did, in one line: recipients kept, and how many each
    /// clause removed (preview, validate). `read`: recipients read from the audience.
    pub fn filter_line(&self, campaign: &Campaign, read: u64) -> Option<String> {
        let f = campaign.filter.as_ref()?;
        let removed = self.filtered_total();
        let by: Vec<String> = self
            .removed_by(f)
            .into_iter()
            .map(|(clause, n)| format!("{n} by {clause}"))
            .collect();
        Some(format!(
            "where: {} of {read} recipient(s) kept; removed {removed}: {}",
            read.saturating_sub(removed),
            by.join(", ")
        ))
    }

    /// Warnings about the audience as a whole, each a sentence naming the campaign.
    pub fn warnings(&self, campaign: &Campaign, address_field: &str) -> Vec<String> {
        let mut out = Vec::new();
        let file = file_name(&campaign.audience);
        for (row, id, first, address) in &self.duplicates {
            out.push(format!(
                "{}: {file}: row {row} ({id}) has the same {address_field} as row {first}: {address}; both get the message (ids are the identity; the frequency cap counts per address)",
                campaign.name
            ));
        }
        let more = self.duplicate_count - self.duplicates.len() as u64;
        if more > 0 {
            out.push(format!(
                "{}: {file}: {more} more recipient(s) with an address an earlier row has",
                campaign.name
            ));
        }
        if let Some(row) = self.duplicates_missing_after {
            out.push(format!(
                "{}: {file}: repeated addresses after row {row} may be missing: a scratch file in {} failed (full?); free space there or point TMPDIR elsewhere to check them all",
                campaign.name,
                std::env::temp_dir().display()
            ));
        }
        if let ScheduleKind::At(at) = campaign.schedule
            && self.late * 2 > self.one_shot
        {
            let does = match campaign.late {
                LatePolicy::NextDay => match campaign.late_until {
                    Some(u) => format!(
                        "late: next_day moves them to the same time on the next allowed day, and skips those it would move past late_until {}",
                        wall(u)
                    ),
                    None => "late: next_day moves them to the same time on the next allowed day, however late (set `late_until` to bound it)".to_owned(),
                },
                LatePolicy::SendNow => "late: send_now sends them at once (outside quiet hours)".to_owned(),
                LatePolicy::Skip => "late: skip stores them as skipped, never sent".to_owned(),
            };
            out.push(format!(
                "{}: the send time {} has already passed for {} of {} recipient(s); {does}",
                campaign.name,
                wall(at),
                self.late,
                self.one_shot
            ));
        }
        out
    }

    /// Facts worth a line that are not problems: the CSV separator, when not a plain comma.
    pub fn notes(&self, audience: &Path) -> Vec<String> {
        let name = file_name(audience);
        match self.csv {
            Some((d, true)) => vec![format!(
                "{name}: columns separated by {}, as the campaign's `delimiter` says",
                d.delimiter_name()
            )],
            Some((d, false)) if d.delimiter != b',' => vec![format!(
                "{name}: columns separated by {}, detected from the header line",
                d.delimiter_name()
            )],
            _ => Vec::new(),
        }
    }
}

/// The forecast's line about zones that were not the recipients' own, if any.
pub fn zone_line(a: &Audit, default_zone: &str) -> Option<String> {
    let mut parts = Vec::new();
    if a.zone_fallback > 0 {
        parts.push(format!(
            "{} recipient(s) with no timezone got {default_zone}",
            a.zone_fallback
        ));
    }
    if a.zone_from_phone > 0 {
        parts.push(format!(
            "{} took their phone's country zone",
            a.zone_from_phone
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}
