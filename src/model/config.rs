//! `disparo.yaml`: the project's default zone and its channels.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::tz::TimeZone;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use crate::channel::ChannelConfig;
use crate::diag::{Problem, yaml_problem};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    channels: BTreeMap<String, ChannelConfig>,
}

/// The checked project configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The project's default zone; UTC when neither the config nor the campaign names one.
    pub timezone: TimeZone,
    pub timezone_name: String,
    pub channels: BTreeMap<String, ChannelConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timezone: TimeZone::UTC,
            timezone_name: "UTC".into(),
            channels: BTreeMap::new(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, Problem> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problem::new(format!("cannot read the configuration: {e}"))
                .in_file(path)
                .hint("check the path given with --config or DISPARO_CONFIG")
        })?;
        Config::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, Problem> {
        let file: ConfigFile = if text.trim().is_empty() {
            ConfigFile {
                timezone: None,
                channels: BTreeMap::new(),
            }
        } else {
            serde_saphyr::from_str(text).map_err(|e| yaml_problem(path, &e))?
        };
        if let Some(p) = ramp_problem(path, text, &file.channels) {
            return Err(p);
        }
        let mut config = Config {
            channels: file.channels,
            ..Config::default()
        };
        if let Some(tz) = file.timezone {
            config.timezone = super::zone(&tz.value).ok_or_else(|| {
                super::unknown_zone(&tz.value)
                    .in_file(path)
                    .at(tz.referenced.line(), tz.referenced.column())
                    .field("timezone")
            })?;
            config.timezone_name = tz.value;
        }
        Ok(config)
    }

    /// The channel named `name`: one defined in `disparo.yaml`, else a built-in.
    pub fn channel(&self, name: &str) -> Option<ChannelConfig> {
        self.channels
            .get(name)
            .cloned()
            .or_else(|| ChannelConfig::builtin(name))
    }

    /// Every channel name a campaign may use, for hints.
    pub fn channel_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.channels.keys().cloned().collect();
        for b in ["console", "outbox"] {
            if !names.iter().any(|n| n == b) {
                names.push(b.into());
            }
        }
        names
    }
}

/// The first channel whose `ramp:` is not a list of daily budgets, as a located problem
/// naming the channel and the entry. A channel is read through its `type` tag, which hides
/// where its keys were; the text is read again for just the `ramp:` keys to find the line.
fn ramp_problem(
    path: &Path,
    text: &str,
    channels: &BTreeMap<String, ChannelConfig>,
) -> Option<Problem> {
    let (name, err) = channels
        .iter()
        .find_map(|(name, c)| c.ramp_config()?.ramp().err().map(|e| (name, e)))?;
    let mut p = Problem::new(format!("channel `{name}`: {err}"))
        .in_file(path)
        .field(format!("channels.{name}.ramp"))
        .hint(
            "list the channel's budget for each of its first days, as N/day (or N): `ramp: [1000/day, 5000/day, 20000/day]`; after the last entry the channel has no daily limit (repeat an entry to hold a tier)",
        );
    if let Some((line, column)) = ramp_location(text, name, err.entry()) {
        p = p.at(line, column);
    }
    Some(p)
}

/// Where channel `name`'s ramp entry `entry` is (or its `ramp:` value, for `None`).
fn ramp_location(text: &str, name: &str, entry: Option<usize>) -> Option<(u64, u64)> {
    #[derive(Deserialize)]
    struct File<T> {
        #[serde(default = "BTreeMap::new")]
        channels: BTreeMap<String, Channel<T>>,
    }
    #[derive(Deserialize)]
    struct Channel<T> {
        #[serde(default = "Option::default")]
        ramp: Option<T>,
    }
    let loc = |l: serde_saphyr::Location| Some((l.line(), l.column()));
    if let Some(i) = entry
        && let Ok(f) = serde_saphyr::from_str::<File<Vec<Spanned<IgnoredAny>>>>(text)
        && let Some(e) = f.channels.get(name)?.ramp.as_ref()?.get(i)
    {
        return loc(e.referenced);
    }
    let f = serde_saphyr::from_str::<File<Spanned<IgnoredAny>>>(text).ok()?;
    loc(f.channels.get(name)?.ramp.as_ref()?.referenced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> Problem {
        Config::parse(Path::new("disparo.yaml"), text).unwrap_err()
    }

    #[test]
    fn a_channel_ramp_is_read_and_checked() {
        let c = Config::parse(
            Path::new("disparo.yaml"),
            "channels:\n  wa: { type: console, ramp: [250/day, 2000/day, 10000] }\n",
        )
        .unwrap();
        let ramp = c.channel("wa").unwrap().settings().ramp.unwrap();
        assert_eq!(ramp.per_day(), [250, 2000, 10_000]);
        assert!(c.channel("console").unwrap().settings().ramp.is_none());
    }

    #[test]
    fn a_bad_ramp_entry_is_located_and_names_the_channel_and_the_entry() {
        let p = problem(
            "timezone: UTC\nchannels:\n  sms: { type: outbox }\n  wa:\n    type: console\n    ramp:\n      - 1000/day\n      - 5000/h\n",
        );
        assert_eq!(p.location(), "disparo.yaml:8:9", "{p}");
        assert_eq!(p.field.as_deref(), Some("channels.wa.ramp"));
        assert!(
            p.message
                .starts_with("channel `wa`: ramp entry 2 is \"5000/h\": ramp budgets are per day"),
            "{p}"
        );
        // Flow style, and the second channel of two.
        let p = problem(
            "channels:\n  a: { type: console, ramp: [1] }\n  b: { type: console, ramp: [1, 0] }\n",
        );
        assert_eq!(p.location(), "disparo.yaml:3:33", "{p}");
        assert!(p.message.contains("channel `b`: ramp entry 2 is 0"), "{p}");
        // Not a list, or empty: the value of `ramp:`.
        let p = problem("channels:\n  wa:\n    type: console\n    ramp: 1000/day\n");
        assert_eq!(p.location(), "disparo.yaml:4:11", "{p}");
        assert!(p.message.contains("must be a list"), "{p}");
        let p = problem("channels:\n  wa: { type: webhook, url: \"http://x\", ramp: [] }\n");
        assert!(p.message.contains("empty list"), "{p}");
        assert_eq!(p.line, Some(2), "{p}");
        assert!(p.hint.as_deref().unwrap().contains("repeat an entry"));
    }
}
