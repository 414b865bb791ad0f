//! `ramp:` as written in `disparo.yaml`: a list of daily budgets, `N/day` or a bare `N`.
//!
//! Read leniently (any YAML is accepted here), checked at once, and the verdict kept: the
//! configuration loader reports a bad entry as a located problem naming the channel and the
//! entry (`model::config`), which serde's own error could not do inside a tagged channel.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{MAX_DAYS, Ramp};

/// A channel's `ramp:` key: the checked ramp, or what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct RampConfig {
    checked: Result<Ramp, RampError>,
}

impl RampConfig {
    /// The ramp, when every entry is a daily budget.
    pub fn ramp(&self) -> Result<&Ramp, &RampError> {
        self.checked.as_ref()
    }

    /// Checks entries as they were read (see [`Entry`]).
    fn check(entries: Vec<Entry>) -> RampConfig {
        let checked = if entries.is_empty() {
            Err(RampError::Empty)
        } else if entries.len() > MAX_DAYS {
            Err(RampError::TooLong(entries.len()))
        } else {
            entries
                .into_iter()
                .enumerate()
                .map(|(index, e)| {
                    e.budget().map_err(|(written, why)| RampError::Entry {
                        index,
                        written,
                        why,
                    })
                })
                .collect::<Result<Vec<u64>, RampError>>()
                .and_then(|per_day| Ramp::new(per_day).ok_or(RampError::Empty))
        };
        RampConfig { checked }
    }
}

/// What is wrong with a `ramp:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RampError {
    #[error("`ramp` must be a list of daily budgets, e.g. [1000/day, 5000/day, 20000/day]")]
    NotAList,
    #[error(
        "`ramp` is an empty list: give at least one daily budget, e.g. [1000/day], or remove the key"
    )]
    Empty,
    #[error("`ramp` has {0} entries; a ramp has at most {MAX_DAYS} days")]
    TooLong(usize),
    /// Entry `index` (0-based) is not a daily budget.
    #[error("ramp entry {} is {written}: {why}", index + 1)]
    Entry {
        index: usize,
        /// The entry as written (quoted text, a number, or what kind of value it is).
        written: String,
        why: String,
    },
}

impl RampError {
    /// The 0-based entry concerned, if the problem is one entry's.
    pub fn entry(&self) -> Option<usize> {
        match self {
            RampError::Entry { index, .. } => Some(*index),
            _ => None,
        }
    }
}

