//! A lying provider: HTTP/1.1 (keep-alive) and SMTP on 127.0.0.1, ports chosen by the OS,
//! served by a tokio runtime of its own on its own thread, so that tests on paused time and
//! tests running the real binary can both use it.
//!
//! Every request is answered by the next scripted [`Behaviour`] (HTTP) or [`SmtpBehaviour`]
//! (SMTP, one per message), else the default one ([`Behaviour::Accept`] unless changed).
//! Everything that arrives is recorded ([`Provider::requests`]) and counted per idempotency key
//! ([`Provider::deliveries`] counts only what the provider accepted, [`Provider::arrivals`]
//! everything). The key of an HTTP request is its `Idempotency-Key` header, else
//! `I-Twilio-Idempotency-Token`, else the JSON body's `id`, else `to:` and the JSON `to` or the
//! form's `To` (WhatsApp Cloud requests carry no key of their own); of an SMTP message its
//! `Message-ID` header.
//!
//! [`Provider::hold`] makes every request that arrives afterwards wait (recorded, unanswered)
//! until [`Provider::release`]: a test can change state while a batch is in hand, and know it
//! is in hand with [`Provider::wait_for_requests`]. `release` also ends every
//! [`Behaviour::Hang`] (the connection is closed without an answer).
//!
//! ```ignore
//! let p = Provider::start();
//! p.push(Behaviour::status(503).header("Retry-After", "99999999999999999999"));
//! p.push(Behaviour::Huge { status: 200, size: 20 << 20 });
//! // ... point a channel at p.url("/hook") or 127.0.0.1:p.smtp_port() ...
//! let seen = p.wait_for_requests(2, Duration::from_secs(20));
//! assert_eq!(p.deliveries()["the-key"], 1);
//! ```

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the provider answers one HTTP request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// `200` with `{"id":"p-N","sid":"SMp-N","messages":[{"id":"wamid.p-N"}]}`: a provider id
    /// every adapter can read (webhook `id`, Twilio `sid`, WhatsApp `messages[0].id`).
    Accept,
    /// Exactly this status, these headers and this body (with its `Content-Length`).
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// The request, head and body, as text in a JSON body (`id`, `sid`, `messages[0].id`,
    /// `message` and `error.message` all hold it): what a provider echoing our input does.
    Echo {
        status: u16,
        headers: Vec<(String, String)>,
    },
    /// Waits `head` before the first byte, then writes `then`'s answer one byte every
    /// `between`.
    Slow {
        head: Duration,
        between: Duration,
        then: Box<Behaviour>,
    },
    /// Never answers: the connection stays open until the client closes it or
    /// [`Provider::release`].
    Hang,
    /// These bytes (not HTTP), then close.
    Garbage(Vec<u8>),
    /// `status` with a JSON body of `size` bytes (an `id` first, then padding).
    Huge { status: u16, size: usize },
    /// `status`, `Content-Length: declared`, then only `body`, then close.
    Truncated {
        status: u16,
        declared: usize,
        body: Vec<u8>,
    },
    /// Half a status line, then close.
    CloseMidAnswer,
}

