//! `disparo report CAMPAIGN --html FILE`: the page Chromium renders carries the store's
//! figures (the lines `status --by` and `export --funnel` print, the sums of `export`'s rows),
//! loads nothing, shows hostile data as text, draws its charts; a page that cannot be written
//! leaves the old one.

use serde_json::{Value, json};

use super::browser::{self, Png};
use super::{Sent, Trap, funnel_metrics, json_of, sent_campaign};
use crate::harness::Project;

const NOW: &str = "2026-12-01T00:00:00Z";

/// The figure a page shows for `metric` in `section` (and row `group`): a count from the
/// cell's text, a rate from its `data-value` (null when empty).
fn figure(facts: &Value, section: &str, group: Option<&str>, metric: &str) -> Value {
    let found: Vec<&Value> = facts["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["section"] == section
                && m["metric"] == metric
                && m.get("group").and_then(Value::as_str) == group
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{section}/{group:?}/{metric}: {found:?} in {}",
        facts["metrics"]
    );
    let m = found[0];
    match m["value"].as_str() {
        Some("") => Value::Null,
        Some(v) => json!(v.parse::<f64>().unwrap()),
        None => json!(m["text"].as_str().unwrap().trim().parse::<u64>().unwrap()),
    }
}

/// `(attribute, count)` of every row in `section` keyed by the row attribute `key`.
fn rows(facts: &Value, section: &str, key: &str) -> Vec<(String, u64)> {
    facts["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["section"] == section && m.get(key).is_some())
        .map(|m| {
            (
                m[key].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_html_report_in_chromium_shows_the_stores_figures_and_loads_nothing() {
    let s = sent_campaign();
    let p = &s.p;
    let o = p.ok(&["--now", NOW, "report", "c", "--html", "report.html"]);
    assert!(o.stderr.contains("wrote the report of"), "{}", o.stderr);
    let data = json_of(p, &["--now", NOW, "report", "c"]).remove(0);
    let page = p.path().join("report.html");
    let raw = std::fs::read_to_string(&page).unwrap();
    assert!(!raw.contains("<script"), "no script in the file");

    let dom = browser::run(&page, &["--dump-dom"]);
    assert_eq!(browser::page_problems(&dom.stderr), Vec::<&str>::new());
    let facts = browser::dom_facts(&dom.stdout);

    check_funnel(p, &facts);
    check_sends(&facts, &data);
    check_failures(&facts, &s);
    check_reads(&facts, &data);
    check_hostile(&facts, &s);
    check_drawn(&s, &page);
    assert_eq!(s.trap.hits(), 0, "the page made a request");
}

/// The funnel: the store's lines, whole and by group.
fn check_funnel(p: &Project, facts: &Value) {
    let whole = json_of(p, &["export", "c", "--funnel"]).remove(0);
    for (k, v) in funnel_metrics(&whole) {
        assert_eq!(figure(facts, "funnel", None, &k), v, "funnel {k}");
    }
    assert_eq!(figure(facts, "funnel", None, "delivered"), json!(5));
    for (by, section) in [("zone", "by-zone"), ("locale", "by-locale")] {
        let lines = json_of(p, &["status", "--by", by]);
        assert!(lines.len() >= 3);
        for line in &lines {
            let group = line[by].as_str().unwrap_or("");
            for (k, v) in funnel_metrics(line) {
                assert_eq!(
                    figure(facts, section, Some(group), &k),
                    v,
                    "{section} {group:?} {k}"
                );
            }
        }
    }
}

/// Sends per hour: one run per zone, in UTC; all at 09:30 on their own clocks.
fn check_sends(facts: &Value, data: &Value) {
    assert_eq!(figure(facts, "sends", None, "sends_total"), json!(7));
    assert_eq!(data["sends"]["total"], data["funnel"]["sent"]);
    assert_eq!(
        rows(facts, "sends-utc", "hour"),
        [
            ("2026-11-30T00:00:00Z".to_string(), 1),
            ("2026-11-30T09:00:00Z".to_string(), 2),
            ("2026-11-30T12:00:00Z".to_string(), 4),
        ]
    );
    let utc: Vec<(String, u64)> = data["sends"]["per_utc_hour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["hour"].as_str().unwrap().to_owned(),
                h["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(utc, rows(facts, "sends-utc", "hour"), "page and JSON agree");
    assert_eq!(rows(facts, "sends-local", "hour"), [("9".to_string(), 7)]);
}

/// Failures by code: the refused send, the late failure (hostile code), the bounce.
fn check_failures(facts: &Value, s: &Sent) {
    let mut failures: Vec<(String, String, u64)> = facts["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["section"] == "failures")
        .map(|m| {
            (
                m["stage"].as_str().unwrap().to_owned(),
                m["code"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    failures.sort();
    assert_eq!(
        failures,
        [
            ("bounce".to_string(), "5.1.1".to_string(), 1),
            ("receipt".to_string(), s.hostile.code.clone(), 1),
            ("send".to_string(), "HTTP 400".to_string(), 1),
        ]
    );
}

/// Time to read: 2 min, 3 min and 40 min after the sends (less the run's own milliseconds).
fn check_reads(facts: &Value, data: &Value) {
    let t = &data["time_to_read"];
    assert_eq!(figure(facts, "time-to-read", None, "read_count"), json!(3));
    let median = facts["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "median_seconds")
        .unwrap();
    assert_eq!(
        median["value"].as_str().unwrap(),
        t["median_secs"].to_string()
    );
    let median_secs = t["median_secs"].as_i64().unwrap();
    assert!((120..180).contains(&median_secs), "{t}");
    assert!(
        (2340..2400).contains(&t["p90_secs"].as_i64().unwrap()),
        "{t}"
    );
    let buckets: Vec<(String, u64)> = rows(facts, "time-to-read", "bucket")
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(
        buckets,
        [("60".to_string(), 2), ("900".to_string(), 1)],
        "1–5 min: 2, 15 min–1 h: 1"
    );
}

/// Hostile data is text: the name reads as written, and no markup of it made an element, an
/// event handler or a URL.
fn check_hostile(facts: &Value, s: &Sent) {
    assert_eq!(facts["fields"]["campaign"], s.hostile.name.as_str());
    for tag in ["script", "img", "iframe", "b"] {
        assert!(
            facts["tags"].get(tag).is_none(),
            "<{tag}> in {}",
            facts["tags"]
        );
    }
    assert_eq!(facts["events"], json!([]));
    assert_eq!(facts["urls"], json!([]));
    let text = facts["text"].as_str().unwrap();
    assert!(
        text.contains("bad number"),
        "the refused send's error is shown"
    );
    assert!(text.contains(&format!("<script src=\"{}\">", s.trap.url("/error.js"))));
    assert!(text.contains(&s.hostile.locale));
}

/// It draws: a full-size screenshot with the funnel's and the hours' bars in it.
fn check_drawn(s: &Sent, page: &std::path::Path) {
    let p = &s.p;
    let shot = p.path().join("shot.png");
    let run = browser::run(
        page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2000",
        ],
    );
    assert_eq!(browser::page_problems(&run.stderr), Vec::<&str>::new());
    let png = Png::decode(&std::fs::read(&shot).unwrap());
    assert_eq!((png.width, png.height), (1200, 2000));
    let (_, drawn) = png.background();
    assert!(
        drawn > 0.05,
        "only {:.1} % of the page is not background",
        drawn * 100.0
    );
    assert!(png.colours() > 50, "{} colours", png.colours());
    for (what, rgb) in [
        ("the sent bar", [0x25, 0x63, 0xeb]),
        ("the delivered bar", [0x0e, 0x9f, 0x6e]),
        ("the failed bar", [0xe0, 0x24, 0x24]),
    ] {
        assert!(png.count(rgb) > 200, "{what}: {} pixels", png.count(rgb));
    }
    assert_eq!(s.trap.hits(), 0, "the page made a request");
}

/// The checks above are not vacuous: a page that loads something does reach the trap, our
/// policy's refusal shows in the log, the DOM reader sees markup, and a blank page is one
/// colour.
#[test]
fn the_browser_checks_see_what_they_look_for() {
    let trap = Trap::start();
    let dir = tempfile::tempdir().unwrap();
    let img = format!("<img src=\"{}\" onerror=\"x()\">", trap.url("/probe.png"));
    let open = dir.path().join("open.html");
    std::fs::write(&open, format!("<!DOCTYPE html><p>hi</p>{img}")).unwrap();
    let run = browser::run(&open, &["--dump-dom"]);
    assert!(
        trap.hits() >= 1,
        "a page without the policy loads from the trap"
    );
    let facts = browser::dom_facts(&run.stdout);
    assert_eq!(facts["tags"]["img"], 1);
    assert_eq!(facts["events"], json!([["img", "onerror"]]));
    assert_eq!(facts["urls"].as_array().unwrap().len(), 1);

    let hits = trap.hits();
    let closed = dir.path().join("closed.html");
    std::fs::write(
        &closed,
        format!(
            "<!DOCTYPE html><meta http-equiv=\"Content-Security-Policy\" content=\"{}\"><p>hi</p>{img}",
            disparo::app::report::html::CSP
        ),
    )
    .unwrap();
    let run = browser::run(&closed, &["--dump-dom"]);
    assert_eq!(trap.hits(), hits, "the policy stops the load");
    assert!(
        !browser::page_problems(&run.stderr).is_empty(),
        "the refusal is logged: {}",
        run.stderr
    );

    let blank = dir.path().join("blank.html");
    std::fs::write(
        &blank,
        "<!DOCTYPE html><body style=\"background:#fff\"></body>",
    )
    .unwrap();
    let shot = dir.path().join("blank.png");
    browser::run(
        &blank,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=400,300",
        ],
    );
    let png = Png::decode(&std::fs::read(&shot).unwrap());
    assert_eq!((png.width, png.height, png.colours()), (400, 300, 1));
}

/// Planned, nothing sent: the page says so in each section, and the funnel has the plan.
#[test]
fn a_report_before_any_send_says_so() {
    let p = Project::example();
    p.ok(&[
        "-q",
        "--now",
        "2026-11-26T12:00:00Z",
        "plan",
        "payment-reminder",
    ]);
    p.ok(&[
        "-q",
        "--now",
        NOW,
        "report",
        "payment-reminder",
        "--html",
        "r.html",
    ]);
    let facts = browser::dom_facts(&p.read("r.html"));
    let mut empty: Vec<&str> = facts["empty"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    empty.sort();
    assert_eq!(empty, ["failures", "reads", "sends"]);
    assert_eq!(figure(&facts, "funnel", None, "planned"), json!(21));
    assert_eq!(figure(&facts, "funnel", None, "sent"), json!(0));
    assert_eq!(figure(&facts, "funnel", None, "delivered_pct"), Value::Null);
    let data = json_of(&p, &["report", "payment-reminder"]).remove(0);
    assert_eq!(data["sends"]["total"], 0);
    assert_eq!(data["time_to_read"]["count"], 0);
    assert_eq!(data["time_to_read"]["median_secs"], Value::Null);
    assert_eq!(data["states"]["pending"], 21);
}

/// A report that cannot be written names the file and what to do, and leaves the page that
/// was there; so does one of a campaign that does not exist. Asking for nothing is refused.
#[test]
fn a_report_that_cannot_be_written_leaves_the_old_page() {
    let p = Project::example();
    p.ok(&[
        "-q",
        "--now",
        "2026-11-26T12:00:00Z",
        "plan",
        "payment-reminder",
    ]);
    p.file("report.html", "the old page");
    let o = p.expect(2, &["report", "no-such-campaign", "--html", "report.html"]);
    assert!(o.stderr.contains("no-such-campaign"), "{}", o.stderr);
    assert_eq!(p.read("report.html"), "the old page");
    std::fs::create_dir_all(p.path().join("taken.html/inside")).unwrap();
    let o = p.expect(2, &["report", "payment-reminder", "--html", "taken.html"]);
    assert!(o.stderr.contains("taken.html"), "{}", o.stderr);
    assert!(o.stderr.contains("hint:"), "{}", o.stderr);
    assert!(p.path().join("taken.html/inside").is_dir());
    let o = p.expect(
        2,
        &["report", "payment-reminder", "--html", "missing/r.html"],
    );
    assert!(o.stderr.contains("missing/r.html"), "{}", o.stderr);
    let leftovers: Vec<String> = std::fs::read_dir(p.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new());
    p.ok(&["-q", "report", "payment-reminder", "--html", "report.html"]);
    assert!(p.read("report.html").starts_with("<!DOCTYPE html>"));

    let o = p.expect(2, &["report", "payment-reminder"]);
    assert!(o.stderr.contains("--html FILE"), "{}", o.stderr);
    let o = p.expect(2, &["--format", "csv", "report", "payment-reminder"]);
    assert!(o.stderr.contains("no CSV form"), "{}", o.stderr);
}
