//! `disparo plan`: compute every recipient's messages and store them, in one transaction per
//! campaign (`disparo::app::plan`); this module reads the flags, draws the progress bar and
//! prints what was stored.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::SignedDuration;

use super::{
    CliResult, Ctx, Exit, Format,
    output::{inert_text, say},
};
use disparo::app::plan::{self, Progress, Settings};

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
    pub horizon: disparo::units::Duration,
    /// Store recipients with problems as `skipped` (with the reason) instead of refusing the plan.
    #[arg(long)]
    pub skip_invalid: bool,
}

/// A progress bar on stderr while a plan runs: the share of the audience file read, and the
/// messages planned. Hidden unless stderr is a terminal, `CI` is unset and `-q` is not given.
struct Bar {
    shown: bool,
    bar: indicatif::ProgressBar,
    bytes: Arc<AtomicU64>,
    messages: u64,
}

impl Bar {
    fn new(quiet: bool) -> Bar {
        Bar {
            shown: !quiet && std::env::var_os("CI").is_none() && std::io::stderr().is_terminal(),
            bar: indicatif::ProgressBar::hidden(),
            bytes: Arc::new(AtomicU64::new(0)),
            messages: 0,
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, name: &str, audience: &std::path::Path, bytes: Arc<AtomicU64>) {
        self.bytes = bytes;
        self.messages = 0;
        self.bar = if self.shown {
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
    }

    fn advance(&mut self, messages: u64) {
        if self.bar.is_hidden() {
            return;
        }
        self.messages += messages;
        self.bar.set_position(self.bytes.load(Ordering::Relaxed));
        self.bar.set_message(format!("{} messages", self.messages));
    }

    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let project = ctx.project()?;
    let campaigns = plan::load(&project, &args.campaigns)?;
    let db = ctx.database(Some(&project));
    let settings = Settings {
        now: ctx.now(),
        horizon: SignedDuration::from_secs(args.horizon.as_secs()),
        skip_invalid: args.skip_invalid,
    };
    let mut bar = Bar::new(ctx.quiet);
    if args.dry_run {
        for c in plan::dry_run(&project, &db, campaigns, &settings, &mut bar)? {
            warn_all(ctx, &c.warnings);
            say(
                ctx.quiet,
                format!(
                    "dry run: {} would plan {} message(s), {} skipped, {} invalid; nothing stored",
                    c.campaign, c.messages, c.skipped, c.invalid
                ),
            );
        }
        return Ok(Exit::Ok);
    }
    let released = plan::store(
        &project,
        &db,
        campaigns,
        &settings,
        &mut bar,
        &mut |stored| {
            for p in &stored.skipped {
                eprintln!("warning: skipped: {}", inert_text(&p.to_string()));
            }
            warn_all(ctx, &stored.warnings);
            let (name, stats) = (&stored.campaign, &stored.stats);
            if ctx.format == Format::Json {
                println!(
                    "{}",
                    serde_json::json!({"campaign": name, "inserted": stats.inserted, "updated": stats.updated, "unchanged": stats.unchanged, "kept": stats.kept, "skipped": stats.skipped, "cancelled": stats.cancelled})
                );
            }
            if let Some(rule) = &stored.follows {
                say(
                    ctx.quiet,
                    format!(
                        "planned {name}: a follow-up ({}): {} recipient(s) new, {} updated, {} unchanged, {} skipped; each gets it once {}'s message to them is decided, {} pending follow-up(s) cancelled",
                        rule.describe(),
                        stats.inserted,
                        stats.updated,
                        stats.unchanged,
                        stats.skipped,
                        rule.parent,
                        stats.cancelled
                    ),
                );
                return;
            }
            say(
                ctx.quiet,
                format!(
                    "planned {name}: {} new, {} updated, {} unchanged, {} kept (already sent or in flight), {} skipped, {} cancelled",
                    stats.inserted,
                    stats.updated,
                    stats.unchanged,
                    stats.kept,
                    stats.skipped,
                    stats.cancelled
                ),
            );
        },
    )?;
    if released.released + released.not_needed > 0 {
        say(
            ctx.quiet,
            format!(
                "follow-ups: {} planned, {} not needed (their parents' messages are decided)",
                released.released, released.not_needed
            ),
        );
    }
    Ok(Exit::Ok)
}

/// The audience-wide warnings of a plan (the same address twice, a one-shot mostly late).
fn warn_all(ctx: &Ctx, warnings: &[String]) {
    if !ctx.quiet {
        for w in warnings {
            eprintln!("warning: {}", inert_text(w));
        }
    }
}
