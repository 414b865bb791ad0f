//! End-to-end tests of the `disparo` binary on temporary project folders.

use crate::harness;
use crate::harness::Project;
use serde_json::Value;

const PLAN_NOW: &str = "2026-11-26T12:00:00Z";
const RUN_NOW: &str = "2026-11-27T12:00:00Z";

fn count_state(msgs: &[Value], state: &str) -> usize {
    msgs.iter().filter(|m| m["state"] == state).count()
}

#[test]
fn init_validate_preview_plan_run_status() {
    let p = Project::empty();
    p.ok(&["init"]);
    let v = p.ok(&["validate"]);
    assert!(
        v.stderr.contains("ok: welcome — 5 recipients, 5 messages"),
        "{}",
        v.stderr
    );
    // Mid-afternoon in São Paulo: as soon as allowed means now for most, the morning for Asia.
    let now = "2026-11-24T17:00:00Z";
    let pre = p.ok(&["--now", now, "--format", "json", "preview", "welcome"]);
    let lines = pre.json_lines();
    assert_eq!(lines.len(), 5);
    let joao = lines.iter().find(|l| l["recipient"] == "c2").unwrap();
    assert_eq!(
        joao["body"],
        "Olá João, boas-vindas à Loja Exemplo! Responda SAIR para não receber mais."
    );
    p.ok(&["--now", now, "plan", "welcome"]);
    let run = p.ok(&["--now", now, "run", "--once"]);
    assert!(
        run.stdout.contains("Hi Mary, welcome to Loja Exemplo!"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("run: 5 sent, 0 failed"),
        "{}",
        run.stderr
    );
    let status = p.ok(&["--format", "json", "status"]).json_lines();
    assert_eq!(status[0]["sent"], 5);
    assert_eq!(status[0]["pending"], 0);
}

#[test]
fn init_refuses_to_overwrite() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: UTC\n");
    let o = p.expect(2, &["init"]);
    assert!(
        o.stderr.contains("disparo.yaml") && o.stderr.contains("never overwrites"),
        "{}",
        o.stderr
    );
    assert_eq!(p.read("disparo.yaml"), "timezone: UTC\n");
}

#[test]
fn shipped_example_plans_and_dispatches() {
    let p = Project::example();
    p.ok(&["validate"]);
    p.ok(&[
        "--now",
        PLAN_NOW,
        "plan",
        "black-friday-2026",
        "payment-reminder",
    ]);
    let msgs = p.messages();
    assert_eq!(msgs.len(), 62 + 21);
    let run = p.run(&["--now", RUN_NOW, "run", "--once"]);
    // Sydney's and Tokyo's 08:00 were more than 12 h before RUN_NOW: expired, exit 1.
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "Olá Ana! Chegou a Black Friday: 40% de desconto em tudo com o cupom ANA-VIP"
        ),
        "{}",
        run.stdout
    );
    let msgs = p.messages();
    let bf: Vec<Value> = msgs
        .iter()
        .filter(|m| m["campaign"] == "black-friday-2026")
        .cloned()
        .collect();
    assert_eq!(count_state(&bf, "expired"), 7, "Sydney (4) and Tokyo (3)");
    assert!(count_state(&bf, "sent") > 30);
    for m in bf.iter().filter(|m| m["state"] == "sent") {
        assert!(
            m["due_at"].as_str().unwrap() <= RUN_NOW,
            "sent before due: {m}"
        );
        assert!(m["provider_id"].as_str().unwrap().starts_with("console-"));
    }
    // Nothing of the Monday reminder is due yet.
    assert_eq!(
        count_state(
            &msgs
                .iter()
                .filter(|m| m["campaign"] == "payment-reminder")
                .cloned()
                .collect::<Vec<_>>(),
            "pending"
        ),
        21
    );
}

#[test]
fn replan_never_duplicates_and_never_resends() {
    let p = one_zone_project(21);
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    let run_now = "2026-11-30T15:00:00Z";
    p.ok(&["--now", run_now, "run"]);
    let first = p.read("outbox.jsonl");
    assert_eq!(first.lines().count(), 21);
    let again = p.ok(&["--now", run_now, "plan", "c"]);
    assert!(
        again
            .stderr
            .contains("0 new, 0 updated, 0 unchanged, 21 kept"),
        "{}",
        again.stderr
    );
    p.ok(&["--now", run_now, "run"]);
    assert_eq!(
        p.read("outbox.jsonl"),
        first,
        "a sent message was sent again"
    );
    assert_eq!(p.messages().len(), 21);
    // Every outbox line carries a distinct, stable message id.
    let ids: std::collections::HashSet<String> = first
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 21);
}

#[test]
fn replan_updates_pending_and_cancels_removed_recipients() {
    let p = Project::example();
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "payment-reminder"]);
    let lines: Vec<String> = p
        .read("audiences/invoices.jsonl")
        .lines()
        .map(str::to_owned)
        .collect();
    p.file("audiences/invoices.jsonl", &(lines[..20].join("\n") + "\n"));
    let o = p.ok(&["--now", PLAN_NOW, "plan", "payment-reminder"]);
    assert!(
        o.stderr.contains("0 new, 0 updated, 20 unchanged") && o.stderr.contains("1 cancelled"),
        "{}",
        o.stderr
    );
    assert_eq!(count_state(&p.messages(), "cancelled"), 1);
}

#[test]
fn preview_json_carries_the_spec_fields() {
    let p = Project::example();
    let o = p.ok(&[
        "--now",
        PLAN_NOW,
        "--format",
        "json",
        "preview",
        "black-friday-2026",
        "--recipient",
        "c001",
        "--recipient",
        "c024",
    ]);
    let lines = o.json_lines();
    assert_eq!(lines.len(), 2);
    let ana = &lines[0];
    for key in [
        "campaign",
        "recipient",
        "channel",
        "zone",
        "occurrence",
        "send_at",
        "send_at_local",
        "reasons",
        "body",
    ] {
        assert!(ana.get(key).is_some(), "missing {key} in {ana}");
    }
    assert_eq!(ana["campaign"], "black-friday-2026");
    assert_eq!(ana["recipient"], "c001");
    assert_eq!(ana["channel"], "whatsapp");
    assert_eq!(ana["zone"], "America/Sao_Paulo");
    assert_eq!(ana["occurrence"], 0);
    assert_eq!(ana["send_at"], "2026-11-27T11:00:00Z");
    assert_eq!(ana["send_at_local"], "2026-11-27T08:00:00-03:00");
    assert_eq!(ana["reasons"], serde_json::json!(["quiet_hours"]));
    // Lisbon: 07:30 local → 08:00 WET (UTC+0).
    let ines = &lines[1];
    assert_eq!(ines["zone"], "Europe/Lisbon");
    assert_eq!(ines["send_at"], "2026-11-27T08:00:00Z");
    assert_eq!(ines["send_at_local"], "2026-11-27T08:00:00+00:00");
    assert!(
        ines["body"]
            .as_str()
            .unwrap()
            .starts_with("Olá Inês! A Black Friday chegou")
    );
}

#[test]
fn preview_touches_no_database() {
    let p = Project::example();
    p.ok(&["--now", PLAN_NOW, "preview", "payment-reminder"]);
    assert!(!p.path().join("disparo.db").exists());
}

#[test]
fn text_channels_are_not_html_escaped() {
    let p = Project::empty();
    p.file(
        "campaigns/c.yaml",
        "channel: outbox\ntemplate: t\naudience: a.csv\n",
    )
    .file("templates/t.hbs", "{{show}} <3 \"quoted\" & 'single'")
    .file("a.csv", "id,phone,show\n1,+5511999990000,Tom & Jerry\n");
    let o = p.ok(&["--now", PLAN_NOW, "--format", "json", "preview", "c"]);
    assert_eq!(
        o.json_lines()[0]["body"],
        "Tom & Jerry <3 \"quoted\" & 'single'"
    );
}

