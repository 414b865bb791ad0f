use super::html::{duration_text, render};
use super::*;
use crate::inert::html as esc;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn row(recipient: &str, zone: &str, state: State) -> ReportRow {
    ReportRow {
        message_id: format!("m-{recipient}"),
        campaign: "c".into(),
        recipient: recipient.into(),
        occurrence: 0,
        channel: "hook".into(),
        address: format!("+5511{recipient}"),
        zone: zone.into(),
        locale: None,
        state,
        planned_local: String::new(),
        planned_at: ts("2026-03-29T00:00:00Z"),
        due_at: ts("2026-03-29T00:00:00Z"),
        reasons: String::new(),
        attempts: 1,
        first_attempt_at: None,
        last_attempt_at: None,
        last_outcome: None,
        last_code: None,
        provider_id: None,
        sent_at: None,
        last_error: None,
        delivery: None,
        delivered_at: None,
        read_at: None,
        delivery_code: None,
        opted_out_at: None,
        variant: None,
    }
}

#[test]
fn percentiles_are_nearest_rank() {
    assert_eq!(nearest_rank(&[], 50), None);
    assert_eq!(nearest_rank(&[7], 50), Some(7));
    assert_eq!(nearest_rank(&[7], 90), Some(7));
    assert_eq!(nearest_rank(&[1, 2, 3], 50), Some(2));
    assert_eq!(nearest_rank(&[1, 2, 3], 90), Some(3));
    assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
    let ten: Vec<i64> = (1..=10).collect();
    assert_eq!(nearest_rank(&ten, 90), Some(9));
    assert_eq!(nearest_rank(&ten, 100), Some(10));
}

#[test]
fn reading_times_fall_in_half_open_buckets() {
    let t = read_times(vec![3600, 0, 59, 60, 86_400, 299]);
    let counts: Vec<(&str, u64)> = t.buckets.iter().map(|b| (b.label, b.count)).collect();
    assert_eq!(
        counts,
        [
            ("under 1 min", 2),
            ("1–5 min", 2),
            ("5–15 min", 0),
            ("15 min–1 h", 0),
            ("1–6 h", 1),
            ("6–24 h", 0),
            ("1 day or more", 1),
        ]
    );
    assert_eq!(
        (t.count, t.median_secs, t.p90_secs),
        (6, Some(60), Some(86_400))
    );
}

/// Sends count on the recipient's own clock, across a DST change: 01:30Z on the day Lisbon
/// moves to summer time is 02:30 local (WEST), an hour before it was 00:30 (WET).
#[test]
fn sends_are_counted_per_utc_hour_and_on_the_recipients_clock() {
    let mut acc = Accumulator::default();
    for (who, zone, at) in [
        ("a", "Europe/Lisbon", "2026-03-29T00:30:00Z"),
        ("b", "Europe/Lisbon", "2026-03-29T01:30:00Z"),
        ("c", "America/Sao_Paulo", "2026-03-29T01:59:59Z"),
        ("d", "", "2026-03-29T01:00:00Z"),
    ] {
        let mut r = row(who, zone, State::Sent);
        r.sent_at = Some(ts(at));
        acc.add(&r);
    }
    // Not in state sent: not a send (a message sent again later is pending again).
    let mut pending = row("e", "Europe/Lisbon", State::Pending);
    pending.sent_at = Some(ts("2026-03-29T01:00:00Z"));
    acc.add(&pending);
    let s = acc.sends();
    assert_eq!(s.total, 4);
    assert_eq!(
        s.per_utc_hour
            .iter()
            .map(|c| (c.hour.to_string(), c.count))
            .collect::<Vec<_>>(),
        [
            ("2026-03-29T00:00:00Z".to_string(), 1),
            ("2026-03-29T01:00:00Z".to_string(), 3)
        ]
    );
    assert_eq!(s.per_local_hour[0], 1, "Lisbon 00:30 WET");
    assert_eq!(s.per_local_hour[2], 1, "Lisbon 02:30 WEST");
    assert_eq!(s.per_local_hour[22], 1, "São Paulo 22:59 the day before");
    assert_eq!(s.without_zone, 1);
    assert_eq!(s.per_local_hour.iter().sum::<u64>(), 3);
}

#[test]
fn failures_group_by_stage_and_code_most_frequent_first() {
    let mut acc = Accumulator::default();
    for (who, code, err) in [
        ("a", Some("HTTP 400"), "first words"),
        ("b", Some("HTTP 400"), "second words"),
        ("c", None, "no code"),
    ] {
        let mut r = row(who, "Europe/Lisbon", State::Failed);
        r.last_code = code.map(str::to_owned);
        r.last_error = Some(err.into());
        acc.add(&r);
    }
    let mut late = row("d", "Europe/Lisbon", State::Sent);
    late.delivery = Some("failed".into());
    late.delivery_code = Some("30008".into());
    acc.add(&late);
    let mut bounce = row("e", "Europe/Lisbon", State::Sent);
    bounce.delivery = Some("bounced".into());
    bounce.delivery_code = Some("5.1.1".into());
    acc.add(&bounce);
    let f = acc.failures();
    let got: Vec<(Stage, Option<&str>, u64, Option<&str>)> = f
        .iter()
        .map(|g| (g.stage, g.code.as_deref(), g.count, g.example.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (Stage::Send, Some("HTTP 400"), 2, Some("first words")),
            (Stage::Send, None, 1, Some("no code")),
            (Stage::Receipt, Some("30008"), 1, None),
            (Stage::Bounce, Some("5.1.1"), 1, None),
        ]
    );
}

