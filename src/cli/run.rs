//! `disparo run`: dispatch due messages, once (for cron and CI) or continuously (`--watch`).

use std::sync::Arc;

use jiff::SignedDuration;

use super::{CliError, CliResult, Ctx, Exit, Format, output::say};
use disparo::diag::Problem;
use disparo::dispatch::{Clock, RunOptions, Shutdown};
use disparo::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Send what is due (and what falls due within a minute), then exit. The default.
    #[arg(long, conflicts_with = "watch")]
    pub once: bool,
    /// Keep running: sleep until the next due message, pick up new plans, stop on SIGINT/SIGTERM.
    #[arg(long)]
    pub watch: bool,
    /// Only this campaign.
    #[arg(long)]
    pub campaign: Option<String>,
    /// Stop after handling this many messages.
    #[arg(long)]
    pub limit: Option<u64>,
    /// List what is due now; send nothing, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long a claim is held before another run may retry the message if this one dies.
    /// A live run renews its leases (every tenth of a lease, at most 5 s) and cuts any send
    /// that would outlast its lease.
    #[arg(long, default_value = "45s")]
    pub lease: disparo::units::Duration,
    /// Messages claimed and not yet finished, at most: the next claim is made while these
    /// are sending, once half is left. A rate-limited channel claims at most what it sends in
    /// 2 s (and in half a lease).
    #[arg(long, default_value_t = 8192)]
    pub batch: usize,
    /// After SIGINT/SIGTERM, how long in-flight sends may take before they are aborted and
    /// their messages given back (retried later with the same idempotency key).
    #[arg(long, default_value = "30s")]
    pub grace: disparo::units::Duration,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let project = ctx.project()?;
    let access = if args.dry_run {
        disparo::store::Access::ReadOnly
    } else {
        disparo::store::Access::Write
    };
    let store = ctx.existing_store(Some(&project), access)?;
    let mut args = args;
    if let Some(c) = &args.campaign {
        args.campaign = Some(super::campaign_name(Some(&project), store.as_ref(), c)?);
    }
    if args.dry_run {
        return dry_run(ctx, store.as_ref(), &args);
    }
    refuse_fake_now(ctx)?;
    let clock = ctx
        .fixed_now
        .map(Clock::starting_at)
        .unwrap_or_else(Clock::real);
    let opts = RunOptions {
        campaign: args.campaign.clone(),
        limit: args.limit,
        lease: SignedDuration::from_secs(args.lease.as_secs()),
        batch: args.batch.max(1),
        watch: args.watch,
        grace: SignedDuration::from_secs(args.grace.as_secs()),
        ..RunOptions::default()
    };
    let summary = disparo::app::run::dispatch(
        &project,
        store,
        clock,
        opts,
        Shutdown::new(),
        spawn_signal_handler,
    )?;
    if ctx.format == Format::Json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    }
    say(ctx.quiet, summary_line(&summary));
    Ok(if summary.interrupted {
        Exit::Interrupted
    } else if summary.failed > 0 || summary.expired > 0 || summary.paused > 0 {
        Exit::Failed
    } else {
        Exit::Ok
    })
}

/// `run: 11 sent, 0 failed, …` and what is not zero of the rest (docs/delivery.md).
fn summary_line(summary: &disparo::dispatch::Summary) -> String {
    format!(
        "run: {} sent, {} failed, {} retrying, {} deferred, {} expired, {} skipped{}{}{}{}{}{}",
        summary.sent,
        summary.failed,
        summary.retried,
        summary.deferred,
        summary.expired,
        summary.skipped,
        if summary.cancelled > 0 {
            format!(", {} cancelled", summary.cancelled)
        } else {
            String::new()
        },
        if summary.released > 0 {
            format!(", {} released", summary.released)
        } else {
            String::new()
        },
        if summary.lost > 0 {
            format!(
                ", {} taken over by another run (lease too short?)",
                summary.lost
            )
        } else {
            String::new()
        },
        ramp_held(summary),
        follow_ups(summary),
        if summary.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    )
}

