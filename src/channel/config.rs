//! `channels:` entries of `disparo.yaml`, one variant per adapter `type`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::ramp::{Ramp, RampConfig};
use crate::units::{Duration, Rate};

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
        #[serde(default)]
        ramp: Option<RampConfig>,
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
        #[serde(default)]
        ramp: Option<RampConfig>,
    },
    /// Meta WhatsApp Cloud API template messages.
    WhatsappCloud(WhatsappCloudConfig),
    /// Twilio Programmable Messaging (SMS, MMS, WhatsApp via Twilio).
    Twilio(TwilioConfig),
    /// Email over SMTP.
    Smtp(SmtpConfig),
    /// A JSON POST (or PUT) to any HTTP endpoint.
    Webhook(WebhookConfig),
    /// Any program: one JSON message on stdin, one JSON result on stdout.
    Command(CommandConfig),
}

/// `type: whatsapp_cloud`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappCloudConfig {
    /// The sending number's id at Meta (not the phone number itself); quoted or not.
    #[serde(deserialize_with = "string_or_integer")]
    pub phone_number_id: String,
    /// Environment variable holding the access token.
    pub token_env: String,
    /// Environment variable holding the Meta app's secret, the key of the
    /// `X-Hub-Signature-256` on status webhooks (`disparo serve` checks it).
    #[serde(default)]
    pub app_secret_env: Option<String>,
    /// Environment variable holding the verify token of the webhook subscription (the
    /// `hub.verify_token` Meta's handshake sends to `disparo serve`).
    #[serde(default)]
    pub verify_token_env: Option<String>,
    /// Default `https://graph.facebook.com/v23.0`.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub address_field: Option<String>,
    /// Default `80/s`, Meta's default throughput per number.
    #[serde(default)]
    pub rate: Option<Rate>,
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Daily budgets for the channel's first days (`ramp: [1000/day, 5000/day]`).
    #[serde(default)]
    pub ramp: Option<RampConfig>,
}

/// `type: twilio`. Exactly one of `from` and `messaging_service_sid`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// Environment variable holding the account SID (`AC...`).
    pub account_sid_env: String,
    /// Environment variable holding the auth token.
    pub auth_token_env: String,
    /// Sender number (E.164), alphanumeric sender id or `whatsapp:+...`.
    #[serde(default)]
    pub from: Option<String>,
    /// Messaging Service (`MG...`) that picks the sender.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Default `https://api.twilio.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The sender is a WhatsApp one, so `To` gets the `whatsapp:` prefix. Implied by a
    /// `from` written `whatsapp:+...`; a Messaging Service's senders are not visible from
    /// here, so with `messaging_service_sid` it must be said (`whatsapp: true`).
    #[serde(default)]
    pub whatsapp: Option<bool>,
    /// Twilio's `StatusCallback` URL; `disparo_key=<message key>` is added to its query so a
    /// receipts server can match each callback to its message.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// `ValidityPeriod`: seconds Twilio may keep the message queued, 1 to 36000.
    #[serde(default)]
    pub validity_period: Option<u32>,
    /// `ShortenUrls`: needs a Messaging Service with link shortening set up.
    #[serde(default)]
    pub shorten_urls: bool,
    /// Hand a message scheduled 15 minutes to 35 days ahead to Twilio with `SendAt` and
    /// `ScheduleType=fixed` (needs a Messaging Service); see docs/twilio.md.
    #[serde(default)]
    pub send_at: bool,
    #[serde(default)]
    pub address_field: Option<String>,
    #[serde(default)]
    pub rate: Option<Rate>,
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Daily budgets for the channel's first days (`ramp: [1000/day, 5000/day]`).
    #[serde(default)]
    pub ramp: Option<RampConfig>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption at all: only for a relay on the same host or a test server.
    None,
}

/// `type: smtp`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default 587 for `starttls`, 465 for `tls`, 25 for `none`.
    #[serde(default)]
    pub port: Option<u16>,
    /// Environment variables holding the login; both or neither.
    #[serde(default)]
    pub username_env: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// The From header, e.g. `Loja <news@example.com>`.
    pub from: String,
    #[serde(default)]
    pub tls: SmtpTls,
    /// A PEM file of extra CA certificates to trust (relative to the project root), e.g. for a
    /// relay with a private CA. When set, only these certificates are trusted.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Connection and command timeout; default `30s`.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// The Reply-To header, e.g. `Atendimento <ajuda@example.com>`.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Extra headers on every message (`X-Campaign-Team: growth`); structural headers (From,
    /// To, Subject, Date, Message-ID, MIME, DKIM, List-Unsubscribe) are refused.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A recipient field whose value is the display name in `To` (`"Ana Souza" <ana@…>`).
    #[serde(default)]
    pub name_field: Option<String>,
    /// `List-Unsubscribe` (and, with a URL, RFC 8058's one-click `List-Unsubscribe-Post`).
    #[serde(default)]
    pub list_unsubscribe: Option<Box<ListUnsubscribe>>,
    /// The environment variable holding the key that signs each recipient's unsubscribe
    /// token; needed when the `list_unsubscribe` URL holds `{token}`.
    #[serde(default)]
    pub unsubscribe_secret_env: Option<String>,
    /// DKIM signing of every message.
    #[serde(default)]
    pub dkim: Option<Box<DkimConfig>>,
    #[serde(default)]
    pub address_field: Option<String>,
    #[serde(default)]
    pub rate: Option<Rate>,
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Daily budgets for the channel's first days (`ramp: [1000/day, 5000/day]`).
    #[serde(default)]
    pub ramp: Option<RampConfig>,
}

