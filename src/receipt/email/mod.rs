//! Bounces and complaints that come back by email, read into receipts: delivery status
//! notifications (DSNs, RFC 3464, and their UTF-8 form, RFC 6533), Exim's plain-text bounces
//! (`X-Failed-Recipients`), and complaints in the Abuse Reporting Format (ARF, RFC 5965) that
//! mailbox providers' feedback loops send. Pure: the bytes of one message in, its receipts (or
//! why it is none) out; `disparo bounces import` reads mailboxes and feeds the store.
//!
//! What each becomes (docs/bounces.md):
//! - a DSN recipient with `Action: failed` and a `5.x.x` status: a hard bounce
//!   ([`Event::Bounced`]), the address suppressed;
//! - `Action: delayed`, or a `4.x.x` status (also when the MTA gave up on one): a soft bounce
//!   ([`Event::SoftBounce`]), counted, nothing suppressed;
//! - `delivered`, `relayed`, `expanded`: no receipt (disparo asks for no success DSNs);
//! - an ARF report (`abuse`, `fraud`, `virus`, `other`, or a type this does not know): a
//!   complaint ([`Event::Complained`]), the address suppressed; `not-spam` and `auth-failure`
//!   (DMARC failure reports) are no complaints;
//! - anything else (an auto-reply, ordinary mail): [`Parsed::Skipped`] with the reason.
//!
//! The message a report is about is named by the returned message's `Message-ID` (what the
//! smtp channel stored as the provider id) and `X-Disparo-Ref` (the callback reference), read
//! from its `message/rfc822` or `text/rfc822-headers` part, else by the report's
//! `X-Original-Message-ID`, `In-Reply-To` or `References`.

mod fields;
mod mime;
#[cfg(test)]
mod tests;

use jiff::Timestamp;

use super::{CallbackRef, Effect, Event, Receipt, Source, Target};
use fields::{
    cap, collapse, copied_headers, diagnostic, exim_paragraph, parse_date, recipient_address,
    status_code, status_in_text,
};
use mime::{Headers, Part};

/// Longest `detail` kept per receipt, in characters (a Diagnostic-Code can run long).
const MAX_DETAIL: usize = 1_000;

/// What one message turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A bounce or complaint: one receipt per recipient it reports on.
    Receipts(Vec<Receipt>),
    /// Readable, but no bounce or complaint: why (for the import's summary).
    Skipped(String),
}

/// Reads one message. `Err` says why it cannot be read as mail, or why a report cannot be
/// used (it names no recipient and no message of ours); never panics, whatever the bytes.
pub fn parse(data: &[u8], now: Timestamp) -> Result<Parsed, String> {
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        return Err("the message is empty".into());
    }
    if !mime::starts_with_header(data) {
        return Err(
            "not an email message: its first line is no header field (`Name: value`)".into(),
        );
    }
    let top = Part::parse(data);
    let parts = top.walk();
    let report_type = top
        .content_type()
        .param("report-type")
        .map(str::to_ascii_lowercase);
    let find = |types: &[&str]| {
        parts
            .iter()
            .find(|p| types.contains(&p.content_type().mime.as_str()))
    };
    let original = find(&[
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/global-headers",
    ])
    .map(|p| mime::headers(mime::split(&p.decoded()).0));
    let report = Report {
        top: &top,
        original: original.as_ref(),
        now,
    };
    if let Some(status) = find(&["message/delivery-status", "message/global-delivery-status"]) {
        return report.dsn(status);
    }
    if let Some(feedback) = find(&["message/feedback-report"]) {
        return report.arf(feedback);
    }
    match report_type.as_deref() {
        Some(t @ ("delivery-status" | "global-delivery-status")) => {
            return Err(format!(
                "a delivery report (report-type={t}) without its message/delivery-status part"
            ));
        }
        Some("feedback-report") => {
            return Err(
                "a complaint (report-type=feedback-report) without its message/feedback-report part"
                    .into(),
            );
        }
        _ => {}
    }
    if top.headers.get("X-Failed-Recipients").is_some() {
        return report.exim(&parts);
    }
    Ok(Parsed::Skipped(not_a_report(&top.headers)))
}

