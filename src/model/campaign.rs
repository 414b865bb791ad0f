//! `campaigns/NAME.yaml`: one campaign, checked key by key (docs/campaign-reference.md).

use std::path::{Path, PathBuf};

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::{Problem, yaml_problem};
use crate::model::filter::{Filter, FilterError};
use crate::model::follows::{self, Follows, FollowsFile};
use crate::schedule::{
    FrequencyCap as Cap, LatePolicy, QuietHours, QuietPreset, SendWindow, WallCron, Weekdays,
};
use crate::units::{Duration, Rate, parse_time};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignFile {
    #[serde(default)]
    name: Option<String>,
    channel: Spanned<String>,
    #[serde(default)]
    template: Option<Spanned<String>>,
    /// A/B test: templates with weights, instead of `template`.
    #[serde(default)]
    variants: Option<Spanned<Vec<VariantFile>>>,
    audience: Spanned<AudienceFile>,
    #[serde(default)]
    vars: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    schedule: Option<ScheduleFile>,
    #[serde(default)]
    throttle: Option<Rate>,
    #[serde(default)]
    frequency_cap: Option<FrequencyCap>,
    /// `where:`: which recipients of the audience the campaign is for.
    #[serde(default, rename = "where")]
    filter: Option<Spanned<String>>,
    /// `follows:`: the next step of another campaign, on its receipts.
    #[serde(default)]
    follows: Option<Spanned<FollowsFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    #[serde(default)]
    at: Option<Spanned<String>>,
    #[serde(default)]
    cron: Option<Spanned<String>>,
    #[serde(default)]
    start: Option<Spanned<String>>,
    #[serde(default)]
    until: Option<Spanned<String>>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    quiet_hours: Option<Spanned<QuietFile>>,
    #[serde(default)]
    days: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    blackout_dates: Vec<Spanned<String>>,
    #[serde(default)]
    late: Option<Spanned<String>>,
    #[serde(default)]
    late_until: Option<Spanned<String>>,
    #[serde(default)]
    zone_from_phone: bool,
    #[serde(default)]
    expire_after: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantFile {
    name: String,
    template: Spanned<String>,
    weight: u32,
}

/// One arm of an A/B test: recipients get it in proportion to `weight`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub template: String,
    pub weight: u32,
    /// Where its `template` stands in the campaign file.
    pub line: (u64, u64),
}

/// `audience: a.csv`, or `audience: { path: a.csv, delimiter: ";" }` with reader options.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AudienceFile {
    Path(String),
    Table(AudienceTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AudienceTable {
    path: String,
    #[serde(default)]
    delimiter: Option<String>,
}

/// The byte a CSV `delimiter` names: `tab`, or one ASCII punctuation character other than the
/// double quote (a letter, digit or space would split ordinary values).
fn delimiter_byte(s: &str) -> Option<u8> {
    match s {
        "tab" | "\t" => Some(b'\t'),
        _ => match s.as_bytes() {
            [b] if b.is_ascii_punctuation() && *b != b'"' => Some(*b),
            _ => None,
        },
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum QuietFile {
    Preset(String),
    Window { start: String, end: String },
}

/// At most `max` messages per address and channel in any trailing `per` window (docs/time-semantics.md rule 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    pub max: u32,
    pub per: Duration,
}

/// When the campaign's messages are aimed, on each recipient's wall clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleKind {
    /// No `at` and no `cron`: as soon as allowed.
    Asap,
    /// One-shot at a local wall time.
    At(DateTime),
    /// Recurring on a cron expression matched on the wall clock.
    Cron {
        cron: WallCron,
        start: Option<DateTime>,
        until: Option<Date>,
        count: Option<u32>,
    },
}

/// A checked campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub name: String,
    pub file: PathBuf,
    pub channel: String,
    /// The template (with `variants`: the first variant's).
    pub template: String,
    /// `variants:`, in order; empty for a campaign with one `template`.
    pub variants: Vec<Variant>,
    /// Absolute or project-relative path as written, resolved against the project root.
    pub audience: PathBuf,
    /// The CSV column separator `audience.delimiter` sets; `None`: read from the header line.
    pub delimiter: Option<u8>,
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub schedule: ScheduleKind,
    /// The campaign's zone for recipients without a valid one of their own.
    pub zone: Option<(String, TimeZone)>,
    pub window: SendWindow,
    pub late: LatePolicy,
    /// `late_until`: a late one-shot whose move would put it after this wall time on the
    /// recipient's clock is skipped instead (an offer nobody wants days after the event).
    pub late_until: Option<DateTime>,
    /// `zone_from_phone`: a recipient with no `timezone` takes the zone of the phone's country
    /// code when that country has exactly one, before the campaign's or project's zone.
    pub zone_from_phone: bool,
    pub expire_after: Option<Duration>,
    pub throttle: Option<Rate>,
    /// The campaign's `frequency_cap` and a quiet-hours preset's own cap, all enforced.
    pub caps: Vec<Cap>,
    /// `where:`: recipients it does not keep get no message.
    pub filter: Option<Filter>,
    /// `follows:`: sent to a recipient only once the parent campaign's message to them met
    /// the condition; timed by it rather than by `schedule.at` or `cron`.
    pub follows: Option<Follows>,
    /// Line of each key, for problems found after parsing (unknown channel, missing template).
    pub lines: KeyLines,
}

