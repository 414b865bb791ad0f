//! The checks `preview` shows on each rendered message and `validate` sums up: SMS
//! segments (GSM-7 or UCS-2, with the characters that force UCS-2), WhatsApp's body limit,
//! empty template parameters, missing subjects. One function, so both say the same.

/// What a channel delivers, for length checks: SMS segments, WhatsApp's body limit, subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    WhatsApp,
    Sms,
    Email,
    Other,
}

/// The kind of a channel: from its adapter type, else from its name or address field.
pub fn channel_kind(name: &str, type_name: &str, address_field: &str) -> Kind {
    match type_name {
        "whatsapp_cloud" | "whatsapp" => return Kind::WhatsApp,
        "twilio" | "sms" => return Kind::Sms,
        "smtp" | "email" => return Kind::Email,
        _ => {}
    }
    let n = name.to_ascii_lowercase();
    if n.contains("whatsapp") || n == "wa" {
        Kind::WhatsApp
    } else if n.contains("sms") {
        Kind::Sms
    } else if n.contains("mail") || address_field == "email" {
        Kind::Email
    } else {
        Kind::Other
    }
}

/// WhatsApp's limit on a template message body, in characters.
pub const WHATSAPP_BODY_LIMIT: usize = 1024;
/// Twilio refuses SMS bodies longer than this many characters.
pub const SMS_BODY_LIMIT: usize = 1600;

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of the GSM 03.38 extension table: each takes two septets (escape + char).
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// How an SMS body is encoded and split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    /// `GSM-7` or `UCS-2`.
    pub encoding: &'static str,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    pub segments: usize,
    /// The characters that forced UCS-2, in order of first appearance.
    pub non_gsm: Vec<char>,
    /// Segments it would take if those characters were replaced by GSM-7 ones.
    pub segments_as_gsm: usize,
}

fn gsm_cost(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Splits costs into segments: everything fits one of `single` units, or segments of
/// `multi` units each (the rest is the concatenation header); a character never straddles two.
fn pack(costs: impl Iterator<Item = usize> + Clone, single: usize, multi: usize) -> (usize, usize) {
    let units: usize = costs.clone().sum();
    if units <= single {
        return (units, 1);
    }
    let (mut segments, mut used) = (1, 0);
    for c in costs {
        if used + c > multi {
            segments += 1;
            used = 0;
        }
        used += c;
    }
    (units, segments)
}

/// SMS encoding and segment count: GSM-7 (160 per message, 153 per segment when split;
/// extension characters count 2) unless a character needs UCS-2 (70, or 67 UTF-16 units).
pub fn sms_segments(text: &str) -> Segments {
    let mut non_gsm = Vec::new();
    for c in text.chars() {
        if gsm_cost(c).is_none() && !non_gsm.contains(&c) {
            non_gsm.push(c);
        }
    }
    let as_gsm = || text.chars().map(|c| gsm_cost(c).unwrap_or(1));
    let (_, segments_as_gsm) = pack(as_gsm(), 160, 153);
    if non_gsm.is_empty() {
        let (units, segments) = pack(as_gsm(), 160, 153);
        Segments {
            encoding: "GSM-7",
            units,
            segments,
            non_gsm,
            segments_as_gsm,
        }
    } else {
        let (units, segments) = pack(text.chars().map(char::len_utf16), 70, 67);
        Segments {
            encoding: "UCS-2",
            units,
            segments,
            non_gsm,
            segments_as_gsm,
        }
    }
}

/// Length facts and warnings about one rendered message.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub chars: usize,
    pub segments: Option<Segments>,
    pub warnings: Vec<String>,
}

