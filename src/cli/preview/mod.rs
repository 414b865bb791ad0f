//! `disparo preview`: what each person will receive and when, plus a forecast. No database.
//!
//! Table: one block per message (as it will arrive, local and UTC time, why it moved, length
//! and SMS segments, warnings), the forecast on stderr. JSON: one object per message (the
//! fields of docs/output.md plus `chars`, `segments`, `encoding`, `warnings`); `--forecast` adds a final
//! `{"forecast": …}` line. CSV: one row per message.

mod follow_up;

use std::io::Write;
use std::ops::ControlFlow;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};

use super::output::{bar, human_duration, inert, inert_text, paint};
use super::{CliError, CliResult, Ctx, Exit, Format};
use disparo::app::checks::{Checks, Kind, US_MARKETING, check_to};
use disparo::app::forecast::{Forecast, REASONS, RampOutlook};
use disparo::app::preview::Preview;
use disparo::diag::Problem;
use disparo::model::Campaign;
use disparo::plan::PlannedRow;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The campaign (name or file).
    pub campaign: String,
    /// Only these recipients (by id); repeatable.
    #[arg(long = "recipient", value_name = "ID")]
    pub recipients: Vec<String>,
    /// Messages shown (default 20 in a table, all in JSON and CSV); the forecast always covers all.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also show the exact request each message's channel would send (secrets redacted).
    #[arg(long)]
    pub show_request: bool,
    /// The forecast as data on stdout: with --format json a final `{"forecast": …}` line; in a
    /// table, after the messages instead of on stderr. (`--limit 0 --forecast`: only the forecast.)
    #[arg(long)]
    pub forecast: bool,
}

/// Why a message moved, in words, with the campaign's own settings.
fn explain(reason: &str, c: &Campaign) -> String {
    match reason {
        "quiet_hours" => match &c.window.quiet {
            Some(q) => format!(
                "quiet hours {}–{}",
                q.start().strftime("%H:%M"),
                q.end().strftime("%H:%M")
            ),
            None => "quiet hours".into(),
        },
        "weekday" => "not an allowed weekday".into(),
        "blackout" => "blackout date".into(),
        "late" => format!("already past at plan time (late: {})", c.late.name()),
        "cap" => "frequency cap".into(),
        other => other.into(),
    }
}

/// Everything the forecast shows, described once for the table and for JSON.
struct Report<'a> {
    campaign: &'a Campaign,
    channel_type: &'static str,
    kind: Kind,
    template: String,
    zone_name: String,
    zone: TimeZone,
    rate: Option<f64>,
    concurrency: usize,
    f: Forecast,
    audit: &'a disparo::audit::Audit,
    ramp: Option<RampOutlook>,
}

