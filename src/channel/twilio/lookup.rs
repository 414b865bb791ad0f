//! Closing the duplicate window Twilio leaves open: it documents no idempotency key for
//! creating a message, so an attempt whose answer was lost (a timeout, a reset after the
//! request was written, a 5xx from a proxy) may have created one. Before any attempt after
//! the first, the adapter lists the recipient's recent messages
//! (`GET .../Messages.json?To=...&From=...&PageSize=100`) and, if one is this message, returns
//! its SID instead of sending again.
//!
//! What "this message" is, from what the Message resource returns: outbound, to the same `To`,
//! from the same sender (`from` or the Messaging Service), created no earlier than five
//! minutes before the message's scheduled instant (its first attempt cannot be earlier; the
//! margin is for clock skew), and with exactly the same `Body`. The `StatusCallback` URL with
//! its `disparo_key` would be unique but Twilio does not return it. A Content Template message
//! (Twilio writes the body) and one with `shorten_urls` (Twilio rewrites the links) cannot be
//! recognised this way and are sent again: docs/twilio.md states that window.
//!
//! The list is not filtered by `DateSent`: a message whose answer was just lost is usually
//! still `queued` (or `scheduled`), and has no `date_sent` yet.

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::{Sender, Twilio};
use crate::channel::http::{self, retry_after, status_class};
use crate::channel::{Outgoing, SendError};

/// How far before the scheduled instant an earlier attempt's message may have been created.
const SKEW: SignedDuration = SignedDuration::from_mins(5);
/// Messages listed per lookup (newest first): a recipient sent more than this many messages
/// by the account since the first attempt would hide it.
pub(super) const PAGE_SIZE: u32 = 100;

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    messages: Vec<Listed>,
}

#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    messaging_service_sid: Option<String>,
    #[serde(default)]
    date_created: Option<String>,
}

impl Twilio {
    /// Whether the message can be recognised in a listing at all (see the module doc).
    fn recognisable(&self, env: &Outgoing<'_>) -> bool {
        let template = env
            .content
            .twilio
            .as_ref()
            .is_some_and(|t| t.content_sid.is_some());
        !template && !self.options.shorten_urls
    }

    /// The query of the lookup for `env`.
    pub(super) fn lookup_query(&self, env: &Outgoing<'_>) -> String {
        let mut q = vec![("To", self.to(env))];
        if let Sender::From(f) = &self.sender {
            q.push(("From", f.clone()));
        }
        q.push(("PageSize", PAGE_SIZE.to_string()));
        serde_urlencoded::to_string(q).unwrap_or_default()
    }

    /// The SID of a message an earlier attempt of `env` created, if the listing shows one.
    /// A failed lookup is an error of the attempt (nothing is sent blind).
    pub(super) async fn find_earlier(
        &self,
        env: &Outgoing<'_>,
    ) -> Result<Option<String>, SendError> {
        if !self.recognisable(env) {
            return Ok(None);
        }
        let url = format!("{}?{}", self.messages_url(), self.lookup_query(env));
        let request = self
            .http
            .get(url)
            .basic_auth(self.account_sid.expose(), Some(self.auth_token.expose()));
        let what = format!(
            "channel `{}` (looking up whether attempt {} reached Twilio)",
            self.name,
            env.attempt - 1
        );
        let answer = http::exchange(&what, request).await?;
        if !answer.status.is_success() {
            return Err(SendError {
                class: status_class(answer.status, retry_after(&answer.headers)),
                code: Some(format!("HTTP {}", answer.status.as_u16())),
                message: format!(
                    "{what}: Twilio answered HTTP {} to the message list: {}; not sent again until it can be checked",
                    answer.status.as_u16(),
                    self.redactor
                        .excerpt(&String::from_utf8_lossy(&answer.body), 200)
                ),
            });
        }
        let page: Page = serde_json::from_slice(&answer.body).map_err(|e| {
            SendError::transient(format!(
                "{what}: the message list is not Twilio's JSON ({e}); not sent again until it can be checked"
            ))
        })?;
        let to = self.to(env);
        let since = env.scheduled_at - SKEW;
        Ok(page
            .messages
            .into_iter()
            .find(|m| self.is_this(m, env, &to, since))
            .and_then(|m| m.sid))
    }

    fn is_this(&self, m: &Listed, env: &Outgoing<'_>, to: &str, since: Timestamp) -> bool {
        let sender = match &self.sender {
            Sender::From(f) => m.from.as_deref() == Some(f),
            Sender::Service(s) => m.messaging_service_sid.as_deref() == Some(s),
        };
        let created = m
            .date_created
            .as_deref()
            .and_then(|d| jiff::fmt::rfc2822::parse(d).ok())
            .is_some_and(|z| z.timestamp() >= since);
        sender
            && created
            && m.direction
                .as_deref()
                .is_some_and(|d| d.starts_with("outbound"))
            && m.to.as_deref() == Some(to)
            && m.body.as_deref() == Some(env.content.body.as_str())
            && m.sid.is_some()
    }
}