/// One entry as read, before it is checked.
#[derive(Debug)]
enum Entry {
    Text(String),
    Int(i128),
    Float(f64),
    /// Anything else: `true`, null, a list, a map (named for the message).
    Other(&'static str),
}

const WHOLE: &str = "write a whole number of messages per day, e.g. 1000/day (or just 1000)";

impl Entry {
    /// The daily budget, or the entry as written and why it is not one.
    fn budget(self) -> Result<u64, (String, String)> {
        match self {
            Entry::Int(n) => positive(n).map_err(|why| (n.to_string(), why)),
            Entry::Float(f) => Err((f.to_string(), WHOLE.into())),
            Entry::Other(kind) => Err((kind.into(), WHOLE.into())),
            Entry::Text(s) => parse_text(&s).map_err(|why| (format!("{s:?}"), why)),
        }
    }
}

fn positive(n: i128) -> Result<u64, String> {
    if n <= 0 {
        return Err(
            "a day's budget must be at least 1 message (to stop a channel, pause its campaigns)"
                .into(),
        );
    }
    u64::try_from(n).map_err(|_| "that is more messages than a day can hold".into())
}

/// `1000/day`, `1000 / day` or `1000`.
fn parse_text(s: &str) -> Result<u64, String> {
    let (number, unit) = match s.split_once('/') {
        Some((n, u)) => (n.trim(), Some(u.trim())),
        None => (s.trim(), None),
    };
    if let Some(unit) = unit
        && unit != "day"
    {
        let n = if number.is_empty() { "N" } else { number };
        return Err(format!(
            "ramp budgets are per day: write {n}/day (`/{unit}` is not a day; a rate per second, minute or hour belongs in `rate:`)"
        ));
    }
    if number.is_empty()
        || !number
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
    {
        return Err(WHOLE.into());
    }
    match number.parse::<i128>() {
        Ok(n) => positive(n),
        Err(_) => Err(WHOLE.into()),
    }
}

impl<'de> Deserialize<'de> for RampConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RampConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of daily budgets")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RampConfig, A::Error> {
                let mut entries = Vec::new();
                while let Some(e) = seq.next_element::<Entry>()? {
                    entries.push(e);
                }
                Ok(RampConfig::check(entries))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RampConfig, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(not_a_list())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RampConfig, E> {
                Ok(not_a_list())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RampConfig, E> {
                Ok(not_a_list())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RampConfig, E> {
                Ok(not_a_list())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RampConfig, E> {
                Ok(not_a_list())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RampConfig, E> {
                Ok(not_a_list())
            }
        }
        d.deserialize_any(V)
    }
}

fn not_a_list() -> RampConfig {
    RampConfig {
        checked: Err(RampError::NotAList),
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a daily budget")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Entry, E> {
                Ok(Entry::Text(s.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Entry, E> {
                Ok(Entry::Int(i128::from(n)))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Entry, E> {
                Ok(Entry::Int(i128::from(n)))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<Entry, E> {
                Ok(Entry::Float(f))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Entry, E> {
                Ok(Entry::Other(if b { "true" } else { "false" }))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Entry, E> {
                Ok(Entry::Other("empty"))
            }
            fn visit_none<E: de::Error>(self) -> Result<Entry, E> {
                Ok(Entry::Other("empty"))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Entry, D2::Error> {
                Entry::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Entry::Other("a list"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Entry::Other("a map"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Result<Vec<u64>, RampError> {
        #[derive(serde::Deserialize)]
        struct Holder {
            ramp: RampConfig,
        }
        let h: Holder = serde_saphyr::from_str(&format!("ramp: {yaml}\n")).unwrap();
        h.ramp
            .ramp()
            .map(|r| r.per_day().to_vec())
            .map_err(Clone::clone)
    }

    #[test]
    fn entries_are_n_per_day_or_a_bare_number() {
        assert_eq!(
            read("[1000/day, 5000/day, 20000/day]").unwrap(),
            [1000, 5000, 20000]
        );
        assert_eq!(
            read("[250, \"2000 / day\", 10000]").unwrap(),
            [250, 2000, 10000]
        );
        assert_eq!(read("\n  - 3/day\n  - 5\n").unwrap(), [3, 5]);
    }

    #[test]
    fn mistakes_name_the_entry_and_say_what_to_write() {
        let entry = |yaml: &str| match read(yaml) {
            Err(e @ RampError::Entry { .. }) => (e.entry().unwrap(), e.to_string()),
            other => panic!("{yaml}: {other:?}"),
        };
        let (i, m) = entry("[1000/day, 5000/h]");
        assert_eq!(i, 1);
        assert!(
            m.starts_with("ramp entry 2 is \"5000/h\": ramp budgets are per day: write 5000/day"),
            "{m}"
        );
        assert!(m.contains("`rate:`"), "{m}");
        let (i, m) = entry("[0]");
        assert_eq!(i, 0);
        assert!(
            m.contains("ramp entry 1 is 0: a day's budget must be at least 1"),
            "{m}"
        );
        assert!(entry("[\"0/day\"]").1.contains("at least 1"));
        assert!(entry("[-5]").1.contains("at least 1"));
        for bad in [
            "[lots]",
            "[1.5]",
            "[\"1.5/day\"]",
            "[true]",
            "[~]",
            "[[1]]",
            "[{a: 1}]",
            "[\"1_000/day\"]",
            "[\"/day\"]",
        ] {
            let (_, m) = entry(bad);
            assert!(m.contains("whole number"), "{bad}: {m}");
        }
        assert!(entry("[\"1000/d\"]").1.contains("write 1000/day"));
        assert!(
            entry("[99999999999999999999999]")
                .1
                .contains("whole number")
                || entry("[99999999999999999999999]")
                    .1
                    .contains("more messages")
        );
    }

    #[test]
    fn the_list_itself_must_be_a_non_empty_list_of_bounded_length() {
        assert_eq!(read("[]"), Err(RampError::Empty));
        assert_eq!(read("1000/day"), Err(RampError::NotAList));
        assert_eq!(read("1000"), Err(RampError::NotAList));
        assert_eq!(read("{day: 1000}"), Err(RampError::NotAList));
        let long = format!("[{}]", vec!["1"; MAX_DAYS + 5].join(", "));
        assert_eq!(read(&long), Err(RampError::TooLong(MAX_DAYS + 5)));
        assert!(RampError::Empty.to_string().contains("remove the key"));
    }
}
