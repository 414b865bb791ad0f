//! Twilio's webhooks: the `StatusCallback` of each message (queued, sent, delivered,
//! undelivered, failed, read, with `ErrorCode`) and incoming messages, whose STOP-type
//! keywords suppress the sender's number. Both are form posts signed with
//! `X-Twilio-Signature`: base64 of HMAC-SHA1, under the account's auth token, of the full
//! URL Twilio called followed by every POST parameter's name and value, sorted by name.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use jiff::Timestamp;
use sha1::Sha1;

use super::{CallbackRef, Effect, Event, Receipt, Source, Target};

/// Words that opt a number out (Twilio's standard English keywords, and Portuguese and
/// Spanish ones marketers in Brazil and Latin America are asked to honour), compared with
/// the whole message, trimmed, in any case.
pub const STOP_WORDS: [&str; 10] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "PARAR",
    "SAIR",
    "CANCELAR",
    "BAJA",
];
/// Words that opt a number back in.
pub const START_WORDS: [&str; 4] = ["START", "UNSTOP", "YES", "VOLTAR"];

fn mac(auth_token: &[u8], url: &str, params: &[(String, String)]) -> hmac::Hmac<Sha1> {
    let mut mac = <hmac::Hmac<Sha1> as KeyInit>::new_from_slice(auth_token)
        .expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// The signature Twilio sends for a POST of `params` to `url`.
pub fn signature(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `header` is Twilio's signature of this request, compared in constant time.
pub fn signature_ok(
    auth_token: &[u8],
    url: &str,
    params: &[(String, String)],
    header: Option<&str>,
) -> bool {
    let Some(header) = header else { return false };
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    mac(auth_token, url, params).verify_slice(&given).is_ok()
}

fn field<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `+15551234567` from `+15551234567` or `whatsapp:+15551234567`.
fn number(s: &str) -> String {
    s.strip_prefix("whatsapp:").unwrap_or(s).trim().to_owned()
}

fn raw_form(params: &[(String, String)]) -> String {
    serde_urlencoded::to_string(params).unwrap_or_default()
}

/// A status callback as a receipt; `Ok(None)` for a status that is no step (`scheduled`,
/// `canceled`, ...). `query` is the callback URL's query (`disparo_ref`, `disparo_key`).
pub fn status(
    params: &[(String, String)],
    query: &[(String, String)],
    now: Timestamp,
) -> Result<Option<Receipt>, String> {
    let sid = field(params, "MessageSid")
        .or_else(|| field(params, "SmsSid"))
        .ok_or("no `MessageSid` in the status callback")?;
    let status = field(params, "MessageStatus")
        .or_else(|| field(params, "SmsStatus"))
        .ok_or("no `MessageStatus` in the status callback")?;
    let event = match status {
        "queued" | "accepted" | "sending" | "sent" => Event::Sent,
        "delivered" => Event::Delivered,
        "read" => Event::Read,
        "undelivered" | "failed" => Event::Failed,
        _ => return Ok(None),
    };
    let code = field(params, "ErrorCode").map(str::to_owned);
    let effect = match code.as_deref() {
        Some("21610") => Effect::Suppress {
            reason: "Twilio 21610: the recipient replied STOP".into(),
        },
        _ => Effect::None,
    };
    Ok(Some(Receipt {
        source: Source::Twilio,
        dedupe: format!("status:{sid}:{status}:{}", code.as_deref().unwrap_or("")),
        target: Target {
            provider_id: Some(sid.to_owned()),
            reference: field(query, "disparo_ref").and_then(CallbackRef::parse),
            address: field(params, "To").map(number),
            recipient: None,
        },
        event,
        detail: field(params, "ErrorMessage").map(str::to_owned),
        code,
        // Twilio's callbacks carry no time of the event: it is when it reached us.
        occurred_at: now,
        raw: raw_form(params),
        effect,
    }))
}

/// An incoming message as a receipt when it is an opt-out or opt-in keyword (or Twilio's
/// Advanced Opt-Out says so with `OptOutType`); `None` for any other message.
pub fn inbound(params: &[(String, String)], now: Timestamp) -> Result<Option<Receipt>, String> {
    let from = field(params, "From").ok_or("no `From` in the incoming message")?;
    let sid = field(params, "MessageSid")
        .or_else(|| field(params, "SmsSid"))
        .ok_or("no `MessageSid` in the incoming message")?;
    let body = field(params, "Body").unwrap_or("").trim().to_uppercase();
    let opt = field(params, "OptOutType").map(str::to_uppercase);
    let word = |list: &[&str]| list.iter().any(|w| *w == body);
    let event = match opt.as_deref() {
        Some("STOP") => Event::OptedOut,
        Some("START") => Event::OptedIn,
        _ if word(&STOP_WORDS) => Event::OptedOut,
        _ if word(&START_WORDS) => Event::OptedIn,
        _ => return Ok(None),
    };
    Ok(Some(Receipt {
        source: Source::Twilio,
        dedupe: format!("inbound:{sid}"),
        target: Target {
            address: Some(number(from)),
            ..Default::default()
        },
        code: Some(body.clone()).filter(|b| !b.is_empty()),
        detail: None,
        occurred_at: now,
        raw: raw_form(params),
        effect: match event {
            Event::OptedOut => Effect::Suppress {
                reason: format!("replied {body} by SMS"),
            },
            _ => Effect::Unsuppress {
                source: Source::Twilio.as_str().into(),
            },
        },
        event,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Twilio's documented example (its security page): auth token, URL, parameters and the
    /// signature they give.
    #[test]
    fn signature_matches_twilios_documented_example() {
        let params = form(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let sig = signature(b"12345", url, &params);
        assert_eq!(sig, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(signature_ok(b"12345", url, &params, Some(&sig)));
        assert!(!signature_ok(b"54321", url, &params, Some(&sig)));
        assert!(!signature_ok(
            b"12345",
            "https://mycompany.com/myapp.php",
            &params,
            Some(&sig)
        ));
        assert!(!signature_ok(b"12345", url, &params, None));
        assert!(!signature_ok(b"12345", url, &params, Some("not base64!")));
    }

    #[test]
    fn statuses_and_keywords() {
        let now = Timestamp::UNIX_EPOCH;
        let r = status(
            &form(&[
                ("MessageSid", "SM1"),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "30003"),
                ("To", "+15551234567"),
            ]),
            &form(&[("disparo_ref", "m-9de8072142291495d0f61052.3")]),
            now,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.event, r.code.as_deref(), r.target.reference.map(|x| x.id)),
            (Event::Failed, Some("30003"), Some(3))
        );
        assert!(
            status(
                &form(&[("MessageSid", "SM1"), ("MessageStatus", "scheduled")]),
                &[],
                now
            )
            .unwrap()
            .is_none()
        );
        assert!(status(&form(&[("MessageStatus", "sent")]), &[], now).is_err());
        for word in ["stop", " Parar ", "SAIR", "unsubscribe"] {
            let r = inbound(
                &form(&[
                    ("MessageSid", "SM2"),
                    ("From", "+5511999990000"),
                    ("Body", word),
                ]),
                now,
            )
            .unwrap()
            .unwrap();
            assert_eq!(r.event, Event::OptedOut, "{word}");
            assert_eq!(r.target.address.as_deref(), Some("+5511999990000"));
        }
        let hello = form(&[
            ("MessageSid", "SM3"),
            ("From", "+1"),
            ("Body", "stop it please"),
        ]);
        assert!(inbound(&hello, now).unwrap().is_none());
        let start = form(&[
            ("MessageSid", "SM4"),
            ("From", "whatsapp:+1555"),
            ("Body", "START"),
        ]);
        let r = inbound(&start, now).unwrap().unwrap();
        assert_eq!(
            (r.event, r.target.address.as_deref()),
            (Event::OptedIn, Some("+1555"))
        );
    }
}
