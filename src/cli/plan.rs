//! `disparo plan`: compute every recipient's messages and store them, in one transaction per
//! campaign. The audience is parsed and rendered on one thread while the store writes on
//! another, so neither waits for the other. Rows cross between them in batches (one channel
//! operation per few hundred rows, not per row), already converted to what the store writes.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use jiff::SignedDuration;

use super::{CliError, CliResult, Ctx, Exit, Format, output::say};
use crate::diag::Problem;
use crate::model::Campaign;
use crate::plan::{PlanOptions, Planner};
use crate::store::{NewMessage, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Campaigns to plan (names or files).
    #[arg(required = true)]
    pub campaigns: Vec<String>,
    /// Compute and report, store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How far ahead recurring occurrences are stored when the campaign sets no end (e.g. 30d).
    #[arg(long, default_value = "30d")]
    pub horizon: crate::units::Duration,
    /// Store recipients with problems as `skipped` (with the reason) instead of refusing the plan.
    #[arg(long)]
    pub skip_invalid: bool,
}

/// What the pipeline thread sends the store thread: a planned message or a problem.
type Planned = Result<NewMessage, (Option<String>, Problem)>;

/// Rows per channel message: large enough that the channel costs nothing per row, small enough
/// that the bounded queue ([`QUEUED_BATCHES`] of them) holds a few MB at most.
const BATCH: usize = 512;
const QUEUED_BATCHES: usize = 16;

/// Feeds planned rows from the pipeline thread to the store, holding back problems: at the
/// end, any problem (without `--skip-invalid`) becomes an error so the transaction rolls back.
struct Feed {
    rx: Option<mpsc::Receiver<Vec<Planned>>>,
    current: std::vec::IntoIter<Planned>,
    skip_invalid: bool,
    problems: Vec<Problem>,
    failed: bool,
    done: bool,
    progress: Progress,
}

impl Iterator for Feed {
    type Item = Result<NewMessage, String>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let next = match self.current.next() {
                Some(item) => Ok(item),
                None => {
                    let Some(rx) = &self.rx else { return None };
                    match rx.recv() {
                        Ok(batch) => {
                            self.progress.advance(batch.len() as u64);
                            self.current = batch.into_iter();
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match next {
                Ok(Ok(row)) => return Some(Ok(row)),
                Ok(Err((id, p))) => {
                    if self.skip_invalid
                        && let Some(id) = id
                    {
                        let reason = format!("invalid: {p}");
                        self.problems.push(p);
                        return Some(Ok(skipped_row(id, reason)));
                    }
                    self.failed = true;
                    self.problems.push(p);
                }
                Err(_) => {
                    self.done = true;
                    if self.failed {
                        return Some(Err(format!(
                            "{} problem(s) in the campaign; nothing was stored",
                            self.problems.len()
                        )));
                    }
                    return None;
                }
            }
        }
    }
}

fn skipped_row(recipient: String, reason: String) -> NewMessage {
    NewMessage {
        recipient,
        occurrence: 0,
        address: String::new(),
        zone: String::new(),
        locale: None,
        at: jiff::Timestamp::UNIX_EPOCH,
        reasons: String::new(),
        content: r#"{"body":""}"#.into(),
        vars: "{}".into(),
        skipped: Some(reason),
    }
}

/// A progress bar on stderr while a plan runs: the share of the audience file read, and the
/// messages planned. Hidden unless stderr is a terminal, `CI` is unset and `-q` is not given.
struct Progress {
    bar: indicatif::ProgressBar,
    bytes: Arc<AtomicU64>,
    messages: u64,
}

impl Progress {
    fn new(quiet: bool, name: &str, audience: &std::path::Path) -> Progress {
        let shown = !quiet && std::env::var_os("CI").is_none() && std::io::stderr().is_terminal();
        let bar = if shown {
            let len = std::fs::metadata(audience).map(|m| m.len()).unwrap_or(0);
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(len),
                indicatif::ProgressDrawTarget::stderr_with_hz(8),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:24}] {percent:>3}% {msg} ({elapsed}, ~{eta} left)",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(format!("planning {name}"));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Progress {
            bar,
            bytes: Arc::new(AtomicU64::new(0)),
            messages: 0,
        }
    }

