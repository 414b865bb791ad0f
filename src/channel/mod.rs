//! Channel adapters: send one rendered [`Envelope`] and classify what happened.
//!
//! The set of adapters is closed (an enum built from `disparo.yaml` by `type`), so a typo in a
//! channel type is a validation error, not a runtime surprise, and dispatch needs no dynamic
//! dispatch. Rate and concurrency limits, retries and the circuit breaker live in `dispatch`;
//! an adapter only sends once and says whether trying again could help.

mod config;
mod console;
mod outbox;

use std::time::Duration;

pub use config::{ChannelConfig, ChannelSettings};
pub use console::{Console, STDOUT_CLOSED};
pub use outbox::Outbox;

use crate::message::Envelope;

/// A successful hand-over to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The provider's id for the message (WhatsApp `wamid`, Twilio `SM...`), when it has one.
    pub provider_id: Option<String>,
}

/// What a failure means for the message, the recipient and the campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorClass {
    /// Network errors, HTTP 429/5xx, provider throttling: retry later, after `retry_after` if the
    /// provider said so.
    Transient { retry_after: Option<Duration> },
    /// This message will never go through as it is (bad request, invalid address).
    Permanent,
    /// The recipient refuses messages (unsubscribed, blocked): permanent, and with
    /// `suppress` the address is added to the suppression list.
    Recipient { suppress: bool },
    /// Every message of the campaign will fail alike (bad credentials, template not found or
    /// paused): the circuit breaker pauses the campaign.
    Breaker,
}

/// A failed send. `message` never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub class: ErrorClass,
    /// The provider's error code, when there is one (`131056`, `21211`, `HTTP 503`).
    pub code: Option<String>,
    pub message: String,
}

impl SendError {
    pub fn transient(message: impl Into<String>) -> SendError {
        SendError {
            class: ErrorClass::Transient { retry_after: None },
            code: None,
            message: message.into(),
        }
    }
    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError {
            class: ErrorClass::Permanent,
            code: None,
            message: message.into(),
        }
    }
}

/// One configured channel, ready to send.
#[derive(Debug)]
pub enum Channel {
    Console(Console),
    Outbox(Outbox),
}

impl Channel {
    /// Sends one message once; retries are the dispatcher's business.
    pub async fn send(&self, envelope: &Envelope) -> Result<Delivered, SendError> {
        match self {
            Channel::Console(c) => c.send(envelope).await,
            Channel::Outbox(c) => c.send(envelope).await,
        }
    }

    /// The exact request this channel would send for `envelope`, secrets redacted, for `preview`.
    pub fn preview_request(&self, envelope: &Envelope) -> serde_json::Value {
        match self {
            Channel::Console(c) => c.preview_request(envelope),
            Channel::Outbox(c) => c.preview_request(envelope),
        }
    }
}
