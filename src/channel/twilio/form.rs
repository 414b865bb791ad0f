//! The CreateMessage form: which fields a message and the channel's options put in it, and
//! the options' checks at build (so at `validate`).

use jiff::{SignedDuration, Timestamp};

use super::{Sender, Twilio};
use crate::channel::http;
use crate::channel::{ChannelBuildError, Outgoing, TwilioConfig};

/// Twilio holds a `SendAt` message only if it is at least this far ahead at creation.
pub(super) const SEND_AT_MIN: SignedDuration = SignedDuration::from_mins(15);
/// ... and at most this far.
pub(super) const SEND_AT_MAX: SignedDuration = SignedDuration::from_hours(35 * 24);
/// Margin over [`SEND_AT_MIN`] for the time the request takes and clock skew: a `SendAt`
/// Twilio finds too close is refused (error 35111), not sent at once.
const SEND_AT_MARGIN: SignedDuration = SignedDuration::from_mins(1);

/// The channel's settings that shape every form, checked.
#[derive(Debug)]
pub(super) struct Options {
    pub(super) whatsapp: bool,
    status_callback: Option<reqwest::Url>,
    validity_period: Option<u32>,
    pub(super) shorten_urls: bool,
    send_at: bool,
}

impl Options {
    pub(super) fn check(
        name: &str,
        c: &TwilioConfig,
        service: bool,
        public_url: Option<&str>,
    ) -> Result<Options, ChannelBuildError> {
        let bad = |m: String| Err(ChannelBuildError::invalid(name, m));
        let from_whatsapp = c
            .from
            .as_deref()
            .is_some_and(|f| f.starts_with("whatsapp:"));
        let whatsapp = match (c.whatsapp, service) {
            (Some(w), false) if w != from_whatsapp => {
                return bad(format!(
                    "`whatsapp: {w}` contradicts `from: {}`: a WhatsApp sender is written `from: whatsapp:+...`; remove `whatsapp` (it is implied by `from`)",
                    c.from.as_deref().unwrap_or_default()
                ));
            }
            (w, false) => w.unwrap_or(from_whatsapp),
            (w, true) => w.unwrap_or(false),
        };
        // The channel's own callback, else `disparo serve`'s endpoint at the public URL.
        let callback = c
            .status_callback
            .clone()
            .or_else(|| public_url.map(|base| format!("{base}/twilio/status")));
        let status_callback = match &callback {
            None => None,
            Some(u) => {
                let field = if c.status_callback.is_some() {
                    "status_callback"
                } else {
                    "DISPARO_PUBLIC_URL"
                };
                let checked = http::check_url(name, field, u)?;
                match reqwest::Url::parse(&checked) {
                    Ok(url) if url.query_pairs().any(|(k, _)| k == "disparo_key") => {
                        return bad("`status_callback` already has a `disparo_key` parameter: disparo adds it (the message key); remove it".into());
                    }
                    Ok(url) => Some(url),
                    Err(e) => return bad(format!("`status_callback` {u:?} is not a URL: {e}")),
                }
            }
        };
        if let Some(v) = c.validity_period
            && !(1..=36000).contains(&v)
        {
            return bad(format!(
                "`validity_period: {v}` is out of range: Twilio takes 1 to 36000 seconds (10 hours)"
            ));
        }
        if c.shorten_urls && !service {
            return bad("`shorten_urls: true` needs `messaging_service_sid`: Twilio shortens links only for a Messaging Service with link shortening set up".into());
        }
        if c.send_at && !service {
            return bad("`send_at: true` needs `messaging_service_sid`: Twilio schedules (SendAt) only messages sent through a Messaging Service".into());
        }
        Ok(Options {
            whatsapp,
            status_callback,
            validity_period: c.validity_period,
            shorten_urls: c.shorten_urls,
            send_at: c.send_at,
        })
    }
}