/// Why a message that is no report was skipped.
fn not_a_report(h: &Headers) -> String {
    if let Some(v) = h.get("Auto-Submitted")
        && !v.eq_ignore_ascii_case("no")
    {
        let v = v.split(';').next().unwrap_or(v).trim();
        return if v.eq_ignore_ascii_case("auto-replied") {
            "an auto-reply (Auto-Submitted: auto-replied), not a bounce".into()
        } else {
            format!("an automatic message (Auto-Submitted: {v}), not a bounce")
        };
    }
    for name in ["X-Autoreply", "X-Autorespond"] {
        if h.get(name).is_some() {
            return format!("an auto-reply ({name}), not a bounce");
        }
    }
    if h.get("Precedence")
        .is_some_and(|p| p.eq_ignore_ascii_case("auto_reply"))
    {
        return "an auto-reply (Precedence: auto_reply), not a bounce".into();
    }
    "not a delivery status notification, an Exim bounce or a complaint".into()
}

/// A hard bounce, a soft one or nothing, for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hard,
    Soft,
}

/// The message being read, with what every receipt of it shares.
struct Report<'a, 'b> {
    top: &'b Part<'a>,
    /// The returned message's header fields, when the report carries them.
    original: Option<&'b Headers>,
    now: Timestamp,
}

impl Report<'_, '_> {
    /// The returned message's `Message-ID` (the provider id the smtp channel stored), else
    /// the report's own pointers to it.
    fn provider_id(&self, extra: Option<&Headers>) -> Option<String> {
        let original = self
            .original
            .and_then(|h| h.get("Message-ID"))
            .and_then(|v| mime::message_id(v, false));
        original
            .or_else(|| {
                extra
                    .and_then(|h| h.get("X-Original-Message-ID"))
                    .and_then(|v| mime::message_id(v, false))
            })
            .or_else(|| {
                self.top
                    .headers
                    .get("In-Reply-To")
                    .and_then(|v| mime::message_id(v, false))
            })
            .or_else(|| {
                self.top
                    .headers
                    .get("References")
                    .and_then(|v| mime::message_id(v, true))
            })
    }

    fn reference(&self) -> Option<CallbackRef> {
        self.original
            .and_then(|h| h.get("X-Disparo-Ref"))
            .and_then(CallbackRef::parse)
    }

    fn target(&self, address: Option<String>, extra: Option<&Headers>) -> Target {
        Target {
            provider_id: self.provider_id(extra),
            reference: self.reference(),
            address,
            recipient: None,
        }
    }

    /// What names this report among all others, for its receipts' de-duplication keys: its
    /// own `Message-ID`, else a hash of the part that says what happened.
    fn identity(&self, part: &[u8]) -> String {
        match self
            .top
            .headers
            .get("Message-ID")
            .and_then(|v| mime::message_id(v, false))
        {
            Some(id) => id,
            None => {
                use sha2::{Digest, Sha256};
                let d = Sha256::digest(part);
                let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("sha256:{hex}")
            }
        }
    }

    /// `dates` in order, the report's `Date`, else now.
    fn occurred(&self, dates: &[Option<&str>]) -> Timestamp {
        dates
            .iter()
            .flatten()
            .copied()
            .chain(self.top.headers.get("Date"))
            .find_map(parse_date)
            .unwrap_or(self.now)
    }

