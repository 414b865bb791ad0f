//! Message templates: Handlebars files with optional YAML front matter and locale variants.
//!
//! `templates/NAME.hbs` is the plain variant, `templates/NAME.pt-BR.hbs` and `NAME.pt.hbs` are
//! locale variants chosen exact locale → language → plain. Everything is compiled once per
//! template set; rendering is strict (a variable the template uses that the recipient lacks is
//! an error for that recipient, found at `validate`/`preview`/`plan` time, never at send time).
//! Text parts are rendered without escaping ("Tom & Jerry" stays so on SMS and WhatsApp); only
//! the email HTML part is HTML-escaped.

mod compat;
mod fast;
mod helpers;
mod limits;
mod twilio;
mod whatsapp;

use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde::Deserialize;
use serde_json::Value;

use crate::diag::Problem;
use crate::message::Content;

/// Where a template's variables come from: a JSON object, or a recipient's variables read in
/// place (the model's `Vars`) so that planning builds no map per recipient.
pub trait Lookup {
    /// The value of a top-level variable.
    fn lookup(&self, key: &str) -> Option<&Value>;
    /// Everything as one JSON value, for what only Handlebars renders (helpers, blocks).
    fn to_value(&self) -> Value;
}

impl Lookup for Value {
    fn lookup(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// Optional YAML at the top of a template file, between `---` lines.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    /// Email subject (a template).
    #[serde(default)]
    subject: Option<String>,
    /// Email HTML part (a template, HTML-escaped).
    #[serde(default)]
    html: Option<String>,
    /// The WhatsApp template message (src/template/whatsapp.rs, docs/whatsapp.md).
    #[serde(default)]
    whatsapp: Option<whatsapp::Front>,
    /// Twilio content template and media (see [`twilio`]).
    #[serde(default)]
    twilio: Option<twilio::TwilioFront>,
}

/// One template of a variant (body, subject, HTML part, a WhatsApp parameter): its name in
/// its registry and, when it is plain variable substitution, its pre-split form.
#[derive(Debug, Clone)]
struct Part {
    name: String,
    /// Registered in the HTML-escaping registry.
    html: bool,
    fast: Option<fast::Fast>,
}

/// One locale variant of a template, compiled into the set's registries.
#[derive(Debug, Clone)]
struct Variant {
    /// Normalised locale (`pt-br`, `pt`), `None` for the plain file.
    locale: Option<String>,
    file: PathBuf,
    body: Part,
    subject: Option<Part>,
    html: Option<Part>,
    whatsapp: Option<whatsapp::Compiled>,
    twilio: Option<twilio::Compiled>,
    /// Lines before the body (front matter), for positions in the file.
    body_line: u64,
    /// The block structure of each of its texts (body first), for the depth and partial checks.
    scans: Vec<limits::Scan>,
}

/// All variants of one template, compiled once and rendered many times.
pub struct TemplateSet {
    name: String,
    variants: Vec<Variant>,
    text: Handlebars<'static>,
    html: Handlebars<'static>,
}

impl std::fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateSet")
            .field("name", &self.name)
            .field("variants", &self.variants)
            .finish()
    }
}

/// Why one recipient's message could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderFailure {
    pub file: PathBuf,
    /// The variable the recipient lacks, when that is the cause.
    pub variable: Option<String>,
    pub message: String,
    /// The front matter field concerned (`whatsapp.buttons[0].text`), for a limit broken by
    /// the rendered value, with what to do.
    pub field: Option<String>,
    pub hint: Option<String>,
}

impl RenderFailure {
    pub fn to_problem(&self) -> Problem {
        let mut p = Problem::new(self.message.clone()).in_file(&self.file);
        if let Some(f) = &self.field {
            p = p.field(f.clone());
        }
        if let Some(h) = &self.hint {
            p = p.hint(h.clone());
        }
        if let Some(v) = &self.variable {
            p = p.field(v.clone()).hint(format!(
                "add a `{v}` column/field for this recipient, set it in the campaign's `vars`, or use {{{{default {v} \"...\"}}}} in the template"
            ));
        }
        p
    }
}

