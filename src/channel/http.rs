//! What the HTTP adapters share: reading `Retry-After`, classifying a status, turning a
//! transport error into a [`SendError`], and the shape of a previewed request.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ChannelBuildError, ErrorClass, SendError};

/// How long connecting may take, and a whole request (answer included), on every HTTP
/// client of a run.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const USER_AGENT: &str = concat!("disparo/", env!("CARGO_PKG_VERSION"));

/// Keep-alive HTTP/1.1 connections to one plain `http://` endpoint, one request at a time on
/// each (no pipelining). reqwest (and the pooled client it wraps) parses the request URL again
/// per request, keys its pool by scheme and host, and runs redirect, retry and proxy layers;
/// hyper's own connection API still drives each connection from a task of its own, with
/// channels between it and the request. On a fast endpoint all that cost more than the
/// request itself. Here a send takes an idle connection (or opens one), writes the request it
/// was given as bytes, reads the answer itself (`httparse` for the head; `Content-Length`,
/// chunked or close-delimited bodies; informational 1xx answers skipped) and gives the
/// connection back once the answer is read in full, unless either side said `close`. Same
/// timeouts and user agent as the shared reqwest client, and, like it, no redirect is
/// followed. Used only when the environment names no proxy for `http://` (see
/// [`proxy_configured`]).
#[derive(Debug, Clone)]
pub(crate) struct PlainHttp {
    inner: Arc<Endpoint>,
}

#[derive(Debug)]
struct Endpoint {
    /// `host:port`, to connect to.
    authority: String,
    idle: Mutex<Vec<Conn>>,
}

/// One kept-alive connection and its read buffer.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// An answer: its status and headers, and what was read of its body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// At most [`MAX_BODY`] bytes of the body.
    pub body: Bytes,
    /// Why `body` is not the whole body, when it is not (too large, cut short, too slow,
    /// malformed): after a 2xx status the message is sent all the same (see [`accepted`]).
    pub unread: Option<String>,
}

type Failure = (ErrorClass, String);

fn transient(text: String) -> Failure {
    (ErrorClass::Transient { retry_after: None }, text)
}

/// The longest answer head read from an endpoint, and the most of a body that is read: enough
/// for any provider id or error message. The rest of a longer body is not read (the
/// connection is closed): a 20 MiB answer is not buffered to find an id.
const MAX_HEAD: usize = 64 * 1024;
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Header lines of an answer, at most (hyper's and reqwest's limit).
const MAX_HEADERS: usize = 100;

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

    /// Sends `request` (a whole HTTP/1.1 request: head, with `Host` and `Content-Length`, and
    /// body) and reads the whole answer, within [`REQUEST_TIMEOUT`]. `channel` names the
    /// sender in error messages.
    /// The head must arrive within that time; a body still arriving then is cut there (the
    /// status is known: see [`Answer::unread`]).
    pub(crate) async fn send(&self, channel: &str, request: &[u8]) -> Result<Answer, SendError> {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        match tokio::time::timeout_at(deadline, self.exchange(request, deadline)).await {
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

    async fn exchange(
        &self,
        request: &[u8],
        deadline: tokio::time::Instant,
    ) -> Result<Answer, Failure> {
        // A request that could not be written whole was not received: it goes out on the next
        // connection (at most a few times). Kept-alive connections the server closed while
        // idle are left out before that (see `idle`).
        let mut last = String::new();
        let mut fresh_only = false;
        for _ in 0..4 {
            let pooled = if fresh_only { None } else { self.idle() };
            let reused = pooled.is_some();
            let mut conn = match pooled {
                Some(c) => c,
                None => self.connect().await?,
            };
            if let Err(e) = conn.stream.write_all(request).await {
                last = format!("writing the request: {e}");
                continue;
            }
            // From here on the request may have reached the server: a failure is a transient
            // error, and the dispatcher retries later with the same idempotency key.
            match conn.read_answer(deadline).await {
                Ok((answer, keep)) => {
                    if keep {
                        self.give_back(conn);
                    }
                    return Ok(answer);
                }
                // A kept-alive connection the server closed (its keep-alive timeout, or it
                // closes after every answer) just as the request went out: not a byte of an
                // answer came. The close was not yet visible to `idle`. The same bytes go out
                // once more, on a new connection: what the dispatcher's retry would send,
                // with the same idempotency key, without spending one of the attempts.
                Err(e) if reused && conn.buf.is_empty() => {
                    last = e;
                    fresh_only = true;
                }
                Err(e) => return Err(transient(e)),
            }
        }
        Err(transient(format!(
            "the connection kept closing before the request was sent ({last})"
        )))
    }

    /// An idle connection the server has not closed, if any. Whether it did is read from the
    /// readiness the runtime last saw: without a syscall when nothing arrived since the last
    /// answer was read.
    fn idle(&self) -> Option<Conn> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(c) = idle.pop() {
            let mut probe = [0u8; 1];
            match c.stream.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(c),
                // End of stream (closed), bytes nobody asked for, or an error: not reusable.
                _ => {}
            }
        }
        None
    }

    fn give_back(&self, conn: Conn) {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }

    async fn connect(&self) -> Result<Conn, Failure> {
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
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }
}

