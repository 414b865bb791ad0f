//! `twilio`: SMS, MMS and WhatsApp through Twilio's Messages resource with
//! `POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json`, form-encoded, HTTP basic auth.
//!
//! Twilio documents no idempotency key for creating a message (its `I-Twilio-Idempotency-Token`
//! is a header Twilio sends on its own webhooks, not one it reads). So before any attempt after
//! the first, whose predecessor may have reached Twilio with its answer lost, the adapter looks
//! the message up ([`lookup`]) and returns the SID it finds instead of sending again.
//! The form fields are built in [`form`]; docs/twilio.md says what each key does.

mod form;
mod lookup;

use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;

use super::Outgoing;
use super::http::{self, retry_after, status_class};
use super::{
    BuildContext, ChannelBuildError, Delivered, ErrorClass, Redactor, Secret, SendError,
    TwilioConfig,
};

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

#[derive(Debug)]
enum Sender {
    From(String),
    Service(String),
}

#[derive(Debug)]
pub struct Twilio {
    name: String,
    base: String,
    account_sid: Secret,
    auth_token: Secret,
    sender: Sender,
    options: form::Options,
    http: reqwest::Client,
    pub(crate) redactor: Redactor,
}

#[derive(Deserialize)]
struct Created {
    #[serde(default)]
    sid: Option<String>,
}

#[derive(Deserialize)]
struct TwilioError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

impl Twilio {
    pub(crate) fn build(
        name: &str,
        c: &TwilioConfig,
        ctx: &BuildContext,
    ) -> Result<Twilio, ChannelBuildError> {
        let base = http::check_url(
            name,
            "base_url",
            c.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        let sender = match (&c.from, &c.messaging_service_sid) {
            (Some(from), None) => Sender::From(from.clone()),
            (None, Some(sid)) => Sender::Service(sid.clone()),
            _ => {
                return Err(ChannelBuildError::invalid(
                    name,
                    "set exactly one of `from` (the sender number) and `messaging_service_sid`",
                ));
            }
        };
        let account_sid = ctx.secret(name, "account_sid_env", &c.account_sid_env)?;
        if !account_sid
            .expose()
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric())
        {
            return Err(ChannelBuildError::invalid(
                name,
                format!(
                    "the account SID in {} is not an account SID (AC followed by 32 hex digits)",
                    c.account_sid_env
                ),
            ));
        }
        let options = form::Options::check(
            name,
            c,
            matches!(sender, Sender::Service(_)),
            ctx.public_url().as_deref(),
        )?;
        let auth_token = ctx.secret(name, "auth_token_env", &c.auth_token_env)?;
        let mut secrets = vec![account_sid.expose(), auth_token.expose()];
        let proxy = ctx.proxy_credentials();
        secrets.extend(proxy.iter().map(String::as_str));
        let redactor = Redactor::new(secrets, &[(account_sid.expose(), auth_token.expose())]);
        Ok(Twilio {
            name: name.into(),
            base,
            auth_token,
            account_sid,
            redactor,
            sender,
            options,
            http: ctx.http.clone(),
        })
    }

    fn body(&self, env: &Outgoing<'_>) -> String {
        serde_urlencoded::to_string(self.form(env)).unwrap_or_default()
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.base,
            self.account_sid.expose()
        )
    }

    /// Sends `env` once; an attempt after the first first looks for what an earlier one may
    /// have created (see [`lookup`]).
    pub async fn send(&self, env: &Outgoing<'_>) -> Result<Delivered, SendError> {
        if env.attempt > 1
            && let Some(sid) = self.find_earlier(env).await?
        {
            return Ok(Delivered {
                provider_id: Some(sid),
            });
        }
        let request = self
            .http
            .post(self.messages_url())
            .basic_auth(self.account_sid.expose(), Some(self.auth_token.expose()))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(self.body(env));
        let answer = http::exchange(&format!("channel `{}`", self.name), request).await?;
        let status = answer.status;
        let wait = retry_after(&answer.headers);
        if status.is_success() {
            let provider_id = serde_json::from_slice::<Created>(&answer.body)
                .ok()
                .and_then(|c| c.sid);
            return Ok(http::accepted(
                &self.name,
                &answer,
                provider_id,
                Some("its body has no `sid`"),
            ));
        }
        let text = String::from_utf8_lossy(&answer.body);
        let err = serde_json::from_str::<TwilioError>(&text).ok();
        let code = err.as_ref().and_then(|e| e.code);
        let class = match code {
            Some(20429) => ErrorClass::Transient { retry_after: wait },
            Some(21211 | 21614 | 21612 | 21408) => ErrorClass::Permanent,
            Some(21610) => ErrorClass::Recipient { suppress: true },
            // Authentication failed, or the sender is unusable: every message fails alike.
            Some(20003 | 20005 | 21606 | 21659 | 21703 | 21704) => ErrorClass::Breaker,
            _ => status_class(status, wait),
        };
        let detail = err
            .and_then(|e| e.message)
            .unwrap_or_else(|| text.to_string());
        let detail = self.redactor.excerpt(&detail, 300);
        let code_text = code.map_or_else(|| format!("HTTP {}", status.as_u16()), |c| c.to_string());
        let message = format!(
            "channel `{}`: Twilio answered HTTP {} (error {code_text}): {detail}",
            self.name,
            status.as_u16()
        );
        Err(SendError {
            class,
            message,
            code: Some(code_text),
        })
    }

    pub fn preview_request(&self, env: &Outgoing<'_>) -> serde_json::Value {
        let mut preview = http::preview(
            "POST",
            &format!("{}/2010-04-01/Accounts/***/Messages.json", self.base),
            &[
                ("Authorization", "Basic ***".into()),
                ("Content-Type", "application/x-www-form-urlencoded".into()),
            ],
            serde_json::Value::String(self.body(env)),
        );
        let form = self
            .form(env)
            .into_iter()
            .fold(serde_json::Map::new(), |mut m, (k, v)| {
                // `MediaUrl` repeats: shown as a list.
                match m.get_mut(k) {
                    Some(serde_json::Value::Array(a)) => a.push(v.into()),
                    Some(first) => *first = serde_json::Value::Array(vec![first.take(), v.into()]),
                    None => {
                        m.insert(k.to_string(), v.into());
                    }
                }
                m
            });
        preview["form"] = serde_json::Value::Object(form);
        preview
    }
}