fn hour_ts(h: i64) -> Timestamp {
    Timestamp::from_second(h * 3600).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Report<'_> {
    fn json(&self) -> Value {
        let f = &self.f;
        let local = |t: Timestamp| {
            t.to_zoned(self.zone.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        };
        let busiest = f.per_hour.iter().max_by_key(|(h, n)| (**n, -**h));
        let mut moved = Map::new();
        for r in REASONS {
            moved.insert(r.into(), json!(f.moved.get(r).copied().unwrap_or(0)));
        }
        let (utc, loc): (Vec<Value>, Vec<Value>) = if f.by_actual_hour() {
            f.per_hour
                .iter()
                .map(|(h, n)| {
                    (
                        json!({"hour": hour_ts(*h).to_string(), "messages": n}),
                        json!({"hour": local(hour_ts(*h)), "messages": n}),
                    )
                })
                .unzip()
        } else {
            let of = |a: &[u64; 24]| {
                a.iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(h, n)| json!({"hour": format!("{h:02}:00"), "messages": n}))
                    .collect::<Vec<_>>()
            };
            (of(&f.per_hour_of_day_utc), of(&f.per_hour_of_day_local))
        };
        json!({
            "campaign": self.campaign.name,
            "channel": self.campaign.channel,
            "channel_type": self.channel_type,
            "template": self.template,
            "zone": self.zone_name,
            "recipients": f.recipients,
            "messages": f.messages,
            "errors": f.errors,
            "skipped": {"suppressed": f.suppressed, "late": f.late_skipped},
            "moved": moved,
            "first_send": f.first.map(|t| t.to_string()),
            "first_send_local": f.first.map(local),
            "last_send": f.last.map(|t| t.to_string()),
            "last_send_local": f.last.map(local),
            "rate_per_second": self.rate,
            "concurrency": self.concurrency,
            "send_seconds": self.rate.map(|r| f.messages as f64 / r),
            "busiest_hour": busiest.map(|(h, n)| json!({
                "hour": hour_ts(*h).to_string(),
                "messages": n,
                "send_seconds": self.rate.map(|r| *n as f64 / r),
            })),
            "sms_segments": (self.kind == Kind::Sms).then_some(f.segments),
            "multi_segment_messages": (self.kind == Kind::Sms).then_some(f.multi_segment),
            "messages_with_warnings": f.with_warnings,
            "caps_at_dispatch": !self.campaign.caps.is_empty(),
            "ramp": self.ramp.as_ref().map(RampOutlook::json),
            "filter": self.campaign.filter.as_ref().map(|flt| json!({
                "where": flt.text(),
                "kept": f.recipients.saturating_sub(self.audit.filtered_total()),
                "removed": self.audit.removed_by(flt).into_iter()
                    .map(|(clause, n)| json!({ "clause": clause, "recipients": n }))
                    .collect::<Vec<_>>(),
            })),
            "zone_fallback": self.audit.zone_fallback,
            "zone_from_phone": self.audit.zone_from_phone,
            "per_hour_mode": if f.by_actual_hour() { "hour" } else { "hour_of_day" },
            "per_hour_utc": utc,
            "per_hour_local": loc,
        })
    }

    fn text(&self) -> String {
        use std::fmt::Write as _;
        let f = &self.f;
        let h = |s: &str| paint::p(paint::HEADER, s);
        let mut o = String::new();
        let rate = self
            .rate
            .map(|r| format!(", {}", disparo::units::Rate::per_second(r)))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "{} {} · channel {} ({}{rate}) · template {}",
            h("Forecast"),
            paint::p(paint::ACCENT, &self.campaign.name),
            self.campaign.channel,
            self.channel_type,
            self.template
        );
        let _ = writeln!(
            o,
            "  messages      {} for {} recipient(s)",
            h(&f.messages.to_string()),
            f.recipients
        );
        if let Some(flt) = &self.campaign.filter {
            let _ = writeln!(
                o,
                "  where         {} of {} recipient(s) kept ({})",
                f.recipients.saturating_sub(self.audit.filtered_total()),
                f.recipients,
                self.audit
                    .removed_by(flt)
                    .into_iter()
                    .map(|(clause, n)| format!("{n} removed by {}", inert_text(clause)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if f.errors > 0 {
            let _ = writeln!(
                o,
                "  errors        {} recipient(s) cannot be planned (see above; `disparo validate` lists them all)",
                paint::p(paint::ERR, f.errors)
            );
        }
        let local = |t: Timestamp| {
            t.to_zoned(self.zone.clone())
                .strftime("%a %Y-%m-%d %H:%M %:z")
                .to_string()
        };
        if let (Some(first), Some(last)) = (f.first, f.last) {
            let _ = writeln!(
                o,
                "  first send    {first}  {}",
                paint::p(paint::DIM, format!("{} {}", local(first), self.zone_name))
            );
            let _ = writeln!(
                o,
                "  last send     {last}  {}",
                paint::p(paint::DIM, format!("{} {}", local(last), self.zone_name))
            );
            let spread = (last.as_second() - first.as_second()) as f64;
            if spread > 0.0 {
                let _ = writeln!(
                    o,
                    "  spread        {} from first to last",
                    human_duration(spread)
                );
            }
        }
        match self.rate {
            Some(r) if f.messages > 0 => {
                let busiest = f.per_hour.values().max().copied().unwrap_or(0);
                let _ = writeln!(
                    o,
                    "  channel time  {} at {} (busiest hour: {busiest} messages, {})",
                    human_duration(f.messages as f64 / r),
                    disparo::units::Rate::per_second(r),
                    human_duration(busiest as f64 / r)
                );
            }
            None if f.messages > 0 => {
                let _ = writeln!(
                    o,
                    "  channel time  no rate limit set: as fast as the provider accepts, {} at a time",
                    self.concurrency
                );
            }
            _ => {}
        }
        let moved: Vec<String> = REASONS
            .iter()
            .map(|r| {
                let n = f.moved.get(r).copied().unwrap_or(0);
                let s = format!("{} {n}", r.replace('_', " "));
                if n > 0 { paint::p(paint::WARN, s) } else { s }
            })
            .collect();
        let _ = writeln!(o, "  moved by      {}", moved.join(" · "));
        let _ = writeln!(
            o,
            "  skipped       suppressed {} · late {}",
            f.suppressed, f.late_skipped
        );
        if let Some(z) = disparo::audit::zone_line(self.audit, &self.zone_name) {
            let _ = writeln!(o, "  zones         {}", paint::p(paint::WARN, z));
        }
        if !self.campaign.caps.is_empty() {
            let _ = writeln!(
                o,
                "  caps          frequency caps are applied at dispatch, against what was already sent"
            );
        }
        if let Some(r) = self.ramp.as_ref().filter(|_| f.messages > 0) {
            let _ = writeln!(o, "  ramp          {}", paint::p(paint::WARN, r.text()));
        }
        if self.kind == Kind::Sms && f.messages > 0 {
            let _ = writeln!(
                o,
                "  SMS           {} segment(s); {} message(s) longer than one segment",
                f.segments, f.multi_segment
            );
        }
        if f.with_warnings > 0 {
            let _ = writeln!(
                o,
                "  warnings      {} message(s) with warnings",
                paint::p(paint::WARN, f.with_warnings)
            );
        }
        if f.messages > 0 {
            self.histogram(&mut o);
        }
        o
    }

    fn histogram(&self, o: &mut String) {
        use std::fmt::Write as _;
        const WIDTH: usize = 32;
        let f = &self.f;
        if f.by_actual_hour() {
            let max = f.per_hour.values().max().copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "  {}\n    {:<12}  {}",
                paint::p(paint::HEADER, "sends per hour"),
                "UTC",
                self.zone_name
            );
            for (hr, n) in &f.per_hour {
                let t = hour_ts(*hr);
                let l = t.to_zoned(self.zone.clone());
                let _ = writeln!(
                    o,
                    "    {:<12}  {:<18}  {} {n}",
                    t.strftime("%a %d %H:%M").to_string(),
                    l.strftime("%a %d %H:%M %:z").to_string(),
                    paint::p(paint::ACCENT, bar(*n, max, WIDTH))
                );
            }
        } else {
            let days = f
                .first
                .zip(f.last)
                .map(|(a, b)| (b.as_second() - a.as_second()) / 86_400 + 1)
                .unwrap_or(0);
            for (label, hours) in [
                ("UTC", &f.per_hour_of_day_utc),
                (self.zone_name.as_str(), &f.per_hour_of_day_local),
            ] {
                let max = hours.iter().max().copied().unwrap_or(0);
                let _ = writeln!(
                    o,
                    "  {}",
                    paint::p(
                        paint::HEADER,
                        format!("sends by hour of day ({label}), over {days} days")
                    )
                );
                for (hr, n) in hours.iter().enumerate().filter(|(_, n)| **n > 0) {
                    let _ = writeln!(
                        o,
                        "    {hr:02}:00  {} {n}",
                        paint::p(paint::ACCENT, bar(*n, max, WIDTH))
                    );
                }
            }
        }
    }
}

const CSV_COLUMNS: [&str; 20] = [
    "campaign",
    "recipient",
    "channel",
    "address",
    "zone",
    "locale",
    "occurrence",
    "send_at",
    "send_at_local",
    "reasons",
    "skipped",
    "subject",
    "whatsapp",
    "body",
    "chars",
    "segments",
    "encoding",
    "warnings",
    "request",
    "error",
];

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    if args.forecast && ctx.format == Format::Csv {
        return Err(Problem::new(
            "--forecast has no CSV form: the forecast is not a table of messages",
        )
        .field("--forecast")
        .hint("use --format json --forecast for the forecast as data, or the table")
        .into());
    }
    let project = ctx.project()?;
    let db = ctx.database(Some(&project));
    let data = ctx.format != Format::Table;
    let Preview {
        mut planner,
        channel,
        kind,
        rate,
        zone_name,
        zone,
        follow_up,
        ramp,
    } = disparo::app::preview::prepare(
        &project,
        &db,
        &args.campaign,
        ctx.now(),
        args.show_request || ctx.format == Format::Json,
    )?;
    let limit = args.limit.unwrap_or(if data { usize::MAX } else { 20 });
    let name = planner.campaign.name.clone();
    let channel_name = planner.campaign.channel.clone();
    let campaign = planner.campaign.clone();
    let mut forecast = Forecast::default();
    let mut shown = 0usize;
    let mut hidden = 0u64;
    let stdout = anstream::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut csv_started = false;
    let mut io_err = None;
    let mut us_marketing = 0u64;
    let mut tally = disparo::app::follow_up::Tally::default();
    let recipients = planner.run(&mut |item| {
        let wanted = |id: Option<&str>| args.recipients.is_empty() || id.is_some_and(|id| args.recipients.iter().any(|r| r == id));
        let res = match item {
            Ok(row) => {
                let checks = check_to(kind, &row.content, &row.address);
                us_marketing += u64::from(checks.warnings.iter().any(|w| w == US_MARKETING));
                forecast.add(row, &checks, &zone);
                if !wanted(Some(&row.recipient)) {
                    return ControlFlow::Continue(());
                }
                if shown >= limit {
                    hidden += 1;
                    return ControlFlow::Continue(());
                }
                shown += 1;
                let request = if args.show_request || ctx.format == Format::Json {
                    channel.as_ref().map(|c| c.preview_request(&envelope(&name, &channel_name, row, ctx.now())))
                } else {
                    None
                };
                let mut v = message_json(&name, &channel_name, row, request.as_ref());
                add_checks(&mut v, &checks);
                let judged = follow_up
                    .as_ref()
                    .map(|f| f.judge(&row.recipient, &row.zone, &campaign.window, ctx.now(), &mut tally));
                if let Some(j) = &judged {
                    v["follow_up"] = json!(j);
                }
                match ctx.format {
                    Format::Json => writeln!(out, "{v}"),
                    Format::Csv => write_csv(&mut out, &mut csv_started, &v, args.show_request),
                    Format::Table => write_message(&mut out, row, &campaign, &checks, request.as_ref(), args.show_request, judged.as_deref()),
                }
            }
            Err(disparo::plan::Unplanned {
                recipient: id,
                problem,
                ..
            }) => {
                forecast.errors += 1;
                if !wanted(id.as_deref()) {
                    return ControlFlow::Continue(());
                }
                let v = json!({"campaign": name, "recipient": id, "channel": channel_name, "occurrence": 0, "error": problem.to_string()});
                match ctx.format {
                    Format::Json => writeln!(out, "{v}"),
                    Format::Csv => write_csv(&mut out, &mut csv_started, &v, args.show_request),
                    Format::Table => writeln!(
                        out,
                        "{} {}: {}\n",
                        paint::p(paint::ERR, "✗"),
                        inert(id.as_deref().unwrap_or("?")),
                        inert_text(&problem.to_string())
                    ),
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
    forecast.recipients = recipients;
    if !ctx.quiet {
        let audit = planner.audit();
        for n in audit.notes(&planner.campaign.audience) {
            eprintln!("note: {}", inert_text(&n));
        }
        if let Some(n) = audit.filter_line(&planner.campaign, recipients) {
            eprintln!("note: {}", inert_text(&n));
        }
        if let Some(f) = &follow_up {
            eprintln!(
                "note: {}",
                inert_text(&follow_up::follow_up_line(f, &tally))
            );
        }
        for w in audit.warnings(&planner.campaign, &planner.settings.address_field) {
            eprintln!("warning: {}", inert_text(&w));
        }
        // JSON and CSV carry it in each message's `warnings`.
        if us_marketing > 0 && ctx.format == Format::Table {
            eprintln!("warning: {us_marketing} message(s): {US_MARKETING}");
        }
    }
    if ctx.format == Format::Csv
        && !csv_started
        && io_err.is_none()
        && let Err(e) = write_csv_header(&mut out, args.show_request)
    {
        io_err = Some(e);
    }
    let ramp = ramp
        .map(|(r, usage)| RampOutlook::of(&channel_name, &r, usage.as_ref(), ctx.now(), &forecast));
    let report = Report {
        ramp,
        campaign: &planner.campaign,
        channel_type: planner.channel.type_name(),
        kind,
        template: planner.templates.name().to_owned(),
        zone_name,
        zone,
        rate,
        concurrency: planner.settings.concurrency,
        f: forecast,
        audit: planner.audit(),
    };
    if io_err.is_none() && args.forecast {
        let r = match ctx.format {
            Format::Json => writeln!(out, "{}", json!({ "forecast": report.json() })),
            _ => write!(out, "{}", report.text()),
        };
        if let Err(e) = r {
            io_err = Some(e);
        }
    }
    if io_err.is_none()
        && let Err(e) = out.flush()
    {
        io_err = Some(e);
    }
    drop(out);
    if let Some(e) = io_err
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(CliError::Internal(format!("cannot write the preview: {e}")));
    }
    if ctx.format == Format::Table && !ctx.quiet {
        let mut err = anstream::stderr().lock();
        if hidden > 0 && args.limit != Some(0) {
            let _ = writeln!(
                err,
                "… {hidden} more message(s) not shown (use --limit N or --recipient ID)\n"
            );
        }
        if !args.forecast {
            let _ = write!(err, "{}", report.text());
        }
    }
    Ok(if report.f.errors > 0 {
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
) -> disparo::message::Envelope {
    disparo::message::Envelope {
        message_id: disparo::store::message_key(campaign, &row.recipient, row.occurrence),
        campaign: campaign.to_owned(),
        recipient: row.recipient.clone(),
        channel: channel.to_owned(),
        address: row.address.clone(),
        locale: row.locale.clone(),
        content: row.content.clone(),
        vars: row.vars.to_map(),
        scheduled_at: row.at,
        attempt: 1,
        attempt_at: now.max(row.at),
    }
}

fn local_rfc3339(row: &PlannedRow) -> String {
    row.at_local.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The JSON Lines object of one message (docs/output.md).
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
    if let Some(v) = &row.content.variant {
        obj.insert("variant".into(), json!(v));
    }
    if let Some(reason) = &row.skipped {
        obj.insert("skipped".into(), json!(reason));
    }
    if let Some(note) = row.zone_source.note(&row.zone) {
        obj.insert("zone_note".into(), json!(note));
    }
    if let Some(r) = request {
        obj.insert("request".into(), r.clone());
    }
    v
}

fn add_checks(v: &mut Value, c: &Checks) {
    let Some(obj) = v.as_object_mut() else { return };
    obj.insert("chars".into(), json!(c.chars));
    if let Some(s) = &c.segments {
        obj.insert("segments".into(), json!(s.segments));
        obj.insert("encoding".into(), json!(s.encoding));
    }
    obj.insert("warnings".into(), json!(c.warnings));
}

fn write_csv_header(out: &mut impl Write, show_request: bool) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(
        CSV_COLUMNS
            .iter()
            .filter(|c| show_request || **c != "request"),
    )?;
    w.flush()?;
    Ok(())
}

fn write_csv(
    out: &mut impl Write,
    started: &mut bool,
    v: &Value,
    show_request: bool,
) -> std::io::Result<()> {
    if !*started {
        write_csv_header(out, show_request)?;
        *started = true;
    }
    let cell = |c: &str| -> String {
        match (c, v.get(c)) {
            ("whatsapp", Some(wa)) if !wa.is_null() => format!(
                "{} ({}): {}",
                wa.get("name").and_then(Value::as_str).unwrap_or(""),
                wa.get("language").and_then(Value::as_str).unwrap_or(""),
                wa.get("body")
                    .and_then(Value::as_array)
                    .map(|a| a
                        .iter()
                        .map(|x| super::output::cell(Some(x)))
                        .collect::<Vec<_>>()
                        .join(" | "))
                    .unwrap_or_default()
            ),
            ("warnings", Some(Value::Array(a))) => a
                .iter()
                .map(|x| super::output::cell(Some(x)))
                .collect::<Vec<_>>()
                .join("; "),
            ("request", Some(r)) if !r.is_null() => r.to_string(),
            (_, x) => super::output::cell(x),
        }
    };
    let mut w = csv::Writer::from_writer(out);
    w.write_record(
        CSV_COLUMNS
            .iter()
            .filter(|c| show_request || **c != "request")
            .map(|c| super::output::csv_cell(cell(c))),
    )?;
    w.flush()?;
    Ok(())
}

fn write_message(
    out: &mut impl Write,
    row: &PlannedRow,
    campaign: &Campaign,
    checks: &Checks,
    request: Option<&serde_json::Value>,
    show_request: bool,
    follow_up: Option<&[disparo::app::follow_up::Judged]>,
) -> std::io::Result<()> {
    let dim = |s: String| paint::p(paint::DIM, s);
    let mut head = format!(
        "── {} → {}  {}",
        paint::p(paint::HEADER, inert(&row.recipient)),
        inert(&row.address),
        inert(&row.zone)
    );
    if let Some(note) = row.zone_source.note(&row.zone) {
        head.push_str(&format!(" {}", paint::p(paint::WARN, format!("({note})"))));
    }
    if let Some(l) = &row.locale {
        head.push_str(&format!(" · {}", inert(l)));
    }
    if let Some(v) = &row.content.variant {
        head.push_str(&format!(" · variant {}", inert(v)));
    }
    if row.occurrence > 0 {
        head.push_str(&format!(" · occurrence {}", row.occurrence));
    }
    writeln!(out, "{head}")?;
    if let Some(judged) = follow_up {
        follow_up::write_follow_up(out, judged)?;
        return write_body(out, row, checks, request, show_request);
    }
    let moved = if row.reasons.is_empty() {
        String::new()
    } else {
        let why: Vec<String> = row.reasons.names().map(|r| explain(r, campaign)).collect();
        format!(
            "  {}",
            paint::p(paint::WARN, format!("moved: {}", why.join(", ")))
        )
    };
    writeln!(
        out,
        "   {}  {}{moved}",
        paint::p(
            paint::ACCENT,
            row.at_local.strftime("%a %Y-%m-%d %H:%M %:z")
        ),
        dim(format!("{}", row.at)),
    )?;
    write_body(out, row, checks, request, show_request)
}

/// The skip reason, the content, its size and checks, and the request of one message.
fn write_body(
    out: &mut impl Write,
    row: &PlannedRow,
    checks: &Checks,
    request: Option<&serde_json::Value>,
    show_request: bool,
) -> std::io::Result<()> {
    let dim = |s: String| paint::p(paint::DIM, s);
    if let Some(reason) = &row.skipped {
        writeln!(
            out,
            "   {}",
            paint::p(paint::WARN, format!("SKIPPED: {}", inert(reason)))
        )?;
    }
    if let Some(s) = &row.content.subject {
        writeln!(out, "   Subject: {}", paint::p(paint::HEADER, inert(s)))?;
    }
    if let Some(wa) = &row.content.whatsapp {
        writeln!(
            out,
            "   {}",
            dim(format!(
                "WhatsApp template {} ({}) · {}",
                inert(&wa.name),
                inert(&wa.language),
                inert(&wa.summary())
            ))
        )?;
    }
    for line in row.content.body.lines() {
        writeln!(out, "   {} {}", dim("│".into()), inert_text(line))?;
    }
    let size = match &checks.segments {
        Some(s) => format!(
            "{} chars · {} SMS segment{} ({})",
            checks.chars,
            s.segments,
            if s.segments == 1 { "" } else { "s" },
            s.encoding
        ),
        None => format!("{} chars", checks.chars),
    };
    writeln!(out, "   {}", dim(size))?;
    for w in &checks.warnings {
        writeln!(out, "   {}", paint::p(paint::WARN, format!("warning: {w}")))?;
    }
    if show_request && let Some(r) = request {
        writeln!(
            out,
            "   request: {}",
            inert_text(&serde_json::to_string_pretty(r).unwrap_or_default()).replace('\n', "\n   ")
        )?;
    }
    writeln!(out)
}