/// `pt_BR`, `PT-br` → `pt-br`: locale tags compare case-insensitively with `-`.
pub fn normalize_locale(locale: &str) -> String {
    locale.trim().replace('_', "-").to_ascii_lowercase()
}

fn split_front_matter(text: &str) -> (Option<&str>, &str, usize) {
    let t = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = t
        .strip_prefix("---\n")
        .or_else(|| t.strip_prefix("---\r\n"))
    else {
        return (None, t, 0);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            let front = &rest[..offset];
            let body = &rest[offset + line.len()..];
            let lines = front.lines().count() + 2;
            return (Some(front), body, lines);
        }
        offset += line.len();
    }
    (None, t, 0)
}

fn template_problem(file: &Path, line_offset: usize, e: &handlebars::TemplateError) -> Problem {
    let mut p = Problem::new(format!("template syntax error: {}", e.reason()))
        .in_file(file)
        .hint("check that every {{#block}} has its {{/block}} and every {{ has its }}");
    if let Some((line, col)) = e.pos() {
        p = p.at((line + line_offset) as u64, col as u64);
    }
    p
}

fn compile_problem(file: &Path, line_offset: usize, e: compat::CompileError) -> Problem {
    match e {
        compat::CompileError::Syntax(e) => template_problem(file, line_offset, &e),
        compat::CompileError::Unsupported(u) => Problem::new(u.message)
            .in_file(file)
            .at_line((u.line + line_offset) as u64)
            .hint(u.hint),
    }
}

/// Registers `src` in a registry from [`registry`] the way templates are loaded: checked for
/// what disparo refuses and rewritten to print values as handlebars.js does. Public so the
/// reference cases run through exactly this path.
#[doc(hidden)]
pub fn register_text(reg: &mut Handlebars<'static>, name: &str, src: &str) -> Result<(), String> {
    compat::register(reg, name, src).map_err(|e| match e {
        compat::CompileError::Syntax(e) => e.to_string(),
        compat::CompileError::Unsupported(u) => format!("{} ({})", u.message, u.hint),
    })
}

/// A Handlebars registry configured as disparo renders: strict, with disparo's helpers, and
/// HTML escaping only when `escape_html` (the email HTML part). Public so the reference cases
/// (`tests/template_reference.rs`) run against exactly this configuration.
pub fn registry(escape_html: bool) -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    if !escape_html {
        h.register_escape_fn(handlebars::no_escape);
    }
    helpers::register(&mut h);
    compat::register_helpers(&mut h);
    h
}

