//! The `whatsapp:` block of a template's front matter: the whole template message (header,
//! body parameters positional or named, buttons), compiled once with the template and rendered
//! per recipient into [`WhatsappTemplate`], with Meta's limits checked on every rendered value
//! so a violation is that recipient's error at `validate`/`preview`/`plan`, never at send time.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Part, RenderFailure};

mod render;
use crate::diag::Problem;
use crate::message::{WaButton, WaParam, WhatsappTemplate};
pub use render::limit;
use render::{Where, render_slot};

/// The `whatsapp:` front matter block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Front {
    pub name: String,
    pub language: String,
    /// The template's category at Meta; unknown is treated as marketing by the +1 check.
    #[serde(default)]
    pub category: Option<Category>,
    /// `messages` (default) or `marketing_messages` (Meta's Marketing Messages API).
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    #[serde(default)]
    pub header: Option<HeaderFront>,
    /// A YAML list: positional parameters `{{1}}`, `{{2}}`...; a YAML map: named parameters.
    #[serde(default)]
    pub body: BodyFront,
    #[serde(default)]
    pub buttons: Vec<ButtonFront>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Category {
    Marketing,
    Utility,
    Authentication,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Endpoint {
    Messages,
    MarketingMessages,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum BodyFront {
    Positional(Vec<ParamFront>),
    Named(BTreeMap<String, ParamFront>),
}

impl Default for BodyFront {
    fn default() -> Self {
        BodyFront::Positional(Vec::new())
    }
}

/// A body parameter: a string is a text parameter; else `{currency: ..}`, `{date_time: ..}`, `{text: ..}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ParamFront {
    Text(String),
    Rich(RichParam),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum RichParam {
    Text(String),
    Currency(CurrencyFront),
    DateTime(DateTimeFront),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CurrencyFront {
    fallback_value: String,
    code: String,
    amount_1000: Scalar,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DateTimeFront {
    fallback_value: String,
}

/// A YAML scalar written as a number or a string (both are templates once rendered).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn source(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

/// The header's one parameter: exactly one of `text`, `image`, `video`, `document`, `location`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderFront {
    #[serde(default)]
    text: Option<String>,
    /// For a named-parameter template's header text.
    #[serde(default)]
    parameter_name: Option<String>,
    #[serde(default)]
    image: Option<MediaFront>,
    #[serde(default)]
    video: Option<MediaFront>,
    #[serde(default)]
    document: Option<MediaFront>,
    #[serde(default)]
    location: Option<LocationFront>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MediaFront {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LocationFront {
    latitude: Scalar,
    longitude: Scalar,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum SubType {
    Url,
    QuickReply,
    CopyCode,
}

impl SubType {
    fn as_str(self) -> &'static str {
        match self {
            SubType::Url => "url",
            SubType::QuickReply => "quick_reply",
            SubType::CopyCode => "copy_code",
        }
    }
    /// The one parameter key this button kind takes.
    fn key(self) -> &'static str {
        match self {
            SubType::Url => "text",
            SubType::QuickReply => "payload",
            SubType::CopyCode => "coupon_code",
        }
    }
}

/// A button with a parameter; `index` defaults to its position in the list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ButtonFront {
    #[serde(default)]
    index: Option<u8>,
    sub_type: SubType,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    coupon_code: Option<String>,
}

impl Front {
    /// Every template text of the block, for the depth and partial scans.
    pub fn texts(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let Some(h) = &self.header {
            out.extend(h.text.as_deref());
            for m in [&h.image, &h.video, &h.document].into_iter().flatten() {
                out.extend(m.id.as_deref());
                out.extend(m.link.as_deref());
                out.extend(m.filename.as_deref());
            }
            if let Some(l) = &h.location {
                for s in [&l.latitude, &l.longitude] {
                    if let Scalar::Text(t) = s {
                        out.push(t.as_str());
                    }
                }
                out.extend(l.name.as_deref());
                out.extend(l.address.as_deref());
            }
        }
        let params: Vec<&ParamFront> = match &self.body {
            BodyFront::Positional(v) => v.iter().collect(),
            BodyFront::Named(m) => m.values().collect(),
        };
        for p in params {
            match p {
                ParamFront::Text(t) | ParamFront::Rich(RichParam::Text(t)) => out.push(t),
                ParamFront::Rich(RichParam::Currency(c)) => {
                    out.push(&c.fallback_value);
                    out.push(&c.code);
                    if let Scalar::Text(t) = &c.amount_1000 {
                        out.push(t);
                    }
                }
                ParamFront::Rich(RichParam::DateTime(d)) => out.push(&d.fallback_value),
            }
        }
        for b in &self.buttons {
            out.extend(b.text.as_deref());
            out.extend(b.payload.as_deref());
            out.extend(b.coupon_code.as_deref());
        }
        out
    }
}

/// What a compiled value becomes once rendered.
#[derive(Debug, Clone)]
pub(super) enum Slot {
    Text {
        name: Option<String>,
        part: Part,
    },
    Currency {
        name: Option<String>,
        fallback: Part,
        code: Part,
        amount: Part,
    },
    DateTime {
        name: Option<String>,
        fallback: Part,
    },
    Media {
        kind: &'static str,
        id: Option<Part>,
        link: Option<Part>,
        filename: Option<Part>,
    },
    Location {
        latitude: Part,
        longitude: Part,
        name: Option<Part>,
        address: Option<Part>,
    },
    Payload(Part),
    Coupon(Part),
}

impl Slot {
    fn parts_mut(&mut self) -> Vec<&mut Part> {
        match self {
            Slot::Text { part, .. } | Slot::Payload(part) | Slot::Coupon(part) => vec![part],
            Slot::Currency {
                fallback,
                code,
                amount,
                ..
            } => vec![fallback, code, amount],
            Slot::DateTime { fallback, .. } => vec![fallback],
            Slot::Media {
                id, link, filename, ..
            } => [id, link, filename].into_iter().flatten().collect(),
            Slot::Location {
                latitude,
                longitude,
                name,
                address,
            } => {
                let mut v = vec![latitude, longitude];
                v.extend(name.as_mut());
                v.extend(address.as_mut());
                v
            }
        }
    }
}

/// The block compiled with its template: every string is a [`Part`] of the set's registry.
#[derive(Debug, Clone)]
pub(super) struct Compiled {
    name: String,
    language: String,
    category: Option<Category>,
    marketing_endpoint: bool,
    /// `(field, slot)`: `whatsapp.header.text`, `whatsapp.body[0]`, `whatsapp.body.first_name`...
    header: Option<(String, Slot)>,
    body: Vec<(String, Slot)>,
    /// Every body parameter is positional text: rendered into `WhatsappTemplate::body`.
    plain_body: bool,
    named: bool,
    buttons: Vec<Button>,
    /// The template's body source, for the parameter count once partials are known.
    body_src: String,
}

fn problem(file: &Path, field: &str, message: String, hint: &str) -> Problem {
    Problem::new(message)
        .in_file(file)
        .field(field.to_owned())
        .hint(hint.to_owned())
}

/// Meta's parameter names: lowercase letters, digits and underscores, starting with a letter.
fn valid_parameter_name(n: &str) -> bool {
    n.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A compiled button: index, kind, field, value.
type Button = (u8, SubType, String, Slot);

/// A body parameter as written: its field, its name when named, its value.
type BodyEntry<'a> = (String, Option<String>, &'a ParamFront);

/// Compiles the block; `add(suffix, source)` registers one template string.
pub(super) fn compile(
    front: &Front,
    file: &Path,
    body_src: &str,
    add: &mut dyn FnMut(String, &str) -> Part,
) -> Result<Compiled, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut n = 0usize;
    let mut part = |src: &str| {
        n += 1;
        add(format!("wa/{n}"), src)
    };
    let header = front
        .header
        .as_ref()
        .and_then(|h| compile_header(h, file, &mut problems, &mut part));
    let (params, named): (Vec<BodyEntry>, bool) = match &front.body {
        BodyFront::Positional(v) => (
            v.iter()
                .enumerate()
                .map(|(i, p)| (format!("whatsapp.body[{i}]"), None, p))
                .collect(),
            false,
        ),
        BodyFront::Named(m) => (
            m.iter()
                .map(|(k, p)| (format!("whatsapp.body.{k}"), Some(k.clone()), p))
                .collect(),
            true,
        ),
    };
    let mut plain_body = !named;
    let mut body = Vec::new();
    for (field, name, p) in params {
        if let Some(n) = &name
            && !valid_parameter_name(n)
        {
            problems.push(problem(file, &field, format!("parameter name {n:?} is not one Meta accepts"), "use lowercase letters, digits and underscores, starting with a letter, as in the approved template's {{name}} placeholders"));
        }
        let slot = match p {
            ParamFront::Text(t) | ParamFront::Rich(RichParam::Text(t)) => Slot::Text {
                name,
                part: part(t),
            },
            ParamFront::Rich(RichParam::Currency(c)) => {
                plain_body = false;
                Slot::Currency {
                    name,
                    fallback: part(&c.fallback_value),
                    code: part(&c.code),
                    amount: part(&c.amount_1000.source()),
                }
            }
            ParamFront::Rich(RichParam::DateTime(d)) => {
                plain_body = false;
                Slot::DateTime {
                    name,
                    fallback: part(&d.fallback_value),
                }
            }
        };
        body.push((field, slot));
    }
    let buttons = compile_buttons(front, file, &mut problems, &mut part);
    if front.endpoint == Some(Endpoint::MarketingMessages)
        && front.category.is_some_and(|c| c != Category::Marketing)
    {
        problems.push(problem(file, "whatsapp.endpoint", "`endpoint: marketing_messages` sends marketing templates only, and this template is not `category: marketing`".into(), "remove `endpoint` (utility and authentication templates go to /messages) or fix `category`"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Compiled {
        name: front.name.clone(),
        language: front.language.clone(),
        category: front.category,
        marketing_endpoint: front.endpoint == Some(Endpoint::MarketingMessages),
        header,
        body,
        plain_body,
        named,
        buttons,
        body_src: body_src.to_owned(),
    })
}

/// The header's one parameter, compiled; its shape problems pushed to `problems`.
fn compile_header(
    h: &HeaderFront,
    file: &Path,
    problems: &mut Vec<Problem>,
    mut part: impl FnMut(&str) -> Part,
) -> Option<(String, Slot)> {
    let kinds = [
        h.text.is_some(),
        h.image.is_some(),
        h.video.is_some(),
        h.document.is_some(),
        h.location.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        problems.push(problem(file, "whatsapp.header", "the WhatsApp header needs exactly one of `text`, `image`, `video`, `document`, `location`".into(), "write e.g. `header: { image: { link: \"https://...\" } }` or `header: { text: \"{{order_id}}\" }`; leave `header` out when the approved template's header has no parameter"));
        None
    } else if h.parameter_name.is_some() && h.text.is_none() {
        problems.push(problem(
            file,
            "whatsapp.header.parameter_name",
            "`parameter_name` applies to a header text parameter only".into(),
            "remove `parameter_name`, or give the header a `text`",
        ));
        None
    } else if let Some(t) = &h.text {
        if let Some(n) = &h.parameter_name
            && !valid_parameter_name(n)
        {
            problems.push(problem(file, "whatsapp.header.parameter_name", format!("parameter name {n:?} is not one Meta accepts"), "use lowercase letters, digits and underscores, starting with a letter, as in the approved template"));
        }
        Some((
            "whatsapp.header.text".to_owned(),
            Slot::Text {
                name: h.parameter_name.clone(),
                part: part(t),
            },
        ))
    } else if let Some(l) = &h.location {
        Some((
            "whatsapp.header.location".to_owned(),
            Slot::Location {
                latitude: part(&l.latitude.source()),
                longitude: part(&l.longitude.source()),
                name: l.name.as_deref().map(&mut part),
                address: l.address.as_deref().map(&mut part),
            },
        ))
    } else {
        let (kind, m) = [
            ("image", &h.image),
            ("video", &h.video),
            ("document", &h.document),
        ]
        .into_iter()
        .find_map(|(k, m)| m.as_ref().map(|m| (k, m)))
        .expect("exactly one header kind is set");
        let field = format!("whatsapp.header.{kind}");
        if m.id.is_some() == m.link.is_some() {
            problems.push(problem(file, &field, format!("the header {kind} needs exactly one of `link` and `id`"), "give the public https `link` of the media, or the `id` Meta returned when you uploaded it"));
        }
        if m.filename.is_some() && kind != "document" {
            problems.push(problem(
                file,
                &format!("{field}.filename"),
                format!("`filename` applies to a document header, not to an {kind}"),
                "remove `filename`",
            ));
        }
        Some((
            field,
            Slot::Media {
                kind,
                id: m.id.as_deref().map(&mut part),
                link: m.link.as_deref().map(&mut part),
                filename: m.filename.as_deref().map(&mut part),
            },
        ))
    }
}

/// The buttons with a parameter, compiled; their shape problems pushed to `problems`.
fn compile_buttons(
    front: &Front,
    file: &Path,
    problems: &mut Vec<Problem>,
    mut part: impl FnMut(&str) -> Part,
) -> Vec<Button> {
    let mut buttons: Vec<(u8, SubType, String, Slot)> = Vec::new();
    for (i, b) in front.buttons.iter().enumerate() {
        let field = format!("whatsapp.buttons[{i}]");
        let index = b.index.unwrap_or(i.min(255) as u8);
        if index >= limit::BUTTONS {
            problems.push(problem(file, &format!("{field}.index"), format!("button index {index} is out of range: a template has at most {} buttons, indexes 0 to 9", limit::BUTTONS), "give the button's position in the approved template, counting from 0"));
        }
        if buttons.iter().any(|(j, ..)| *j == index) {
            problems.push(problem(
                file,
                &format!("{field}.index"),
                format!("two buttons have index {index}"),
                "give each button its own position in the approved template, counting from 0",
            ));
        }
        let given = [
            ("text", &b.text),
            ("payload", &b.payload),
            ("coupon_code", &b.coupon_code),
        ];
        let key = b.sub_type.key();
        let wrong: Vec<&str> = given
            .iter()
            .filter(|(k, v)| v.is_some() && *k != key)
            .map(|(k, _)| *k)
            .collect();
        let value = given
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_deref());
        let Some(value) = value.filter(|_| wrong.is_empty()) else {
            problems.push(problem(
                file,
                &field,
                format!(
                    "a `{}` button takes exactly one `{key}` parameter",
                    b.sub_type.as_str()
                ),
                "url: `text` (the URL suffix); quick_reply: `payload`; copy_code: `coupon_code`",
            ));
            continue;
        };
        let p = part(value);
        let slot = match b.sub_type {
            SubType::Url => Slot::Text {
                name: None,
                part: p,
            },
            SubType::QuickReply => Slot::Payload(p),
            SubType::CopyCode => Slot::Coupon(p),
        };
        buttons.push((index, b.sub_type, format!("{field}.{key}"), slot));
    }
    buttons
}

impl Compiled {
    pub fn parts_mut(&mut self) -> impl Iterator<Item = &mut Part> {
        self.header
            .iter_mut()
            .map(|(_, s)| s)
            .chain(self.body.iter_mut().map(|(_, s)| s))
            .chain(self.buttons.iter_mut().map(|(.., s)| s))
            .flat_map(Slot::parts_mut)
    }

    pub fn count_parts(&self, pred: impl Fn(&Part) -> bool) -> usize {
        let mut copy = self.clone();
        copy.parts_mut().filter(|p| pred(p)).count()
    }

    /// The body's placeholders, partials expanded, against the parameters given: Meta refuses
    /// a message whose parameter count differs from the approved template's (error 132000).
    pub fn check_count(&self, file: &Path, partials: &BTreeMap<String, String>) -> Option<Problem> {
        let expanded = expand_partials(&self.body_src, partials, 0);
        let found = placeholders(&expanded);
        let hint = "Meta rejects a parameter count mismatch (error 132000): list one `body` entry per {{...}} in the body text (partials included), in order";
        if !self.named {
            if found.len() != self.body.len() {
                return Some(problem(
                    file,
                    "whatsapp.body",
                    format!(
                        "the WhatsApp template {:?} has {} body parameter(s) in front matter but the body text has {} placeholder(s) (partials included)",
                        self.name,
                        self.body.len(),
                        found.len()
                    ),
                    hint,
                ));
            }
            return None;
        }
        let mut distinct: Vec<&str> = found.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let keys: Vec<&str> = self
            .body
            .iter()
            .filter_map(|(_, s)| match s {
                Slot::Text { name, .. }
                | Slot::Currency { name, .. }
                | Slot::DateTime { name, .. } => name.as_deref(),
                _ => None,
            })
            .collect();
        let missing: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !distinct.contains(k))
            .collect();
        if !missing.is_empty() || distinct.len() != keys.len() {
            return Some(problem(
                file,
                "whatsapp.body",
                format!(
                    "the WhatsApp template {:?} names body parameter(s) {} but the body text has placeholder(s) {} (partials included)",
                    self.name,
                    keys.join(", "),
                    distinct.join(", ")
                ),
                "a named-parameter template has one `body` key per distinct {{name}} of its text, named as the placeholder",
            ));
        }
        None
    }

    /// Renders every value for one recipient and checks it against Meta's limits.
    pub fn render(
        &self,
        file: &Path,
        render: &mut dyn FnMut(&Part) -> Result<String, RenderFailure>,
    ) -> Result<WhatsappTemplate, RenderFailure> {
        let header = match &self.header {
            Some((field, slot)) => Some(render_slot(file, field, slot, Where::Header, render)?),
            None => None,
        };
        let mut out = WhatsappTemplate {
            name: self.name.clone(),
            language: self.language.clone(),
            header,
            category: self.category.map(|c| {
                match c {
                    Category::Marketing => "marketing",
                    Category::Utility => "utility",
                    Category::Authentication => "authentication",
                }
                .to_owned()
            }),
            marketing_endpoint: self.marketing_endpoint,
            ..WhatsappTemplate::default()
        };
        for (field, slot) in &self.body {
            let p = render_slot(file, field, slot, Where::Body, render)?;
            match p {
                WaParam::Text {
                    parameter_name: None,
                    text,
                } if self.plain_body => out.body.push(text),
                p => out.body_params.push(p),
            }
        }
        for (index, sub_type, field, slot) in &self.buttons {
            let parameter = render_slot(file, field, slot, Where::Button, render)?;
            out.buttons.push(WaButton {
                index: *index,
                sub_type: sub_type.as_str().to_owned(),
                parameter,
            });
        }
        Ok(out)
    }
}

/// `{{> name}}` replaced by the partial's source (recursively, a bounded depth: cycles are
/// refused elsewhere), so the placeholders inside count.
pub(super) fn expand_partials(
    src: &str,
    partials: &BTreeMap<String, String>,
    depth: usize,
) -> String {
    if depth > 16 {
        return String::new();
    }
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let inner_start = after.trim_start_matches('~').trim_start();
        if let Some(tail) = inner_start.strip_prefix('>')
            && let Some(end) = tail.find("}}")
        {
            let name = tail[..end]
                .trim()
                .trim_end_matches('~')
                .split_whitespace()
                .next()
                .unwrap_or("");
            if let Some(p) = partials.get(name) {
                out.push_str(&expand_partials(p, partials, depth + 1));
            }
            rest = &tail[end + 2..];
            continue;
        }
        out.push_str("{{");
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The simple `{{expr}}` / `{{{expr}}}` placeholders of a text (the ones that become body
/// parameters), each as its expression; blocks, partials, comments and `{{else}}` are not.
pub(super) fn placeholders(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find("{{") {
        let after = rest[i + 2..]
            .trim_start_matches('{')
            .trim_start_matches('~')
            .trim_start();
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim().trim_end_matches('~').trim();
        let skip = inner.is_empty()
            || matches!(
                inner.chars().next(),
                Some('#' | '/' | '>' | '!' | '^' | '*')
            )
            || inner == "else"
            || inner.starts_with("else ");
        if !skip {
            out.push(inner.to_owned());
        }
        rest = after[end + 2..].trim_start_matches('}');
    }
    out
}

#[cfg(test)]
mod tests;