impl Behaviour {
    /// `status` with an empty JSON object body; add headers with [`header`](Self::header).
    pub fn status(status: u16) -> Behaviour {
        Behaviour::Answer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Behaviour {
        Behaviour::Answer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn echo(status: u16) -> Behaviour {
        Behaviour::Echo {
            status,
            headers: Vec::new(),
        }
    }

    /// Adds a header to an `Answer` or an `Echo` (and to what a `Slow` finally sends).
    pub fn header(mut self, name: &str, value: &str) -> Behaviour {
        match &mut self {
            Behaviour::Answer { headers, .. } | Behaviour::Echo { headers, .. } => {
                headers.push((name.into(), value.into()))
            }
            Behaviour::Slow { then, .. } => {
                let inner = std::mem::replace(then.as_mut(), Behaviour::Accept);
                **then = inner.header(name, value);
            }
            other => panic!("cannot add a header to {other:?}"),
        }
        self
    }

    /// Whether a provider answering this way took the message (a 2xx status went out).
    pub fn accepts(&self) -> bool {
        let ok = |s: &u16| (200..300).contains(s);
        match self {
            Behaviour::Accept => true,
            Behaviour::Answer { status, .. }
            | Behaviour::Echo { status, .. }
            | Behaviour::Huge { status, .. }
            | Behaviour::Truncated { status, .. } => ok(status),
            Behaviour::Slow { then, .. } => then.accepts(),
            Behaviour::Hang | Behaviour::Garbage(_) | Behaviour::CloseMidAnswer => false,
        }
    }
}

/// A point of an SMTP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpStage {
    Greeting,
    Ehlo,
    Auth,
    Mail,
    Rcpt,
    /// The `DATA` command (before the message).
    Data,
    /// After the message's final dot.
    Message,
    /// The `QUIT` after the message was accepted.
    Quit,
    /// A `NOOP` (the check before a kept connection is reused).
    Noop,
}

/// How the provider answers one SMTP session (one message: the smtp adapter opens a
/// connection per message).
#[derive(Debug, Clone)]
pub enum SmtpBehaviour {
    Accept,
    /// `code text` instead of the normal reply at `at`, then the session goes on as the
    /// client wants (a 4xx/5xx usually ends it).
    Reply {
        at: SmtpStage,
        code: u16,
        text: String,
    },
    /// `code` and the whole session so far (AUTH lines included) as the reply at `at`.
    Echo {
        at: SmtpStage,
        code: u16,
    },
    /// No reply at `at`, until the client closes or [`Provider::release`].
    Hang {
        at: SmtpStage,
    },
    /// Close the connection at `at`.
    Drop {
        at: SmtpStage,
    },
}

impl SmtpBehaviour {
    fn at(&self) -> Option<SmtpStage> {
        match self {
            SmtpBehaviour::Accept => None,
            SmtpBehaviour::Reply { at, .. }
            | SmtpBehaviour::Echo { at, .. }
            | SmtpBehaviour::Hang { at }
            | SmtpBehaviour::Drop { at } => Some(*at),
        }
    }
}

/// One request (HTTP) or one message (SMTP) as it arrived.
#[derive(Debug, Clone)]
pub struct Record {
    /// When the whole request (the message's final dot) had arrived.
    pub at: Instant,
    /// `POST`, `PUT`, ... or `SMTP`.
    pub method: String,
    /// The request target; for SMTP `MAIL FROM:<..> RCPT TO:<..>`.
    pub path: String,
    /// Request headers; for SMTP, the message's headers.
    pub headers: Vec<(String, String)>,
    /// Request body; for SMTP, the whole message (DATA).
    pub body: Vec<u8>,
    /// The idempotency key (see the module's documentation).
    pub key: Option<String>,
    /// SMTP only: every command line the client sent, in order.
    pub transcript: Vec<String>,
    /// Whether the provider accepted it (a 2xx / 250 after the data went out).
    pub accepted: bool,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct State {
    http_queue: VecDeque<Behaviour>,
    http_default: Option<Behaviour>,
    smtp_queue: VecDeque<SmtpBehaviour>,
    smtp_default: Option<SmtpBehaviour>,
    records: Vec<Record>,
    served: u64,
}

struct Inner {
    state: Mutex<State>,
    /// Whether new requests are held (see [`Provider::hold`]).
    held: watch::Sender<bool>,
    /// Bumped by every [`Provider::release`]: ends hangs.
    releases: watch::Sender<u64>,
    /// How many requests were recorded.
    count: watch::Sender<usize>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_http(&self) -> (Behaviour, u64) {
        let mut s = self.lock();
        s.served += 1;
        let n = s.served;
        let b = s
            .http_queue
            .pop_front()
            .or_else(|| s.http_default.clone())
            .unwrap_or(Behaviour::Accept);
        (b, n)
    }

    fn next_smtp(&self) -> (SmtpBehaviour, u64) {
        let mut s = self.lock();
        s.served += 1;
        let n = s.served;
        let b = s
            .smtp_queue
            .pop_front()
            .or_else(|| s.smtp_default.clone())
            .unwrap_or(SmtpBehaviour::Accept);
        (b, n)
    }

