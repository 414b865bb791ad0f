//! Receipts posted to `disparo serve` by the system behind a webhook channel, in disparo's
//! own documented shape (docs/receipts.md), signed like the calls disparo makes to it.
//!
//! ```json
//! {"id": "evt_1", "reference": "m-9de8072142291495d0f61052.42", "status": "delivered",
//!  "at": "2026-12-01T10:00:00Z"}
//! ```
//! One event, a list of them, or `{"events": [...]}`. `reference` is the `reference` field of
//! the message disparo posted (or `provider_id`: the `id` the endpoint answered with); `status`
//! is one of sent, delivered, read, failed, bounced, soft_bounce, complained, opted_out,
//! opted_in; `id` makes a retried post the same event.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{CallbackRef, Effect, Event, Receipt, Source, Target};

/// Events accepted in one post.
pub const MAX_EVENTS: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    provider_id: Option<String>,
    #[serde(default)]
    address: Option<String>,
    status: String,
    #[serde(default)]
    at: Option<Timestamp>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Deserialize)]
struct Wrapped<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Reads a post; the error names the event (by position) and what is wrong with it.
pub fn parse(body: &[u8], now: Timestamp) -> Result<Vec<Receipt>, String> {
    let not_json = |e: serde_json::Error| format!("not a JSON receipt: {e}");
    let whole: &RawValue = serde_json::from_slice(body).map_err(not_json)?;
    let raws: Vec<&RawValue> = if whole.get().starts_with('[') {
        serde_json::from_str(whole.get()).map_err(not_json)?
    } else if let Ok(Wrapped { events }) = serde_json::from_str(whole.get()) {
        events
    } else {
        vec![whole]
    };
    if raws.len() > MAX_EVENTS {
        return Err(format!(
            "{} events in one post; send at most {MAX_EVENTS}",
            raws.len()
        ));
    }
    raws.into_iter()
        .enumerate()
        .map(|(i, raw)| event(raw, now).map_err(|e| format!("event {}: {e}", i + 1)))
        .collect()
}

fn event(raw: &RawValue, now: Timestamp) -> Result<Receipt, String> {
    let w: WireEvent = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
    let event = Event::parse(&w.status).ok_or_else(|| {
        format!(
            "`status` {:?} is none of {}",
            w.status,
            Event::ALL.map(Event::as_str).join(", ")
        )
    })?;
    let reference = match &w.reference {
        Some(r) => Some(CallbackRef::parse(r).ok_or_else(|| {
            format!("`reference` {r:?} is not one disparo sent (`m-<24 hex>.<number>`)")
        })?),
        None => None,
    };
    if reference.is_none() && w.provider_id.is_none() && w.address.is_none() {
        return Err("names no message: give `reference`, `provider_id` or `address`".into());
    }
    let at = w.at.unwrap_or(now);
    let effect = match event {
        Event::Bounced | Event::Complained | Event::OptedOut => Effect::Suppress {
            reason: format!(
                "{} reported by the webhook{}",
                event.as_str(),
                w.detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        },
        Event::OptedIn => Effect::Unsuppress {
            source: Source::Webhook.as_str().into(),
        },
        _ => Effect::None,
    };
    let dedupe = match &w.id {
        Some(id) => format!("id:{id}"),
        None => format!(
            "{}:{}:{}:{}:{}",
            w.reference.as_deref().unwrap_or(""),
            w.provider_id.as_deref().unwrap_or(""),
            w.status,
            w.code.as_deref().unwrap_or(""),
            at
        ),
    };
    Ok(Receipt {
        source: Source::Webhook,
        target: Target {
            provider_id: w.provider_id,
            reference,
            address: w.address,
            recipient: None,
        },
        event,
        code: w.code,
        detail: w.detail,
        occurred_at: at,
        raw: raw.get().to_owned(),
        dedupe,
        effect,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_many_or_wrapped() {
        let now = Timestamp::UNIX_EPOCH;
        let one = br#"{"id":"e1","reference":"m-9de8072142291495d0f61052.1","status":"read","at":"2026-12-01T10:00:00Z"}"#;
        let r = parse(one, now).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].event, Event::Read);
        assert_eq!(r[0].dedupe, "id:e1");
        let many = br#"[{"provider_id":"p1","status":"delivered"},{"address":"a@b.c","status":"opted_out"}]"#;
        let r = parse(many, now).unwrap();
        assert_eq!(r.len(), 2);
        assert!(matches!(r[1].effect, Effect::Suppress { .. }));
        let wrapped = br#"{"events":[{"provider_id":"p1","status":"failed","code":"E1"}]}"#;
        assert_eq!(parse(wrapped, now).unwrap()[0].code.as_deref(), Some("E1"));
        for (bad, says) in [
            (&br#"{"status":"delivered"}"#[..], "names no message"),
            (br#"{"provider_id":"p","status":"arrived"}"#, "is none of"),
            (
                br#"{"reference":"42","status":"read"}"#,
                "not one disparo sent",
            ),
            (
                br#"{"provider_id":"p","status":"read","extra":1}"#,
                "unknown field",
            ),
            (
                br#"[{"provider_id":"p","status":"read"},{"status":"x"}]"#,
                "event 2",
            ),
        ] {
            let e = parse(bad, now).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
