//! Judging one recipient. A field's text is read as the other side of the comparison asks: a
//! number against a number, a date against a date (on the recipient's calendar), and so on; a
//! value that cannot be read so is an error naming the field, not a silent `false`.
//!
//! A blank cell or a missing field is null: it equals nothing (`==` and `in` are false, `!=`
//! and `not in` true) and orders with nothing (`<`, `>`, ... are false).

use std::borrow::Cow;
use std::cmp::Ordering;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use serde_json::Value;

use super::{CmpOp, DateTerm, EvalCtx, Expr, Operand, TimeTerm};

/// A recipient's value the filter cannot compare: which field, what it holds, what it needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub field: String,
    pub message: String,
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Typed<'a> {
    Null,
    Str(Cow<'a, str>),
    Num(f64),
    Bool(bool),
    Date(Date),
    Time(Timestamp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Num,
    Bool,
    Date,
    Time,
}

pub(super) fn eval<'f>(
    e: &Expr,
    fields: &dyn Fn(&str) -> Option<&'f Value>,
    ctx: &EvalCtx<'_>,
) -> Result<bool, EvalError> {
    Ok(match e {
        Expr::Or(xs) => {
            for x in xs {
                if eval(x, fields, ctx)? {
                    return Ok(true);
                }
            }
            false
        }
        Expr::And(xs) => {
            for x in xs {
                if !eval(x, fields, ctx)? {
                    return Ok(false);
                }
            }
            true
        }
        Expr::Not(x) => !eval(x, fields, ctx)?,
        Expr::IsNull { field, negated } => is_null(fields(field)) != *negated,
        Expr::Compare { left, op, right } => {
            let (l, r) = match (kind(left), kind(right)) {
                (Some(k), _) | (None, Some(k)) => (
                    resolve(left, k, fields, ctx)?,
                    resolve(right, k, fields, ctx)?,
                ),
                (None, None) => both_fields(left, right, fields)?,
            };
            compare(&l, *op, &r)
        }
        Expr::In {
            left,
            list,
            negated,
        } => {
            // Each item reads the field as its own kind; an item the value cannot be read
            // as is no match, and only a value no item can read is an error.
            let mut found = false;
            let mut unreadable = None;
            let mut readable = false;
            for item in list {
                let k = kind(item).unwrap_or(Kind::Str);
                let l = match resolve(left, k, fields, ctx) {
                    Ok(l) => l,
                    Err(e) => {
                        unreadable.get_or_insert(e);
                        continue;
                    }
                };
                readable = true;
                let r = resolve(item, k, fields, ctx)?;
                if compare(&l, CmpOp::Eq, &r) {
                    found = true;
                    break;
                }
            }
            if let (false, Some(e)) = (readable, unreadable) {
                return Err(e);
            }
            found != *negated
        }
    })
}

fn is_null(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

/// What a literal operand asks a field to be read as; `None` for a field.
fn kind(o: &Operand) -> Option<Kind> {
    Some(match o {
        Operand::Field(_) => return None,
        Operand::Str(_) => Kind::Str,
        Operand::Num(_) => Kind::Num,
        Operand::Bool(_) => Kind::Bool,
        Operand::Date(_) => Kind::Date,
        Operand::Time(_) => Kind::Time,
    })
}

fn compare(l: &Typed<'_>, op: CmpOp, r: &Typed<'_>) -> bool {
    let ord = match (l, r) {
        (Typed::Null, _) | (_, Typed::Null) => return op == CmpOp::Ne,
        (Typed::Str(a), Typed::Str(b)) => a.cmp(b),
        (Typed::Num(a), Typed::Num(b)) => a.partial_cmp(b).unwrap_or(Ordering::Less),
        (Typed::Bool(a), Typed::Bool(b)) => a.cmp(b),
        (Typed::Date(a), Typed::Date(b)) => a.cmp(b),
        (Typed::Time(a), Typed::Time(b)) => a.cmp(b),
        // Both sides are read as one kind: mixed kinds are a bug, judged unequal.
        _ => return op == CmpOp::Ne,
    };
    op.holds(ord)
}

/// Two fields: numbers when both read as numbers, else text.
fn both_fields<'a>(
    left: &Operand,
    right: &Operand,
    fields: &dyn Fn(&str) -> Option<&'a Value>,
) -> Result<(Typed<'a>, Typed<'a>), EvalError> {
    let (Operand::Field(a), Operand::Field(b)) = (left, right) else {
        unreachable!("both_fields is called with two fields");
    };
    let (va, vb) = (fields(a), fields(b));
    if is_null(va) || is_null(vb) {
        return Ok((Typed::Null, Typed::Null));
    }
    let num = |v: Option<&Value>| match v {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    if let (Some(x), Some(y)) = (num(va), num(vb)) {
        return Ok((Typed::Num(x), Typed::Num(y)));
    }
    Ok((
        field_as(a, va, Kind::Str, None)?,
        field_as(b, vb, Kind::Str, None)?,
    ))
}

fn resolve<'a>(
    o: &Operand,
    k: Kind,
    fields: &dyn Fn(&str) -> Option<&'a Value>,
    ctx: &EvalCtx<'_>,
) -> Result<Typed<'a>, EvalError> {
    Ok(match o {
        Operand::Field(f) => return field_as(f, fields(f), k, Some(ctx)),
        Operand::Str(s) => Typed::Str(Cow::Owned(s.clone())),
        Operand::Num(n) => Typed::Num(*n),
        Operand::Bool(b) => Typed::Bool(*b),
        Operand::Date(DateTerm::Literal(d)) => Typed::Date(*d),
        Operand::Date(DateTerm::Today(days)) => {
            let today = ctx.now.to_zoned(ctx.tz.clone()).date();
            Typed::Date(
                today
                    .checked_add(jiff::Span::new().days(*days))
                    .unwrap_or(today),
            )
        }
        Operand::Time(TimeTerm::Now(secs)) => Typed::Time(
            ctx.now
                .checked_add(jiff::SignedDuration::from_secs(*secs))
                .unwrap_or(ctx.now),
        ),
        Operand::Time(TimeTerm::Wall(w)) => match ctx.tz.to_ambiguous_zoned(*w).compatible() {
            Ok(z) => Typed::Time(z.timestamp()),
            Err(_) => Typed::Null,
        },
    })
}

