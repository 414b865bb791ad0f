//! Properties of the time engine over a realistic mix of zones (incl. 30/45-minute offsets and
//! Lord Howe's 30-minute DST), with extra weight near DST transitions.

use disparo::schedule::{
    Dispatch, FrequencyCap, QuietHours, Reasons, SendWindow, WallCron, Weekdays, at_dispatch,
    cap_next_allowed, earliest_allowed, materialise, place, place_instant, to_instant, to_local,
};
use jiff::civil::{Date, DateTime, Time, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

const ZONES: &[&str] = &[
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Europe/Lisbon",
    "America/Edmonton",
    "Pacific/Chatham",
    "America/Los_Angeles",
    "Africa/Casablanca",
    "UTC",
];

fn zone() -> impl Strategy<Value = TimeZone> {
    proptest::sample::select(ZONES).prop_map(|n| TimeZone::get(n).unwrap())
}

fn epoch() -> DateTime {
    date(2024, 1, 1).at(0, 0, 0, 0)
}

/// Wall times 2024-2029, to the second.
fn wall() -> impl Strategy<Value = DateTime> {
    (0i64..6 * 365 * 86_400)
        .prop_map(|s| epoch().checked_add(SignedDuration::from_secs(s)).unwrap())
}

/// An instant 2024-2029, half the time within 3 h of one of the zone's transitions.
fn instant_for(tz: TimeZone) -> impl Strategy<Value = Timestamp> {
    let base = "2024-01-01T00:00:00Z".parse::<Timestamp>().unwrap();
    (
        0i64..6 * 365 * 86_400,
        any::<bool>(),
        -3 * 3600i64..3 * 3600,
    )
        .prop_map(move |(s, near, delta)| {
            let t = base.checked_add(SignedDuration::from_secs(s)).unwrap();
            let t = if near {
                tz.following(t).next().map_or(t, |tr| tr.timestamp())
            } else {
                t
            };
            t.checked_add(SignedDuration::from_secs(delta)).unwrap()
        })
}

fn quiet() -> impl Strategy<Value = Option<QuietHours>> {
    let t = (0i8..24, prop_oneof![Just(0i8), Just(30), Just(45), 0i8..60])
        .prop_map(|(h, m)| Time::new(h, m, 0, 0).unwrap());
    proptest::option::weighted(0.8, (t.clone(), t)).prop_filter_map("valid window", |o| match o {
        None => Some(None),
        Some((s, e)) => QuietHours::new(s, e).ok().map(Some),
    })
}

fn window_near(anchor: Date) -> impl Strategy<Value = SendWindow> {
    (
        quiet(),
        prop_oneof![Just(0x7fu8), 1u8..0x80],
        proptest::collection::vec(0i64..20, 0..4),
    )
        .prop_map(move |(q, bits, offsets)| {
            let days = (0..7)
                .filter(|i| bits & (1 << i) != 0)
                .map(|i| date(2024, 1, 1 + i).weekday()) // 2024-01-01 is a Monday
                .collect::<Weekdays>();
            let blackout = offsets
                .into_iter()
                .filter_map(|o| anchor.checked_add(jiff::Span::new().days(o)).ok())
                .collect();
            SendWindow::new(q, days, blackout)
        })
}

fn target_and_window() -> impl Strategy<Value = (TimeZone, DateTime, SendWindow)> {
    (zone(), wall()).prop_flat_map(|(tz, w)| (Just(tz), Just(w), window_near(w.date())))
}

fn allowed(w: &SendWindow, t: DateTime) -> bool {
    w.days.contains(t.weekday())
        && !w.blackout.contains(&t.date())
        && !w.quiet.is_some_and(|q| q.contains(t.time()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn placement_is_allowed_not_early_and_idempotent((tz, target, w) in target_and_window()) {
        let p = place(target, &tz, &w).expect("some day is allowed");
        prop_assert!(p.local >= target);
        prop_assert!(allowed(&w, p.local), "{p:?}");
        prop_assert_eq!(p.at, to_instant(p.local, &tz));
        prop_assert_eq!(p.reasons.is_empty(), p.local == target);
        let again = place(p.local, &tz, &w).unwrap();
        prop_assert_eq!((again.local, again.at), (p.local, p.at));
        prop_assert_eq!(again.reasons, Reasons::empty());
    }

    #[test]
    fn placement_is_monotonic_in_the_target(
        (tz, a, w) in target_and_window(),
        step in 0i64..3 * 86_400,
    ) {
        let b = a.checked_add(SignedDuration::from_secs(step)).unwrap();
        let pa = place(a, &tz, &w).unwrap();
        let pb = place(b, &tz, &w).unwrap();
        if w.quiet.is_some() {
            prop_assert!(pa.local <= pb.local, "{pa:?} {pb:?}");
        } else {
            // Without quiet hours a moved target keeps its wall time on the next allowed day
            // (issue #13): Friday 13:00 on a Sundays-only campaign goes on Sunday 13:00, after
            // Sunday 04:00. The date is still monotonic, and the time of day is the target's.
            prop_assert!(pa.local.date() <= pb.local.date(), "{pa:?} {pb:?}");
            prop_assert_eq!(pa.local.time(), a.time());
            prop_assert_eq!(pb.local.time(), b.time());
        }
    }

    #[test]
    fn instant_placement_is_never_before_the_instant(
        (tz, at, w) in zone().prop_flat_map(|tz| (Just(tz.clone()), instant_for(tz)))
            .prop_flat_map(|(tz, at)| {
                let d = to_local(at, &tz).date();
                (Just(tz), Just(at), window_near(d))
            })
    ) {
        let p = place_instant(at, &tz, &w).unwrap();
        prop_assert!(p.at >= at);
        prop_assert!(allowed(&w, p.local));
        prop_assert_eq!(Some(p.local), earliest_allowed(to_local(at, &tz), &w).map(|x| x.0));
    }

    #[test]
    fn dispatch_never_sends_in_quiet_hours_or_too_late(
        (tz, planned, w) in zone().prop_flat_map(|tz| (Just(tz.clone()), instant_for(tz)))
            .prop_flat_map(|(tz, at)| {
                let d = to_local(at, &tz).date();
                (Just(tz), Just(at), window_near(d))
            }),
        delay in -86_400i64..3 * 86_400,
        expire_h in proptest::option::of(1i64..48),
    ) {
        let now = planned.checked_add(SignedDuration::from_secs(delay)).unwrap();
        let expire = expire_h.map(SignedDuration::from_hours);
        match at_dispatch(planned, now, &tz, &w, expire) {
            Dispatch::SendNow => {
                prop_assert!(planned <= now);
                prop_assert!(allowed(&w, to_local(now, &tz)));
                if let Some(e) = expire {
                    prop_assert!(now.duration_since(planned) <= e);
                }
            }
            Dispatch::Defer(p) => {
                prop_assert!(p.at > now && p.at >= planned);
                prop_assert!(allowed(&w, p.local));
            }
            Dispatch::Expired { late_by } => prop_assert!(late_by > expire.unwrap()),
            Dispatch::Never => prop_assert!(false, "a day is always allowed here"),
        }
    }

    #[test]
    fn cap_gives_the_earliest_allowed_instant(
        offsets in proptest::collection::vec(0i64..10 * 86_400, 0..8),
        max in 1u32..4,
        per_h in 1i64..200,
    ) {
        let now: Timestamp = "2026-06-10T00:00:00Z".parse().unwrap();
        let sends: Vec<Timestamp> = offsets
            .iter()
            .map(|o| now.checked_sub(SignedDuration::from_secs(*o)).unwrap())
            .collect();
        let cap = FrequencyCap { max, per: SignedDuration::from_hours(per_h) };
        let count = |t: Timestamp| {
            sends.iter().filter(|s| **s <= t && t.duration_since(**s) < cap.per).count()
        };
        let t = cap_next_allowed(&sends, cap, now).unwrap();
        prop_assert!(t >= now);
        prop_assert!(count(t) < max as usize);
        if t > now {
            let before = t.checked_sub(SignedDuration::from_secs(1)).unwrap();
            prop_assert!(count(before) >= max as usize);
        }
    }
}

fn cron_expr() -> impl Strategy<Value = String> {
    let minute = prop_oneof![
        Just("0".to_string()),
        Just("30".to_string()),
        Just("*/15".to_string()),
        Just("15,45".to_string()),
        (0u8..60).prop_map(|m| m.to_string()),
    ];
    let hour = prop_oneof![
        Just("*".to_string()),
        Just("1-3".to_string()),
        Just("2".to_string()),
        Just("*/6".to_string()),
        (0u8..24).prop_map(|h| h.to_string()),
    ];
    let dow = prop_oneof![
        3 => Just("*".to_string()),
        1 => Just("MON-FRI".to_string()),
        1 => Just("0,6".to_string()),
    ];
    let dom = prop_oneof![4 => Just("*".to_string()), 1 => Just("1,15".to_string())];
    let seconds = prop_oneof![
        3 => Just(None),
        1 => Just(Some("0".to_string())),
        1 => Just(Some("*/20".to_string())),
    ];
    (seconds, minute, hour, dom, dow).prop_map(|(s, mi, h, dom, dow)| match s {
        Some(s) => format!("{s} {mi} {h} {dom} * {dow}"),
        None => format!("{mi} {h} {dom} * {dow}"),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cron_occurrences_increase_match_and_miss_nothing(
        (tz, after) in zone().prop_flat_map(|tz| (Just(tz.clone()), instant_for(tz))),
        expr in cron_expr(),
    ) {
        let cron = WallCron::parse(&expr).unwrap();
        let occ: Vec<(DateTime, Timestamp)> = cron.occurrences(&tz, after).take(12).collect();
        prop_assert_eq!(occ.len(), 12);
        let mut prev = after;
        for (wall, at) in &occ {
            prop_assert!(*at > prev, "{expr}: {occ:?}");
            prop_assert!(cron.matches(*wall), "{expr}: {wall}");
            prop_assert_eq!(*at, to_instant(*wall, &tz));
            prev = *at;
        }
        // Brute force over naive wall time: every matching wall time from 3 h before `after`'s
        // wall time, converted, deduplicated and sorted, must be the same list.
        let last = occ[occ.len() - 1].1;
        let mut w = to_local(after, &tz)
            .checked_sub(SignedDuration::from_hours(3))
            .unwrap()
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .unwrap();
        let end = to_local(last, &tz).checked_add(SignedDuration::from_hours(3)).unwrap();
        let mut brute = Vec::new();
        let step = if expr.split_whitespace().count() == 6 { 20 } else { 60 };
        while w <= end {
            if cron.matches(w) {
                let at = to_instant(w, &tz);
                if at > after && at <= last {
                    brute.push(at);
                }
            }
            w = w.checked_add(SignedDuration::from_secs(step)).unwrap();
        }
        brute.sort();
        brute.dedup();
        let ours: Vec<Timestamp> = occ.iter().map(|o| o.1).collect();
        prop_assert_eq!(ours, brute, "{}", expr);
    }

    #[test]
    fn materialised_indices_are_stable(
        tz in zone(),
        start in wall(),
        expr in cron_expr(),
        h1 in 1i64..72,
        h2 in 0i64..240,
    ) {
        let cron = WallCron::parse(&expr).unwrap();
        let first = to_instant(start, &tz);
        let horizon = |h: i64| first.checked_add(SignedDuration::from_hours(h)).unwrap();
        let short: Vec<_> = materialise(&cron, &tz, start, None, None, horizon(h1)).collect();
        let long: Vec<_> = materialise(&cron, &tz, start, None, None, horizon(h1 + h2)).collect();
        prop_assert!(long.len() >= short.len());
        prop_assert_eq!(&long[..short.len()], &short[..]);
        for (i, o) in long.iter().enumerate() {
            prop_assert_eq!(o.index as usize, i);
            prop_assert!(o.at >= first);
        }
        let counted: Vec<_> = materialise(&cron, &tz, start, None, Some(5), horizon(h1 + h2)).collect();
        prop_assert_eq!(&counted[..], &long[..long.len().min(5)]);
    }
}
