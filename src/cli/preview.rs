//! `disparo preview`: what each person will receive and when, plus a forecast. No database.
//!
//! Table: one block per message (as it will arrive, local and UTC time, why it moved, length
//! and SMS segments, warnings), the forecast on stderr. JSON: one object per message (the
//! fields of docs/output.md plus `chars`, `segments`, `encoding`, `warnings`); `--forecast` adds a final
//! `{"forecast": …}` line. CSV: one row per message.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};

use super::output::{bar, human_duration, inert, inert_text, paint};
use super::{CliError, CliResult, Ctx, Exit, Format};
use disparo::diag::Problem;
use disparo::model::Campaign;
use disparo::plan::{PlanOptions, PlannedRow, Planner};

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

/// What a channel delivers, for length checks: SMS segments, WhatsApp's body limit, subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    WhatsApp,
    Sms,
    Email,
    Other,
}

/// The kind of a channel: from its adapter type, else from its name or address field.
pub fn channel_kind(name: &str, type_name: &str, address_field: &str) -> Kind {
    match type_name {
        "whatsapp_cloud" | "whatsapp" => return Kind::WhatsApp,
        "twilio" | "sms" => return Kind::Sms,
        "smtp" | "email" => return Kind::Email,
        _ => {}
    }
    let n = name.to_ascii_lowercase();
    if n.contains("whatsapp") || n == "wa" {
        Kind::WhatsApp
    } else if n.contains("sms") {
        Kind::Sms
    } else if n.contains("mail") || address_field == "email" {
        Kind::Email
    } else {
        Kind::Other
    }
}

/// WhatsApp's limit on a template message body, in characters.
pub const WHATSAPP_BODY_LIMIT: usize = 1024;
/// Twilio refuses SMS bodies longer than this many characters.
pub const SMS_BODY_LIMIT: usize = 1600;

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of the GSM 03.38 extension table: each takes two septets (escape + char).
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// How an SMS body is encoded and split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    /// `GSM-7` or `UCS-2`.
    pub encoding: &'static str,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    pub segments: usize,
    /// The characters that forced UCS-2, in order of first appearance.
    pub non_gsm: Vec<char>,
    /// Segments it would take if those characters were replaced by GSM-7 ones.
    pub segments_as_gsm: usize,
}

fn gsm_cost(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Splits costs into segments: everything fits one of `single` units, or segments of
/// `multi` units each (the rest is the concatenation header); a character never straddles two.
fn pack(costs: impl Iterator<Item = usize> + Clone, single: usize, multi: usize) -> (usize, usize) {
    let units: usize = costs.clone().sum();
    if units <= single {
        return (units, 1);
    }
    let (mut segments, mut used) = (1, 0);
    for c in costs {
        if used + c > multi {
            segments += 1;
            used = 0;
        }
        used += c;
    }
    (units, segments)
}

/// SMS encoding and segment count: GSM-7 (160 per message, 153 per segment when split;
/// extension characters count 2) unless a character needs UCS-2 (70, or 67 UTF-16 units).
pub fn sms_segments(text: &str) -> Segments {
    let mut non_gsm = Vec::new();
    for c in text.chars() {
        if gsm_cost(c).is_none() && !non_gsm.contains(&c) {
            non_gsm.push(c);
        }
    }
    let as_gsm = || text.chars().map(|c| gsm_cost(c).unwrap_or(1));
    let (_, segments_as_gsm) = pack(as_gsm(), 160, 153);
    if non_gsm.is_empty() {
        let (units, segments) = pack(as_gsm(), 160, 153);
        Segments {
            encoding: "GSM-7",
            units,
            segments,
            non_gsm,
            segments_as_gsm,
        }
    } else {
        let (units, segments) = pack(text.chars().map(char::len_utf16), 70, 67);
        Segments {
            encoding: "UCS-2",
            units,
            segments,
            non_gsm,
            segments_as_gsm,
        }
    }
}

/// Length facts and warnings about one rendered message.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub chars: usize,
    pub segments: Option<Segments>,
    pub warnings: Vec<String>,
}

