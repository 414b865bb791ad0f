//! `disparo bounces import PATH...`: bounces (DSNs) and complaints (ARF) from mailboxes
//! (docs/bounces.md). One row per receipt (or per message that gave none) on stdout, the
//! summary on stderr; exit 1 when a message could not be read (the rest is imported).

use std::path::PathBuf;

use super::output::{RowStream, ok_unless_broken, say};
use super::{CliResult, Ctx, Exit};
use disparo::app::bounces::{self, Entry, Options, Outcome, Summary};
use disparo::store::Access;

#[derive(Debug, clap::Subcommand)]
pub enum BouncesCmd {
    /// Read bounces and complaints from mbox files, Maildirs or .eml messages: hard bounces
    /// and complaints suppress the address, soft bounces are counted (docs/bounces.md).
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// An mbox file, a Maildir (a folder with cur/ and new/), a folder of .eml files, or one
    /// message; several may be given.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Read the mail and show what would be recorded; change nothing (needs no database).
    #[arg(long)]
    pub dry_run: bool,
}

const COLUMNS: [&str; 11] = [
    "location",
    "outcome",
    "address",
    "code",
    "applied",
    "matched",
    "occurred_at",
    "provider_id",
    "reference",
    "detail",
    "dry_run",
];
const TABLE: [&str; 6] = [
    "location", "outcome", "address", "code", "applied", "detail",
];

pub fn run(ctx: &Ctx, cmd: BouncesCmd) -> CliResult {
    match cmd {
        BouncesCmd::Import(a) => import(ctx, a),
    }
}

fn import(ctx: &Ctx, args: ImportArgs) -> CliResult {
    // Paths as typed (relative to the working directory), so locations read as the user
    // wrote them; checked before the database is opened: a typo says so first.
    let mailboxes = bounces::open(&args.paths)?;
    let store = if args.dry_run {
        None
    } else {
        let project = ctx.project().ok();
        Some(ctx.existing_store(project.as_ref(), Access::Write)?)
    };
    let stdout = anstream::stdout();
    let out = Box::new(std::io::BufWriter::new(stdout.lock()));
    let mut rows = RowStream::new(ctx.format, &COLUMNS, &TABLE, out);
    let mut write_error = None;
    let summary = bounces::import(
        store.as_deref(),
        &mailboxes,
        Options {
            dry_run: args.dry_run,
            batch: bounces::BATCH,
            now: ctx.now(),
        },
        &mut |e| {
            if e.outcome == Outcome::Unreadable {
                anstream::eprintln!(
                    "warning: {}: {}; passed over",
                    e.location,
                    e.detail.as_deref().unwrap_or("unreadable")
                );
            }
            if write_error.is_none()
                && let Err(err) = rows.push(row(e, args.dry_run))
            {
                write_error = Some(err);
            }
            Ok(())
        },
    )?;
    match write_error {
        Some(e) => ok_unless_broken(Err(e))?,
        None => ok_unless_broken(rows.finish())?,
    }
    say(ctx.quiet, line(&summary, args.dry_run));
    Ok(if summary.unreadable > 0 {
        Exit::Failed
    } else {
        Exit::Ok
    })
}

fn row(e: &Entry, dry_run: bool) -> serde_json::Map<String, serde_json::Value> {
    crate::row! {
        "location" => e.location,
        "outcome" => e.outcome.as_str(),
        "address" => e.address,
        "code" => e.code,
        "applied" => e.applied.map(|a| a.as_str()),
        "matched" => e.matched,
        "occurred_at" => e.occurred_at.map(|t| t.to_string()),
        "provider_id" => e.provider_id,
        "reference" => e.reference,
        "detail" => e.detail,
        "dry_run" => dry_run,
    }
}

/// The summary line a cron mail is read by.
fn line(s: &Summary, dry_run: bool) -> String {
    let mut text = format!(
        "{}{} message(s): {} hard bounce(s), {} soft bounce(s), {} complaint(s)",
        if dry_run {
            "dry run: read "
        } else {
            "bounces: read "
        },
        s.messages,
        s.hard_bounces,
        s.soft_bounces,
        s.complaints
    );
    if dry_run {
        text.push_str("; nothing recorded");
    } else {
        text.push_str(&format!(
            "; {} matched to a message, {} unmatched, {} already imported; {} address(es) newly suppressed",
            s.matched, s.unmatched, s.duplicates, s.newly_suppressed
        ));
    }
    if s.skipped > 0 {
        let reasons: Vec<String> = s
            .skipped_by_reason
            .iter()
            .map(|(why, n)| format!("{n} × {why}"))
            .collect();
        text.push_str(&format!("; {} skipped ({})", s.skipped, reasons.join("; ")));
    }
    if s.unreadable > 0 {
        text.push_str(&format!(
            "; {} unreadable (see the warnings above)",
            s.unreadable
        ));
    }
    text
}
