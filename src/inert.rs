//! Text from recipients, templates or providers shown on a terminal: control sequences (CSI,
//! OSC, BEL, bidi overrides) made visible and inert. Used by every human output, the
//! `console` channel included, so it lives in the library, not in the CLI.

use std::borrow::Cow;

/// Text from recipients, templates or providers, made inert for a terminal and kept readable:
/// every C0 control (ESC, BEL, CR, ...) and DEL becomes its Unicode control picture (`␛`,
/// `␇`, `␍`, `␡`), a C1 control (U+0080-U+009F: an 8-bit CSI or OSC) or a bidi override or
/// isolate (U+202A-U+202E, U+2066-U+2069, which reorder what is shown) is written out as
/// `\u{9b}`. This is the one-line form for table cells and headers: a newline shows as `␤`
/// and a tab as `␉`. Text with nothing to change is returned as is, without a copy.
pub fn inert(s: &str) -> Cow<'_, str> {
    shown(s, false)
}

/// [`inert`] for message bodies: line breaks (`\n`, `\r\n`) and tabs stay what they are; a
/// carriage return not ending a line (which would let the rest overwrite the line) is `␍`.
pub fn inert_text(s: &str) -> Cow<'_, str> {
    shown(s, true)
}

fn shown(s: &str, lines: bool) -> Cow<'_, str> {
    let special = |c: char| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(special) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' if lines => out.push(c),
            '\r' if lines && chars.peek() == Some(&'\n') => out.push(c),
            '\n' => out.push('␤'),
            '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('�')),
            '\u{7f}' => out.push('␡'),
            c if special(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Text from recipients, templates or providers for an HTML page (the report, the
/// unsubscribe page): [`inert_text`] first, so controls and bidi overrides are shown as they
/// are on a terminal, then escaped for element content and quoted attribute values.
pub fn html(s: &str) -> String {
    let s = inert_text(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_inert() {
        assert_eq!(inert("plain é"), Cow::Borrowed("plain é"));
        assert_eq!(inert("\u{1b}[2J\u{7}\r\n\t\u{7f}"), "␛[2J␇␍␤␉␡");
        assert_eq!(
            inert("a\u{9b}b\u{202e}c\u{2066}"),
            "a\\u{9b}b\\u{202e}c\\u{2066}"
        );
        assert_eq!(
            inert_text("l1\r\nl2\n\tx\ry\u{1b}]8;;"),
            "l1\r\nl2\n\tx␍y␛]8;;"
        );
    }

    #[test]
    fn html_is_escaped_and_inert() {
        assert_eq!(
            html("<b>\"x\" & 'y'\u{7}\u{202e}"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;\u{2407}\\u{202e}"
        );
        assert_eq!(html("two\nlines"), "two\nlines");
    }
}