/// Where the keys checked later stand in the campaign file.
#[derive(Debug, Clone, Default)]
pub struct KeyLines {
    pub channel: (u64, u64),
    pub template: (u64, u64),
    pub audience: (u64, u64),
    pub cron: (u64, u64),
    pub filter: (u64, u64),
}

fn pos<T>(s: &Spanned<T>) -> (u64, u64) {
    (s.referenced.line(), s.referenced.column())
}

/// Parses `2026-11-27T10:00` (or with a space, or with seconds) as a wall time.
pub fn parse_local_datetime(s: &str) -> Option<DateTime> {
    let s = s.trim().replacen(' ', "T", 1);
    let dt: DateTime = s.parse().ok()?;
    (1970..=2200).contains(&dt.year()).then_some(dt)
}

/// The UTC offset or zone written after the time of a date-time (`Z`, `-03:00`, `+0530`,
/// `[America/Sao_Paulo]`), if any: a wall time has none.
fn explicit_offset(s: &str) -> Option<&str> {
    let s = s.trim();
    let time = s.find(['T', 't', ' ']).map(|i| i + 1)?;
    let at = s[time..].find(['Z', 'z', '+', '-', '['])? + time;
    Some(&s[at..])
}

fn parse_date(s: &str) -> Option<Date> {
    let d: Date = s.trim().parse().ok()?;
    (1970..=2200).contains(&d.year()).then_some(d)
}

/// Just the `name:` of a campaign file and its line, read even when the rest is invalid.
#[derive(Debug, Deserialize)]
struct NameOnly {
    #[serde(default)]
    name: Option<Spanned<String>>,
}

impl Campaign {
    /// The name a campaign file declares and the line of its `name` key; `None` when it
    /// declares none (it takes its file's stem) or cannot be read as YAML at all (then
    /// `validate` reports it, and only its stem can be compared).
    pub fn declared_name(path: &Path) -> Option<(String, u64)> {
        let text = std::fs::read_to_string(path).ok()?;
        let n: NameOnly = serde_saphyr::from_str(&text).ok()?;
        n.name.map(|n| (n.value, n.referenced.line()))
    }

