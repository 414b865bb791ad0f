//! What the HTTP adapters share: reading `Retry-After`, classifying a status, turning a
//! transport error into a [`SendError`], and the shape of a previewed request.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::net::TcpStream;

use super::{ChannelBuildError, ErrorClass, SendError};

/// How long connecting may take, and a whole request (answer included), on every HTTP
/// client of a run.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const USER_AGENT: &str = concat!("disparo/", env!("CARGO_PKG_VERSION"));

/// Keep-alive HTTP/1.1 connections to one plain `http://` endpoint, on hyper's connection
/// API. reqwest (and the pooled client it wraps) parses the request URL again per request,
/// keys its pool by scheme and host, and runs redirect, retry and proxy layers; on a fast
/// endpoint that costs more than the request itself. Here a request takes an idle connection
/// (or opens one), and gives it back once the answer is read. Same timeouts and user agent as
/// the shared reqwest client, and, like it, no redirect is followed. Used only when the
/// environment names no proxy for `http://` (see [`proxy_configured`]).
#[derive(Debug, Clone)]
pub(crate) struct PlainHttp {
    inner: Arc<Endpoint>,
}

#[derive(Debug)]
struct Endpoint {
    /// `host:port`, to connect to.
    authority: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// An answer read in full.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Failure = (ErrorClass, String);

fn transient(text: String) -> Failure {
    (ErrorClass::Transient { retry_after: None }, text)
}

impl PlainHttp {
    /// Connections to `uri`'s host and port (80 when the URL names none).
    pub(crate) fn new(uri: &hyper::Uri) -> Option<PlainHttp> {
        let host = uri.host()?;
        let port = uri.port_u16().unwrap_or(80);
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Some(PlainHttp {
            inner: Arc::new(Endpoint {
                authority,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Sends `request` (origin-form URI, `Host` header set) and reads the whole answer, within
    /// [`REQUEST_TIMEOUT`]. `channel` names the sender in error messages.
    pub(crate) async fn send(
        &self,
        channel: &str,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Answer, SendError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request)).await {
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

    async fn exchange(&self, mut request: hyper::Request<Full<Bytes>>) -> Result<Answer, Failure> {
        // A kept-alive connection the server has closed meanwhile gives the request back
        // unsent: it goes out on the next connection (at most a few times).
        for _ in 0..4 {
            let mut sender = match self.idle() {
                Some(s) => s,
                None => self.connect().await?,
            };
            if sender.ready().await.is_err() {
                continue; // closed while idle
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map_err(|e| {
                            transient(format!("reading the answer: {}", super::error_chain(&e)))
                        })?
                        .to_bytes();
                    if !sender.is_closed() {
                        self.give_back(sender);
                    }
                    return Ok(Answer {
                        status: parts.status,
                        headers: parts.headers,
                        body,
                    });
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) => request = unsent,
                    // It may have reached the server: the dispatcher retries it later, with
                    // the same idempotency key.
                    None => return Err(transient(super::error_chain(e.error()))),
                },
            }
        }
        Err(transient(
            "the connection kept closing before the request was sent".into(),
        ))
    }

    fn idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn give_back(&self, sender: SendRequest<Full<Bytes>>) {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sender);
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let authority = &self.inner.authority;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority))
            .await
            .map_err(|_| {
                transient(format!(
                    "connecting to {authority} took over {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| transient(format!("tcp connect error: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| transient(super::error_chain(&e)))?;
        // The connection is driven by its own task until either side closes it.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// Whether the environment (as `env` reads it) names a proxy for `http://` requests, the way
/// reqwest reads it: then plain-HTTP endpoints go through reqwest, which honours it.
pub(crate) fn proxy_configured(env: &dyn Fn(&str) -> Option<String>) -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| env(v).is_some_and(|v| !v.is_empty()))
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
