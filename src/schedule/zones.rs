//! Rule 1: which zone a recipient is in, with a cache of loaded zones by name.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::RwLock;

use jiff::tz::TimeZone;

/// A `timezone` value that is not an IANA zone name known to the bundled database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown time zone {0:?}: use an IANA name such as America/Sao_Paulo, Europe/London or UTC"
)]
pub struct UnknownZone(pub String);

/// Looks up an IANA zone name in the bundled database; `None` for a blank or unknown name.
pub fn zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() {
        return None;
    }
    jiff::tz::db().get(name).ok()
}

/// Whether `name` is an IANA zone name (as the bundled tzdb knows it; case-insensitive, as
/// jiff matches names). Blank strings are not names.
pub fn is_valid_zone(name: &str) -> bool {
    let name = name.trim();
    !name.is_empty() && TimeZone::get(name).is_ok()
}

/// Zones by name, each loaded once. Lookups take `&self` so one cache can serve many threads;
/// a `jiff::tz::TimeZone` is reference-counted, so the clones handed out are cheap.
/// Unknown names are remembered too, so a bad column costs one database lookup, not one per row.
#[derive(Debug, Default)]
pub struct Zones {
    map: RwLock<HashMap<Box<str>, Option<TimeZone>, BuildHasherDefault<NameHasher>>>,
}

/// FNV-1a over the name's bytes: zone names are short, few and not attacker-chosen in a way
/// that matters (the map holds one entry per distinct name in an audience), so SipHash's
/// flood resistance is not worth its cost on the per-recipient path.
#[derive(Debug, Clone, Copy)]
struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl Zones {
    pub fn new() -> Zones {
        Zones::default()
    }

    /// The zone named `name` (surrounding whitespace ignored).
    pub fn get(&self, name: &str) -> Result<TimeZone, UnknownZone> {
        let name = name.trim();
        // A poisoned lock only means another thread panicked mid-insert; the map is still a
        // valid cache, so keep using it.
        let cached = {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            map.get(name).cloned()
        };
        let found = match cached {
            Some(found) => found,
            None => {
                let found = if name.is_empty() {
                    None
                } else {
                    TimeZone::get(name).ok()
                };
                let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
                map.insert(name.into(), found.clone());
                found
            }
        };
        found.ok_or_else(|| UnknownZone(name.to_string()))
    }

    /// docs/time-semantics.md rule 1 for one recipient: its own `timezone` when present, else `fallback` (the
    /// campaign's zone, else the project's, resolved by the caller). A missing or blank value
    /// falls back; a present but unknown name is an error, which the loading code reports
    /// against the row.
    pub fn resolve(
        &self,
        recipient_tz: Option<&str>,
        fallback: &TimeZone,
    ) -> Result<TimeZone, UnknownZone> {
        match recipient_tz.map(str::trim) {
            None | Some("") => Ok(fallback.clone()),
            Some(name) => self.get(name),
        }
    }

    /// How many distinct names (valid or not) have been looked up.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_prefers_recipient_zone_then_fallback() {
        let zones = Zones::new();
        let sp = TimeZone::get("America/Sao_Paulo").unwrap();
        let tz = zones.resolve(Some("Asia/Kathmandu"), &sp).unwrap();
        assert_eq!(tz.iana_name(), Some("Asia/Kathmandu"));
        assert_eq!(
            zones.resolve(None, &sp).unwrap().iana_name(),
            sp.iana_name()
        );
        assert_eq!(
            zones.resolve(Some("  "), &sp).unwrap().iana_name(),
            sp.iana_name()
        );
        assert_eq!(
            zones.resolve(Some("Mars/Olympus"), &sp),
            Err(UnknownZone("Mars/Olympus".into()))
        );
    }

    #[test]
    fn cache_remembers_hits_and_misses() {
        let zones = Zones::new();
        assert!(zones.get("Europe/Lisbon").is_ok());
        assert!(zones.get("Europe/Lisbon").is_ok());
        assert!(zones.get("Nowhere/Town").is_err());
        assert!(zones.get("Nowhere/Town").is_err());
        assert_eq!(zones.len(), 2);
    }

    #[test]
    fn validity() {
        assert!(is_valid_zone("UTC"));
        assert!(is_valid_zone("Australia/Lord_Howe"));
        assert!(!is_valid_zone(""));
        assert!(!is_valid_zone("EST5EDT6"));
        assert!(!is_valid_zone("Brazil/Sao_Paulo"));
    }
}
