//! The webhook's two signatures, made with one key.
//!
//! - `X-Disparo-Signature: sha256=<hex>`: HMAC-SHA256 of the body alone, kept for receivers
//!   written against it. It signs no time, so a captured request can be replayed.
//! - Standard Webhooks (<https://www.standardwebhooks.com>): `webhook-id` (the message key),
//!   `webhook-timestamp` (unix seconds when the attempt left) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`. A receiver
//!   that refuses timestamps older than a few minutes and an `(id, timestamp)` it has seen
//!   refuses replays; its libraries (and examples/webhook_receiver.py) check it as is.
//!
//! The key is the secret's bytes, except for a Standard Webhooks secret, `whsec_` followed by
//! base64, whose key is the decoded bytes (what those libraries do with such a secret): the
//! same key signs both headers.

use std::fmt;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// The HMAC key; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// The prefix of a Standard Webhooks secret.
pub(crate) const WHSEC: &str = "whsec_";

impl SigningKey {
    /// The key of `secret`: the base64 after `whsec_`, or the secret's own bytes. The error
    /// says what is wrong without the secret.
    pub(crate) fn from_secret(secret: &str) -> Result<SigningKey, String> {
        let Some(encoded) = secret.strip_prefix(WHSEC) else {
            return Ok(SigningKey(secret.as_bytes().to_vec()));
        };
        match base64_decode(encoded) {
            Some(key) if !key.is_empty() => Ok(SigningKey(key)),
            Some(_) => Err("is `whsec_` with nothing after it".into()),
            None => Err(
                "starts with `whsec_` (a Standard Webhooks secret) but what follows is not base64"
                    .into(),
            ),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// `sha256=` and the hex HMAC-SHA256 of `body`.
    pub(crate) fn legacy(&self, body: &[u8]) -> String {
        let digest = self.mac(&[body]);
        let mut out = String::with_capacity(7 + 64);
        out.push_str("sha256=");
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in digest {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    fn verify(&self, parts: &[&[u8]], expected: &[u8]) -> bool {
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for p in parts {
            mac.update(p);
        }
        mac.verify_slice(expected).is_ok()
    }

    /// Whether `header` is [`legacy`](Self::legacy) of `body` (constant time).
    pub(crate) fn legacy_ok(&self, body: &[u8], header: &str) -> bool {
        let Some(hex) = header.trim().strip_prefix("sha256=") else {
            return false;
        };
        if hex.len() != 64 {
            return false;
        }
        let bytes: Option<Vec<u8>> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        bytes.is_some_and(|b| self.verify(&[body], &b))
    }

    /// Whether one of the space-separated `v1,<base64>` signatures in `header` is
    /// [`standard`](Self::standard) of this id, timestamp and body (constant time).
    pub(crate) fn standard_ok(&self, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
        header.split_whitespace().any(|sig| {
            sig.strip_prefix("v1,")
                .and_then(base64_decode)
                .is_some_and(|b| {
                    self.verify(&[id.as_bytes(), b".", timestamp.as_bytes(), b".", body], &b)
                })
        })
    }

    /// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
    pub(crate) fn standard(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let digest = self.mac(&[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        format!("v1,{}", super::super::base64(&digest, super::super::BASE64))
    }
}

/// Standard base64 (padding optional); `None` for anything else.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_other_text() {
        for n in 0..40u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let enc = super::super::super::base64(&bytes, super::super::super::BASE64);
            assert_eq!(base64_decode(&enc).as_deref(), Some(&bytes[..]));
            assert_eq!(
                base64_decode(enc.trim_end_matches('=')).as_deref(),
                Some(&bytes[..])
            );
        }
        assert_eq!(base64_decode("a b"), None);
        assert_eq!(base64_decode("abcde"), None);
        assert_eq!(base64_decode("ab-_"), None);
    }

    /// The Standard Webhooks specification's own example: secret, id, timestamp, payload and
    /// the signature it gives for them.
    #[test]
    fn standard_signature_matches_the_specifications_example() {
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            key.standard("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let good = "v1,bm9ub3Q= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(key.standard_ok(id, "1614265330", body, good));
        assert!(!key.standard_ok(id, "1614265331", body, good));
        assert!(!key.standard_ok(id, "1614265330", b"{}", good));
        assert!(!key.standard_ok(id, "1614265330", body, "v1,bm9ub3Q="));
        let legacy = key.legacy(body);
        assert!(key.legacy_ok(body, &legacy));
        assert!(!key.legacy_ok(b"{}", &legacy));
        assert!(!key.legacy_ok(body, &legacy[..70]));
        // A plain secret is its own bytes.
        assert_eq!(
            SigningKey::from_secret("plain").unwrap(),
            SigningKey(b"plain".to_vec())
        );
        assert!(SigningKey::from_secret("whsec_").is_err());
        assert!(SigningKey::from_secret("whsec_not base64!").is_err());
        assert!(format!("{key:?}").contains("***"));
    }
}
