//! Small value types written by people in YAML: durations (`90s`, `15m`, `12h`, `7d`),
//! rates (`50/s`, `3000/m`) and wall-clock times (`21:00`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A duration written as a whole number and a unit: `90s`, `15m`, `12h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    seconds: i64,
}

impl Duration {
    pub fn from_secs(seconds: i64) -> Duration {
        Duration { seconds }
    }
    pub fn as_secs(self) -> i64 {
        self.seconds
    }
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.seconds.max(0) as u64)
    }
    pub fn to_span(self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(self.seconds)
    }
}

/// Why a duration, rate or time did not parse; the message tells the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

impl FromStr for Duration {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            UnitError(format!(
                "invalid duration {s:?}: write a whole number and a unit s, m, h or d (e.g. 90s, 15m, 12h, 7d)"
            ))
        };
        let s2 = s.trim();
        let unit = s2.chars().last().ok_or_else(bad)?;
        let n: i64 = s2[..s2.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
        let mult = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        if n <= 0 {
            return Err(UnitError(format!("invalid duration {s:?}: it must be greater than zero")));
        }
        n.checked_mul(mult).map(Duration::from_secs).ok_or_else(bad)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        if s % 86_400 == 0 {
            write!(f, "{}d", s / 86_400)
        } else if s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

/// A rate written as `N/s`, `N/m` or `N/h`: messages per unit of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
}

impl Rate {
    pub fn per_second(n: f64) -> Rate {
        Rate { per_second: n }
    }
    pub fn as_per_second(self) -> f64 {
        self.per_second
    }
}

impl FromStr for Rate {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            UnitError(format!(
                "invalid rate {s:?}: write messages per unit as N/s, N/m or N/h (e.g. 80/s)"
            ))
        };
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let n: f64 = n.trim().parse().map_err(|_| bad())?;
        if !(n.is_finite() && n > 0.0) {
            return Err(bad());
        }
        let div = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        Ok(Rate::per_second(n / div))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.per_second >= 1.0 {
            write!(f, "{}/s", self.per_second)
        } else {
            write!(f, "{}/m", self.per_second * 60.0)
        }
    }
}

/// Parses `HH:MM` (or `HH:MM:SS`) into a wall-clock time.
pub fn parse_time(s: &str) -> Result<jiff::civil::Time, UnitError> {
    let bad = || UnitError(format!("invalid time {s:?}: write HH:MM on a 24-hour clock (e.g. 21:00)"));
    let parts: Vec<&str> = s.trim().split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return Err(bad());
    }
    let num = |p: &str| p.parse::<i8>().map_err(|_| bad());
    let h = num(parts[0])?;
    let m = num(parts[1])?;
    let sec = if parts.len() == 3 { num(parts[2])? } else { 0 };
    jiff::civil::Time::new(h, m, sec, 0).map_err(|_| bad())
}

macro_rules! deserialize_from_str {
    ($t:ty, $what:literal) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = StringOrNumber::deserialize(d)?.0;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Accepts `90s` and also a bare YAML scalar, so the parse error can explain the format.
struct StringOrNumber(String);
impl<'de> Deserialize<'de> for StringOrNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            I(i64),
            F(f64),
        }
        Ok(StringOrNumber(match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::I(i) => i.to_string(),
            Raw::F(f) => f.to_string(),
        }))
    }
}

deserialize_from_str!(Duration, "duration");
deserialize_from_str!(Rate, "rate");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("90s".parse::<Duration>().unwrap().as_secs(), 90);
        assert_eq!("12h".parse::<Duration>().unwrap().as_secs(), 43_200);
        assert_eq!("7d".parse::<Duration>().unwrap().to_string(), "7d");
        for bad in ["", "12", "h", "1.5h", "-3m", "0s", "3w"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn rates() {
        assert_eq!("80/s".parse::<Rate>().unwrap().as_per_second(), 80.0);
        assert_eq!("120/m".parse::<Rate>().unwrap().as_per_second(), 2.0);
        for bad in ["80", "0/s", "x/s", "5/d"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("21:00").unwrap(), jiff::civil::time(21, 0, 0, 0));
        for bad in ["24:00", "9:00", "21h", "21:60"] {
            assert!(parse_time(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
