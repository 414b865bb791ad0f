//! What people see: snapshots of `preview`, `status`, `messages` and `export` in every format
//! on the shipped example with a fixed `--now`, colours only where they belong, and JSON that
//! carries every column its table shows.
//!
//! Update the snapshots with `INSTA_UPDATE=always cargo test --test suite outputs::` (or
//! `cargo insta review`), then read the diff before committing it.

use std::process::Command;

use crate::harness::{Output, Project};
use serde_json::Value;

const PLAN_NOW: &str = "2026-11-26T12:00:00Z";
/// The demo's two dispatcher runs: Asia-Pacific's morning, then Europe's and the Americas'.
const RUN_EARLY: &str = "2026-11-27T03:00:00Z";
const RUN_LATE: &str = "2026-11-27T16:30:00Z";
const AFTER: &str = "2026-11-27T17:00:00Z";

/// The shipped example after `scripts/demo.sh`'s steps: planned, then run twice.
fn dispatched() -> Project {
    let p = Project::example();
    p.ok(&[
        "-q",
        "--now",
        PLAN_NOW,
        "plan",
        "black-friday-2026",
        "payment-reminder",
        "weekly-digest",
    ]);
    p.ok(&["-q", "--now", RUN_EARLY, "run", "--once"]);
    p.ok(&["-q", "--now", RUN_LATE, "run", "--once"]);
    p
}

