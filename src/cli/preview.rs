//! `disparo preview`: what each person will receive and when, plus a forecast. No database.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;

use jiff::Timestamp;
use serde_json::json;

use super::{CliResult, Ctx, Exit, Format};
use crate::model::Campaign;
use crate::plan::{PlanOptions, PlannedRow, Planner};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The campaign (name or file).
    pub campaign: String,
    /// Only these recipients (by id); repeatable.
    #[arg(long = "recipient", value_name = "ID")]
    pub recipients: Vec<String>,
    /// Messages shown (default 20 in a table, all in JSON); the forecast always covers all.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also show the exact request each message's channel would send (secrets redacted).
    #[arg(long)]
    pub show_request: bool,
}

/// Totals over every planned message, for the forecast.
#[derive(Debug, Default)]
struct Forecast {
    messages: u64,
    errors: u64,
    skipped: u64,
    moved: BTreeMap<&'static str, u64>,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    per_hour: BTreeMap<i64, u64>,
}

impl Forecast {
    fn add(&mut self, r: &PlannedRow) {
        if r.skipped.is_some() {
            self.skipped += 1;
            return;
        }
        self.messages += 1;
        for name in r.reasons.names() {
            *self.moved.entry(name).or_default() += 1;
        }
        self.first = Some(self.first.map_or(r.at, |f| f.min(r.at)));
        self.last = Some(self.last.map_or(r.at, |l| l.max(r.at)));
        *self
            .per_hour
            .entry(r.at.as_second().div_euclid(3600))
            .or_default() += 1;
    }
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let project = ctx.project()?;
    let file = project.find_campaign(&args.campaign)?;
    let campaign = Campaign::load(&file, &project.root)?;
    let mut opts = PlanOptions::new(ctx.now());
    // Preview touches no database: suppressions are read only if the database already exists.
    if ctx.db_exists(Some(&project)) {
        let store = ctx.store(Some(&project))?;
        opts.suppressed = crate::store::Store::suppressions(&store)?
            .into_iter()
            .map(|s| s.address)
            .collect();
    }
    let mut planner = Planner::prepare(&project, campaign, opts)?;
    let channel = if args.show_request || ctx.format == Format::Json {
        let build = super::run::build_context(&project)?;
        super::run::build_channel(
            &build,
            &project,
            &planner.campaign.channel,
            &planner.channel,
        )
        .ok()
    } else {
        None
    };
    let limit = args.limit.unwrap_or(if ctx.format == Format::Json {
        usize::MAX
    } else {
        20
    });
    let rate = planner.campaign.throttle.or(planner.settings.rate);
    let name = planner.campaign.name.clone();
    let channel_name = planner.campaign.channel.clone();
    let mut forecast = Forecast::default();
    let mut shown = 0usize;
    let mut hidden = 0u64;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut io_err = None;
    planner.run(&mut |item| {
        let wanted = |id: Option<&str>| args.recipients.is_empty() || id.is_some_and(|id| args.recipients.iter().any(|r| r == id));
        let res = match item {
            Ok(row) => {
                forecast.add(&row);
                if !wanted(Some(&row.recipient)) {
                    return ControlFlow::Continue(());
                }
                if shown >= limit {
                    hidden += 1;
                    return ControlFlow::Continue(());
                }
                shown += 1;
                let request = if args.show_request || ctx.format == Format::Json {
                    channel.as_ref().map(|c| c.preview_request(&envelope(&name, &channel_name, &row, ctx.now())))
                } else {
                    None
                };
                match ctx.format {
                    Format::Json => writeln!(out, "{}", message_json(&name, &channel_name, &row, request.as_ref())),
                    _ => write_message(&mut out, &row, request.as_ref(), args.show_request),
                }
            }
            Err((id, problem)) => {
                forecast.errors += 1;
                if !wanted(id.as_deref()) {
                    return ControlFlow::Continue(());
                }
                match ctx.format {
                    Format::Json => writeln!(
                        out,
                        "{}",
                        json!({"campaign": name, "recipient": id, "channel": channel_name, "occurrence": 0, "error": problem.to_string()})
                    ),
                    _ => writeln!(out, "✗ {}: {problem}\n", id.as_deref().unwrap_or("?")),
                }
            }
        };
        match res {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                io_err = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    let _ = out.flush();
    drop(out);
    if let Some(e) = io_err
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(super::CliError::Internal(format!(
            "cannot write the preview: {e}"
        )));
    }
    if ctx.format != Format::Json && !ctx.quiet {
        if hidden > 0 {
            eprintln!("… {hidden} more message(s) not shown (use --limit N or --recipient ID)\n");
        }
        print_forecast(
            &name,
            &channel_name,
            rate.map(|r| r.as_per_second()),
            &forecast,
            &planner,
        );
    }
    Ok(if forecast.errors > 0 {
        Exit::Invalid
    } else {
        Exit::Ok
    })
}

fn envelope(
    campaign: &str,
    channel: &str,
    row: &PlannedRow,
    now: Timestamp,
) -> crate::message::Envelope {
    crate::message::Envelope {
        message_id: crate::store::message_key(campaign, &row.recipient, row.occurrence),
        campaign: campaign.to_owned(),
        recipient: row.recipient.clone(),
        channel: channel.to_owned(),
        address: row.address.clone(),
        locale: row.locale.clone(),
        content: row.content.clone(),
        vars: row.vars.clone(),
        scheduled_at: row.at,
        attempt: 1,
        attempt_at: now.max(row.at),
    }
}

fn local_rfc3339(row: &PlannedRow) -> String {
    row.at_local.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The SPEC §3 JSON Lines object of one message.
pub fn message_json(
    campaign: &str,
    channel: &str,
    row: &PlannedRow,
    request: Option<&serde_json::Value>,
) -> serde_json::Value {
    let mut v = json!({
        "campaign": campaign,
        "recipient": row.recipient,
        "channel": channel,
        "address": row.address,
        "zone": row.zone,
        "locale": row.locale,
        "occurrence": row.occurrence,
        "send_at": row.at.to_string(),
        "send_at_local": local_rfc3339(row),
        "reasons": row.reasons.names().collect::<Vec<_>>(),
        "body": row.content.body,
    });
    let obj = v.as_object_mut().expect("built as an object");
    if let Some(s) = &row.content.subject {
        obj.insert("subject".into(), json!(s));
    }
    if let Some(wa) = &row.content.whatsapp {
        obj.insert("whatsapp".into(), json!(wa));
    }
    if let Some(reason) = &row.skipped {
        obj.insert("skipped".into(), json!(reason));
    }
    if let Some(r) = request {
        obj.insert("request".into(), r.clone());
    }
    v
}

fn write_message(
    out: &mut impl Write,
    row: &PlannedRow,
    request: Option<&serde_json::Value>,
    show_request: bool,
) -> std::io::Result<()> {
    let moved = if row.reasons.is_empty() {
        String::new()
    } else {
        format!(
            "   moved: {}",
            row.reasons.names().collect::<Vec<_>>().join(", ")
        )
    };
    let locale = row
        .locale
        .as_deref()
        .map(|l| format!(" · {l}"))
        .unwrap_or_default();
    let occ = if row.occurrence > 0 {
        format!(" · occurrence {}", row.occurrence)
    } else {
        String::new()
    };
    writeln!(
        out,
        "── {} → {}  [{}{}{}]",
        row.recipient, row.address, row.zone, locale, occ
    )?;
    writeln!(
        out,
        "   at {}  ({}){}",
        row.at_local.strftime("%a %Y-%m-%d %H:%M %:z"),
        row.at,
        moved
    )?;
    if let Some(reason) = &row.skipped {
        writeln!(out, "   SKIPPED: {reason}")?;
    }
    if let Some(s) = &row.content.subject {
        writeln!(out, "   Subject: {s}")?;
    }
    if let Some(wa) = &row.content.whatsapp {
        writeln!(
            out,
            "   WhatsApp template {} ({}) · params: {}",
            wa.name,
            wa.language,
            wa.body.join(" | ")
        )?;
    }
    for line in row.content.body.lines() {
        writeln!(out, "   │ {line}")?;
    }
    if show_request && let Some(r) = request {
        writeln!(
            out,
            "   request: {}",
            serde_json::to_string_pretty(r)
                .unwrap_or_default()
                .replace('\n', "\n   ")
        )?;
    }
    writeln!(out)
}

fn print_forecast(name: &str, channel: &str, rate: Option<f64>, f: &Forecast, planner: &Planner) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "Forecast for {name} (channel {channel}, template {})",
        planner.templates.name()
    );
    let _ = writeln!(e, "  messages    {}", f.messages);
    if f.skipped > 0 {
        let _ = writeln!(
            e,
            "  skipped     {} (suppressed or late with `late: skip`)",
            f.skipped
        );
    }
    if f.errors > 0 {
        let _ = writeln!(
            e,
            "  errors      {} recipient(s) cannot be planned (see above; `disparo validate` lists them all)",
            f.errors
        );
    }
    for (reason, n) in &f.moved {
        let _ = writeln!(e, "  moved       {n} by {reason}");
    }
    if let (Some(first), Some(last)) = (f.first, f.last) {
        let _ = writeln!(e, "  first send  {first}");
        let _ = writeln!(e, "  last send   {last}");
    }
    match rate {
        Some(r) if f.messages > 0 => {
            let secs = f.messages as f64 / r;
            let _ = writeln!(
                e,
                "  at {r}/s the busiest hour ({} messages) takes {:.0} s to send",
                f.per_hour.values().max().copied().unwrap_or(0),
                f.per_hour.values().max().copied().unwrap_or(0) as f64 / r
            );
            let _ = writeln!(
                e,
                "  sending all at {r}/s takes {secs:.0} s of channel time"
            );
        }
        _ => {}
    }
}