#[test]
fn recipient_without_zone_falls_back_to_campaign_then_project() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: Asia/Tokyo\n")
        .file("campaigns/a.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-01T10:00, timezone: Europe/Lisbon }\n")
        .file("campaigns/b.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-01T10:00 }\n")
        .file("templates/t.hbs", "hi")
        .file("a.csv", "id,phone,timezone\n1,+5511999990000,\n2,+5511999990001,America/New_York\n");
    let a = p
        .ok(&["--now", PLAN_NOW, "--format", "json", "preview", "a"])
        .json_lines();
    assert_eq!(
        (a[0]["zone"].as_str(), a[0]["send_at"].as_str()),
        (Some("Europe/Lisbon"), Some("2026-12-01T10:00:00Z"))
    );
    assert_eq!(a[1]["send_at"], "2026-12-01T15:00:00Z");
    let b = p
        .ok(&["--now", PLAN_NOW, "--format", "json", "preview", "b"])
        .json_lines();
    assert_eq!(
        (b[0]["zone"].as_str(), b[0]["send_at"].as_str()),
        (Some("Asia/Tokyo"), Some("2026-12-01T01:00:00Z"))
    );
}

/// One class of bad input: the files, the command, and what the error must name.
struct Bad {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    expect: &'static [&'static str],
}

const GOOD_TEMPLATE: (&str, &str) = ("templates/t.hbs", "Oi {{first_name}}");
const GOOD_AUDIENCE: (&str, &str) = (
    "a.csv",
    "id,first_name,phone,timezone\n1,Ana,+5511999990000,America/Sao_Paulo\n2,Bia,+5511999990001,America/Sao_Paulo\n",
);

const BAD_INPUTS: &[Bad] = &[
    Bad {
        name: "malformed YAML",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: t\naudience: a.csv\nschedule: { at: [\n",
            ),
            GOOD_TEMPLATE,
            GOOD_AUDIENCE,
        ],
        expect: &["campaigns/c.yaml:"],
    },
    Bad {
        name: "unknown key",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: t\naudience: a.csv\nschedule:\n  quiet_hour: { start: \"21:00\", end: \"08:00\" }\n",
            ),
            GOOD_TEMPLATE,
            GOOD_AUDIENCE,
        ],
        expect: &["campaigns/c.yaml:5", "quiet_hour"],
    },
    Bad {
        name: "unknown zone in campaign",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: t\naudience: a.csv\nschedule:\n  timezone: America/Sao_Paolo\n",
            ),
            GOOD_TEMPLATE,
            GOOD_AUDIENCE,
        ],
        expect: &[
            "campaigns/c.yaml:5",
            "America/Sao_Paolo",
            "schedule.timezone",
        ],
    },
    Bad {
        name: "unknown zone in audience row",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: t\naudience: a.csv\n",
            ),
            GOOD_TEMPLATE,
            (
                "a.csv",
                "id,first_name,phone,timezone\n1,Ana,+5511999990000,America/Sao_Paulo\n2,Bia,+5511999990001,Mars/Olympus\n",
            ),
        ],
        expect: &["a.csv:3", "row 2", "timezone", "Mars/Olympus"],
    },
    Bad {
        name: "missing template variable",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: t\naudience: a.csv\n",
            ),
            ("templates/t.hbs", "Oi {{first_name}}, {{coupon}}"),
            GOOD_AUDIENCE,
        ],
        expect: &["a.csv:2", "row 1", "coupon"],
    },
    Bad {
        name: "missing template",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: nope\naudience: a.csv\n",
            ),
            GOOD_TEMPLATE,
            GOOD_AUDIENCE,
        ],
        expect: &["campaigns/c.yaml:2", "nope", "templates/nope.hbs"],
    },
    Bad {
        name: "unreadable audience",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: t\naudience: missing.csv\n",
            ),
            GOOD_TEMPLATE,
        ],
        expect: &["campaigns/c.yaml:3", "missing.csv"],
    },
    Bad {
        name: "duplicate recipient id",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: t\naudience: a.csv\n",
            ),
            GOOD_TEMPLATE,
            (
                "a.csv",
                "id,first_name,phone\n1,Ana,+5511999990000\n1,Bia,+5511999990001\n",
            ),
        ],
        expect: &["a.csv:3", "row 2", "duplicate recipient id"],
    },
    Bad {
        name: "unknown channel",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: telegram\ntemplate: t\naudience: a.csv\n",
            ),
            GOOD_TEMPLATE,
            GOOD_AUDIENCE,
        ],
        expect: &["campaigns/c.yaml:1", "telegram", "console"],
    },
    Bad {
        name: "invalid phone",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: t\naudience: a.csv\n",
            ),
            GOOD_TEMPLATE,
            ("a.csv", "id,first_name,phone\n1,Ana,11999990000\n"),
        ],
        expect: &["a.csv:2", "phone", "E.164"],
    },
    Bad {
        name: "template syntax error",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: t\naudience: a.csv\n",
            ),
            ("templates/t.hbs", "Oi {{#if first_name}}x\n"),
            GOOD_AUDIENCE,
        ],
        expect: &["templates/t.hbs:", "syntax"],
    },
    Bad {
        name: "quiet window too long",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: t\naudience: a.csv\nschedule:\n  quiet_hours: { start: \"08:00\", end: \"06:00\" }\n",
            ),
            GOOD_TEMPLATE,
            GOOD_AUDIENCE,
        ],
        expect: &["campaigns/c.yaml:5", "20 h"],
    },
    Bad {
        name: "bad duration",
        files: &[
            (
                "campaigns/c.yaml",
                "channel: console\ntemplate: t\naudience: a.csv\nschedule:\n  expire_after: 12 hours\n",
            ),
            GOOD_TEMPLATE,
            GOOD_AUDIENCE,
        ],
        expect: &["campaigns/c.yaml:5", "12 hours"],
    },
];

#[test]
fn every_class_of_bad_input_is_named_refused_and_stores_nothing() {
    for bad in BAD_INPUTS {
        let p = Project::empty();
        for (f, c) in bad.files {
            p.file(f, c);
        }
        for cmd in [&["validate"][..], &["--now", PLAN_NOW, "plan", "c"][..]] {
            let o = p.run(cmd);
            assert_eq!(
                o.code, 2,
                "{}: disparo {cmd:?} exit {} stderr:\n{}",
                bad.name, o.code, o.stderr
            );
            for needle in bad.expect {
                assert!(
                    o.stderr.contains(needle),
                    "{}: disparo {cmd:?} stderr lacks {needle:?}:\n{}",
                    bad.name,
                    o.stderr
                );
            }
            assert!(
                o.stderr.contains("hint:"),
                "{}: no hint:\n{}",
                bad.name,
                o.stderr
            );
            assert!(
                !o.stderr.contains("panicked"),
                "{}: panic:\n{}",
                bad.name,
                o.stderr
            );
        }
        assert!(
            p.messages().is_empty(),
            "{}: something was stored",
            bad.name
        );
    }
}

#[test]
fn skip_invalid_stores_bad_rows_as_skipped() {
    let p = Project::empty();
    p.file(
        "campaigns/c.yaml",
        "channel: console\ntemplate: t\naudience: a.csv\n",
    )
    .file("templates/t.hbs", "Oi {{first_name}}")
    .file(
        "a.csv",
        "id,first_name,phone\n1,Ana,+5511999990000\n2,Bia,not-a-phone\n",
    );
    p.expect(2, &["--now", PLAN_NOW, "plan", "c"]);
    assert!(p.messages().is_empty());
    let o = p.ok(&["--now", PLAN_NOW, "plan", "c", "--skip-invalid"]);
    assert!(
        o.stderr.contains("2 new") && o.stderr.contains("1 skipped"),
        "{}",
        o.stderr
    );
    let msgs = p.messages();
    let skipped = msgs.iter().find(|m| m["recipient"] == "2").unwrap();
    assert_eq!(skipped["state"], "skipped");
    assert!(skipped["last_error"].as_str().unwrap().contains("phone"));
}

#[test]
fn suppressed_addresses_are_skipped_at_plan_and_at_dispatch() {
    let p = Project::example();
    // Normalised: spaces and punctuation do not matter.
    p.ok(&["suppress", "add", "+55 11 92601-8159"]);
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "black-friday-2026"]);
    let ana = p
        .messages()
        .into_iter()
        .find(|m| m["recipient"] == "c001")
        .unwrap();
    assert_eq!(ana["state"], "skipped");
    // Suppressed after planning: honoured at dispatch.
    let joao = p
        .messages()
        .into_iter()
        .find(|m| m["recipient"] == "c002")
        .unwrap();
    p.ok(&["suppress", "add", joao["address"].as_str().unwrap()]);
    p.run(&["--now", RUN_NOW, "run"]);
    let joao = p
        .messages()
        .into_iter()
        .find(|m| m["recipient"] == "c002")
        .unwrap();
    assert_eq!(joao["state"], "skipped");
    let list = p.ok(&["--format", "json", "suppress", "list"]).json_lines();
    assert_eq!(list.len(), 2);
}