fn escape_regex(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Exit code and both streams, with the temporary folder and real-clock parts masked.
fn snap(name: &str, p: &Project, o: &Output) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    let dir = p.path().to_string_lossy().into_owned();
    settings.add_filter(&escape_regex(&dir), "[project]");
    if let Ok(canon) = p.path().canonicalize() {
        settings.add_filter(&escape_regex(&canon.to_string_lossy()), "[project]");
    }
    // A run's clock starts at --now and advances in real time: keep the minute, mask the rest.
    settings.add_filter(r"(2026-11-27T(?:03:00|16:30)):\d\d(?:\.\d+)?Z", "$1:[ss]Z");
    settings.add_filter(r#""seconds":[0-9.e-]+"#, r#""seconds":"[s]""#);
    settings.add_filter(r#""per_second":[0-9.e-]+"#, r#""per_second":"[r]""#);
    settings.add_filter(r"in [0-9.]+ (?:ms|s) \([0-9]+/s\)", "in [duration]");
    let text = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        o.code, o.stdout, o.stderr
    );
    settings.bind(|| insta::assert_snapshot!(name, text));
}

// ---------------------------------------------------------------------------------- preview

#[test]
fn preview_table() {
    let p = Project::example();
    let o = p.ok(&[
        "--now",
        PLAN_NOW,
        "preview",
        "black-friday-2026",
        "--limit",
        "3",
    ]);
    snap("preview_table", &p, &o);
}

#[test]
fn preview_table_sms_segments_and_warnings() {
    let p = Project::example();
    let o = p.ok(&[
        "--now",
        PLAN_NOW,
        "preview",
        "payment-reminder",
        "--recipient",
        "c001",
        "--recipient",
        "c013",
    ]);
    snap("preview_table_sms", &p, &o);
}

#[test]
fn preview_table_recurring_forecast_by_hour_of_day() {
    let p = Project::example();
    let o = p.ok(&[
        "--now",
        PLAN_NOW,
        "preview",
        "weekly-digest",
        "--limit",
        "0",
        "--forecast",
    ]);
    snap("preview_table_recurring_forecast", &p, &o);
}

#[test]
fn preview_json() {
    let p = Project::example();
    let o = p.ok(&[
        "--now",
        PLAN_NOW,
        "--format",
        "json",
        "preview",
        "payment-reminder",
        "--limit",
        "2",
        "--forecast",
    ]);
    snap("preview_json", &p, &o);
    let lines = o.json_lines();
    assert_eq!(lines.len(), 3, "two messages and the forecast");
    assert!(lines[..2].iter().all(|l| l.get("forecast").is_none()));
    assert_eq!(lines[2]["forecast"]["messages"], 21);
}

#[test]
fn preview_json_without_forecast_is_one_message_per_line() {
    let p = Project::example();
    let o = p.ok(&[
        "--now",
        PLAN_NOW,
        "--format",
        "json",
        "preview",
        "black-friday-2026",
    ]);
    let lines = o.json_lines();
    assert_eq!(lines.len(), 62);
    for l in &lines {
        assert!(l.get("forecast").is_none());
        assert!(l["send_at"].as_str().unwrap().ends_with('Z'));
        assert!(l["warnings"].is_array() && l["chars"].is_u64(), "{l}");
    }
    assert!(
        o.stderr.is_empty(),
        "JSON mode prints no chatter: {}",
        o.stderr
    );
}

#[test]
fn preview_csv() {
    let p = Project::example();
    let o = p.ok(&[
        "--now",
        PLAN_NOW,
        "--format",
        "csv",
        "preview",
        "black-friday-2026",
        "--limit",
        "3",
    ]);
    snap("preview_csv", &p, &o);
    let mut r = csv::Reader::from_reader(o.stdout.as_bytes());
    assert_eq!(r.records().count(), 3);
}

#[test]
fn preview_forecast_has_no_csv_form() {
    let p = Project::example();
    let o = p.expect(
        2,
        &[
            "--now",
            PLAN_NOW,
            "--format",
            "csv",
            "preview",
            "black-friday-2026",
            "--forecast",
        ],
    );
    assert!(
        o.stderr.contains("--format json --forecast"),
        "{}",
        o.stderr
    );
}

// ----------------------------------------------------------------------------------- status

#[test]
fn status_in_every_format() {
    let p = dispatched();
    for format in ["table", "json", "csv"] {
        let o = p.ok(&["--now", AFTER, "--format", format, "status"]);
        snap(&format!("status_{format}"), &p, &o);
    }
}

#[test]
fn status_shows_why_a_campaign_is_paused() {
    let p = dispatched();
    p.ok(&["pause", "payment-reminder"]);
    let o = p.ok(&["--now", AFTER, "status", "payment-reminder"]);
    snap("status_paused", &p, &o);
    let j = p
        .ok(&["--format", "json", "status", "payment-reminder"])
        .json_lines();
    assert_eq!(j[0]["status"], "paused");
    assert_eq!(j[0]["status_reason"], "paused by `disparo pause`");
}

// --------------------------------------------------------------------------------- messages

#[test]
fn messages_in_every_format() {
    let p = dispatched();
    for format in ["table", "json", "csv"] {
        let o = p.ok(&[
            "--format",
            format,
            "messages",
            "--campaign",
            "black-friday-2026",
            "--limit",
            "4",
        ]);
        snap(&format!("messages_{format}"), &p, &o);
    }
}

#[test]
fn messages_filters() {
    let p = dispatched();
    let all = p.messages();
    let json = |args: &[&str]| {
        let mut a = vec!["--format", "json", "messages"];
        a.extend_from_slice(args);
        p.ok(&a).json_lines()
    };
    let pending = json(&["--state", "pending"]);
    // weekly-digest: 62 readers × 5 Mondays up to `until: 2026-12-31` (planned whole, past the
    // 30-day horizon; the 28 Dec one moves to the 29th, a blackout date).
    assert_eq!(pending.len(), 21 + 310);
    let both = json(&["--state", "pending,sent"]);
    assert_eq!(both.len(), all.len());
    let weekday = json(&["--reason", "weekday"]);
    assert!(!weekday.is_empty());
    assert!(weekday.iter().all(|m| m["campaign"] == "payment-reminder"));
    let early = json(&["--due-before", "2026-11-27T00:00:00Z"]);
    assert!(
        early
            .iter()
            .all(|m| m["due_at"].as_str().unwrap() < "2026-11-27")
    );
    let one = json(&[
        "--address",
        "+55 11 92601-8159",
        "--campaign",
        "black-friday-2026",
    ]);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["recipient"], "c001");
    assert_eq!(json(&["--state", "pending", "--limit", "5"]).len(), 5);
    let bad = p.expect(2, &["messages", "--state", "sen"]);
    assert!(bad.stderr.contains("unknown state"), "{}", bad.stderr);
}

