//! `webhook`: one JSON request per message to any HTTP endpoint.
//!
//! The body is a JSON object: `id` (the message id), `campaign`, `recipient`, `channel`, `to`,
//! `locale`, `body`, `subject`, `html` and `whatsapp` (when the message has them), `vars`,
//! `scheduled_at`, `attempt`, `attempt_at` (RFC 3339, UTC).
//!
//! Headers: `Content-Type: application/json`, `Idempotency-Key: {id}` (the same across retries
//! and re-sends after a crash: receivers deduplicate on it), the configured `headers`, and,
//! when `secret_env` is set, two signatures with one key (see [`sign`]):
//! `X-Disparo-Signature: sha256=<hex>` (the HMAC-SHA256 of the exact body bytes, as before),
//! and Standard Webhooks' `webhook-id` (the message id), `webhook-timestamp` (unix seconds,
//! the real clock when the attempt leaves) and `webhook-signature: v1,<base64>` over
//! `{id}.{timestamp}.{body}`, which lets a receiver refuse replays (a stale timestamp, or an
//! id and timestamp it has seen). A receiver recomputes them over the raw body before parsing
//! and compares in constant time.
//!
//! A 2xx answer is success; its JSON `id`, if any, is the provider id. 408/429/5xx are
//! transient (honouring `Retry-After`), 401/403 break the circuit, other 4xx are permanent.

pub(crate) mod sign;

use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, Url};

pub(crate) use sign::SigningKey;

use super::Outgoing;
use super::http::{self, retry_after, status_class};
use super::{
    BuildContext, ChannelBuildError, Delivered, MessageDoc, Redactor, Secret, SendError,
    WebhookConfig,
};

pub const SIGNATURE_HEADER: &str = "X-Disparo-Signature";

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const SIGNATURE: HeaderName = HeaderName::from_static("x-disparo-signature");
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// The `id` of a JSON object answer (a string, or a number as its text), if there is one.
/// Only that field is decoded; the rest of the answer is skipped. The object is read only as
/// far as its `id`: an answer cut after it (a body larger than what is read, or truncated by
/// the server) still gives it.
fn provider_id(body: &[u8]) -> Option<String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct FirstId<'a>(&'a mut Option<String>);
    impl<'de> Visitor<'de> for FirstId<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "id" {
                    let id = map.next_value::<&serde_json::value::RawValue>()?.get();
                    *self.0 = match id.as_bytes().first() {
                        Some(b'"') => serde_json::from_str(id).ok(),
                        Some(b'-' | b'0'..=b'9') => Some(id.to_owned()),
                        _ => None,
                    };
                    // The rest is not read: an error past this point changes nothing.
                    return Err(serde::de::Error::custom("found"));
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut id = None;
    let _ = serde_json::Deserializer::from_slice(body).deserialize_map(FirstId(&mut id));
    id
}

/// `name: value` and CRLF, both checked already (`HeaderName`, `HeaderValue`).
fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[derive(Debug)]
pub struct Webhook {
    name: String,
    url: String,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    secret: Option<SigningKey>,
    transport: Transport,
    /// The HMAC secret, the URL's credentials, sensitive configured headers, proxy
    /// credentials.
    pub(crate) redactor: Redactor,
    /// Whether the URL carries credentials (sent as HTTP Basic).
    credentials: bool,
}

