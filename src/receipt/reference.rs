//! The callback reference: how a message names itself to a provider so that the provider's
//! receipts name it back, even when the answer to the send (with the provider's id) was lost.

use std::fmt;

use serde::Serialize;

/// `<message key>.<store row id>`, e.g. `m-9de8072142291495d0f61052.42`. The row id finds the
/// message in one primary-key lookup; the key (a hash of campaign, recipient and occurrence)
/// proves the row is that message and not another database's row with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CallbackRef {
    pub key: String,
    pub id: i64,
}

impl CallbackRef {
    pub fn new(key: &str, id: i64) -> CallbackRef {
        CallbackRef {
            key: key.to_owned(),
            id,
        }
    }

    /// Reads a reference back; `None` for anything that is not one (another sender's
    /// callback data, a truncated value).
    pub fn parse(s: &str) -> Option<CallbackRef> {
        let (key, id) = s.trim().rsplit_once('.')?;
        let hex = key.strip_prefix("m-")?;
        if hex.len() != 24 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(CallbackRef {
            key: key.to_owned(),
            id: id.parse().ok()?,
        })
    }
}

impl fmt::Display for CallbackRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.key, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::CallbackRef;

    #[test]
    fn round_trips_and_refuses_strangers() {
        let r = CallbackRef::new("m-9de8072142291495d0f61052", 42);
        assert_eq!(r.to_string(), "m-9de8072142291495d0f61052.42");
        assert_eq!(CallbackRef::parse(&r.to_string()), Some(r));
        for bad in [
            "",
            "m-9de8072142291495d0f61052",
            "m-9de8072142291495d0f6105.42",
            "x-9de8072142291495d0f61052.42",
            "m-9de8072142291495d0f61052.-1",
            "m-9de8072142291495d0f61052.4a",
            "m-9de8072142291495d0f61052.99999999999999999999",
            "campaign-42",
        ] {
            assert_eq!(CallbackRef::parse(bad), None, "{bad:?}");
        }
    }
}
