//! Planning campaigns into the store: every recipient's messages computed and stored in one
//! transaction per campaign. The audience is parsed and rendered on one thread while the store
//! writes on another, so neither waits for the other. Rows cross between them in batches (one
//! channel operation per few hundred rows, not per row), already converted to what the store
//! writes.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, mpsc};

use jiff::{SignedDuration, Timestamp};

use super::Error;
use super::db::Database;
use crate::diag::Problem;
use crate::model::{Campaign, Project};
use crate::plan::{PlanOptions, Planner, Unplanned};
use crate::store::{
    Access, MessageRef, PackedText, PlanBatch, PlanSource, PlanStats, ReleaseStats, Store,
};

/// What a front end shows while campaigns are planned (the CLI draws a progress bar).
pub trait Progress {
    /// Planning `campaign` from `audience` starts; `bytes_read` grows as the file is read.
    fn start(&mut self, campaign: &str, audience: &Path, bytes_read: Arc<AtomicU64>);
    /// `messages` more were planned.
    fn advance(&mut self, messages: u64);
    fn finish(&mut self);
}

/// No progress shown (tests, `--quiet`, JSON output).
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: &str, _: &Path, _: Arc<AtomicU64>) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// How campaigns are planned.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The instant the plan is made at (`--now` may pin it).
    pub now: Timestamp,
    /// How far ahead recurring occurrences are stored when the campaign sets no end.
    pub horizon: SignedDuration,
    /// Store recipients with problems as `skipped` (with the reason) instead of refusing.
    pub skip_invalid: bool,
}

/// What a dry run found for one campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub campaign: String,
    pub messages: u64,
    pub skipped: u64,
    pub invalid: usize,
    /// Audience-wide warnings (the same address twice, a one-shot mostly late).
    pub warnings: Vec<String>,
}

/// What storing one campaign's plan did.
#[derive(Debug)]
pub struct Stored {
    pub campaign: String,
    pub stats: PlanStats,
    /// Recipients stored as `skipped` (`skip_invalid`), with their problem.
    pub skipped: Vec<Problem>,
    /// Audience-wide warnings (the same address twice, a one-shot mostly late).
    pub warnings: Vec<String>,
    /// A follow-up campaign's rule: its plan stored drafts, one per recipient, that become
    /// messages as the parent's messages are decided.
    pub follows: Option<crate::follow_up::FollowRule>,
}