/// How requests go out: the run's reqwest client (`https://`, or a proxy is configured), or
/// this channel's own keep-alive connections for plain `http://` (see [`http::PlainHttp`]).
/// Either way the URL is parsed once, here, not per request.
#[derive(Debug)]
enum Transport {
    Reqwest(reqwest::Client, Url),
    /// With the head of every request up to its per-message headers (request line, `Host`,
    /// `User-Agent`, `Content-Type`, the configured headers), made once.
    Plain(http::PlainHttp, Vec<u8>),
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
        let secret: Option<Secret> = match &c.secret_env {
            Some(var) => Some(ctx.secret(name, "secret_env", var)?),
            None => None,
        };
        let key = match (&secret, &c.secret_env) {
            (Some(s), Some(var)) => Some(SigningKey::from_secret(s.expose()).map_err(|e| {
                ChannelBuildError::invalid(
                    name,
                    format!("the secret in {var} (named by `secret_env`) {e}: write `whsec_` and the base64 of the key, or a plain secret without the prefix"),
                )
            })?),
            _ => None,
        };
        let invalid = |e: &dyn std::fmt::Display| {
            ChannelBuildError::invalid(name, format!("`url: {url}` is not a URL: {e}"))
        };
        let parsed = Url::parse(&url).map_err(|e| invalid(&e))?;
        // Credentials in the URL (`http://user:pass@host/`) become Basic auth, which reqwest
        // does; the plain path would put them in `Host`.
        let credentials = !parsed.username().is_empty() || parsed.password().is_some();
        let transport =
            if parsed.scheme() == "http" && !credentials && !http::proxy_configured(&*ctx.env) {
                let uri: hyper::Uri = url.parse().map_err(|e| invalid(&e))?;
                let host = uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                    .ok_or_else(|| invalid(&"no host"))?;
                let target: hyper::Uri = uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .parse()
                    .map_err(|e| invalid(&e))?;
                let endpoint = http::PlainHttp::new(&uri).ok_or_else(|| invalid(&"no host"))?;
                let mut head = Vec::new();
                for part in [
                    method.as_str().as_bytes(),
                    b" ",
                    target.to_string().as_bytes(),
                    b" HTTP/1.1\r\nHost: ",
                    host.as_bytes(),
                    b"\r\nUser-Agent: ",
                    http::USER_AGENT.as_bytes(),
                    b"\r\nContent-Type: application/json\r\n",
                ] {
                    head.extend_from_slice(part);
                }
                for (k, v) in &headers {
                    push_header(&mut head, k.as_str().as_bytes(), v.as_bytes());
                }
                Transport::Plain(endpoint, head)
            } else {
                Transport::Reqwest(ctx.http.clone(), parsed.clone())
            };
        let user = super::percent_decode(parsed.username());
        let pass = super::percent_decode(parsed.password().unwrap_or_default());
        let mut secrets: Vec<String> = vec![
            parsed.username().to_string(),
            parsed.password().unwrap_or_default().to_string(),
            user.clone(),
            pass.clone(),
        ];
        secrets.extend(secret.as_ref().map(|s| s.expose().to_string()));
        for (k, v) in &headers {
            if sensitive_header(k.as_str()) {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                // `Bearer xyz`: the credential alone too.
                if let Some((_, cred)) = v.split_once(' ') {
                    secrets.push(cred.trim().to_string());
                }
                secrets.push(v);
            }
        }
        secrets.extend(ctx.proxy_credentials());
        let pairs: Vec<(&str, &str)> = if credentials {
            vec![(user.as_str(), pass.as_str())]
        } else {
            Vec::new()
        };
        let redactor = Redactor::new(secrets.iter().map(String::as_str), &pairs);
        let url = if credentials {
            let mut shown = parsed.clone();
            let _ = shown.set_username("***");
            let _ = shown.set_password(Some("***"));
            shown.as_str().trim_end_matches('/').to_string()
        } else {
            url
        };
        Ok(Webhook {
            name: name.into(),
            url,
            method,
            headers,
            secret: key,
            transport,
            redactor,
            credentials,
        })
    }

    fn body(env: &Outgoing<'_>) -> Vec<u8> {
        super::message_json(env)
    }

    /// The signature headers of one attempt of `body`, signed at unix second `timestamp`:
    /// `X-Disparo-Signature`, then Standard Webhooks' `webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`.
    fn signatures(
        key: &SigningKey,
        id: &HeaderValue,
        timestamp: u64,
        body: &[u8],
    ) -> [(HeaderName, HeaderValue); 4] {
        // `id` is a header value already; the rest are ASCII digits, hex and base64.
        let value = |s: String| HeaderValue::try_from(s).expect("ASCII header value");
        let id_text = id.to_str().unwrap_or_default();
        [
            (SIGNATURE, value(key.legacy(body))),
            (WEBHOOK_ID, id.clone()),
            (WEBHOOK_TIMESTAMP, value(timestamp.to_string())),
            (
                WEBHOOK_SIGNATURE,
                value(key.standard(id_text, timestamp, body)),
            ),
        ]
    }

    pub async fn send(&self, env: &Outgoing<'_>) -> Result<Delivered, SendError> {
        let body = Self::body(env);
        let key = HeaderValue::from_str(env.message_id).map_err(|_| {
            SendError::permanent(format!(
                "channel `{}`: the message id {:?} cannot be sent as an Idempotency-Key header",
                self.name, env.message_id
            ))
        })?;
        // Standard Webhooks' timestamp is the real clock's (a receiver compares it with its
        // own), whatever clock the run plans by.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signatures = self
            .secret
            .as_ref()
            .map(|k| Self::signatures(k, &key, now, &body));
        let answer = match &self.transport {
            Transport::Plain(client, head) => {
                // The whole request in one buffer: one write.
                let mut request = Vec::with_capacity(head.len() + 160 + body.len());
                request.extend_from_slice(head);
                push_header(&mut request, b"Idempotency-Key", key.as_bytes());
                for (name, value) in signatures.iter().flatten() {
                    push_header(&mut request, name.as_str().as_bytes(), value.as_bytes());
                }
                request.extend_from_slice(b"Content-Length: ");
                request.extend_from_slice(body.len().to_string().as_bytes());
                request.extend_from_slice(b"\r\n\r\n");
                request.extend_from_slice(&body);
                client.send(&self.name, &request).await?
            }
            Transport::Reqwest(client, url) => {
                let mut request = client
                    .request(self.method.clone(), url.clone())
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .header(IDEMPOTENCY_KEY, key);
                for (k, v) in &self.headers {
                    request = request.header(k, v);
                }
                for (name, value) in signatures.into_iter().flatten() {
                    request = request.header(name, value);
                }
                http::exchange(&format!("channel `{}`", self.name), request.body(body)).await?
            }
        };
        let status = answer.status;
        if status.is_success() {
            // An id is optional here; a body that is not JSON cannot hold one.
            let id = provider_id(&answer.body);
            let why = (id.is_none()
                && !answer.body.trim_ascii().is_empty()
                && serde_json::from_slice::<serde::de::IgnoredAny>(&answer.body).is_err())
            .then_some("its body is not JSON");
            return Ok(http::accepted(&self.name, &answer, id, why));
        }
        let headers = &answer.headers;
        let wait = retry_after(headers);
        let text = String::from_utf8_lossy(&answer.body);
        let mut message = format!(
            "channel `{}`: webhook answered HTTP {}: {}",
            self.name,
            status.as_u16(),
            self.redactor.excerpt(&text, 200)
        );
        if status.is_redirection() {
            let to = headers
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("?");
            message.push_str(&format!(
                " (redirects are not followed: point `url` at {to})"
            ));
        }
        Err(SendError {
            class: status_class(status, wait),
            code: Some(format!("HTTP {}", status.as_u16())),
            message,
        })
    }

    pub fn preview_request(&self, env: &Outgoing<'_>) -> serde_json::Value {
        let mut headers = vec![
            ("Content-Type", "application/json".to_string()),
            ("Idempotency-Key", env.message_id.to_string()),
        ];
        for (k, v) in &self.headers {
            let v = if sensitive_header(k.as_str()) {
                "***".into()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            headers.push((k.as_str(), v));
        }
        if self.secret.is_some() {
            headers.push((SIGNATURE_HEADER, "sha256=***".into()));
            headers.push(("webhook-id", env.message_id.to_string()));
            headers.push(("webhook-timestamp", "<unix seconds when sent>".into()));
            headers.push(("webhook-signature", "v1,***".into()));
        }
        if self.credentials {
            headers.push(("Authorization", "Basic ***".into()));
        }

        let body = serde_json::to_value(MessageDoc::new(env)).unwrap_or_default();
        http::preview(self.method.as_str(), &self.url, &headers, body)
    }
}

