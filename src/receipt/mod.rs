//! Receipts: what providers and recipients tell us after a message left — delivered, read,
//! failed late, bounced, complained, opted out — as one shape whatever the source, so that the
//! store applies them with one rule (a state never moves backwards, an event is stored once)
//! and the funnel counts them alike.
//!
//! Parsers for each source live beside this module (`whatsapp`, `twilio`, `webhook`, `email`)
//! and are pure: bytes in, receipts out. `disparo serve` and `disparo bounces import` feed
//! them to [`crate::store::Store::record_receipts`].

pub mod email;
mod reference;
pub mod twilio;
pub mod webhook;
pub mod whatsapp;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use reference::CallbackRef;

/// What happened to a message (or to an address) after the provider accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The provider queued or handed it on (WhatsApp `sent`, Twilio `queued`/`sent`).
    Sent,
    Delivered,
    Read,
    /// The provider gave up after accepting it (WhatsApp `failed`, Twilio `undelivered`,
    /// `failed`).
    Failed,
    /// A hard bounce (a DSN with a 5.x.x status): the address does not exist.
    Bounced,
    /// A soft bounce (4.x.x): counted, nothing else.
    SoftBounce,
    /// The recipient reported it as spam (an ARF complaint).
    Complained,
    /// The recipient asked to receive no more (STOP, one-click unsubscribe, WhatsApp's
    /// marketing opt-out).
    OptedOut,
    /// The recipient asked to receive messages again (START, UNSTOP, WhatsApp `resume`).
    OptedIn,
}

impl Event {
    pub const ALL: [Event; 9] = [
        Event::Sent,
        Event::Delivered,
        Event::Read,
        Event::Failed,
        Event::Bounced,
        Event::SoftBounce,
        Event::Complained,
        Event::OptedOut,
        Event::OptedIn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Sent => "sent",
            Event::Delivered => "delivered",
            Event::Read => "read",
            Event::Failed => "failed",
            Event::Bounced => "bounced",
            Event::SoftBounce => "soft_bounce",
            Event::Complained => "complained",
            Event::OptedOut => "opted_out",
            Event::OptedIn => "opted_in",
        }
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Where the event puts a message on the delivery ladder; a receipt moves a message's
    /// delivery status only upwards (a `delivered` arriving after `read` is stored as an
    /// event but changes nothing). `None`: the event is no step on the ladder.
    pub fn rank(self) -> Option<u8> {
        match self {
            Event::Sent => Some(1),
            // A message either arrives or fails: whichever is reported first stays.
            Event::Delivered | Event::Failed | Event::Bounced => Some(2),
            Event::Read => Some(3),
            Event::SoftBounce | Event::Complained | Event::OptedOut | Event::OptedIn => None,
        }
    }
}

/// Who reported it: kept with the event, and the namespace of its de-duplication key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Whatsapp,
    Twilio,
    Webhook,
    Email,
    Unsubscribe,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Whatsapp => "whatsapp",
            Source::Twilio => "twilio",
            Source::Webhook => "webhook",
            Source::Email => "email",
            Source::Unsubscribe => "unsubscribe",
        }
    }
}

/// How a receipt names its message. Providers know their own id; our callback reference
/// (sent as WhatsApp's `biz_opaque_callback_data`, in Twilio's callback URL, in webhook
/// calls) names the message even when the provider's answer to the send was lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Target {
    pub provider_id: Option<String>,
    pub reference: Option<CallbackRef>,
    /// The recipient's address, when the event concerns it (an opt-out, a bounce): with no
    /// message found, the event still acts on the address.
    pub address: Option<String>,
    /// (campaign, recipient id), as an unsubscribe token names them: the recipient's latest
    /// message of that campaign.
    pub recipient: Option<(String, String)>,
}

/// What a receipt does beyond moving the message's delivery status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    None,
    /// Put the address on the suppression list (every campaign, every channel).
    Suppress {
        reason: String,
    },
    /// Take the address off the suppression list, but only an entry this same kind of
    /// receipt put there (`source`): a START never lifts an opt-out made elsewhere.
    Unsuppress {
        source: String,
    },
    /// The provider refused it for now (WhatsApp 131049, the per-user marketing limit): the
    /// message goes back to pending, due this long after the event.
    Resend {
        after_secs: i64,
    },
}

/// One receipt, ready for the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receipt {
    pub source: Source,
    pub target: Target,
    pub event: Event,
    /// The provider's own code (WhatsApp error code, Twilio ErrorCode, SMTP status `5.1.1`).
    pub code: Option<String>,
    /// The provider's words for it, for people.
    pub detail: Option<String>,
    /// When it happened, by the provider's clock (the time we received it when it says none).
    pub occurred_at: Timestamp,
    /// The receipt as it came (one status object, one form, one DSN's fields), kept with the
    /// event for whoever has to look.
    pub raw: String,
    /// What makes two deliveries of this receipt the same event: a provider retrying a
    /// webhook, a bounce imported twice. Unique per [`Source`].
    pub dedupe: String,
    pub effect: Effect,
}

/// What the store did with one receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// Stored, and the message's delivery status moved (or the effect took place).
    Recorded,
    /// Stored; the message was already further along (e.g. `delivered` after `read`).
    Stale,
    /// Already stored: a replay, nothing changed.
    Duplicate,
    /// Stored without a message: no message matches its ids (yet: a receipt racing the
    /// send's own record is matched later, see `Store::match_receipts`). Its effect on the
    /// address, if any, took place.
    Unmatched,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Recorded => "recorded",
            Applied::Stale => "stale",
            Applied::Duplicate => "duplicate",
            Applied::Unmatched => "unmatched",
        }
    }
}

/// One line of the funnel: how far a group of messages got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Funnel {
    pub campaign: String,
    /// The group's name when split (`locale`, `zone`); `None` for the whole campaign.
    pub group: Option<String>,
    /// Every message the plan made, cancelled ones excepted.
    pub planned: u64,
    /// Accepted by the provider (our `sent` state).
    pub sent: u64,
    /// Reported delivered (a message read counts as delivered).
    pub delivered: u64,
    pub read: u64,
    /// Failed at the send, or reported failed afterwards (those are also in `sent` and in
    /// `undelivered`).
    pub failed: u64,
    /// Accepted by the provider, then reported failed by a receipt (Twilio's `undelivered`,
    /// WhatsApp's late `failed`): the part of `failed` that the queue shows as `sent`.
    pub undelivered: u64,
    /// Hard bounces (the address does not exist); not counted in `failed`.
    pub bounced: u64,
    /// Opt-outs and complaints traced to one of these messages.
    pub opted_out: u64,
}

impl Funnel {
    /// Delivered per hundred sent, to one decimal; `None` before anything was sent.
    pub fn delivered_pct(&self) -> Option<f64> {
        pct(self.delivered, self.sent)
    }
    /// Read per hundred delivered (the read rate WhatsApp's own reports show), to one
    /// decimal; `None` before anything was delivered.
    pub fn read_pct(&self) -> Option<f64> {
        pct(self.read, self.delivered)
    }
}

/// `part` per hundred `whole`, rounded to one decimal.
fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

/// How [`crate::store::Store::funnel`] splits a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FunnelBy {
    #[default]
    Campaign,
    Locale,
    Zone,
    /// The A/B variant (`variants:`); '' for a campaign without.
    Variant,
}
