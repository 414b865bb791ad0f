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
    /// The A/B variant (`variants:` of the campaign) whose template rendered this: part of
    /// what was rendered, so it is stored, previewed, exported and reported with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
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
    /// (plain positional text; the shape every row had before the richer parts below).
    #[serde(default)]
    pub body: Vec<String>,
    /// Body parameters that are not plain positional text (currency, date_time, named), in
    /// Meta's parameter shape; sent after `body` in the body component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_params: Vec<WaParam>,
    /// The header's one parameter (text, image, video, document or location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<WaParam>,
    /// Button parameters by the button's index in the approved template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<WaButton>,
    /// `marketing`, `utility` or `authentication` as declared in front matter; `None` when
    /// the template does not say (treated as marketing by the +1 check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Send through Meta's Marketing Messages API (`/marketing_messages`) rather than `/messages`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub marketing_endpoint: bool,
}

impl WhatsappTemplate {
    /// One line for humans (`preview`): the parameters, then the header and buttons if any.
    pub fn summary(&self) -> String {
        let short = |p: &WaParam| match p {
            WaParam::Text { text, .. } => text.clone(),
            WaParam::Currency { currency, .. } => currency.fallback_value.clone(),
            WaParam::DateTime { date_time, .. } => date_time.fallback_value.clone(),
            WaParam::Image { image: m }
            | WaParam::Video { video: m }
            | WaParam::Document { document: m } => {
                m.link.clone().or_else(|| m.id.clone()).unwrap_or_default()
            }
            WaParam::Location { location } => {
                format!("{},{}", location.latitude, location.longitude)
            }
            WaParam::Payload { payload } => payload.clone(),
            WaParam::CouponCode { coupon_code } => coupon_code.clone(),
        };
        let named = |p: &WaParam| match p {
            WaParam::Text {
                parameter_name: Some(n),
                ..
            }
            | WaParam::Currency {
                parameter_name: Some(n),
                ..
            }
            | WaParam::DateTime {
                parameter_name: Some(n),
                ..
            } => format!("{n}={}", short(p)),
            _ => short(p),
        };
        let params: Vec<String> = self
            .body
            .iter()
            .cloned()
            .chain(self.body_params.iter().map(named))
            .collect();
        let mut out = format!("params: {}", params.join(" | "));
        if let Some(h) = &self.header {
            let kind = serde_json::to_value(h)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned))
                .unwrap_or_default();
            out.push_str(&format!(" · header {kind}: {}", short(h)));
        }
        for b in &self.buttons {
            out.push_str(&format!(
                " · button {} {}: {}",
                b.index,
                b.sub_type,
                short(&b.parameter)
            ));
        }
        if self.marketing_endpoint {
            out.push_str(" · via marketing_messages");
        }
        out
    }
}

/// One rendered template parameter, serialised exactly as Meta's parameter object, so the
/// adapter sends it as stored and `preview` shows what is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WaParam {
    Text {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
        text: String,
    },
    Currency {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
        currency: WaCurrency,
    },
    DateTime {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
        date_time: WaDateTime,
    },
    Image {
        image: WaMedia,
    },
    Video {
        video: WaMedia,
    },
    Document {
        document: WaMedia,
    },
    Location {
        location: WaLocation,
    },
    /// A quick-reply button's payload.
    Payload {
        payload: String,
    },
    /// A copy-code button's coupon.
    CouponCode {
        coupon_code: String,
    },
}

/// Meta's currency object: `amount_1000` is the amount times 1000.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaCurrency {
    pub fallback_value: String,
    pub code: String,
    pub amount_1000: i64,
}

/// Meta's date_time object (Cloud API always shows the fallback value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaDateTime {
    pub fallback_value: String,
}

/// A media object: by uploaded media `id` or by public `link`; `filename` for documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaMedia {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// A location header; coordinates as the decimal strings Meta's examples send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaLocation {
    pub latitude: String,
    pub longitude: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// One button's parameter: `sub_type` is `url`, `quick_reply` or `copy_code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaButton {
    pub index: u8,
    pub sub_type: String,
    pub parameter: WaParam,
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
