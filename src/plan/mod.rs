//! The plan pipeline shared by `validate`, `preview` and `plan`: each recipient of a campaign's
//! audience, streamed, becomes zero or more planned messages (one per occurrence) — rendered,
//! addressed and placed in time — or a located problem.
//!
//! Nothing here touches the store; `plan` feeds the rows to [`crate::store::Store::save_plan`],
//! `preview` prints them, `validate` keeps only the problems.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::address::{self, AddressKind};
use crate::audit::{Audit, ZoneSource, wall};
use crate::channel::{ChannelConfig, ChannelSettings};
use crate::diag::Problem;
use crate::message::Content;
use crate::model::{Campaign, Project, Recipient, ScheduleKind, Vars, audience};
use crate::schedule::{self, OneShot, Placement, Reasons};
use crate::store::{CampaignRecord, DispatchRules, PackedText, PlanBatch};
use crate::template::TemplateSet;

mod audience_rules;
mod seen_ids;
mod unsubscribe_link;

pub use audience_rules::variant_index;
use seen_ids::SeenIds;
use unsubscribe_link::UnsubscribeLink;

/// How far ahead recurring occurrences are materialised when the campaign sets no end.
pub const DEFAULT_HORIZON: SignedDuration = SignedDuration::from_hours(30 * 24);

/// Most occurrences per recipient a recurring campaign with an explicit `until` or `count` may
/// have: its end is planned whole (no horizon), and beyond this (daily for 27 years, hourly for
/// 13 months) the end is a typo, not a campaign.
pub const MAX_OCCURRENCES: u32 = 10_000;

/// One message planned for one recipient and occurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRow {
    pub recipient: String,
    /// The recipient's row in the audience file.
    pub row: u64,
    pub occurrence: u32,
    pub address: String,
    pub zone: String,
    /// Whether `zone` is the recipient's own, the default or its phone's.
    pub zone_source: ZoneSource,
    pub locale: Option<String>,
    /// The allowed local wall time the message goes at.
    pub local: DateTime,
    pub at: Timestamp,
    /// `at` in the recipient's zone, with its offset.
    pub at_local: jiff::Zoned,
    pub reasons: Reasons,
    pub content: Content,
    pub vars: Vars,
    /// `Some(reason)`: stored as `skipped` and never sent (suppressed, late with `skip`).
    pub skipped: Option<String>,
}

impl PlannedRow {
    pub fn reasons_text(&self) -> String {
        self.reasons.names().collect::<Vec<_>>().join(",")
    }

    /// Packs the row into `batch` as the store takes it: content and vars encoded as JSON
    /// here, on the planning thread, straight into the batch's buffer, so the store's single
    /// writer thread only copies bytes.
    pub fn pack_into(&self, batch: &mut PlanBatch) -> Result<(), serde_json::Error> {
        batch.push_with(self.occurrence, self.at, |w| {
            Ok(PackedText {
                recipient: w.str(&self.recipient),
                address: w.str(&self.address),
                zone: w.str(&self.zone),
                locale: self.locale.as_deref().map(|l| w.str(l)),
                reasons: w.join(self.reasons.names(), ","),
                content: w.json(&self.content)?,
                vars: w.json(&self.vars)?,
                skipped: self.skipped.as_deref().map(|s| w.str(s)),
            })
        })
    }
}

/// What the pipeline yields per recipient occurrence: a planned message (lent: the pipeline
/// reuses its buffers for the next recipient) or a problem with the recipient.
pub type Item<'a> = Result<&'a PlannedRow, Unplanned>;

/// A recipient that could not be planned.
#[derive(Debug, Clone)]
pub struct Unplanned {
    /// Its id, when the row has one.
    pub recipient: Option<String>,
    pub problem: Problem,
    /// Whether `plan --skip-invalid` may store it as `skipped` under its id: not when the id
    /// repeats an earlier recipient's, whose message that would overwrite.
    pub storable: bool,
}

impl Unplanned {
    fn new(recipient: Option<String>, problem: Problem) -> Unplanned {
        let storable = recipient.is_some();
        Unplanned {
            recipient,
            problem,
            storable,
        }
    }
}

