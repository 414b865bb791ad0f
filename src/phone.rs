//! What an E.164 number's country code tells before anything is sent: how many digits its
//! national significant number has (the country's plan as published to the ITU under E.164),
//! and, where the country keeps a single IANA zone, which one.
//!
//! A small checked table rather than the `phonenumber` crate (see ARCHITECTURE.md,
//! dependencies): the countries a campaign here mostly reaches, each length range the plan's
//! whole range (landline and mobile), so a real number is never refused; a code not listed
//! gets only E.164's own bounds. A zone is listed only when the country has exactly one entry
//! in the tz database's zone.tab (and every other country sharing the code keeps the same
//! time): +55, +351 (Azores), +1, +7, +34 (Canaries), +61 and +52 have none.

/// One country code's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountryPlan {
    /// The calling code, digits only (`55`).
    pub code: &'static str,
    pub country: &'static str,
    /// Fewest and most digits after the country code.
    pub min: u8,
    pub max: u8,
    /// The country's only IANA zone, if it has one.
    pub zone: Option<&'static str>,
}

const fn p(
    code: &'static str,
    country: &'static str,
    min: u8,
    max: u8,
    zone: Option<&'static str>,
) -> CountryPlan {
    CountryPlan {
        code,
        country,
        min,
        max,
        zone,
    }
}

/// Country codes are prefix-free (E.164), so at most one entry matches a number.
pub const PLANS: &[CountryPlan] = &[
    p("1", "North America (NANP)", 10, 10, None),
    p("7", "Russia and Kazakhstan", 10, 10, None),
    p("20", "Egypt", 8, 10, Some("Africa/Cairo")),
    p("27", "South Africa", 9, 9, Some("Africa/Johannesburg")),
    p("30", "Greece", 10, 10, Some("Europe/Athens")),
    p("31", "the Netherlands", 9, 9, Some("Europe/Amsterdam")),
    p("32", "Belgium", 8, 9, Some("Europe/Brussels")),
    p("33", "France", 9, 9, Some("Europe/Paris")),
    p("34", "Spain", 9, 9, None),
    p("36", "Hungary", 8, 9, Some("Europe/Budapest")),
    p("39", "Italy", 6, 11, Some("Europe/Rome")),
    p("40", "Romania", 9, 9, Some("Europe/Bucharest")),
    p("41", "Switzerland", 9, 9, Some("Europe/Zurich")),
    p("44", "the United Kingdom", 9, 10, Some("Europe/London")),
    p("45", "Denmark", 8, 8, Some("Europe/Copenhagen")),
    p("47", "Norway", 8, 8, Some("Europe/Oslo")),
    p("48", "Poland", 9, 9, Some("Europe/Warsaw")),
    p("51", "Peru", 8, 9, Some("America/Lima")),
    p("52", "Mexico", 10, 10, None),
    p("54", "Argentina", 10, 11, None),
    p("55", "Brazil", 10, 11, None),
    p("56", "Chile", 9, 9, None),
    p("57", "Colombia", 10, 10, Some("America/Bogota")),
    p("58", "Venezuela", 10, 10, Some("America/Caracas")),
    p("61", "Australia", 9, 9, None),
    p("65", "Singapore", 8, 8, Some("Asia/Singapore")),
    p("66", "Thailand", 8, 9, Some("Asia/Bangkok")),
    p("81", "Japan", 9, 10, Some("Asia/Tokyo")),
    p("82", "South Korea", 8, 10, Some("Asia/Seoul")),
    p("84", "Vietnam", 9, 10, Some("Asia/Ho_Chi_Minh")),
    p("90", "Turkey", 10, 10, Some("Europe/Istanbul")),
    p("91", "India", 10, 10, Some("Asia/Kolkata")),
    p("238", "Cabo Verde", 7, 7, Some("Atlantic/Cape_Verde")),
    p(
        "239",
        "São Tomé and Príncipe",
        7,
        7,
        Some("Africa/Sao_Tome"),
    ),
    p("244", "Angola", 9, 9, Some("Africa/Luanda")),
    p("258", "Mozambique", 8, 9, Some("Africa/Maputo")),
    p("351", "Portugal", 9, 9, None),
    p("353", "Ireland", 7, 9, Some("Europe/Dublin")),
    p("598", "Uruguay", 8, 8, Some("America/Montevideo")),
    p("971", "the United Arab Emirates", 8, 9, Some("Asia/Dubai")),
    p("972", "Israel", 8, 9, Some("Asia/Jerusalem")),
];

/// The plan of the country code `digits` (an E.164 number without its `+`) starts with.
pub fn plan_of(digits: &str) -> Option<&'static CountryPlan> {
    PLANS.iter().find(|p| digits.starts_with(p.code))
}

/// Checks the digits after a listed country code against its plan; the error says what is
/// wrong ("+55 numbers (Brazil) have 10 or 11 digits after 55; this one has 6").
pub fn check_length(digits: &str) -> Result<(), String> {
    let Some(plan) = plan_of(digits) else {
        return Ok(());
    };
    let n = digits.len() - plan.code.len();
    if (usize::from(plan.min)..=usize::from(plan.max)).contains(&n) {
        return Ok(());
    }
    let want = if plan.min == plan.max {
        format!("{}", plan.min)
    } else if plan.max == plan.min + 1 {
        format!("{} or {}", plan.min, plan.max)
    } else {
        format!("{} to {}", plan.min, plan.max)
    };
    Err(format!(
        "+{code} numbers ({country}) have {want} digits after {code}; this one has {n}",
        code = plan.code,
        country = plan.country
    ))
}

/// The zone of a normalised phone (`+44…`) whose country has exactly one, with its code.
pub fn zone_of(e164: &str) -> Option<(&'static str, &'static str)> {
    let plan = plan_of(e164.strip_prefix('+')?)?;
    Some((plan.code, plan.zone?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_zone_in_the_table_resolves_in_jiff() {
        for p in PLANS {
            if let Some(z) = p.zone {
                assert!(jiff::tz::TimeZone::get(z).is_ok(), "{z} (+{})", p.code);
            }
        }
    }

    #[test]
    fn codes_are_prefix_free_and_ranges_sane() {
        for a in PLANS {
            assert!(
                a.min <= a.max && a.code.len() + usize::from(a.max) <= 15,
                "{a:?}"
            );
            for b in PLANS {
                if a.code != b.code {
                    assert!(!b.code.starts_with(a.code), "{} and {}", a.code, b.code);
                }
            }
        }
    }

    #[test]
    fn lengths_per_country() {
        assert_eq!(
            check_length("55111234").unwrap_err(),
            "+55 numbers (Brazil) have 10 or 11 digits after 55; this one has 6"
        );
        assert!(check_length("5511987654321").is_ok());
        assert!(check_length("551132654321").is_ok());
        assert!(check_length("351912345678").is_ok());
        assert!(check_length("35191234567").is_err());
        assert!(check_length("12125550123").is_ok());
        assert!(check_length("1212555012").is_err());
        // Not in the table: only E.164's own bounds apply (elsewhere).
        assert!(check_length("4930123456").is_ok());
    }

    #[test]
    fn zones_only_for_single_zone_countries() {
        assert_eq!(zone_of("+447700900123"), Some(("44", "Europe/London")));
        assert_eq!(zone_of("+5511987654321"), None);
        assert_eq!(zone_of("+351912345678"), None);
        assert_eq!(zone_of("+12125550123"), None);
        assert_eq!(zone_of("+4930123456"), None);
    }
}
