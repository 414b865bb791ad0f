//! Per-recipient unsubscribe tokens: what an email's `List-Unsubscribe` link carries, so the
//! one-click POST (RFC 8058) that a mailbox provider sends on the reader's behalf can be
//! honoured without a login and cannot be forged for anyone else's address.
//!
//! A token is `v1.<payload>.<mac>`: the payload is the campaign, the recipient id and the
//! address (base64url, so the endpoint needs no lookup to know whom to suppress), the MAC an
//! HMAC-SHA256 of the payload under a key only the sender holds (`unsubscribe_secret_env`).
//! Verification compares MACs in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// Whom a token unsubscribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub campaign: String,
    pub recipient: String,
    pub address: String,
}

const VERSION: &str = "v1";

fn mac(key: &[u8]) -> hmac::Hmac<Sha256> {
    // HMAC takes a key of any length.
    <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// The token for `who`, signed with `key`.
pub fn token(key: &[u8], who: &Subscriber) -> String {
    let payload = URL_SAFE_NO_PAD.encode(
        [
            who.campaign.as_str(),
            who.recipient.as_str(),
            who.address.as_str(),
        ]
        .join("\n"),
    );
    let mut m = mac(key);
    m.update(VERSION.as_bytes());
    m.update(b".");
    m.update(payload.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{VERSION}.{payload}.{sig}")
}

/// Whom `token` unsubscribes, if `key` signed it; `None` for a token changed in any byte,
/// signed with another key, or not a token at all.
pub fn verify(key: &[u8], token: &str) -> Option<Subscriber> {
    let mut parts = token.split('.');
    let (version, payload, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if version != VERSION || parts.next().is_some() {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let mut m = mac(key);
    m.update(version.as_bytes());
    m.update(b".");
    m.update(payload.as_bytes());
    // Constant time, whatever the length of `sig`.
    m.verify_slice(&sig).ok()?;
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let mut fields = text.splitn(3, '\n');
    Some(Subscriber {
        campaign: fields.next()?.to_owned(),
        recipient: fields.next()?.to_owned(),
        address: fields.next()?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> Subscriber {
        Subscriber {
            campaign: "black-friday".into(),
            recipient: "c001".into(),
            address: "ana@example.com".into(),
        }
    }

    #[test]
    fn a_token_verifies_with_its_key_and_says_whom() {
        let t = token(b"k1", &ana());
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{t}"
        );
        assert_eq!(verify(b"k1", &t), Some(ana()));
    }

    #[test]
    fn another_key_a_changed_byte_or_another_subscriber_is_refused() {
        let t = token(b"k1", &ana());
        assert_eq!(verify(b"k2", &t), None);
        // Every single-byte change anywhere in the token is refused.
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(b).unwrap();
            if changed != t {
                assert_eq!(verify(b"k1", &changed), None, "byte {i} changed");
            }
        }
        // A payload for someone else with this token's MAC.
        let mut bia = ana();
        bia.address = "bia@example.com".into();
        let other = token(b"k1", &bia);
        let (_, sig) = t.rsplit_once('.').unwrap();
        let (head, _) = other.rsplit_once('.').unwrap();
        assert_eq!(verify(b"k1", &format!("{head}.{sig}")), None);
        for junk in ["", "v1", "v1..", "v2.a.b", "v1.a.b.c", "v1.!!.??"] {
            assert_eq!(verify(b"k1", junk), None, "{junk:?}");
        }
    }
}
