//! WhatsApp Cloud API webhooks: message statuses (`sent`, `delivered`, `read`, `failed` with
//! Meta's error codes) and `user_preferences` (marketing opt-out and resume), checked against
//! `X-Hub-Signature-256` (HMAC-SHA256 of the raw body under the app secret).
//!
//! What the codes do (Meta's error code reference): 131049 — Meta did not deliver a
//! marketing message to keep the user's engagement healthy (its per-user limit): sent again
//! 24 h later, not failed for good; 131026 (undeliverable: not a WhatsApp user, old app,
//! terms not accepted) and 131050 (the user stopped marketing messages) suppress the address.

use hmac::{KeyInit, Mac};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::Sha256;

use super::{CallbackRef, Effect, Event, Receipt, Source, Target};

/// How long Meta's per-user marketing limit (131049) holds a recipient back.
pub const PER_USER_LIMIT_WAIT_SECS: i64 = 24 * 3600;

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `app_secret`,
/// compared in constant time.
pub fn signature_ok(app_secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(app_secret)
        .expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[derive(Deserialize)]
struct Notification<'a> {
    #[serde(default)]
    object: Option<String>,
    #[serde(default, borrow)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default, borrow)]
    changes: Vec<Change<'a>>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(default)]
    field: String,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MessagesValue<'a> {
    #[serde(default, borrow)]
    statuses: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Status {
    id: String,
    status: String,
    #[serde(default)]
    timestamp: Option<Seconds>,
    #[serde(default)]
    recipient_id: Option<String>,
    #[serde(default)]
    biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    code: Option<i64>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    #[serde(default)]
    details: Option<String>,
}

#[derive(Deserialize)]
struct PreferencesValue<'a> {
    #[serde(default, borrow)]
    user_preferences: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Preference {
    wa_id: String,
    #[serde(default)]
    category: Option<String>,
    value: String,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    timestamp: Option<Seconds>,
}

/// Unix seconds, which Meta writes as a string in statuses and as a number elsewhere.
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Text(String),
    Number(i64),
}

impl Seconds {
    fn instant(&self) -> Option<Timestamp> {
        let s = match self {
            Seconds::Text(t) => t.trim().parse().ok()?,
            Seconds::Number(n) => *n,
        };
        Timestamp::from_second(s).ok()
    }
}

/// What a notification held: receipts, and what was left out (an unknown status, another
/// webhook field) so the server can log it.
#[derive(Debug, Default)]
pub struct Parsed {
    pub receipts: Vec<Receipt>,
    pub ignored: Vec<String>,
}

/// Reads one webhook notification. Errors say what is wrong with the document (the server
/// answers 400); parts it does not use are listed in [`Parsed::ignored`].
pub fn parse(body: &[u8], now: Timestamp) -> Result<Parsed, String> {
    let n: Notification<'_> =
        serde_json::from_slice(body).map_err(|e| format!("not a WhatsApp notification: {e}"))?;
    if n.object.as_deref() != Some("whatsapp_business_account") {
        return Err(format!(
            "`object` is {:?}, not \"whatsapp_business_account\"",
            n.object.as_deref().unwrap_or("missing")
        ));
    }
    let mut out = Parsed::default();
    for change in n.entry.iter().flat_map(|e| &e.changes) {
        let Some(value) = change.value else { continue };
        match change.field.as_str() {
            "messages" => {
                let v: MessagesValue<'_> = serde_json::from_str(value.get())
                    .map_err(|e| format!("`messages` change: {e}"))?;
                for raw in v.statuses {
                    match status(raw, now)? {
                        Some(r) => out.receipts.push(r),
                        None => out.ignored.push(format!("status {}", raw.get())),
                    }
                }
            }
            "user_preferences" => {
                let v: PreferencesValue<'_> = serde_json::from_str(value.get())
                    .map_err(|e| format!("`user_preferences` change: {e}"))?;
                for raw in v.user_preferences {
                    match preference(raw, now)? {
                        Some(r) => out.receipts.push(r),
                        None => out.ignored.push(format!("preference {}", raw.get())),
                    }
                }
            }
            other => out.ignored.push(format!("field {other:?}")),
        }
    }
    Ok(out)
}

fn address(wa_id: &str) -> Option<String> {
    let digits = wa_id.trim().trim_start_matches('+');
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| format!("+{digits}"))
}

