//! Every class of bad input, table-driven: each is refused by `validate` and `plan` with exit
//! code 2, a message naming the file, the line or row and the field, and a `hint:`; the
//! database is left exactly as it was. Row-level problems are stored as `skipped` (with the
//! reason) under `plan --skip-invalid`. CSV quirks that are not errors (BOM, CRLF, quoted
//! newlines) are accepted and parsed right.

use crate::harness::Project;
use serde_json::Value;

const PLAN_NOW: &str = "2026-11-24T12:00:00Z";

const CONFIG: &str = "timezone: America/Sao_Paulo\nchannels:\n  mail: { type: outbox, address_field: email }\n  hook: { type: webhook, url: \"http://127.0.0.1:9/hook\", secret_env: DISPARO_TEST_UNSET_SECRET }\n";
const GOOD_TEMPLATE: &str = "Oi {{first_name}}\n";
const GOOD_AUDIENCE: &str = "id,first_name,phone,email,timezone\n1,Ana,+5511999990000,ana@example.com,America/Sao_Paulo\n2,Bia,+5511999990001,bia@example.com,America/Sao_Paulo\n";

fn campaign(extra: &str) -> String {
    format!("channel: outbox\ntemplate: t\naudience: a.csv\n{extra}")
}

/// One bad input: files written over a good project, and what the message must contain.
struct Bad {
    name: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    /// Each must appear in stderr (file:line, row, field names...).
    expect: Vec<&'static str>,
    /// A per-recipient problem: `plan --skip-invalid` stores that recipient as `skipped`.
    row_level: Option<&'static str>,
    /// A loader bug reported to the lead (the message lacks its `hint:`); everything else is
    /// still checked. Remove when fixed.
    known_no_hint: Option<&'static str>,
}

fn bad(name: &'static str, files: Vec<(&'static str, Vec<u8>)>, expect: Vec<&'static str>) -> Bad {
    Bad {
        name,
        files,
        expect,
        row_level: None,
        known_no_hint: None,
    }
}

fn s(x: impl Into<String>) -> Vec<u8> {
    x.into().into_bytes()
}

