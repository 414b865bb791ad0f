//! The `whatsapp:` block of a template's front matter: the whole template message (header,
//! body parameters positional or named, buttons), compiled once with the template and rendered
//! per recipient into [`WhatsappTemplate`], with Meta's limits checked on every rendered value
//! so a violation is that recipient's error at `validate`/`preview`/`plan`, never at send time.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Part, RenderFailure};
use crate::diag::Problem;
use crate::message::{
    WaButton, WaCurrency, WaDateTime, WaLocation, WaMedia, WaParam, WhatsappTemplate,
};

/// Meta's limits on template parameters (Cloud API template and component references).
pub mod limit {
    /// A header text (and so its one parameter), in characters.
    pub const HEADER_TEXT: usize = 60;
    /// A body text parameter, in characters (the body text itself is limited to 1024).
    pub const BODY_PARAM: usize = 1024;
    /// A URL button's URL, of which the dynamic suffix is a part.
    pub const URL_SUFFIX: usize = 2000;
    /// A quick reply button's payload.
    pub const PAYLOAD: usize = 1000;
    /// A copy-code button's coupon code.
    pub const COUPON_CODE: usize = 15;
    /// Buttons of a template (indexes 0..=9).
    pub const BUTTONS: u8 = 10;
}

/// ISO 4217 active alphabetic codes (2025), the `code` of a currency parameter.
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL";

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
enum Slot {
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
    buttons: Vec<(u8, SubType, String, Slot)>,
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
    let header = match &front.header {
        None => None,
        Some(h) => {
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
    };
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

#[derive(Clone, Copy)]
enum Where {
    Header,
    Body,
    Button,
}

fn failure(file: &Path, field: &str, message: String, hint: &str) -> RenderFailure {
    RenderFailure {
        file: file.to_path_buf(),
        variable: None,
        message,
        field: Some(field.to_owned()),
        hint: Some(hint.to_owned()),
    }
}

fn check_len(
    file: &Path,
    field: &str,
    value: &str,
    max: usize,
    what: &str,
) -> Result<(), RenderFailure> {
    let n = value.chars().count();
    if n > max {
        return Err(failure(
            file,
            field,
            format!("{what} is {n} characters, over Meta's {max}"),
            "shorten the value (or the recipient's field it comes from)",
        ));
    }
    Ok(())
}

/// Meta refuses a body text parameter with a new line, a tab or more than 4 spaces in a row
/// (error 132018).
fn check_body_text(file: &Path, field: &str, value: &str) -> Result<(), RenderFailure> {
    check_len(file, field, value, limit::BODY_PARAM, "the body parameter")?;
    if value.contains(['\n', '\r', '\t']) || value.contains("     ") {
        return Err(failure(file, field, "the body parameter has a new line, a tab or more than 4 spaces in a row, which Meta refuses (error 132018)".into(), "remove line breaks and tabs from the value, e.g. write it on one line"));
    }
    Ok(())
}

fn render_slot(
    file: &Path,
    field: &str,
    slot: &Slot,
    at: Where,
    render: &mut dyn FnMut(&Part) -> Result<String, RenderFailure>,
) -> Result<WaParam, RenderFailure> {
    let mut r = |p: &Part| render(p);
    Ok(match slot {
        Slot::Text { name, part } => {
            // An empty text stays a warning (app/checks.rs), as before this block grew.
            let text = r(part)?;
            match at {
                Where::Header => {
                    check_len(file, field, &text, limit::HEADER_TEXT, "the header text")?
                }
                Where::Body => check_body_text(file, field, &text)?,
                Where::Button => check_len(
                    file,
                    field,
                    &text,
                    limit::URL_SUFFIX,
                    "the URL button suffix",
                )?,
            }
            WaParam::Text {
                parameter_name: name.clone(),
                text,
            }
        }
        Slot::Currency {
            name,
            fallback,
            code,
            amount,
        } => {
            let fallback_value = r(fallback)?;
            check_body_text(file, &format!("{field}.fallback_value"), &fallback_value)?;
            let code = r(code)?.trim().to_owned();
            if code.len() != 3 || !ISO_4217.split(' ').any(|c| c == code) {
                return Err(failure(
                    file,
                    &format!("{field}.code"),
                    format!("{code:?} is not an ISO 4217 currency code"),
                    "write the three capital letters, such as USD, BRL or EUR",
                ));
            }
            let text = r(amount)?;
            let amount_1000 = text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|a| i32::try_from(*a).is_ok())
                .ok_or_else(|| {
                    failure(
                        file,
                        &format!("{field}.amount_1000"),
                        format!("amount_1000 {text:?} is not a whole number (Meta's int32)"),
                        "give the amount times 1000 as an integer: 100990 for 100.99",
                    )
                })?;
            WaParam::Currency {
                parameter_name: name.clone(),
                currency: WaCurrency {
                    fallback_value,
                    code,
                    amount_1000,
                },
            }
        }
        Slot::DateTime { name, fallback } => {
            let fallback_value = r(fallback)?;
            check_body_text(file, &format!("{field}.fallback_value"), &fallback_value)?;
            WaParam::DateTime {
                parameter_name: name.clone(),
                date_time: WaDateTime { fallback_value },
            }
        }
        Slot::Media {
            kind,
            id,
            link,
            filename,
        } => {
            let mut opt = |p: &Option<Part>| p.as_ref().map(&mut r).transpose();
            let media = WaMedia {
                id: opt(id)?,
                link: opt(link)?,
                filename: opt(filename)?,
            };
            if let Some(l) = &media.link
                && !(l.starts_with("https://") || l.starts_with("http://"))
            {
                return Err(failure(
                    file,
                    &format!("{field}.link"),
                    format!("the {kind} link {l:?} is not an http(s) URL"),
                    "give the public https:// address of the media",
                ));
            }
            if media.id.as_deref().is_some_and(|i| i.trim().is_empty()) {
                return Err(failure(
                    file,
                    &format!("{field}.id"),
                    "the media id renders empty".into(),
                    "give the id Meta returned for the uploaded media",
                ));
            }
            match *kind {
                "image" => WaParam::Image { image: media },
                "video" => WaParam::Video { video: media },
                _ => WaParam::Document { document: media },
            }
        }
        Slot::Location {
            latitude,
            longitude,
            name,
            address,
        } => {
            let mut coord = |p: &Part, key: &str, max: f64| {
                let t = r(p)?.trim().to_owned();
                match t.parse::<f64>() {
                    Ok(v) if v.is_finite() && v.abs() <= max => Ok(t),
                    _ => Err(failure(
                        file,
                        &format!("{field}.{key}"),
                        format!("{key} {t:?} is not a number between -{max} and {max}"),
                        "write decimal degrees such as -23.5505",
                    )),
                }
            };
            let latitude = coord(latitude, "latitude", 90.0)?;
            let longitude = coord(longitude, "longitude", 180.0)?;
            let mut opt = |p: &Option<Part>| p.as_ref().map(&mut r).transpose();
            WaParam::Location {
                location: WaLocation {
                    latitude,
                    longitude,
                    name: opt(name)?,
                    address: opt(address)?,
                },
            }
        }
        Slot::Payload(p) => {
            let payload = r(p)?;
            check_len(
                file,
                field,
                &payload,
                limit::PAYLOAD,
                "the quick reply payload",
            )?;
            WaParam::Payload { payload }
        }
        Slot::Coupon(p) => {
            let coupon_code = r(p)?;
            if coupon_code.trim().is_empty() {
                return Err(failure(
                    file,
                    field,
                    "the coupon code renders empty".into(),
                    "give every recipient a coupon",
                ));
            }
            check_len(
                file,
                field,
                &coupon_code,
                limit::COUPON_CODE,
                "the coupon code",
            )?;
            WaParam::CouponCode { coupon_code }
        }
    })
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
mod tests {
    use super::*;
    use crate::template::TemplateSet;
    use serde_json::json;

    fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<TemplateSet, Vec<Problem>>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let s = TemplateSet::load(dir.path(), "promo");
        (dir, s)
    }

    const FULL: &str = r#"---
whatsapp:
  name: bf
  language: en_US
  category: marketing
  header: { image: { link: "https://cdn.example.com/{{sku}}.jpg" } }
  body:
    - "{{first_name}}"
    - currency: { fallback_value: "{{price}}", code: USD, amount_1000: "{{price_1000}}" }
    - date_time: { fallback_value: "{{until}}" }
  buttons:
    - { sub_type: url, text: "{{sku}}" }
    - { index: 2, sub_type: quick_reply, payload: STOP }
    - { index: 1, sub_type: copy_code, coupon_code: "{{coupon}}" }
---
Hi {{first_name}}, {{price}} until {{until}}"#;

    fn vars() -> serde_json::Value {
        json!({"sku": "p-1", "first_name": "Ana", "price": "$10.99", "price_1000": 10990,
               "until": "Sunday", "coupon": "BF26"})
    }

    #[test]
    fn the_whole_template_renders_into_metas_shapes() {
        let (_d, s) = load(&[("promo.hbs", FULL)]);
        let s = s.unwrap();
        let wa = s.render(None, &vars()).unwrap().whatsapp.unwrap();
        assert!(wa.body.is_empty());
        assert_eq!(
            serde_json::to_value(&wa).unwrap(),
            json!({"name": "bf", "language": "en_US", "body": [], "category": "marketing",
                "header": {"type": "image", "image": {"link": "https://cdn.example.com/p-1.jpg"}},
                "body_params": [
                    {"type": "text", "text": "Ana"},
                    {"type": "currency", "currency": {"fallback_value": "$10.99", "code": "USD", "amount_1000": 10990}},
                    {"type": "date_time", "date_time": {"fallback_value": "Sunday"}}],
                "buttons": [
                    {"index": 0, "sub_type": "url", "parameter": {"type": "text", "text": "p-1"}},
                    {"index": 2, "sub_type": "quick_reply", "parameter": {"type": "payload", "payload": "STOP"}},
                    {"index": 1, "sub_type": "copy_code", "parameter": {"type": "coupon_code", "coupon_code": "BF26"}}]})
        );
        // The reference (Handlebars only) renders the same.
        assert_eq!(
            s.reference()
                .render(None, &vars())
                .unwrap()
                .whatsapp
                .unwrap(),
            wa
        );
        // Stored and loaded back unchanged; a row stored before these fields still loads.
        let back: crate::message::WhatsappTemplate =
            serde_json::from_value(serde_json::to_value(&wa).unwrap()).unwrap();
        assert_eq!(back, wa);
        let old: crate::message::WhatsappTemplate =
            serde_json::from_str(r#"{"name":"bf","language":"pt_BR","body":["Ana"]}"#).unwrap();
        assert_eq!(old.body, ["Ana"]);
        assert!(old.header.is_none() && old.buttons.is_empty() && old.category.is_none());
    }

    #[test]
    fn a_limit_broken_by_a_rendered_value_is_the_recipients_error_with_its_field() {
        let (_d, s) = load(&[("promo.hbs", FULL)]);
        let s = s.unwrap();
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            (
                "coupon",
                json!("TOO-LONG-COUPON-1"),
                "whatsapp.buttons[2].coupon_code",
            ),
            ("first_name", json!("Ana\nMaria"), "whatsapp.body[0]"),
            ("first_name", json!("Ana     Maria"), "whatsapp.body[0]"),
            ("first_name", json!("x".repeat(1025)), "whatsapp.body[0]"),
            ("price_1000", json!("10.99"), "whatsapp.body[1].amount_1000"),
            (
                "price_1000",
                json!(3_000_000_000_i64),
                "whatsapp.body[1].amount_1000",
            ),
            ("sku", json!("x".repeat(2001)), "whatsapp.buttons[0].text"),
        ];
        for (key, value, field) in cases {
            let mut v = vars();
            v[key] = value.clone();
            let f = s.render(None, &v).unwrap_err();
            assert_eq!(f.field.as_deref(), Some(field), "{key}={value}: {f:?}");
            let p = f.to_problem();
            assert!(p.hint.is_some() && p.file.is_some(), "{p:?}");
        }
        // At the limits exactly, accepted.
        let mut v = vars();
        v["coupon"] = json!("X".repeat(15));
        v["first_name"] = json!(format!("Ana    {}", "x".repeat(1017)));
        s.render(None, &v).unwrap();
    }

    #[test]
    fn header_kinds_and_limits() {
        let t = |header: &str| {
            load(&[(
                "promo.hbs",
                format!("---\nwhatsapp: {{ name: t, language: en, header: {header} }}\n---\nHi")
                    .leak(),
            )])
        };
        let (_d, s) = t(r#"{ text: "{{h}}" }"#);
        let s = s.unwrap();
        let f = s.render(None, &json!({"h": "x".repeat(61)})).unwrap_err();
        assert_eq!(f.field.as_deref(), Some("whatsapp.header.text"));
        assert!(s.render(None, &json!({"h": "x".repeat(60)})).is_ok());

        let (_d, s) = t(
            r#"{ location: { latitude: "{{lat}}", longitude: -46.6333, name: Loja, address: "Rua A, 1" } }"#,
        );
        let s = s.unwrap();
        let wa = s
            .render(None, &json!({"lat": "-23.5505"}))
            .unwrap()
            .whatsapp
            .unwrap();
        assert_eq!(
            serde_json::to_value(wa.header.unwrap()).unwrap(),
            json!({"type": "location",
            "location": {"latitude": "-23.5505", "longitude": "-46.6333", "name": "Loja", "address": "Rua A, 1"}})
        );
        let f = s.render(None, &json!({"lat": "91"})).unwrap_err();
        assert_eq!(
            f.field.as_deref(),
            Some("whatsapp.header.location.latitude")
        );

        let (_d, s) = t(r#"{ document: { id: "{{doc}}", filename: "{{inv}}.pdf" } }"#);
        let wa = s
            .unwrap()
            .render(None, &json!({"doc": "123", "inv": "F-1"}))
            .unwrap()
            .whatsapp
            .unwrap();
        assert_eq!(
            serde_json::to_value(wa.header.unwrap()).unwrap(),
            json!({"type": "document", "document": {"id": "123", "filename": "F-1.pdf"}})
        );

        for (bad, field) in [
            (
                r#"{ image: { link: "https://a/x.jpg", id: "1" } }"#,
                "whatsapp.header.image",
            ),
            (
                r#"{ image: { link: "https://a/x.jpg", filename: a.pdf } }"#,
                "whatsapp.header.image.filename",
            ),
            (r#"{ text: a, image: { id: "1" } }"#, "whatsapp.header"),
        ] {
            let (_d, s) = t(bad);
            let p = &s.unwrap_err()[0];
            assert_eq!(p.field.as_deref(), Some(field), "{bad}: {p:?}");
        }
    }

    #[test]
    fn named_parameters_and_partials_count() {
        let files = |body: &str| {
            vec![
                ("promo.hbs", format!("---\nwhatsapp: {{ name: t, language: en, body: {body} }}\n---\nHi {{{{first_name}}}} {{{{> footer}}}}").leak() as &str),
                ("partials/footer.hbs", "use {{coupon}}"),
            ]
        };
        // Positional: the placeholder inside the partial counts.
        let (_d, s) = load(&files(r#"["{{first_name}}", "{{coupon}}"]"#));
        let c = s
            .unwrap()
            .render(None, &json!({"first_name": "Ana", "coupon": "BF"}))
            .unwrap();
        assert_eq!(c.whatsapp.unwrap().body, ["Ana", "BF"]);
        let (_d, s) = load(&files(r#"["{{first_name}}"]"#));
        let p = &s.unwrap_err()[0];
        assert_eq!(p.field.as_deref(), Some("whatsapp.body"));
        assert!(
            p.message.contains("1 body parameter(s)") && p.message.contains("2 placeholder(s)"),
            "{}",
            p.message
        );
        // Named: a map, one key per distinct placeholder.
        let (_d, s) = load(&files(
            r#"{ first_name: "{{first_name}}", coupon: "{{coupon}}" }"#,
        ));
        let wa = s
            .unwrap()
            .render(None, &json!({"first_name": "Ana", "coupon": "BF"}))
            .unwrap()
            .whatsapp
            .unwrap();
        assert_eq!(
            serde_json::to_value(&wa.body_params).unwrap(),
            json!([
            {"type": "text", "parameter_name": "coupon", "text": "BF"},
            {"type": "text", "parameter_name": "first_name", "text": "Ana"}])
        );
        let (_d, s) = load(&files(
            r#"{ first_name: "{{first_name}}", code: "{{coupon}}" }"#,
        ));
        assert_eq!(s.unwrap_err()[0].field.as_deref(), Some("whatsapp.body"));
        let (_d, s) = load(&files(
            r#"{ First: "{{first_name}}", coupon: "{{coupon}}" }"#,
        ));
        assert_eq!(
            s.unwrap_err()[0].field.as_deref(),
            Some("whatsapp.body.First")
        );
    }

    #[test]
    fn button_shapes_are_checked_at_load() {
        for (buttons, field) in [
            ("[{ sub_type: url, payload: x }]", "whatsapp.buttons[0]"),
            ("[{ sub_type: copy_code }]", "whatsapp.buttons[0]"),
            (
                "[{ sub_type: url, text: a }, { index: 0, sub_type: quick_reply, payload: b }]",
                "whatsapp.buttons[1].index",
            ),
            (
                "[{ index: 10, sub_type: url, text: a }]",
                "whatsapp.buttons[0].index",
            ),
        ] {
            let (_d, s) = load(&[(
                "promo.hbs",
                format!("---\nwhatsapp: {{ name: t, language: en, buttons: {buttons} }}\n---\nHi")
                    .leak(),
            )]);
            let p = &s.unwrap_err()[0];
            assert_eq!(p.field.as_deref(), Some(field), "{buttons}: {p:?}");
        }
        let (_d, s) = load(&[(
            "promo.hbs",
            "---\nwhatsapp: { name: t, language: en, category: utility, endpoint: marketing_messages }\n---\nHi",
        )]);
        assert_eq!(
            s.unwrap_err()[0].field.as_deref(),
            Some("whatsapp.endpoint")
        );
    }

    #[test]
    fn partials_are_expanded_before_counting() {
        let mut p = BTreeMap::new();
        p.insert(
            "footer".to_owned(),
            "Code {{coupon}} {{> inner}}".to_owned(),
        );
        p.insert("inner".to_owned(), "until {{until}}".to_owned());
        let e = expand_partials("Hi {{name}} {{> footer}}{{~> inner ~}}", &p, 0);
        assert_eq!(
            e,
            "Hi {{name}} Code {{coupon}} until {{until}}until {{until}}"
        );
        assert_eq!(placeholders(&e), ["name", "coupon", "until", "until"]);
    }

    #[test]
    fn placeholders_skip_blocks_and_keep_helpers() {
        assert_eq!(
            placeholders("{{#if a}}{{b}}{{else}}{{{c}}}{{/if}}{{! x}}{{format_date d \"long\"}}"),
            ["b", "c", "format_date d \"long\""]
        );
    }

    #[test]
    fn parameter_names_follow_meta() {
        assert!(valid_parameter_name("first_name2"));
        assert!(!valid_parameter_name("First"));
        assert!(!valid_parameter_name("2x"));
        assert!(!valid_parameter_name("a-b"));
    }
}
