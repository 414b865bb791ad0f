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
        assert!(
            o.stderr.contains(n),
            "stderr lacks {n:?}:\n{}",
            o.stderr
        );
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

/// A recipient removed from the audience (its pending message cancelled by the re-plan) and
/// added back is planned again, with the new content and time. Before: it stayed `cancelled`.
#[test]
fn a_recipient_removed_and_added_back_is_planned_again() {
    let both = "id,first_name,phone\na,Ana,+5511990000001\nb,Bia,+5511990000002\n";
    let p = replan_project(both, "2026-12-01T09:00");
    p.ok(&["-q", "--now", NOW, "plan", "c"]);
    p.file("a.csv", "id,first_name,phone\na,Ana,+5511990000001\n");
    p.ok(&["-q", "--now", NOW, "plan", "c"]);
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
    let both = "id,first_name,phone\na,Ana,+5511990000001\nb,Bia,+5511990000002\n";
    let p = replan_project(both, "2026-12-01T09:00");
    p.ok(&["-q", "--now", NOW, "plan", "c"]);
    p.file("a.csv", "id,first_name,phone\na,Ana,+5511990000001\n");
    p.ok(&["-q", "--now", NOW, "plan", "c"]);
    p.ok(&["-q", "cancel", "c"]);
    p.file("a.csv", both);
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