/// Reads and checks every named campaign (names or files) before anything is planned: a bad
/// one stores nothing, and creates no database.
pub fn load(project: &Project, names: &[String]) -> Result<Vec<Campaign>, Error> {
    let mut files = Vec::new();
    for name in names {
        files.push(project.find_campaign(name)?);
    }
    let mut campaigns = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        match project.load_campaign(file) {
            Ok(c) => {
                problems.extend(super::validate::follow_up_problems(project, &c));
                campaigns.push(c);
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(campaigns)
    } else {
        Err(Error::Invalid(problems))
    }
}

/// The planner of `campaign`, with what the store knows: suppressions, and the start of a
/// recurring campaign planned before (occurrence numbers stay stable across re-plans).
fn prepare(
    project: &Project,
    store: Option<&dyn Store>,
    campaign: Campaign,
    settings: &Settings,
) -> Result<Planner, Error> {
    let mut opts = PlanOptions::new(settings.now);
    opts.horizon = settings.horizon;
    if let Some(store) = store {
        opts.suppressed = store
            .suppressions()?
            .into_iter()
            .map(|s| s.address)
            .collect();
        opts.recurrence_start = store
            .recurrence_start(&campaign.name)?
            .and_then(|s| s.parse().ok());
    }
    Ok(Planner::prepare(project, campaign, opts)?)
}

/// Plans `campaigns` without storing anything (the database is read if it exists, never
/// created).
pub fn dry_run(
    project: &Project,
    db: &Database,
    campaigns: Vec<Campaign>,
    settings: &Settings,
    progress: &mut dyn Progress,
) -> Result<Vec<Counted>, Error> {
    let store = db.open_if_exists(Access::ReadOnly)?;
    let mut out = Vec::new();
    for campaign in campaigns {
        let planner = prepare(project, store.as_deref(), campaign, settings)?;
        out.push(check(planner, settings.skip_invalid, progress)?);
    }
    Ok(out)
}

/// Plans and stores `campaigns`, one transaction each; `on_stored` hears of each as it is
/// committed. So that `plan a b` is all or nothing for bad input, every campaign but the first
/// is planned once without storing (the first is checked as it is stored, and rolled back on
/// any problem); only then is anything stored, and the database created if needed. Then the
/// follow-ups whose parents are decided at `settings.now` are released (what that did is
/// returned): a plan made after the parent's receipts came in sees them at once.
pub fn store(
    project: &Project,
    db: &Database,
    campaigns: Vec<Campaign>,
    settings: &Settings,
    progress: &mut dyn Progress,
    on_stored: &mut dyn FnMut(Stored),
) -> Result<ReleaseStats, Error> {
    let store = db.open_if_exists(Access::Write)?;
    for campaign in campaigns.iter().skip(1) {
        check(
            prepare(project, store.as_deref(), campaign.clone(), settings)?,
            settings.skip_invalid,
            progress,
        )?;
    }
    let store = match store {
        Some(s) => s,
        None => db.open(Access::Create)?,
    };
    let names: Vec<String> = campaigns.iter().map(|c| c.name.clone()).collect();
    for (i, campaign) in campaigns.into_iter().enumerate() {
        let planned =
            prepare(project, Some(store.as_ref()), campaign, settings).and_then(|planner| {
                store_one(store.as_ref(), planner, settings.skip_invalid, progress)
            });
        match planned {
            Ok(stored) => on_stored(stored),
            Err(e) if names.len() > 1 => {
                return Err(half_done(e, &names[..i], &names[i], &names[i + 1..]));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(store.release_follow_ups(settings.now)?)
}

/// What the planning thread sends the store thread.
enum Planned {
    /// Messages ready to store; the batch comes back through [`Feed::spent`] to be refilled.
    Rows(PlanBatch),
    /// The audience had this many problems (without `--skip-invalid`): store nothing.
    Failed(usize),
    /// Every message was sent. Without it, a closed channel means the planning thread died
    /// (a bug): the plan must not be committed with only the messages that came before.
    Done,
}

/// Rows per batch: large enough that the channel costs nothing per row, small enough that
/// the bounded queue ([`QUEUED_BATCHES`] of them) holds a few MB at most.
const BATCH: usize = 512;
const QUEUED_BATCHES: usize = 16;
/// Text bytes a batch starts with (about 500 per message on a typical campaign).
const BATCH_TEXT: usize = BATCH * 512;

/// Feeds the planning thread's batches to the store, one message at a time, and hands each
/// finished batch back for reuse.
struct Feed<'p> {
    rx: Option<mpsc::Receiver<Planned>>,
    spent: mpsc::Sender<PlanBatch>,
    current: PlanBatch,
    next: usize,
    progress: &'p mut dyn Progress,
}

impl PlanSource for Feed<'_> {
    fn next_message(&mut self) -> Option<Result<MessageRef<'_>, String>> {
        while self.next >= self.current.len() {
            let rx = self.rx.as_ref()?;
            match rx.recv() {
                Ok(Planned::Rows(batch)) => {
                    self.progress.advance(batch.len() as u64);
                    let spent = std::mem::replace(&mut self.current, batch);
                    self.next = 0;
                    // The planning thread may have finished: then the batch is just dropped.
                    let _ = self.spent.send(spent);
                }
                Ok(Planned::Failed(problems)) => {
                    self.rx = None;
                    return Some(Err(format!(
                        "{problems} problem(s) in the campaign; nothing was stored"
                    )));
                }
                Ok(Planned::Done) => {
                    self.rx = None;
                    return None;
                }
                Err(mpsc::RecvError) => {
                    self.rx = None;
                    return Some(Err(
                        "the planning thread stopped before the end of the audience; nothing was stored".into(),
                    ));
                }
            }
        }
        let m = self.current.get(self.next)?;
        self.next += 1;
        Some(Ok(m))
    }
}

/// Packs a recipient that could not be planned as a `skipped` message (`--skip-invalid`).
fn pack_invalid(batch: &mut PlanBatch, recipient: &str, problem: &Problem) {
    let packed: Result<(), std::convert::Infallible> =
        batch.push_with(0, jiff::Timestamp::UNIX_EPOCH, |w| {
            let skipped = w.join(["invalid: ", &problem.to_string()], "");
            Ok(PackedText {
                recipient: w.str(recipient),
                address: w.str(""),
                zone: w.str(""),
                locale: None,
                reasons: w.str(""),
                content: w.str(r#"{"body":""}"#),
                vars: w.str("{}"),
                skipped: Some(skipped),
            })
        });
    let Ok(()) = packed;
}

/// The error of a plan that stopped at campaign `failed`, saying what is stored and what not.
fn half_done(e: Error, stored: &[String], failed: &str, rest: &[String]) -> Error {
    let mut not = vec![format!("{failed} (rolled back)")];
    not.extend(rest.iter().cloned());
    let summary = format!(
        "stored: {}; not stored: {}",
        if stored.is_empty() {
            "none".to_owned()
        } else {
            stored.join(", ")
        },
        not.join(", ")
    );
    let hint = "each campaign's plan is its own transaction; fix the cause and run the same `disparo plan` again (re-planning a stored campaign changes nothing that is already right)";
    match e {
        Error::Invalid(mut problems) => {
            problems.push(Problem::new(format!("plan stopped at {failed}: {summary}")).hint(hint));
            Error::Invalid(problems)
        }
        Error::Internal(m) => Error::Internal(format!(
            "{m}\nplan stopped at {failed}: {summary}\n  hint: {hint}"
        )),
    }
}

/// Plans `planner`'s campaign without storing it: the counts of messages, skipped and
/// invalid recipients, or every problem (unless `skip_invalid`).
fn check(
    mut planner: Planner,
    skip_invalid: bool,
    progress: &mut dyn Progress,
) -> Result<Counted, Error> {
    let name = planner.record().name;
    let bytes = Arc::new(AtomicU64::new(0));
    progress.start(&name, &planner.campaign.audience, bytes.clone());
    planner.set_progress(bytes);
    let (mut messages, mut skipped, mut problems) = (0u64, 0u64, Vec::new());
    let mut since = 0u64;
    let ran = planner.run(&mut |item| {
        match item {
            Ok(r) if r.skipped.is_some() => skipped += 1,
            Ok(_) => messages += 1,
            Err(u) => problems.push(u.problem),
        }
        since += 1;
        if since == BATCH as u64 {
            progress.advance(since);
            since = 0;
        }
        std::ops::ControlFlow::Continue(())
    });
    progress.finish();
    ran?;
    if !problems.is_empty() && !skip_invalid {
        problems.push(nothing_stored(problems.len(), &name));
        return Err(Error::Invalid(problems));
    }
    let warnings = planner
        .audit()
        .warnings(&planner.campaign, &planner.settings.address_field);
    Ok(Counted {
        campaign: name,
        messages,
        skipped,
        invalid: problems.len(),
        warnings,
    })
}

/// The last line of a refused plan.
fn nothing_stored(problems: usize, campaign: &str) -> Problem {
    Problem::new(format!(
        "{problems} problem(s) in campaign {campaign}; nothing was stored"
    ))
    .hint("fix them, or plan with --skip-invalid to store those recipients as `skipped` with the reason")
}

/// Plans one campaign and stores it, in one transaction.
fn store_one(
    store: &dyn Store,
    mut planner: Planner,
    skip_invalid: bool,
    progress: &mut dyn Progress,
) -> Result<Stored, Error> {
    let record = planner.record();
    let follows = record.rules.follows.clone();
    let name = record.name.clone();
    let bytes = Arc::new(AtomicU64::new(0));
    progress.start(&name, &planner.campaign.audience, bytes.clone());
    planner.set_progress(bytes);
    let (tx, rx) = mpsc::sync_channel::<Planned>(QUEUED_BATCHES);
    let (spent_tx, spent_rx) = mpsc::channel::<PlanBatch>();
    let feed = Feed {
        rx: Some(rx),
        spent: spent_tx,
        current: PlanBatch::default(),
        next: 0,
        progress,
    };
    // `feed` (and with it the receiving end) is owned by the scope's closure: if the
    // store panics, unwinding drops it, so a producer blocked on a full queue wakes up
    // and the scope can join it.
    let (planned, saved, feed) = std::thread::scope(move |s| {
        let mut feed = feed;
        let producer = s.spawn(move || {
            let fresh = || PlanBatch::with_capacity(BATCH, BATCH_TEXT);
            let mut batch = fresh();
            let mut problems = Vec::new();
            let mut failed = false;
            let mut stopped = false;
            let ran = planner.run(&mut |item| {
                // The conversion (JSON text, reasons) happens here, off the store's thread.
                match item {
                    Ok(row) => {
                        if let Err(e) = row.pack_into(&mut batch) {
                            problems.push(Problem::new(format!(
                                "recipient {}: could not encode its message as JSON: {e}",
                                row.recipient
                            )));
                            failed = true;
                        }
                    }
                    Err(Unplanned {
                        recipient: Some(id),
                        problem,
                        storable,
                    }) if skip_invalid => {
                        // A repeated id is only reported: its identity (and message)
                        // belongs to the recipient that came first.
                        if storable {
                            pack_invalid(&mut batch, &id, &problem);
                        }
                        problems.push(problem);
                    }
                    Err(u) => {
                        failed = true;
                        problems.push(u.problem);
                    }
                }
                if batch.len() < BATCH {
                    return std::ops::ControlFlow::Continue(());
                }
                let mut next = spent_rx.try_recv().unwrap_or_else(|_| fresh());
                next.clear();
                let full = std::mem::replace(&mut batch, next);
                if tx.send(Planned::Rows(full)).is_ok() {
                    std::ops::ControlFlow::Continue(())
                } else {
                    stopped = true;
                    std::ops::ControlFlow::Break(())
                }
            });
            if !stopped && !batch.is_empty() {
                let _ = tx.send(Planned::Rows(batch));
            }
            // A problem, or an audience that could not be read to its end: roll back.
            let _ = tx.send(if failed || ran.is_err() {
                Planned::Failed(problems.len().max(1))
            } else {
                Planned::Done
            });
            let warnings = planner
                .audit()
                .warnings(&planner.campaign, &planner.settings.address_field);
            (ran, problems, failed, warnings)
        });
        let saved = store.save_plan(&record, &mut feed);
        // Unblock the producer if the store stopped early.
        feed.rx = None;
        (producer.join(), saved, feed)
    });
    feed.progress.finish();
    let (audience, problems, failed, warnings) =
        planned.map_err(|_| Error::Internal("the planning thread panicked".into()))?;
    if let Err(p) = audience {
        return Err(Error::Invalid(vec![p]));
    }
    if failed {
        let mut problems = problems;
        problems.push(nothing_stored(problems.len(), &name));
        return Err(Error::Invalid(problems));
    }
    let stats = saved?;
    Ok(Stored {
        campaign: name,
        stats,
        skipped: problems,
        warnings,
        follows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BatchSource, CampaignRecord, MessageFilter, SqliteStore};

    fn message(recipient: &str) -> MessageRef<'_> {
        MessageRef {
            recipient,
            occurrence: 0,
            address: "+5511999990000",
            zone: "America/Sao_Paulo",
            locale: None,
            at: jiff::Timestamp::from_second(1_795_784_400).unwrap(),
            reasons: "",
            content: r#"{"body":"Oi"}"#,
            vars: "{}",
            skipped: None,
        }
    }

    /// The store used to treat the planning thread's channel closing as the end of the plan.
    /// A planning thread that dies mid-plan (a panic: it never sends `Planned::Failed`) closes
    /// it too, so the store commits what it got, and on a re-plan cancels every pending
    /// message of the recipients it never got to. `run` then reports "the planning thread
    /// panicked", with the database already changed.
    #[test]
    fn a_planning_thread_that_dies_mid_plan_does_not_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("d.db")).unwrap();
        let record = CampaignRecord {
            name: "c".into(),
            channel: "outbox".into(),
            rules: Default::default(),
            recurrence_start: None,
        };
        // First plan: three recipients pending.
        let mut first = PlanBatch::default();
        for r in ["r1", "r2", "r3"] {
            first.push(message(r));
        }
        store
            .save_plan(&record, &mut BatchSource::new(&first))
            .unwrap();
        // Re-plan, wired as `run` wires it; the planning thread sends r1 and then panics.
        let (tx, rx) = mpsc::sync_channel::<Planned>(QUEUED_BATCHES);
        let (spent_tx, _spent_rx) = mpsc::channel::<PlanBatch>();
        let mut feed = Feed {
            rx: Some(rx),
            spent: spent_tx,
            current: PlanBatch::default(),
            next: 0,
            progress: &mut NoProgress,
        };
        let producer = std::thread::spawn(move || {
            let mut batch = PlanBatch::default();
            batch.push(message("r1"));
            tx.send(Planned::Rows(batch)).unwrap();
            panic!("a bug while rendering r2");
        });
        let saved = store.save_plan(&record, &mut feed);
        assert!(producer.join().is_err());
        let states: Vec<(String, String)> = store
            .messages(&MessageFilter::default())
            .unwrap()
            .into_iter()
            .map(|m| (m.recipient, format!("{:?}", m.state)))
            .collect();
        assert!(
            saved.is_err(),
            "the plan was committed after the planning thread died: {saved:?}; now {states:?}"
        );
    }
}
