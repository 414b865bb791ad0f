use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn tz(name: &str) -> TimeZone {
    jiff::tz::db().get(name).unwrap()
}

fn judge(expr: &str, row: &Value, now: &str, zone: &str) -> Result<Option<usize>, EvalError> {
    let f = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e:?}"));
    let zone = tz(zone);
    let ctx = EvalCtx {
        now: now.parse().unwrap(),
        tz: &zone,
    };
    f.first_failing(&|k| row.get(k), &ctx)
}

fn keeps(expr: &str, row: Value) -> bool {
    judge(expr, &row, "2026-12-02T12:00:00Z", "America/Sao_Paulo")
        .unwrap()
        .is_none()
}

#[test]
fn comparisons_membership_and_logic() {
    let ana = json!({"country": "BR", "age": "34", "plan": "gold", "vip": "yes", "score": 7.5});
    assert!(keeps("country == 'BR'", ana.clone()));
    assert!(keeps("country = \"BR\" and age >= 18", ana.clone()));
    assert!(!keeps("age < 18", ana.clone()));
    assert!(keeps("plan in ['gold', 'black']", ana.clone()));
    assert!(!keeps("plan not in ['gold', 'black']", ana.clone()));
    assert!(keeps("vip == true and score > 7", ana.clone()));
    assert!(keeps(
        "not (country == 'PT') and (age > 60 or plan == 'gold')",
        ana.clone()
    ));
    assert!(!keeps("country != 'BR' or age > 40", ana.clone()));
    // Numbers compare as numbers, even when written as text: "34" > "100" as text.
    assert!(!keeps("age > 100", ana.clone()));
    // A keyword-named field in backticks.
    assert!(keeps("`in` == 'x'", json!({"in": "x"})));
    // A mixed list: an item the value cannot be read as is no match, in any order.
    assert!(keeps("plan in [1, 'gold']", ana.clone()) && keeps("plan in ['gold', 1]", ana.clone()));
    assert!(!keeps("plan in [1, 'x']", ana.clone()));
    // Keywords in any case; `NULL` is null, not a field named NULL.
    assert!(keeps("country != NULL AND vip == TRUE", ana.clone()));
    assert!(!keeps("country == NULL", ana.clone()));
}

#[test]
fn blank_and_missing_values_are_null() {
    let row = json!({"country": "", "age": "34"});
    assert!(!keeps("country == 'BR'", row.clone()));
    assert!(keeps("country != 'BR'", row.clone()));
    assert!(keeps("country == null", row.clone()));
    assert!(keeps("missing == null and age != null", row.clone()));
    assert!(!keeps("missing > 3", row.clone()));
    assert!(!keeps("missing < 3", row.clone()));
    assert!(!keeps("country in ['BR']", row.clone()));
    assert!(keeps("country not in ['BR']", row));
}