#[test]
fn pause_resume_and_cancel() {
    let p = one_zone_project(21);
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    p.ok(&["pause", "c"]);
    let o = p.ok(&["--now", "2026-11-30T15:00:00Z", "run"]);
    assert!(o.stderr.contains("run: 0 sent"), "{}", o.stderr);
    p.ok(&["resume", "c"]);
    p.ok(&["--now", "2026-11-30T15:00:00Z", "run", "--limit", "5"]);
    assert_eq!(count_state(&p.messages(), "sent"), 5);
    p.ok(&["cancel", "c"]);
    assert_eq!(count_state(&p.messages(), "cancelled"), 16);
    p.expect(2, &["resume", "c"]);
}

#[test]
fn dispatch_reapplies_quiet_hours_and_expiry() {
    // Planned for 08:00 in Kolkata on Monday; a run late on Monday UTC finds Tuesday 04:30
    // there: deferred to 08:00, not sent at night. Sydney's 08:00 is over a day late: expired.
    let p = Project::example();
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "payment-reminder"]);
    p.run(&["--now", "2026-11-30T23:00:00Z", "run"]);
    let msgs = p.messages();
    let kolkata: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["zone"] == "Asia/Kolkata")
        .collect();
    assert!(!kolkata.is_empty());
    for m in kolkata {
        assert_eq!(m["state"], "pending", "{m}");
        assert_eq!(m["due_at"], "2026-12-01T02:30:00Z", "{m}");
        assert!(
            m["reasons"].as_str().unwrap().contains("quiet_hours"),
            "{m}"
        );
    }
    for m in msgs.iter().filter(|m| m["zone"] == "Australia/Sydney") {
        assert_eq!(m["state"], "expired", "{m}");
    }
}

/// A project with `n` recipients in São Paulo and an outbox channel, due Monday 2026-11-30 09:00.
fn one_zone_project(n: usize) -> Project {
    let p = Project::empty();
    let mut csv = String::from("id,first_name,phone\n");
    for i in 0..n {
        csv.push_str(&format!("r{i},Name {i},+55119{:08}\n", 10_000_000 + i));
    }
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file(
            "campaigns/c.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n",
        )
        .file("templates/t.hbs", "Oi {{first_name}}\n")
        .file("a.csv", &csv);
    p
}

#[test]
fn late_one_shot_follows_the_late_policy() {
    let p = Project::empty();
    let campaign = |late: &str| {
        format!(
            "channel: console\ntemplate: t\naudience: a.csv\nschedule: {{ at: 2026-11-20T10:00, timezone: America/Sao_Paulo, late: {late} }}\n"
        )
    };
    p.file("templates/t.hbs", "hi")
        .file("a.csv", "id,phone\n1,+5511999990000\n");
    p.file("campaigns/next.yaml", &campaign("next_day"))
        .file("campaigns/now.yaml", &campaign("send_now"))
        .file("campaigns/skip.yaml", &campaign("skip"));
    // Plan on 2026-11-24 at 15:00 São Paulo: the 20th at 10:00 has passed.
    let now = "2026-11-24T18:00:00Z";
    let next = &p
        .ok(&["--now", now, "--format", "json", "preview", "next"])
        .json_lines()[0];
    assert_eq!(next["send_at"], "2026-11-25T13:00:00Z");
    assert_eq!(next["reasons"], serde_json::json!(["late"]));
    let send_now = &p
        .ok(&["--now", now, "--format", "json", "preview", "now"])
        .json_lines()[0];
    assert_eq!(send_now["send_at"], now);
    let skip = &p
        .ok(&["--now", now, "--format", "json", "preview", "skip"])
        .json_lines()[0];
    assert!(skip["skipped"].as_str().unwrap().starts_with("late"));
}

