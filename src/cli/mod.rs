//! The command line: parse flags into a checked [`Ctx`], run one subcommand, map the result
//! to a documented exit code. Data goes to stdout, chatter and problems to stderr.

mod admin;
mod bounces;
mod completions;
mod db;
mod export;
mod funnel;
mod init;
mod output;
mod plan;
mod preview;
mod report;
mod run;
mod send_test;
mod serve;
mod status;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use jiff::Timestamp;

use disparo::app::db::Database;
use disparo::diag::Problem;
use disparo::model::Project;
use disparo::store::{Access, Store};

pub use output::Format;

/// Exit codes, documented in the README: a cron or CI job can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything due was handled; nothing failed.
    Ok = 0,
    /// Some messages failed or expired, or a campaign was paused by the circuit breaker.
    Failed = 1,
    /// Invalid input or configuration (campaigns, templates, audiences, flags); nothing stored.
    Invalid = 2,
    /// Interrupted by SIGINT/SIGTERM; in-flight sends finished and unsent claims were released.
    Interrupted = 3,
    /// The environment or disparo itself failed (database unusable, disk full, a bug).
    Internal = 4,
}

/// A command's failure: what to print, and through it the exit code (2 or 4).
pub use disparo::app::Error as CliError;

pub type CliResult = Result<Exit, CliError>;

/// Schedule template message campaigns in each recipient's local time.
#[derive(Debug, Parser)]
#[command(name = "disparo", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The schedule: a SQLite file (default disparo.db in the project root) or a
    /// postgres:// URL shared by a fleet of workers.
    #[arg(long, global = true, env = "DISPARO_DB", value_name = "PATH|URL")]
    pub db: Option<String>,
    /// The project configuration; its folder is the project root.
    #[arg(long, global = true, env = "DISPARO_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Act as if it were this instant (RFC 3339, e.g. 2026-11-27T12:00:00Z).
    #[arg(long, global = true, env = "DISPARO_NOW", value_name = "RFC3339")]
    pub now: Option<String>,
    /// Output format for data.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// More logging (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold a working project (config, a campaign, templates, a sample audience).
    Init(init::Args),
    /// Check campaigns, templates, audiences and config; list every problem with its place.
    Validate(validate::Args),
    /// Dry run: each rendered message, its local and UTC send time, and a forecast. Touches no database.
    Preview(preview::Args),
    /// Compute and store per-recipient messages (idempotent).
    Plan(plan::Args),
    /// Dispatch due messages.
    Run(run::Args),
    /// Send one rendered message now to a tester's address through the real channel, recorded as a test.
    SendTest(send_test::Args),
    /// Receive delivery receipts, opt-outs and one-click unsubscribes over HTTP (docs/receipts.md).
    Serve(serve::Args),
    /// Counts by state, receipts (delivered, read, ...), next due instant, recent failures; --by locale|zone|variant: the funnel per group.
    Status(status::Args),
    /// List individual messages.
    Messages(admin::MessagesArgs),
    /// Stop dispatching a campaign until `resume`.
    Pause(admin::CampaignArg),
    /// Resume a paused campaign (also after the circuit breaker paused it).
    Resume(admin::CampaignArg),
    /// Cancel a campaign: its pending messages are never sent.
    Cancel(admin::CampaignArg),
    /// Bounces and complaints that came back by email (docs/bounces.md).
    #[command(subcommand)]
    Bounces(bounces::BouncesCmd),
    /// The opt-out list, honoured at plan and at dispatch.
    #[command(subcommand)]
    Suppress(admin::SuppressCmd),
    /// The delivery report: every message with its attempts and receipts, or the funnel (CSV or JSON Lines with --format).
    Export(export::Args),
    /// A campaign's report as one self-contained HTML page: funnel, sends per hour, failures, time to read.
    Report(report::Args),
    /// The schedule database itself: migrate its schema, check it (for fleets of workers).
    #[command(subcommand)]
    Db(db::DbCmd),
    /// Print a shell completion script (e.g. `disparo completions bash > /etc/bash_completion.d/disparo`).
    Completions(completions::Args),
    /// Print the man page, generated from these very flags (`disparo man | man -l -`).
    Man(completions::ManArgs),
}

/// What every command gets: the checked global flags.
#[derive(Debug)]
pub struct Ctx {
    pub cwd: PathBuf,
    pub config: Option<PathBuf>,
    db: Option<String>,
    /// `--now`, when given.
    pub fixed_now: Option<Timestamp>,
    pub format: Format,
    pub quiet: bool,
}

