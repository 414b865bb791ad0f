//! `channels:` entries of `disparo.yaml`, one variant per adapter `type`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::units::Rate;

/// A channel as written in `disparo.yaml`. Unknown keys are refused so that a misspelt
/// setting never silently falls back to a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConfig {
    Console {
        #[serde(default)]
        address_field: Option<String>,
        #[serde(default)]
        rate: Option<Rate>,
        #[serde(default)]
        concurrency: Option<usize>,
        #[serde(default)]
        max_attempts: Option<u32>,
    },
    Outbox {
        /// The JSON Lines file, relative to the project root (default `outbox.jsonl`).
        #[serde(default)]
        path: Option<PathBuf>,
        #[serde(default)]
        address_field: Option<String>,
        #[serde(default)]
        rate: Option<Rate>,
        #[serde(default)]
        concurrency: Option<usize>,
        #[serde(default)]
        max_attempts: Option<u32>,
    },
}

/// The settings every channel has, with the adapter's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSettings {
    /// The recipient field holding the address (`phone`, `email`, ...).
    pub address_field: String,
    /// Messages per second; `None` is unlimited.
    pub rate: Option<Rate>,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Attempts before a transient error becomes `failed`.
    pub max_attempts: u32,
}

impl ChannelConfig {
    /// The built-in configuration of a channel named `console` or `outbox` that
    /// `disparo.yaml` does not define.
    pub fn builtin(name: &str) -> Option<ChannelConfig> {
        match name {
            "console" => Some(ChannelConfig::Console {
                address_field: None,
                rate: None,
                concurrency: None,
                max_attempts: None,
            }),
            "outbox" => Some(ChannelConfig::Outbox {
                path: None,
                address_field: None,
                rate: None,
                concurrency: None,
                max_attempts: None,
            }),
            _ => None,
        }
    }

    pub fn settings(&self) -> ChannelSettings {
        match self {
            ChannelConfig::Console {
                address_field,
                rate,
                concurrency,
                max_attempts,
            }
            | ChannelConfig::Outbox {
                address_field,
                rate,
                concurrency,
                max_attempts,
                ..
            } => ChannelSettings {
                address_field: address_field.clone().unwrap_or_else(|| "phone".into()),
                rate: *rate,
                concurrency: concurrency.unwrap_or(16).max(1),
                max_attempts: max_attempts.unwrap_or(5).max(1),
            },
        }
    }

    /// Whether bodies for this channel are HTML-escaped (only email HTML parts are).
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelConfig::Console { .. } => "console",
            ChannelConfig::Outbox { .. } => "outbox",
        }
    }
}
