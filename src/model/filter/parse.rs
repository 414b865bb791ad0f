//! Reading a `where:` expression: a lexer and a recursive-descent parser.
//!
//! ```text
//! expr    := and ('or' and)*
//! and     := unary ('and' unary)*
//! unary   := 'not' unary | '(' expr ')' | compare
//! compare := operand ('==' | '!=' | '<' | '<=' | '>' | '>=') operand
//!          | operand ['not'] 'in' '[' literal (',' literal)* ']'
//! operand := field | 'string' | number | true | false | null | date | wall time
//!          | ('today' | 'now' | date | wall time) (('+' | '-') duration)*
//! ```

use jiff::civil::{Date, DateTime};

use super::{CmpOp, DateTerm, Expr, FilterError, Operand, TimeTerm};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Date(Date),
    Wall(DateTime),
    /// A duration in seconds, and whether it is whole days (`d`, `w`).
    Duration(i64, bool),
    Op(CmpOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Plus,
    Minus,
}

fn err(offset: usize, message: impl Into<String>, hint: Option<&str>) -> FilterError {
    FilterError {
        offset,
        message: message.into(),
        hint: hint.map(str::to_owned),
    }
}

/// How far `today`, `now` or a date may be moved, in all: 100 years.
const MAX_SHIFT_DAYS: i64 = 36_525;
const MAX_SHIFT_SECS: i64 = MAX_SHIFT_DAYS * 86_400;

const QUOTE_HINT: &str = "quote text values: country == 'BR', locale == 'pt-BR'";

fn lex(text: &str) -> Result<Vec<(usize, usize, Tok)>, FilterError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b'[' => Tok::LBracket,
            b']' => Tok::RBracket,
            b',' => Tok::Comma,
            b'+' => Tok::Plus,
            b'-' => Tok::Minus,
            b'=' => {
                // `==`, and a lone `=` as people write it in SQL.
                if bytes.get(i + 1) == Some(&b'=') {
                    i += 1;
                }
                Tok::Op(CmpOp::Eq)
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 1;
                Tok::Op(CmpOp::Ne)
            }
            b'<' | b'>' => {
                let eq = bytes.get(i + 1) == Some(&b'=');
                if eq {
                    i += 1;
                }
                Tok::Op(match (c, eq) {
                    (b'<', false) => CmpOp::Lt,
                    (b'<', true) => CmpOp::Le,
                    (_, false) => CmpOp::Gt,
                    (_, true) => CmpOp::Ge,
                })
            }
            b'\'' | b'"' => {
                let end = text[i + 1..].find(c as char).ok_or_else(|| {
                    err(
                        i,
                        "this text value is not closed",
                        Some("end it with the same quote it starts with"),
                    )
                })?;
                let s = text[i + 1..i + 1 + end].to_owned();
                i += end + 1;
                Tok::Str(s)
            }
            b'`' => {
                let end = text[i + 1..].find('`').ok_or_else(|| {
                    err(
                        i,
                        "this field name is not closed",
                        Some("end it with a backtick: `last purchase`"),
                    )
                })?;
                let s = text[i + 1..i + 1 + end].to_owned();
                if s.is_empty() {
                    return Err(err(i, "an empty field name", None));
                }
                i += end + 1;
                Tok::Ident(format!("`{s}"))
            }
            b'0'..=b'9' | b'.' => {
                let (tok, len) = number_like(&text[i..]).map_err(|m| {
                    err(
                        i,
                        m,
                        Some(
                            "write numbers as 18 or 2.5, dates as 2026-11-01, times as 2026-11-01T09:00, durations as 30d, 12h, 2w or 90min",
                        ),
                    )
                })?;
                i += len - 1;
                tok
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let len = text[i..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .unwrap_or(text.len() - i);
                let word = text[i..i + len].to_owned();
                i += len - 1;
                Tok::Ident(word)
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err(
                    i,
                    format!("unexpected {ch:?}"),
                    Some(
                        "combine clauses with and, or, not; compare with == != < <= > >=; quote text values",
                    ),
                ));
            }
        };
        i += 1;
        out.push((start, i, tok));
    }
    Ok(out)
}