fn quote_chars(cs: &[char]) -> String {
    cs.iter()
        .take(6)
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' => format!("{c:?} (curly quote)"),
            _ => format!("{c:?}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The warning for a marketing WhatsApp template to a +1 number: Meta paused delivery of
/// marketing templates to US numbers on 2025-04-01 (the send is accepted, then fails with
/// error 131049). A template without `category:` counts as marketing: most campaign
/// templates are, and the cost of being wrong is a message silently never delivered, while
/// a utility template silences this with one line.
pub const US_MARKETING: &str = "marketing WhatsApp template to a +1 number: Meta has not delivered marketing templates to US numbers since 2025-04-01 (error 131049); send these recipients SMS or email, or declare `category: utility` in the template's `whatsapp:` front matter if it is one";

/// Whether a message is a (possibly) marketing WhatsApp template to a +1 (NANP) number.
pub fn us_marketing(kind: Kind, content: &crate::message::Content, address: &str) -> bool {
    kind == Kind::WhatsApp
        && address.trim_start().starts_with("+1")
        && content
            .whatsapp
            .as_ref()
            .is_some_and(|w| w.category.as_deref().is_none_or(|c| c == "marketing"))
}

/// [`check`] plus what depends on the address: the +1 marketing warning.
pub fn check_to(kind: Kind, content: &crate::message::Content, address: &str) -> Checks {
    let mut out = check(kind, content);
    if us_marketing(kind, content, address) {
        out.warnings.push(US_MARKETING.to_owned());
    }
    out
}

pub fn check(kind: Kind, content: &crate::message::Content) -> Checks {
    let body = &content.body;
    let chars = body.chars().count();
    let mut out = Checks {
        chars,
        ..Checks::default()
    };
    match kind {
        Kind::Sms => {
            let s = sms_segments(body);
            if s.segments > 1 {
                out.warnings.push(format!(
                    "{} SMS segments: billed as {} messages",
                    s.segments, s.segments
                ));
            }
            if s.encoding == "UCS-2" && s.segments_as_gsm < s.segments {
                out.warnings.push(format!(
                    "UCS-2 because of {}: {} segment(s) instead of {} in GSM-7",
                    quote_chars(&s.non_gsm),
                    s.segments,
                    s.segments_as_gsm
                ));
            }
            if chars > SMS_BODY_LIMIT {
                out.warnings.push(format!(
                    "{chars} characters: over the {SMS_BODY_LIMIT} providers such as Twilio accept"
                ));
            }
            out.segments = Some(s);
        }
        Kind::WhatsApp => {
            if chars > WHATSAPP_BODY_LIMIT {
                out.warnings.push(format!(
                    "{chars} characters: WhatsApp limits a template body to {WHATSAPP_BODY_LIMIT}"
                ));
            }
            if let Some(wa) = &content.whatsapp {
                for (i, p) in wa.body.iter().enumerate() {
                    if p.trim().is_empty() {
                        out.warnings.push(format!(
                            "template parameter {} is empty: WhatsApp rejects empty parameters",
                            i + 1
                        ));
                    } else if p.contains(['\n', '\t']) || p.contains("     ") {
                        out.warnings.push(format!(
                            "template parameter {} has a new line, a tab or more than 4 spaces in a row: WhatsApp rejects it",
                            i + 1
                        ));
                    }
                }
            }
        }
        Kind::Email => {
            if content
                .subject
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
            {
                out.warnings
                    .push("no subject: add `subject:` to the template's front matter".to_owned());
            }
        }
        Kind::Other => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_single_and_concatenated() {
        assert_eq!(sms_segments(&"a".repeat(160)).segments, 1);
        assert_eq!(sms_segments(&"a".repeat(161)).segments, 2);
        assert_eq!(sms_segments(&"a".repeat(306)).segments, 2);
        assert_eq!(sms_segments(&"a".repeat(307)).segments, 3);
        assert_eq!(sms_segments("Olá João, à bientôt").encoding, "UCS-2"); // á, ã and ô are not GSM-7
        assert_eq!(sms_segments("Ça coûte 5 € ^^").encoding, "UCS-2");
    }

    #[test]
    fn gsm7_extension_characters_count_two() {
        let s = sms_segments(&"€".repeat(80));
        assert_eq!((s.encoding, s.units, s.segments), ("GSM-7", 160, 1));
        let s = sms_segments(&format!("{}€", "a".repeat(159)));
        assert_eq!((s.units, s.segments), (161, 2));
        // An escape pair is never split across segments.
        let s = sms_segments(&format!("{}€{}", "a".repeat(152), "a".repeat(10)));
        assert_eq!(s.segments, 2);
    }

    #[test]
    fn ucs2_limits_and_the_characters_that_force_it() {
        assert_eq!(sms_segments(&"ã".repeat(70)).segments, 1);
        assert_eq!(sms_segments(&"ã".repeat(71)).segments, 2);
        assert_eq!(sms_segments(&"ã".repeat(134)).segments, 2);
        assert_eq!(sms_segments(&"ã".repeat(135)).segments, 3);
        // Emoji take two UTF-16 units.
        assert_eq!(sms_segments(&"😀".repeat(35)).units, 70);
        let s = sms_segments(&format!("{}’", "a".repeat(100)));
        assert_eq!((s.encoding, s.segments, s.segments_as_gsm), ("UCS-2", 2, 1));
        assert_eq!(s.non_gsm, vec!['’']);
    }

    #[test]
    fn whatsapp_body_limit_is_flagged() {
        let mut c = crate::message::Content {
            body: "x".repeat(1024),
            ..Default::default()
        };
        assert!(check(Kind::WhatsApp, &c).warnings.is_empty());
        c.body.push('x');
        assert_eq!(check(Kind::WhatsApp, &c).warnings.len(), 1);
    }

    #[test]
    fn marketing_whatsapp_to_plus_one_is_flagged_unless_utility() {
        let mut c = crate::message::Content {
            body: "Hi".into(),
            whatsapp: Some(crate::message::WhatsappTemplate::default()),
            ..Default::default()
        };
        let warned = |c: &crate::message::Content, to: &str, kind: Kind| {
            check_to(kind, c, to)
                .warnings
                .iter()
                .any(|w| w == US_MARKETING)
        };
        assert!(
            warned(&c, "+12125554743", Kind::WhatsApp),
            "no category counts as marketing"
        );
        assert!(!warned(&c, "+5511987654321", Kind::WhatsApp));
        assert!(!warned(&c, "+12125554743", Kind::Sms));
        c.whatsapp.as_mut().unwrap().category = Some("marketing".into());
        assert!(warned(&c, "+12125554743", Kind::WhatsApp));
        c.whatsapp.as_mut().unwrap().category = Some("utility".into());
        assert!(!warned(&c, "+12125554743", Kind::WhatsApp));
    }
}