/// `list_unsubscribe:` of an smtp channel: where a reader unsubscribes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListUnsubscribe {
    /// An https URL; `{token}` becomes the recipient's signed token (see `unsubscribe`).
    #[serde(default)]
    pub url: Option<String>,
    /// An address that unsubscribes whoever writes to it.
    #[serde(default)]
    pub mailto: Option<String>,
}

/// `dkim:` of an smtp channel.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    pub selector: String,
    pub domain: String,
    /// The environment variable holding the private key (PEM for rsa, base64 for ed25519).
    #[serde(default)]
    pub private_key_env: Option<String>,
    /// Or a file holding it (relative to the project root).
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub algorithm: DkimAlgorithm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    #[default]
    Rsa,
    Ed25519,
}

/// `type: webhook`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Extra request headers (not secret: they appear in previews).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Environment variable holding the signing secret: the HMAC key of
    /// `X-Disparo-Signature` and of the Standard Webhooks `webhook-signature`; a secret
    /// written `whsec_<base64>` (Standard Webhooks' form) keys both with the decoded bytes.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// `POST` (default), `PUT` or `PATCH`.
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub address_field: Option<String>,
    #[serde(default)]
    pub rate: Option<Rate>,
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Daily budgets for the channel's first days (`ramp: [1000/day, 5000/day]`).
    #[serde(default)]
    pub ramp: Option<RampConfig>,
}

/// `type: command`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// A program on `PATH`, or a path (relative ones from the project root).
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Default `30s`; a program still running then is killed and the attempt is transient.
    #[serde(default)]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub address_field: Option<String>,
    #[serde(default)]
    pub rate: Option<Rate>,
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Daily budgets for the channel's first days (`ramp: [1000/day, 5000/day]`).
    #[serde(default)]
    pub ramp: Option<RampConfig>,
}

/// Accepts `phone_number_id: 106540352242922` as well as the quoted form.
fn string_or_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        I(u64),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::S(s) => s,
        Raw::I(i) => i.to_string(),
    })
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
    /// The warm-up ramp: daily budgets for the channel's first days (`None`: no limit).
    pub ramp: Option<Ramp>,
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
                ramp: None,
            }),
            "outbox" => Some(ChannelConfig::Outbox {
                path: None,
                address_field: None,
                rate: None,
                concurrency: None,
                max_attempts: None,
                ramp: None,
            }),
            _ => None,
        }
    }

    /// The common settings with this adapter's defaults: address field `phone` (`email` for
    /// smtp), concurrency 16 (4 for smtp and command), 5 attempts, and a rate of 80/s for
    /// whatsapp_cloud (Meta's default throughput) and none otherwise.
    pub fn settings(&self) -> ChannelSettings {
        let (address_field, rate, concurrency, max_attempts, defaults) = match self {
            ChannelConfig::Console {
                address_field,
                rate,
                concurrency,
                max_attempts,
                ..
            }
            | ChannelConfig::Outbox {
                address_field,
                rate,
                concurrency,
                max_attempts,
                ..
            } => (
                address_field,
                rate,
                concurrency,
                max_attempts,
                ("phone", None, 16),
            ),
            ChannelConfig::WhatsappCloud(c) => (
                &c.address_field,
                &c.rate,
                &c.concurrency,
                &c.max_attempts,
                ("phone", Some(Rate::per_second(80.0)), 16),
            ),
            ChannelConfig::Twilio(c) => (
                &c.address_field,
                &c.rate,
                &c.concurrency,
                &c.max_attempts,
                ("phone", None, 16),
            ),
            ChannelConfig::Smtp(c) => (
                &c.address_field,
                &c.rate,
                &c.concurrency,
                &c.max_attempts,
                ("email", None, 4),
            ),
            ChannelConfig::Webhook(c) => (
                &c.address_field,
                &c.rate,
                &c.concurrency,
                &c.max_attempts,
                ("phone", None, 16),
            ),
            ChannelConfig::Command(c) => (
                &c.address_field,
                &c.rate,
                &c.concurrency,
                &c.max_attempts,
                ("phone", None, 4),
            ),
        };
        let (default_field, default_rate, default_concurrency) = defaults;
        ChannelSettings {
            address_field: address_field
                .clone()
                .unwrap_or_else(|| default_field.into()),
            rate: rate.or(default_rate),
            concurrency: concurrency.unwrap_or(default_concurrency).max(1),
            max_attempts: max_attempts.unwrap_or(5).max(1),
            ramp: self.ramp_config().and_then(|r| r.ramp().ok()).cloned(),
        }
    }

    /// The `ramp:` as written, if any (checked when `disparo.yaml` is loaded: a bad one is a
    /// located problem there, so `settings` sees only good ones).
    pub fn ramp_config(&self) -> Option<&RampConfig> {
        match self {
            ChannelConfig::Console { ramp, .. } | ChannelConfig::Outbox { ramp, .. } => ramp,
            ChannelConfig::WhatsappCloud(c) => &c.ramp,
            ChannelConfig::Twilio(c) => &c.ramp,
            ChannelConfig::Smtp(c) => &c.ramp,
            ChannelConfig::Webhook(c) => &c.ramp,
            ChannelConfig::Command(c) => &c.ramp,
        }
        .as_ref()
    }

    /// The `type` as written in `disparo.yaml`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelConfig::Console { .. } => "console",
            ChannelConfig::Outbox { .. } => "outbox",
            ChannelConfig::WhatsappCloud(_) => "whatsapp_cloud",
            ChannelConfig::Twilio(_) => "twilio",
            ChannelConfig::Smtp(_) => "smtp",
            ChannelConfig::Webhook(_) => "webhook",
            ChannelConfig::Command(_) => "command",
        }
    }
}
