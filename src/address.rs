//! Recipient addresses in the one form they are compared and stored in: E.164 phones
//! (`+5511987654321`) and lower-cased emails. Suppression lists, frequency caps and channel
//! adapters all see the normalised form, so `+55 (11) 98765-4321` and `+5511987654321` are
//! one person.

/// What kind of address a channel sends to, which decides how it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Phone,
    Email,
    /// Anything else (a webhook's user id, a command's handle): trimmed, otherwise as is.
    Other,
}

impl AddressKind {
    /// The kind implied by the name of the field holding the address.
    pub fn for_field(field: &str) -> AddressKind {
        match field {
            "phone" | "mobile" | "msisdn" | "whatsapp" => AddressKind::Phone,
            "email" | "mail" => AddressKind::Email,
            _ => AddressKind::Other,
        }
    }
}

/// Normalises a phone to E.164, dropping spaces, dots, dashes and parentheses.
///
/// Twilio's `whatsapp:+5511...` form is the same phone: the prefix is dropped here (so
/// suppression and caps see one person) and the Twilio adapter adds it back for a WhatsApp
/// sender.
pub fn normalize_phone(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(16);
    let trimmed = raw.trim();
    let number = trimmed.strip_prefix("whatsapp:").unwrap_or(trimmed);
    for (i, c) in number.trim().chars().enumerate() {
        match c {
            '+' if i == 0 => out.push('+'),
            '0'..='9' => out.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(format!("{raw:?} is not a phone number")),
        }
    }
    let digits = out
        .strip_prefix('+')
        .ok_or_else(|| format!("{raw:?} has no country code"))?;
    if !digits.starts_with('0') {
        crate::phone::check_length(digits).map_err(|e| format!("{raw:?}: {e}"))?;
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(format!(
            "{raw:?} is not an E.164 number (+, country code, 8 to 15 digits)"
        ));
    }
    Ok(out)
}

/// Normalises an email address: trimmed and lower-cased, with a plausible shape.
pub fn normalize_email(raw: &str) -> Result<String, String> {
    let e = raw.trim().to_lowercase();
    let ok = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !e
                    .chars()
                    .any(|c| c.is_whitespace() || c == ',' || c == ';' || c == '<' || c == '>')
        }
        None => false,
    };
    if ok {
        Ok(e)
    } else {
        Err(format!("{raw:?} is not an email address"))
    }
}

/// Normalises `raw` as an address of `kind`; the error says what is wrong with it.
pub fn normalize(kind: AddressKind, raw: &str) -> Result<String, String> {
    match kind {
        AddressKind::Phone => normalize_phone(raw),
        AddressKind::Email => normalize_email(raw),
        AddressKind::Other => {
            let t = raw.trim();
            if t.is_empty() {
                Err("the address is empty".into())
            } else {
                Ok(t.to_owned())
            }
        }
    }
}

/// Normalises an address of unknown kind (a suppression list entry): `@` means email,
/// otherwise a phone if it parses as one, else as written.
pub fn normalize_any(raw: &str) -> String {
    if raw.contains('@') {
        normalize_email(raw).unwrap_or_else(|_| raw.trim().to_lowercase())
    } else {
        normalize_phone(raw).unwrap_or_else(|_| raw.trim().to_owned())
    }
}

/// Normalises an address typed for the suppression list: an email, or anything written only
/// with a phone's characters (digits, `+`, spaces, `-`, `.`, parentheses), which must then be
/// a valid E.164 phone (`suppress add 12345` is a typo, not an address); anything else (a
/// webhook's user id) is kept as written.
pub fn normalize_suppression(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t.contains('@') {
        return normalize_email(t);
    }
    if t.is_empty() {
        return Err("the address is empty".into());
    }
    if t.chars()
        .all(|c| c.is_ascii_digit() || " +-.()".contains(c))
    {
        return normalize_phone(t);
    }
    Ok(t.to_owned())
}

/// Every address of `suppress add`, normalised, or a problem for each one that is not (so
/// nothing is stored from a list with a typo in it).
pub fn suppression_list(raw: &[String]) -> Result<Vec<String>, Vec<crate::diag::Problem>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut problems = Vec::new();
    for a in raw {
        match normalize_suppression(a) {
            Ok(a) => out.push(a),
            Err(e) => problems.push(crate::diag::Problem::new(e).field("ADDRESS").hint(
                "write phones in E.164 (+, country code and number, e.g. +5511987654321) and emails whole; nothing was added",
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(
            normalize_phone("+55 (11) 98765-4321").unwrap(),
            "+5511987654321"
        );
        assert_eq!(
            normalize_phone(" whatsapp:+5511987654321").unwrap(),
            "+5511987654321"
        );
        assert!(normalize_phone("whatsapp:whatsapp:+5511987654321").is_err());
        assert!(normalize_phone("whatsapp:11987654321").is_err());
        for bad in [
            "11987654321",
            "+0123456789",
            "+55 11 abc",
            "+123",
            "",
            "+55 11 1234",
        ] {
            assert!(normalize_phone(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        for bad in [
            "ana",
            "ana@",
            "@x.com",
            "ana@localhost",
            "a b@x.com",
            "a@b@c.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
