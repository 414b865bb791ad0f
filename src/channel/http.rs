//! What the HTTP adapters share: reading `Retry-After`, classifying a status, turning a
//! transport error into a [`SendError`], and the shape of a previewed request.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{ChannelBuildError, ErrorClass, SendError};

/// How long connecting may take, and a whole request (answer included), on every HTTP
/// client of a run.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const USER_AGENT: &str = concat!("disparo/", env!("CARGO_PKG_VERSION"));

/// A pooled keep-alive HTTP/1.1 client for plain `http://` endpoints: hyper's own pooled client,
/// without reqwest's layers. reqwest parses the request URL again twice per request (for its
/// redirect policy and for the response) and goes through its redirect, retry and proxy
/// layers, which on a fast endpoint cost more than the request itself. Same timeouts and user
/// agent as the shared reqwest client, and, like it, no redirect is followed. Used only when
/// the environment names no proxy for `http://` (see [`proxy_configured`]).
#[derive(Debug, Clone)]
pub(crate) struct PlainHttp {
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An answer read in full.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl PlainHttp {
    pub(crate) fn new() -> PlainHttp {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        PlainHttp { client }
    }

    /// Sends `request` and reads the whole answer, within [`REQUEST_TIMEOUT`]. `channel`
    /// names the sender in error messages.
    pub(crate) async fn send(
        &self,
        channel: &str,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Answer, SendError> {
        let exchange = async {
            // Connecting failed, or the connection failed before an answer came: the
            // request is well formed (built here), so trying again may help.
            let response = self.client.request(request).await.map_err(|e| {
                (
                    ErrorClass::Transient { retry_after: None },
                    super::error_chain(&e),
                )
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| {
                    (
                        ErrorClass::Transient { retry_after: None },
                        format!("reading the answer: {}", super::error_chain(&e)),
                    )
                })?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err((class, text))) => Err(SendError {
                class,
                code: Some("network".into()),
                message: format!("channel `{channel}`: {text}"),
            }),
            Err(_) => Err(SendError {
                class: ErrorClass::Transient { retry_after: None },
                code: Some("network".into()),
                message: format!(
                    "channel `{channel}`: no answer within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ),
            }),
        }
    }
}

/// Whether the environment names a proxy for `http://` requests (as reqwest reads it): then
/// plain-HTTP endpoints go through reqwest, which honours it.
pub(crate) fn proxy_configured() -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

/// The provider's `Retry-After`: delta-seconds, or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let delta = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// The class an HTTP status gives when the body says nothing more specific:
/// 401/403 break the circuit, 408/429/5xx are transient, other 4xx (and 3xx: redirects are
/// not followed) are permanent.
pub(crate) fn status_class(status: StatusCode, retry_after: Option<Duration>) -> ErrorClass {
    match status.as_u16() {
        401 | 403 => ErrorClass::Breaker,
        408 | 425 | 429 | 500..=599 => ErrorClass::Transient { retry_after },
        _ => ErrorClass::Permanent,
    }
}

/// A request that never got an answer (connect refused, timeout, reset): transient.
/// The URL is dropped from the message: it may carry an account id.
pub(crate) fn transport_error(what: &str, e: reqwest::Error) -> SendError {
    let e = e.without_url();
    let text = super::error_chain(&e);
    let class = if e.is_builder() {
        ErrorClass::Permanent
    } else {
        ErrorClass::Transient { retry_after: None }
    };
    SendError {
        class,
        code: Some("network".into()),
        message: format!("{what}: {text}"),
    }
}

/// Checks a configured base URL or endpoint and returns it without a trailing slash.
pub(crate) fn check_url(channel: &str, key: &str, url: &str) -> Result<String, ChannelBuildError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        ChannelBuildError::invalid(channel, format!("`{key}: {url}` is not a URL: {e}"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ChannelBuildError::invalid(
            channel,
            format!("`{key}: {url}` must be an http:// or https:// URL"),
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// `{method, url, headers, body}` as `preview` shows a request.
pub(crate) fn preview(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: serde_json::Value,
) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| ((*k).to_string(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({ "method": method, "url": url, "headers": headers, "body": body })
}

/// At most `max` characters of a response body, for an error message.
pub(crate) fn excerpt(body: &str, max: usize) -> String {
    let body = body.trim();
    match body.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None => body.to_string(),
    }
}
