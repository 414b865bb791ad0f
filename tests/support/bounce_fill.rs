//! Fills the placeholders of the bounce fixtures (tests/fixtures/bounces/README.md) with a
//! message that was sent: shared by the parser's unit tests (src/receipt/email/tests.rs, by
//! `#[path]`) and the import tests (tests/bounces), which fill them with what the test SMTP
//! server really received.

#![allow(dead_code)]

use base64::Engine as _;

/// The message a bounce is about, as the relay received it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The recipient, as the bounce names it.
    pub address: String,
    /// Its `Message-ID`, with the angle brackets.
    pub message_id: String,
    /// Its `X-Disparo-Ref`.
    pub reference: String,
    /// The whole message, as the SMTP server got it.
    pub original: String,
}

/// The fixture `template` about `sent`: `{{ADDRESS}}`, `{{MESSAGE_ID}}`, `{{REF}}`,
/// `{{ORIGINAL}}` (the whole message) and `{{ORIGINAL_HEADERS}}` (its header section)
/// replaced, then each `{{base64}}` ... `{{/base64}}` block base64-encoded (in 76-character
/// lines). Line ends are LF, or CRLF everywhere with `crlf` (as mail travels).
pub fn fill(template: &str, sent: &Sent, crlf: bool) -> String {
    let original = sent.original.replace("\r\n", "\n");
    let original = original.trim_end_matches('\n');
    let headers = original.split("\n\n").next().unwrap_or("");
    let mut s = template
        .replace("\r\n", "\n")
        .replace("{{ADDRESS}}", &sent.address)
        .replace("{{MESSAGE_ID}}", &sent.message_id)
        .replace("{{REF}}", &sent.reference)
        .replace("{{ORIGINAL_HEADERS}}", headers)
        .replace("{{ORIGINAL}}", original);
    const OPEN: &str = "{{base64}}\n";
    const CLOSE: &str = "{{/base64}}";
    while let Some(start) = s.find(OPEN) {
        let Some(len) = s[start..].find(CLOSE) else {
            break;
        };
        let mut inner = s[start + OPEN.len()..start + len].to_owned();
        if crlf {
            inner = inner.replace('\n', "\r\n");
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(inner.as_bytes());
        let lines: Vec<&str> = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        s.replace_range(start..start + len + CLOSE.len(), &lines.join("\n"));
    }
    if crlf { s.replace('\n', "\r\n") } else { s }
}

/// Messages as one mbox (mboxrd): each after a `From ` line, a body line starting with
/// `From ` (after any `>`s) quoted with one more `>`, a blank line between messages.
pub fn mbox(messages: &[String]) -> String {
    let mut out = String::new();
    for m in messages {
        out.push_str("From MAILER-DAEMON Mon Nov 30 12:00:06 2026\n");
        for line in m.replace("\r\n", "\n").lines() {
            if line.trim_start_matches('>').starts_with("From ") {
                out.push('>');
            }
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}