/// Options a command sets on the pipeline.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub now: Timestamp,
    /// End of materialisation for open-ended recurring schedules.
    pub horizon: SignedDuration,
    /// Addresses (normalised) that must not receive anything.
    pub suppressed: HashSet<String>,
    /// The stored first local instant of a recurring schedule (from an earlier plan).
    pub recurrence_start: Option<DateTime>,
}

impl PlanOptions {
    pub fn new(now: Timestamp) -> PlanOptions {
        PlanOptions {
            now,
            horizon: DEFAULT_HORIZON,
            suppressed: HashSet::new(),
            recurrence_start: None,
        }
    }
}

/// A campaign ready to plan: its template compiled, its channel resolved.
pub struct Planner {
    pub campaign: Campaign,
    pub templates: TemplateSet,
    pub channel: ChannelConfig,
    pub settings: ChannelSettings,
    address_kind: AddressKind,
    fallback_zone: (String, TimeZone),
    zones: HashMap<String, TimeZone>,
    /// Each zone's placements of the schedule, computed for the first recipient in that zone
    /// and shared by the rest: every input of rule 3 but the zone is the campaign's, so a
    /// weekly cron over a month is expanded 30 times for an audience in 30 zones, not once
    /// per recipient.
    placements_by_zone: HashMap<String, Result<ZonePlacements, Problem>>,
    /// The campaign's `vars`, shared by every recipient's [`Vars`].
    campaign_vars: std::sync::Arc<serde_json::Map<String, serde_json::Value>>,
    opts: PlanOptions,
    /// Bytes of the audience read so far, for a progress bar.
    progress: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// What the last [`Planner::run`] learnt about the audience as a whole.
    audit: Audit,
    /// How `{{unsubscribe_url}}` is made, when the template uses it.
    unsubscribe: Option<UnsubscribeLink>,
    /// With `variants:`: each variant's name, weight and templates (`None`: the first
    /// variant's, which are `templates`).
    variants: Vec<(String, u64, Option<TemplateSet>)>,
    /// Each variant's name and weight, as [`variant_index`] takes them.
    variant_arms: Vec<(String, u64)>,
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("campaign", &self.campaign.name)
            .finish()
    }
}