#[test]
fn dates_are_judged_on_the_recipients_calendar() {
    // 2026-12-02T01:30Z is still 1 December in São Paulo (UTC-3) but 2 December in Lisbon.
    let now = "2026-12-02T01:30:00Z";
    let row = json!({"last_purchase": "2026-11-01", "signup": "2026-12-01T22:00"});
    let sp = |e: &str| judge(e, &row, now, "America/Sao_Paulo").unwrap().is_none();
    let lis = |e: &str| judge(e, &row, now, "Europe/Lisbon").unwrap().is_none();
    assert!(sp("last_purchase == today - 30d"));
    assert!(lis("last_purchase == today - 31d"));
    assert!(sp("last_purchase < today - 29d") && !sp("last_purchase < today - 30d"));
    assert!(sp(
        "last_purchase <= 2026-11-01 and last_purchase > 2026-10-31"
    ));
    // A wall time in the audience is on the recipient's clock: 22:00 in São Paulo is
    // 01:00Z, half an hour before now; in Lisbon it is 22:00Z, three and a half hours before.
    assert!(sp("signup > now - 1h") && !lis("signup > now - 1h"));
    assert!(lis("signup > now - 4h"));
    assert!(sp("signup >= 2026-12-01T22:00"));
    // An instant with an offset is that instant anywhere.
    let row = json!({"seen": "2026-12-02T01:00:00Z"});
    assert!(
        judge("seen > now - 1h", &row, now, "Asia/Tokyo")
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_value_the_filter_cannot_read_is_an_error_naming_the_field() {
    let row = json!({"age": "thirty", "last_purchase": "last week", "vip": "maybe"});
    for (expr, field) in [
        ("age > 18", "age"),
        ("last_purchase < today - 30d", "last_purchase"),
        ("vip == true", "vip"),
    ] {
        let e = judge(expr, &row, "2026-12-02T12:00:00Z", "UTC").unwrap_err();
        assert_eq!(e.field, field, "{expr}");
        assert!(e.message.contains(&format!("`{field}`")), "{}", e.message);
        assert!(!e.hint.is_empty());
    }
}

#[test]
fn clauses_are_counted_in_order() {
    let f =
        Filter::parse("country == 'BR' and age >= 18 and (plan == 'gold' or vip == true)").unwrap();
    let texts: Vec<&str> = f.clauses().iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "country == 'BR'",
            "age >= 18",
            "(plan == 'gold' or vip == true)"
        ]
    );
    assert_eq!(f.fields(), ["country", "age", "plan", "vip"]);
    let z = tz("UTC");
    let ctx = EvalCtx {
        now: Timestamp::UNIX_EPOCH,
        tz: &z,
    };
    let row = json!({"country": "BR", "age": "12"});
    assert_eq!(f.first_failing(&|k| row.get(k), &ctx).unwrap(), Some(1));
    let row = json!({"country": "PT", "age": "12"});
    assert_eq!(f.first_failing(&|k| row.get(k), &ctx).unwrap(), Some(0));
    // A conjunction in one pair of parentheses is one clause, and all of it holds.
    for expr in [
        "(country == 'BR' and age >= 18)",
        "((country == 'BR' and age >= 18))",
    ] {
        let f = Filter::parse(expr).unwrap();
        assert_eq!(f.clauses().len(), 1, "{expr}");
        assert_eq!(f.fields(), ["country", "age"], "{expr}");
        let row = json!({"country": "BR", "age": "12"});
        assert_eq!(
            f.first_failing(&|k| row.get(k), &ctx).unwrap(),
            Some(0),
            "{expr}"
        );
    }
    // One `or` at the top: one clause.
    assert_eq!(
        Filter::parse("a == 1 or b == 2 and c == 3")
            .unwrap()
            .clauses()
            .len(),
        1
    );
}

#[test]
fn mistakes_are_reported_at_their_place() {
    for (expr, at, says) in [
        ("country == 'BR' BR", 16, "unexpected"),
        ("country", 7, "a field alone is no condition"),
        ("country == 'BR", 11, "not closed"),
        ("age >= 18 and", 13, "ends too soon"),
        ("age >> 18", 5, "expected a field or a value"),
        ("plan in ('a')", 8, "`[`"),
        ("last < today - 12h", 13, "whole days"),
        ("age > 3x", 6, "unknown unit"),
        ("18 < 20", 0, "no field"),
        ("age > null", 6, "null"),
        ("(age > 1", 8, "`)`"),
        ("age > 1 age < 3", 8, "unexpected"),
        ("", 0, "empty"),
        ("age ≥ 3", 4, "unexpected"),
        ("seen > 2026-13-01", 7, "not a date"),
        ("d > 2026-01-01 + 8000000d", 17, "100 years"),
        ("last < today - 99999999999999999999d", 15, "100 years"),
        ("seen > now - 36000d - 36000d", 20, "100 years"),
        ("'x' in ['x']", 0, "`in` needs a field"),
    ] {
        let e = Filter::parse(expr).unwrap_err();
        assert_eq!(e.offset, at, "{expr}: {e:?}");
        let all = format!("{} {}", e.message, e.hint.clone().unwrap_or_default());
        assert!(all.contains(says), "{expr}: {all}");
    }
}

// Property: the parser and evaluator agree with a direct evaluation of random expression
// trees over random rows (a reference written without the parser, on integers and text).

