//! `where:` on a campaign: which recipients of the audience it is for, as an expression over
//! their fields (docs/campaign-reference.md, "Audience filters").
//!
//! ```text
//! country == 'BR' and age >= 18 and last_purchase < today - 30d and plan in ['gold', 'black']
//! ```
//!
//! Our own small language rather than a general expression crate (evalexpr, CEL): a filter
//! must compare dates on the recipient's own calendar (`today` is their local date), treat
//! a blank CSV cell as missing rather than as an empty string, report a mistake at its column
//! in the campaign file, and let `preview` say how many recipients each clause removed —
//! none of which those crates do without a layer over them as large as this module.
//!
//! [`Filter::parse`] checks the text once (at load: a typo is a located error before anything
//! is read); [`Filter::first_failing`] judges one recipient and says which top-level `and`
//! clause removed it.

mod eval;
mod parse;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

pub use eval::EvalError;

/// A parsed `where:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    text: String,
    clauses: Vec<Clause>,
}

/// One of the top-level `and` clauses: what `preview` counts separately.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// The clause as written.
    pub text: String,
    pub(crate) expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        left: Operand,
        op: CmpOp,
        right: Operand,
    },
    In {
        left: Operand,
        list: Vec<Operand>,
        negated: bool,
    },
    /// `field == null` / `field != null`.
    IsNull {
        field: String,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => ord == Equal,
            CmpOp::Ne => ord != Equal,
            CmpOp::Lt => ord == Less,
            CmpOp::Le => ord != Greater,
            CmpOp::Gt => ord == Greater,
            CmpOp::Ge => ord != Less,
        }
    }
}

/// A value in an expression. Dates and times are judged on the recipient's clock.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Field(String),
    Str(String),
    Num(f64),
    Bool(bool),
    /// A calendar date: a literal, or `today` ± days, on the recipient's calendar.
    Date(DateTerm),
    /// An instant: `now` ± a duration, or a literal wall time in the recipient's zone.
    Time(TimeTerm),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DateTerm {
    Literal(Date),
    /// `today` + this many days (negative: in the past).
    Today(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TimeTerm {
    /// A wall time, in the recipient's zone.
    Wall(DateTime),
    /// `now` + this many seconds.
    Now(i64),
}

/// A `where:` that cannot be read: where in the text, what, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Byte offset into the expression.
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// What a recipient is judged with: the instant of the plan and the recipient's zone.
#[derive(Debug, Clone)]
pub struct EvalCtx<'a> {
    pub now: Timestamp,
    pub tz: &'a TimeZone,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let expr = parse::parse(text)?;
        let clauses = match expr {
            // Spans only for a top-level `and` chain; a conjunction inside one pair of
            // parentheses is one clause (its parts have no spans of their own).
            (Expr::And(parts), spans) if parts.len() == spans.len() => parts
                .into_iter()
                .zip(spans)
                .map(|(expr, (a, b))| Clause {
                    text: text[a..b].trim().to_owned(),
                    expr,
                })
                .collect(),
            (expr, _) => vec![Clause {
                text: text.trim().to_owned(),
                expr,
            }],
        };
        Ok(Filter {
            text: text.trim().to_owned(),
            clauses,
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn clauses(&self) -> &[Clause] {
        &self.clauses
    }

    /// Every field the expression reads, once each, in order of appearance.
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in &self.clauses {
            c.expr.fields(&mut out);
        }
        out
    }

    /// `None` when the recipient is kept; else the index of the first clause that removes
    /// it (clauses are judged in order, so each removed recipient is counted once).
    pub fn first_failing<'f>(
        &self,
        fields: &dyn Fn(&str) -> Option<&'f serde_json::Value>,
        ctx: &EvalCtx<'_>,
    ) -> Result<Option<usize>, EvalError> {
        for (i, c) in self.clauses.iter().enumerate() {
            if !eval::eval(&c.expr, fields, ctx)? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }
}

impl Expr {
    fn fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        let mut add = |f: &'a str| {
            if !out.contains(&f) {
                out.push(f);
            }
        };
        match self {
            Expr::Or(xs) | Expr::And(xs) => xs.iter().for_each(|x| x.fields(out)),
            Expr::Not(x) => x.fields(out),
            Expr::Compare { left, right, .. } => {
                for o in [left, right] {
                    if let Operand::Field(f) = o {
                        add(f);
                    }
                }
            }
            Expr::In { left, .. } => {
                if let Operand::Field(f) = left {
                    add(f);
                }
            }
            Expr::IsNull { field, .. } => add(field),
        }
    }
}

#[cfg(test)]
mod tests;