impl Planner {
    /// Checks everything about a campaign that does not depend on a recipient.
    pub fn prepare(
        project: &Project,
        campaign: Campaign,
        opts: PlanOptions,
    ) -> Result<Planner, Vec<Problem>> {
        let mut problems = Vec::new();
        let channel = match project.config.channel(&campaign.channel) {
            Some(c) => Some(c),
            None => {
                let (l, c) = campaign.lines.channel;
                problems.push(
                    Problem::new(format!("unknown channel {:?}", campaign.channel))
                        .in_file(&campaign.file)
                        .at(l, c)
                        .field("channel")
                        .hint(format!(
                            "define it under `channels:` in disparo.yaml, or use one of: {}",
                            project.config.channel_names().join(", ")
                        )),
                );
                None
            }
        };
        let load = |name: &str, (l, c): (u64, u64), field: String, problems: &mut Vec<Problem>| {
            match TemplateSet::load(&project.templates_dir(), name) {
                Ok(t) => Some(t),
                Err(mut ps) => {
                    // A missing template is the campaign file's mistake: point at its key.
                    for p in &mut ps {
                        if p.message.starts_with("no template named") {
                            *p = Problem::new(p.message.clone())
                                .in_file(&campaign.file)
                                .at(l, c)
                                .field(field.clone())
                                .hint(p.hint.clone().unwrap_or_default());
                        }
                    }
                    problems.append(&mut ps);
                    None
                }
            }
        };
        let mut variant_sets = Vec::new();
        for (i, v) in campaign.variants.iter().enumerate().skip(1) {
            let field = format!("variants[{i}].template");
            if let Some(t) = load(&v.template, v.line, field, &mut problems) {
                variant_sets.push((v.name.clone(), t));
            }
        }
        let field = if campaign.variants.is_empty() {
            "template".to_owned()
        } else {
            "variants[0].template".to_owned()
        };
        let templates = load(
            &campaign.template,
            campaign.lines.template,
            field,
            &mut problems,
        );
        if !campaign.audience.is_file() {
            let (l, c) = campaign.lines.audience;
            problems.push(
                Problem::new(format!(
                    "the audience file {} does not exist",
                    campaign.audience.display()
                ))
                .in_file(&campaign.file)
                .at(l, c)
                .field("audience")
                .hint("the path is relative to the project root (the folder of disparo.yaml)"),
            );
        } else if audience::AudienceFormat::from_path(&campaign.audience).is_none() {
            let (l, c) = campaign.lines.audience;
            problems.push(
                Problem::new("unknown audience format")
                    .in_file(&campaign.file)
                    .at(l, c)
                    .field("audience")
                    .hint("name the file .csv, .json, .jsonl or .yaml"),
            );
        }
        let (Some(channel), Some(templates)) = (channel, templates) else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let settings = channel.settings();
        let uses_link = std::iter::once(&templates)
            .chain(variant_sets.iter().map(|(_, t)| t))
            .flat_map(|t| t.files())
            .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("unsubscribe_url")));
        // Each variant with its weight, the first variant's templates being `templates`.
        let mut variants = Vec::with_capacity(campaign.variants.len());
        let mut others = variant_sets.into_iter();
        for (i, v) in campaign.variants.iter().enumerate() {
            let weight = u64::from(v.weight);
            // The first variant's templates are `templates` itself.
            let set = if i == 0 {
                None
            } else {
                match others.next() {
                    Some((_, t)) => Some(t),
                    None => break,
                }
            };
            variants.push((v.name.clone(), weight, set));
        }
        let unsubscribe = if uses_link {
            Some(UnsubscribeLink::of(&campaign, &channel).map_err(|p| vec![p])?)
        } else {
            None
        };
        let fallback_zone = campaign.zone.clone().unwrap_or_else(|| {
            (
                project.config.timezone_name.clone(),
                project.config.timezone.clone(),
            )
        });
        let planner = Planner {
            address_kind: AddressKind::for_field(&settings.address_field),
            campaign_vars: std::sync::Arc::new(campaign.vars.clone()),
            campaign,
            templates,
            channel,
            settings,
            fallback_zone,
            zones: HashMap::new(),
            placements_by_zone: HashMap::new(),
            opts,
            progress: None,
            audit: Audit::default(),
            unsubscribe,
            variant_arms: variants.iter().map(|v| (v.0.clone(), v.1)).collect(),
            variants,
        };
        planner.check_explicit_end().map_err(|p| vec![p])?;
        Ok(planner)
    }

    /// An explicit `until`/`count` is planned whole; one that gives more than
    /// [`MAX_OCCURRENCES`] per recipient (counted in the campaign's zone) is refused once here,
    /// not per recipient.
    fn check_explicit_end(&self) -> Result<(), Problem> {
        let ScheduleKind::Cron {
            cron, until, count, ..
        } = &self.campaign.schedule
        else {
            return Ok(());
        };
        if until.is_none() && count.is_none() {
            return Ok(());
        }
        let start = self
            .recurrence_start()
            .unwrap_or_else(|| self.fallback_zone.1.to_datetime(self.opts.now));
        let n = schedule::materialise(
            cron,
            &self.fallback_zone.1,
            start,
            *until,
            *count,
            Timestamp::MAX,
        )
        .take(MAX_OCCURRENCES as usize + 1)
        .count();
        if n > MAX_OCCURRENCES as usize {
            let field = if until.is_some() {
                "schedule.until"
            } else {
                "schedule.count"
            };
            return Err(Problem::new(format!(
                "the schedule gives more than {MAX_OCCURRENCES} occurrences per recipient before its end"
            ))
            .in_file(&self.campaign.file)
            .field(field)
            .hint("set an earlier `until` or a smaller `count`; or remove the end, and `plan --horizon` bounds how far ahead occurrences are stored"));
        }
        Ok(())
    }

    /// Counts the audience bytes read into `counter` while [`Planner::run`] streams it.
    pub fn set_progress(&mut self, counter: std::sync::Arc<std::sync::atomic::AtomicU64>) {
        self.progress = Some(counter);
    }

    /// The campaign as the store keeps it.
    pub fn record(&self) -> CampaignRecord {
        let c = &self.campaign;
        let w = &c.window;
        const DAYS: [(jiff::civil::Weekday, &str); 7] = [
            (jiff::civil::Weekday::Monday, "mon"),
            (jiff::civil::Weekday::Tuesday, "tue"),
            (jiff::civil::Weekday::Wednesday, "wed"),
            (jiff::civil::Weekday::Thursday, "thu"),
            (jiff::civil::Weekday::Friday, "fri"),
            (jiff::civil::Weekday::Saturday, "sat"),
            (jiff::civil::Weekday::Sunday, "sun"),
        ];
        CampaignRecord {
            name: c.name.clone(),
            channel: c.channel.clone(),
            rules: DispatchRules {
                quiet: w
                    .quiet
                    .map(|q| (q.start().to_string(), q.end().to_string())),
                days: if w.days == schedule::Weekdays::ALL {
                    vec![]
                } else {
                    DAYS.iter()
                        .filter(|(d, _)| w.days.contains(*d))
                        .map(|(_, n)| (*n).to_owned())
                        .collect()
                },
                blackout: w.blackout.iter().map(|d| d.to_string()).collect(),
                expire_after_secs: c.expire_after.map(|d| d.as_secs()),
                caps: c
                    .caps
                    .iter()
                    .map(|cap| (cap.max, cap.per.as_secs()))
                    .collect(),
                throttle: c.throttle.map(|r| r.as_per_second()),
                follows: c.follows.as_ref().map(|f| f.rule.clone()),
            },
            recurrence_start: self.recurrence_start().map(|d| d.to_string()),
        }
    }

    fn recurrence_start(&self) -> Option<DateTime> {
        match &self.campaign.schedule {
            ScheduleKind::Cron { start, .. } => Some(
                start
                    .or(self.opts.recurrence_start)
                    .unwrap_or_else(|| self.fallback_zone.1.to_datetime(self.opts.now)),
            ),
            _ => None,
        }
    }

    /// What [`Planner::run`] learnt about the audience: duplicate addresses, zones not the
    /// recipients' own, late one-shots, the CSV separator; its `warnings` and `notes` are
    /// what `validate`, `preview` and `plan` say once per campaign.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The recipient's own zone; `None` when its `timezone` is blank (see [`Planner::default_zone`]).
    fn zone_for(&mut self, r: &Recipient) -> Result<Option<(String, TimeZone)>, Problem> {
        let Some(name) = r.text("timezone") else {
            return Ok(None);
        };
        if let Some(tz) = self.zones.get(name) {
            return Ok(Some((name.to_owned(), tz.clone())));
        }
        let tz = crate::model::zone(name)
            .ok_or_else(|| crate::model::unknown_zone(name).field("timezone"))?;
        self.zones.insert(name.to_owned(), tz.clone());
        Ok(Some((name.to_owned(), tz)))
    }

    /// The zone of a recipient with a blank `timezone`: its phone's country's only zone under
    /// `zone_from_phone`, else the campaign's (or project's) zone.
    fn default_zone(&mut self, address: &str) -> (String, TimeZone, ZoneSource) {
        if self.campaign.zone_from_phone
            && self.address_kind == AddressKind::Phone
            && let Some((code, name)) = crate::phone::zone_of(address)
        {
            // Every zone of the table resolves (a unit test holds it); were one not to, the
            // recipient falls back like any other rather than being placed in a wrong zone.
            let tz = match self.zones.get(name) {
                Some(tz) => Some(tz.clone()),
                None => crate::model::zone(name).inspect(|tz| {
                    self.zones.insert(name.to_owned(), tz.clone());
                }),
            };
            if let Some(tz) = tz {
                return (name.to_owned(), tz, ZoneSource::Phone(code));
            }
        }
        let (name, tz) = self.fallback_zone.clone();
        (name, tz, ZoneSource::Default)
    }

    /// Streams the audience through the pipeline. Returns the number of recipients read; a
    /// problem with the audience as a whole is the `Err`.
    pub fn run(
        &mut self,
        each: &mut dyn FnMut(Item<'_>) -> ControlFlow<()>,
    ) -> Result<u64, Problem> {
        // One thread reads and plans: a reader thread handing recipients over (tried) doubled
        // the CPU per recipient (values allocated on one thread and freed on the other) and was
        // slower on two cores, where `plan`'s store thread needs the second one.
        let path = self.campaign.audience.clone();
        let delimiter = self.campaign.delimiter;
        self.audit = Audit::default();
        let mut seen = SeenIds::new();
        let progress = self.progress.clone();
        let spares = audience::Spares::default();
        let is_csv =
            audience::AudienceFormat::from_path(&path) == Some(audience::AudienceFormat::Csv);
        let mut header_checked = self.campaign.filter.is_none() || !is_csv;
        let mut whole: Option<Problem> = None;
        let read = audience::read_with(
            &path,
            delimiter,
            progress.as_deref(),
            Some(&spares),
            &mut |row| {
                let mut r = match row {
                    Ok(r) => r,
                    Err(p) => return each(Err(Unplanned::new(None, p))),
                };
                if !header_checked {
                    header_checked = true;
                    if let Err(p) = self.check_filter_fields(r.fields.names()) {
                        whole = Some(p);
                        return ControlFlow::Break(());
                    }
                }
                let first = match seen.first_time(&r.id) {
                    Ok(first) => first,
                    Err(e) => {
                        whole = Some(
                            Problem::new(format!(
                                "cannot check the recipient ids for repeats: a scratch file in {} failed: {e}",
                                std::env::temp_dir().display()
                            ))
                            .in_file(&path)
                            .hint("free space in the temporary directory, or point TMPDIR at another one"),
                        );
                        return ControlFlow::Break(());
                    }
                };
                if !first {
                    let p = Problem::new(format!("duplicate recipient id {:?}", r.id))
                        .in_file(&path)
                        .at_line(r.line)
                        .row(r.row)
                        .field("id")
                        .hint(
                            "every recipient needs a unique id; remove or rename the repeated one",
                        );
                    return each(Err(Unplanned {
                        recipient: Some(r.id),
                        problem: p,
                        storable: false,
                    }));
                }
                match self.plan_recipient(&mut r) {
                    Ok(mut rows) => {
                        let flow = rows.iter().try_for_each(|row| each(Ok(row)));
                        if let Some(last) = rows.pop() {
                            spares.give(last.vars.into_fields().into_values());
                        }
                        flow
                    }
                    Err(p) => {
                        let p = p.in_file(&path).row(r.row);
                        let p = if r.line > 0 { p.at_line(r.line) } else { p };
                        each(Err(Unplanned::new(Some(r.id.clone()), p)))
                    }
                }
            },
        );
        // Settled whatever ended the audience: `validate` reports what was found before a
        // problem with the file as a whole (a JSON array broken past its start), as it did
        // when repeats were known as they came.
        self.audit.finish();
        let (rows, csv) = read?;
        if let Some(p) = whole {
            return Err(p);
        }
        self.audit.csv = csv.map(|d| (d, delimiter.is_some()));
        if rows == 0 {
            return Err(Problem::new("the audience has no recipients")
                .in_file(&path)
                .hint("add recipients, or point `audience` at another file"));
        }
        Ok(rows)
    }

    /// Plans one recipient; its fields are moved into the rows' `vars` (id, row and line stay
    /// for reporting a problem).
    fn plan_recipient(&mut self, r: &mut Recipient) -> Result<Vec<PlannedRow>, Problem> {
        let own_zone = self.zone_for(r);
        // `where:` first: a recipient the campaign is not for gets no message and is no
        // problem, whatever else is wrong with its row (an unknown `timezone` included: it
        // is judged on the default zone then, and the zone is a problem only if kept).
        if self.campaign.filter.is_some()
            && !self.kept(r, own_zone.as_ref().ok().and_then(Option::as_ref))?
        {
            return Ok(Vec::new());
        }
        let own_zone = own_zone?;
        let field = &self.settings.address_field;
        let raw = r.text_or_number(field).ok_or_else(|| {
            Problem::new(format!(
                "the recipient has no `{field}`, which channel {:?} sends to",
                self.campaign.channel
            ))
            .field(field.clone())
            .hint(format!("add a `{field}` value for this recipient"))
        })?;
        let address = address::normalize(self.address_kind, &raw).map_err(|e| {
            Problem::new(e)
                .field(field.clone())
                .hint(match self.address_kind {
                    AddressKind::Phone => {
                        "write phones in E.164: +, country code and number, e.g. +5511987654321"
                    }
                    AddressKind::Email => "write a complete address such as ana@example.com",
                    AddressKind::Other => "give this recipient an address",
                })
        })?;
        let (zone, tz, zone_source) = match own_zone {
            Some((zone, tz)) => (zone, tz, ZoneSource::Recipient),
            None => self.default_zone(&address),
        };
        let locale = r.text("locale").map(str::to_owned);
        let fields = std::mem::take(&mut r.fields);
        let mut vars = Vars::new(self.campaign_vars.clone(), fields);
        if let Some(link) = &self.unsubscribe {
            let url = link.for_recipient(&self.campaign.name, &r.id, &address);
            vars = vars.with_generated("unsubscribe_url", serde_json::Value::String(url));
        }
        let (variant, templates) = if self.variants.is_empty() {
            (None, &self.templates)
        } else {
            let v = &self.variants[variant_index(&self.campaign.name, &r.id, &self.variant_arms)];
            (Some(v.0.clone()), v.2.as_ref().unwrap_or(&self.templates))
        };
        let mut content = templates.render(locale.as_deref(), &vars).map_err(|f| {
            let mut p = f.to_problem();
            p.file = None;
            p.message = format!("{} ({})", p.message, f.file.display());
            p
        })?;
        content.variant = variant;
        let suppressed = self.opts.suppressed.contains(&address);
        let placements = self.placements_in(&zone, &tz)?;
        self.audit.recipient(r.row, &r.id, &address, zone_source);
        if matches!(self.campaign.schedule, ScheduleKind::At(_)) {
            self.audit.one_shot += 1;
            self.audit.late += u64::from(
                placements
                    .iter()
                    .any(|(_, p, _, _)| p.reasons.contains(Reasons::LATE)),
            );
        }
        let mut out = Vec::with_capacity(placements.len());
        // Every occurrence but the last gets copies; the last takes the originals.
        let mut shared = Some((address, zone, locale, content, vars));
        let n = placements.len();
        for (i, (occurrence, placement, late_skip, at_local)) in placements.iter().enumerate() {
            let skipped = if suppressed {
                Some("suppressed: the address is on the suppression list".to_owned())
            } else {
                late_skip.clone()
            };
            let (address, zone, locale, content, vars) = if i + 1 == n {
                shared.take().expect("taken only by the last occurrence")
            } else {
                shared.clone().expect("taken only by the last occurrence")
            };
            out.push(PlannedRow {
                recipient: if i + 1 == n {
                    std::mem::take(&mut r.id)
                } else {
                    r.id.clone()
                },
                row: r.row,
                occurrence: *occurrence,
                address,
                zone,
                zone_source,
                locale,
                local: placement.local,
                at: placement.at,
                at_local: at_local.clone(),
                reasons: placement.reasons,
                content,
                vars,
                skipped,
            });
        }
        Ok(out)
    }

    /// `row`'s message as a tester at `to` gets it (`disparo send-test`): rendered again from
    /// the same variant with the address field reading `to` and an unsubscribe link made for
    /// the tester (`test_key` as its recipient), so that clicking it opts out the tester,
    /// never the recipient whose message it shows. Returns the content and the variables.
    pub fn render_for_tester(
        &self,
        row: &PlannedRow,
        to: &str,
        test_key: &str,
    ) -> Result<(Content, serde_json::Map<String, serde_json::Value>), Problem> {
        let mut vars = match serde_json::to_value(&row.vars) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        vars.insert(
            self.settings.address_field.clone(),
            serde_json::Value::String(to.to_owned()),
        );
        if let Some(link) = &self.unsubscribe {
            let url = link.for_recipient(&self.campaign.name, test_key, to);
            vars.insert("unsubscribe_url".into(), serde_json::Value::String(url));
        }
        let templates = match &row.content.variant {
            Some(name) => self
                .variants
                .iter()
                .find(|v| &v.0 == name)
                .and_then(|v| v.2.as_ref())
                .unwrap_or(&self.templates),
            None => &self.templates,
        };
        let value = serde_json::Value::Object(vars);
        let mut content = templates
            .render(row.locale.as_deref(), &value)
            .map_err(|f| f.to_problem())?;
        content.variant = row.content.variant.clone();
        let serde_json::Value::Object(vars) = value else {
            unreachable!("built as an object")
        };
        Ok((content, vars))
    }

    /// [`Planner::placements`] for the zone named `name`, from the cache after the first
    /// recipient in it.
    fn placements_in(&mut self, name: &str, tz: &TimeZone) -> Result<ZonePlacements, Problem> {
        if let Some(cached) = self.placements_by_zone.get(name) {
            return cached.clone();
        }
        let computed = self.placements(tz).map(|list| {
            list.into_iter()
                .map(|(occurrence, p, skip)| (occurrence, p, skip, p.at.to_zoned(tz.clone())))
                .collect::<ZonePlacements>()
        });
        self.placements_by_zone
            .insert(name.to_owned(), computed.clone());
        computed
    }

    /// The occurrences of the campaign's schedule for one zone, each placed by rule 3, with a
    /// skip reason for a late one-shot under `late: skip`.
    fn placements(&self, tz: &TimeZone) -> Result<Vec<(u32, Placement, Option<String>)>, Problem> {
        let c = &self.campaign;
        let now = self.opts.now;
        let never = || {
            Problem::new("no allowed send time within 400 days: the allowed days, blackout dates and quiet hours leave nothing")
                .field("schedule")
                .hint("allow more weekdays or remove blackout dates")
        };
        match &c.schedule {
            ScheduleKind::Asap => Ok(vec![(
                0,
                schedule::place_asap(tz, &c.window, now).ok_or_else(never)?,
                None,
            )]),
            ScheduleKind::At(at) => {
                match schedule::plan_at(*at, tz, &c.window, c.late, now).ok_or_else(never)? {
                    OneShot::Send(p) => match c.late_until {
                        Some(until) if p.reasons.contains(Reasons::LATE) && p.local > until => {
                            let reason = format!(
                                "late: its send time {} had already passed at plan time, and the next allowed one ({}) is after late_until {}",
                                wall(*at),
                                wall(p.local),
                                wall(until)
                            );
                            Ok(vec![(0, p, Some(reason))])
                        }
                        _ => Ok(vec![(0, p, None)]),
                    },
                    OneShot::Skip { missed } => {
                        let reason = format!(
                            "late: its send time {} had already passed at plan time (late: skip)",
                            missed.at
                        );
                        Ok(vec![(
                            0,
                            Placement {
                                reasons: missed.reasons | Reasons::LATE,
                                ..missed
                            },
                            Some(reason),
                        )])
                    }
                }
            }
            ScheduleKind::Cron {
                cron, until, count, ..
            } => {
                let start = self
                    .recurrence_start()
                    .unwrap_or_else(|| tz.to_datetime(now));
                // An explicit end is planned whole (bounded by MAX_OCCURRENCES in `prepare`);
                // the horizon bounds only a schedule without one.
                let horizon = if until.is_some() || count.is_some() {
                    Timestamp::MAX
                } else {
                    now.checked_add(self.opts.horizon).unwrap_or(now)
                };
                let mut out = Vec::new();
                for occ in schedule::materialise(cron, tz, start, *until, *count, horizon) {
                    // Occurrences already in the past at plan time are not planned again: a
                    // recurring campaign never sends a backlog.
                    if occ.at < now {
                        continue;
                    }
                    if let Some(p) = schedule::place_occurrence(&occ, tz, &c.window) {
                        out.push((occ.index, p, None));
                    }
                }
                Ok(out)
            }
        }
    }
}

/// One zone's placed occurrences: index, placement, skip reason, and the instant on the
/// zone's clock. Shared by every recipient in the zone, so cloning it is a reference count.
type ZonePlacements = std::sync::Arc<[(u32, Placement, Option<String>, jiff::Zoned)]>;

/// A recipient's variables, read in place by the renderer: the model does not know about
/// templates nor templates about the model; planning joins them.
impl crate::template::Lookup for crate::model::Vars {
    fn lookup(&self, key: &str) -> Option<&serde_json::Value> {
        self.get(key)
    }
    fn to_value(&self) -> serde_json::Value {
        serde_json::Value::Object(self.to_map())
    }
}

#[cfg(test)]
mod tests;