/// How an answer's body is delimited (RFC 9112 §6.3).
enum Framing {
    None,
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// What the head of an answer says.
struct Head {
    len: usize,
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

impl Conn {
    /// Reads more of the answer; `Ok(false)` at the end of the stream.
    async fn fill(&mut self) -> Result<bool, String> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(self.buf.capacity().max(4096));
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(format!("reading the answer: {e}")),
        }
    }

    /// Reads one answer (its body up to [`MAX_BODY`], until `deadline`); says whether the
    /// connection can carry another request. An error means no complete head arrived.
    async fn read_answer(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<(Answer, bool), String> {
        self.buf.clear();
        let mut start = 0;
        let head = loop {
            match parse_head(&self.buf[start..])? {
                // 100 Continue and other informational answers precede the real one.
                Some(h)
                    if h.status.is_informational()
                        && h.status != StatusCode::SWITCHING_PROTOCOLS =>
                {
                    start += h.len;
                }
                Some(h) if h.status == StatusCode::SWITCHING_PROTOCOLS => {
                    return Err(
                        "the server switched protocols (101), which a webhook does not do".into(),
                    );
                }
                Some(h) => break h,
                None => {
                    // Counted from the first byte: endless 1xx answers are refused too.
                    if self.buf.len() > MAX_HEAD {
                        return Err(format!("the answer's head is over {MAX_HEAD} bytes"));
                    }
                    if !self.fill().await? {
                        return Err(if self.buf.is_empty() {
                            "the server closed the connection without answering".into()
                        } else {
                            "the server closed the connection in the middle of its answer".into()
                        });
                    }
                }
            }
        };
        let at = start + head.len;
        // From here on the status is known: whatever happens to the body, the answer stands.
        let (body, unread) =
            match tokio::time::timeout_at(deadline, self.read_body(at, &head.framing)).await {
                Ok(Ok(body)) => (body, None),
                Ok(Err((body, why))) => (body, Some(why)),
                Err(_) => (
                    Bytes::copy_from_slice(&self.buf[at.min(self.buf.len())..]),
                    Some(format!(
                        "did not arrive within {} s",
                        REQUEST_TIMEOUT.as_secs()
                    )),
                ),
            };
        // Bytes after the answer were not asked for (no request is pipelined), and a body not
        // read to its end leaves the connection in an unknown state: it is not used again.
        let keep = head.keep_alive
            && unread.is_none()
            && self.buf.is_empty()
            && !matches!(head.framing, Framing::Close);
        self.buf.clear();
        Ok((
            Answer {
                status: head.status,
                headers: head.headers,
                body,
                unread,
            },
            keep,
        ))
    }

    /// Reads the body that starts at `at` in the buffer; consumes it from the buffer (what
    /// stays there was sent after the answer). `Err` holds what was read and why the rest
    /// was not.
    async fn read_body(&mut self, at: usize, framing: &Framing) -> Result<Bytes, (Bytes, String)> {
        let cut_short = "was cut short (the server closed the connection)".to_string();
        let too_large = format!("is over {MAX_BODY} bytes (the rest was not read)");
        let prefix =
            |buf: &[u8], n: usize| Bytes::copy_from_slice(&buf[at..(at + n).min(buf.len())]);
        match framing {
            Framing::None => {
                self.buf.drain(..at);
                Ok(Bytes::new())
            }
            Framing::Length(n) => {
                let want = (*n).min(MAX_BODY);
                while self.buf.len() < at + want {
                    match self.fill().await {
                        Ok(true) => {}
                        Ok(false) => return Err((prefix(&self.buf, want), cut_short)),
                        Err(e) => return Err((prefix(&self.buf, want), e)),
                    }
                }
                let body = prefix(&self.buf, want);
                if *n > MAX_BODY {
                    return Err((body, too_large));
                }
                self.buf.drain(..at + n);
                Ok(body)
            }
            Framing::Chunked => {
                let mut chunks = Chunked::default();
                loop {
                    match chunks.step(&self.buf[at..]) {
                        Ok(Some(used)) => {
                            self.buf.drain(..at + used);
                            return Ok(Bytes::from(chunks.body));
                        }
                        Ok(None) => {}
                        Err(e) => return Err((Bytes::from(chunks.body), e)),
                    }
                    if chunks.body.len() > MAX_BODY || self.buf.len() - at > 2 * MAX_BODY {
                        chunks.body.truncate(MAX_BODY);
                        return Err((Bytes::from(chunks.body), too_large));
                    }
                    match self.fill().await {
                        Ok(true) => {}
                        Ok(false) => return Err((Bytes::from(chunks.body), cut_short)),
                        Err(e) => return Err((Bytes::from(chunks.body), e)),
                    }
                }
            }
            Framing::Close => loop {
                if self.buf.len() - at > MAX_BODY {
                    return Err((prefix(&self.buf, MAX_BODY), too_large));
                }
                match self.fill().await {
                    Ok(true) => {}
                    Ok(false) => {
                        let body = prefix(&self.buf, usize::MAX - at);
                        self.buf.clear();
                        return Ok(body);
                    }
                    Err(e) => return Err((prefix(&self.buf, MAX_BODY), e)),
                }
            },
        }
    }
}

/// Parses an answer's head at the start of `buf`: `None` until it is complete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut lines);
    let len = match answer.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("the server's answer is not HTTP/1.1: {e}")),
    };
    let status = answer
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or("the server's answer has no valid status")?;
    let mut headers = HeaderMap::with_capacity(answer.headers.len());
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut encoded = false;
    let (mut close, mut keep_alive) = (false, false);
    for h in answer.headers.iter() {
        let name = reqwest::header::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            format!(
                "the server's answer has an invalid header name {:?}",
                h.name
            )
        })?;
        let value = reqwest::header::HeaderValue::from_bytes(h.value).map_err(|_| {
            format!(
                "the server's answer has an invalid value for the header {}",
                h.name
            )
        })?;
        if name == reqwest::header::CONTENT_LENGTH {
            let n = Some(trim(h.value))
                .filter(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit))
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok())
                .ok_or("the server's answer has an invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("the server's answer has conflicting Content-Length headers".into());
            }
            length = Some(n);
        } else if name == reqwest::header::TRANSFER_ENCODING {
            encoded = true;
            // Chunked must be the last coding applied.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|c| trim(c).eq_ignore_ascii_case(b"chunked"));
        } else if name == reqwest::header::CONNECTION {
            for token in h.value.split(|&b| b == b',').map(trim) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        headers.append(name, value);
    }
    let keep_alive = match answer.version {
        Some(1) => !close,
        _ => keep_alive && !close,
    } && !(encoded && (length.is_some() || answer.version != Some(1)));
    // Transfer-Encoding beside Content-Length, or in an HTTP/1.0 answer, may be a smuggling
    // attempt or a broken proxy (RFC 9112 §6.1, §6.3): read this answer, then close.
    let code = status.as_u16();
    let framing = if status.is_informational() || code == 204 || code == 304 {
        Framing::None
    } else if encoded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match length {
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    Ok(Some(Head {
        len,
        status,
        headers,
        framing,
        keep_alive,
    }))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A chunked body (RFC 9112 §7.1) decoded as it arrives.
#[derive(Default)]
struct Chunked {
    body: Vec<u8>,
    /// Where the next chunk's size line starts.
    next: usize,
}

impl Chunked {
    /// Decodes what `data` (the bytes after the head) holds; `Some(bytes used)` once the last
    /// chunk and the trailer section are in.
    fn step(&mut self, data: &[u8]) -> Result<Option<usize>, String> {
        let bad = || "the server's answer has a malformed chunked body".to_string();
        let line_end = |from: usize| data[from..].windows(2).position(|w| w == b"\r\n");
        loop {
            let Some(eol) = line_end(self.next) else {
                return Ok(None);
            };
            let line = &data[self.next..self.next + eol];
            let size = line
                .split(|&b| b == b';')
                .next()
                .map(trim)
                .unwrap_or_default();
            if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad());
            }
            let size = usize::from_str_radix(std::str::from_utf8(size).map_err(|_| bad())?, 16)
                .map_err(|_| bad())?;
            let from = self.next + eol + 2;
            if size == 0 {
                // Trailer fields, then an empty line.
                let mut at = from;
                loop {
                    let Some(end) = line_end(at) else {
                        return Ok(None);
                    };
                    if end == 0 {
                        return Ok(Some(at + 2));
                    }
                    at += end + 2;
                }
            }
            if data.len() < from + size + 2 {
                return Ok(None);
            }
            if &data[from + size..from + size + 2] != b"\r\n" {
                return Err(bad());
            }
            self.body.extend_from_slice(&data[from..from + size]);
            self.next = from + size + 2;
        }
    }
}