    /// A delivery status notification: one receipt per failed or delayed recipient.
    fn dsn(&self, status: &Part<'_>) -> Result<Parsed, String> {
        let body = status.decoded();
        let mut groups = mime::field_groups(&body);
        if groups.is_empty() {
            return Err("the delivery-status part is empty".into());
        }
        let is_recipient = |g: &Headers| {
            g.get("Final-Recipient").is_some() || g.get("Original-Recipient").is_some()
        };
        let per_message = if is_recipient(&groups[0]) {
            Headers::default()
        } else {
            groups.remove(0)
        };
        groups.retain(is_recipient);
        if groups.is_empty() {
            return Err(
                "the delivery-status part names no recipient (no Final-Recipient field)".into(),
            );
        }
        let identity = self.identity(&body);
        let mut receipts = Vec::new();
        for g in &groups {
            let written = g
                .get("Original-Recipient")
                .or_else(|| g.get("Final-Recipient"))
                .unwrap_or_default();
            let address = g
                .get("Original-Recipient")
                .and_then(recipient_address)
                .or_else(|| g.get("Final-Recipient").and_then(recipient_address));
            let status = g.get("Status").and_then(status_code);
            let action = g
                .get("Action")
                .and_then(|a| a.split_whitespace().next())
                .map(str::to_ascii_lowercase);
            let class = status.as_deref().and_then(|s| s.chars().next());
            let kind = match (action.as_deref(), class) {
                (Some("delayed"), _) | (Some("failed"), Some('4')) => Kind::Soft,
                (Some("failed"), _) => Kind::Hard,
                (Some("delivered" | "relayed" | "expanded"), _) => continue,
                (_, Some('5')) => Kind::Hard,
                (_, Some('4')) => Kind::Soft,
                _ => continue,
            };
            let detail = g.get("Diagnostic-Code").map(diagnostic);
            let raw = format!("{}\n{}", per_message.to_text(), g.to_text());
            receipts.push(self.receipt(
                kind,
                address.clone(),
                status,
                detail,
                self.occurred(&[g.get("Last-Attempt-Date"), per_message.get("Arrival-Date")]),
                raw,
                format!("dsn:{identity}:{}", address.as_deref().unwrap_or(written)),
                Some(&per_message),
            ));
        }
        if receipts.is_empty() {
            return Ok(Parsed::Skipped(
                "a delivery report of success (Action: delivered, relayed or expanded), not a failure"
                    .into(),
            ));
        }
        Ok(Parsed::Receipts(receipts))
    }

    #[allow(clippy::too_many_arguments)]
    fn receipt(
        &self,
        kind: Kind,
        address: Option<String>,
        status: Option<String>,
        detail: Option<String>,
        occurred_at: Timestamp,
        raw: String,
        dedupe: String,
        extra: Option<&Headers>,
    ) -> Receipt {
        let (event, effect) = match kind {
            Kind::Hard => (
                Event::Bounced,
                Effect::Suppress {
                    reason: match &status {
                        Some(s) => format!("hard bounce {s}"),
                        None => "hard bounce".into(),
                    },
                },
            ),
            Kind::Soft => (Event::SoftBounce, Effect::None),
        };
        Receipt {
            source: Source::Email,
            target: self.target(address, extra),
            event,
            code: status,
            detail,
            occurred_at,
            raw,
            dedupe,
            effect,
        }
    }

