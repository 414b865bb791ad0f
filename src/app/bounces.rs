//! `disparo bounces import`: bounces and complaints read from mailboxes
//! ([`super::mailbox`]) by [`crate::receipt::email`] and recorded as receipts, a batch per
//! transaction. Importing the same mail again records nothing new (each receipt is stored
//! once per its report and recipient), so a cron job may read a whole mailbox every time.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use jiff::Timestamp;
use serde::Serialize;

use super::Error;
use super::mailbox::{Mail, Mailbox};
use crate::receipt::email::{self, Parsed};
use crate::receipt::{Applied, Effect, Event, Receipt};
use crate::store::Store;

/// Receipts per transaction: one durable commit for this many.
pub const BATCH: usize = 1_000;

/// What became of one message (one entry per receipt; a message that gave none is one entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    HardBounce,
    SoftBounce,
    Complaint,
    /// Readable, but not a bounce or a complaint.
    Skipped,
    /// Not readable as mail, or a report naming nobody: see `detail`.
    Unreadable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::HardBounce => "hard_bounce",
            Outcome::SoftBounce => "soft_bounce",
            Outcome::Complaint => "complaint",
            Outcome::Skipped => "skipped",
            Outcome::Unreadable => "unreadable",
        }
    }
}

/// One line of the import's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Where the message was (file, mbox message and line, Maildir file).
    pub location: String,
    pub outcome: Outcome,
    pub address: Option<String>,
    /// The status (`5.1.1`) or feedback type (`abuse`).
    pub code: Option<String>,
    /// The returned message's `Message-ID` (the provider id of our message).
    pub provider_id: Option<String>,
    pub reference: Option<String>,
    pub occurred_at: Option<Timestamp>,
    /// What the store did with the receipt; `None` in a dry run or without a receipt.
    pub applied: Option<Applied>,
    /// Whether a message of ours was found for it (`None` when not known: a dry run, a
    /// receipt already imported, or none).
    pub matched: Option<bool>,
    /// The diagnostic for people, why it was skipped, or why it could not be read.
    pub detail: Option<String>,
}

/// What an import did, for its last line and its exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub messages: u64,
    pub hard_bounces: u64,
    pub soft_bounces: u64,
    pub complaints: u64,
    /// Receipts that found the message they report on.
    pub matched: u64,
    /// Receipts that found no message of ours (their address is suppressed all the same).
    pub unmatched: u64,
    /// Receipts imported before: nothing changed.
    pub duplicates: u64,
    pub skipped: u64,
    /// Why messages were skipped, with how many each.
    pub skipped_by_reason: BTreeMap<String, u64>,
    pub unreadable: u64,
    /// Addresses that were not on the suppression list and are now.
    pub newly_suppressed: u64,
}

/// How to import.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Read and report; the store is not touched (and may be `None`).
    pub dry_run: bool,
    /// Receipts per transaction ([`BATCH`]).
    pub batch: usize,
    /// When a report that carries no date happened.
    pub now: Timestamp,
}

/// Every path checked, before anything is read: a typo in the last one imports nothing, and
/// every bad path is named.
pub fn open(paths: &[PathBuf]) -> Result<Vec<Mailbox>, Error> {
    let mut problems = Vec::new();
    let mut boxes = Vec::new();
    for p in paths {
        match Mailbox::open(p) {
            Ok(m) => boxes.push(m),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(boxes)
    } else {
        Err(Error::Invalid(problems))
    }
}

/// Reads the mailboxes in order, handing each entry to `each` once its batch is recorded.
pub fn import(
    store: Option<&dyn Store>,
    mailboxes: &[Mailbox],
    options: Options,
    each: &mut dyn FnMut(&Entry) -> Result<(), Error>,
) -> Result<Summary, Error> {
    let store = if options.dry_run { None } else { store };
    if !options.dry_run && store.is_none() {
        return Err(Error::Internal("bounces import without a store".into()));
    }
    let mut run = Import {
        store,
        options,
        summary: Summary::default(),
        pending: Vec::new(),
        receipts: Vec::new(),
    };
    for b in mailboxes {
        b.read(&mut |mail| run.message(mail, each))?;
    }
    run.flush(each)?;
    Ok(run.summary)
}

/// An import under way: entries waiting for their batch to be recorded.
struct Import<'s> {
    store: Option<&'s dyn Store>,
    options: Options,
    summary: Summary,
    /// Entries in order, with the index of their receipt in `receipts`.
    pending: Vec<(Entry, Option<usize>)>,
    receipts: Vec<Receipt>,
}