fn status(raw: &RawValue, now: Timestamp) -> Result<Option<Receipt>, String> {
    let s: Status =
        serde_json::from_str(raw.get()).map_err(|e| format!("a status: {e}: {}", raw.get()))?;
    let event = match s.status.as_str() {
        "sent" => Event::Sent,
        "delivered" => Event::Delivered,
        "read" => Event::Read,
        "failed" => Event::Failed,
        _ => return Ok(None),
    };
    let error = s.errors.first();
    let code = error.and_then(|e| e.code).map(|c| c.to_string());
    let detail = error.map(|e| {
        [
            e.title.as_deref(),
            e.message.as_deref(),
            e.error_data.as_ref().and_then(|d| d.details.as_deref()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ")
    });
    let effect = match (event, code.as_deref()) {
        (Event::Failed, Some("131049")) => Effect::Resend {
            after_secs: PER_USER_LIMIT_WAIT_SECS,
        },
        (Event::Failed, Some(c @ ("131026" | "131050"))) => Effect::Suppress {
            reason: format!(
                "WhatsApp {c}: {}",
                detail.as_deref().unwrap_or(if c == "131050" {
                    "the user stopped marketing messages"
                } else {
                    "message undeliverable"
                })
            ),
        },
        _ => Effect::None,
    };
    let dedupe = format!(
        "status:{}:{}:{}",
        s.id,
        s.status,
        code.as_deref().unwrap_or("")
    );
    Ok(Some(Receipt {
        source: Source::Whatsapp,
        target: Target {
            provider_id: Some(s.id),
            reference: s
                .biz_opaque_callback_data
                .as_deref()
                .and_then(CallbackRef::parse),
            address: s.recipient_id.as_deref().and_then(address),
            recipient: None,
        },
        event,
        code,
        detail,
        occurred_at: s.timestamp.and_then(|t| t.instant()).unwrap_or(now),
        raw: raw.get().to_owned(),
        dedupe,
        effect,
    }))
}

fn preference(raw: &RawValue, now: Timestamp) -> Result<Option<Receipt>, String> {
    let p: Preference = serde_json::from_str(raw.get())
        .map_err(|e| format!("a user preference: {e}: {}", raw.get()))?;
    if p.category
        .as_deref()
        .is_some_and(|c| c != "marketing_messages")
    {
        return Ok(None);
    }
    let (event, effect) = match p.value.as_str() {
        "stop" => (
            Event::OptedOut,
            Effect::Suppress {
                reason: format!(
                    "WhatsApp: {}",
                    p.detail
                        .as_deref()
                        .unwrap_or("the user stopped marketing messages")
                ),
            },
        ),
        "resume" => (
            Event::OptedIn,
            Effect::Unsuppress {
                source: Source::Whatsapp.as_str().into(),
            },
        ),
        _ => return Ok(None),
    };
    let Some(address) = address(&p.wa_id) else {
        return Err(format!("a user preference names no number: {}", raw.get()));
    };
    let at = p.timestamp.and_then(|t| t.instant()).unwrap_or(now);
    Ok(Some(Receipt {
        source: Source::Whatsapp,
        dedupe: format!("preference:{address}:{}:{}", p.value, at.as_second()),
        target: Target {
            address: Some(address),
            ..Default::default()
        },
        event,
        code: None,
        detail: p.detail,
        occurred_at: at,
        raw: raw.get().to_owned(),
        effect,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_checked_over_the_raw_body() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(b"app-secret").unwrap();
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let good = format!("sha256={hex}");
        assert!(signature_ok(b"app-secret", body, Some(&good)));
        assert!(!signature_ok(b"other-secret", body, Some(&good)));
        assert!(!signature_ok(b"app-secret", b"{}", Some(&good)));
        assert!(!signature_ok(b"app-secret", body, None));
        assert!(!signature_ok(b"app-secret", body, Some(&hex)), "no prefix");
        assert!(!signature_ok(b"app-secret", body, Some("sha256=zz")));
        assert!(!signature_ok(
            b"app-secret",
            body,
            Some(&good[..good.len() - 2])
        ));
    }

    #[test]
    fn statuses_and_codes_become_receipts() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","statuses":[
            {"id":"wamid.A","status":"read","timestamp":"1764590400","recipient_id":"5511999990000","biz_opaque_callback_data":"m-9de8072142291495d0f61052.7"},
            {"id":"wamid.B","status":"failed","timestamp":"1764590401","recipient_id":"5511999990001","errors":[{"code":131049,"title":"This message was not delivered to maintain healthy ecosystem engagement."}]},
            {"id":"wamid.C","status":"failed","timestamp":"1764590402","recipient_id":"5511999990002","errors":[{"code":131050,"title":"Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business"}]},
            {"id":"wamid.D","status":"deleted","timestamp":"1764590403","recipient_id":"5511999990003"}
        ]}}]}]}"#;
        let p = parse(body, Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(p.receipts.len(), 3);
        assert_eq!(p.ignored.len(), 1);
        let read = &p.receipts[0];
        assert_eq!(read.event, Event::Read);
        assert_eq!(
            read.target.reference,
            Some(CallbackRef::new("m-9de8072142291495d0f61052", 7))
        );
        assert_eq!(read.target.address.as_deref(), Some("+5511999990000"));
        assert_eq!(read.occurred_at.as_second(), 1764590400);
        assert_eq!(p.receipts[1].effect, Effect::Resend { after_secs: 86_400 });
        assert!(matches!(p.receipts[2].effect, Effect::Suppress { .. }));
        assert_eq!(p.receipts[2].code.as_deref(), Some("131050"));
        assert!(parse(b"{}", Timestamp::UNIX_EPOCH).is_err());
        assert!(parse(b"not json", Timestamp::UNIX_EPOCH).is_err());
    }
}
