//! `disparo.yaml`: the project's default zone and its channels.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::tz::TimeZone;
use serde::Deserialize;
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
