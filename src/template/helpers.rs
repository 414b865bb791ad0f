//! The few helpers marketers need: `upper`, `lower`, `default`, `format_date`.
//!
//! Each helper honours strict mode itself (Handlebars leaves that to helpers): a missing
//! variable passed to `upper`/`lower`/`format_date` is reported by name, while `default`
//! exists precisely to fill a missing one.

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use serde_json::Value;

pub fn register(h: &mut Handlebars<'static>) {
    h.register_helper("upper", Box::new(change_case(str::to_uppercase)));
    h.register_helper("lower", Box::new(change_case(str::to_lowercase)));
    h.register_helper("default", Box::new(default));
    h.register_helper("format_date", Box::new(format_date));
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
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

/// `upper` and `lower`: one text parameter, its case changed; a missing variable is reported
/// by name in strict mode.
fn change_case(
    convert: fn(&str) -> String,
) -> impl Fn(&Helper, &Handlebars, &Context, &mut RenderContext, &mut dyn Output) -> HelperResult
+ Send
+ Sync {
    move |h, r, _, _, out| {
        let v = param(h, 0, r)?.map(text).unwrap_or_default();
        out.write(&convert(&v))?;
        Ok(())
    }
}

/// `{{default nickname "amigo"}}`: the value when present and non-empty, else the fallback.
fn default(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let value = h
        .param(0)
        .filter(|p| !p.is_value_missing())
        .map(|p| p.value());
    let chosen = match value {
        Some(Value::Null) | None => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(v) => Some(text(v)),
    };
    let fallback = h.param(1).map(|p| text(p.value())).unwrap_or_default();
    out.write(&chosen.unwrap_or(fallback))?;
    Ok(())
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
fn format_date(
    h: &Helper,
    r: &Handlebars,
    ctx: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let Some(v) = param(h, 0, r)? else {
        return Ok(());
    };
    let raw = text(v);
    let style = h
        .param(1)
        .map(|p| text(p.value()))
        .unwrap_or_else(|| "long".into());
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
    out.write(&s)?;
    Ok(())
}
