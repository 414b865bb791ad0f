//! Per-recipient send-time computation: zone lookup by name in the cache, rule 3 on the wall
//! clock (quiet hours, weekdays, blackout), rule 2 conversion. Throughput is reported per
//! recipient.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use disparo::schedule::{QuietHours, SendWindow, WallCron, Weekdays, Zones, place};
use jiff::civil::{Time, date};
use jiff::tz::TimeZone;

/// A realistic audience mix: Brazil-heavy, plus the Americas, Europe, Asia-Pacific, and the
/// 30/45-minute offsets.
const ZONES: &[&str] = &[
    "America/Sao_Paulo",
    "America/Sao_Paulo",
    "America/Sao_Paulo",
    "America/Manaus",
    "America/Recife",
    "America/Fortaleza",
    "America/Bahia",
    "America/Cuiaba",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Edmonton",
    "America/St_Johns",
    "America/Mexico_City",
    "America/Bogota",
    "America/Lima",
    "America/Argentina/Buenos_Aires",
    "America/Santiago",
    "Europe/London",
    "Europe/Lisbon",
    "Europe/Madrid",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Moscow",
    "Africa/Lagos",
    "Africa/Johannesburg",
    "Africa/Casablanca",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Australia/Adelaide",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "UTC",
];

fn bench(c: &mut Criterion) {
    let zones = Zones::new();
    let fallback = TimeZone::get("America/Sao_Paulo").unwrap();
    let window = SendWindow::new(
        Some(
            QuietHours::new(
                Time::new(21, 0, 0, 0).unwrap(),
                Time::new(8, 0, 0, 0).unwrap(),
            )
            .unwrap(),
        ),
        Weekdays::ALL.intersect(Weekdays::MON_FRI.with(jiff::civil::Weekday::Saturday)),
        vec![date(2026, 12, 25)],
    );
    // 10 000 recipients: a zone name each (owned strings, as read from a file), targets spread
    // over a week of wall times so some hit quiet hours, Sundays and the blackout date.
    let mut rng = fastrand::Rng::with_seed(7);
    let recipients: Vec<(String, jiff::civil::DateTime)> = (0..10_000)
        .map(|_| {
            let name = ZONES[rng.usize(..ZONES.len())].to_string();
            let day = 21 + rng.i8(0..7);
            let target = date(2026, 12, day).at(rng.i8(0..24), rng.i8(0..60), 0, 0);
            (name, target)
        })
        .collect();

    let mut group = c.benchmark_group("schedule");
    group.throughput(Throughput::Elements(recipients.len() as u64));
    group.bench_function("place_per_recipient", |b| {
        b.iter(|| {
            let mut acc = 0i64;
            for (name, target) in &recipients {
                let tz = zones.resolve(Some(name), &fallback).unwrap();
                let p = place(*target, &tz, &window).unwrap();
                acc ^= p.at.as_second();
            }
            black_box(acc)
        })
    });
    // The two halves, for profiling: the cached lookup alone, and rules 3 + 2 alone.
    group.bench_function("zone_lookup_only", |b| {
        b.iter(|| {
            let mut acc = 0usize;
            for (name, _) in &recipients {
                let tz = zones.resolve(Some(name), &fallback).unwrap();
                acc ^= std::ptr::from_ref(&tz) as usize;
            }
            black_box(acc)
        })
    });
    let resolved: Vec<(TimeZone, jiff::civil::DateTime)> = recipients
        .iter()
        .map(|(n, t)| (zones.get(n).unwrap(), *t))
        .collect();
    group.bench_function("place_only", |b| {
        b.iter(|| {
            let mut acc = 0i64;
            for (tz, target) in &resolved {
                let p = place(*target, tz, &window).unwrap();
                acc ^= p.at.as_second();
            }
            black_box(acc)
        })
    });
    let cron = WallCron::parse("0 10 * * MON-FRI").unwrap();
    let after: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
    group.throughput(Throughput::Elements(ZONES.len() as u64 * 20));
    group.bench_function("cron_20_occurrences_per_zone", |b| {
        b.iter(|| {
            let mut acc = 0i64;
            for name in ZONES {
                let tz = zones.get(name).unwrap();
                for (_, at) in cron.occurrences(&tz, after).take(20) {
                    acc ^= at.as_second();
                }
            }
            black_box(acc)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