/// The `SendAt` for a message scheduled at `scheduled` and sent at `now`, when Twilio can
/// hold it: `None` (send now) when it is due sooner than 16 minutes or more than 35 days
/// ahead. Never earlier than `scheduled`: the instant is the scheduled one, unchanged.
pub(super) fn send_at(scheduled: Timestamp, now: Timestamp) -> Option<Timestamp> {
    // Whole seconds, rounded up: a fraction cut off would make it early.
    let whole = scheduled.as_second() + i64::from(scheduled.subsec_nanosecond() > 0);
    let scheduled = Timestamp::from_second(whole).ok()?;
    let ahead = scheduled.duration_since(now);
    (ahead >= SEND_AT_MIN + SEND_AT_MARGIN && ahead <= SEND_AT_MAX).then_some(scheduled)
}

impl Twilio {
    /// `To` as Twilio wants it: with the `whatsapp:` prefix for a WhatsApp sender, exactly
    /// once whatever the audience wrote.
    pub(super) fn to(&self, env: &Outgoing<'_>) -> String {
        let bare = env.address.strip_prefix("whatsapp:").unwrap_or(env.address);
        if self.options.whatsapp {
            format!("whatsapp:{bare}")
        } else {
            bare.to_string()
        }
    }

    /// The `StatusCallback` for a message: the configured URL with `disparo_key=<key>`
    /// added, and `disparo_ref=<callback reference>` when the message comes from the store
    /// (what `disparo serve` matches the callback by).
    pub(super) fn status_callback(&self, env: &Outgoing<'_>) -> Option<String> {
        let mut url = self.options.status_callback.clone()?;
        url.query_pairs_mut()
            .append_pair("disparo_key", env.message_id);
        if let Some(reference) = env.reference() {
            url.query_pairs_mut().append_pair("disparo_ref", &reference);
        }
        Some(url.into())
    }

    /// The form fields, in the order they are sent.
    pub(super) fn form(&self, env: &Outgoing<'_>) -> Vec<(&'static str, String)> {
        let mut form = vec![("To", self.to(env))];
        match &self.sender {
            Sender::From(f) => form.push(("From", f.clone())),
            Sender::Service(s) => form.push(("MessagingServiceSid", s.clone())),
        }
        let twilio = env.content.twilio.as_ref();
        match twilio.and_then(|t| t.content_sid.as_ref().map(|sid| (sid, &t.variables))) {
            Some((sid, variables)) => {
                form.push(("ContentSid", sid.clone()));
                if !variables.is_empty() {
                    form.push((
                        "ContentVariables",
                        serde_json::to_string(variables).unwrap_or_default(),
                    ));
                }
            }
            None => form.push(("Body", env.content.body.clone())),
        }
        for url in twilio.iter().flat_map(|t| t.media_url.iter()) {
            form.push(("MediaUrl", url.clone()));
        }
        if let Some(cb) = self.status_callback(env) {
            form.push(("StatusCallback", cb));
        }
        if let Some(v) = self.options.validity_period {
            form.push(("ValidityPeriod", v.to_string()));
        }
        if self.options.shorten_urls {
            form.push(("ShortenUrls", "true".into()));
        }
        if self.options.send_at
            && let Some(at) = send_at(env.scheduled_at, env.attempt_at)
        {
            form.push(("ScheduleType", "fixed".into()));
            form.push(("SendAt", at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
        }
        form
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_at_only_when_twilio_can_hold_it_and_never_earlier() {
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let at = |m: i64| now + SignedDuration::from_mins(m);
        assert_eq!(send_at(at(0), now), None);
        assert_eq!(send_at(at(-30), now), None);
        assert_eq!(
            send_at(at(15), now),
            None,
            "Twilio's own minimum is too close"
        );
        assert_eq!(send_at(at(16), now), Some(at(16)));
        assert_eq!(send_at(at(35 * 24 * 60), now), Some(at(35 * 24 * 60)));
        assert_eq!(send_at(at(35 * 24 * 60 + 1), now), None);
        let fraction = at(20) + SignedDuration::from_millis(1);
        assert_eq!(
            send_at(fraction, now),
            Some(at(20) + SignedDuration::from_secs(1))
        );
    }
}
