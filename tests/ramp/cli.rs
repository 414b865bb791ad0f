//! What the commands say about a warm-up ramp: a bad entry is a located error of every
//! command that reads `disparo.yaml`, `preview`'s forecast shows the ramp days (text and
//! JSON snapshots, before and after the channel sent), `validate` mentions it, `run` says
//! what it held back and until when, and `run --dry-run` what the ramp allows now.

use crate::harness::Project;

const NOW: &str = "2026-11-26T12:00:00Z";

/// A project whose channel `wa` (an outbox) has `ramp`, with campaigns `a` (`na` recipients)
/// and `b` (`nb`), both due at once.
fn project(ramp: &str, na: usize, nb: usize) -> Project {
    let p = Project::empty();
    p.file(
        "disparo.yaml",
        &format!("timezone: UTC\nchannels:\n  wa:\n    type: outbox\n    path: out.jsonl\n    ramp: {ramp}\n"),
    )
    .file("templates/t.hbs", "Oi {{name}}\n");
    for (c, n) in [("a", na), ("b", nb)] {
        let mut csv = String::from("id,name,phone\n");
        for i in 0..n {
            csv.push_str(&format!(
                "{c}{i},N{i},+5511{:09}\n",
                900_000_000 + i + if c == "b" { 50_000 } else { 0 }
            ));
        }
        p.file(&format!("{c}.csv"), &csv).file(
            &format!("campaigns/{c}.yaml"),
            &format!("channel: wa\ntemplate: t\naudience: {c}.csv\n"),
        );
    }
    p
}

fn snap(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    if name.contains("run") {
        // A run's clock starts at --now and advances in real time: the next ramp day opens
        // 24 h after the first send, to the millisecond.
        settings.add_filter(r"(2026-11-27T12:00):\d\d(?:\.\d+)?Z", "$1:[ss]Z");
    }
    settings.bind(|| insta::assert_snapshot!(name, text));
}

#[test]
fn a_bad_ramp_entry_is_a_located_error_naming_the_channel_and_the_entry() {
    let p = project("[1000/day, 5000/h]", 1, 1);
    for args in [&["validate"][..], &["preview", "a"], &["plan", "a"]] {
        let o = p.expect(2, &[&["--now", NOW][..], args].concat());
        assert!(
            o.stderr.contains("disparo.yaml:6:22: field `channels.wa.ramp`: channel `wa`: ramp entry 2 is \"5000/h\": ramp budgets are per day: write 5000/day"),
            "{args:?}: {}",
            o.stderr
        );
        assert!(
            o.stderr.contains("hint: list the channel's budget"),
            "{}",
            o.stderr
        );
    }
    assert!(!p.path().join("disparo.db").exists());
    for (ramp, says) in [
        ("[]", "empty list"),
        ("[0]", "ramp entry 1 is 0"),
        ("3000", "must be a list"),
        ("[1.5/day]", "whole number"),
    ] {
        let o = project(ramp, 1, 1).expect(2, &["validate"]);
        assert!(o.stderr.contains(says), "{ramp}: {}", o.stderr);
        assert!(
            o.stderr.contains("channels.wa.ramp"),
            "{ramp}: {}",
            o.stderr
        );
    }
}

#[test]
fn preview_forecast_shows_the_days_the_messages_take() {
    let p = project("[10/day, 50/day, 200/day]", 300, 30);
    let o = p.ok(&["--now", NOW, "preview", "a", "--limit", "0", "--forecast"]);
    let ramp: Vec<&str> = o.stdout.lines().filter(|l| l.contains("ramp ")).collect();
    snap("ramp_preview_table", &ramp.join("\n"));
    let o = p.ok(&[
        "--now",
        NOW,
        "--format",
        "json",
        "preview",
        "a",
        "--limit",
        "0",
        "--forecast",
    ]);
    let f = &o.json_lines()[0]["forecast"];
    snap(
        "ramp_preview_json",
        &serde_json::to_string_pretty(&f["ramp"]).unwrap(),
    );
    assert_eq!(f["ramp"]["days_needed"], 4);
    // validate says it once.
    let o = p.ok(&["--now", NOW, "validate", "a"]);
    assert!(
        o.stderr.contains("note: channel `wa` has a warm-up ramp (10, 50, 200/day): from its first ramp day, this campaign's 300 message(s) take 4 day(s)"),
        "{}",
        o.stderr
    );
}

/// After `b`'s 30 were planned and 10 of them sent, `run` says 20 wait for day 2; `a`'s
/// forecast starts from what the channel used: day 1 is spent, day 2 has 50.
#[test]
fn run_says_what_it_held_back_and_preview_counts_what_was_sent() {
    let p = project("[10/day, 50/day, 200/day]", 300, 30);
    p.ok(&["-q", "--now", NOW, "plan", "b"]);
    let o = p.ok(&["--now", NOW, "run", "--once"]);
    snap("ramp_run_summary", o.stderr.trim());
    let o = p.ok(&[
        "--now",
        "2026-11-26T13:00:00Z",
        "--format",
        "json",
        "run",
        "--once",
    ]);
    let s = &o.json_lines()[0];
    assert_eq!(
        (s["sent"].as_u64(), s["ramp_held"].as_u64()),
        (Some(0), Some(20)),
        "{s}"
    );
    assert!(
        s["ramp_opens"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-27T12:00:00"),
        "{s}"
    );
    assert_eq!(p.read("out.jsonl").lines().count(), 10);
    // A dry run lists the 20 due, and says the ramp lets none of them go now.
    let o = p.ok(&["--now", "2026-11-26T13:00:00Z", "run", "--dry-run"]);
    assert!(
        o.stderr.contains("dry run: 20 message(s) due"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(
            "note: channel `wa`: ramp day 1 of 3 allows 0 more now (10 sent, 0 in flight of 10)"
        ),
        "{}",
        o.stderr
    );
    let o = p.ok(&[
        "--now",
        "2026-11-26T18:00:00Z",
        "preview",
        "a",
        "--limit",
        "0",
        "--forecast",
    ]);
    let ramp: Vec<&str> = o.stdout.lines().filter(|l| l.contains("ramp ")).collect();
    snap("ramp_preview_after_sends", &ramp.join("\n"));
}