/// A number, a date, a wall time or a duration at the start of `s`, and its length.
fn number_like(s: &str) -> Result<(Tok, usize), String> {
    let len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':')))
        .unwrap_or(s.len());
    let word = &s[..len];
    // A date may be followed by ` - 3d`: only `-digits` right after the year belongs to it.
    if word.len() >= 10 && word.as_bytes()[4] == b'-' && word.as_bytes()[7] == b'-' {
        let (date_part, rest) = word.split_at(10);
        let date: Date = date_part
            .parse()
            .map_err(|_| format!("{date_part:?} is not a date"))?;
        if rest.is_empty() {
            return Ok((Tok::Date(date), 10));
        }
        if let Some(time) = rest.strip_prefix('T').or_else(|| rest.strip_prefix('t')) {
            let end = time.find('-').map_or(time.len(), |p| p);
            let wall: DateTime = format!("{date_part}T{}", &time[..end])
                .parse()
                .map_err(|_| format!("{word:?} is not a wall time (2026-11-01T09:00)"))?;
            return Ok((Tok::Wall(wall), 11 + end));
        }
        if rest.starts_with('-') {
            return Ok((Tok::Date(date), 10));
        }
        return Err(format!("{word:?} is not a date"));
    }
    let word = match word.find('-') {
        Some(p) => &word[..p],
        None => word,
    };
    let digits = word
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(word.len());
    let (num, unit) = word.split_at(digits);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{word:?} is not a number"))?;
    if unit.is_empty() {
        return Ok((Tok::Num(n), word.len()));
    }
    let (secs, whole_days) = match unit {
        "min" => (60.0, false),
        "h" => (3600.0, false),
        "d" => (86_400.0, true),
        "w" => (7.0 * 86_400.0, true),
        _ => return Err(format!("{word:?}: unknown unit {unit:?}")),
    };
    if n.fract() != 0.0 {
        return Err(format!("{word:?}: durations are whole numbers"));
    }
    if n * secs > MAX_SHIFT_SECS as f64 {
        return Err(format!(
            "{word:?} is more than {MAX_SHIFT_DAYS} days (100 years)"
        ));
    }
    Ok((Tok::Duration((n * secs) as i64, whole_days), word.len()))
}

struct Parser<'a> {
    toks: Vec<(usize, usize, Tok)>,
    pos: usize,
    text: &'a str,
}

/// Parses the whole expression; with the spans of its top-level `and` clauses when it is a
/// conjunction.
pub(super) fn parse(text: &str) -> Result<(Expr, Vec<(usize, usize)>), FilterError> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err(err(
            0,
            "the filter is empty",
            Some("write a condition such as country == 'BR', or remove `where`"),
        ));
    }
    let mut p = Parser { toks, pos: 0, text };
    let (first, spans) = p.and()?;
    let expr = if p.keyword("or") {
        let mut parts = vec![first];
        loop {
            parts.push(p.and()?.0);
            if !p.keyword("or") {
                break;
            }
        }
        (Expr::Or(parts), Vec::new())
    } else {
        (first, spans)
    };
    if let Some((at, _, t)) = p.toks.get(p.pos) {
        return Err(err(
            *at,
            format!("unexpected {} here", describe(t)),
            Some(if matches!(t, Tok::Minus | Tok::Plus) {
                QUOTE_HINT
            } else {
                "join clauses with and / or"
            }),
        ));
    }
    Ok(expr)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{}`", s.trim_start_matches('`')),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Num(n) => n.to_string(),
        Tok::Date(d) => d.to_string(),
        Tok::Wall(w) => w.to_string(),
        Tok::Duration(..) => "a duration".into(),
        Tok::Op(_) => "a comparison".into(),
        Tok::LParen => "(".into(),
        Tok::RParen => ")".into(),
        Tok::LBracket => "[".into(),
        Tok::RBracket => "]".into(),
        Tok::Comma => ",".into(),
        Tok::Plus => "+".into(),
        Tok::Minus => "-".into(),
    }
}