impl TemplateSet {
    /// Loads `templates/NAME*.hbs` and the partials in `templates/partials/`.
    pub fn load(templates_dir: &Path, name: &str) -> Result<TemplateSet, Vec<Problem>> {
        let mut set = TemplateSet {
            name: name.to_owned(),
            variants: Vec::new(),
            text: registry(false),
            html: registry(true),
        };
        let mut problems = Vec::new();
        let entries = match std::fs::read_dir(templates_dir) {
            Ok(e) => e,
            Err(e) => {
                return Err(vec![
                    Problem::new(format!("cannot list templates: {e}"))
                        .in_file(templates_dir)
                        .hint("create the templates/ folder with NAME.hbs files"),
                ]);
            }
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files {
            let Some(fname) = file.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            let Some(stem) = fname.strip_suffix(".hbs") else {
                continue;
            };
            let locale = if stem == name {
                None
            } else if let Some(loc) = stem.strip_prefix(name).and_then(|s| s.strip_prefix('.')) {
                Some(normalize_locale(loc))
            } else {
                continue;
            };
            if let Err(mut p) = set.add_variant(&file, locale) {
                problems.append(&mut p);
            }
        }
        let partials = templates_dir.join("partials");
        let mut scanned = Vec::new();
        let mut partial_src = std::collections::BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&partials) {
            for e in entries.flatten() {
                let path = e.path();
                let Some(pname) = path
                    .file_name()
                    .and_then(|f| f.to_str())
                    .and_then(|f| f.strip_suffix(".hbs"))
                else {
                    continue;
                };
                match std::fs::read_to_string(&path) {
                    Ok(src) => {
                        // Too deep for the parser's and renderer's recursion: never parsed.
                        let scan = limits::scan(&src);
                        if let Some(p) = limits::too_deep(&path, &scan, 0) {
                            problems.push(p);
                            continue;
                        }
                        for reg in [&mut set.text, &mut set.html] {
                            if let Err(e) = compat::register(reg, pname, src.as_str()) {
                                problems.push(compile_problem(&path, 0, e));
                                break;
                            }
                        }
                        partial_src.insert(pname.to_owned(), src.clone());
                        scanned.push(limits::Partial {
                            name: pname.to_owned(),
                            file: path.clone(),
                            scan,
                        });
                    }
                    Err(e) => problems
                        .push(Problem::new(format!("cannot read partial: {e}")).in_file(&path)),
                }
            }
        }
        scanned.sort_by(|a, b| a.name.cmp(&b.name));
        match limits::partial_depths(&scanned) {
            Ok(depths) => {
                for v in &set.variants {
                    let total = v
                        .scans
                        .iter()
                        .map(|s| limits::total_depth(s, &depths))
                        .max()
                        .unwrap_or(0);
                    if total > limits::MAX_DEPTH {
                        problems.push(
                            Problem::new(format!(
                                "the template's blocks and partials are nested {total} deep with the partials it includes, deeper than {}",
                                limits::MAX_DEPTH
                            ))
                            .in_file(&v.file)
                            .hint("nest fewer blocks in the template and its partials, or include fewer partials within each other; each level costs stack when rendered"),
                        );
                    }
                }
            }
            Err(mut ps) => problems.append(&mut ps),
        }
        if set.variants.is_empty() && problems.is_empty() {
            problems.push(Problem::new(format!("no template named {name:?}")).in_file(templates_dir.join(format!("{name}.hbs"))).hint(format!("create templates/{name}.hbs (and locale variants such as templates/{name}.pt-BR.hbs)")));
        }
        // A missing partial would only show when a recipient's message is rendered; find every
        // `{{> name}}` in the source instead, so it is reported once, at load, with its line.
        for v in &set.variants {
            for (k, scan) in v.scans.iter().enumerate() {
                for inc in scan.includes.iter().filter(|i| !i.block) {
                    let Some(name) = &inc.name else { continue };
                    if set.text.has_template(name) || scan.inline.contains(name) {
                        continue;
                    }
                    let p = Problem::new(format!(
                        "the template uses partial {name:?}, which does not exist"
                    ))
                    .in_file(&v.file)
                    .hint(format!("create templates/partials/{name}.hbs"));
                    // Only the body's lines are known; the other texts sit in front matter.
                    problems.push(if k == 0 {
                        p.at_line(inc.line + v.body_line)
                    } else {
                        p.field("front matter")
                    });
                }
            }
        }
        // The WhatsApp parameter count, once the partials the body includes are known.
        for v in &set.variants {
            if let Some(p) = v
                .whatsapp
                .as_ref()
                .and_then(|w| w.check_count(&v.file, &partial_src))
            {
                problems.push(p);
            }
        }
        if problems.is_empty() {
            set.check_fast();
            Ok(set)
        } else {
            Err(problems)
        }
    }

    /// Keeps a pre-split template only if it renders exactly as Handlebars does on a probe
    /// context whose values carry every character the HTML escaping touches (a name that is
    /// also a helper, or any construct the splitter misreads, shows up here).
    fn check_fast(&mut self) {
        let (text, html) = (&self.text, &self.html);
        for v in &mut self.variants {
            let parts = std::iter::once(&mut v.body)
                .chain(v.subject.as_mut())
                .chain(v.html.as_mut())
                .chain(
                    v.whatsapp
                        .iter_mut()
                        .flat_map(whatsapp::Compiled::parts_mut),
                )
                .chain(v.twilio.iter_mut().flat_map(twilio::Compiled::parts_mut));
            for p in parts {
                let Some(f) = &p.fast else { continue };
                let reg = if p.html { html } else { text };
                let mut probe = serde_json::Map::new();
                let mut consistent = true;
                for (i, path) in f.paths().enumerate() {
                    let marker = Value::String(format!("\u{1}{i} <&>\"'`= é"));
                    consistent &= insert_path(&mut probe, &path, marker);
                }
                let probe = Value::Object(probe);
                let mut mine = String::new();
                let same = consistent
                    && f.render_into(&probe, &mut mine)
                    && reg
                        .render(&p.name, &probe)
                        .is_ok_and(|theirs| theirs == mine);
                if !same {
                    p.fast = None;
                }
            }
        }
    }

