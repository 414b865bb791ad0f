//! Message templates: Handlebars files with optional YAML front matter and locale variants.
//!
//! `templates/NAME.hbs` is the plain variant, `templates/NAME.pt-BR.hbs` and `NAME.pt.hbs` are
//! locale variants chosen exact locale → language → plain. Everything is compiled once per
//! template set; rendering is strict (a variable the template uses that the recipient lacks is
//! an error for that recipient, found at `validate`/`preview`/`plan` time, never at send time).
//! Text parts are rendered without escaping ("Tom & Jerry" stays so on SMS and WhatsApp); only
//! the email HTML part is HTML-escaped.

mod helpers;

use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde::Deserialize;
use serde_json::Value;

use crate::diag::Problem;
use crate::message::{Content, WhatsappTemplate};

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
    #[serde(default)]
    whatsapp: Option<WhatsappFront>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WhatsappFront {
    name: String,
    language: String,
    /// Body parameters in order; each a template.
    #[serde(default)]
    body: Vec<String>,
}

/// One locale variant of a template, compiled into the set's registries.
#[derive(Debug, Clone)]
struct Variant {
    /// Normalised locale (`pt-br`, `pt`), `None` for the plain file.
    locale: Option<String>,
    file: PathBuf,
    key: String,
    has_subject: bool,
    has_html: bool,
    whatsapp: Option<(String, String, usize)>,
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
}

