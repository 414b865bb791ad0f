//! `disparo plan`: compute every recipient's messages and store them, in one transaction per
//! campaign. The audience is parsed and rendered on one thread while the store writes on
//! another, so neither waits for the other.

use std::sync::mpsc;

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

/// Feeds planned rows from the pipeline thread to the store, holding back problems: at the
/// end, any problem (without `--skip-invalid`) becomes an error so the transaction rolls back.
struct Feed {
    rx: Option<mpsc::Receiver<crate::plan::Item>>,
    skip_invalid: bool,
    problems: Vec<Problem>,
    failed: bool,
    done: bool,
}

impl Iterator for Feed {
    type Item = Result<NewMessage, String>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let Some(rx) = &self.rx else { return None };
            match rx.recv() {
                Ok(Ok(row)) => return Some(Ok(row.into_new_message())),
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
        planned_local: String::new(),
        at: jiff::Timestamp::UNIX_EPOCH,
        reasons: String::new(),
        content: Default::default(),
        vars: Default::default(),
        skipped: Some(reason),
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
        if args.dry_run || store.is_none() {
            let (mut messages, mut skipped, mut problems) = (0u64, 0u64, Vec::new());
            planner.run(&mut |item| {
                match item {
                    Ok(r) if r.skipped.is_some() => skipped += 1,
                    Ok(_) => messages += 1,
                    Err((_, p)) => problems.push(p),
                }
                std::ops::ControlFlow::Continue(())
            })?;
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
        let (tx, rx) = mpsc::sync_channel(8192);
        let mut feed = Feed {
            rx: Some(rx),
            skip_invalid: args.skip_invalid,
            problems: Vec::new(),
            failed: false,
            done: false,
        };
        let (audience, saved) = std::thread::scope(|s| {
            let producer = s.spawn(move || {
                planner.run(&mut |item| {
                    if tx.send(item).is_ok() {
                        std::ops::ControlFlow::Continue(())
                    } else {
                        std::ops::ControlFlow::Break(())
                    }
                })
            });
            let saved = store.save_plan(&record, &mut feed);
            // Unblock the producer if the store stopped early.
            feed.rx = None;
            (producer.join(), saved)
        });
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