fn quote_chars(cs: &[char]) -> String {
    cs.iter()
        .take(6)
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' => format!("{c:?} (curly quote)"),
            _ => format!("{c:?}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn check(kind: Kind, content: &disparo::message::Content) -> Checks {
    let body = &content.body;
    let chars = body.chars().count();
    let mut out = Checks {
        chars,
        ..Checks::default()
    };
    match kind {
        Kind::Sms => {
            let s = sms_segments(body);
            if s.segments > 1 {
                out.warnings.push(format!(
                    "{} SMS segments: billed as {} messages",
                    s.segments, s.segments
                ));
            }
            if s.encoding == "UCS-2" && s.segments_as_gsm < s.segments {
                out.warnings.push(format!(
                    "UCS-2 because of {}: {} segment(s) instead of {} in GSM-7",
                    quote_chars(&s.non_gsm),
                    s.segments,
                    s.segments_as_gsm
                ));
            }
            if chars > SMS_BODY_LIMIT {
                out.warnings.push(format!(
                    "{chars} characters: over the {SMS_BODY_LIMIT} providers such as Twilio accept"
                ));
            }
            out.segments = Some(s);
        }
        Kind::WhatsApp => {
            if chars > WHATSAPP_BODY_LIMIT {
                out.warnings.push(format!(
                    "{chars} characters: WhatsApp limits a template body to {WHATSAPP_BODY_LIMIT}"
                ));
            }
            if let Some(wa) = &content.whatsapp {
                for (i, p) in wa.body.iter().enumerate() {
                    if p.trim().is_empty() {
                        out.warnings.push(format!(
                            "template parameter {} is empty: WhatsApp rejects empty parameters",
                            i + 1
                        ));
                    } else if p.contains(['\n', '\t']) || p.contains("    ") {
                        out.warnings.push(format!(
                            "template parameter {} has a new line, a tab or 4+ spaces in a row: WhatsApp rejects it",
                            i + 1
                        ));
                    }
                }
            }
        }
        Kind::Email => {
            if content
                .subject
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
            {
                out.warnings
                    .push("no subject: add `subject:` to the template's front matter".to_owned());
            }
        }
        Kind::Other => {}
    }
    out
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

/// Totals over every planned message, for the forecast.
#[derive(Debug, Default)]
struct Forecast {
    recipients: u64,
    messages: u64,
    errors: u64,
    suppressed: u64,
    late_skipped: u64,
    moved: BTreeMap<&'static str, u64>,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    /// Messages per UTC hour (hours since the epoch).
    per_hour: BTreeMap<i64, u64>,
    per_hour_of_day_utc: [u64; 24],
    per_hour_of_day_local: [u64; 24],
    segments: u64,
    multi_segment: u64,
    with_warnings: u64,
}

const REASONS: [&str; 5] = ["quiet_hours", "weekday", "blackout", "late", "cap"];

impl Forecast {
    fn add(&mut self, r: &PlannedRow, checks: &Checks, zone: &TimeZone) {
        if let Some(reason) = &r.skipped {
            if reason.starts_with("suppressed") {
                self.suppressed += 1;
            } else {
                self.late_skipped += 1;
            }
            return;
        }
        self.messages += 1;
        for name in r.reasons.names() {
            *self.moved.entry(name).or_default() += 1;
        }
        self.first = Some(self.first.map_or(r.at, |f| f.min(r.at)));
        self.last = Some(self.last.map_or(r.at, |l| l.max(r.at)));
        let hour = r.at.as_second().div_euclid(3600);
        *self.per_hour.entry(hour).or_default() += 1;
        self.per_hour_of_day_utc[hour.rem_euclid(24) as usize] += 1;
        self.per_hour_of_day_local[r.at.to_zoned(zone.clone()).hour() as usize] += 1;
        if let Some(s) = &checks.segments {
            self.segments += s.segments as u64;
            self.multi_segment += u64::from(s.segments > 1);
        }
        self.with_warnings += u64::from(!checks.warnings.is_empty());
    }

    /// Histogram by actual hour when the sends span two days at most, else by hour of day.
    fn by_actual_hour(&self) -> bool {
        match (self.first, self.last) {
            (Some(f), Some(l)) => l.as_second() - f.as_second() <= 48 * 3600,
            _ => true,
        }
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
    let file = project.find_campaign(&args.campaign)?;
    let campaign = project.load_campaign(&file)?;
    let mut opts = PlanOptions::new(ctx.now());
    // Preview touches no database: suppressions are read only if the database already exists.
    if let Some(store) = ctx
        .database(Some(&project))
        .open_if_exists(disparo::store::Access::ReadOnly)?
    {
        opts.suppressed = store
            .suppressions()?
            .into_iter()
            .map(|s| s.address)
            .collect();
    }
    let mut planner = Planner::prepare(&project, campaign, opts)?;
    let data = ctx.format != Format::Table;
    let channel = if args.show_request || ctx.format == Format::Json {
        let build = disparo::app::channels::context(&project)?;
        disparo::app::channels::build(
            &build,
            &project,
            &planner.campaign.channel,
            &planner.channel,
        )
        .ok()
    } else {
        None
    };
    let limit = args.limit.unwrap_or(if data { usize::MAX } else { 20 });
    let rate = match (
        planner.campaign.throttle.map(|r| r.as_per_second()),
        planner.settings.rate.map(|r| r.as_per_second()),
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let kind = channel_kind(
        &planner.campaign.channel,
        planner.channel.type_name(),
        &planner.settings.address_field,
    );
    let (zone_name, zone) = planner.campaign.zone.clone().unwrap_or_else(|| {
        (
            project.config.timezone_name.clone(),
            project.config.timezone.clone(),
        )
    });
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
    let recipients = planner.run(&mut |item| {
        let wanted = |id: Option<&str>| args.recipients.is_empty() || id.is_some_and(|id| args.recipients.iter().any(|r| r == id));
        let res = match item {
            Ok(row) => {
                let checks = check(kind, &row.content);
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
                match ctx.format {
                    Format::Json => writeln!(out, "{v}"),
                    Format::Csv => write_csv(&mut out, &mut csv_started, &v, args.show_request),
                    Format::Table => write_message(&mut out, row, &campaign, &checks, request.as_ref(), args.show_request),
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
        for w in audit.warnings(&planner.campaign, &planner.settings.address_field) {
            eprintln!("warning: {}", inert_text(&w));
        }
    }
    if ctx.format == Format::Csv
        && !csv_started
        && io_err.is_none()
        && let Err(e) = write_csv_header(&mut out, args.show_request)
    {
        io_err = Some(e);
    }
    let report = Report {
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
    if row.occurrence > 0 {
        head.push_str(&format!(" · occurrence {}", row.occurrence));
    }
    writeln!(out, "{head}")?;
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
                "WhatsApp template {} ({}) · params: {}",
                inert(&wa.name),
                inert(&wa.language),
                inert(&wa.body.join(" | "))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_single_and_concatenated() {
        assert_eq!(sms_segments(&"a".repeat(160)).segments, 1);
        assert_eq!(sms_segments(&"a".repeat(161)).segments, 2);
        assert_eq!(sms_segments(&"a".repeat(306)).segments, 2);
        assert_eq!(sms_segments(&"a".repeat(307)).segments, 3);
        assert_eq!(sms_segments("Olá João, à bientôt").encoding, "UCS-2"); // á, ã and ô are not GSM-7
        assert_eq!(sms_segments("Ça coûte 5 € ^^").encoding, "UCS-2");
    }

    #[test]
    fn gsm7_extension_characters_count_two() {
        let s = sms_segments(&"€".repeat(80));
        assert_eq!((s.encoding, s.units, s.segments), ("GSM-7", 160, 1));
        let s = sms_segments(&format!("{}€", "a".repeat(159)));
        assert_eq!((s.units, s.segments), (161, 2));
        // An escape pair is never split across segments.
        let s = sms_segments(&format!("{}€{}", "a".repeat(152), "a".repeat(10)));
        assert_eq!(s.segments, 2);
    }

    #[test]
    fn ucs2_limits_and_the_characters_that_force_it() {
        assert_eq!(sms_segments(&"ã".repeat(70)).segments, 1);
        assert_eq!(sms_segments(&"ã".repeat(71)).segments, 2);
        assert_eq!(sms_segments(&"ã".repeat(134)).segments, 2);
        assert_eq!(sms_segments(&"ã".repeat(135)).segments, 3);
        // Emoji take two UTF-16 units.
        assert_eq!(sms_segments(&"😀".repeat(35)).units, 70);
        let s = sms_segments(&format!("{}’", "a".repeat(100)));
        assert_eq!((s.encoding, s.segments, s.segments_as_gsm), ("UCS-2", 2, 1));
        assert_eq!(s.non_gsm, vec!['’']);
    }

    #[test]
    fn whatsapp_body_limit_is_flagged() {
        let mut c = disparo::message::Content {
            body: "x".repeat(1024),
            ..Default::default()
        };
        assert!(check(Kind::WhatsApp, &c).warnings.is_empty());
        c.body.push('x');
        assert_eq!(check(Kind::WhatsApp, &c).warnings.len(), 1);
    }
}