const KEYWORDS: [&str; 9] = [
    "and", "or", "not", "in", "true", "false", "null", "today", "now",
];

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.2)
    }
    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.text.len(), |t| t.0)
    }
    fn end_of_previous(&self) -> usize {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map_or(0, |t| t.1)
    }
    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(word)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, want: Tok, what: &str) -> Result<(), FilterError> {
        if self.peek() == Some(&want) {
            self.pos += 1;
            Ok(())
        } else {
            Err(err(self.offset(), format!("expected {what}"), None))
        }
    }

    fn and(&mut self) -> Result<(Expr, Vec<(usize, usize)>), FilterError> {
        let mut parts = Vec::new();
        let mut spans = Vec::new();
        loop {
            let start = self.offset();
            parts.push(self.unary()?);
            spans.push((start, self.end_of_previous()));
            if !self.keyword("and") {
                break;
            }
        }
        Ok(if parts.len() == 1 {
            (parts.pop().expect("one part"), spans)
        } else {
            (Expr::And(parts), spans)
        })
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let (first, _) = self.and()?;
        if !self.keyword("or") {
            return Ok(first);
        }
        let mut parts = vec![first];
        loop {
            parts.push(self.and()?.0);
            if !self.keyword("or") {
                return Ok(Expr::Or(parts));
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(Tok::RParen, "`)` to close this parenthesis")?;
            return Ok(inner);
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, FilterError> {
        let at = self.offset();
        let left = self.operand()?;
        let negated = self.keyword("not");
        if self.keyword("in") {
            if !matches!(left, Operand::Field(_)) {
                return Err(err(
                    at,
                    "`in` needs a field on its left",
                    Some("name a field of the audience: plan in ['gold', 'black']"),
                ));
            }
            let list = self.list()?;
            return Ok(Expr::In {
                left,
                list,
                negated,
            });
        }
        if negated {
            return Err(err(self.offset(), "expected `in` after `not`", None));
        }
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            _ => {
                return Err(err(
                    self.offset(),
                    "expected a comparison (== != < <= > >=) or `in`",
                    Some(if matches!(left, Operand::Field(_)) {
                        "a field alone is no condition: write vip == true, or country == 'BR'"
                    } else {
                        QUOTE_HINT
                    }),
                ));
            }
        };
        self.pos += 1;
        let right_at = self.offset();
        let right = self.operand_or_null()?;
        let Some(right) = right else {
            return match &left {
                Operand::Field(f) if matches!(op, CmpOp::Eq | CmpOp::Ne) => Ok(Expr::IsNull {
                    field: f.clone(),
                    negated: op == CmpOp::Ne,
                }),
                _ => Err(err(
                    right_at,
                    "only a field compares with null, and only with == or !=",
                    Some("a missing or blank value is null: write last_purchase == null"),
                )),
            };
        };
        if !matches!(left, Operand::Field(_)) && !matches!(right, Operand::Field(_)) {
            return Err(err(
                at,
                "this compares two values and no field",
                Some("name a field of the audience on one side: age >= 18"),
            ));
        }
        Ok(Expr::Compare { left, op, right })
    }

    fn list(&mut self) -> Result<Vec<Operand>, FilterError> {
        self.expect(
            Tok::LBracket,
            "`[` to start the list: plan in ['gold', 'black']",
        )?;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(&Tok::RBracket) && !items.is_empty() {
                self.pos += 1;
                return Ok(items);
            }
            let at = self.offset();
            match self.operand()? {
                Operand::Field(f) => {
                    return Err(err(
                        at,
                        format!(
                            "`{}` in a list: lists hold values",
                            f.trim_start_matches('`')
                        ),
                        Some(QUOTE_HINT),
                    ));
                }
                v => items.push(v),
            }
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::RBracket) => {}
                _ => return Err(err(self.offset(), "expected `,` or `]` in the list", None)),
            }
        }
    }

    /// An operand, or `None` for `null`.
    fn operand_or_null(&mut self) -> Result<Option<Operand>, FilterError> {
        if self.keyword("null") {
            return Ok(None);
        }
        self.operand().map(Some)
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        let at = self.offset();
        let Some((_, _, tok)) = self.toks.get(self.pos).cloned() else {
            return Err(err(at, "the filter ends too soon", Some(QUOTE_HINT)));
        };
        self.pos += 1;
        let base = match tok {
            Tok::Str(s) => return Ok(Operand::Str(s)),
            Tok::Num(n) => return Ok(Operand::Num(n)),
            Tok::Minus => match self.peek() {
                Some(Tok::Num(n)) => {
                    let n = *n;
                    self.pos += 1;
                    return Ok(Operand::Num(-n));
                }
                _ => return Err(err(at, "a `-` with no number after it", None)),
            },
            // Keywords in any case (`NULL`, `True`): only a backtick makes a field of one.
            Tok::Ident(w)
                if !w.starts_with('`')
                    && w != w.to_ascii_lowercase()
                    && KEYWORDS.contains(&w.to_ascii_lowercase().as_str()) =>
            {
                let lower = Tok::Ident(w.to_ascii_lowercase());
                self.toks[self.pos - 1].2 = lower;
                self.pos -= 1;
                return self.operand();
            }
            Tok::Date(d) => Operand::Date(DateTerm::Literal(d)),
            Tok::Wall(w) => Operand::Time(TimeTerm::Wall(w)),
            Tok::Ident(w) if w == "today" => Operand::Date(DateTerm::Today(0)),
            Tok::Ident(w) if w == "now" => Operand::Time(TimeTerm::Now(0)),
            Tok::Ident(w) if w == "true" => return Ok(Operand::Bool(true)),
            Tok::Ident(w) if w == "false" => return Ok(Operand::Bool(false)),
            Tok::Ident(w) if w == "null" => {
                return Err(err(
                    at,
                    "null goes on the right: last_purchase == null",
                    None,
                ));
            }
            Tok::Ident(w) if KEYWORDS.contains(&w.as_str()) => {
                return Err(err(
                    at,
                    format!("`{w}` where a field or a value belongs"),
                    Some("a field named like a keyword is written in backticks: `in`"),
                ));
            }
            Tok::Ident(w) => {
                return Ok(Operand::Field(
                    w.strip_prefix('`').map_or(w.clone(), str::to_owned),
                ));
            }
            other => {
                return Err(err(
                    at,
                    format!("expected a field or a value, found {}", describe(&other)),
                    Some(QUOTE_HINT),
                ));
            }
        };
        self.shifted(base)
    }

    /// `today - 30d`, `now + 2h`: date and time operands moved by durations.
    fn shifted(&mut self, mut base: Operand) -> Result<Operand, FilterError> {
        loop {
            let sign = match self.peek() {
                Some(Tok::Plus) => 1,
                Some(Tok::Minus) => -1,
                _ => return Ok(base),
            };
            let op_at = self.offset();
            self.pos += 1;
            let Some(Tok::Duration(secs, whole_days)) = self.peek().cloned() else {
                return Err(err(
                    op_at,
                    "a date or time moves only by a duration",
                    Some("write today - 30d, or now - 12h"),
                ));
            };
            self.pos += 1;
            let secs = sign * secs;
            let total = match &base {
                Operand::Date(DateTerm::Today(n)) => n * 86_400 + secs,
                Operand::Time(TimeTerm::Now(n)) => n + secs,
                _ => secs,
            };
            if total.abs() > MAX_SHIFT_SECS {
                return Err(err(
                    op_at,
                    format!(
                        "this moves the date or time by more than {MAX_SHIFT_DAYS} days (100 years)"
                    ),
                    Some("write a shorter duration: today - 30d, now - 12h"),
                ));
            }
            base = match base {
                Operand::Date(d) => {
                    if !whole_days {
                        return Err(err(
                            op_at,
                            "a date moves by whole days (d, w)",
                            Some("use now - 12h for a time of day"),
                        ));
                    }
                    let days = secs / 86_400;
                    match d {
                        DateTerm::Today(n) => Operand::Date(DateTerm::Today(n + days)),
                        DateTerm::Literal(date) => Operand::Date(DateTerm::Literal(
                            jiff::Span::new()
                                .try_days(days)
                                .and_then(|span| date.checked_add(span))
                                .map_err(|e| err(op_at, e.to_string(), None))?,
                        )),
                    }
                }
                Operand::Time(TimeTerm::Now(n)) => Operand::Time(TimeTerm::Now(n + secs)),
                Operand::Time(TimeTerm::Wall(w)) => Operand::Time(TimeTerm::Wall(
                    w.checked_add(jiff::SignedDuration::from_secs(secs))
                        .map_err(|e| err(op_at, e.to_string(), None))?,
                )),
                other => return Ok(other),
            };
        }
    }
}