/// Whether the environment (as `env` reads it) names a proxy for `http://` requests, the way
/// reqwest reads it: then plain-HTTP endpoints go through reqwest, which honours it.
pub(crate) fn proxy_configured(env: &dyn Fn(&str) -> Option<String>) -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| env(v).is_some_and(|v| !v.is_empty()))
}

/// Sends a reqwest request and reads its answer, all within [`REQUEST_TIMEOUT`] whatever
/// client built it: the head must arrive in that time (else a transient error); the body is
/// read up to [`MAX_BODY`] (the rest is not read: dropping the response closes the
/// connection) until then. `what` names the sender in errors.
pub(crate) async fn exchange(
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<Answer, SendError> {
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    let mut response = match tokio::time::timeout_at(deadline, request.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(transport_error(what, e)),
        Err(_) => {
            return Err(SendError {
                class: ErrorClass::Transient { retry_after: None },
                code: Some("network".into()),
                message: format!("{what}: no answer within {} s", REQUEST_TIMEOUT.as_secs()),
            });
        }
    };
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    let unread = loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = MAX_BODY - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    break Some(format!("is over {MAX_BODY} bytes (the rest was not read)"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Ok(None)) => break None,
            Ok(Err(e)) => {
                break Some(format!(
                    "could not be read: {}",
                    super::error_chain(&e.without_url())
                ));
            }
            Err(_) => {
                break Some(format!(
                    "did not arrive within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ));
            }
        }
    };
    Ok(Answer {
        status,
        headers,
        body: Bytes::from(body),
        unread,
    })
}

/// A 2xx answer: the provider took the message, so it is sent, whatever became of the body
/// (retrying would send it twice). When the provider id is missing and `why` says why (the
/// body was not read whole, or could not be understood), a warning says so.
pub(crate) fn accepted(
    channel: &str,
    answer: &Answer,
    provider_id: Option<String>,
    why: Option<&str>,
) -> super::Delivered {
    if provider_id.is_none()
        && let Some(why) = answer
            .unread
            .as_deref()
            .map(|u| format!("its body {u}"))
            .or(why.map(str::to_string))
    {
        tracing::warn!(
            channel,
            status = answer.status.as_u16(),
            "channel `{channel}`: the provider accepted the message (HTTP {}), but {why}: recorded as sent without a provider id",
            answer.status.as_u16()
        );
    }
    super::Delivered { provider_id }
}

/// The provider's `Retry-After`: delta-seconds, or an HTTP date (RFC 9110 §10.2.3); see
/// [`parse_retry_after`].
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, jiff::Timestamp::now())
}