#[test]
fn a_read_reported_before_the_send_takes_no_time() {
    let mut acc = Accumulator::default();
    let mut r = row("a", "Europe/Lisbon", State::Sent);
    r.sent_at = Some(ts("2026-03-29T10:00:00.500Z"));
    r.read_at = Some(ts("2026-03-29T10:00:00Z"));
    acc.add(&r);
    let mut r = row("b", "Europe/Lisbon", State::Sent);
    r.sent_at = Some(ts("2026-03-29T10:00:00.500Z"));
    r.read_at = Some(ts("2026-03-29T10:02:00Z"));
    acc.add(&r);
    assert_eq!(acc.read_secs, [0, 119]);
}

#[test]
fn durations_read_like_people_say_them() {
    assert_eq!(duration_text(0), "0 s");
    assert_eq!(duration_text(59), "59 s");
    assert_eq!(duration_text(120), "2 min");
    assert_eq!(duration_text(179), "2 min 59 s");
    assert_eq!(duration_text(3600), "1 h");
    assert_eq!(duration_text(3660), "1 h 1 min");
    assert_eq!(duration_text(86_400), "1 d");
    assert_eq!(duration_text(90_000), "1 d 1 h");
}

fn report(name: &str) -> Report {
    Report {
        campaign: name.into(),
        channel: "hook".into(),
        status: CampaignStatus::Active,
        status_reason: None,
        generated_at: ts("2026-12-01T00:00:00Z"),
        states: BTreeMap::new(),
        messages: 0,
        funnel: Funnel::default().into(),
        by_locale: Vec::new(),
        by_zone: Vec::new(),
        by_variant: Vec::new(),
        sends: Accumulator::default().sends(),
        failures: Vec::new(),
        time_to_read: read_times(Vec::new()),
        steps: Vec::new(),
    }
}

#[test]
fn every_piece_of_data_is_escaped_and_the_page_can_make_no_request() {
    let hostile = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>&amp;";
    let mut r = report(hostile);
    r.channel = hostile.into();
    r.status_reason = Some(hostile.into());
    let mut line = Funnel {
        campaign: hostile.into(),
        group: Some(hostile.into()),
        planned: 1,
        ..Funnel::default()
    };
    r.by_locale = vec![line.clone().into()];
    line.group = Some(String::new());
    r.by_zone = vec![line.into()];
    r.failures = vec![FailureGroup {
        stage: Stage::Send,
        code: Some(hostile.into()),
        count: 1,
        example: Some(hostile.into()),
    }];
    let page = render(&r);
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("onerror=alert(1)>"), "{page}");
    assert!(page.contains(&esc(hostile)));
    assert!(
        esc(hostile).contains("&amp;amp;"),
        "an entity in the data stays text"
    );
    assert!(page.contains(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
        html::CSP
    )));
    // Nothing of the page's own would load (the hostile text above is text, not markup).
    let plain = render(&report("c"));
    for loads in [
        "https:",
        "src=",
        "url(",
        "@import",
        "<link rel=\"stylesheet",
    ] {
        assert!(!plain.contains(loads), "{loads} in the page");
    }
    assert!(plain.contains("data-empty=\"sends\""));
    assert!(plain.contains("data-empty=\"failures\""));
    assert!(plain.contains("data-empty=\"reads\""));
    assert!(page.contains("(none)"), "a group without a locale is named");
}

#[test]
fn a_failed_write_leaves_the_previous_page_and_no_temporary_file() {
    let dir = std::env::temp_dir().join(format!("disparo-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("page.html");
    std::fs::write(&target, "old").unwrap();
    write_html(&report("c"), &target).unwrap();
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );
    // A folder in the way: the rename fails, the folder and its content stay.
    let folder = dir.join("folder.html");
    std::fs::create_dir_all(folder.join("inside")).unwrap();
    let err = write_html(&report("c"), &folder).unwrap_err();
    match err {
        Error::Invalid(p) => {
            let text = p[0].to_string();
            assert!(text.contains("folder.html"), "{text}");
            assert!(text.contains("cannot write the report"), "{text}");
        }
        Error::Internal(e) => panic!("{e}"),
    }
    assert!(folder.join("inside").is_dir());
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| !n.ends_with(".tmp")), "{left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