// ----------------------------------------------------------------------------------- export

#[test]
fn export_in_every_format() {
    let p = dispatched();
    for format in ["table", "json", "csv"] {
        let o = p.ok(&["--format", format, "export", "payment-reminder"]);
        snap(&format!("export_pending_{format}"), &p, &o);
        // The sent campaign: its first rows (Sydney's, sent by the early run) are enough.
        let o = p.ok(&["--format", format, "export", "black-friday-2026"]);
        let head = Output {
            code: o.code,
            stdout: o.stdout.lines().take(4).map(|l| format!("{l}\n")).collect(),
            stderr: o.stderr.clone(),
        };
        snap(&format!("export_sent_{format}"), &p, &head);
    }
    let o = p.ok(&["--format", "csv", "export", "black-friday-2026"]);
    let mut r = csv::Reader::from_reader(o.stdout.as_bytes());
    let headers = r.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 62);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    for row in &rows {
        assert_eq!(&row[col("state")], "sent");
        assert_eq!(&row[col("attempts")], "1");
        assert_eq!(&row[col("last_outcome")], "sent");
        assert!(row[col("provider_id")].starts_with("console-"));
        assert!(!row[col("sent_at")].is_empty());
    }
}

#[test]
fn export_attempts_one_row_per_attempt() {
    let p = dispatched();
    let o = p.ok(&[
        "--format",
        "csv",
        "export",
        "black-friday-2026",
        "--attempts",
    ]);
    let first: String = o.stdout.lines().take(3).collect::<Vec<_>>().join("\n") + "\n";
    let shown = Output {
        code: o.code,
        stdout: first,
        stderr: o.stderr.clone(),
    };
    snap("export_attempts_csv", &p, &shown);
    assert_eq!(o.stdout.lines().count(), 1 + 62);
    let j = p
        .ok(&[
            "--format",
            "json",
            "export",
            "black-friday-2026",
            "--attempts",
        ])
        .json_lines();
    assert_eq!(j.len(), 62);
    assert!(
        j.iter()
            .all(|a| a["attempt"] == 1 && a["outcome"] == "sent")
    );
}

#[test]
fn export_to_a_file_takes_the_format_from_its_extension() {
    let p = dispatched();
    let o = p.ok(&["export", "black-friday-2026", "-o", "report.csv"]);
    assert!(o.stdout.is_empty());
    assert!(o.stderr.contains("wrote 62 message(s)"), "{}", o.stderr);
    assert!(
        p.read("report.csv")
            .starts_with("campaign,message_id,recipient,")
    );
    p.ok(&["-q", "export", "black-friday-2026", "-o", "report.jsonl"]);
    let text = p.read("report.jsonl");
    assert_eq!(text.lines().count(), 62);
    for l in text.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
}

#[test]
fn export_of_an_unknown_campaign_is_invalid_input() {
    let p = dispatched();
    let o = p.expect(2, &["export", "no-such-campaign"]);
    assert!(o.stderr.contains("no-such-campaign"), "{}", o.stderr);
}

// ------------------------------------------------------------------------------ conventions