    fn record(&self, r: Record) {
        let mut s = self.lock();
        s.records.push(r);
        let n = s.records.len();
        drop(s);
        self.count.send_replace(n);
    }

    /// Waits while requests are held.
    async fn gate(&self) {
        let mut rx = self.held.subscribe();
        let _ = rx.wait_for(|held| !*held).await;
    }

    /// How many times [`Provider::release`] was called so far.
    fn release_count(&self) -> u64 {
        *self.releases.borrow()
    }

    /// Resolves once [`Provider::release`] was called more than `seen` times (a request
    /// remembers the count when it arrives: a release before it hangs does not end it,
    /// one after does, even while it was still held at the gate).
    async fn released(&self, seen: u64) {
        let mut rx = self.releases.subscribe();
        let _ = rx.wait_for(|g| *g > seen).await;
    }
}

/// The running provider; stopped when dropped.
pub struct Provider {
    inner: Arc<Inner>,
    http: SocketAddr,
    smtp: SocketAddr,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Provider {
    /// Binds both listeners on 127.0.0.1 and starts serving.
    pub fn start() -> Provider {
        let (held, _) = watch::channel(false);
        let (releases, _) = watch::channel(0);
        let (count, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            held,
            releases,
            count,
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = inner.clone();
        let thread = std::thread::Builder::new()
            .name("lying-provider".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("provider runtime");
                rt.block_on(async move {
                    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
                    let smtp = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
                    ready_tx
                        .send((
                            http.local_addr().unwrap(),
                            smtp.local_addr().unwrap(),
                            tokio::runtime::Handle::current(),
                        ))
                        .unwrap();
                    let h = shared.clone();
                    let http_loop = async move {
                        while let Ok((s, _)) = http.accept().await {
                            tokio::spawn(serve_http(s, h.clone()));
                        }
                    };
                    let s2 = shared.clone();
                    let smtp_loop = async move {
                        while let Ok((s, _)) = smtp.accept().await {
                            tokio::spawn(serve_smtp(s, s2.clone()));
                        }
                    };
                    tokio::select! {
                        _ = http_loop => {}
                        _ = smtp_loop => {}
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime cancels every connection task.
            })
            .expect("spawn provider thread");
        let (http, smtp, handle) = ready_rx.recv().expect("provider started");
        Provider {
            inner,
            http,
            smtp,
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn smtp_port(&self) -> u16 {
        self.smtp.port()
    }

    /// Answers the next HTTP request this way (queued after those pushed before).
    pub fn push(&self, b: Behaviour) -> &Provider {
        self.inner.lock().http_queue.push_back(b);
        self
    }

    /// How HTTP requests are answered once the queue is empty.
    pub fn default(&self, b: Behaviour) -> &Provider {
        self.inner.lock().http_default = Some(b);
        self
    }

    pub fn push_smtp(&self, b: SmtpBehaviour) -> &Provider {
        self.inner.lock().smtp_queue.push_back(b);
        self
    }

    pub fn default_smtp(&self, b: SmtpBehaviour) -> &Provider {
        self.inner.lock().smtp_default = Some(b);
        self
    }

    /// Requests arriving from now on wait, recorded and unanswered, until [`release`](Self::release).
    pub fn hold(&self) {
        self.inner.held.send_replace(true);
    }

    /// Lets held requests be answered, and closes every hanging connection.
    pub fn release(&self) {
        self.inner.held.send_replace(false);
        self.inner.releases.send_modify(|g| *g += 1);
    }

    /// Every request recorded so far, in order of arrival.
    pub fn requests(&self) -> Vec<Record> {
        self.inner.lock().records.clone()
    }

    /// Accepted requests per idempotency key.
    pub fn deliveries(&self) -> HashMap<String, usize> {
        self.per_key(true)
    }

    /// Every request per idempotency key, accepted or not.
    pub fn arrivals(&self) -> HashMap<String, usize> {
        self.per_key(false)
    }

    fn per_key(&self, accepted_only: bool) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for r in &self.inner.lock().records {
            if let Some(k) = &r.key
                && (r.accepted || !accepted_only)
            {
                *out.entry(k.clone()).or_insert(0) += 1;
            }
        }
        out
    }

    /// Waits until at least `n` requests were recorded and returns them; panics after
    /// `deadline` (a safety net: the wait itself is on the count, not on time). Timed on the
    /// provider's own runtime, so it works from tests on paused time too.
    pub async fn wait_for_requests(&self, n: usize, deadline: Duration) -> Vec<Record> {
        let mut rx = self.inner.count.subscribe();
        let (tx, timed_out) = tokio::sync::oneshot::channel::<()>();
        let timer = self.handle.spawn(async move {
            tokio::time::sleep(deadline).await;
            let _ = tx.send(());
        });
        tokio::select! {
            r = rx.wait_for(|c| *c >= n) => { r.expect("provider stopped"); }
            _ = timed_out => {
                let got = self.requests();
                panic!("{} requests within {deadline:?}, wanted {n}: {got:#?}", got.len());
            }
        }
        timer.abort();
        self.requests()
    }

    /// [`wait_for_requests`](Self::wait_for_requests) for a test off any runtime.
    pub fn wait_for_requests_blocking(&self, n: usize, deadline: Duration) -> Vec<Record> {
        let end = Instant::now() + deadline;
        let mut rx = self.inner.count.subscribe();
        let (tx, rx_done) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let r = tokio::time::timeout_at(end.into(), rx.wait_for(|c| *c >= n)).await;
            let _ = tx.send(r.is_ok());
        });
        if !rx_done.recv().unwrap_or(false) {
            let got = self.requests();
            panic!(
                "{} requests within {deadline:?}, wanted {n}: {got:#?}",
                got.len()
            );
        }
        self.requests()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn http_key(headers: &[(String, String)], body: &[u8]) -> Option<String> {
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    if let Some(k) = header("idempotency-key").or_else(|| header("i-twilio-idempotency-token")) {
        return Some(k);
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(id) = v.get("id").and_then(|i| i.as_str()) {
            return Some(id.to_string());
        }
        if let Some(to) = v.get("to").and_then(|i| i.as_str()) {
            return Some(format!("to:{to}"));
        }
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "To")
        .map(|(_, v)| format!("to:{v}"))
}

fn status_line(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Scripted",
    };
    format!("HTTP/1.1 {status} {reason}\r\n")
}

fn answer_bytes(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = status_line(status);
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// What to write for `b`, and whether to close afterwards; `None` for behaviours that do
/// not write a plain answer.
fn rendered(b: &Behaviour, n: u64, request: &[u8]) -> Option<(Vec<u8>, bool)> {
    Some(match b {
        Behaviour::Accept => {
            let body = serde_json::json!({
                "id": format!("p-{n}"), "sid": format!("SMp-{n}"),
                "messages": [{"id": format!("wamid.p-{n}")}],
            })
            .to_string();
            let h = [("Content-Type".to_string(), "application/json".to_string())];
            (answer_bytes(200, &h, body.as_bytes()), false)
        }
        Behaviour::Answer {
            status,
            headers,
            body,
        } => (answer_bytes(*status, headers, body), false),
        Behaviour::Echo { status, headers } => {
            let echo = String::from_utf8_lossy(request).into_owned();
            let body = serde_json::json!({
                "id": echo, "sid": echo, "messages": [{"id": echo}],
                "message": echo, "error": {"message": echo},
            })
            .to_string();
            let mut h = vec![("Content-Type".to_string(), "application/json".to_string())];
            h.extend(headers.iter().cloned());
            (answer_bytes(*status, &h, body.as_bytes()), false)
        }
        Behaviour::Huge { status, size } => {
            let head = format!("{{\"id\":\"p-{n}\",\"pad\":\"");
            let mut body = head.into_bytes();
            let pad = size.saturating_sub(body.len() + 2);
            body.resize(body.len() + pad, b'x');
            body.extend_from_slice(b"\"}");
            let h = [("Content-Type".to_string(), "application/json".to_string())];
            (answer_bytes(*status, &h, &body), false)
        }
        Behaviour::Truncated {
            status,
            declared,
            body,
        } => {
            let mut out = format!(
                "{}Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n",
                status_line(*status)
            )
            .into_bytes();
            out.extend_from_slice(body);
            (out, true)
        }
        Behaviour::Garbage(bytes) => (bytes.clone(), true),
        Behaviour::CloseMidAnswer => (b"HTTP/1.1 20".to_vec(), true),
        Behaviour::Slow { .. } | Behaviour::Hang => return None,
    })
}

async fn serve_http(mut stream: TcpStream, inner: Arc<Inner>) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_string();
        let path = request_line.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + 4 + len {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let request: Vec<u8> = buf.drain(..head_end + 4 + len).collect();
        let body = request[head_end + 4..].to_vec();
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (behaviour, n) = inner.next_http();
        let seen = inner.release_count();
        inner.record(Record {
            at: Instant::now(),
            method,
            path,
            key: http_key(&headers, &body),
            headers,
            body,
            transcript: Vec::new(),
            accepted: behaviour.accepts(),
        });
        inner.gate().await;
        if !answer(&mut stream, &inner, &behaviour, (n, seen), &request).await || close {
            return;
        }
    }
}

/// Writes the answer `b`; whether the connection can carry another request.
async fn answer(
    stream: &mut TcpStream,
    inner: &Inner,
    b: &Behaviour,
    (n, seen): (u64, u64),
    request: &[u8],
) -> bool {
    match b {
        Behaviour::Hang => {
            let mut sink = [0u8; 1024];
            loop {
                tokio::select! {
                    r = stream.read(&mut sink) => match r {
                        Ok(0) | Err(_) => return false,
                        Ok(_) => {}
                    },
                    _ = inner.released(seen) => return false,
                }
            }
        }
        Behaviour::Slow {
            head,
            between,
            then,
        } => {
            tokio::time::sleep(*head).await;
            let Some((bytes, close)) = rendered(then, n, request) else {
                return false;
            };
            for b in bytes {
                if stream.write_all(&[b]).await.is_err() {
                    return false;
                }
                tokio::time::sleep(*between).await;
            }
            !close
        }
        other => {
            let Some((bytes, close)) = rendered(other, n, request) else {
                return false;
            };
            if stream.write_all(&bytes).await.is_err() {
                return false;
            }
            if close {
                let _ = stream.shutdown().await;
            }
            !close
        }
    }
}

// ---------------------------------------------------------------------------------------
// SMTP

const EHLO_REPLY: &str =
    "250-lying.test\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";

enum Step {
    Go,
    Stop,
}

/// The scripted reply at `stage`, if the behaviour acts there; `None` for the normal one.
async fn scripted(
    stream: &mut BufReader<TcpStream>,
    inner: &Inner,
    b: &SmtpBehaviour,
    stage: SmtpStage,
    transcript: &[String],
    seen: u64,
) -> Option<Step> {
    if b.at() != Some(stage) {
        return None;
    }
    let reply = match b {
        SmtpBehaviour::Accept => return None,
        SmtpBehaviour::Reply { code, text, .. } => format!("{code} {text}\r\n"),
        SmtpBehaviour::Echo { code, .. } => {
            format!("{code} you sent: {}\r\n", transcript.join(" | "))
        }
        SmtpBehaviour::Drop { .. } => return Some(Step::Stop),
        SmtpBehaviour::Hang { .. } => {
            let mut sink = [0u8; 1024];
            loop {
                tokio::select! {
                    r = stream.read(&mut sink) => match r {
                        Ok(0) | Err(_) => return Some(Step::Stop),
                        Ok(_) => {}
                    },
                    _ = inner.released(seen) => return Some(Step::Stop),
                }
            }
        }
    };
    if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
        return Some(Step::Stop);
    }
    Some(Step::Go)
}

async fn serve_smtp(stream: TcpStream, inner: Arc<Inner>) {
    let (behaviour, n) = inner.next_smtp();
    let seen = inner.release_count();
    let mut stream = BufReader::new(stream);
    let mut transcript: Vec<String> = Vec::new();
    macro_rules! at {
        ($stage:expr, $normal:expr) => {
            match scripted(&mut stream, &inner, &behaviour, $stage, &transcript, seen).await {
                Some(Step::Stop) => return,
                Some(Step::Go) => {}
                None => {
                    if stream
                        .get_mut()
                        .write_all($normal.as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        };
    }
    at!(SmtpStage::Greeting, "220 lying.test ESMTP\r\n");
    let (mut from, mut to) = (String::new(), Vec::<String>::new());
    let mut line = String::new();
    loop {
        line.clear();
        match stream.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cmd = line.trim_end().to_string();
        transcript.push(cmd.clone());
        let verb = cmd
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => at!(SmtpStage::Ehlo, EHLO_REPLY),
            "AUTH" => {
                let mech = cmd
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                let initial = cmd.split_whitespace().nth(2).is_some();
                // The continuation lines of the exchange, before the scripted reply.
                let prompts: &[&str] = match (mech.as_str(), initial) {
                    ("PLAIN", true) => &[],
                    ("PLAIN", false) => &["334 \r\n"],
                    ("LOGIN", true) => &["334 UGFzc3dvcmQ6\r\n"],
                    _ => &["334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n"],
                };
                for p in prompts {
                    if stream.get_mut().write_all(p.as_bytes()).await.is_err() {
                        return;
                    }
                    line.clear();
                    match stream.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => transcript.push(line.trim_end().to_string()),
                    }
                }
                at!(SmtpStage::Auth, "235 2.7.0 authenticated\r\n");
            }
            "MAIL" => {
                from = cmd.clone();
                at!(SmtpStage::Mail, "250 2.1.0 ok\r\n");
            }
            "RCPT" => {
                to.push(cmd.clone());
                at!(SmtpStage::Rcpt, "250 2.1.5 ok\r\n");
            }
            "DATA" => {
                at!(SmtpStage::Data, "354 go ahead\r\n");
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    match stream.read_until(b'\n', &mut l).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    let l = if l.starts_with(b"..") {
                        &l[1..]
                    } else {
                        &l[..]
                    };
                    data.extend_from_slice(l);
                }
                let text = String::from_utf8_lossy(&data).into_owned();
                let head = text.split("\r\n\r\n").next().unwrap_or_default();
                let mut headers: Vec<(String, String)> = Vec::new();
                for l in head.split("\r\n") {
                    if l.starts_with([' ', '\t']) {
                        if let Some(last) = headers.last_mut() {
                            last.1.push(' ');
                            last.1.push_str(l.trim());
                        }
                    } else if let Some((k, v)) = l.split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let key = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("message-id"))
                    .map(|(_, v)| v.clone());
                let accepted = behaviour.at() != Some(SmtpStage::Message)
                    || matches!(&behaviour, SmtpBehaviour::Reply { code, .. } | SmtpBehaviour::Echo { code, .. } if (200..300).contains(code));
                inner.record(Record {
                    at: Instant::now(),
                    method: "SMTP".into(),
                    path: format!("{from} {}", to.join(" ")),
                    headers,
                    body: data,
                    key,
                    transcript: transcript.clone(),
                    accepted,
                });
                inner.gate().await;
                let ok = format!("250 2.0.0 queued as p-{n}\r\n");
                at!(SmtpStage::Message, ok);
                from.clear();
                to.clear();
            }
            "NOOP" => at!(SmtpStage::Noop, "250 2.0.0 ok\r\n"),
            "RSET" => {
                if stream
                    .get_mut()
                    .write_all(b"250 2.0.0 ok\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
            }
            "QUIT" => {
                at!(SmtpStage::Quit, "221 2.0.0 bye\r\n");
                return;
            }
            _ => {
                if stream
                    .get_mut()
                    .write_all(b"502 5.5.2 command not recognised\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The provider's own tests.

#[cfg(test)]
mod tests {
    use super::{Behaviour, Provider, SmtpBehaviour, SmtpStage};
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn scripted_answers_come_in_order_and_requests_are_recorded_and_counted_per_key() {
        let p = Provider::start();
        p.push(Behaviour::status(503).header("Retry-After", "99999999999999999999"))
            .push(Behaviour::echo(400))
            .push(Behaviour::Truncated {
                status: 200,
                declared: 100,
                body: b"{\"id\":".to_vec(),
            });
        let client = reqwest::Client::new();
        let send = |key: &'static str| {
            client
                .post(p.url("/hook"))
                .header("Idempotency-Key", key)
                .header("Authorization", "Basic dXNlcjpwYXNz")
                .body(r#"{"id":"ignored","to":"+1"}"#)
                .send()
        };
        let r = send("k1").await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "99999999999999999999");
        let r = send("k1").await.unwrap();
        assert_eq!(r.status(), 400);
        let echoed = r.text().await.unwrap();
        assert!(echoed.contains("dXNlcjpwYXNz"), "{echoed}");
        let r = send("k2").await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.is_err(), "a truncated body is an error");
        // The queue is empty: the default accepts with an id.
        let r = send("k3").await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["id"], "p-4");
        assert_eq!(v["messages"][0]["id"], "wamid.p-4");
        let seen = p.wait_for_requests(4, WAIT).await;
        assert_eq!(
            seen.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
            ["/hook"; 4]
        );
        assert_eq!(seen[0].header("authorization"), Some("Basic dXNlcjpwYXNz"));
        let d = p.deliveries();
        assert_eq!((d.get("k1"), d["k2"], d["k3"]), (None, 1, 1));
        assert_eq!(p.arrivals()["k1"], 2);
    }

    #[tokio::test]
    async fn held_requests_wait_for_release_and_hangs_end_with_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let p = Provider::start();
        p.push(Behaviour::Hang);
        p.hold();
        // The hanging request on a raw connection: what the provider does to it is seen
        // byte for byte, with no client's own retries or pooling in between.
        let mut raw = tokio::net::TcpStream::connect(p.http_addr()).await.unwrap();
        raw.write_all(b"POST /a HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}")
            .await
            .unwrap();
        // The first to arrive gets the hang.
        p.wait_for_requests(1, WAIT).await;
        let client = reqwest::Client::new();
        let held = tokio::spawn(client.post(p.url("/b")).body("{}").send());
        // Both arrived; neither is answered.
        p.wait_for_requests(2, WAIT).await;
        assert!(!held.is_finished());
        p.release();
        let held = tokio::time::timeout(WAIT, held).await.expect("released");
        assert_eq!(held.unwrap().unwrap().status(), 200);
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, raw.read_to_end(&mut rest))
            .await
            .expect("the hang ends with the release")
            .unwrap();
        assert!(rest.is_empty(), "a hang ends without an answer: {rest:?}");
    }

    #[tokio::test]
    async fn smtp_sessions_are_scripted_and_messages_counted_per_message_id() {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
        let p = Provider::start();
        p.push_smtp(SmtpBehaviour::Echo {
            at: SmtpStage::Auth,
            code: 535,
        });
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(p.smtp_port())
            .tls(lettre::transport::smtp::client::Tls::None)
            .credentials(Credentials::new("mailer".into(), "hunter2-pass".into()))
            .build();
        let mail = || {
            Message::builder()
                .from("a@example.com".parse().unwrap())
                .to("b@example.com".parse().unwrap())
                .message_id(Some("<m1@example.com>".into()))
                .body("hi".to_string())
                .unwrap()
        };
        let e = transport.send(mail()).await.unwrap_err();
        // AUTH PLAIN base64("\0mailer\0hunter2-pass"), echoed back.
        assert!(
            e.to_string().contains("AG1haWxlcgBodW50ZXIyLXBhc3M="),
            "{e}"
        );
        transport.send(mail()).await.unwrap();
        let seen = p.wait_for_requests(1, WAIT).await;
        assert_eq!(seen[0].key.as_deref(), Some("<m1@example.com>"));
        assert!(seen[0].text().contains("hi"));
        assert_eq!(p.deliveries()["<m1@example.com>"], 1);
    }
}
