//! Hostile input (issue #12, classes 5-9): recipients removed and added back, values that
//! spreadsheets execute or terminals obey, schedules and names that mean something else, a plan
//! of several campaigns that fails half-way, and inputs sized to exhaust the stack or the CPU.
//! Everything runs the real binary on a real SQLite file.

use crate::harness::{Output, Project};

/// `messages --format json` as (recipient, state, due_at) sorted by recipient.
fn states(p: &Project) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = p
        .messages()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (s("recipient"), s("state"), s("due_at"))
        })
        .collect();
    v.sort();
    v
}

fn assert_located_error(o: &Output, code: i32, needles: &[&str]) {
    assert_eq!(
        o.code, code,
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        o.code, o.stdout, o.stderr
    );
    for n in needles {
        assert!(o.stderr.contains(n), "stderr lacks {n:?}:\n{}", o.stderr);
    }
}

// ------------------------------------------------------------- class 5: re-plan brings back

const NOW: &str = "2026-11-30T11:00:00Z";

fn replan_project(audience: &str, at: &str) -> Project {
    let p = Project::empty().env("DISPARO_SIMULATE", "1");
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file(
            "campaigns/c.yaml",
            &format!("channel: outbox\ntemplate: t\naudience: a.csv\nschedule: {{ at: {at} }}\n"),
        )
        .file("templates/t.hbs", "Oi {{first_name}}")
        .file("a.csv", audience);
    p
}

const BOTH: &str = "id,first_name,phone\na,Ana,+5511990000001\nb,Bia,+5511990000002\n";

/// `a` and `b` planned, then re-planned without `b` (its message cancelled by the re-plan).
fn planned_then_b_removed() -> Project {
    let p = replan_project(BOTH, "2026-12-01T09:00");
    p.ok(&["-q", "--now", NOW, "plan", "c"]);
    p.file("a.csv", "id,first_name,phone\na,Ana,+5511990000001\n");
    p.ok(&["-q", "--now", NOW, "plan", "c"]);
    p
}