impl RenderFailure {
    pub fn to_problem(&self) -> Problem {
        let mut p = Problem::new(self.message.clone()).in_file(&self.file);
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
                        for reg in [&mut set.text, &mut set.html] {
                            if let Err(e) = reg.register_partial(pname, src.as_str()) {
                                problems.push(template_problem(&path, 0, &e));
                                break;
                            }
                        }
                    }
                    Err(e) => problems
                        .push(Problem::new(format!("cannot read partial: {e}")).in_file(&path)),
                }
            }
        }
        if set.variants.is_empty() && problems.is_empty() {
            problems.push(Problem::new(format!("no template named {name:?}")).in_file(templates_dir.join(format!("{name}.hbs"))).hint(format!("create templates/{name}.hbs (and locale variants such as templates/{name}.pt-BR.hbs)")));
        }
        // A missing partial only shows when a template is rendered: render each variant once
        // with an empty context and report partial lookups, which do not depend on data.
        for v in &set.variants {
            let missing = match set.text.render(&format!("{}/body", v.key), &Value::Null) {
                Err(e) => match e.reason() {
                    handlebars::RenderErrorReason::PartialNotFound(p) => Some(p.clone()),
                    _ => None,
                },
                Ok(_) => None,
            };
            if let Some(p) = missing {
                problems.push(
                    Problem::new(format!(
                        "the template uses partial {p:?}, which does not exist"
                    ))
                    .in_file(&v.file)
                    .hint(format!("create templates/partials/{p}.hbs")),
                );
            }
        }
        if problems.is_empty() {
            Ok(set)
        } else {
            Err(problems)
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
        let mut add =
            |reg: &mut Handlebars<'static>, name: String, src: &str, line_offset: usize| {
                if let Err(e) = reg.register_template_string(&name, src) {
                    problems.push(template_problem(file, line_offset, &e));
                }
            };
        add(&mut self.text, format!("{key}/body"), body, offset);
        if let Some(s) = &front.subject {
            add(&mut self.text, format!("{key}/subject"), s, 0);
        }
        if let Some(h) = &front.html {
            add(&mut self.html, format!("{key}/html"), h, 0);
        }
        let mut whatsapp = None;
        if let Some(wa) = &front.whatsapp {
            for (i, p) in wa.body.iter().enumerate() {
                add(&mut self.text, format!("{key}/wa/{i}"), p, 0);
            }
            let placeholders = count_placeholders(body);
            if placeholders != wa.body.len() {
                problems.push(Problem::new(format!(
                    "the WhatsApp template {:?} has {} body parameter(s) in front matter but the body text has {} placeholder(s)",
                    wa.name, wa.body.len(), placeholders
                )).in_file(file).field("whatsapp.body").hint("Meta rejects a parameter count mismatch (error 132000): list one `body` entry per {{...}} in the approved template's text, in order"));
            }
            whatsapp = Some((wa.name.clone(), wa.language.clone(), wa.body.len()));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        self.variants.push(Variant {
            locale,
            file: file.to_path_buf(),
            key,
            has_subject: front.subject.is_some(),
            has_html: front.html.is_some(),
            whatsapp,
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
        if let Some(loc) = locale {
            let loc = normalize_locale(loc);
            if let Some(v) = self
                .variants
                .iter()
                .find(|v| v.locale.as_deref() == Some(loc.as_str()))
            {
                return Some(v);
            }
            let lang = loc.split('-').next().unwrap_or(&loc);
            if let Some(v) = self
                .variants
                .iter()
                .find(|v| v.locale.as_deref() == Some(lang))
            {
                return Some(v);
            }
        }
        self.variants.iter().find(|v| v.locale.is_none())
    }

    /// Renders the variant for `locale` with `ctx` (campaign vars overlaid by the recipient's fields).
    pub fn render(&self, locale: Option<&str>, ctx: &Value) -> Result<Content, RenderFailure> {
        let v = self.variant(locale).ok_or_else(|| RenderFailure {
            file: self.variants.first().map(|v| v.file.clone()).unwrap_or_default(),
            variable: None,
            message: format!(
                "no variant of template {:?} fits locale {:?} and there is no plain templates/{}.hbs",
                self.name,
                locale.unwrap_or(""),
                self.name
            ),
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
            }
        };
        let body = self
            .text
            .render(&format!("{}/body", v.key), ctx)
            .map_err(fail)?;
        let subject = if v.has_subject {
            Some(
                self.text
                    .render(&format!("{}/subject", v.key), ctx)
                    .map_err(fail)?,
            )
        } else {
            None
        };
        let html = if v.has_html {
            Some(
                self.html
                    .render(&format!("{}/html", v.key), ctx)
                    .map_err(fail)?,
            )
        } else {
            None
        };
        let whatsapp = match &v.whatsapp {
            Some((name, language, n)) => {
                let mut body = Vec::with_capacity(*n);
                for i in 0..*n {
                    body.push(
                        self.text
                            .render(&format!("{}/wa/{i}", v.key), ctx)
                            .map_err(fail)?,
                    );
                }
                Some(WhatsappTemplate {
                    name: name.clone(),
                    language: language.clone(),
                    body,
                })
            }
            None => None,
        };
        Ok(Content {
            body,
            subject,
            html,
            whatsapp,
        })
    }
}

/// Counts the simple `{{expr}}` / `{{{expr}}}` placeholders of a body, the ones that become
/// WhatsApp body parameters; blocks (`{{#..}}`, `{{/..}}`), partials, comments and `{{else}}`
/// are not parameters.
pub fn count_placeholders(body: &str) -> usize {
    let mut n = 0;
    let mut rest = body;
    while let Some(i) = rest.find("{{") {
        let after = rest[i + 2..]
            .trim_start_matches('{')
            .trim_start_matches('~')
            .trim_start();
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim();
        let skip = inner.is_empty()
            || matches!(
                inner.chars().next(),
                Some('#' | '/' | '>' | '!' | '^' | '*')
            )
            || inner == "else"
            || inner.starts_with("else ");
        if !skip {
            n += 1;
        }
        rest = &after[end + 2..];
    }
    n
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
    fn placeholder_count() {
        assert_eq!(
            count_placeholders("Oi {{a}}, {{#if b}}{{b}}{{/if}} {{{c}}} {{!x}}"),
            3
        );
    }
}
