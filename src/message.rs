//! What a recipient receives and the envelope a channel adapter is handed.
//!
//! These types are the contract between rendering (`template`), the store (which keeps the
//! rendered [`Content`] so a send never re-renders) and the channel adapters, which must send
//! exactly what `preview` showed.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A message rendered for one recipient, in every form a channel may need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// Plain text body (SMS, WhatsApp session text, email text part, console).
    pub body: String,
    /// Email subject, from the template's front matter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Email HTML part, rendered with HTML escaping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// WhatsApp Business template parts, from the template's front matter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsappTemplate>,
    /// Twilio parts (content template, media), from the template's `twilio:` front matter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twilio: Option<TwilioContent>,
}

/// What a template's `twilio:` front matter adds to a Twilio message, rendered.
///
/// With a `content_sid` the message is a Twilio Content Template (what WhatsApp
/// business-initiated messages through Twilio need): Twilio composes the text from the
/// approved template and `variables`, and the `Body` is not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwilioContent {
    /// `HX` followed by 32 hex digits (checked at validate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sid: Option<String>,
    /// Content variables by name (`"1"`, `"2"`, ...), each rendered for the recipient; sent
    /// as the `ContentVariables` JSON object.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub variables: std::collections::BTreeMap<String, String>,
    /// Media URLs (MMS, WhatsApp media), sent as repeated `MediaUrl` fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media_url: Vec<String>,
}

/// The parts of a WhatsApp Business ("HSM") template message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatsappTemplate {
    /// The approved template's name at Meta.
    pub name: String,
    /// The template language code at Meta (`pt_BR`, `en_US`).
    pub language: String,
    /// Body parameters, rendered, in the order of the template's `{{1}}`, `{{2}}`, ...
    #[serde(default)]
    pub body: Vec<String>,
}

/// One message as handed to a channel adapter for one delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Stable identity of the message (campaign, recipient, occurrence); the idempotency key
    /// passed to providers, identical across re-plans, retries and lease reclaims.
    pub message_id: String,
    pub campaign: String,
    /// The recipient's `id` in the audience.
    pub recipient: String,
    /// The channel name from `disparo.yaml` (or a built-in).
    pub channel: String,
    /// Where the message goes: an E.164 phone, an email address, or whatever field the channel names.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    pub content: Content,
    /// Template variables as rendered (campaign vars overlaid by the recipient's own fields).
    #[serde(default)]
    pub vars: serde_json::Map<String, serde_json::Value>,
    /// The planned send instant.
    pub scheduled_at: Timestamp,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub attempt_at: Timestamp,
}