fn cases() -> Vec<Bad> {
    let huge = "x".repeat(2_000_000);
    vec![
        bad(
            "malformed YAML",
            vec![("campaigns/c.yaml", s(campaign("schedule: { at: [\n")))],
            vec!["campaigns/c.yaml:"],
        ),
        bad(
            "unknown key",
            vec![(
                "campaigns/c.yaml",
                s(campaign(
                    "schedule:\n  quiet_hour: { start: \"21:00\", end: \"08:00\" }\n",
                )),
            )],
            vec!["campaigns/c.yaml:5", "quiet_hour"],
        ),
        bad(
            "wrong type",
            vec![(
                "campaigns/c.yaml",
                s(campaign("frequency_cap: { max: two, per: 7d }\n")),
            )],
            vec!["campaigns/c.yaml:4", "max"],
        ),
        bad(
            "bad duration",
            vec![(
                "campaigns/c.yaml",
                s(campaign("schedule:\n  expire_after: 12 hours\n")),
            )],
            vec!["campaigns/c.yaml:5", "expire_after", "12 hours"],
        ),
        Bad {
            known_no_hint: None,
            ..bad(
                "bad time of day",
                vec![(
                    "campaigns/c.yaml",
                    s(campaign(
                        "schedule:\n  quiet_hours: { start: \"25:00\", end: \"08:00\" }\n",
                    )),
                )],
                vec!["campaigns/c.yaml:5", "25:00"],
            )
        },
        bad(
            "bad date-time",
            vec![(
                "campaigns/c.yaml",
                s(campaign("schedule:\n  at: 2026-13-01T10:00\n")),
            )],
            vec!["campaigns/c.yaml:5", "at", "2026-13-01T10:00"],
        ),
        bad(
            "unknown zone in campaign",
            vec![(
                "campaigns/c.yaml",
                s(campaign("schedule:\n  timezone: Mars/Olympus_Mons\n")),
            )],
            vec!["campaigns/c.yaml:5", "Mars/Olympus_Mons"],
        ),
        Bad {
            row_level: Some("2"),
            ..bad(
                "unknown zone in an audience row",
                vec![(
                    "a.csv",
                    s(
                        "id,first_name,phone,timezone\n1,Ana,+5511999990000,America/Sao_Paulo\n2,Bia,+5511999990001,America/Sao_Pablo\n",
                    ),
                )],
                vec!["a.csv", "3", "timezone", "America/Sao_Pablo"],
            )
        },
        bad(
            "bad cron",
            vec![(
                "campaigns/c.yaml",
                s(campaign("schedule:\n  cron: \"61 * * * *\"\n  count: 2\n")),
            )],
            vec!["campaigns/c.yaml:5", "cron", "61"],
        ),
        Bad {
            row_level: Some("2"),
            ..bad(
                "invalid E.164 phone",
                vec![(
                    "a.csv",
                    s("id,first_name,phone\n1,Ana,+5511999990000\n2,Bia,11 99999-0001\n"),
                )],
                vec!["a.csv", "3", "phone"],
            )
        },
        Bad {
            row_level: Some("2"),
            ..bad(
                "invalid email",
                vec![
                    (
                        "campaigns/c.yaml",
                        s("channel: mail\ntemplate: t\naudience: a.csv\n"),
                    ),
                    (
                        "a.csv",
                        s("id,first_name,email\n1,Ana,ana@example.com\n2,Bia,bia-at-example.com\n"),
                    ),
                ],
                vec!["a.csv", "3", "email"],
            )
        },
        bad(
            "duplicate recipient id",
            vec![(
                "a.csv",
                s("id,first_name,phone\n1,Ana,+5511999990000\n1,Bia,+5511999990001\n"),
            )],
            vec!["a.csv", "3", "id", "1"],
        ),
        bad(
            "empty audience",
            vec![("a.csv", s("id,first_name,phone\n"))],
            vec!["a.csv", "hint:"],
        ),
        bad(
            "wrong column count",
            vec![(
                "a.csv",
                s("id,first_name,phone\n1,Ana,+5511999990000\n2,Bia,+5511999990001,extra\n"),
            )],
            vec!["a.csv", "3"],
        ),
        bad(
            "non-UTF-8 bytes",
            vec![(
                "a.csv",
                b"id,first_name,phone\n1,Ana,+5511999990000\n2,Jo\xe3o,+5511999990001\n".to_vec(),
            )],
            vec!["a.csv", "3", "UTF-8"],
        ),
        bad(
            "enormous field",
            vec![(
                "a.csv",
                s(format!(
                    "id,first_name,phone\n1,Ana,+5511999990000\n2,{huge},+5511999990001\n"
                )),
            )],
            vec!["a.csv", "3", "first_name"],
        ),
        bad(
            "template syntax error",
            vec![("templates/t.hbs", s("Oi {{first_name}\n"))],
            vec!["templates/t.hbs:1"],
        ),
        bad(
            "inverse section handlebars.js renders and the crate cannot",
            vec![(
                "templates/t.hbs",
                s("Oi {{first_name}}\n{{^vip}}Seja VIP!{{/vip}}\n"),
            )],
            vec!["templates/t.hbs:2", "{{^vip}}", "{{#unless"],
        ),
        bad(
            "mustache section on a field",
            vec![(
                "templates/t.hbs",
                s("Oi {{first_name}}\n\n{{#first_name}}x{{/first_name}}\n"),
            )],
            vec!["templates/t.hbs:3", "{{#first_name}}", "{{#if"],
        ),
        bad(
            "missing partial",
            vec![(
                "templates/t.hbs",
                s("Oi {{first_name}}\n{{#if vip}}{{> signature}}{{/if}}\n"),
            )],
            vec![
                "templates/t.hbs:2",
                "signature",
                "templates/partials/signature.hbs",
            ],
        ),
        Bad {
            row_level: Some("2"),
            ..bad(
                "missing variable",
                vec![
                    ("templates/t.hbs", s("Oi {{first_name}}, use {{coupon}}\n")),
                    (
                        "campaigns/c.yaml",
                        s("channel: outbox\ntemplate: t\naudience: a.jsonl\n"),
                    ),
                    (
                        "a.jsonl",
                        s(
                            "{\"id\":\"1\",\"first_name\":\"Ana\",\"phone\":\"+5511999990000\",\"coupon\":\"BF26\"}\n{\"id\":\"2\",\"first_name\":\"Bia\",\"phone\":\"+5511999990001\"}\n",
                        ),
                    ),
                ],
                vec!["a.jsonl:2", "coupon"],
            )
        },
        bad(
            "unknown channel",
            vec![(
                "campaigns/c.yaml",
                s("channel: pigeon\ntemplate: t\naudience: a.csv\n"),
            )],
            vec!["campaigns/c.yaml:1", "pigeon"],
        ),
    ]
}