/// A recipient removed from the audience (its pending message cancelled by the re-plan) and
/// added back is planned again, with the new content and time. Before: it stayed `cancelled`.
#[test]
fn a_recipient_removed_and_added_back_is_planned_again() {
    let p = planned_then_b_removed();
    assert_eq!(states(&p)[1].1, "cancelled", "{:?}", states(&p));
    // Back, with a new name and a new time.
    p.file(
        "a.csv",
        "id,first_name,phone\na,Ana,+5511990000001\nb,Beatriz,+5511990000002\n",
    );
    p.file(
        "campaigns/c.yaml",
        "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-02T10:00 }\n",
    );
    let o = p.ok(&["--format", "json", "--now", NOW, "plan", "c"]);
    assert!(o.stdout.contains(r#""updated":2"#), "{}", o.stdout);
    assert_eq!(
        states(&p),
        vec![
            ("a".into(), "pending".into(), "2026-12-02T13:00:00Z".into()),
            ("b".into(), "pending".into(), "2026-12-02T13:00:00Z".into()),
        ]
    );
    // And it is sent with the new content.
    p.ok(&["-q", "--now", "2026-12-02T13:00:00Z", "run", "--once"]);
    let outbox = p.read("outbox.jsonl");
    assert!(outbox.contains("Oi Beatriz"), "{outbox}");
    assert!(!outbox.contains("Oi Bia"), "{outbox}");
}

/// `disparo cancel` is final: a re-plan neither brings back what it cancelled nor what a
/// re-plan had cancelled before the campaign was.
#[test]
fn a_cancelled_campaign_stays_cancelled_through_replans() {
    let p = planned_then_b_removed();
    p.ok(&["-q", "cancel", "c"]);
    p.file("a.csv", BOTH);
    p.ok(&["-q", "--now", NOW, "plan", "c"]);
    let s: Vec<(String, String)> = states(&p).into_iter().map(|(r, s, _)| (r, s)).collect();
    assert_eq!(
        s,
        vec![
            ("a".into(), "cancelled".into()),
            ("b".into(), "cancelled".into())
        ]
    );
}

// ------------------------------------------------- class 6: what spreadsheets and terminals do

/// An OSC 8 hyperlink, a screen clear, an 8-bit CSI and a right-to-left override.
const LINK: &str = "\u{1b}]8;;http://evil\u{7}click\u{1b}]8;;\u{7}";
const LINK_SHOWN: &str = "␛]8;;http://evil␇click␛]8;;␇";
const NOTE: &str = "\u{1b}[2J\u{9b}6n\u{202e}gnp.exe";
const NOTE_SHOWN: &str = "␛[2J\\u{9b}6n\\u{202e}gnp.exe";

/// Recipients whose ids and names are what a hostile tester types: formulas, a plain negative
/// number, a leading tab, terminal control sequences. `c` goes to the console, `f` to a program
/// that fails with a control-laden error.
fn hostile_project() -> Project {
    let p = Project::empty()
        .env("DISPARO_SIMULATE", "1")
        // Colours on, as on a terminal: nothing is stripped on the way out.
        .env("NO_COLOR", "")
        .env("CLICOLOR_FORCE", "1");
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "first_name", "note", "phone"])
        .unwrap();
    let rows = [
        ("=HYPERLINK(\"http://evil\",\"x\")", "=1+1", "n"),
        ("+cmd|' /C calc'!A0", "+cmd|' /C calc'!A0", "n"),
        ("@SUM(A1)", "\tTab", "n"),
        ("-2+3", "-42", "n"),
        ("-42", "Ana", "n"),
        ("esc", LINK, NOTE),
    ];
    for (i, (id, name, note)) in rows.iter().enumerate() {
        w.write_record([*id, *name, *note, &format!("+551199000000{i}")])
            .unwrap();
    }
    let csv = String::from_utf8(w.into_inner().unwrap()).unwrap();
    p.file(
        "disparo.yaml",
        "timezone: America/Sao_Paulo\nchannels:\n  fails: { type: command, program: ./fail.sh }\n",
    )
    .file(
        "campaigns/c.yaml",
        "channel: console\ntemplate: t\naudience: a.csv\n",
    )
    .file("campaigns/f.yaml", "channel: fails\ntemplate: t\naudience: a.csv\n")
    .file("templates/t.hbs", "{{first_name}} | {{note}}\nfim")
    .file("a.csv", &csv)
    .file(
        "fail.sh",
        "#!/bin/sh\ncat >/dev/null\nprintf '{\"error\":\"denied \\\\u001b]8;;http://evil\\\\u0007x\\\\u001b]8;;\\\\u0007 \\\\u001b[2J\"}'\nexit 1\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        p.path().join("fail.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    p
}

/// The output with disparo's own colour sequences (`ESC [ digits ; m`) removed.
fn without_colours(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("\u{1b}[") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let n = tail
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(tail.len());
        if tail[n..].starts_with('m') {
            rest = &tail[n + 1..];
        } else {
            out.push_str("\u{1b}[");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// No control character a terminal acts on is left (newlines and tabs of bodies aside).
fn assert_inert(what: &str, s: &str) {
    let plain = without_colours(s);
    for c in plain.chars() {
        let bad = (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "{what}: raw {c:?} in\n{plain}");
    }
}

#[test]
fn terminal_controls_from_recipients_are_shown_inert_in_preview_and_console() {
    let p = hostile_project();
    let o = p.ok(&["preview", "c"]);
    assert_inert("preview", &o.stdout);
    let plain = without_colours(&o.stdout);
    assert!(
        plain.contains(&format!("   │ {LINK_SHOWN} | {NOTE_SHOWN}\n   │ fim\n")),
        "{plain}"
    );
    // A tab inside a body is only a tab.
    assert!(plain.contains("   │ \tTab | n\n"), "{plain}");

    p.ok(&["-q", "plan", "c"]);
    let o = p.ok(&["-q", "run", "--once"]);
    assert_inert("console", &o.stdout);
    // The body keeps its line break; the header line names the recipient inert too.
    assert!(
        o.stdout
            .contains(&format!("{LINK_SHOWN} | {NOTE_SHOWN}\nfim\n")),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("── c → esc (+5511990000005)"),
        "{}",
        o.stdout
    );
}

#[test]
fn terminal_controls_in_stored_text_are_shown_inert_by_status_messages_and_export() {
    let p = hostile_project();
    p.ok(&["-q", "plan", "f"]);
    p.expect(1, &["-q", "run", "--once"]);
    let shown_error = "denied ␛]8;;http://evil␇x␛]8;;␇ ␛[2J";
    for args in [
        &["status"][..],
        &["messages"],
        &["messages", "--recipient", "esc"],
        &["export", "f"],
        &["export", "f", "--attempts"],
    ] {
        let o = p.ok(args);
        assert_inert(&format!("{args:?}"), &o.stdout);
        assert!(
            without_colours(&o.stdout).contains(shown_error),
            "{args:?}:\n{}",
            o.stdout
        );
    }
    // JSON carries the exact text, escaped by JSON itself.
    let o = p.ok(&["--format", "json", "messages", "--recipient", "esc"]);
    assert!(!o.stdout.contains('\u{1b}'), "{}", o.stdout);
    let m = &o.json_lines()[0];
    assert!(
        m["last_error"]
            .as_str()
            .unwrap()
            .contains("denied \u{1b}]8;;http://evil\u{7}x"),
        "{m}"
    );
}

/// Every CSV output quotes a cell a spreadsheet would run as a formula (OWASP: a leading
/// `'`), and leaves plain numbers (E.164 phones, negative amounts) exact.
#[test]
fn csv_cells_that_spreadsheets_would_run_are_defused() {
    let p = hostile_project();
    p.ok(&["-q", "plan", "c"]);
    p.ok(&["-q", "run", "--once"]);
    let column = |o: &Output, name: &str| -> Vec<String> {
        let mut r = csv::Reader::from_reader(o.stdout.as_bytes());
        let at = r.headers().unwrap().iter().position(|h| h == name).unwrap();
        let mut v: Vec<String> = r.records().map(|x| x.unwrap()[at].to_owned()).collect();
        v.sort();
        v
    };
    let ids = vec![
        "'+cmd|' /C calc'!A0",
        "'-2+3",
        "'=HYPERLINK(\"http://evil\",\"x\")",
        "'@SUM(A1)",
        "-42",
        "esc",
    ];
    let messages = p.ok(&["--format", "csv", "messages"]);
    assert_eq!(column(&messages, "recipient"), ids);
    assert_eq!(
        column(&messages, "address"),
        (0..6)
            .map(|i| format!("+551199000000{i}"))
            .collect::<Vec<_>>()
    );
    let export = p.ok(&["--format", "csv", "export", "c"]);
    assert_eq!(column(&export, "recipient"), ids);
    p.ok(&["export", "c", "-o", "report.csv"]);
    let file = Output {
        code: 0,
        stdout: p.read("report.csv"),
        stderr: String::new(),
    };
    assert_eq!(column(&file, "recipient"), ids);
    let preview = p.ok(&["--format", "csv", "preview", "c"]);
    assert_eq!(column(&preview, "recipient"), ids);
    let bodies = column(&preview, "body");
    for b in [
        "'=1+1 | n\nfim",
        "'+cmd|' /C calc'!A0 | n\nfim",
        "'\tTab | n\nfim",
        "'-42 | n\nfim",
    ] {
        assert!(bodies.iter().any(|x| x == b), "{b:?} not in {bodies:?}");
    }
}

// ------------------------------------------------------ class 7: at with an offset, same name

fn small_project() -> Project {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("templates/t.hbs", "Oi {{first_name}}")
        .file("a.csv", "id,first_name,phone\na,Ana,+5511990000001\n");
    p
}

/// `at` is the recipient's wall time; an offset in it was silently dropped (10:00-03:00 sent at
/// 10:00 in Tokyo too). Refused at validate, preview and plan, with the key's position.
#[test]
fn schedule_at_with_an_explicit_offset_is_refused_with_its_position() {
    for at in [
        "2026-11-27T10:00-03:00",
        "2026-11-27T10:00Z",
        "2026-11-27T10:00:00+05:30",
    ] {
        let p = small_project();
        p.file(
            "campaigns/c.yaml",
            &format!("channel: outbox\ntemplate: t\naudience: a.csv\nschedule:\n  at: {at}\n"),
        );
        for args in [&["validate"][..], &["preview", "c"], &["plan", "c"]] {
            let o = p.run(args);
            assert_located_error(
                &o,
                2,
                &[
                    "campaigns/c.yaml:5:7",
                    "schedule.at",
                    "recipient's local wall time",
                    "remove the offset",
                    "timezone",
                ],
            );
        }
        assert!(!p.path().join("disparo.db").exists(), "{at}: plan stored");
    }
    // `start` of a recurring schedule is a wall time too.
    let p = small_project();
    p.file(
        "campaigns/c.yaml",
        "channel: outbox\ntemplate: t\naudience: a.csv\nschedule:\n  cron: \"0 10 * * *\"\n  start: 2026-11-27T00:00Z\n",
    );
    assert_located_error(
        &p.run(&["validate"]),
        2,
        &["campaigns/c.yaml:6:10", "schedule.start"],
    );
}

/// Two files naming the same campaign (or a file whose stem is another's name) were both
/// accepted: `plan` stored one over the other. Refused naming both files.
#[test]
fn two_campaign_files_with_one_name_are_refused_naming_both() {
    let body = "channel: outbox\ntemplate: t\naudience: a.csv\n";
    // Same `name:`.
    let p = small_project();
    p.file("campaigns/a.yaml", &format!("name: promo\n{body}"))
        .file("campaigns/b.yaml", &format!("name: promo\n{body}"))
        .file("campaigns/ok.yaml", body);
    for args in [
        &["validate"][..],
        &["preview", "a"],
        &["plan", "b"],
        &["plan", "promo"],
    ] {
        assert_located_error(
            &p.run(args),
            2,
            &["campaigns/a.yaml", "campaigns/b.yaml", "\"promo\""],
        );
    }
    // Unrelated campaigns are still planned.
    p.ok(&["-q", "plan", "ok"]);
    // A stem that is another file's name: `plan promo` would pick the file by its stem.
    let p = small_project();
    p.file("campaigns/promo.yaml", &format!("name: first\n{body}"))
        .file("campaigns/x.yaml", &format!("name: promo\n{body}"));
    for args in [&["validate"][..], &["preview", "promo"], &["plan", "x"]] {
        assert_located_error(
            &p.run(args),
            2,
            &["campaigns/promo.yaml", "campaigns/x.yaml", "\"promo\""],
        );
    }
}

// ------------------------------------------------------ class 8: `plan a b` half done

fn two_campaigns(b_rows: usize) -> Project {
    let p = small_project();
    let mut big = String::from("id,first_name,phone\n");
    for i in 0..b_rows {
        big.push_str(&format!("b{i},{},+55119{:08}\n", "B".repeat(200), i));
    }
    p.file(
        "campaigns/a.yaml",
        "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-01T09:00 }\n",
    )
    .file(
        "campaigns/b.yaml",
        "channel: outbox\ntemplate: t\naudience: b.csv\nschedule: { at: 2026-12-01T09:00 }\n",
    )
    .file("b.csv", &big);
    p
}

/// Bad input in the second campaign named stores nothing at all, the first included.
/// Before: `a` was committed, then `b` refused.
#[test]
fn plan_of_several_campaigns_checks_them_all_before_storing_any() {
    let p = two_campaigns(3);
    // b's last recipient lacks the variable the template uses.
    p.file(
        "b.csv",
        "id,first_name,phone\nb0,Bia,+5511990000010\nb1,,+5511990000011\nb2,Caio,+5511990000012\n",
    );
    p.file(
        "templates/t.hbs",
        "Oi {{first_name}}{{#unless first_name}}{{missing}}{{/unless}}",
    );
    let o = p.run(&["--now", NOW, "plan", "a", "b"]);
    assert_located_error(&o, 2, &["b.csv", "row 2", "missing", "nothing was stored"]);
    assert!(!o.stderr.contains("planned a"), "{}", o.stderr);
    assert_eq!(states(&p), vec![]);
    // An unknown template in b: the same.
    let p = two_campaigns(3);
    p.file(
        "campaigns/b.yaml",
        "channel: outbox\ntemplate: nope\naudience: b.csv\n",
    );
    let o = p.run(&["--now", NOW, "plan", "a", "b"]);
    assert_located_error(&o, 2, &["nope"]);
    assert_eq!(states(&p), vec![]);
}

/// A store that fails half-way (the disk fills up while `b` is written) leaves `a` stored and
/// says exactly which campaigns were stored and which were not.
#[test]
fn plan_that_fills_the_disk_says_what_was_stored() {
    // How many pages the database takes with `a` alone.
    let probe = two_campaigns(0);
    probe.ok(&["-q", "--now", NOW, "plan", "a"]);
    let pages: i64 = rusqlite::Connection::open(probe.path().join("disparo.db"))
        .unwrap()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let p = two_campaigns(3000).env("DISPARO_DB_MAX_PAGES", &(pages + 4).to_string());
    p.file(
        "campaigns/c.yaml",
        "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-01T09:00 }\n",
    );
    let o = p.run(&["--now", NOW, "plan", "a", "b", "c"]);
    assert_located_error(
        &o,
        4,
        &["full", "stored: a", "not stored: b (rolled back), c"],
    );
    let s = states(&p);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].0, "a");
}

// ------------------------------------------------------ class 9: input sized to exhaust

fn template_project(template: &str, partials: &[(&str, &str)]) -> Project {
    let p = small_project();
    p.file(
        "campaigns/c.yaml",
        "channel: outbox\ntemplate: t\naudience: a.csv\n",
    )
    .file("templates/t.hbs", template);
    for (name, text) in partials {
        p.file(&format!("templates/partials/{name}.hbs"), text);
    }
    p
}

/// Each of validate, preview and plan refuses with `needles` in its error (exit 2): a stack
/// overflow would abort the process instead (SIGABRT, no exit code).
fn refused_everywhere(p: &Project, needles: &[&str]) {
    for args in [&["validate"][..], &["preview", "c"], &["plan", "c"]] {
        assert_located_error(&p.run(args), 2, needles);
    }
    assert_eq!(states(p), vec![]);
}

#[test]
fn partials_that_include_each_other_are_refused_before_rendering() {
    let p = template_project(
        "Oi {{> a}}",
        &[
            ("a", "A {{> b}}"),
            ("b", "\nB {{#if first_name}}{{> a}}{{/if}}"),
        ],
    );
    refused_everywhere(
        &p,
        &["templates/partials/", "a → b → a", "include each other"],
    );
    let p = template_project("Oi {{> a}}", &[("a", "{{first_name}} {{> a}}")]);
    refused_everywhere(&p, &["templates/partials/a.hbs:1", "a → a"]);
    // A partial chosen at render time (`{{> (lookup ...)}}`) inside a partial could be any,
    // itself included.
    let p = template_project("Oi {{> a}}", &[("a", "{{> (lookup . \"which\")}}")]);
    refused_everywhere(&p, &["templates/partials/a.hbs:1", "chosen when rendered"]);
}

#[test]
fn blocks_nested_too_deep_are_refused_before_the_parser() {
    let n = 10_000;
    let t = format!("{}x{}", "{{#if first_name}}".repeat(n), "{{/if}}".repeat(n));
    let p = template_project(&t, &[]);
    refused_everywhere(&p, &["templates/t.hbs:1:", "nested", "deeper than 64"]);
    // Through partials: each level within the limit, the sum not.
    let level = format!(
        "{}{{{{> p2}}}}{}",
        "{{#if first_name}}".repeat(40),
        "{{/if}}".repeat(40)
    );
    let p = template_project(
        &level.replace("p2", "p1"),
        &[("p1", &level), ("p2", &level.replace("{{> p2}}", "end"))],
    );
    refused_everywhere(&p, &["nested", "deeper than 64", "partials"]);
    // Deep but within the limit renders.
    let t = format!(
        "{}x{}",
        "{{#if first_name}}".repeat(60),
        "{{/if}}".repeat(60)
    );
    let p = template_project(&t, &[]);
    p.ok(&["-q", "validate"]);
}

/// A 200,000-column header: one located error, at once (before: a quadratic check of
/// repeated names, minutes of CPU).
#[test]
fn a_very_wide_csv_header_is_refused_with_its_limit() {
    let p = small_project();
    let mut header = String::from("id,first_name,phone");
    for i in 0..200_000 {
        header.push_str(&format!(",c{i}"));
    }
    p.file(
        "campaigns/c.yaml",
        "channel: outbox\ntemplate: t\naudience: wide.csv\n",
    )
    .file(
        "wide.csv",
        &format!("{header}\na,Ana,+5511990000001{}\n", ",x".repeat(200_000)),
    );
    refused_everywhere(&p, &["wide.csv:1", "200003 columns", "16384"]);
    // Wide but within the limit: a repeated name at the end is still found.
    let mut header = String::from("id,first_name,phone");
    for i in 0..16_000 {
        header.push_str(&format!(",c{i}"));
    }
    header.push_str(",c15999");
    p.file("wide.csv", &format!("{header}\n"));
    refused_everywhere(&p, &["wide.csv:1", "\"c15999\" twice"]);
}

/// A database whose re-plans cancelled messages before `queue.cancelled_by` existed (schema
/// V4) brings them back too: migration V5 marks them from the re-plan's own wording, and only
/// them (a message `disparo cancel` cancelled in another campaign stays cancelled).
#[test]
fn a_database_from_before_v5_brings_back_what_its_replans_cancelled() {
    let p = planned_then_b_removed();
    p.file(
        "campaigns/d.yaml",
        "channel: outbox\ntemplate: t\naudience: a.csv\n",
    );
    p.ok(&["-q", "plan", "d"]);
    p.ok(&["-q", "cancel", "d"]);
    // Back to V4: no column, no record of V5 (nor of the later V6, the fleet's workers, V7,
    // receipts, V8, test sends, and V10, sends by channel).
    {
        let db = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
        db.execute_batch(
            "ALTER TABLE queue DROP COLUMN cancelled_by;
             DROP TABLE workers; DELETE FROM control WHERE name = 'fleet';
             ALTER TABLE campaigns DROP COLUMN capped;
             DROP TABLE receipts; DROP TABLE delivery; DROP INDEX queue_provider;
             DROP TABLE test_sends; DROP TABLE drafts; DROP INDEX sends_by_channel;
             DELETE FROM refinery_schema_history WHERE version >= 5;",
        )
        .unwrap();
    }
    p.file("a.csv", BOTH);
    p.ok(&["-q", "--now", NOW, "plan", "c"]);
    p.ok(&["-q", "--now", NOW, "plan", "d"]);
    let s: Vec<(String, String)> = p
        .messages()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (format!("{}/{}", s("campaign"), s("recipient")), s("state"))
        })
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    let want: Vec<(String, String)> = [
        ("c/a", "pending"),
        ("c/b", "pending"),
        ("d/a", "cancelled"),
        ("d/b", "pending"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(s, want);
}

/// Errors quote names from the input (a column, a field): on stderr they are inert too.
#[test]
fn problems_quoting_hostile_names_are_shown_inert() {
    let p = small_project();
    p.file(
        "campaigns/c.yaml",
        "channel: outbox\ntemplate: t\naudience: h.csv\n",
    )
    .file(
        "h.csv",
        "id,phone,\"x\u{1b}[2J\",\"x\u{1b}[2J\"\na,+5511990000001,1,2\n",
    );
    for args in [&["validate"][..], &["preview", "c"], &["plan", "c"]] {
        let o = p.run(args);
        assert_located_error(&o, 2, &["h.csv:1", "field `x␛[2J`"]);
        assert_inert(&format!("{args:?}"), &o.stderr);
    }
}