/// Whether a configured header's value is a credential (shown as `***`, removed from errors).
fn sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["authorization", "cookie"].contains(&name.as_str())
        || ["token", "secret", "key", "auth", "password", "session"]
            .iter()
            .any(|w| name.contains(w))
}

#[cfg(test)]
mod tests {
    use super::provider_id;

    #[test]
    fn provider_id_is_a_string_or_a_number_id_and_nothing_else() {
        assert_eq!(
            provider_id(br#"{"id":"sink-1","x":[1]}"#).as_deref(),
            Some("sink-1")
        );
        assert_eq!(
            provider_id(br#"{"ok":true,"id":"a\"b"}"#).as_deref(),
            Some("a\"b")
        );
        assert_eq!(provider_id(br#"{"id":-42}"#).as_deref(), Some("-42"));
        // Cut after the id (a body larger than what is read, or truncated).
        assert_eq!(
            provider_id(br#"{"x":{"id":"inner"},"id":"p-1","pad":"xxxx"#).as_deref(),
            Some("p-1")
        );
        for none in [
            &br#"{"id":null}"#[..],
            br#"{"id":{"v":1}}"#,
            br#"{"id":[1]}"#,
            br#"{"other":1}"#,
            br#"{"other":1,"id""#,
            br#"[{"id":"in an array"}]"#,
            b"not json",
            b"",
        ] {
            assert_eq!(provider_id(none), None, "{}", String::from_utf8_lossy(none));
        }
    }
}