    /// An ARF complaint: one receipt per reported recipient (usually one), or one naming the
    /// message alone when the provider redacted the recipient.
    fn arf(&self, feedback: &Part<'_>) -> Result<Parsed, String> {
        let body = feedback.decoded();
        let fields = mime::field_groups(&body)
            .into_iter()
            .next()
            .unwrap_or_default();
        let kind = fields
            .get("Feedback-Type")
            .and_then(|t| t.split_whitespace().next())
            .map(str::to_ascii_lowercase)
            .ok_or("a complaint (message/feedback-report) without its Feedback-Type field")?;
        match kind.as_str() {
            "not-spam" => {
                return Ok(Parsed::Skipped(
                    "a feedback report of type not-spam: not a complaint".into(),
                ));
            }
            "auth-failure" => {
                return Ok(Parsed::Skipped(
                    "an authentication failure report (Feedback-Type: auth-failure, RFC 6591), not a complaint"
                        .into(),
                ));
            }
            _ => {}
        }
        let mut addresses: Vec<String> = fields
            .get_all("Original-Rcpt-To")
            .filter_map(recipient_address)
            .collect();
        // Microsoft's JMRP names the recipient in a field of its own on the returned
        // message; else the returned message's `To`.
        if addresses.is_empty()
            && let Some(to) = ["X-HmXmrOriginalRecipient", "To"]
                .iter()
                .filter_map(|f| self.original.and_then(|h| h.get(f)))
                .filter_map(mime::mailbox)
                .find_map(|a| crate::address::normalize_email(a).ok())
        {
            addresses.push(to);
        }
        addresses.dedup();
        let target = self.target(None, None);
        if addresses.is_empty() && target.provider_id.is_none() && target.reference.is_none() {
            return Err(
                "a complaint that names neither its recipient (Original-Rcpt-To, To) nor the message (Message-ID, X-Disparo-Ref)"
                    .into(),
            );
        }
        let identity = self.identity(&body);
        let occurred = self.occurred(&[fields.get("Arrival-Date"), fields.get("Received-Date")]);
        let detail = match fields.get("User-Agent") {
            Some(ua) => format!("Feedback-Type: {kind}; User-Agent: {ua}"),
            None => format!("Feedback-Type: {kind}"),
        };
        let targets: Vec<Option<String>> = if addresses.is_empty() {
            vec![None]
        } else {
            addresses.into_iter().map(Some).collect()
        };
        let receipts = targets
            .into_iter()
            .map(|address| Receipt {
                source: Source::Email,
                dedupe: format!("arf:{identity}:{}", address.as_deref().unwrap_or("")),
                target: Target {
                    address,
                    ..target.clone()
                },
                event: Event::Complained,
                code: Some(kind.clone()),
                detail: Some(cap(&detail)),
                occurred_at: occurred,
                raw: fields.to_text(),
                effect: Effect::Suppress {
                    reason: format!("complaint ({kind})"),
                },
            })
            .collect();
        Ok(Parsed::Receipts(receipts))
    }

    /// Exim's bounce without a delivery-status part: `X-Failed-Recipients` and a text that
    /// says the message could not be delivered (hard) or not yet (soft).
    fn exim(&self, parts: &[Part<'_>]) -> Result<Parsed, String> {
        let text = parts
            .iter()
            .find(|p| p.content_type().mime == "text/plain")
            .map(Part::text)
            .unwrap_or_default();
        let plain = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase();
        let temporary = [
            "temporary error",
            "has not yet been delivered",
            "delivery attempts will continue",
        ]
        .iter()
        .any(|t| plain.contains(t));
        let permanent = ["could not be delivered", "permanent error"]
            .iter()
            .any(|t| plain.contains(t));
        if !temporary && !permanent {
            return Ok(Parsed::Skipped(
                "X-Failed-Recipients without a text saying the message could not be delivered (docs/bounces.md)"
                    .into(),
            ));
        }
        let failed: Vec<String> = self
            .top
            .headers
            .get_all("X-Failed-Recipients")
            .flat_map(|v| v.split(','))
            .filter_map(|a| crate::address::normalize_email(a.trim().trim_matches(['<', '>'])).ok())
            .collect();
        if failed.is_empty() {
            return Err("X-Failed-Recipients names no email address".into());
        }
        let copied = self.original.cloned().or_else(|| copied_headers(&text));
        let report = Report {
            original: copied.as_ref(),
            ..*self
        };
        let identity = self.identity(text.as_bytes());
        let occurred = self.occurred(&[]);
        let receipts = failed
            .into_iter()
            .map(|address| {
                let paragraph = exim_paragraph(&text, &address);
                let status = paragraph.as_deref().and_then(status_in_text);
                let kind = match status.as_deref().and_then(|s| s.chars().next()) {
                    Some('4') => Kind::Soft,
                    Some('5') => Kind::Hard,
                    _ if temporary => Kind::Soft,
                    _ => Kind::Hard,
                };
                let detail = paragraph.as_deref().map(|p| cap(&collapse(p)));
                let raw = format!(
                    "X-Failed-Recipients: {address}\n\n{}",
                    paragraph.as_deref().unwrap_or("")
                );
                report.receipt(
                    kind,
                    Some(address.clone()),
                    status,
                    detail,
                    occurred,
                    raw,
                    format!("exim:{identity}:{address}"),
                    None,
                )
            })
            .collect();
        Ok(Parsed::Receipts(receipts))
    }
}
