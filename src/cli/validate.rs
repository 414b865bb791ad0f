//! `disparo validate`: every problem in campaigns, templates, audiences and config.

use std::ops::ControlFlow;

use super::{CliResult, Ctx, Exit, Format, output::say};
use disparo::diag::Problem;
use disparo::model::Project;
use disparo::plan::{PlanOptions, Planner};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Campaigns to check (names or files); default all in campaigns/.
    pub campaigns: Vec<String>,
    /// Problems listed per campaign before the rest are only counted.
    #[arg(long, default_value_t = 50)]
    pub max_problems: usize,
}

/// What validating one campaign found.
pub struct Checked {
    pub name: String,
    pub recipients: u64,
    pub messages: u64,
    /// Of `messages`, those planned as `skipped` (suppressed, late).
    pub skipped: u64,
    pub problems: Vec<Problem>,
    /// Problems beyond `max_problems`, counted only.
    pub more: u64,
    /// Things that do not stop a plan but will stop `run` here (a secret not in the
    /// environment: validation often runs where the secrets are not).
    pub warnings: Vec<Problem>,
    /// Facts said once, not problems (the CSV separator used).
    pub notes: Vec<String>,
}

/// Loads and checks one campaign file end to end, rendering every recipient.
pub fn check_campaign(
    project: &Project,
    file: &std::path::Path,
    now: jiff::Timestamp,
    max_problems: usize,
) -> Checked {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Checked {
        name: stem,
        recipients: 0,
        messages: 0,
        skipped: 0,
        problems: Vec::new(),
        more: 0,
        warnings: Vec::new(),
        notes: Vec::new(),
    };
    let campaign = match project.load_campaign(file) {
        Ok(c) => c,
        Err(ps) => {
            out.problems = ps;
            return out;
        }
    };
    out.name = campaign.name.clone();
    let mut planner = match Planner::prepare(project, campaign, PlanOptions::new(now)) {
        Ok(p) => p,
        Err(ps) => {
            out.problems = ps;
            return out;
        }
    };
    if let Ok(build) = disparo::app::channels::context(project)
        && let Err(p) = disparo::app::channels::build(
            &build,
            project,
            &planner.campaign.channel,
            &planner.channel,
        )
    {
        out.warnings.push(p);
    }
    // The length and parameter checks `preview` shows on each message, the same function:
    // each distinct warning once, with how many messages and which recipients it concerns.
    let kind = super::preview::channel_kind(
        &planner.campaign.channel,
        planner.channel.type_name(),
        &planner.settings.address_field,
    );
    let mut message_warnings: Vec<(String, u64, Vec<String>)> = Vec::new();
    let result = planner.run(&mut |item| {
        match item {
            Ok(row) => {
                out.messages += 1;
                out.skipped += u64::from(row.skipped.is_some());
                for w in super::preview::check(kind, &row.content).warnings {
                    let i = match message_warnings.iter().position(|(x, ..)| *x == w) {
                        Some(i) => i,
                        None => {
                            message_warnings.push((w, 0, Vec::new()));
                            message_warnings.len() - 1
                        }
                    };
                    let (_, n, who) = &mut message_warnings[i];
                    *n += 1;
                    if who.len() < 3 {
                        who.push(row.recipient.clone());
                    }
                }
            }
            Err(disparo::plan::Unplanned { problem: p, .. }) => {
                if out.problems.len() < max_problems {
                    out.problems.push(p);
                } else {
                    out.more += 1;
                }
            }
        }
        ControlFlow::Continue(())
    });
    match result {
        Ok(n) => out.recipients = n,
        Err(p) => out.problems.push(p),
    }
    let audit = planner.audit();
    let field = &planner.settings.address_field;
    out.warnings.extend(
        audit
            .warnings(&planner.campaign, field)
            .into_iter()
            .map(Problem::new),
    );
    out.notes = audit.notes(&planner.campaign.audience);
    for (w, n, who) in message_warnings {
        let more = if n > who.len() as u64 { ", …" } else { "" };
        out.warnings.push(Problem::new(format!(
            "{}: {w} ({n} message(s): recipient {}{more}; see `disparo preview {}`)",
            out.name,
            who.join(", "),
            out.name
        )));
    }
    out
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let project = ctx.project()?;
    let files = if args.campaigns.is_empty() {
        project.campaign_files()?
    } else {
        let mut files = Vec::new();
        let mut missing = Vec::new();
        for name in &args.campaigns {
            match project.find_campaign(name) {
                Ok(f) => files.push(f),
                Err(p) => missing.push(p),
            }
        }
        if !missing.is_empty() {
            return Err(missing.into());
        }
        files
    };
    if files.is_empty() {
        return Err(Problem::new("there are no campaigns to validate")
            .in_file(project.campaigns_dir())
            .hint("create campaigns/NAME.yaml, or run `disparo init`")
            .into());
    }
    let mut total = 0u64;
    for file in &files {
        let c = check_campaign(&project, file, ctx.now(), args.max_problems);
        total += c.problems.len() as u64 + c.more;
        match ctx.format {
            Format::Json => {
                for p in &c.problems {
                    println!(
                        "{}",
                        serde_json::to_string(&problem_json(&c.name, p)).unwrap_or_default()
                    );
                }
            }
            _ => {
                super::print_problems(&c.problems);
                if c.more > 0 {
                    eprintln!(
                        "error: … and {} more problem(s) in campaign {}",
                        c.more, c.name
                    );
                }
            }
        }
        if !ctx.quiet {
            for n in &c.notes {
                eprintln!("note: {}", super::output::inert_text(n));
            }
            for w in &c.warnings {
                eprintln!("warning: {}", super::output::inert_text(&w.to_string()));
            }
        }
        if c.problems.is_empty() {
            say(
                ctx.quiet,
                format!(
                    "ok: {} — {} recipients, {} messages{}",
                    c.name,
                    c.recipients,
                    c.messages,
                    if c.skipped > 0 {
                        format!(" ({} skipped)", c.skipped)
                    } else {
                        String::new()
                    }
                ),
            );
        } else {
            say(
                ctx.quiet,
                format!(
                    "failed: {} — {} problem(s)",
                    c.name,
                    c.problems.len() as u64 + c.more
                ),
            );
        }
    }
    Ok(if total == 0 { Exit::Ok } else { Exit::Invalid })
}

fn problem_json(campaign: &str, p: &Problem) -> serde_json::Value {
    serde_json::json!({
        "campaign": campaign,
        "file": p.file.as_ref().map(|f| f.display().to_string()),
        "line": p.line,
        "column": p.column,
        "row": p.row,
        "field": p.field,
        "message": p.message,
        "hint": p.hint,
    })
}