/// A field's value read as `k`; `ctx` gives the zone that dates and wall times are read in.
fn field_as<'a>(
    name: &str,
    v: Option<&'a Value>,
    k: Kind,
    ctx: Option<&EvalCtx<'_>>,
) -> Result<Typed<'a>, EvalError> {
    if is_null(v) {
        return Ok(Typed::Null);
    }
    let v = v.expect("not null");
    let bad = |needs: &str, hint: &str| EvalError {
        field: name.to_owned(),
        message: format!(
            "the filter compares `{name}` with {needs}, and this recipient's `{name}` is {}",
            shown(v)
        ),
        hint: hint.to_owned(),
    };
    let text = match v {
        Value::String(s) => Some(s.trim()),
        _ => None,
    };
    Ok(match k {
        Kind::Str => match v {
            Value::String(s) => Typed::Str(Cow::Borrowed(s.trim())),
            Value::Number(n) => Typed::Str(Cow::Owned(n.to_string())),
            Value::Bool(b) => Typed::Str(Cow::Owned(b.to_string())),
            _ => return Err(bad("text", "give a single value")),
        },
        Kind::Num => match (v, text) {
            (Value::Number(n), _) => Typed::Num(n.as_f64().unwrap_or(f64::NAN)),
            (_, Some(t)) => match t.parse::<f64>() {
                Ok(n) if n.is_finite() => Typed::Num(n),
                _ => {
                    return Err(bad(
                        "a number",
                        "write a number such as 42 or 2.5, or leave it blank",
                    ));
                }
            },
            _ => {
                return Err(bad(
                    "a number",
                    "write a number such as 42 or 2.5, or leave it blank",
                ));
            }
        },
        Kind::Bool => match (v, text.map(str::to_ascii_lowercase).as_deref()) {
            (Value::Bool(b), _) => Typed::Bool(*b),
            (_, Some("true" | "yes")) => Typed::Bool(true),
            (_, Some("false" | "no")) => Typed::Bool(false),
            _ => {
                return Err(bad(
                    "true or false",
                    "write true or false (or yes/no), or leave it blank",
                ));
            }
        },
        Kind::Date | Kind::Time => {
            let ctx = ctx.expect("dates are resolved with a context");
            let Some(t) = text else {
                return Err(bad(
                    "a date",
                    "write dates as 2026-11-01, or times as 2026-11-01T09:00 (the recipient's clock) or 2026-11-01T12:00:00Z",
                ));
            };
            match read_time(t, ctx) {
                Some((date, at)) => {
                    if k == Kind::Date {
                        Typed::Date(date)
                    } else {
                        Typed::Time(at)
                    }
                }
                None => {
                    return Err(bad(
                        if k == Kind::Date { "a date" } else { "a time" },
                        "write dates as 2026-11-01, or times as 2026-11-01T09:00 (the recipient's clock) or 2026-11-01T12:00:00Z",
                    ));
                }
            }
        }
    })
}

/// A date or time as audiences write them, as (its date on the recipient's calendar, its
/// instant): `2026-11-01` (the instant: the start of that day), `2026-11-01T09:00` or with a
/// space (a wall time there), or an instant with its offset (RFC 3339).
fn read_time(t: &str, ctx: &EvalCtx<'_>) -> Option<(Date, Timestamp)> {
    if let Ok(at) = t.parse::<Timestamp>() {
        return Some((at.to_zoned(ctx.tz.clone()).date(), at));
    }
    let wall: DateTime = if t.len() == 10 {
        t.parse::<Date>()
            .ok()?
            .to_datetime(jiff::civil::Time::midnight())
    } else {
        t.replacen(' ', "T", 1).parse().ok()?
    };
    let at = ctx.tz.to_ambiguous_zoned(wall).compatible().ok()?;
    Some((wall.date(), at.timestamp()))
}

fn shown(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}