    fn advance(&mut self, messages: u64) {
        if self.bar.is_hidden() {
            return;
        }
        self.messages += messages;
        self.bar.set_position(self.bytes.load(Ordering::Relaxed));
        self.bar.set_message(format!("{} messages", self.messages));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let project = ctx.project()?;
    let mut files = Vec::new();
    for name in &args.campaigns {
        files.push(project.find_campaign(name)?);
    }
    let store = if args.dry_run && !ctx.db_exists(Some(&project)) {
        None
    } else {
        Some(ctx.store(Some(&project))?)
    };
    for file in files {
        let campaign = Campaign::load(&file, &project.root)?;
        let mut opts = PlanOptions::new(ctx.now());
        opts.horizon = SignedDuration::from_secs(args.horizon.as_secs());
        if let Some(store) = &store {
            opts.suppressed = store
                .suppressions()?
                .into_iter()
                .map(|s| s.address)
                .collect();
            opts.recurrence_start = store
                .recurrence_start(&campaign.name)?
                .and_then(|s| s.parse().ok());
        }
        let mut planner = Planner::prepare(&project, campaign, opts)?;
        let record = planner.record();
        let name = record.name.clone();
        let mut progress = Progress::new(ctx.quiet, &name, &planner.campaign.audience);
        planner.set_progress(progress.bytes.clone());
        if args.dry_run || store.is_none() {
            let (mut messages, mut skipped, mut problems) = (0u64, 0u64, Vec::new());
            let mut since = 0u64;
            let ran = planner.run(&mut |item| {
                match item {
                    Ok(r) if r.skipped.is_some() => skipped += 1,
                    Ok(_) => messages += 1,
                    Err((_, p)) => problems.push(p),
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
            if !problems.is_empty() && !args.skip_invalid {
                return Err(CliError::Invalid(problems));
            }
            say(
                ctx.quiet,
                format!(
                    "dry run: {name} would plan {messages} message(s), {skipped} skipped, {} invalid; nothing stored",
                    problems.len()
                ),
            );
            continue;
        }
        let store = store
            .as_ref()
            .ok_or_else(|| CliError::Internal("no store".into()))?;
        let (tx, rx) = mpsc::sync_channel::<Vec<Planned>>(QUEUED_BATCHES);
        let mut feed = Feed {
            rx: Some(rx),
            current: Vec::new().into_iter(),
            skip_invalid: args.skip_invalid,
            problems: Vec::new(),
            failed: false,
            done: false,
            progress,
        };
        let (audience, saved) = std::thread::scope(|s| {
            let producer = s.spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                let ran = planner.run(&mut |item| {
                    // The conversion (local time text, reasons) happens here, off the store's thread.
                    batch.push(item.map(crate::plan::PlannedRow::into_new_message));
                    if batch.len() < BATCH {
                        return std::ops::ControlFlow::Continue(());
                    }
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if tx.send(full).is_ok() {
                        std::ops::ControlFlow::Continue(())
                    } else {
                        std::ops::ControlFlow::Break(())
                    }
                });
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                ran
            });
            let saved = store.save_plan(&record, &mut feed);
            // Unblock the producer if the store stopped early.
            feed.rx = None;
            feed.current = Vec::new().into_iter();
            (producer.join(), saved)
        });
        feed.progress.finish();
        let audience =
            audience.map_err(|_| CliError::Internal("the planning thread panicked".into()))?;
        if let Err(p) = audience {
            return Err(CliError::Invalid(vec![p]));
        }
        if feed.failed {
            return Err(CliError::Invalid(feed.problems));
        }
        let stats = saved?;
        if !feed.problems.is_empty() {
            for p in &feed.problems {
                eprintln!("warning: skipped: {p}");
            }
        }
        if ctx.format == Format::Json {
            println!(
                "{}",
                serde_json::json!({"campaign": name, "inserted": stats.inserted, "updated": stats.updated, "kept": stats.kept, "skipped": stats.skipped, "cancelled": stats.cancelled})
            );
        }
        say(
            ctx.quiet,
            format!(
                "planned {name}: {} new, {} updated, {} kept (already sent or in flight), {} skipped, {} cancelled",
                stats.inserted, stats.updated, stats.kept, stats.skipped, stats.cancelled
            ),
        );
    }
    Ok(Exit::Ok)
}