    fn add_variant(&mut self, file: &Path, locale: Option<String>) -> Result<(), Vec<Problem>> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            vec![
                Problem::new(format!("cannot read template: {e}"))
                    .in_file(file)
                    .hint("save the template as UTF-8"),
            ]
        })?;
        let (front, body, offset) = split_front_matter(&text);
        // Editors end files with a newline; a message should not.
        let body = body
            .strip_suffix('\n')
            .map(|b| b.strip_suffix('\r').unwrap_or(b))
            .unwrap_or(body);
        let front: FrontMatter = match front {
            Some(f) if !f.trim().is_empty() => serde_saphyr::from_str(f).map_err(|e| {
                let mut p = crate::diag::yaml_problem(file, &e);
                p.line = p.line.map(|l| l + 1);
                vec![p]
            })?,
            _ => FrontMatter::default(),
        };
        let key = locale.clone().unwrap_or_else(|| "_".into());
        let mut problems = Vec::new();
        // Every text is scanned before the parser sees it: nesting too deep for its recursion
        // (or the renderer's) is refused here.
        let texts = std::iter::once(body)
            .chain(front.subject.as_deref())
            .chain(front.html.as_deref())
            .chain(front.whatsapp.iter().flat_map(whatsapp::Front::texts))
            .chain(front.twilio.iter().flat_map(twilio::TwilioFront::texts));
        let scans: Vec<limits::Scan> = texts.map(limits::scan).collect();
        for (i, scan) in scans.iter().enumerate() {
            // Only the body's positions are known in the file; the rest sit in front matter.
            let offset = if i == 0 { offset as u64 } else { 0 };
            if let Some(p) = limits::too_deep(file, scan, offset) {
                problems.push(if i == 0 { p } else { p.field("front matter") });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let (text_reg, html_reg) = (&mut self.text, &mut self.html);
        let mut add = |html: bool, name: String, src: &str, line_offset: usize| {
            let reg = if html { &mut *html_reg } else { &mut *text_reg };
            if let Err(e) = compat::register(reg, &name, src) {
                problems.push(compile_problem(file, line_offset, e));
            }
            Part {
                name,
                html,
                fast: fast::Fast::compile(src, html),
            }
        };
        let body_part = add(false, format!("{key}/body"), body, offset);
        let subject = front
            .subject
            .as_ref()
            .map(|s| add(false, format!("{key}/subject"), s, 0));
        let html = front
            .html
            .as_ref()
            .map(|h| add(true, format!("{key}/html"), h, 0));
        let mut twilio_problems = Vec::new();
        let twilio = front
            .twilio
            .as_ref()
            .map(|t| twilio::compile(t, file, &key, &mut add, &mut twilio_problems));
        let mut whatsapp = None;
        if let Some(wa) = &front.whatsapp {
            let mut add_wa =
                |suffix: String, src: &str| add(false, format!("{key}/{suffix}"), src, 0);
            match whatsapp::compile(wa, file, body, &mut add_wa) {
                Ok(c) => whatsapp = Some(c),
                Err(mut ps) => problems.append(&mut ps),
            }
        }
        problems.append(&mut twilio_problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        self.variants.push(Variant {
            locale,
            file: file.to_path_buf(),
            body: body_part,
            subject,
            html,
            whatsapp,
            twilio,
            body_line: offset as u64,
            scans,
        });
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The files of every variant, for messages.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.variants.iter().map(|v| v.file.as_path())
    }

    fn variant(&self, locale: Option<&str>) -> Option<&Variant> {
        let plain = || self.variants.iter().find(|v| v.locale.is_none());
        // Compared as `normalize_locale` would write them, without allocating per recipient.
        let Some(loc) = locale.map(str::trim) else {
            return plain();
        };
        let same = |a: &str, b: &str| {
            a.len() == b.len()
                && a.bytes().zip(b.bytes()).all(|(x, y)| {
                    let norm = |c: u8| {
                        if c == b'_' {
                            b'-'
                        } else {
                            c.to_ascii_lowercase()
                        }
                    };
                    norm(x) == norm(y)
                })
        };
        if let Some(v) = self
            .variants
            .iter()
            .find(|v| v.locale.as_deref().is_some_and(|l| same(l, loc)))
        {
            return Some(v);
        }
        let lang = loc.split(['-', '_']).next().unwrap_or(loc);
        if let Some(v) = self
            .variants
            .iter()
            .find(|v| v.locale.as_deref().is_some_and(|l| same(l, lang)))
        {
            return Some(v);
        }
        plain()
    }

    /// Renders the variant for `locale` with `ctx` (campaign vars overlaid by the recipient's fields).
    pub fn render(&self, locale: Option<&str>, ctx: &dyn Lookup) -> Result<Content, RenderFailure> {
        let v = self.variant(locale).ok_or_else(|| RenderFailure {
            file: self.variants.first().map(|v| v.file.clone()).unwrap_or_default(),
            variable: None,
            message: format!(
                "no variant of template {:?} fits locale {:?} and there is no plain templates/{}.hbs",
                self.name,
                locale.unwrap_or(""),
                self.name
            ),
            field: None,
            hint: None,
        })?;
        let fail = |e: handlebars::RenderError| {
            let variable = match e.reason() {
                handlebars::RenderErrorReason::MissingVariable(Some(path)) => Some(path.clone()),
                _ => None,
            };
            RenderFailure {
                file: v.file.clone(),
                message: match &variable {
                    Some(var) => {
                        format!("the recipient has no value for `{var}`, which the template uses")
                    }
                    None => format!("cannot render the template: {}", e.reason()),
                },
                variable,
                field: None,
                hint: None,
            }
        };
        let body = self.part(&v.body, ctx).map_err(fail)?;
        let subject = match &v.subject {
            Some(p) => Some(self.part(p, ctx).map_err(fail)?),
            None => None,
        };
        let html = match &v.html {
            Some(p) => Some(self.part(p, ctx).map_err(fail)?),
            None => None,
        };
        let whatsapp = match &v.whatsapp {
            Some(w) => Some(w.render(&v.file, &mut |p| self.part(p, ctx).map_err(fail))?),
            None => None,
        };
        let twilio = match &v.twilio {
            Some(t) => Some(t.render(|p| self.part(p, ctx)).map_err(fail)?),
            None => None,
        };
        Ok(Content {
            body,
            subject,
            html,
            whatsapp,
            twilio,
            variant: None,
        })
    }
}

impl TemplateSet {
    /// One part rendered: the pre-split form when it handles `ctx`, else Handlebars (whose
    /// output buffer starts at 8 KiB: shrunk, since many rendered messages are held at once).
    fn part(&self, p: &Part, ctx: &dyn Lookup) -> Result<String, handlebars::RenderError> {
        if let Some(f) = &p.fast {
            let mut out = String::with_capacity(f.capacity_hint());
            if f.render_into(ctx, &mut out) {
                return Ok(out);
            }
        }
        let reg = if p.html { &self.html } else { &self.text };
        let mut value = ctx.to_value();
        compat::js_key_order(&mut value);
        let mut out = reg.render(&p.name, &value)?;
        out.shrink_to_fit();
        Ok(out)
    }

    /// A copy that renders only with Handlebars (no pre-split fast path): the reference the
    /// fast path is tested and benchmarked against.
    #[doc(hidden)]
    pub fn reference(&self) -> TemplateSet {
        let mut slow = TemplateSet {
            name: self.name.clone(),
            variants: self.variants.clone(),
            text: self.text.clone(),
            html: self.html.clone(),
        };
        slow.disable_fast_path();
        slow
    }

    /// Drops every pre-split template, so everything renders through Handlebars.
    #[doc(hidden)]
    pub fn disable_fast_path(&mut self) {
        for v in &mut self.variants {
            v.body.fast = None;
            if let Some(p) = &mut v.subject {
                p.fast = None;
            }
            if let Some(p) = &mut v.html {
                p.fast = None;
            }
            for p in v
                .whatsapp
                .iter_mut()
                .flat_map(whatsapp::Compiled::parts_mut)
            {
                p.fast = None;
            }
            for p in v.twilio.iter_mut().flat_map(twilio::Compiled::parts_mut) {
                p.fast = None;
            }
        }
    }

    /// How many parts of the set render through the pre-split fast path.
    #[doc(hidden)]
    pub fn fast_parts(&self) -> usize {
        self.variants
            .iter()
            .map(|v| {
                std::iter::once(&v.body)
                    .chain(v.subject.as_ref())
                    .chain(v.html.as_ref())
                    .chain(v.twilio.iter().flat_map(twilio::Compiled::parts))
                    .filter(|p| p.fast.is_some())
                    .count()
                    + v.whatsapp
                        .as_ref()
                        .map_or(0, |w| w.count_parts(|p| p.fast.is_some()))
            })
            .sum()
    }
}

/// Sets `path` (`a.b`) in `m` to `value`; `false` if the path runs into a non-object.
fn insert_path(m: &mut serde_json::Map<String, Value>, path: &str, value: Value) -> bool {
    match path.split_once('.') {
        None => {
            m.insert(path.to_owned(), value);
            true
        }
        Some((head, tail)) => {
            let slot = m
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Default::default()));
            match slot {
                Value::Object(inner) => insert_path(inner, tail, value),
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<TemplateSet, Vec<Problem>>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let s = TemplateSet::load(dir.path(), "promo");
        (dir, s)
    }

    #[test]
    fn locale_fallback_exact_then_language_then_plain() {
        let (_d, s) = set(&[
            ("promo.hbs", "Hi {{n}}"),
            ("promo.pt.hbs", "Oi {{n}}"),
            ("promo.pt-BR.hbs", "Olá {{n}}"),
        ]);
        let s = s.unwrap();
        let ctx = json!({"n": "Ana"});
        assert_eq!(s.render(Some("pt_BR"), &ctx).unwrap().body, "Olá Ana");
        assert_eq!(s.render(Some("pt-PT"), &ctx).unwrap().body, "Oi Ana");
        assert_eq!(s.render(Some("es"), &ctx).unwrap().body, "Hi Ana");
        assert_eq!(s.render(None, &ctx).unwrap().body, "Hi Ana");
    }

    #[test]
    fn text_is_not_escaped_but_html_is() {
        let (_d, s) = set(&[(
            "promo.hbs",
            "---\nsubject: \"{{a}} deal\"\nhtml: \"<p>{{a}}</p>\"\n---\n{{a}}!",
        )]);
        let c = s
            .unwrap()
            .render(None, &json!({"a": "Tom & Jerry"}))
            .unwrap();
        assert_eq!(c.body, "Tom & Jerry!");
        assert_eq!(c.subject.as_deref(), Some("Tom & Jerry deal"));
        assert_eq!(c.html.as_deref(), Some("<p>Tom &amp; Jerry</p>"));
    }

    #[test]
    fn missing_variable_names_it() {
        let (_d, s) = set(&[("promo.hbs", "Hi {{first_name}}")]);
        let e = s.unwrap().render(None, &json!({})).unwrap_err();
        assert_eq!(e.variable.as_deref(), Some("first_name"));
    }

    #[test]
    fn syntax_error_points_at_line_after_front_matter() {
        let (_d, s) = set(&[(
            "promo.hbs",
            "---\nsubject: x\n---\nline one\n{{#if a}}oops\n",
        )]);
        let p = &s.unwrap_err()[0];
        // The unclosed `{{#if}}` on body line 2 is file line 5 (after 3 lines of front matter).
        assert_eq!(p.line, Some(5), "{p}");
    }

    #[test]
    fn whatsapp_parameter_count_is_checked() {
        let (_d, s) = set(&[(
            "promo.hbs",
            "---\nwhatsapp: { name: bf, language: pt_BR, body: [\"{{a}}\"] }\n---\nOi {{a}}, cupom {{b}}",
        )]);
        let p = &s.unwrap_err()[0];
        assert_eq!(p.field.as_deref(), Some("whatsapp.body"));
        let (_d, s) = set(&[(
            "promo.hbs",
            "---\nwhatsapp: { name: bf, language: pt_BR, body: [\"{{a}}\", \"{{b}}\"] }\n---\nOi {{a}}, cupom {{b}}",
        )]);
        let c = s
            .unwrap()
            .render(None, &json!({"a": "Ana", "b": "BF26"}))
            .unwrap();
        assert_eq!(c.whatsapp.unwrap().body, ["Ana", "BF26"]);
    }

    #[test]
    fn missing_partial_is_found_at_load() {
        let (_d, s) = set(&[("promo.hbs", "{{> footer}}")]);
        assert!(s.unwrap_err()[0].message.contains("footer"));
    }

    #[test]
    fn case_helpers_and_their_strictness() {
        let (_d, s) = set(&[("promo.hbs", "{{upper name}} {{lower city}}")]);
        let s = s.unwrap();
        let c = s
            .render(None, &json!({"name": "Conceição", "city": "SÃO PAULO"}))
            .unwrap();
        assert_eq!(c.body, "CONCEIÇÃO são paulo");
        let e = s.render(None, &json!({"name": "Ana"})).unwrap_err();
        assert_eq!(e.variable.as_deref(), Some("city"));
    }

    #[test]
    fn placeholder_count() {
        assert_eq!(
            whatsapp::placeholders("Oi {{a}}, {{#if b}}{{b}}{{/if}} {{{c}}} {{!x}}").len(),
            3
        );
    }

    /// Renders `ctx` with the set and with its Handlebars-only reference; they must agree
    /// byte for byte, errors included.
    fn assert_same(s: &TemplateSet, ctx: &Value) {
        let reference = s.reference();
        for locale in [None, Some("pt-BR")] {
            assert_eq!(
                s.render(locale, ctx),
                reference.render(locale, ctx),
                "template set {:?}, ctx {ctx}",
                s.variants
            );
        }
    }

    fn contexts() -> Vec<Value> {
        vec![
            json!({}),
            json!({"a": "Ana", "b": "BF26", "c": {"d": "nested"}, "n": 42}),
            json!({"a": "Tom & Jerry <b>\"quoted\" 'single' `tick` x=y", "b": "", "c": {"d": "ç"}, "n": -1.5}),
            json!({"a": "Olá, João 😀 — ñ 中文", "b": true, "c": {"d": 7}, "n": 1e21}),
            json!({"a": null, "b": [1, "x"], "c": {"d": null}, "n": {"x": 1}}),
            json!({"a": "x", "b": false, "c": "not an object", "n": 0}),
            json!({"a": "x", "b": "y", "c": {}, "n": u64::MAX}),
            json!({"a": "line\nbreak\r\n", "b": "{{a}}", "c": {"d": "}}"}, "n": 3}),
        ]
    }

    #[test]
    fn fast_path_matches_handlebars() {
        let bodies = [
            "plain text, no variables",
            "",
            "Hi {{a}}!",
            "{{a}}{{b}}",
            "{{ a }} and {{{a}}} and {{c.d}}",
            "Olá {{a}}, cupom {{b}} — {{n}} pontos 😀",
            "{{n}}",
            "a } b { c {{a}} }",
            "{{#if b}}{{a}}{{/if}}",
            "{{upper a}} {{default b \"amigo\"}}",
            "{{lookup c \"d\"}}",
            "{{this.a}}",
            "{{c.d.e}}",
            "{{missing}}",
            "{{a}} {{missing.x}}",
        ];
        for body in bodies {
            let html = format!("<p>{body}</p>");
            let file = format!(
                "---\nsubject: {subject}\nhtml: {html}\nwhatsapp: {{ name: t, language: pt_BR, body: [{wa}] }}\n---\n{body}",
                subject = serde_json::to_string(&format!("S {body}")).unwrap(),
                html = serde_json::to_string(&html).unwrap(),
                wa = std::iter::repeat_n("\"{{a}}\"", whatsapp::placeholders(body).len())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            let (_d, s) = set(&[("promo.hbs", &file), ("promo.pt-BR.hbs", body)]);
            let s = s.unwrap_or_else(|p| panic!("{body:?}: {p:?}"));
            for ctx in contexts() {
                assert_same(&s, &ctx);
            }
        }
        // The plain ones really take the fast path.
        let (_d, s) = set(&[(
            "promo.hbs",
            "---\nhtml: \"<p>{{a}}</p>\"\n---\nHi {{a}}, {{c.d}}",
        )]);
        assert_eq!(s.unwrap().fast_parts(), 2);
    }

    #[test]
    fn fast_path_defers_to_helpers_of_the_same_name() {
        // `{{upper}}` alone is a helper call to Handlebars: never a plain lookup.
        let (_d, s) = set(&[("promo.hbs", "{{upper}} {{a}}")]);
        let s = s.unwrap();
        assert_eq!(s.fast_parts(), 0);
        assert_same(&s, &json!({"upper": "x", "a": "y"}));
    }

    #[test]
    fn missing_variable_error_is_the_same_on_the_fast_path() {
        let (_d, s) = set(&[("promo.hbs", "Hi {{first_name}} {{c.d}}")]);
        let s = s.unwrap();
        assert_eq!(s.fast_parts(), 1);
        let e = s.render(None, &json!({"c": {"d": 1}})).unwrap_err();
        assert_eq!(e.variable.as_deref(), Some("first_name"));
        assert_same(&s, &json!({"first_name": "Ana"}));
        assert_same(&s, &json!({"first_name": "Ana", "c": {}}));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-zA-Z0-9 ,.!?:;&<>\"'`=/{}\\n]{0,8}",
                Just("Olá 😀 ñ".to_owned()),
                Just("{{a}}".to_owned()),
                Just("{{{a}}}".to_owned()),
                Just("{{ b }}".to_owned()),
                Just("{{c.d}}".to_owned()),
                Just("{{n}}".to_owned()),
                Just("{{x}}".to_owned()),
            ]
        }

        fn value() -> impl Strategy<Value = Option<Value>> {
            prop_oneof![
                Just(None),
                "[ -~é😀]{0,6}".prop_map(|s| Some(Value::String(s))),
                any::<i64>().prop_map(|n| Some(json!(n))),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(|f| Some(json!(f))),
                any::<bool>().prop_map(|b| Some(json!(b))),
                Just(Some(Value::Null)),
                Just(Some(json!({"d": "inner & <x>"}))),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn fast_path_agrees_with_handlebars(
                pieces in proptest::collection::vec(piece(), 0..8),
                vals in proptest::collection::vec(value(), 5),
            ) {
                let body: String = pieces.concat();
                let file = format!(
                    "---\nhtml: {}\n---\n{body}\n",
                    serde_json::to_string(&body).unwrap()
                );
                let (_d, s) = set(&[("promo.hbs", &file)]);
                // Not every random text is a valid template; those are not this test's business.
                if let Ok(s) = s {
                    let mut ctx = serde_json::Map::new();
                    for (k, v) in ["a", "b", "c", "n", "x"].into_iter().zip(vals) {
                        if let Some(v) = v {
                            ctx.insert(k.to_owned(), v);
                        }
                    }
                    let ctx = Value::Object(ctx);
                    prop_assert_eq!(s.render(None, &ctx), s.reference().render(None, &ctx));
                }
            }
        }
    }
}
