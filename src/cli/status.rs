//! `disparo status`: per campaign, counts by state, next due instant, recent failures.

use super::{CliError, CliResult, Ctx, Exit, Format};
use crate::store::{State, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this campaign.
    pub campaign: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let project = ctx.project().ok();
    if !ctx.db_exists(project.as_ref()) {
        return Err(crate::diag::Problem::new(format!(
            "there is no database at {}",
            ctx.db_path(project.as_ref()).display()
        ))
        .hint("run `disparo plan CAMPAIGN` first, or pass --db")
        .into());
    }
    let store = ctx.store(project.as_ref())?;
    let summaries = store.summaries(args.campaign.as_deref())?;
    let mut rows = super::output::Rows::new(&[
        "campaign",
        "status",
        "channel",
        "pending",
        "sending",
        "sent",
        "failed",
        "expired",
        "skipped",
        "cancelled",
        "next_due",
        "last_sent",
    ]);
    for s in &summaries {
        let mut row = crate::row! { "campaign" => s.name, "status" => s.status.as_str(), "channel" => s.channel };
        for st in State::ALL {
            row.insert(
                st.as_str().into(),
                serde_json::json!(s.counts.get(&st).copied().unwrap_or(0)),
            );
        }
        row.insert(
            "next_due".into(),
            serde_json::json!(s.next_due.map(|t| t.to_string())),
        );
        row.insert(
            "last_sent".into(),
            serde_json::json!(s.last_sent.map(|t| t.to_string())),
        );
        row.insert("status_reason".into(), serde_json::json!(s.status_reason));
        row.insert(
            "top_errors".into(),
            serde_json::json!(
                s.top_errors
                    .iter()
                    .map(|(e, n)| serde_json::json!({"error": e, "count": n}))
                    .collect::<Vec<_>>()
            ),
        );
        rows.push(row);
    }
    rows.print(ctx.format)
        .map_err(|e| CliError::Internal(e.to_string()))?;
    if ctx.format == Format::Table {
        for s in &summaries {
            if let Some(r) = &s.status_reason {
                println!("\n{} is {}: {r}", s.name, s.status.as_str());
            }
            if !s.top_errors.is_empty() {
                println!("\n{} — most common errors:", s.name);
                for (e, n) in &s.top_errors {
                    println!("  {n:>6} × {e}");
                }
            }
        }
    }
    Ok(Exit::Ok)
}
