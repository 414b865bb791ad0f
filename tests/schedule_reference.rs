//! Every case of the independent reference data (tests/fixtures/reference) against the time
//! engine. All mismatches are collected and printed before the test fails. A case may differ
//! only if its id is in `ALLOWED` with an argument that docs/time-semantics.md repeats.

use std::fmt::Write as _;

use disparo::schedule::{QuietHours, SendWindow, WallCron, Weekdays, place};
use jiff::Timestamp;
use jiff::civil::{DateTime, Time};
use jiff::tz::TimeZone;
use serde_json::Value;

/// (case id, argument). Each id and argument must also appear in docs/time-semantics.md.
const ALLOWED: &[(&str, &str)] = &[
    ("tz-00281", ARG_WALL_TIME_KEPT),
    ("tz-00687", ARG_WALL_TIME_KEPT),
    ("tz-00961", ARG_WALL_TIME_KEPT),
    ("tz-01658", ARG_WALL_TIME_KEPT),
    ("tz-02299", ARG_WALL_TIME_KEPT),
    ("tz-02562", ARG_WALL_TIME_KEPT),
    ("tz-03197", ARG_WALL_TIME_KEPT),
    ("tz-03454", ARG_WALL_TIME_KEPT),
    ("tz-03601", ARG_WALL_TIME_KEPT),
];

const ARG_WALL_TIME_KEPT: &str = "no quiet hours: a weekday or blackout move keeps the target's wall time on the next allowed day (issue #13), where the reference moves to 00:00";

fn load(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/reference/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cases = doc["cases"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        Some(cases.len() as u64),
        doc["count"].as_u64(),
        "{name}: case count"
    );
    cases
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key} in {v}"))
}

fn time(s: &str) -> Result<Time, String> {
    s.parse::<Time>().map_err(|e| format!("time {s:?}: {e}"))
}

fn tz_quiet_case(input: &Value) -> Result<(String, String), String> {
    let tz = TimeZone::get(s(input, "tz")).map_err(|e| e.to_string())?;
    let target: DateTime = s(input, "target_local")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let quiet = match &input["quiet"] {
        Value::Null => None,
        q => Some(
            QuietHours::new(time(s(q, "start"))?, time(s(q, "end"))?).map_err(|e| e.to_string())?,
        ),
    };
    let days = match &input["allowed_weekdays"] {
        Value::Null => Weekdays::ALL,
        Value::Array(names) => names
            .iter()
            .map(|n| Weekdays::parse_day(n.as_str().unwrap_or("")).map_err(|e| e.to_string()))
            .collect::<Result<Weekdays, _>>()?,
        other => return Err(format!("allowed_weekdays {other}")),
    };
    let window = SendWindow::new(quiet, days, vec![]);
    let p = place(target, &tz, &window).ok_or("no allowed time")?;
    Ok((
        p.at.to_string(),
        p.local.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
    ))
}

fn cron_case(input: &Value) -> Result<(Vec<String>, Vec<String>), String> {
    let tz = TimeZone::get(s(input, "tz")).map_err(|e| e.to_string())?;
    let cron = WallCron::parse(s(input, "expr")).map_err(|e| e.to_string())?;
    let after: Timestamp = s(input, "after").parse().map_err(|e| format!("{e}"))?;
    let n = input["n"].as_u64().ok_or("n")? as usize;
    let (walls, ats): (Vec<_>, Vec<_>) = cron
        .occurrences(&tz, after)
        .take(n)
        .map(|(w, at)| (w.strftime("%Y-%m-%dT%H:%M:%S").to_string(), at.to_string()))
        .unzip();
    Ok((ats, walls))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

struct Report {
    total: usize,
    failures: Vec<String>,
    allowed_hits: Vec<&'static str>,
}

impl Report {
    fn new() -> Report {
        Report {
            total: 0,
            failures: vec![],
            allowed_hits: vec![],
        }
    }
    fn check(&mut self, case: &Value, ok: bool, actual: String) {
        self.total += 1;
        if ok {
            return;
        }
        let id = s(case, "id");
        if let Some((allowed, _)) = ALLOWED.iter().find(|(a, _)| *a == id) {
            self.allowed_hits.push(allowed);
            return;
        }
        let mut msg = String::new();
        let _ = writeln!(msg, "case {id} tags {}", case["tags"]);
        let _ = writeln!(msg, "  input:    {}", case["input"]);
        let _ = writeln!(msg, "  expected: {}", case["expected"]);
        let _ = writeln!(msg, "  actual:   {actual}");
        self.failures.push(msg);
    }
    fn finish(self, name: &str) {
        eprintln!(
            "{name}: {} cases, {} failures, {} allowed differences",
            self.total,
            self.failures.len(),
            self.allowed_hits.len()
        );
        if !self.failures.is_empty() {
            panic!(
                "{name}: {} of {} cases differ:\n{}",
                self.failures.len(),
                self.total,
                self.failures.join("")
            );
        }
    }
}

#[test]
fn tz_quiet_reference() {
    let cases = load("tz_quiet.json");
    assert_eq!(cases.len(), 912);
    let mut report = Report::new();
    for case in &cases {
        let exp = &case["expected"];
        match tz_quiet_case(&case["input"]) {
            Ok((utc, local)) => {
                let ok = utc == s(exp, "send_utc") && local == s(exp, "send_local");
                report.check(case, ok, format!("send_utc {utc} send_local {local}"));
            }
            Err(e) => report.check(case, false, format!("error: {e}")),
        }
    }
    report.finish("tz_quiet.json");
}

#[test]
fn cron_wall_reference() {
    let cases = load("cron_wall.json");
    assert_eq!(cases.len(), 109);
    let mut report = Report::new();
    for case in &cases {
        let exp = &case["expected"];
        match cron_case(&case["input"]) {
            Ok((ats, walls)) => {
                let ok = ats == strings(&exp["fires_utc"]) && walls == strings(&exp["fires_wall"]);
                report.check(case, ok, format!("fires_utc {ats:?} fires_wall {walls:?}"));
            }
            Err(e) => report.check(case, false, format!("error: {e}")),
        }
    }
    report.finish("cron_wall.json");
}

#[test]
fn allowed_differences_are_argued_in_the_docs() {
    let path = format!("{}/docs/time-semantics.md", env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (id, argument) in ALLOWED {
        assert!(doc.contains(id), "{path} must name allowed case {id}");
        assert!(
            doc.contains(argument),
            "{path} must give the argument for {id}: {argument}"
        );
    }
}