#[test]
fn database_from_a_newer_version_is_refused_unchanged() {
    let p = Project::example();
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "payment-reminder"]);
    let db = p.path().join("disparo.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute("INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (99, 'future', '2030-01-01', '0')", []).unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let o = p.expect(4, &["status"]);
    assert!(
        o.stderr.contains("newer disparo") && o.stderr.contains("99"),
        "{}",
        o.stderr
    );
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn corrupt_or_unreachable_database_is_a_clear_error() {
    let p = Project::example();
    p.bytes(
        "disparo.db",
        b"this is not a database at all, just some text that is long enough",
    );
    let o = p.expect(4, &["--now", PLAN_NOW, "plan", "payment-reminder"]);
    assert!(
        o.stderr.contains("not a disparo database") || o.stderr.contains("not a database"),
        "{}",
        o.stderr
    );
    let o = p.expect(
        4,
        &[
            "--db",
            "no/such/dir/x.db",
            "--now",
            PLAN_NOW,
            "plan",
            "payment-reminder",
        ],
    );
    assert!(
        o.stderr.contains("does not exist") && o.stderr.contains("hint:"),
        "{}",
        o.stderr
    );
}

#[test]
fn bad_now_is_invalid_input() {
    let p = Project::example();
    let o = p.expect(2, &["--now", "tomorrow", "status"]);
    assert!(
        o.stderr.contains("--now") && o.stderr.contains("RFC 3339"),
        "{}",
        o.stderr
    );
}

/// São Paulo, Lisbon, New York and Sydney around New York's spring-forward night
/// (2026-03-08 02:00 EST → 03:00 EDT), checked field by field against hand-computed answers.
#[test]
fn dst_weekend_across_four_zones_preview_json() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file(
            "a.csv",
            "id,phone,timezone\nsp,+5511999990000,America/Sao_Paulo\nlis,+351912345678,Europe/Lisbon\nny,+12125550100,America/New_York\nsyd,+61412345678,Australia/Sydney\n",
        )
        .file("templates/t.hbs", "Bom dia")
        // Daily 02:30 wall time: inside New York's gap on the 8th.
        .file("campaigns/daily.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { cron: \"30 2 * * *\", start: 2026-03-07T00:00, count: 3 }\n")
        // One-shot at 02:30 on the gap day, quiet hours until 03:00: wall clock first, then rule 2.
        .file("campaigns/gap.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-03-08T02:30, quiet_hours: { start: \"23:00\", end: \"02:45\" } }\n");
    let now = "2026-03-06T00:00:00Z";
    let daily = p
        .ok(&["--now", now, "--format", "json", "preview", "daily"])
        .json_lines();
    let got: Vec<(String, u64, String, String)> = daily
        .iter()
        .map(|l| {
            (
                l["recipient"].as_str().unwrap().to_owned(),
                l["occurrence"].as_u64().unwrap(),
                l["send_at"].as_str().unwrap().to_owned(),
                l["send_at_local"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("sp", 0, "2026-03-07T05:30:00Z", "2026-03-07T02:30:00-03:00"),
        ("sp", 1, "2026-03-08T05:30:00Z", "2026-03-08T02:30:00-03:00"),
        ("sp", 2, "2026-03-09T05:30:00Z", "2026-03-09T02:30:00-03:00"),
        (
            "lis",
            0,
            "2026-03-07T02:30:00Z",
            "2026-03-07T02:30:00+00:00",
        ),
        (
            "lis",
            1,
            "2026-03-08T02:30:00Z",
            "2026-03-08T02:30:00+00:00",
        ),
        (
            "lis",
            2,
            "2026-03-09T02:30:00Z",
            "2026-03-09T02:30:00+00:00",
        ),
        ("ny", 0, "2026-03-07T07:30:00Z", "2026-03-07T02:30:00-05:00"),
        // 02:30 does not exist on the 8th: read with the offset before the gap = 03:30 EDT.
        ("ny", 1, "2026-03-08T07:30:00Z", "2026-03-08T03:30:00-04:00"),
        ("ny", 2, "2026-03-09T06:30:00Z", "2026-03-09T02:30:00-04:00"),
        (
            "syd",
            0,
            "2026-03-06T15:30:00Z",
            "2026-03-07T02:30:00+11:00",
        ),
        (
            "syd",
            1,
            "2026-03-07T15:30:00Z",
            "2026-03-08T02:30:00+11:00",
        ),
        (
            "syd",
            2,
            "2026-03-08T15:30:00Z",
            "2026-03-09T02:30:00+11:00",
        ),
    ];
    let want: Vec<(String, u64, String, String)> = want
        .iter()
        .map(|(r, o, u, l)| (r.to_string(), *o, u.to_string(), l.to_string()))
        .collect();
    assert_eq!(got, want);
    for l in &daily {
        assert_eq!(l["campaign"], "daily");
        assert_eq!(l["channel"], "console");
        assert_eq!(l["reasons"], serde_json::json!([]));
        assert_eq!(l["body"], "Bom dia");
    }
    let gap = p
        .ok(&["--now", now, "--format", "json", "preview", "gap"])
        .json_lines();
    let ny = gap.iter().find(|l| l["recipient"] == "ny").unwrap();
    // 02:30 is quiet → 02:45 wall time, still in the gap → 07:45Z (03:45 EDT).
    assert_eq!(ny["send_at"], "2026-03-08T07:45:00Z");
    assert_eq!(ny["send_at_local"], "2026-03-08T03:45:00-04:00");
    assert_eq!(ny["reasons"], serde_json::json!(["quiet_hours"]));
    let syd = gap.iter().find(|l| l["recipient"] == "syd").unwrap();
    assert_eq!(syd["send_at"], "2026-03-07T15:45:00Z");
    assert_eq!(syd["zone"], "Australia/Sydney");
}

#[test]
fn replanning_extends_the_horizon_without_duplicating_occurrences() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: Europe/Lisbon\n")
        .file("campaigns/weekly.yaml", "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { cron: \"0 9 * * MON\", start: 2026-11-23T00:00 }\n")
        .file("templates/t.hbs", "Olá {{first_name}}")
        .file("a.csv", "id,first_name,phone\n1,Inês,+351912345678\n2,Rui,+351912345679\n");
    let now = "2026-11-22T12:00:00Z";
    let o = p.ok(&["--now", now, "plan", "weekly", "--horizon", "14d"]);
    assert!(
        o.stderr.contains("4 new"),
        "2 recipients × Mondays 23 and 30 Nov: {}",
        o.stderr
    );
    let o = p.ok(&["--now", now, "plan", "weekly", "--horizon", "30d"]);
    assert!(
        o.stderr.contains("6 new, 0 updated, 4 unchanged"),
        "adds 7, 14 and 21 Dec: {}",
        o.stderr
    );
    let msgs = p.messages();
    assert_eq!(msgs.len(), 10);
    let mut keys: Vec<(String, u64)> = msgs
        .iter()
        .map(|m| {
            (
                m["recipient"].as_str().unwrap().to_owned(),
                m["occurrence"].as_u64().unwrap(),
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 10, "an occurrence was stored twice");
    let ines: Vec<&str> = msgs
        .iter()
        .filter(|m| m["recipient"] == "1")
        .map(|m| m["planned_local"].as_str().unwrap())
        .collect();
    assert_eq!(
        ines,
        [
            "2026-11-23T09:00:00+00:00",
            "2026-11-30T09:00:00+00:00",
            "2026-12-07T09:00:00+00:00",
            "2026-12-14T09:00:00+00:00",
            "2026-12-21T09:00:00+00:00"
        ]
    );
}

#[test]
fn frequency_cap_across_campaigns_defers_at_dispatch() {
    let p = Project::empty();
    let campaign = |at: &str| {
        format!(
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: {{ at: {at}, expire_after: 3d }}\nfrequency_cap: {{ max: 1, per: 1d }}\n"
        )
    };
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("campaigns/first.yaml", &campaign("2026-11-30T09:00"))
        .file("campaigns/second.yaml", &campaign("2026-11-30T15:00"))
        .file("templates/t.hbs", "oi")
        .file("a.csv", "id,phone\n1,+5511999990000\n");
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "first", "second"]);
    p.ok(&["--now", "2026-11-30T19:00:00Z", "run"]);
    let msgs = p.messages();
    let first = msgs.iter().find(|m| m["campaign"] == "first").unwrap();
    let second = msgs.iter().find(|m| m["campaign"] == "second").unwrap();
    assert_eq!(first["state"], "sent");
    assert_eq!(second["state"], "pending", "{second}");
    assert!(
        second["reasons"].as_str().unwrap().contains("cap"),
        "{second}"
    );
    // One day after the first send (12:00Z + 1 d): allowed again.
    let first_sent = p.ok(&["--format", "json", "status", "first"]).json_lines()[0]["last_sent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        first_sent.starts_with("2026-11-30T19:00:00"),
        "{first_sent}"
    );
    assert!(
        second["due_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-01T19:00:00"),
        "{second}"
    );
    assert_eq!(p.read("outbox.jsonl").lines().count(), 1);
}

/// The run claims its next batch while the current one is still being sent, so the store's
/// record of recent sends can lag behind the run's own sends: the cap must count those too,
/// exactly once each, across batches.
#[test]
fn frequency_cap_holds_across_overlapping_batches() {
    for batch in ["1", "2", "5"] {
        let p = Project::empty();
        let mut csv = String::from("id,phone\n");
        for i in 0..12 {
            csv.push_str(&format!("r{i},+5511999990000\n"));
        }
        p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
            .file(
                "campaigns/c.yaml",
                "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00, expire_after: 3d }\nfrequency_cap: { max: 3, per: 1d }\n",
            )
            .file("templates/t.hbs", "oi")
            .file("a.csv", &csv);
        p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
        let o = p.ok(&["--now", "2026-11-30T19:00:00Z", "run", "--batch", batch]);
        assert!(
            o.stderr
                .contains("run: 3 sent, 0 failed, 0 retrying, 9 deferred"),
            "--batch {batch}: {}",
            o.stderr
        );
        let msgs = p.messages();
        assert_eq!(count_state(&msgs, "sent"), 3, "--batch {batch}: {msgs:#?}");
        for m in msgs.iter().filter(|m| m["state"] == "pending") {
            assert!(m["reasons"].as_str().unwrap().contains("cap"), "{m}");
        }
        assert_eq!(p.read("outbox.jsonl").lines().count(), 3);
    }
}

#[test]
fn suppress_import_reads_real_csv_with_quoted_commas() {
    let p = Project::empty();
    p.file("opt-outs.csv", "name,email,note\n\"Silva, Ana\",ANA@Example.com,\"opted out, by phone\"\nBob,bob@example.com,\n");
    p.file("phones.txt", "+55 (11) 98765-4321\n+1 212 555 0100\n");
    p.ok(&["suppress", "import", "opt-outs.csv"]);
    p.ok(&["suppress", "import", "phones.txt"]);
    let list: Vec<String> = p
        .ok(&["--format", "json", "suppress", "list"])
        .json_lines()
        .iter()
        .map(|e| e["address"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        list,
        [
            "+12125550100",
            "+5511987654321",
            "ana@example.com",
            "bob@example.com"
        ]
    );
}

#[test]
fn validate_warns_about_a_channel_secret_missing_from_the_environment() {
    let p = Project::empty();
    p.file("disparo.yaml", "channels:\n  wa: { type: whatsapp_cloud, phone_number_id: \"42\", token_env: NOT_SET_FOR_VALIDATE }\n")
        .file("campaigns/c.yaml", "channel: wa\ntemplate: t\naudience: a.csv\n")
        .file("templates/t.hbs", "---\nwhatsapp: { name: x, language: en, body: [] }\n---\nhi")
        .file("a.csv", "id,phone\n1,+5511999990000\n");
    let o = p.ok(&["validate"]);
    assert!(
        o.stderr.contains("warning:")
            && o.stderr.contains("NOT_SET_FOR_VALIDATE")
            && o.stderr.contains("hint:"),
        "{}",
        o.stderr
    );
}

/// A repeated recipient id under `--skip-invalid` is reported and stores nothing: a skipped
/// row would have the first, valid recipient's identity (campaign, recipient, occurrence 0),
/// which failed a first plan on the UNIQUE constraint and, on a re-plan, overwrote the first
/// recipient's pending message as `skipped`.
#[test]
fn a_repeated_id_with_skip_invalid_keeps_the_first_recipients_message() {
    let p = Project::empty();
    p.file(
        "campaigns/c.yaml",
        "channel: console\ntemplate: t\naudience: a.csv\n",
    )
    .file("templates/t.hbs", "Oi {{first_name}}")
    .file(
        "a.csv",
        "id,first_name,phone\n1,Ana,+5511999990000\n2,Caio,+5511999990002\n",
    );
    p.ok(&["--now", PLAN_NOW, "plan", "c"]);
    p.file(
        "a.csv",
        "id,first_name,phone\n1,Ana,+5511999990000\n1,Bia,+5511999990001\n2,Caio,+5511999990002\n",
    );
    let o = p.run(&["--now", PLAN_NOW, "plan", "c", "--skip-invalid"]);
    let msgs = p.messages();
    let ana: Vec<_> = msgs.iter().filter(|m| m["recipient"] == "1").collect();
    assert!(
        ana.iter()
            .any(|m| m["state"] == "pending" && m["address"] == "+5511999990000"),
        "exit {}: recipient 1 (Ana, valid) is no longer pending: {ana:?}\n{}",
        o.code,
        o.stderr
    );
}

/// Issue #13: a command that needs the schedule (a cron job's `run` in the wrong folder)
/// refuses with exit 2 and a hint instead of creating an empty database; only `plan` creates it.
#[test]
fn commands_refuse_a_missing_database_and_create_none() {
    let p = Project::empty();
    p.ok(&["init"]);
    for args in [
        &["run", "--once"][..],
        &["run", "--dry-run"],
        &["status"],
        &["messages"],
        &["messages", "--campaign", "welcome"],
        &["export", "welcome"],
        &["pause", "welcome"],
        &["resume", "welcome"],
        &["cancel", "welcome"],
        &["suppress", "list"],
    ] {
        let o = p.expect(2, args);
        assert!(
            o.stderr.contains("there is no database at") && o.stderr.contains("disparo plan"),
            "{args:?}: {}",
            o.stderr
        );
        assert!(
            !p.path().join("disparo.db").exists(),
            "{args:?} created a database"
        );
    }
    p.ok(&["plan", "welcome"]);
    assert!(p.path().join("disparo.db").exists());
    p.ok(&["status"]);
}

/// Issue #13: a reader that has gone away (`disparo completions bash | head`) is a quiet exit 0
/// for every command, not a panic (exit 101). The pipe's read end is closed before the child
/// starts, so every write fails: deterministic, no race with the reader.
#[test]
fn a_closed_stdout_is_a_quiet_exit_zero() {
    let p = Project::empty();
    p.ok(&["init"]);
    p.ok(&["plan", "welcome"]);
    for args in [
        &["completions", "bash"][..],
        &["man"],
        &["validate"],
        &["plan", "welcome"],
        &["preview", "welcome"],
        &["status"],
        &["messages"],
        &["export", "welcome"],
        &["--format", "json", "run", "--once"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_disparo"))
            .args(args)
            .current_dir(p.path())
            .env_remove("DISPARO_DB")
            .env_remove("DISPARO_CONFIG")
            .env_remove("DISPARO_NOW")
            .env("NO_COLOR", "1")
            .stdout(writer)
            .output()
            .expect("run disparo");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
}

/// Issue #13: tables show instants to the second, also inside a cell that says how far away
/// the instant is (`next_due`), never `…:08.61858011Z` (CSV and JSON keep milliseconds, as
/// docs/output.md says).
#[test]
fn tables_show_instants_to_the_second() {
    let p = Project::empty();
    p.ok(&["init"]);
    // No --now: the plan's instants carry the real clock's fraction of a second.
    p.ok(&["plan", "welcome"]);
    for args in [&["status"][..], &["messages"], &["suppress", "list"]] {
        let o = p.ok(args);
        let fractional = o
            .stdout
            .split(|c: char| c.is_whitespace() || c == ',')
            .any(|w| {
                let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
                w.len() > 20 && w.as_bytes().get(19) == Some(&b'.') && w.contains('T')
            });
        assert!(!fractional, "{args:?}:\n{}", o.stdout);
    }
}

/// Issue #13: re-planning an unchanged campaign reports "0 updated", not every pending message;
/// a changed template, time or address counts only the messages it changes.
#[test]
fn replanning_counts_only_the_messages_it_changes() {
    let p = Project::example();
    let plan = |args: &[&str]| {
        let o = p.ok(&[&["--format", "json", "--now", PLAN_NOW, "plan"], args].concat());
        serde_json::from_str::<Value>(o.stdout.lines().next().unwrap()).unwrap()
    };
    let first = plan(&["weekly-digest"]);
    let n = first["inserted"].as_u64().unwrap();
    assert!(n > 0, "{first}");
    let again = plan(&["weekly-digest"]);
    assert_eq!(again["updated"], 0, "{again}");
    assert_eq!(again["unchanged"], n, "{again}");
    // One recipient's address changes: one message per occurrence of that recipient changes.
    let audience = p.read("audiences/customers.csv");
    let mut lines: Vec<String> = audience.lines().map(str::to_owned).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "email")
        .expect("an email column");
    let id_col = header.iter().position(|h| *h == "id").unwrap();
    let mut cells: Vec<String> = lines[1].split(',').map(str::to_owned).collect();
    let who = cells[id_col].clone();
    cells[col] = "changed@example.com".into();
    lines[1] = cells.join(",");
    p.file("audiences/customers.csv", &(lines.join("\n") + "\n"));
    let changed = plan(&["weekly-digest"]);
    let theirs = p
        .messages()
        .iter()
        .filter(|m| m["campaign"] == "weekly-digest" && m["recipient"] == who.as_str())
        .count() as u64;
    assert!(theirs > 0);
    assert_eq!(changed["updated"], theirs, "{changed}");
    assert_eq!(changed["unchanged"], n - theirs, "{changed}");
}

/// Issue #13: `validate` prints every warning `preview` shows on a message (the same checks),
/// here an empty WhatsApp template parameter, naming the recipient.
#[test]
fn validate_shows_the_warnings_preview_shows() {
    let p = Project::example();
    let csv = p.read("audiences/customers.csv");
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    assert!(lines[1].starts_with("c001,Ana,"), "{}", lines[1]);
    lines[1] = lines[1].replacen("c001,Ana,", "c001,,", 1);
    p.file("audiences/customers.csv", &(lines.join("\n") + "\n"));
    let warning = "template parameter 1 is empty: WhatsApp rejects empty parameters";
    let pre = p.ok(&[
        "--now",
        PLAN_NOW,
        "preview",
        "black-friday-2026",
        "--recipient",
        "c001",
    ]);
    assert!(pre.stdout.contains(warning), "{}", pre.stdout);
    let v = p.ok(&["--now", PLAN_NOW, "validate", "black-friday-2026"]);
    assert!(
        v.stderr.contains(warning) && v.stderr.contains("c001"),
        "{}",
        v.stderr
    );
}

/// Issue #13: a campaign is known by its `name:` and by its file's name everywhere, as in
/// `preview` and `plan` (campaigns/black-friday.yaml is `name: black-friday-2026`). Before,
/// `status black-friday` said "run `disparo plan black-friday` first", which had been done.
#[test]
fn every_command_takes_the_campaign_file_name_too() {
    let p = Project::example();
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "black-friday"]);
    let named = |o: &harness::Output| {
        o.json_lines()
            .iter()
            .all(|l| l["campaign"] == "black-friday-2026")
    };
    let s = p.ok(&["--format", "json", "status", "black-friday"]);
    assert!(named(&s) && s.json_lines().len() == 1, "{}", s.stdout);
    let m = p.ok(&["--format", "json", "messages", "--campaign", "black-friday"]);
    assert!(named(&m) && m.json_lines().len() == 62, "{}", m.stdout);
    let e = p.ok(&["--format", "json", "export", "black-friday"]);
    assert!(named(&e) && e.json_lines().len() == 62, "{}", e.stdout);
    let r = p.ok(&[
        "--now",
        PLAN_NOW,
        "run",
        "--once",
        "--campaign",
        "black-friday",
    ]);
    assert!(r.stderr.contains("run: 0 sent"), "{}", r.stderr);
    p.ok(&["pause", "black-friday"]);
    let s = p.ok(&["--format", "json", "status", "black-friday-2026"]);
    assert_eq!(s.json_lines()[0]["status"], "paused", "{}", s.stdout);
    p.ok(&["resume", "black-friday"]);
    p.ok(&["cancel", "black-friday"]);
    let s = p.ok(&["--format", "json", "status", "black-friday-2026"]);
    assert_eq!(s.json_lines()[0]["status"], "cancelled", "{}", s.stdout);
    // A campaign that was never planned still gets the hint, with a name `plan` takes.
    let o = p.expect(2, &["status", "weekly-digest"]);
    assert!(
        o.stderr.contains("disparo plan weekly-digest"),
        "{}",
        o.stderr
    );
}

/// Issue #13: `status`'s last run never shows more per second than the channel's rate. The
/// limiter spaces starts 1/rate apart, so n sends span (n - 1)/rate; n divided by that span
/// (plus the last send's own time) showed "41/s" here on a 40/s channel. A slower machine
/// only lowers the figure: the assertion is an upper bound the limiter guarantees.
#[test]
fn status_throughput_never_exceeds_the_channel_rate() {
    let p = one_zone_project(41);
    p.file(
        "disparo.yaml",
        "timezone: America/Sao_Paulo\nchannels:\n  outbox: { type: outbox, path: outbox.jsonl, rate: 40/s }\n",
    );
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    p.ok(&["-q", "--now", "2026-11-30T15:00:00Z", "run", "--once"]);
    assert_eq!(p.read("outbox.jsonl").lines().count(), 41);
    let s = p.ok(&["--format", "json", "status", "c"]).json_lines();
    let run = &s[0]["last_run"];
    assert_eq!(run["attempts"], 41, "{run}");
    let rate = run["per_second"].as_f64().unwrap();
    assert!(rate <= 40.0, "{run}");
    let table = p.ok(&["status", "c"]).stdout;
    assert!(!table.contains("(41/s)"), "{table}");
}

/// Issue #13: what the README promises of the quick start holds. The demo's own `disparo`
/// commands (read from scripts/demo.sh, run on a copy of the example project) create the
/// `outbox.jsonl` the README names; the README installs disparo before its tour; no document
/// cites a SPEC.md, which is not in the repository (src/schedule, src/model and src/dispatch
/// comments are owned elsewhere and not checked here yet).
#[test]
fn the_readme_quick_start_holds() {
    let root = harness::repo_root();
    let demo = std::fs::read_to_string(root.join("scripts/demo.sh")).unwrap();
    let p = Project::example();
    let mut ran = 0;
    for line in demo.lines().filter(|l| l.starts_with("disparo ")) {
        let args: Vec<&str> = line
            .split_whitespace()
            .skip(1)
            .take_while(|a| !a.starts_with('>') && !a.starts_with('|'))
            .collect();
        let o = p.run(&args);
        assert!(o.code == 0 || o.code == 1, "{line}: {}", o.stderr);
        ran += 1;
    }
    assert!(ran >= 4, "{demo}");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("outbox.jsonl"));
    assert!(
        p.path().join("outbox.jsonl").is_file(),
        "the demo's commands wrote no outbox.jsonl"
    );
    let install = readme
        .find("cargo install --path .")
        .expect("an install step");
    assert!(install < readme.find("## A tour").unwrap());
    if !root.join("SPEC.md").exists() {
        let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
        for dir in ["docs", "src/cli", "src/store"] {
            let mut stack = vec![root.join(dir)];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap().flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|x| x == "md" || x == "rs") {
                        files.push(path);
                    }
                }
            }
        }
        let citing: Vec<String> = files
            .iter()
            .filter(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                text.contains("SPEC.md") || text.contains("SPEC §") || text.contains("the SPEC")
            })
            .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        assert!(
            citing.is_empty(),
            "cite a SPEC that is not here: {citing:?}"
        );
    }
}