/// `; follow-ups: 3 planned, 2 not needed` (decided by this run's releases).
fn follow_ups(summary: &disparo::dispatch::Summary) -> String {
    if summary.follow_ups_released + summary.follow_ups_not_needed == 0 {
        return String::new();
    }
    format!(
        "; follow-ups: {} planned, {} not needed",
        summary.follow_ups_released, summary.follow_ups_not_needed
    )
}

/// `, 17 held back by the ramp until 2026-12-01T12:00:00Z` (the next ramp day).
fn ramp_held(summary: &disparo::dispatch::Summary) -> String {
    if summary.ramp_held == 0 {
        return String::new();
    }
    let until = match summary.ramp_opens {
        Some(t) => format!("until {t} (the next ramp day)"),
        None => "(other runs hold the rest of the first ramp day's budget)".into(),
    };
    format!(", {} held back by the ramp {until}", summary.ramp_held)
}

/// The variable that lets `run` take `--now`: a simulation for tests and demos.
pub const SIMULATE_ENV: &str = "DISPARO_SIMULATE";

/// `run --now T` judges quiet hours, days and expiry at T while the messages leave at the
/// real time: a message can go out at night. Refused, unless the caller says it is a
/// simulation (`DISPARO_SIMULATE=1`: tests, demos, a what-if against a sandbox provider).
fn refuse_fake_now(ctx: &Ctx) -> Result<(), CliError> {
    if ctx.fixed_now.is_none() || std::env::var(SIMULATE_ENV).is_ok_and(|v| v == "1") {
        return Ok(());
    }
    Err(Problem::new(
        "`run` does not take --now (or DISPARO_NOW): it would judge quiet hours at that instant while messages leave at the real time",
    )
    .field("--now")
    .hint(format!(
        "unset DISPARO_NOW; use `disparo run --dry-run --now ...` or `disparo preview` for a what-if, or set {SIMULATE_ENV}=1 for a simulation against a sandbox provider (tests, demos)"
    ))
    .into())
}

/// First SIGINT/SIGTERM: stop claiming and let in-flight sends finish. Second: exit at once
/// (claims are left to expire; every store change is one transaction, so the schedule stays
/// consistent).
fn spawn_signal_handler(shutdown: Arc<Shutdown>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            let mut count = 0;
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                count += 1;
                if count == 1 {
                    eprintln!(
                        "stopping: finishing in-flight sends and releasing the rest (signal again to exit at once)"
                    );
                    shutdown.trigger();
                } else {
                    eprintln!(
                        "exiting at once; unsent claims will be retried after their lease expires"
                    );
                    std::process::exit(Exit::Interrupted as i32);
                }
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_ok() {
                shutdown.trigger();
            }
        }
    });
}

fn dry_run(ctx: &Ctx, store: &dyn Store, args: &Args) -> CliResult {
    let now = ctx.now();
    let rows = disparo::app::run::due(store, args.campaign.as_deref(), now, args.limit)?;
    let project = ctx.project()?;
    let notes =
        disparo::app::run::ramp_notes(&project, store, &rows, args.campaign.as_deref(), now)?;
    let mut out = super::output::Rows::new(&[
        "campaign",
        "recipient",
        "occurrence",
        "channel",
        "address",
        "due_at",
    ]);
    let n = rows.len();
    for r in rows {
        out.push(crate::row! { "campaign" => r.campaign, "recipient" => r.recipient, "occurrence" => r.occurrence, "channel" => r.channel, "address" => r.address, "due_at" => r.due_at.to_string() });
    }
    out.print(ctx.format)
        .map_err(|e| CliError::Internal(e.to_string()))?;
    say(
        ctx.quiet,
        format!("dry run: {n} message(s) due at {now}; nothing sent or changed"),
    );
    for note in notes {
        say(ctx.quiet, format!("note: {note}"));
    }
    Ok(Exit::Ok)
}