/// A `Retry-After` value read at `now`: whole seconds (any number of digits), fractional
/// seconds (leniently), or an HTTP date (a date in the past is "now"). Never more than
/// [`super::MAX_RETRY_AFTER`] (longer waits are taken as that); `None` when it is none of
/// these (negative numbers included).
pub(crate) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Twenty digits do not fit a u64: as long as the longest wait, not an error.
        return Some(
            value
                .parse::<u64>()
                .map_or(super::MAX_RETRY_AFTER, Duration::from_secs)
                .min(super::MAX_RETRY_AFTER),
        );
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return super::retry_after_secs(value.parse::<f64>().ok()?);
    }
    const DATES: jiff::fmt::rfc2822::DateTimeParser =
        jiff::fmt::rfc2822::DateTimeParser::new().relaxed_weekday(true);
    let when = match DATES.parse_timestamp(value) {
        Ok(when) => when,
        // A date past the last instant jiff represents (9999-12-30): far in the future.
        Err(_)
            if value
                .split_whitespace()
                .any(|t| t.parse::<u32>().is_ok_and(|y| y >= 9999)) =>
        {
            return Some(super::MAX_RETRY_AFTER);
        }
        Err(_) => return None,
    };
    let delta = when.duration_since(now);
    Some(
        Duration::try_from(delta)
            .unwrap_or(Duration::ZERO)
            .min(super::MAX_RETRY_AFTER),
    )
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