#[derive(Debug, Clone)]
enum Ref {
    Cmp(&'static str, &'static str, Lit),
    In(&'static str, Vec<Lit>, bool),
    Null(&'static str, bool),
    Not(Box<Ref>),
    And(Box<Ref>, Box<Ref>),
    Or(Box<Ref>, Box<Ref>),
}

#[derive(Debug, Clone)]
enum Lit {
    N(i64),
    S(&'static str),
}

const FIELDS: [&str; 3] = ["a", "b", "c"];
const OPS: [&str; 6] = ["==", "!=", "<", "<=", ">", ">="];
const WORDS: [&str; 3] = ["x", "y", "z"];

fn lit() -> impl Strategy<Value = Lit> {
    prop_oneof![
        (-3i64..4).prop_map(Lit::N),
        prop::sample::select(&WORDS[..]).prop_map(Lit::S)
    ]
}

fn tree() -> impl Strategy<Value = Ref> {
    let leaf = prop_oneof![
        (
            prop::sample::select(&FIELDS[..]),
            prop::sample::select(&OPS[..]),
            lit()
        )
            .prop_map(|(f, o, l)| Ref::Cmp(f, o, l)),
        (
            prop::sample::select(&FIELDS[..]),
            prop::collection::vec(lit(), 1..4),
            any::<bool>()
        )
            .prop_map(|(f, l, n)| Ref::In(f, l, n)),
        (prop::sample::select(&FIELDS[..]), any::<bool>()).prop_map(|(f, n)| Ref::Null(f, n)),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|x| Ref::Not(Box::new(x))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Ref::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Ref::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn text(r: &Ref) -> String {
    let lit = |l: &Lit| match l {
        Lit::N(n) => n.to_string(),
        Lit::S(s) => format!("'{s}'"),
    };
    match r {
        Ref::Cmp(f, o, l) => format!("{f} {o} {}", lit(l)),
        Ref::In(f, ls, neg) => format!(
            "{f} {}in [{}]",
            if *neg { "not " } else { "" },
            ls.iter().map(lit).collect::<Vec<_>>().join(", ")
        ),
        Ref::Null(f, neg) => format!("{f} {} null", if *neg { "!=" } else { "==" }),
        Ref::Not(x) => format!("not ({})", text(x)),
        Ref::And(a, b) => format!("({}) and ({})", text(a), text(b)),
        Ref::Or(a, b) => format!("({}) or ({})", text(a), text(b)),
    }
}

/// `None`: the reference says the row cannot be judged (a word compared as a number).
fn reference(r: &Ref, row: &[Option<Cell>; 3]) -> Option<bool> {
    let cell = |f: &str| &row[FIELDS.iter().position(|x| *x == f).unwrap()];
    let eq_or_order = |c: &Option<Cell>, o: &str, l: &Lit| -> Option<bool> {
        let Some(c) = c else { return Some(o == "!=") };
        let ord = match (c, l) {
            (Cell::N(a), Lit::N(b)) => a.cmp(b),
            (Cell::W(_), Lit::N(_)) => return None,
            (Cell::N(a), Lit::S(b)) => a.to_string().as_str().cmp(b),
            (Cell::W(a), Lit::S(b)) => a.cmp(b),
        };
        Some(match o {
            "==" => ord.is_eq(),
            "!=" => ord.is_ne(),
            "<" => ord.is_lt(),
            "<=" => ord.is_le(),
            ">" => ord.is_gt(),
            _ => ord.is_ge(),
        })
    };
    Some(match r {
        Ref::Cmp(f, o, l) => eq_or_order(cell(f), o, l)?,
        Ref::In(f, ls, neg) => {
            let mut found = false;
            for l in ls {
                if eq_or_order(cell(f), "==", l)? {
                    found = true;
                    break;
                }
            }
            found != *neg
        }
        Ref::Null(f, neg) => cell(f).is_none() != *neg,
        Ref::Not(x) => !reference(x, row)?,
        Ref::And(a, b) => reference(a, row)? && reference(b, row)?,
        Ref::Or(a, b) => reference(a, row)? || reference(b, row)?,
    })
}

#[derive(Debug, Clone)]
enum Cell {
    N(i64),
    W(&'static str),
}

fn cell() -> impl Strategy<Value = Option<Cell>> {
    prop_oneof![
        Just(None),
        (-3i64..4).prop_map(|n| Some(Cell::N(n))),
        prop::sample::select(&WORDS[..]).prop_map(|w| Some(Cell::W(w))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn agrees_with_a_reference_evaluator(r in tree(), row in [cell(), cell(), cell()]) {
        let expr = text(&r);
        let f = Filter::parse(&expr).map_err(|e| TestCaseError::fail(format!("{expr}: {e:?}")))?;
        let json_row: serde_json::Map<String, Value> = FIELDS.iter().zip(&row).map(|(k, c)| {
            ((*k).to_owned(), match c {
                None => json!(""),
                Some(Cell::N(n)) => json!(n.to_string()),
                Some(Cell::W(w)) => json!(w),
            })
        }).collect();
        let z = tz("UTC");
        let ctx = EvalCtx { now: Timestamp::UNIX_EPOCH, tz: &z };
        let got = f.first_failing(&|k| json_row.get(k), &ctx);
        match reference(&r, &row) {
            // The evaluator short-circuits, so it may judge a row the reference calls
            // unjudgeable: only a judgement both make must agree.
            None => {}
            Some(want) => prop_assert_eq!(got.map(|g| g.is_none()).ok(), Some(want), "{}", expr),
        }
    }
}