/// Runs the binary with exactly these colour-related variables (none inherited).
fn run_env(p: &Project, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_disparo"));
    c.args(args).current_dir(p.path());
    for k in [
        "NO_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "DISPARO_DB",
        "DISPARO_NOW",
        "DISPARO_CONFIG",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    let out = c.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn no_escape_codes_in_pipes_or_with_no_color() {
    let p = dispatched();
    let commands: [&[&str]; 5] = [
        &[
            "--now",
            PLAN_NOW,
            "preview",
            "payment-reminder",
            "--limit",
            "2",
        ],
        &["--now", AFTER, "status"],
        &["messages", "--limit", "5"],
        &["export", "black-friday-2026"],
        &[
            "--now",
            PLAN_NOW,
            "--format",
            "json",
            "preview",
            "payment-reminder",
        ],
    ];
    for args in commands {
        // A pipe is not a terminal: plain text.
        let o = run_env(&p, &[], args);
        assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
        assert!(!o.stdout.contains("\x1b["), "colour in a pipe: {args:?}");
        assert!(!o.stderr.contains("\x1b["), "colour in a pipe: {args:?}");
        // NO_COLOR wins even over CLICOLOR_FORCE.
        let o = run_env(&p, &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")], args);
        assert!(
            !o.stdout.contains("\x1b[") && !o.stderr.contains("\x1b["),
            "{args:?}"
        );
    }
    // The check is not vacuous: forced colours do show.
    let o = run_env(&p, &[("CLICOLOR_FORCE", "1")], &["--now", AFTER, "status"]);
    assert!(o.stdout.contains("\x1b["), "{}", o.stdout);
}

/// The lowercase column names of a table's header line.
fn table_columns(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_lowercase)
        .collect()
}

#[test]
fn every_json_output_parses_and_carries_its_table_columns() {
    let p = dispatched();
    let commands: [&[&str]; 6] = [
        &["--now", AFTER, "status"],
        &["messages"],
        &["messages", "--state", "pending"],
        &["export", "black-friday-2026"],
        &["export", "black-friday-2026", "--attempts"],
        &["suppress", "list"],
    ];
    p.ok(&["suppress", "add", "+15550001111", "--reason", "asked"]);
    for args in commands {
        let table = p.ok(args);
        let cols = table_columns(&table.stdout);
        assert!(!cols.is_empty(), "{args:?}");
        let mut json_args = vec!["--format", "json"];
        json_args.extend_from_slice(args);
        let lines = p.ok(&json_args).json_lines();
        assert!(!lines.is_empty(), "{args:?}");
        for l in &lines {
            for c in &cols {
                assert!(l.get(c).is_some(), "{args:?}: {c} missing in {l}");
            }
        }
        let mut csv_args = vec!["--format", "csv"];
        csv_args.extend_from_slice(args);
        let csv_out = p.ok(&csv_args);
        let mut r = csv::Reader::from_reader(csv_out.stdout.as_bytes());
        let headers: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
        for c in &cols {
            assert!(headers.contains(c), "{args:?}: CSV lacks {c}");
        }
        assert_eq!(r.records().count(), lines.len(), "{args:?}");
    }
    // Preview's text blocks show these; its JSON carries them all.
    let lines = p
        .ok(&[
            "--now",
            PLAN_NOW,
            "--format",
            "json",
            "preview",
            "payment-reminder",
        ])
        .json_lines();
    for l in &lines {
        for k in [
            "recipient",
            "address",
            "zone",
            "locale",
            "send_at",
            "send_at_local",
            "reasons",
            "body",
            "chars",
            "segments",
            "encoding",
            "warnings",
        ] {
            assert!(l.get(k).is_some(), "{k} missing in {l}");
        }
    }
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let p = Project::empty();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = p.ok(&["completions", shell]);
        assert!(o.stdout.contains("export"), "{shell}: {}", o.stdout);
    }
    let man = p.ok(&["man"]);
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH disparo"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(man.stdout.contains("preview"));
    p.ok(&["-q", "man", "--dir", "man"]);
    assert!(p.path().join("man/disparo.1").exists());
    assert!(p.path().join("man/disparo-export.1").exists());
}

#[test]
fn init_previews_something_useful() {
    let p = Project::empty();
    p.ok(&["-q", "init"]);
    p.ok(&["-q", "validate"]);
    let o = p.ok(&["--now", "2026-11-24T17:00:00Z", "preview", "welcome"]);
    snap("init_preview", &p, &o);
}