#[cfg(test)]
mod tests {
    use super::{Chunked, Framing, parse_head};

    fn head(text: &str) -> super::Head {
        parse_head(text.as_bytes())
            .expect("valid")
            .expect("complete")
    }

    #[test]
    fn answer_heads_say_how_the_body_ends_and_whether_the_connection_stays() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nrest");
        assert!(matches!(h.framing, Framing::Length(12)) && h.keep_alive);
        assert_eq!(h.len, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n".len());
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert!(matches!(h.framing, Framing::Chunked));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert!(matches!(h.framing, Framing::Close));
        // Transfer-Encoding wins over Content-Length; the connection is not used again.
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(h.framing, Framing::Chunked) && !h.keep_alive);
        let h =
            head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(h.framing, Framing::Chunked) && !h.keep_alive);
        // As many header lines as hyper takes.
        let many: String = (0..99).map(|i| format!("X-H{i}: v\r\n")).collect();
        assert!(
            head(&format!(
                "HTTP/1.1 200 OK\r\n{many}Content-Length: 0\r\n\r\n"
            ))
            .keep_alive
        );
        let h = head("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, close\r\n\r\n");
        assert!(matches!(h.framing, Framing::Close) && !h.keep_alive);
        let h = head("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
        assert!(matches!(h.framing, Framing::None) && h.keep_alive);
        let h = head("HTTP/1.1 100 Continue\r\n\r\n");
        assert!(matches!(h.framing, Framing::None) && h.status.is_informational());
        // HTTP/1.0 keeps the connection only when asked to.
        assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
                .keep_alive
        );
        let h =
            head("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.status.as_u16(), 429);
        assert_eq!(
            super::retry_after(&h.headers),
            Some(std::time::Duration::from_secs(7))
        );
        // Incomplete, and not HTTP.
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Le")
                .unwrap()
                .is_none()
        );
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn retry_after_saturates_at_the_longest_wait_and_never_panics() {
        use super::parse_retry_after as parse;
        use crate::channel::MAX_RETRY_AFTER as MAX;
        use std::time::Duration;
        let now: jiff::Timestamp = "2026-11-30T12:00:00Z".parse().unwrap();
        let s = Duration::from_secs;
        assert_eq!(parse("7", now), Some(s(7)));
        assert_eq!(parse(" 0 ", now), Some(s(0)));
        assert_eq!(parse("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse("604800", now), Some(MAX));
        for huge in [
            "604801",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "1e300",
            "99999999999999999999999999999999999999999.5",
            &"9".repeat(400),
        ] {
            assert_eq!(
                parse(huge, now),
                if huge == "1e300" { None } else { Some(MAX) },
                "{huge}"
            );
        }
        assert_eq!(
            parse("Mon, 30 Nov 2026 12:00:30 GMT", now),
            Some(s(30)),
            "an HTTP date"
        );
        assert_eq!(parse("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(MAX));
        assert_eq!(
            parse("Mon, 01 Jan 3000 00:00:00 GMT", now),
            Some(MAX),
            "wrong weekday"
        );
        assert_eq!(
            parse("Thu, 01 Jan 1970 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "-1",
            "-0.5",
            "soon",
            "1.2.3",
            ".",
            "NaN",
            "inf",
            "Mon, 99 Nov 2026",
        ] {
            assert_eq!(parse(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let wire = b"4;name=v\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\nNEXT";
        let whole = wire.len() - 4;
        // Fed as it would arrive, a byte more each time.
        let mut c = Chunked::default();
        let mut done = None;
        for end in 0..=wire.len() {
            if let Some(used) = c.step(&wire[..end]).unwrap() {
                done = Some((end, used));
                break;
            }
        }
        assert_eq!(done, Some((whole, whole)));
        assert_eq!(c.body, b"Wikipedia in \r\n\r\nchunks.");
        let mut c = Chunked::default();
        assert_eq!(c.step(b"0\r\n\r\n").unwrap(), Some(5));
        assert!(c.body.is_empty());
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"3\r\nabcX\r\n",
            b"1234567890abcdef0\r\n",
            b"+3\r\nabc\r\n",
        ] {
            assert!(
                Chunked::default().step(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