/// Issue #13: a `;`-separated (Excel pt-BR/pt-PT) or tab-separated CSV is read, and what was
/// detected is said on stderr.
#[test]
fn semicolon_and_tab_separated_csv_are_detected_and_said() {
    let p = Project::empty();
    p.file("campaigns/c.yaml", "channel: console\ntemplate: t\naudience: a.csv\n")
        .file("campaigns/t.yaml", "channel: console\ntemplate: t\naudience: b.csv\n")
        .file("templates/t.hbs", "Oi {{first_name}}")
        .bytes(
            "a.csv",
            b"id;first_name;phone\r\n1;Jo\xc3\xa3o, o Z\xc3\xa9;+5511999990000\r\n2;Ana;+5511999990001\r\n",
        )
        .file("b.csv", "id\tfirst_name\tphone\n1\tAna\t+5511999990001\n");
    let o = p.ok(&["validate"]);
    assert!(o.stderr.contains("`;`"), "{}", o.stderr);
    let o = p.ok(&["--now", PLAN_NOW, "--format", "json", "preview", "c"]);
    assert!(o.stderr.contains("`;`"), "{}", o.stderr);
    let lines = o.json_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["body"], "Oi João, o Zé");
    let o = p.ok(&["--now", PLAN_NOW, "--format", "json", "preview", "t"]);
    assert!(o.stderr.contains("tab"), "{}", o.stderr);
    assert_eq!(o.json_lines()[0]["body"], "Oi Ana");
}