impl Ctx {
    pub fn new(global: &GlobalArgs) -> Result<Ctx, CliError> {
        let cwd = std::env::current_dir()
            .map_err(|e| CliError::Internal(format!("cannot read the working directory: {e}")))?;
        let fixed_now = match &global.now {
            None => None,
            Some(s) if s.trim().is_empty() => None,
            Some(s) => Some(parse_now(s)?),
        };
        Ok(Ctx {
            cwd,
            config: global.config.clone(),
            db: global.db.clone(),
            fixed_now,
            format: global.format,
            quiet: global.quiet,
        })
    }

    pub fn now(&self) -> Timestamp {
        self.fixed_now.unwrap_or_else(Timestamp::now)
    }

    pub fn project(&self) -> Result<Project, CliError> {
        Ok(Project::open(&self.cwd, self.config.as_deref())?)
    }

    /// The database `--db`/`DISPARO_DB` names, or the project's default.
    pub fn database(&self, project: Option<&Project>) -> Database {
        Database::locate(self.db.as_deref(), &self.cwd, project)
    }

    /// The database a plan created, for `access`; refused (exit 2 with a hint) when there is
    /// none, so that `run`, `status`, `messages`, `pause`, ... in the wrong folder (a cron job)
    /// say so instead of creating an empty database and reporting nothing to do.
    pub fn existing_store(
        &self,
        project: Option<&Project>,
        access: Access,
    ) -> Result<Box<dyn Store>, CliError> {
        self.database(project).open(access)
    }
}

/// The stored campaign a user means by `typed`: a campaign planned under that name, else the
/// `name:` of the project's campaign file of that stem or path (`preview` and `plan` take both,
/// so every command does). Unresolvable text is returned as typed, for the store to refuse.
pub fn campaign_name(
    project: Option<&Project>,
    store: &dyn Store,
    typed: &str,
) -> Result<String, CliError> {
    if store.campaign(typed)?.is_some() {
        return Ok(typed.to_owned());
    }
    if let Some(p) = project
        && let Ok(file) = p.find_campaign(typed)
        && let Ok(c) = disparo::model::Campaign::load(&file, &p.root)
    {
        return Ok(c.name);
    }
    Ok(typed.to_owned())
}

fn parse_now(s: &str) -> Result<Timestamp, CliError> {
    s.trim().parse::<Timestamp>().map_err(|e| {
        Problem::new(format!("invalid --now / DISPARO_NOW {s:?}: {e}")).field("--now").hint("write an RFC 3339 instant with an offset, e.g. 2026-11-27T12:00:00Z or 2026-11-27T09:00:00-03:00").into()
    })
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> CliResult {
    let ctx = Ctx::new(&cli.global)?;
    match cli.command {
        Command::Init(a) => init::run(&ctx, a),
        Command::Validate(a) => validate::run(&ctx, a),
        Command::Preview(a) => preview::run(&ctx, a),
        Command::Plan(a) => plan::run(&ctx, a),
        Command::Run(a) => run::run(&ctx, a),
        Command::Serve(a) => serve::run(&ctx, a),
        Command::SendTest(a) => send_test::run(&ctx, a),
        Command::Status(a) => status::run(&ctx, a),
        Command::Messages(a) => admin::messages(&ctx, a),
        Command::Pause(a) => admin::pause(&ctx, a),
        Command::Resume(a) => admin::resume(&ctx, a),
        Command::Cancel(a) => admin::cancel(&ctx, a),
        Command::Suppress(c) => admin::suppress(&ctx, c),
        Command::Bounces(c) => bounces::run(&ctx, c),
        Command::Export(a) => export::run(&ctx, a),
        Command::Report(a) => report::run(&ctx, a),
        Command::Db(c) => db::run(&ctx, c),
        Command::Completions(a) => completions::completions(&ctx, a),
        Command::Man(a) => completions::man(&ctx, a),
    }
}

/// Prints problems to stderr, `file:line:col: message` then the hint, like compilers do.
pub fn print_problems(problems: &[Problem]) {
    let cwd = std::env::current_dir().ok();
    let mut err = std::io::stderr().lock();
    for p in problems {
        let mut p = p.clone();
        if let (Some(cwd), Some(file)) = (&cwd, &p.file)
            && let Ok(rel) = file.strip_prefix(cwd)
        {
            if let Some(x) = &mut p.excerpt {
                *x = x.replace(&file.display().to_string(), &rel.display().to_string());
            }
            p.file = Some(rel.to_path_buf());
        }
        // Problems quote names and values from the input: shown inert (docs/output.md).
        let _ = std::io::Write::write_fmt(
            &mut err,
            format_args!("error: {}\n", output::inert_text(&p.to_string())),
        );
    }
}
