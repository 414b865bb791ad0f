//! Rule 1: zone names, as the bundled time-zone database knows them. `plan` keeps each zone it
//! meets, with the schedule placed in it, once per name (`plan::Planner`).

use jiff::tz::TimeZone;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity() {
        assert!(is_valid_zone("UTC"));
        assert!(is_valid_zone("Australia/Lord_Howe"));
        assert!(!is_valid_zone(""));
        assert!(!is_valid_zone("EST5EDT6"));
        assert!(!is_valid_zone("Brazil/Sao_Paulo"));
    }
}