/// Issue #13: a row problem names the physical line of the file and the data row number, for
/// LF and CRLF files and after a quoted multi-line cell.
#[test]
fn row_problems_name_the_physical_line_and_the_data_row() {
    for nl in ["\n", "\r\n"] {
        let p = Project::empty();
        let csv = format!(
            "id,first_name,phone{nl}1,Ana,{nl}2,\"Bia{nl}Maria\",+5511999990001{nl}3,Caio,{nl}"
        );
        p.file(
            "campaigns/c.yaml",
            "channel: console\ntemplate: t\naudience: a.csv\n",
        )
        .file("templates/t.hbs", "Oi {{first_name}}")
        .file("a.csv", &csv);
        let o = p.expect(2, &["validate"]);
        assert!(
            o.stderr.contains("a.csv:2: row 1"),
            "{nl:?}: first data row is on line 2: {}",
            o.stderr
        );
        assert!(
            o.stderr.contains("a.csv:5: row 3"),
            "{nl:?}: third data row is on line 5 (after a 2-line cell): {}",
            o.stderr
        );
    }
}

/// Issue #13: an explicit `until` or `count` is honoured whole; the plan horizon only bounds a
/// recurring campaign that sets no end.
#[test]
fn an_explicit_until_or_count_is_planned_whole_past_the_horizon() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: Europe/Lisbon\n")
        .file("campaigns/weekly.yaml", "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { cron: \"0 9 * * MON\", start: 2026-11-23T00:00, until: 2027-03-29 }\n")
        .file("campaigns/daily.yaml", "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { cron: \"0 10 * * *\", start: 2026-11-23T00:00, count: 45 }\n")
        .file("campaigns/open.yaml", "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { cron: \"0 11 * * *\", start: 2026-11-23T00:00 }\n")
        .file("templates/t.hbs", "Olá")
        .file("a.csv", "id,phone\n1,+351912345678\n");
    let now = "2026-11-22T12:00:00Z";
    p.ok(&["--now", now, "plan", "weekly", "daily", "open"]);
    let msgs = p.messages();
    let of = |c: &str| msgs.iter().filter(|m| m["campaign"] == c).count();
    // Mondays from 23 Nov 2026 to 29 Mar 2027 inclusive: 19.
    assert_eq!(of("weekly"), 19, "until 2027-03-29");
    assert_eq!(of("daily"), 45, "count 45");
    // No end: the 30-day horizon (23 Nov .. 22 Dec 11:00 is 30 days).
    assert_eq!(of("open"), 30, "no end: bounded by --horizon 30d");
}

/// Issue #13: an absurd explicit end is refused with a clear error rather than planned.
#[test]
fn an_absurd_explicit_end_is_refused_clearly() {
    let p = Project::empty();
    p.file("campaigns/c.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { cron: \"* * * * *\", until: 2099-12-31 }\n")
        .file("templates/t.hbs", "Olá")
        .file("a.csv", "id,phone\n1,+351912345678\n");
    let o = p.expect(2, &["--now", PLAN_NOW, "plan", "c", "--dry-run"]);
    assert!(
        o.stderr.contains("schedule") && o.stderr.contains("occurrences"),
        "{}",
        o.stderr
    );
}

