//! What the HTTP adapters share: reading `Retry-After`, classifying a status, turning a
//! transport error into a [`SendError`], and the shape of a previewed request.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{ChannelBuildError, ErrorClass, SendError};

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
/// 401/403 break the circuit, 408/429/5xx are transient, other 4xx are permanent.
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
