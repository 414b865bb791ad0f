//! `disparo status`: per campaign, counts by state, next due instant, the last run's
//! throughput, why a campaign is paused, and its most common errors.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::output::{Rows, human_duration, inert, paint};
use super::{CliResult, Ctx, Exit, Format};
use disparo::store::{CampaignStatus, State};

/// Attempts further apart than this belong to different runs.
pub const RUN_GAP: SignedDuration = SignedDuration::from_mins(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this campaign.
    pub campaign: Option<String>,
}

const COLUMNS: [&str; 15] = [
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
    "last_run",
    "status_reason",
    "top_errors",
];

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let project = ctx.project().ok();
    let store = ctx.existing_store(project.as_ref())?;
    let campaign = match &args.campaign {
        Some(c) => Some(super::campaign_name(project.as_ref(), store.as_ref(), c)?),
        None => None,
    };
    let summaries = store.summaries(campaign.as_deref())?;
    let now = ctx.now();
    let mut rows = Rows::new(&COLUMNS);
    let mut runs = Vec::new();
    for s in &summaries {
        let run = store.last_run(&s.name, RUN_GAP)?;
        let mut row = crate::row! { "campaign" => s.name, "status" => s.status.as_str(), "channel" => s.channel };
        for st in State::ALL {
            row.insert(
                st.as_str().into(),
                json!(s.counts.get(&st).copied().unwrap_or(0)),
            );
        }
        row.insert("next_due".into(), json!(s.next_due.map(|t| t.to_string())));
        row.insert(
            "last_sent".into(),
            json!(s.last_sent.map(|t| t.to_string())),
        );
        row.insert(
            "last_run".into(),
            run.as_ref().map_or(Value::Null, |r| {
                json!({
                    "started_at": r.started_at.to_string(),
                    "finished_at": r.finished_at.to_string(),
                    "attempts": r.attempts,
                    "sent": r.sent,
                    "seconds": r.seconds(),
                    "per_second": (r.per_second() * 10.0).round() / 10.0,
                })
            }),
        );
        row.insert("status_reason".into(), json!(s.status_reason));
        row.insert(
            "top_errors".into(),
            json!(
                s.top_errors
                    .iter()
                    .map(|(e, n)| json!({"error": e, "count": n}))
                    .collect::<Vec<_>>()
            ),
        );
        runs.push(run);
        rows.push(row);
    }
    match ctx.format {
        Format::Json => rows.show(Format::Json)?,
        Format::Csv => {
            // Nested values flattened into one readable cell each.
            for r in &mut rows.rows {
                let run = r.get("last_run").map(run_cell).unwrap_or_default();
                r.insert("last_run".into(), json!(run));
                let errors = r.get("top_errors").map(errors_cell).unwrap_or_default();
                r.insert("top_errors".into(), json!(errors));
            }
            rows.show(Format::Csv)?;
        }
        Format::Table => {
            if summaries.is_empty() {
                super::output::say(
                    ctx.quiet,
                    "no campaigns planned yet: run `disparo plan CAMPAIGN`",
                );
                return Ok(Exit::Ok);
            }
            // States nobody is in are left out of the table (JSON and CSV keep every column).
            let mut cols: Vec<&'static str> = vec!["campaign", "status", "channel"];
            for st in State::ALL {
                let always = matches!(st, State::Pending | State::Sent | State::Failed);
                if always
                    || summaries
                        .iter()
                        .any(|s| s.counts.get(&st).is_some_and(|n| *n > 0))
                {
                    cols.push(st.as_str());
                }
            }
            cols.extend(["next_due", "last_run"]);
            for r in &mut rows.rows {
                let next = r
                    .get("next_due")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .map(|t| relative(t, now))
                    .unwrap_or_default();
                r.insert("next_due".into(), json!(next));
                let run = r.get("last_run").map(run_cell).unwrap_or_default();
                r.insert("last_run".into(), json!(run));
            }
            let rows = Rows {
                table_columns: Some(cols),
                ..rows
            };
            rows.show(Format::Table)?;
            let mut out = String::new();
            for s in &summaries {
                if s.status != CampaignStatus::Active
                    && let Some(r) = &s.status_reason
                {
                    let style = if s.status == CampaignStatus::Paused {
                        paint::WARN
                    } else {
                        paint::DIM
                    };
                    out.push_str(&format!(
                        "\n{} is {}: {}\n",
                        paint::p(paint::HEADER, inert(&s.name)),
                        paint::p(style, s.status.as_str()),
                        inert(r)
                    ));
                    if s.status == CampaignStatus::Paused {
                        out.push_str(&format!(
                            "  {} fix the cause, then `disparo resume {}`\n",
                            paint::p(paint::ACCENT, "hint:"),
                            s.name
                        ));
                    }
                }
                if !s.top_errors.is_empty() {
                    out.push_str(&format!(
                        "\n{} — most common errors:\n",
                        paint::p(paint::HEADER, inert(&s.name))
                    ));
                    for (e, n) in &s.top_errors {
                        out.push_str(&format!("  {n:>6} × {}\n", paint::p(paint::ERR, inert(e))));
                    }
                }
            }
            if !out.is_empty() {
                super::output::ok_unless_broken(std::io::Write::write_all(
                    &mut anstream::stdout(),
                    out.as_bytes(),
                ))?;
            }
        }
    }
    Ok(Exit::Ok)
}

/// `in 3 h 5 min` / `now` / `2 min ago`, with the instant.
fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = (t.as_millisecond() - now.as_millisecond()) as f64 / 1000.0;
    let when = if secs.abs() < 1.0 {
        "now".to_owned()
    } else if secs > 0.0 {
        format!("in {}", human_duration(secs))
    } else {
        format!("{} ago", human_duration(-secs))
    };
    // Shown to the second like every instant in a table (docs/output.md).
    let t = t
        .round(
            jiff::TimestampRound::new()
                .smallest(jiff::Unit::Second)
                .mode(jiff::RoundMode::Trunc),
        )
        .unwrap_or(t);
    format!("{t} ({when})")
}

/// `62 sent of 62 in 1.2 s (52/s)` from the JSON of a run.
fn run_cell(v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    let n = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    format!(
        "{} sent of {} in {} ({:.0}/s)",
        n("sent"),
        n("attempts"),
        human_duration(n("seconds")),
        n("per_second")
    )
}

/// `3× timeout; 1× bad number` from the JSON list of errors.
fn errors_cell(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{}× {}",
                        e.get("count").and_then(Value::as_u64).unwrap_or(0),
                        e.get("error").and_then(Value::as_str).unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}
