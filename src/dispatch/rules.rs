//! The stored dispatch rules turned back into the time engine's types.

use jiff::civil::{Date, Weekday};

use crate::schedule::{QuietHours, SendWindow, Weekdays};
use crate::store::DispatchRules;

/// The send window a campaign was planned with. Values were validated at plan time; one that
/// no longer parses (a hand-edited or corrupted database) is an error, never dropped: a
/// dropped quiet-hours rule would send at night.
pub fn window_of(rules: &DispatchRules) -> Result<SendWindow, String> {
    let quiet = match &rules.quiet {
        None => None,
        Some((s, e)) => {
            let bad = || format!("quiet hours {s:?}-{e:?}");
            let start = s.parse().map_err(|_| bad())?;
            let end = e.parse().map_err(|_| bad())?;
            Some(QuietHours::new(start, end).map_err(|_| bad())?)
        }
    };
    let days = if rules.days.is_empty() {
        Weekdays::ALL
    } else {
        let mut set = Weekdays::none();
        for d in &rules.days {
            set = set.with(weekday(d).ok_or_else(|| format!("weekday {d:?}"))?);
        }
        set
    };
    let mut blackout: Vec<Date> = rules
        .blackout
        .iter()
        .map(|d| d.parse().map_err(|_| format!("blackout date {d:?}")))
        .collect::<Result<_, _>>()?;
    blackout.sort();
    Ok(SendWindow {
        quiet,
        days,
        blackout,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_stored_rules_are_an_error_not_dropped() {
        let ok = DispatchRules {
            quiet: Some(("21:00:00".into(), "08:00:00".into())),
            days: vec!["mon".into()],
            blackout: vec!["2026-12-25".into()],
            ..Default::default()
        };
        let w = window_of(&ok).unwrap();
        assert!(w.quiet.is_some());
        for bad in [
            DispatchRules {
                quiet: Some(("21:00:00".into(), "garbage".into())),
                ..Default::default()
            },
            DispatchRules {
                days: vec!["funday".into()],
                ..Default::default()
            },
            DispatchRules {
                blackout: vec!["2026-13-45".into()],
                ..Default::default()
            },
        ] {
            assert!(window_of(&bad).is_err(), "{bad:?}");
        }
    }
}