/// A project with a good campaign `good` already planned, and the bad files written over it.
fn project(files: &[(&str, Vec<u8>)]) -> Project {
    let p = Project::empty();
    p.file("disparo.yaml", CONFIG)
        .file("campaigns/c.yaml", &campaign(""))
        .file("templates/t.hbs", GOOD_TEMPLATE)
        .file("templates/g.hbs", GOOD_TEMPLATE)
        .file("good.csv", GOOD_AUDIENCE)
        .file("a.csv", GOOD_AUDIENCE)
        .file(
            "campaigns/good.yaml",
            "channel: outbox\ntemplate: g\naudience: good.csv\n",
        );
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "good"]);
    for (f, c) in files {
        p.bytes(f, c);
    }
    p
}

#[test]
fn every_bad_input_is_named_refused_with_exit_2_and_changes_nothing() {
    let mut failures = Vec::new();
    for case in cases() {
        let p = project(&case.files);
        let before = p.messages();
        let short = |s: &str| s.chars().take(1500).collect::<String>();
        for cmd in [
            &["validate", "c"][..],
            &["--now", PLAN_NOW, "plan", "c"][..],
        ] {
            let o = p.run(cmd);
            let mut wrong = Vec::new();
            if o.code != 2 {
                wrong.push(format!("exit {} (want 2)", o.code));
            }
            for needle in &case.expect {
                if !o.stderr.contains(needle) {
                    wrong.push(format!("lacks {needle:?}"));
                }
            }
            if !o.stderr.contains("hint:") {
                match case.known_no_hint {
                    Some(bug) => eprintln!("known loader bug ({}): {bug}", case.name),
                    None => wrong.push("no hint:".into()),
                }
            }
            if o.stderr.contains("panicked") {
                wrong.push("panic".into());
            }
            if !wrong.is_empty() {
                failures.push(format!(
                    "{} / {cmd:?}: {}\n{}",
                    case.name,
                    wrong.join(", "),
                    short(&o.stderr)
                ));
            }
        }
        if p.messages() != before {
            failures.push(format!("{}: the database changed", case.name));
        }
        if let Some(recipient) = case.row_level {
            let o = p.run(&["--now", PLAN_NOW, "plan", "c", "--skip-invalid"]);
            let msgs: Vec<Value> = p
                .messages()
                .into_iter()
                .filter(|m| m["campaign"] == "c")
                .collect();
            let bad = msgs.iter().find(|m| m["recipient"] == recipient);
            let ok = o.code == 0
                && bad.is_some_and(|m| {
                    m["state"] == "skipped"
                        && m["last_error"].as_str().is_some_and(|e| !e.is_empty())
                })
                && msgs
                    .iter()
                    .filter(|m| m["recipient"] != recipient)
                    .all(|m| m["state"] == "pending");
            if !ok {
                failures.push(format!(
                    "{}: --skip-invalid (exit {}) did not store recipient {recipient} as skipped: {msgs:?}\n{}",
                    case.name,
                    o.code,
                    short(&o.stderr)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn csv_quirks_that_are_not_errors_are_accepted_and_parsed_right() {
    let cases: [(&str, &[u8]); 3] = [
        (
            "BOM",
            b"\xef\xbb\xbfid,first_name,phone\n1,Ana,+5511999990000\n2,Bia,+5511999990001\n",
        ),
        (
            "CRLF",
            b"id,first_name,phone\r\n1,Ana,+5511999990000\r\n2,Bia,+5511999990001\r\n",
        ),
        (
            "quoted newline",
            b"id,first_name,phone\n1,\"Ana\nMaria\",+5511999990000\n2,\"Bia, \"\"B\"\"\",+5511999990001\n",
        ),
    ];
    for (name, csv) in cases {
        let p = project(&[("a.csv", csv.to_vec())]);
        p.ok(&["validate", "c"]);
        let rows = p
            .ok(&["--now", PLAN_NOW, "--format", "json", "preview", "c"])
            .json_lines();
        assert_eq!(rows.len(), 2, "{name}: {rows:?}");
        let body = |id: &str| {
            rows.iter()
                .find(|r| r["recipient"] == id)
                .unwrap_or_else(|| panic!("{name}: no recipient {id:?} in {rows:?}"))["body"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        match name {
            "quoted newline" => {
                assert_eq!(body("1").trim_end(), "Oi Ana\nMaria", "{name}");
                assert_eq!(body("2").trim_end(), "Oi Bia, \"B\"", "{name}");
            }
            _ => {
                assert_eq!(body("1").trim_end(), "Oi Ana", "{name}");
                assert_eq!(body("2").trim_end(), "Oi Bia", "{name}");
            }
        }
        p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
        let planned: Vec<Value> = p
            .messages()
            .into_iter()
            .filter(|m| m["campaign"] == "c")
            .collect();
        assert_eq!(planned.len(), 2, "{name}");
        assert!(
            planned
                .iter()
                .all(|m| m["address"].as_str().unwrap().starts_with("+55119999900")),
            "{name}: {planned:?}"
        );
    }
}

/// Secrets are read when `run` builds its channels: a missing environment variable is bad
/// input (exit 2) naming the variable and the config, and nothing is claimed or sent.
#[test]
fn missing_env_var_for_a_secret_refuses_the_run_and_changes_nothing() {
    let p = project(&[(
        "campaigns/c.yaml",
        s("channel: hook\ntemplate: t\naudience: a.csv\n"),
    )]);
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    let before = p.messages();
    let o = p.run(&["--now", PLAN_NOW, "run", "--once"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    for needle in [
        "DISPARO_TEST_UNSET_SECRET",
        "disparo.yaml",
        "channels.hook",
        "hint:",
    ] {
        assert!(o.stderr.contains(needle), "lacks {needle:?}:\n{}", o.stderr);
    }
    assert_eq!(p.messages(), before, "the database changed");
}

/// Issue #13: a phone is checked against its country's plan (digits after the country code),
/// in an audience (file, line, row, field and what is wrong) and in `suppress add`, where a
/// list with one bad address adds none of them.
#[test]
fn phone_lengths_are_checked_per_country_plan() {
    let p = project(&[(
        "a.csv",
        s(
            "id,first_name,phone,email,timezone\n1,Ana,+5511999990000,a@example.com,\n2,Bia,+55 11 1234,b@example.com,\n",
        ),
    )]);
    let o = p.expect(2, &["validate", "c"]);
    for needle in [
        "a.csv:3",
        "row 2",
        "field `phone`",
        "+55 numbers (Brazil) have 10 or 11 digits after 55; this one has 6",
    ] {
        assert!(o.stderr.contains(needle), "lacks {needle:?}: {}", o.stderr);
    }
    let o = p.expect(2, &["suppress", "add", "12345"]);
    assert!(o.stderr.contains("no country code"), "{}", o.stderr);
    let o = p.expect(2, &["suppress", "add", "+5511999990001", "+55 11 1234"]);
    assert!(o.stderr.contains("+55 numbers (Brazil)"), "{}", o.stderr);
    let listed = || -> Vec<String> {
        p.ok(&["--format", "json", "suppress", "list"])
            .json_lines()
            .iter()
            .map(|l| l["address"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(listed().is_empty(), "a list with a typo adds nothing");
    p.ok(&[
        "suppress",
        "add",
        "+55 (11) 99999-0001",
        "user-42",
        "Ana@Example.com",
    ]);
    assert_eq!(
        listed(),
        ["+5511999990001", "ana@example.com", "user-42"].map(String::from),
    );
}
