//! The time engine alone: rule 3 on the wall clock (quiet hours, weekdays, blackout) and rule 2
//! conversion for one target, and rule 4's cron occurrences per zone. `plan` computes these once
//! per zone and schedule and shares them with every recipient in the zone; the path `plan`
//! takes per recipient is measured by `cargo bench --bench plan` (`per_recipient_fast_path`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use disparo::schedule::{QuietHours, SendWindow, WallCron, Weekdays, place, zone};
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
    // 10 000 targets: a zone each, wall times spread over a week so some hit quiet hours,
    // Sundays and the blackout date.
    let mut rng = fastrand::Rng::with_seed(7);
    let resolved: Vec<(TimeZone, jiff::civil::DateTime)> = (0..10_000)
        .map(|_| {
            let tz = zone(ZONES[rng.usize(..ZONES.len())]).unwrap();
            let day = 21 + rng.i8(0..7);
            let target = date(2026, 12, day).at(rng.i8(0..24), rng.i8(0..60), 0, 0);
            (tz, target)
        })
        .collect();

    let mut group = c.benchmark_group("schedule");
    group.throughput(Throughput::Elements(resolved.len() as u64));
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
                let tz = zone(name).unwrap();
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