impl Import<'_> {
    fn message(
        &mut self,
        mail: Mail,
        each: &mut dyn FnMut(&Entry) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.summary.messages += 1;
        let parsed = mail
            .data
            .and_then(|data| email::parse(&data, self.options.now));
        match parsed {
            Ok(Parsed::Receipts(receipts)) => {
                for r in receipts {
                    let outcome = match r.event {
                        Event::Bounced => {
                            self.summary.hard_bounces += 1;
                            Outcome::HardBounce
                        }
                        Event::SoftBounce => {
                            self.summary.soft_bounces += 1;
                            Outcome::SoftBounce
                        }
                        _ => {
                            self.summary.complaints += 1;
                            Outcome::Complaint
                        }
                    };
                    let entry = Entry {
                        location: mail.location.clone(),
                        outcome,
                        address: r.target.address.clone(),
                        code: r.code.clone(),
                        provider_id: r.target.provider_id.clone(),
                        reference: r.target.reference.as_ref().map(ToString::to_string),
                        occurred_at: Some(r.occurred_at),
                        applied: None,
                        matched: None,
                        detail: r.detail.clone(),
                    };
                    self.pending.push((entry, Some(self.receipts.len())));
                    self.receipts.push(r);
                }
            }
            Ok(Parsed::Skipped(why)) => {
                self.summary.skipped += 1;
                *self
                    .summary
                    .skipped_by_reason
                    .entry(why.clone())
                    .or_default() += 1;
                self.pending
                    .push((bare(mail.location, Outcome::Skipped, why), None));
            }
            Err(why) => {
                self.summary.unreadable += 1;
                self.pending
                    .push((bare(mail.location, Outcome::Unreadable, why), None));
            }
        }
        if self.receipts.len() >= self.options.batch.max(1) {
            self.flush(each)?;
        }
        Ok(())
    }

    /// Records the batch in one transaction and hands its entries on.
    fn flush(&mut self, each: &mut dyn FnMut(&Entry) -> Result<(), Error>) -> Result<(), Error> {
        let applied = match self.store {
            Some(store) if !self.receipts.is_empty() => {
                let suppressing: Vec<&str> = self
                    .receipts
                    .iter()
                    .filter(|r| matches!(r.effect, Effect::Suppress { .. }))
                    .filter_map(|r| r.target.address.as_deref())
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                let before = store.suppressed_among(&suppressing)?;
                let applied = store.record_receipts(&self.receipts, self.options.now)?;
                let after = store.suppressed_among(&suppressing)?;
                self.summary.newly_suppressed += after.difference(&before).count() as u64;
                Some(applied)
            }
            _ => None,
        };
        for (mut entry, index) in self.pending.drain(..) {
            if let (Some(applied), Some(i)) = (&applied, index)
                && let (Some(a), Some(r)) = (applied.get(i), self.receipts.get(i))
            {
                let names_message = r.target.provider_id.is_some() || r.target.reference.is_some();
                let matched = match a {
                    Applied::Duplicate => None,
                    Applied::Unmatched => Some(false),
                    Applied::Recorded | Applied::Stale => Some(names_message),
                };
                match matched {
                    Some(true) => self.summary.matched += 1,
                    Some(false) => self.summary.unmatched += 1,
                    None => self.summary.duplicates += 1,
                }
                entry.applied = Some(*a);
                entry.matched = matched;
            }
            each(&entry)?;
        }
        self.receipts.clear();
        Ok(())
    }
}

