//! The fields of reports read into values: recipient addresses, enhanced status codes,
//! diagnostics, dates, and the pieces of Exim's plain-text bounces.

use jiff::Timestamp;

use super::MAX_DETAIL;
use super::mime::{self, Headers};

/// The address of a DSN's `Final-Recipient` / `Original-Recipient` or ARF's
/// `Original-Rcpt-To`: `rfc822;addr`, `utf-8;addr` (RFC 6533, `\x{HH}` escapes undone) or a
/// bare address, normalised as the audience's are; `None` for other address types (`x400`).
pub(super) fn recipient_address(value: &str) -> Option<String> {
    let (kind, addr) = match value.split_once(';') {
        Some((k, a)) => (k.trim().to_ascii_lowercase(), a.trim()),
        None => ("rfc822".into(), value.trim()),
    };
    let addr = addr.trim_matches(['<', '>']).trim();
    let addr = match kind.as_str() {
        "rfc822" => addr.to_owned(),
        "utf-8" | "utf8" => unescape_utf8(addr),
        _ => return None,
    };
    crate::address::normalize_email(&addr).ok()
}

/// RFC 6533's `\x{HEX}` escapes in a `utf-8` address.
pub(super) fn unescape_utf8(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("\\x{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        let decoded = after.split_once('}').and_then(|(hex, tail)| {
            let c = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)?;
            Some((c, tail))
        });
        match decoded {
            Some((c, tail)) => {
                out.push(c);
                rest = tail;
            }
            None => {
                out.push_str("\\x{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// An enhanced status code (`5.1.1`, RFC 3463): class 2, 4 or 5, then up to three digits
/// twice.
pub(super) fn status_code(value: &str) -> Option<String> {
    let token = value.split_whitespace().next()?;
    let mut it = token.split('.');
    let (Some(class), Some(subject), Some(detail), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return None;
    };
    let digits = |s: &str| (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    (matches!(class, "2" | "4" | "5") && digits(subject) && digits(detail))
        .then(|| token.to_owned())
}

/// The first enhanced status code in free text (`550 5.1.1 <a@b>: User unknown`).
pub(super) fn status_in_text(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|t| t.trim_matches('.'))
        .find_map(status_code)
}

/// A `Diagnostic-Code` for people: without its type (`smtp;`), white space collapsed.
pub(super) fn diagnostic(value: &str) -> String {
    let text = match value.split_once(';') {
        Some((kind, rest))
            if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            rest
        }
        _ => value,
    };
    cap(&collapse(text))
}

pub(super) fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn cap(s: &str) -> String {
    if s.chars().count() <= MAX_DETAIL {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX_DETAIL).collect();
        t.push('…');
        t
    }
}

/// An RFC 5322 date (`Mon, 30 Nov 2026 12:00:05 +0000 (UTC)`), a wrong weekday forgiven.
pub(super) fn parse_date(s: &str) -> Option<Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .relaxed_weekday(true)
        .parse_timestamp(s.trim())
        .ok()
}

/// The lines Exim writes under a failed address (indented), up to the next empty line.
pub(super) fn exim_paragraph(text: &str, address: &str) -> Option<String> {
    let mut lines = text.lines();
    lines.find(|l| {
        let t = l.trim().trim_matches(['<', '>']);
        t.eq_ignore_ascii_case(address)
            || t.split_whitespace().next().is_some_and(|w| {
                w.trim_matches(['<', '>', ':'])
                    .eq_ignore_ascii_case(address)
            })
    })?;
    let body: Vec<&str> = lines
        .take_while(|l| !l.trim().is_empty() && l.starts_with([' ', '\t']))
        .map(str::trim)
        .collect();
    (!body.is_empty()).then(|| body.join("\n"))
}

/// The header fields Exim copies after `------ This is a copy of the message, including all
/// the headers. ------` (or `... of the message's headers.`).
pub(super) fn copied_headers(text: &str) -> Option<Headers> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find("this is a copy of the message")?;
    let after = text.get(at..)?;
    let start = after.find('\n')? + 1;
    let rest = after.get(start..)?.trim_start_matches(['\r', '\n']);
    let h = mime::headers(mime::split(rest.as_bytes()).0);
    (!h.is_empty()).then_some(h)
}