    /// Loads a campaign file; `root` resolves the audience path.
    pub fn load(path: &Path, root: &Path) -> Result<Campaign, Vec<Problem>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![
                Problem::new(format!("cannot read campaign file: {e}"))
                    .in_file(path)
                    .hint("check the campaign name; campaigns live in campaigns/NAME.yaml"),
            ]
        })?;
        Campaign::parse(path, &text, root)
    }

    pub fn parse(path: &Path, text: &str, root: &Path) -> Result<Campaign, Vec<Problem>> {
        let file: CampaignFile =
            serde_saphyr::from_str(text).map_err(|e| vec![yaml_problem(path, &e)])?;
        let mut problems = Vec::new();
        let mut bad = |p: Problem| problems.push(p.in_file(path));

        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = file.name.clone().unwrap_or(stem);
        if name.trim().is_empty() {
            bad(Problem::new("the campaign name is empty")
                .field("name")
                .hint("give the campaign a name, or omit `name` to use the file's stem"));
        }
        let (template, template_pos, variants) =
            check_variants(&file.template, &file.variants, &mut bad);
        let sched = file.schedule.unwrap_or_default();
        let mut window = SendWindow::default();
        let mut caps: Vec<Cap> = Vec::new();
        if let Some(c) = file.frequency_cap {
            caps.push(Cap {
                max: c.max,
                per: c.per.to_span(),
            });
        }
        if let Some(c) = &file.frequency_cap
            && c.max == 0
        {
            bad(
                Problem::new("frequency_cap.max is 0, which would block every message")
                    .field("frequency_cap.max")
                    .hint("set max to 1 or more, or remove frequency_cap"),
            );
        }

        let zone = match &sched.timezone {
            Some(tz) => match super::zone(&tz.value) {
                Some(z) => Some((tz.value.clone(), z)),
                None => {
                    let (l, c) = pos(tz);
                    bad(super::unknown_zone(&tz.value)
                        .at(l, c)
                        .field("schedule.timezone"));
                    None
                }
            },
            None => None,
        };

        if let Some(q) = &sched.quiet_hours {
            let (l, c) = pos(q);
            match &q.value {
                QuietFile::Preset(name) => match name.parse::<QuietPreset>() {
                    Ok(p) => {
                        window.quiet = Some(p.quiet());
                        if let Some(d) = p.days() {
                            window.days = d;
                        }
                        caps.extend(p.cap());
                    }
                    Err(e) => bad(Problem::new(e.to_string())
                        .at(l, c)
                        .field("schedule.quiet_hours")
                        .hint("use a preset name or a window { start: \"21:00\", end: \"08:00\" }")),
                },
                QuietFile::Window { start, end } => {
                    match (parse_time(start), parse_time(end)) {
                        (Ok(s), Ok(e)) => match QuietHours::new(s, e) {
                            Ok(w) => window.quiet = Some(w),
                            Err(err) => bad(Problem::new(err.to_string()).at(l, c).field("schedule.quiet_hours").hint("quiet hours are [start, end) on the recipient's clock; e.g. start \"21:00\", end \"08:00\"")),
                        },
                        (Err(err), _) => bad(Problem::new(err.to_string()).at(l, c).field("schedule.quiet_hours.start").hint("quote the time and use a 24-hour clock: start: \"21:00\"")),
                        (_, Err(err)) => bad(Problem::new(err.to_string()).at(l, c).field("schedule.quiet_hours.end").hint("quote the time and use a 24-hour clock: end: \"08:00\"")),
                    }
                }
            }
        }

        if let Some(days) = &sched.days {
            let mut set = Weekdays::none();
            for d in days {
                match Weekdays::parse_day(&d.value) {
                    Ok(w) => set = set.with(w),
                    Err(_) => {
                        let (l, c) = pos(d);
                        bad(Problem::new(format!("unknown weekday {:?}", d.value))
                            .at(l, c)
                            .field("schedule.days")
                            .hint("use mon, tue, wed, thu, fri, sat, sun"));
                    }
                }
            }
            if days.is_empty() {
                bad(
                    Problem::new("schedule.days is empty: nothing could ever be sent")
                        .field("schedule.days")
                        .hint("list the allowed weekdays, or remove `days` to allow all"),
                );
            }
            // A preset's weekday restriction still applies.
            window.days = window.days.intersect(set);
        }
        for d in &sched.blackout_dates {
            match parse_date(&d.value) {
                Some(date) => window.blackout.push(date),
                None => {
                    let (l, c) = pos(d);
                    bad(Problem::new(format!("invalid date {:?}", d.value))
                        .at(l, c)
                        .field("schedule.blackout_dates")
                        .hint("write dates as YYYY-MM-DD, e.g. 2026-12-25"));
                }
            }
        }
        window.blackout.sort();
        window.blackout.dedup();

        let local = |s: &Option<Spanned<String>>,
                     key: &str,
                     problems: &mut Vec<Problem>|
         -> Option<DateTime> {
            let s = s.as_ref()?;
            if let Some(offset) = explicit_offset(&s.value) {
                let (l, c) = pos(s);
                problems.push(
                    Problem::new(format!(
                        "schedule.{key} {:?} has an explicit UTC offset ({offset}), which would be ignored",
                        s.value
                    ))
                    .in_file(path)
                    .at(l, c)
                    .field(format!("schedule.{key}"))
                    .hint(format!("`{key}` is the recipient's local wall time, read in each recipient's zone: remove the offset (e.g. 2026-11-27T10:00), and set `timezone` for recipients without a zone of their own")),
                );
                return None;
            }
            let v = parse_local_datetime(&s.value);
            if v.is_none() {
                let (l, c) = pos(s);
                problems.push(Problem::new(format!("invalid local date-time {:?}", s.value)).in_file(path).at(l, c).field(format!("schedule.{key}")).hint("write a recipient-local wall time as YYYY-MM-DDTHH:MM, e.g. 2026-11-27T10:00 (no offset: it is read in each recipient's zone)"));
            }
            v
        };
        let at = local(&sched.at, "at", &mut problems);
        let start = local(&sched.start, "start", &mut problems);
        let late_until = local(&sched.late_until, "late_until", &mut problems);
        if let Some(u) = &sched.late_until {
            let (l, c) = pos(u);
            let field = "schedule.late_until";
            if sched.at.is_none() {
                problems.push(
                    Problem::new("`late_until` only applies to a one-shot `at` schedule")
                        .in_file(path)
                        .at(l, c)
                        .field(field)
                        .hint("remove `late_until`, or give the schedule an `at`"),
                );
            } else if let (Some(a), Some(until)) = (at, late_until)
                && until < a
            {
                problems.push(Problem::new(format!("`late_until` {until} is before `at` {a}: every message would be skipped")).in_file(path).at(l, c).field(field).hint("set `late_until` to the last local time the message is still worth sending, after `at`"));
            }
        }
        let until = sched.until.as_ref().and_then(|u| {
            let d = parse_date(&u.value);
            if d.is_none() {
                let (l, c) = pos(u);
                problems.push(
                    Problem::new(format!("invalid date {:?}", u.value))
                        .in_file(path)
                        .at(l, c)
                        .field("schedule.until")
                        .hint("write the last local date as YYYY-MM-DD"),
                );
            }
            d
        });
        let mut bad = |p: Problem| problems.push(p.in_file(path));
        let schedule = match (&sched.at, &sched.cron) {
            (Some(a), Some(_)) => {
                let (l, c) = pos(a);
                bad(Problem::new(
                    "a schedule has either `at` (one-shot) or `cron` (recurring), not both",
                )
                .at(l, c)
                .field("schedule.at")
                .hint("remove one of them"));
                ScheduleKind::Asap
            }
            (Some(_), None) => match at {
                Some(at) => ScheduleKind::At(at),
                None => ScheduleKind::Asap,
            },
            (None, Some(expr)) => {
                if sched.until.is_some() && sched.count.is_some() {
                    bad(Problem::new(
                        "a recurring schedule ends with `until` or `count`, not both",
                    )
                    .field("schedule.count")
                    .hint("remove one of them"));
                }
                match WallCron::parse(&expr.value) {
                    Ok(cron) => ScheduleKind::Cron {
                        cron,
                        start,
                        until,
                        count: sched.count,
                    },
                    Err(e) => {
                        let (l, c) = pos(expr);
                        bad(Problem::new(format!("invalid cron expression {:?}: {e}", expr.value)).at(l, c).field("schedule.cron").hint("use 5 fields `min hour day-of-month month day-of-week` (e.g. \"0 10 * * FRI\") or 6 with leading seconds"));
                        ScheduleKind::Asap
                    }
                }
            }
            (None, None) => {
                for (key, present) in [
                    ("start", sched.start.is_some()),
                    ("until", sched.until.is_some()),
                    ("count", sched.count.is_some()),
                ] {
                    if present {
                        bad(Problem::new(format!(
                            "`{key}` only applies to a recurring (`cron`) schedule"
                        ))
                        .field(format!("schedule.{key}"))
                        .hint("add a `cron` expression or remove the key"));
                    }
                }
                ScheduleKind::Asap
            }
        };

        let late = match &sched.late {
            None => LatePolicy::default(),
            Some(l) => match l.value.parse::<LatePolicy>() {
                Ok(p) => p,
                Err(e) => {
                    let (line, col) = pos(l);
                    problems.push(Problem::new(e.to_string()).in_file(path).at(line, col).field("schedule.late").hint("next_day (default) moves it to the same time on the next allowed day"));
                    LatePolicy::default()
                }
            },
        };
        let (audience_path, delimiter) = match &file.audience.value {
            AudienceFile::Path(p) => (p.clone(), None),
            AudienceFile::Table(t) => (t.path.clone(), t.delimiter.clone()),
        };
        let delimiter = delimiter.and_then(|d| {
            let (l, c) = pos(&file.audience);
            let b = delimiter_byte(&d);
            if b.is_none() {
                problems.push(Problem::new(format!("invalid CSV delimiter {d:?}")).in_file(path).at(l, c).field("audience.delimiter").hint("one character such as \",\", \";\" or \"|\", or `tab`; remove `delimiter` to read it from the header line"));
            } else if !audience_path.to_ascii_lowercase().ends_with(".csv") {
                problems.push(Problem::new("`delimiter` only applies to a CSV audience").in_file(path).at(l, c).field("audience.delimiter").hint("remove `delimiter`, or point `path` at a .csv file"));
            }
            b
        });
        let filter = file
            .filter
            .as_ref()
            .and_then(|w| match Filter::parse(&w.value) {
                Ok(f) => Some(f),
                Err(e) => {
                    problems.push(filter_problem(path, text, w, &e));
                    None
                }
            });
        let follows = file.follows.as_ref().and_then(|f| {
            let mut bad = |p: Problem| problems.push(p.in_file(path));
            for (key, present) in [
                ("at", sched.at.is_some()),
                ("cron", sched.cron.is_some()),
                ("late", sched.late.is_some()),
                ("late_until", sched.late_until.is_some()),
            ] {
                if present {
                    bad(Problem::new(format!(
                        "a follow-up has no `schedule.{key}`: it is timed by `follows` (the parent's send or receipt, plus `after`)"
                    ))
                    .at(f.referenced.line(), f.referenced.column())
                    .field(format!("schedule.{key}"))
                    .hint("remove it; quiet_hours, days, blackout_dates, timezone and expire_after still apply"));
                }
            }
            follows::check(&name, f, &mut bad)
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        let audience = {
            let p = PathBuf::from(&audience_path);
            if p.is_absolute() { p } else { root.join(p) }
        };
        Ok(Campaign {
            name,
            file: path.to_path_buf(),
            lines: KeyLines {
                channel: pos(&file.channel),
                template: template_pos,
                audience: pos(&file.audience),
                cron: sched.cron.as_ref().map(pos).unwrap_or_default(),
                filter: file.filter.as_ref().map(pos).unwrap_or_default(),
            },
            channel: file.channel.value,
            template,
            variants,
            audience,
            delimiter,
            vars: file.vars,
            schedule,
            zone,
            window,
            late,
            late_until,
            zone_from_phone: sched.zone_from_phone,
            expire_after: sched.expire_after,
            throttle: file.throttle,
            caps,
            filter,
            follows,
        })
    }
}

/// `template` or `variants` (exactly one): the campaign's first template, where it stands, and
/// the variants checked (names unique and plain, weights summing above 0).
fn check_variants(
    template: &Option<Spanned<String>>,
    variants: &Option<Spanned<Vec<VariantFile>>>,
    bad: &mut dyn FnMut(Problem),
) -> (String, (u64, u64), Vec<Variant>) {
    let list = match (template, variants) {
        (Some(t), None) => return (t.value.clone(), pos(t), Vec::new()),
        (None, None) => {
            bad(Problem::new("the campaign names no template")
                .field("template")
                .hint("add `template: NAME` (templates/NAME.hbs), or `variants:` for an A/B test"));
            return (String::new(), (0, 0), Vec::new());
        }
        (Some(t), Some(_)) => {
            let (l, c) = pos(t);
            bad(
                Problem::new("`template` and `variants` both name the templates")
                    .at(l, c)
                    .field("template")
                    .hint("keep `variants` (each names its template) and remove `template`"),
            );
            return (t.value.clone(), pos(t), Vec::new());
        }
        (None, Some(v)) => v,
    };
    let (l, c) = pos(list);
    if list.value.is_empty() {
        bad(Problem::new("`variants` is empty")
            .at(l, c)
            .field("variants")
            .hint("list at least one: - { name: a, template: promo_a, weight: 50 }"));
        return (String::new(), (l, c), Vec::new());
    }
    let mut out: Vec<Variant> = Vec::new();
    for (i, v) in list.value.iter().enumerate() {
        let (vl, vc) = pos(&v.template);
        let field = format!("variants[{i}].name");
        if v.name.is_empty()
            || !v
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            bad(
                Problem::new(format!("variant name {:?} is not a plain name", v.name))
                    .at(vl, vc)
                    .field(field)
                    .hint("use letters, digits, `-` and `_`: a, b, promo-short"),
            );
        } else if out.iter().any(|o| o.name == v.name) {
            bad(Problem::new(format!("two variants are named {:?}", v.name))
                .at(vl, vc)
                .field(field)
                .hint("give each variant its own name: reports split by it"));
        }
        out.push(Variant {
            name: v.name.clone(),
            template: v.template.value.clone(),
            weight: v.weight,
            line: (vl, vc),
        });
    }
    if out.iter().all(|v| v.weight == 0) {
        bad(
            Problem::new("every variant has weight 0: nobody would get a message")
                .at(l, c)
                .field("variants")
                .hint("give at least one variant a weight above 0"),
        );
    }
    (out[0].template.clone(), out[0].line, out)
}

/// A `where:` that does not parse, located at its column when the expression sits on the
/// key's line (plain or quoted), with the expression and a caret under the place.
fn filter_problem(path: &Path, text: &str, w: &Spanned<String>, e: &FilterError) -> Problem {
    let (line, col) = pos(w);
    let source_line = text
        .lines()
        .nth(line.saturating_sub(1) as usize)
        .unwrap_or("");
    let before = w.value.get(..e.offset).unwrap_or(&w.value);
    let lead = source_line.chars().nth(col.saturating_sub(1) as usize);
    let on_line = source_line.contains(w.value.as_str());
    let quoted = matches!(lead, Some('\'' | '"'));
    let column = if on_line {
        col + u64::from(quoted) + before.chars().count() as u64
    } else {
        0
    };
    let mut p = Problem::new(format!("this filter cannot be read: {}", e.message))
        .in_file(path)
        .at(line, column)
        .field("where");
    p.excerpt = Some(format!(
        "    {}\n    {}^",
        w.value.trim_end(),
        " ".repeat(before.chars().count())
    ));
    p.hint(
        e.hint
            .clone()
            .unwrap_or_else(|| "see docs/campaign-reference.md, \"Audience filters\"".to_owned()),
    )
}