fn bare(location: String, outcome: Outcome, detail: String) -> Entry {
    Entry {
        location,
        outcome,
        address: None,
        code: None,
        provider_id: None,
        reference: None,
        occurred_at: None,
        applied: None,
        matched: None,
        detail: Some(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Access, Location};

    fn dsn(i: usize, status: &str) -> String {
        format!(
            "From MAILER-DAEMON Mon Nov 30 12:00:06 2026\nMessage-ID: <b{i}@mta.example>\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mta.example\n\nFinal-Recipient: rfc822; r{i}@example.com\nAction: failed\nStatus: {status}\n--b--\n\n"
        )
    }

    /// Batches smaller than the mailbox: several transactions, entries still in mailbox
    /// order, each with what its batch did; a second import finds every receipt stored.
    #[test]
    fn batches_keep_the_order_and_a_second_import_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::store::open(&Location::Sqlite(dir.path().join("d.db")), Access::Create).unwrap();
        let mut mbox = String::new();
        for i in 0..5 {
            mbox.push_str(&dsn(i, if i == 2 { "4.2.2" } else { "5.1.1" }));
        }
        mbox.push_str("From x Mon Nov 30 12:00:06 2026\nSubject: hello\n\nhi\n");
        let path = dir.path().join("mbox");
        std::fs::write(&path, mbox).unwrap();
        let boxes = open(std::slice::from_ref(&path)).unwrap();
        let options = Options {
            dry_run: false,
            batch: 2,
            now: "2026-11-30T18:00:00Z".parse().unwrap(),
        };
        let mut seen = Vec::new();
        let summary = import(Some(store.as_ref()), &boxes, options, &mut |e| {
            seen.push((e.address.clone(), e.outcome, e.applied));
            Ok(())
        })
        .unwrap();
        let addresses: Vec<_> = seen.iter().map(|s| s.0.as_deref()).collect();
        assert_eq!(
            addresses,
            [
                Some("r0@example.com"),
                Some("r1@example.com"),
                Some("r2@example.com"),
                Some("r3@example.com"),
                Some("r4@example.com"),
                None
            ]
        );
        assert_eq!(seen[2].1, Outcome::SoftBounce);
        assert_eq!(seen[5].1, Outcome::Skipped);
        // No message of ours is named: stored, the address suppressed all the same.
        assert!(seen[..5].iter().all(|s| s.2 == Some(Applied::Recorded)));
        assert_eq!(
            (summary.messages, summary.hard_bounces, summary.soft_bounces),
            (6, 4, 1)
        );
        assert_eq!((summary.matched, summary.unmatched), (0, 5));
        assert_eq!((summary.skipped, summary.newly_suppressed), (1, 4));
        assert!(store.is_suppressed("r0@example.com").unwrap());
        assert!(!store.is_suppressed("r2@example.com").unwrap());

        let again = import(Some(store.as_ref()), &boxes, options, &mut |_| Ok(())).unwrap();
        assert_eq!((again.duplicates, again.newly_suppressed), (5, 0));
        assert_eq!((again.matched, again.unmatched), (0, 0));
    }

    #[test]
    fn a_dry_run_touches_no_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.eml");
        std::fs::write(&path, dsn(0, "5.1.1").split_once('\n').unwrap().1).unwrap();
        let boxes = open(std::slice::from_ref(&path)).unwrap();
        let options = Options {
            dry_run: true,
            batch: BATCH,
            now: jiff::Timestamp::UNIX_EPOCH,
        };
        let mut rows = Vec::new();
        let s = import(None, &boxes, options, &mut |e| {
            rows.push(e.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!((s.hard_bounces, s.matched, s.duplicates), (1, 0, 0));
        assert_eq!(rows[0].applied, None);
        assert_eq!(rows[0].location, path.display().to_string());
    }
}
