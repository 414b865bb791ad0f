//! Named `quiet_hours` presets (docs/time-semantics.md, "Presets"), evaluated in recipient-local time.

use std::fmt;
use std::str::FromStr;

use jiff::SignedDuration;
use jiff::civil::time;

use super::dispatch::FrequencyCap;
use super::window::{QuietHours, SendWindow, Weekdays};

/// A named quiet-hours profile: a quiet window, maybe a weekday restriction, maybe a cap.
/// These are profiles of well-known rules, not legal advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuietPreset {
    /// US TCPA: no messages 21:00-08:00 local.
    UsTcpa,
    /// Florida telemarketing: no messages 20:00-08:00 local, at most 3 per 24 h.
    UsFlorida,
    /// Rio de Janeiro law 7.853/2018 for calls: Monday to Friday, 08:00-18:00 only.
    BrTelemarketing,
}

/// A preset name that is not known; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown quiet_hours preset {0:?}: use one of us_tcpa, us_florida, br_telemarketing, or {{ start: \"HH:MM\", end: \"HH:MM\" }}"
)]
pub struct UnknownPreset(pub String);

impl QuietPreset {
    pub const ALL: [QuietPreset; 3] = [
        QuietPreset::UsTcpa,
        QuietPreset::UsFlorida,
        QuietPreset::BrTelemarketing,
    ];

    /// The name written in campaign files.
    pub fn name(self) -> &'static str {
        match self {
            QuietPreset::UsTcpa => "us_tcpa",
            QuietPreset::UsFlorida => "us_florida",
            QuietPreset::BrTelemarketing => "br_telemarketing",
        }
    }

    /// The quiet window `[start, end)` on the local wall clock.
    pub fn quiet(self) -> QuietHours {
        let (start, end) = match self {
            QuietPreset::UsTcpa => (time(21, 0, 0, 0), time(8, 0, 0, 0)),
            QuietPreset::UsFlorida => (time(20, 0, 0, 0), time(8, 0, 0, 0)),
            QuietPreset::BrTelemarketing => (time(18, 0, 0, 0), time(8, 0, 0, 0)),
        };
        // Constants checked by `presets_are_valid_windows`; built directly so no error path.
        QuietHours { start, end }
    }

    /// Weekdays the preset allows, when it restricts them.
    pub fn days(self) -> Option<Weekdays> {
        match self {
            QuietPreset::BrTelemarketing => Some(Weekdays::MON_FRI),
            _ => None,
        }
    }

    /// The frequency cap the preset imposes, when it has one.
    pub fn cap(self) -> Option<FrequencyCap> {
        match self {
            QuietPreset::UsFlorida => Some(FrequencyCap {
                max: 3,
                per: SignedDuration::from_hours(24),
            }),
            _ => None,
        }
    }

    /// A send window for this preset, keeping only the campaign's `days` that the preset also
    /// allows, and the campaign's blackout dates.
    pub fn window(self, days: Weekdays, blackout: Vec<jiff::civil::Date>) -> SendWindow {
        let days = match self.days() {
            Some(own) => days.intersect(own),
            None => days,
        };
        SendWindow::new(Some(self.quiet()), days, blackout)
    }
}

impl fmt::Display for QuietPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for QuietPreset {
    type Err = UnknownPreset;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        QuietPreset::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownPreset(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{Weekday, date};

    #[test]
    fn presets_are_valid_windows() {
        for p in QuietPreset::ALL {
            let q = p.quiet();
            assert_eq!(QuietHours::new(q.start(), q.end()), Ok(q), "{p}");
            assert_eq!(p.name().parse::<QuietPreset>(), Ok(p));
        }
    }

    #[test]
    fn unknown_preset_lists_valid_names() {
        let err = "us_tcp".parse::<QuietPreset>().unwrap_err().to_string();
        for p in QuietPreset::ALL {
            assert!(err.contains(p.name()), "{err}");
        }
    }

    #[test]
    fn florida_has_cap_and_earlier_evening() {
        let p: QuietPreset = "us_florida".parse().unwrap();
        assert!(p.quiet().contains(time(20, 0, 0, 0)));
        assert!(!QuietPreset::UsTcpa.quiet().contains(time(20, 0, 0, 0)));
        let cap = p.cap().unwrap();
        assert_eq!((cap.max, cap.per), (3, SignedDuration::from_hours(24)));
    }

    #[test]
    fn br_telemarketing_friday_evening_moves_to_monday_morning() {
        let w = QuietPreset::BrTelemarketing.window(Weekdays::ALL, vec![]);
        assert!(!w.days.contains(Weekday::Saturday));
        let (t, _) =
            super::super::earliest_allowed(date(2026, 11, 27).at(18, 30, 0, 0), &w).unwrap();
        assert_eq!(t, date(2026, 11, 30).at(8, 0, 0, 0));
    }
}
