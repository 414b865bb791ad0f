//! `disparo status`: per campaign, counts by state, what its receipts say (delivered, read,
//! undelivered, bounced, opted out), next due instant, the last run's throughput, why a
//! campaign is paused, and its most common errors; `--by locale|zone|variant`, the funnel per group.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::funnel::By;
use super::output::{Rows, human_duration, inert, paint};
use super::{CliResult, Ctx, Exit, Format};
use disparo::receipt::{Funnel, FunnelBy};
use disparo::store::{CampaignStatus, CampaignSummary, RunStats, State, Store};

/// Attempts further apart than this belong to different runs.
pub const RUN_GAP: SignedDuration = SignedDuration::from_mins(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this campaign.
    pub campaign: Option<String>,
    /// The funnel (planned → sent → delivered → read, failed, bounced, opted out) split by
    /// the recipients' locale, zone or A/B variant: one row per campaign and group.
    #[arg(long, value_enum, value_name = "locale|zone|variant")]
    pub by: Option<By>,
}

const COLUMNS: [&str; 25] = [
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
    "delivered",
    "read",
    "undelivered",
    "bounced",
    "opted_out",
    "delivered_pct",
    "read_pct",
    "next_due",
    "last_sent",
    "last_run",
    "status_reason",
    "top_errors",
    "follows",
    "waiting",
    "not_needed",
];

/// What receipts add to a campaign's row; the table shows a count only when a campaign has
/// some (a console or outbox channel gets none).
const RECEIPT_COUNTS: [&str; 5] = ["delivered", "read", "undelivered", "bounced", "opted_out"];

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let project = ctx.project().ok();
    let store = ctx.existing_store(project.as_ref(), disparo::store::Access::ReadOnly)?;
    let campaign = match &args.campaign {
        Some(c) => Some(super::campaign_name(project.as_ref(), store.as_ref(), c)?),
        None => None,
    };
    if let Some(by) = args.by {
        return by_group(ctx, store.as_ref(), campaign.as_deref(), by);
    }
    let summaries = store.summaries(campaign.as_deref())?;
    let funnels = store.funnel(campaign.as_deref(), FunnelBy::Campaign)?;
    let mut rows = Rows::new(&COLUMNS);
    let mut steps = Vec::new();
    for s in &summaries {
        let run = store.last_run(&s.name, RUN_GAP)?;
        let funnel = funnels.iter().find(|f| f.campaign == s.name);
        let mut row = campaign_row(s, funnel, run.as_ref());
        let follows = store.campaign(&s.name)?.and_then(|c| c.rules.follows);
        if let Some(f) = &follows {
            let progress = store.follow_up_progress(&s.name, &f.parent)?;
            row.insert("follows".into(), json!(f.describe()));
            row.insert("waiting".into(), json!(progress.waiting));
            row.insert("not_needed".into(), json!(progress.not_needed));
            steps.push((s.name.clone(), f.describe(), progress));
        }
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
            print_table(rows, &summaries, ctx.now(), !steps.is_empty())?;
            print_steps(&steps)?;
        }
    }
    Ok(Exit::Ok)
}

/// One campaign's row: counts by queue state, what its receipts say, its next and last sends.
fn campaign_row(
    s: &CampaignSummary,
    funnel: Option<&Funnel>,
    run: Option<&RunStats>,
) -> Map<String, Value> {
    let mut row =
        crate::row! { "campaign" => s.name, "status" => s.status.as_str(), "channel" => s.channel };
    for st in State::ALL {
        row.insert(
            st.as_str().into(),
            json!(s.counts.get(&st).copied().unwrap_or(0)),
        );
    }
    let empty = Funnel::default();
    let metrics = super::funnel::metrics(funnel.unwrap_or(&empty));
    for k in RECEIPT_COUNTS.iter().chain(&["delivered_pct", "read_pct"]) {
        row.insert((*k).into(), metrics.get(*k).cloned().unwrap_or(Value::Null));
    }
    row.insert("next_due".into(), json!(s.next_due.map(|t| t.to_string())));
    row.insert(
        "last_sent".into(),
        json!(s.last_sent.map(|t| t.to_string())),
    );
    row.insert(
        "last_run".into(),
        run.map_or(Value::Null, |r| {
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
    row
}

/// The table: states nobody is in and receipt counts nobody has are left out (JSON and CSV
/// keep every column), then the notes.
fn print_table(
    mut rows: Rows,
    summaries: &[CampaignSummary],
    now: Timestamp,
    follow_ups: bool,
) -> CliResult {
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
    let nonzero = |c: &str| {
        rows.rows
            .iter()
            .any(|r| r.get(c).and_then(Value::as_u64).is_some_and(|n| n > 0))
    };
    let receipts: Vec<&'static str> = RECEIPT_COUNTS.into_iter().filter(|c| nonzero(c)).collect();
    if !receipts.is_empty() {
        // The rates divide these two, so they are there whenever the rates are.
        cols.extend(["delivered", "read"]);
        cols.extend(
            receipts
                .iter()
                .filter(|c| !matches!(**c, "delivered" | "read")),
        );
        cols.extend(["delivered_pct", "read_pct"]);
    }
    if follow_ups {
        cols.extend(["waiting", "not_needed"]);
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
    print_notes(summaries)
}

/// Below the table: each follow-up with the rule that decides it and how far it has come.
fn print_steps(steps: &[(String, String, disparo::store::FollowUpProgress)]) -> CliResult {
    if steps.is_empty() {
        return Ok(Exit::Ok);
    }
    let mut out = String::from("\nfollow-ups:\n");
    for (name, rule, p) in steps {
        out.push_str(&format!(
            "  {}: {} — {} recipient(s) planned, {} parent message(s) not decided yet, {} not needed\n",
            paint::p(paint::HEADER, inert(name)),
            inert(rule),
            p.drafts,
            p.waiting,
            p.not_needed
        ));
    }
    super::output::ok_unless_broken(std::io::Write::write_all(
        &mut anstream::stdout(),
        out.as_bytes(),
    ))?;
    Ok(Exit::Ok)
}

/// Below the table: why campaigns are not active, and their most common errors.
fn print_notes(summaries: &[CampaignSummary]) -> CliResult {
    let mut out = String::new();
    for s in summaries {
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
    Ok(Exit::Ok)
}

/// `status --by locale|zone|variant`: the funnel, one row per campaign and group.
fn by_group(ctx: &Ctx, store: &dyn Store, campaign: Option<&str>, by: By) -> CliResult {
    let funnels = store.funnel(campaign, By::store(Some(by)))?;
    let mut rows = Rows::new(&super::funnel::columns(Some(by)))
        .table_columns(&super::funnel::table_columns(Some(by)));
    for f in &funnels {
        rows.push(super::funnel::row(f, Some(by)));
    }
    if ctx.format == Format::Table {
        if funnels.is_empty() {
            super::output::say(
                ctx.quiet,
                "no campaigns planned yet: run `disparo plan CAMPAIGN`",
            );
            return Ok(Exit::Ok);
        }
        let group = match by {
            By::Locale => "locale",
            By::Zone => "zone",
            By::Variant => "variant",
        };
        for r in &mut rows.rows {
            if r.get(group).is_none_or(Value::is_null) {
                r.insert(group.into(), json!(super::funnel::NO_GROUP));
            }
        }
    }
    rows.show(ctx.format)?;
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
