//! The stored dispatch rules turned back into the time engine's types.

use jiff::civil::{Date, Weekday};

use crate::schedule::{QuietHours, SendWindow, Weekdays};
use crate::store::DispatchRules;

/// The send window a campaign was planned with. Values were validated at plan time; one
/// that no longer parses (a hand-edited database) is dropped rather than blocking the run.
pub fn window_of(rules: &DispatchRules) -> SendWindow {
    let quiet = rules.quiet.as_ref().and_then(|(s, e)| {
        let s = s.parse().ok()?;
        let e = e.parse().ok()?;
        QuietHours::new(s, e).ok()
    });
    let days = if rules.days.is_empty() {
        Weekdays::ALL
    } else {
        rules
            .days
            .iter()
            .fold(Weekdays::none(), |set, d| match weekday(d) {
                Some(w) => set.with(w),
                None => set,
            })
    };
    let mut blackout: Vec<Date> = rules
        .blackout
        .iter()
        .filter_map(|d| d.parse().ok())
        .collect();
    blackout.sort();
    SendWindow {
        quiet,
        days,
        blackout,
    }
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}
