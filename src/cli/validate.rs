//! `disparo validate`: every problem in campaigns, templates, audiences and config.

use super::{CliResult, Ctx, Exit, Format, output::say};
use disparo::app::validate::check_campaign;
use disparo::diag::Problem;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Campaigns to check (names or files); default all in campaigns/.
    pub campaigns: Vec<String>,
    /// Problems listed per campaign before the rest are only counted.
    #[arg(long, default_value_t = 50)]
    pub max_problems: usize,
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
