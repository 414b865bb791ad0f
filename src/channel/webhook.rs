//! `webhook`: one JSON request per message to any HTTP endpoint.
//!
//! The body is a JSON object: `id` (the message id), `campaign`, `recipient`, `channel`, `to`,
//! `locale`, `body`, `subject`, `html` and `whatsapp` (when the message has them), `vars`,
//! `scheduled_at`, `attempt`, `attempt_at` (RFC 3339, UTC).
//!
//! Headers: `Content-Type: application/json`, `Idempotency-Key: {id}` (the same across retries
//! and re-sends after a crash: receivers deduplicate on it), the configured `headers`, and,
//! when `secret_env` is set, `X-Disparo-Signature: sha256=<hex>`, the HMAC-SHA256 of the exact
//! body bytes keyed with the secret. A receiver recomputes it over the raw body before parsing
//! and compares in constant time. There is no separate timestamp header: the signed body
//! carries `attempt_at`, the instant of this attempt, so a receiver that wants replay
//! protection rejects a body whose `attempt_at` is older than a few minutes.
//!
//! A 2xx answer is success; its JSON `id`, if any, is the provider id. 408/429/5xx are
//! transient (honouring `Retry-After`), 401/403 break the circuit, other 4xx are permanent.

use hmac::{KeyInit, Mac};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use sha2::Sha256;

use super::http::{self, retry_after, status_class, transport_error};
use super::{
    BuildContext, ChannelBuildError, Delivered, MessageDoc, Secret, SendError, WebhookConfig,
};
use crate::message::Envelope;

pub const SIGNATURE_HEADER: &str = "X-Disparo-Signature";

#[derive(Debug)]
pub struct Webhook {
    name: String,
    url: String,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    secret: Option<Secret>,
    http: reqwest::Client,
}

impl Webhook {
    pub(crate) fn build(
        name: &str,
        c: &WebhookConfig,
        ctx: &BuildContext,
    ) -> Result<Webhook, ChannelBuildError> {
        let url = http::check_url(name, "url", &c.url)?;
        let method = match c
            .method
            .as_deref()
            .unwrap_or("POST")
            .to_ascii_uppercase()
            .as_str()
        {
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            other => {
                return Err(ChannelBuildError::invalid(
                    name,
                    format!("`method: {other}` is not supported: use POST, PUT or PATCH"),
                ));
            }
        };
        let mut headers = Vec::new();
        for (k, v) in &c.headers {
            let hn = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                ChannelBuildError::invalid(name, format!("`headers`: {k:?} is not a header name"))
            })?;
            let hv = HeaderValue::from_str(v).map_err(|_| {
                ChannelBuildError::invalid(
                    name,
                    format!("`headers`: the value of {k} is not a valid header value"),
                )
            })?;
            headers.push((hn, hv));
        }
        let secret = match &c.secret_env {
            Some(var) => Some(ctx.secret(name, "secret_env", var)?),
            None => None,
        };
        Ok(Webhook {
            name: name.into(),
            url,
            method,
            headers,
            secret,
            http: ctx.http.clone(),
        })
    }

    fn body(env: &Envelope) -> Vec<u8> {
        serde_json::to_vec(&MessageDoc::new(env)).unwrap_or_default()
    }

    /// `sha256=` and the hex HMAC-SHA256 of `body` keyed with `secret`.
    pub fn signature(secret: &[u8], body: &[u8]) -> String {
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(7 + digest.len() * 2);
        out.push_str("sha256=");
        for b in digest.iter() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    pub async fn send(&self, env: &Envelope) -> Result<Delivered, SendError> {
        let body = Self::body(env);
        let mut request = self
            .http
            .request(self.method.clone(), &self.url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &env.message_id);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        if let Some(secret) = &self.secret {
            request = request.header(
                SIGNATURE_HEADER,
                Self::signature(secret.expose().as_bytes(), &body),
            );
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&format!("channel `{}`", self.name), e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let provider_id = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| match v.get("id")? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
            return Ok(Delivered { provider_id });
        }
        let message = format!(
            "channel `{}`: webhook answered HTTP {}: {}",
            self.name,
            status.as_u16(),
            http::excerpt(&text, 200)
        );
        Err(SendError {
            class: status_class(status, wait),
            code: Some(format!("HTTP {}", status.as_u16())),
            message: match &self.secret {
                Some(s) => s.scrub(&message),
                None => message,
            },
        })
    }

    pub fn preview_request(&self, env: &Envelope) -> serde_json::Value {
        let mut headers = vec![
            ("Content-Type", "application/json".to_string()),
            ("Idempotency-Key", env.message_id.clone()),
        ];
        for (k, v) in &self.headers {
            headers.push((
                k.as_str(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            ));
        }
        if self.secret.is_some() {
            headers.push((SIGNATURE_HEADER, "sha256=***".into()));
        }
        let body = serde_json::to_value(MessageDoc::new(env)).unwrap_or_default();
        http::preview(self.method.as_str(), &self.url, &headers, body)
    }
}
