//! The few helpers marketers need: `upper`, `lower`, `default`, `format_date`.
//!
//! Each helper honours strict mode itself (Handlebars leaves that to helpers): a missing
//! variable passed to `upper`/`lower`/`format_date` is reported by name, while `default`
//! exists precisely to fill a missing one.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
};
use serde_json::Value;

use super::compat::js_text;

pub fn register(h: &mut Handlebars<'static>) {
    h.register_helper("upper", Box::new(TextHelper(upper)));
    h.register_helper("lower", Box::new(TextHelper(lower)));
    h.register_helper("default", Box::new(TextHelper(default)));
    h.register_helper("format_date", Box::new(TextHelper(format_date)));
}

/// A helper that computes a text. Returned as a value (`call_inner`), not written, so that
/// Handlebars escapes it in `{{…}}` of an HTML part and not in `{{{…}}}`, as handlebars.js
/// does, and a subexpression (`{{upper (default nick "amigo")}}`) gets the text unescaped.
struct TextHelper(fn(&Helper, &Handlebars, &Context) -> Result<String, RenderError>);

impl HelperDef for TextHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        Ok(ScopedJson::Derived(Value::String((self.0)(h, r, ctx)?)))
    }
}

/// A value as handlebars.js prints it; an integer beyond 2^53 is an error (it would print
/// rounded there).
fn text(v: &Value) -> Result<String, RenderError> {
    js_text(v).ok_or_else(|| {
        RenderErrorReason::Other(format!(
            "{v} is beyond what a JavaScript number holds exactly (2^53); write it as a string in the audience file"
        ))
        .into()
    })
}

fn param<'a>(h: &'a Helper, idx: usize, r: &Handlebars) -> Result<Option<&'a Value>, RenderError> {
    match h.param(idx) {
        Some(p) if p.is_value_missing() => {
            if r.strict_mode() {
                Err(RenderErrorReason::MissingVariable(p.relative_path().cloned()).into())
            } else {
                Ok(None)
            }
        }
        Some(p) => Ok(Some(p.value())),
        None => Err(RenderErrorReason::ParamNotFoundForIndex("helper", idx).into()),
    }
}

/// `upper`: one text parameter in capitals; a missing variable is reported by name.
fn upper(h: &Helper, r: &Handlebars, _: &Context) -> Result<String, RenderError> {
    Ok(param(h, 0, r)?
        .map(text)
        .transpose()?
        .unwrap_or_default()
        .to_uppercase())
}

/// `lower`: one text parameter in small letters; a missing variable is reported by name.
fn lower(h: &Helper, r: &Handlebars, _: &Context) -> Result<String, RenderError> {
    Ok(param(h, 0, r)?
        .map(text)
        .transpose()?
        .unwrap_or_default()
        .to_lowercase())
}

/// `{{default nickname "amigo"}}`: the value when present and non-empty, else the fallback.
fn default(h: &Helper, _: &Handlebars, _: &Context) -> Result<String, RenderError> {
    let value = h
        .param(0)
        .filter(|p| !p.is_value_missing())
        .map(|p| p.value());
    match value {
        Some(Value::Null) | None => {}
        Some(Value::String(s)) if s.trim().is_empty() => {}
        Some(v) => return text(v),
    }
    match h.param(1) {
        Some(p) if !p.is_value_missing() => text(p.value()),
        _ => Ok(String::new()),
    }
}

const MONTHS_PT: [&str; 12] = [
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
];
const MONTHS_ES: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `{{format_date when "long"}}`: a date (`2026-11-27`) or instant (RFC 3339) written in the
/// recipient's locale (`locale` field) and, for instants, zone (`timezone` field).
/// Styles: `short` (27/11/2026, 11/27/2026 for en-US) and `long` (27 de novembro de 2026).
fn format_date(h: &Helper, r: &Handlebars, ctx: &Context) -> Result<String, RenderError> {
    let Some(v) = param(h, 0, r)? else {
        return Ok(String::new());
    };
    let raw = text(v)?;
    let style = match h.param(1) {
        Some(p) => text(p.value())?,
        None => "long".into(),
    };
    let root = ctx.data();
    let locale = root
        .get("locale")
        .and_then(Value::as_str)
        .map(super::normalize_locale)
        .unwrap_or_else(|| "en".into());
    let zone = root
        .get("timezone")
        .and_then(Value::as_str)
        .and_then(crate::schedule::zone);
    let date = if let Ok(ts) = raw.parse::<jiff::Timestamp>() {
        ts.to_zoned(zone.unwrap_or(jiff::tz::TimeZone::UTC)).date()
    } else if let Ok(d) = raw.parse::<jiff::civil::Date>() {
        d
    } else {
        return Err(RenderErrorReason::Other(format!(
            "format_date: {raw:?} is not a date (YYYY-MM-DD) or an RFC 3339 instant"
        ))
        .into());
    };
    let (d, m, y) = (date.day(), date.month() as usize - 1, date.year());
    let lang = locale.split('-').next().unwrap_or("en");
    let s = match (style.as_str(), lang) {
        ("short", "en") if locale == "en-us" || locale == "en" => {
            format!("{:02}/{:02}/{y}", m + 1, d)
        }
        ("short", _) => format!("{d:02}/{:02}/{y}", m + 1),
        (_, "pt") => format!("{d} de {} de {y}", MONTHS_PT[m]),
        (_, "es") => format!("{d} de {} de {y}", MONTHS_ES[m]),
        _ => format!("{} {d}, {y}", MONTHS_EN[m]),
    };
    Ok(s)
}