/// Issue #13: a move for a disallowed weekday or a blackout date, with no quiet hours, keeps the
/// local wall time on the next allowed day (not 00:00); with quiet hours, the earliest allowed
/// time (docs/time-semantics.md rule 3).
#[test]
fn a_weekday_or_blackout_move_without_quiet_hours_keeps_the_wall_time() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("a.csv", "id,phone\n1,+5511999990000\n")
        .file("templates/t.hbs", "Oi")
        // Saturday 28 Nov 10:30, weekdays only: Monday 30 Nov 10:30.
        .file("campaigns/wk.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-28T10:30, days: [mon, tue, wed, thu, fri] }\n")
        // Friday 25 Dec 10:30 blacked out: Saturday 26 Dec 10:30.
        .file("campaigns/bo.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-25T10:30, blackout_dates: [2026-12-25] }\n")
        // With quiet hours: the earliest allowed time, the end of quiet hours.
        .file("campaigns/q.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-25T10:30, blackout_dates: [2026-12-25], quiet_hours: { start: \"21:00\", end: \"08:00\" } }\n");
    let local = |c: &str| {
        p.ok(&["--now", PLAN_NOW, "--format", "json", "preview", c])
            .json_lines()[0]["send_at_local"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(local("wk"), "2026-11-30T10:30:00-03:00");
    assert_eq!(local("bo"), "2026-12-26T10:30:00-03:00");
    assert_eq!(local("q"), "2026-12-26T08:00:00-03:00");
}

/// Issue #13: the code's comments point at the project's own docs, not at a specification
/// file a user's clone does not have.
#[test]
fn source_comments_cite_the_projects_own_docs() {
    fn walk(dir: &std::path::Path, hits: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path, hits);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    // The word, not an identifier that contains it (SQLSTATE names do).
                    let cites = line
                        .split(|c: char| !c.is_alphanumeric() && c != '_')
                        .any(|w| w == "SPEC");
                    if cites {
                        hits.push(format!("{}:{}: {line}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    let mut hits = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut hits,
    );
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}

/// Issue #13: `late: next_day` is bounded by `late_until` (a wall time on the recipient's
/// clock): a move past it is skipped with the reason; and a one-shot already past for most
/// recipients is a warning in validate and preview, saying how many and what `late` does.
#[test]
fn a_late_one_shot_is_bounded_by_late_until_and_warned_about() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("a.csv", "id,phone,timezone\n1,+5511999990000,America/Sao_Paulo\n2,+5511999990001,America/Sao_Paulo\n")
        .file("templates/t.hbs", "Oi")
        .file("campaigns/bf.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-27T07:30, quiet_hours: { start: \"21:00\", end: \"08:00\" }, late: next_day, late_until: 2026-11-29T21:00 }\n");
    // Before the event: no warning, sent at 08:00.
    let o = p.ok(&["--now", PLAN_NOW, "validate"]);
    assert!(!o.stderr.contains("already passed"), "{}", o.stderr);
    // Saturday noon: Sunday 08:00 is before late_until; still a warning (2 of 2 late).
    let sat = "2026-11-28T15:00:00Z";
    let o = p.ok(&["--now", sat, "validate"]);
    assert!(
        o.stderr.contains("warning:")
            && o.stderr.contains("already passed for 2 of 2 recipient(s)")
            && o.stderr.contains("late: next_day"),
        "{}",
        o.stderr
    );
    let o = p.ok(&["--now", sat, "--format", "json", "preview", "bf"]);
    assert!(
        o.stderr.contains("already passed for 2 of 2"),
        "{}",
        o.stderr
    );
    let l = o.json_lines();
    assert_eq!(l[0]["send_at_local"], "2026-11-29T08:00:00-03:00");
    assert!(l[0].get("skipped").is_none(), "{}", l[0]);
    // Tuesday: the next allowed day is after late_until: skipped, with the reason.
    let tue = "2026-12-01T15:00:00Z";
    let l = p
        .ok(&["--now", tue, "--format", "json", "preview", "bf"])
        .json_lines();
    let reason = l[0]["skipped"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("late_until 2026-11-29T21:00"), "{}", l[0]);
    p.ok(&["--now", tue, "plan", "bf"]);
    let msgs = p.messages();
    assert_eq!(count_state(&msgs, "skipped"), 2, "{msgs:?}");
    // An offset is refused, as for `at`.
    p.file("campaigns/bf.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-27T07:30, late_until: 2026-11-29T21:00-03:00 }\n");
    let o = p.expect(2, &["validate"]);
    assert!(o.stderr.contains("schedule.late_until"), "{}", o.stderr);
}

/// Issue #13: the shipped Black Friday campaign, validated after the event, warns and skips
/// rather than sending a Friday offer days later with "ok".
#[test]
fn the_shipped_black_friday_is_not_sent_days_after_the_event() {
    let p = Project::example();
    let o = p.ok(&[
        "--now",
        "2026-12-02T12:00:00Z",
        "validate",
        "black-friday-2026",
    ]);
    assert!(
        o.stderr
            .contains("already passed for 62 of 62 recipient(s)")
            && o.stderr.contains("62 messages (62 skipped)"),
        "{}",
        o.stderr
    );
    let l = p
        .ok(&[
            "--now",
            "2026-12-02T12:00:00Z",
            "--format",
            "json",
            "preview",
            "black-friday-2026",
        ])
        .json_lines();
    assert_eq!(l.len(), 62);
    assert!(l.iter().all(|m| m["skipped"].is_string()), "{:?}", l[0]);
}

/// Issue #13: a blank `timezone` is said per recipient and counted in the forecast; with
/// `zone_from_phone: true` a country with one zone gives it (+44), one with several does not
/// (+55, +351), and a recipient's own zone always wins.
#[test]
fn a_blank_timezone_is_said_and_may_come_from_the_phone() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("a.csv", "id,phone,timezone\nuk,+447700900123,\nbr,+5511999990000,\npt,+351912345678,\njp,+447700900124,Asia/Tokyo\n")
        .file("templates/t.hbs", "Oi")
        .file("campaigns/c.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-04T10:00 }\n")
        .file("campaigns/g.yaml", "channel: console\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-04T10:00, zone_from_phone: true }\n");
    let o = p.ok(&["--now", PLAN_NOW, "preview", "c"]);
    assert_eq!(
        o.stdout.matches("zone: default (blank timezone)").count(),
        3,
        "{}",
        o.stdout
    );
    assert!(
        o.stderr
            .contains("3 recipient(s) with no timezone got America/Sao_Paulo"),
        "{}",
        o.stderr
    );
    let l = p
        .ok(&[
            "--now",
            PLAN_NOW,
            "--format",
            "json",
            "preview",
            "g",
            "--forecast",
        ])
        .json_lines();
    let by = |id: &str| l.iter().find(|m| m["recipient"] == id).unwrap().clone();
    assert_eq!(by("uk")["zone"], "Europe/London");
    assert_eq!(by("uk")["zone_note"], "zone Europe/London from +44");
    assert_eq!(by("uk")["send_at"], "2026-12-04T10:00:00Z");
    assert_eq!(by("br")["zone"], "America/Sao_Paulo");
    assert_eq!(by("br")["zone_note"], "zone: default (blank timezone)");
    assert_eq!(by("pt")["zone"], "America/Sao_Paulo");
    assert_eq!(by("jp")["zone"], "Asia/Tokyo");
    assert!(by("jp").get("zone_note").is_none());
    let f = &l.last().unwrap()["forecast"];
    assert_eq!(
        (f["zone_fallback"].as_u64(), f["zone_from_phone"].as_u64()),
        (Some(2), Some(1))
    );
    let o = p.ok(&["--now", PLAN_NOW, "preview", "g"]);
    assert!(
        o.stdout.contains("zone Europe/London from +44"),
        "{}",
        o.stdout
    );
}

/// Issue #13: two recipient ids with the same normalised address are a warning in validate,
/// preview and plan naming both rows; both are planned (ids are the identity).
#[test]
fn duplicate_addresses_are_reported_with_both_rows() {
    let p = Project::empty();
    p.file(
        "a.csv",
        "id,phone\nana,+55 11 99999-0000\nbia,+5511999990001\nana2,+5511999990000\n",
    )
    .file("templates/t.hbs", "Oi")
    .file(
        "campaigns/c.yaml",
        "channel: console\ntemplate: t\naudience: a.csv\n",
    );
    let want = |s: &str| {
        assert!(
            s.contains("warning:")
                && s.contains("row 3 (ana2)")
                && s.contains("as row 1:")
                && s.contains("+5511999990000"),
            "{s}"
        )
    };
    want(&p.ok(&["--now", PLAN_NOW, "validate"]).stderr);
    want(&p.ok(&["--now", PLAN_NOW, "preview", "c"]).stderr);
    want(&p.ok(&["--now", PLAN_NOW, "plan", "c", "--dry-run"]).stderr);
    want(&p.ok(&["--now", PLAN_NOW, "plan", "c"]).stderr);
    assert_eq!(p.messages().len(), 3);
}

/// Issue #13: `audience: { path, delimiter }` overrides the detection; the separator used is a
/// printed note of validate and preview.
#[test]
fn the_audience_delimiter_can_be_set_and_is_said() {
    let p = Project::empty();
    p.file("a.csv", "id|first_name|phone\n1|Ana|+5511999990000\n")
        .file("b.csv", "id;first_name;phone\n1;Bia;+5511999990001\n")
        .file("templates/t.hbs", "Oi {{first_name}}")
        .file(
            "campaigns/c.yaml",
            "channel: console\ntemplate: t\naudience: { path: a.csv, delimiter: \"|\" }\n",
        )
        .file(
            "campaigns/d.yaml",
            "channel: console\ntemplate: t\naudience: b.csv\n",
        );
    let o = p.ok(&["--now", PLAN_NOW, "validate"]);
    assert!(
        o.stderr
            .contains("note: a.csv: columns separated by `|`, as the campaign's `delimiter` says"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(
            "note: b.csv: columns separated by `;` (semicolon), detected from the header line"
        ),
        "{}",
        o.stderr
    );
    let o = p.ok(&["--now", PLAN_NOW, "--format", "json", "preview", "c"]);
    assert!(o.stderr.contains("note: a.csv"), "{}", o.stderr);
    assert_eq!(o.json_lines()[0]["body"], "Oi Ana");
    p.file(
        "campaigns/c.yaml",
        "channel: console\ntemplate: t\naudience: { path: a.csv, delimiter: \"||\" }\n",
    );
    let o = p.expect(2, &["validate", "c"]);
    assert!(
        o.stderr.contains("campaigns/c.yaml:3") && o.stderr.contains("audience.delimiter"),
        "{}",
        o.stderr
    );
}

/// Issue #18: past the first 65,536 recipients the repeated-address check and the id check
/// move to scratch files in TMPDIR. Repeats are still found exactly, named with both rows in
/// row order whichever side of the move they fall on, an id repeated late is still refused,
/// and no scratch file is left behind.
#[test]
fn repeats_are_found_past_the_in_memory_part_and_no_scratch_file_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Project::empty().env("TMPDIR", tmp.path().to_str().unwrap());
    let rows = 70_000;
    let mut csv = String::from("id,phone\n");
    for row in 1..=rows {
        let phone = match row {
            10 => 5_511_900_000_002_u64, // repeats row 2, before the move
            68_000 => 5_511_900_000_003, // repeats row 3, after it
            69_000 => 5_511_900_067_000, // repeats row 67,000: both after it
            n => 5_511_900_000_000 + n,
        };
        csv.push_str(&format!("C{row:06},+{phone}\n"));
    }
    p.file("a.csv", &csv).file("templates/t.hbs", "Oi").file(
        "campaigns/c.yaml",
        "channel: console\ntemplate: t\naudience: a.csv\n",
    );
    let o = p.ok(&["--now", PLAN_NOW, "validate"]);
    let at = |needle: &str| {
        o.stderr
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{}", o.stderr))
    };
    let (a, b, c) = (
        at("row 10 (C000010) has the same phone as row 2: +5511900000002"),
        at("row 68000 (C068000) has the same phone as row 3: +5511900000003"),
        at("row 69000 (C069000) has the same phone as row 67000: +5511900067000"),
    );
    assert!(a < b && b < c, "in row order:\n{}", o.stderr);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "scratch files left"
    );

    // An id out of order late reads the in-order ids back from their scratch file.
    csv.push_str("C000003,+5511911111111\n");
    p.file("a.csv", &csv);
    let o = p.expect(2, &["--now", PLAN_NOW, "validate"]);
    assert!(
        o.stderr.contains("row 70001") && o.stderr.contains("duplicate recipient id \"C000003\""),
        "{}",
        o.stderr
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "scratch files left"
    );
}

/// An audience that breaks past its start (a JSON array with a syntax error) still has the
/// repeated addresses of the recipients read before the break reported, like the other
/// audience-wide facts: they were reported as they came before issue #18 settled them at the
/// audience's end.
#[test]
fn repeats_before_a_broken_audience_are_still_reported() {
    let p = Project::empty();
    p.file(
        "a.json",
        r#"[{"id":"a","phone":"+5511900000001"},{"id":"b","phone":"+5511900000001"},{"id":"c","phone":"+5511900000002"},,]"#,
    )
    .file("templates/t.hbs", "Oi")
    .file(
        "campaigns/c.yaml",
        "channel: console\ntemplate: t\naudience: a.json\n",
    );
    let o = p.expect(2, &["--now", PLAN_NOW, "validate"]);
    assert!(o.stderr.contains("invalid JSON audience"), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("row 2 (b) has the same phone as row 1: +5511900000001"),
        "{}",
        o.stderr
    );
}

/// `disparo --now PLAN_NOW validate` in `p` with TMPDIR at `tmp` and every file it writes
/// limited to `kib` KiB (SIGXFSZ ignored, so a write past it fails as on a full disk).
#[cfg(unix)]
fn validate_with_file_limit(p: &Project, tmp: &std::path::Path, kib: u32) -> (i32, String) {
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_disparo"),
            "--now",
            PLAN_NOW,
            "validate",
        ])
        .current_dir(p.path())
        .env("TMPDIR", tmp)
        .env("NO_COLOR", "1")
        .env_remove("DISPARO_DB")
        .env_remove("DISPARO_CONFIG")
        .env_remove("DISPARO_NOW")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue #18: a scratch file that fails after the repeated-address check moved to disk (here
/// a file-size limit, as a quota or a full TMPDIR would) loses what was on disk: validate
/// still succeeds, keeps the repeats it found in memory, and says after which row repeats
/// may be missing instead of reporting a clean audience.
#[cfg(unix)]
#[test]
fn a_failing_scratch_file_is_said_not_hidden() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Project::empty();
    let rows = 100_000u64;
    let mut csv = String::from("id,phone\n");
    // Ids in descending order: the id check holds them in memory from row 2 on, so only the
    // address check writes scratch files.
    for row in 1..=rows {
        let phone = if row == 10 {
            5_511_900_000_002_u64
        } else {
            5_511_900_000_000 + row
        };
        csv.push_str(&format!("C{:06},+{phone}\n", rows + 1 - row));
    }
    p.file("a.csv", &csv).file("templates/t.hbs", "Oi").file(
        "campaigns/c.yaml",
        "channel: console\ntemplate: t\naudience: a.csv\n",
    );
    // 48 KiB per file: the move's ~32 KiB per part fits, the parts then overflow.
    let (code, stderr) = validate_with_file_limit(&p, tmp.path(), 48);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("row 10 (C099991) has the same phone as row 2: +5511900000002"),
        "{stderr}"
    );
    assert!(
        // 65,536 distinct addresses were in memory at row 65,537 (row 10 repeats row 2).
        stderr.contains("repeated addresses after row 65537 may be missing: a scratch file in"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "scratch files left"
    );
}

/// Issue #18: in-order ids go to a scratch file; when it fails, the id check cannot be
/// trusted, so the command stops with an error naming the directory and what to do.
#[cfg(unix)]
#[test]
fn a_failing_id_scratch_file_stops_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Project::empty();
    let mut csv = String::from("id,phone\n");
    for row in 1..=20_000u64 {
        csv.push_str(&format!("C{row:06},+{}\n", 5_511_900_000_000 + row));
    }
    p.file("a.csv", &csv).file("templates/t.hbs", "Oi").file(
        "campaigns/c.yaml",
        "channel: console\ntemplate: t\naudience: a.csv\n",
    );
    // 8 KiB: the ids' file (8 bytes each) fails at its first flush of 16 KiB.
    let (code, stderr) = validate_with_file_limit(&p, tmp.path(), 8);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("a.csv")
            && stderr.contains("cannot check the recipient ids for repeats: a scratch file in")
            && stderr.contains("point TMPDIR at another one"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "scratch files left"
    );
}
