//! Channel adapters: send one rendered [`Envelope`] and classify what happened.
//!
//! The set of adapters is closed (an enum built from `disparo.yaml` by `type`), so a typo in a
//! channel type is a validation error, not a runtime surprise, and dispatch needs no dynamic
//! dispatch. Rate and concurrency limits, retries and the circuit breaker live in `dispatch`
//! (with the pure helpers of [`limits`]); an adapter only sends once and says whether trying
//! again could help.
//!
//! Build a channel with [`Channel::build`] from its [`ChannelConfig`] and a [`BuildContext`]
//! (project root, the run's one HTTP client, and where environment variables come from).
//! Secrets are read once at build time, kept in a type whose `Debug` prints `***`, and never
//! appear in errors, logs or [`Channel::preview_request`].

mod command;
mod config;
mod console;
mod http;
pub mod limits;
mod outbox;
mod smtp;
mod twilio;
pub(crate) mod webhook;
mod whatsapp;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use command::Command;
pub use config::{
    ChannelConfig, ChannelSettings, CommandConfig, SmtpConfig, SmtpTls, TwilioConfig,
    WebhookConfig, WhatsappCloudConfig,
};
pub use console::{Console, STDOUT_CLOSED};
pub use outbox::Outbox;
pub use smtp::Smtp;
pub use twilio::Twilio;
pub use webhook::Webhook;
pub use whatsapp::WhatsappCloud;

use crate::message::{Content, Envelope};

/// An error and its sources as one line (`a: b: c`), each cause said once: libraries often
/// repeat their source in their own message.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The longest wait a provider can ask for before a retry (`Retry-After`, a command's
/// `retry_after`): longer ones, up to absurd values, are taken as this; never a panic or an
/// overflow further on.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// `secs` seconds as a retry delay, at most [`MAX_RETRY_AFTER`]; `None` unless finite and
/// not negative.
pub(crate) fn retry_after_secs(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(if secs >= MAX_RETRY_AFTER.as_secs_f64() {
        MAX_RETRY_AFTER
    } else {
        Duration::from_secs_f64(secs)
    })
}

/// What [`Channel::send_timeout`] says for the local channels (`console`, `outbox`).
pub const LOCAL_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// A successful hand-over to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The provider's id for the message (WhatsApp `wamid`, Twilio `SM...`), when it has one.
    pub provider_id: Option<String>,
}

/// What a failure means for the message, the recipient and the campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorClass {
    /// Network errors, HTTP 429/5xx, provider throttling: retry later, after `retry_after` if the
    /// provider said so.
    Transient { retry_after: Option<Duration> },
    /// This message will never go through as it is (bad request, invalid address).
    Permanent,
    /// The recipient refuses messages (unsubscribed, blocked): permanent, and with
    /// `suppress` the address is added to the suppression list.
    Recipient { suppress: bool },
    /// Every message of the campaign will fail alike (bad credentials, template not found or
    /// paused): the circuit breaker pauses the campaign.
    Breaker,
}

/// A failed send. `message` never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub class: ErrorClass,
    /// The provider's error code, when there is one (`131056`, `21211`, `HTTP 503`).
    pub code: Option<String>,
    pub message: String,
}

impl SendError {
    pub fn transient(message: impl Into<String>) -> SendError {
        SendError {
            class: ErrorClass::Transient { retry_after: None },
            code: None,
            message: message.into(),
        }
    }
    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError {
            class: ErrorClass::Permanent,
            code: None,
            message: message.into(),
        }
    }
    pub fn breaker(message: impl Into<String>) -> SendError {
        SendError {
            class: ErrorClass::Breaker,
            code: None,
            message: message.into(),
        }
    }
    fn with_code(mut self, code: impl Into<String>) -> SendError {
        self.code = Some(code.into());
        self
    }
    /// The provider's requested delay, for a transient error that came with one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.class {
            ErrorClass::Transient { retry_after } => retry_after,
            _ => None,
        }
    }
}

/// Where environment variables come from: the process, or a map a test injects.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What building a channel needs from the run.
#[derive(Clone)]
pub struct BuildContext {
    /// The project root: relative paths in channel configs are read from here.
    pub root: PathBuf,
    /// The run's one HTTP client, shared by every HTTP adapter.
    pub http: reqwest::Client,
    env: EnvLookup,
}

impl fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildContext")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl BuildContext {
    /// A context reading the process environment.
    pub fn new(root: impl Into<PathBuf>, http: reqwest::Client) -> BuildContext {
        BuildContext {
            root: root.into(),
            http,
            env: Arc::new(|name| std::env::var(name).ok()),
        }
    }

    /// Replaces the environment lookup (tests inject variables this way).
    pub fn with_env(
        mut self,
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> BuildContext {
        self.env = Arc::new(env);
        self
    }

    /// The HTTP client a run should share: rustls, 10 s to connect, 30 s per request,
    /// `disparo/VERSION` as user agent, redirects not followed (a provider API that answers
    /// 3xx is misconfigured, and following a 301/302 would turn the POST into a GET without
    /// the message: the answer is reported as a permanent error instead).
    pub fn default_http_client() -> Result<reqwest::Client, ChannelBuildError> {
        reqwest::Client::builder()
            .user_agent(http::USER_AGENT)
            .connect_timeout(http::CONNECT_TIMEOUT)
            .timeout(http::REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ChannelBuildError::Invalid {
                channel: "*".into(),
                message: format!("cannot create the HTTP client: {e}"),
            })
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        }
    }

    /// `DISPARO_PUBLIC_URL`: where providers reach this project's `disparo serve` (the same
    /// variable `serve --public-url` reads), without a trailing slash. Adapters whose
    /// provider calls back (Twilio's `StatusCallback`) point there when their channel names
    /// no callback of its own.
    pub fn public_url(&self) -> Option<String> {
        (self.env)("DISPARO_PUBLIC_URL")
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
    }

    /// The user names and passwords of the proxies the environment names (reqwest's
    /// variables), to be redacted like the channel's own secrets.
    fn proxy_credentials(&self) -> Vec<String> {
        let mut out = Vec::new();
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            let Some(url) = (self.env)(var).and_then(|v| reqwest::Url::parse(&v).ok()) else {
                continue;
            };
            for part in [url.username(), url.password().unwrap_or_default()] {
                if !part.is_empty() {
                    out.push(part.to_string());
                    out.push(percent_decode(part));
                }
            }
        }
        out
    }

    /// Reads the secret in the variable that config key `key` names.
    fn secret(&self, channel: &str, key: &str, var: &str) -> Result<Secret, ChannelBuildError> {
        match (self.env)(var) {
            Some(v) if !v.is_empty() => Ok(Secret(v)),
            _ => Err(ChannelBuildError::MissingEnv {
                channel: channel.into(),
                key: key.into(),
                var: var.into(),
            }),
        }
    }
}

/// Why a channel could not be built. Never contains a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelBuildError {
    #[error(
        "channel `{channel}`: environment variable {var} (named by `{key}`) is not set or empty\nhint: export {var} before running, or change `{key}` in disparo.yaml"
    )]
    MissingEnv {
        channel: String,
        key: String,
        var: String,
    },
    #[error("channel `{channel}`: {message}")]
    Invalid { channel: String, message: String },
}

impl ChannelBuildError {
    fn invalid(channel: &str, message: impl Into<String>) -> ChannelBuildError {
        ChannelBuildError::Invalid {
            channel: channel.into(),
            message: message.into(),
        }
    }
}

/// A secret read from the environment; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `%XX` sequences decoded (as URLs carry user names and passwords); invalid UTF-8 is
/// replaced.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What stands for a removed secret.
const REDACTED: &str = "***";
/// Pieces of a secret this long or longer are removed wherever they appear.
const PIECE: usize = 8;

/// Removes a channel's secrets from every text the channel produces: error messages and
/// codes, provider ids, previewed requests. [`Channel::send_outgoing`] and
/// [`Channel::preview_request`] pass everything through the channel's redactor; adapters
/// also use [`Redactor::excerpt`] to cut a provider's answer, which redacts before it cuts.
///
/// For each secret it knows the forms the secret can take in a provider's answer: as is,
/// JSON-escaped, percent-encoded (upper- and lower-case hex, `+` for spaces), and base64
/// (standard and URL-safe) at each of the three alignments it can have inside a longer
/// encoded text (so `base64(user:pass)` and AUTH PLAIN's `base64(\0user\0pass)` are covered,
/// and are also added whole). Every occurrence of a form is replaced by `***`, and so is
/// every piece of [`PIECE`] (8) or more bytes of a form: a secret cut at an excerpt boundary
/// (by us or by the provider) leaves no fragment long enough to matter.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// Forms shorter than a piece, replaced where they appear whole.
    short: Vec<String>,
    /// Every [`PIECE`]-byte window of every longer form, as a little-endian `u64`.
    pieces: std::collections::HashSet<u64, PieceHash>,
}

/// One multiply for a piece's hash: pieces are not chosen by an attacker (they come from our
/// own secrets), and a redactor looks up one per byte of every text it cleans.
#[derive(Clone, Copy, Default)]
struct PieceHash;

impl std::hash::BuildHasher for PieceHash {
    type Hasher = PieceHasher;
    fn build_hasher(&self) -> PieceHasher {
        PieceHasher(0)
    }
}

struct PieceHasher(u64);

impl std::hash::Hasher for PieceHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

fn piece(window: &[u8]) -> u64 {
    u64::from_le_bytes(window.try_into().expect("a window of PIECE bytes"))
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Redactor({} pieces)",
            self.pieces.len() + self.short.len()
        )
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `bytes` in base64 with `alphabet`, padded.
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Redactor {
    /// A redactor for these secrets and `user:password`-like pairs (HTTP Basic, SMTP AUTH).
    /// Empty secrets are ignored.
    pub(crate) fn new<'a>(
        secrets: impl IntoIterator<Item = &'a str>,
        pairs: &[(&str, &str)],
    ) -> Redactor {
        let mut forms: Vec<String> = Vec::new();
        for s in secrets.into_iter().filter(|s| !s.is_empty()) {
            forms.push(s.to_string());
            if let Ok(json) = serde_json::to_string(s) {
                forms.push(json[1..json.len() - 1].to_string());
            }
            forms.extend(percent_forms(s));
            for alphabet in [BASE64, BASE64_URL] {
                forms.push(base64(s.as_bytes(), alphabet));
                // Inside a longer encoded text the secret starts at one of three alignments:
                // the characters only its own bytes determine (whole 3-byte groups of it).
                for offset in 0..3usize {
                    let mut bytes = vec![0u8; offset];
                    bytes.extend_from_slice(s.as_bytes());
                    let encoded = base64(&bytes, alphabet);
                    let from = if offset == 0 { 0 } else { 4 };
                    let to = 4 * (bytes.len() / 3);
                    if to >= from + PIECE {
                        forms.push(encoded[from..to].to_string());
                    }
                }
            }
        }
        for (user, pass) in pairs {
            for whole in [format!("{user}:{pass}"), format!("\0{user}\0{pass}")] {
                for alphabet in [BASE64, BASE64_URL] {
                    forms.push(base64(whole.as_bytes(), alphabet));
                }
            }
        }
        let mut r = Redactor::default();
        for f in forms {
            if f.len() >= PIECE {
                for w in f.as_bytes().windows(PIECE) {
                    r.pieces.insert(piece(w));
                }
            } else if !f.is_empty() && !r.short.contains(&f) {
                r.short.push(f);
            }
        }
        r.short.sort_by_key(|f| std::cmp::Reverse(f.len()));
        r
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pieces.is_empty() && self.short.is_empty()
    }

    /// `text` with every form of every secret, and every piece of one, replaced by `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        let bytes = text.as_bytes();
        // Byte ranges to remove, in order of their start.
        let mut marks: Vec<(usize, usize)> = Vec::new();
        if bytes.len() >= PIECE {
            for i in 0..=bytes.len() - PIECE {
                if self.pieces.contains(&piece(&bytes[i..i + PIECE])) {
                    marks.push((i, i + PIECE));
                }
            }
        }
        for f in &self.short {
            marks.extend(
                text.match_indices(f.as_str())
                    .map(|(i, m)| (i, i + m.len())),
            );
        }
        if marks.is_empty() {
            return text.to_string();
        }
        marks.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut i = 0;
        while i < marks.len() {
            let (mut start, mut end) = marks[i];
            while i + 1 < marks.len() && marks[i + 1].0 <= end {
                i += 1;
                end = end.max(marks[i].1);
            }
            i += 1;
            start = start.max(at);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            while !text.is_char_boundary(end) {
                end += 1;
            }
            out.push_str(&text[at..start]);
            if !out.ends_with(REDACTED) {
                out.push_str(REDACTED);
            }
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// At most `max` characters of `text` (trimmed), for an error message, redacted before
    /// the cut: a secret across the boundary is recognised whole, and no fragment of one of
    /// [`PIECE`] bytes or more is left at either end.
    pub(crate) fn excerpt(&self, text: &str, max: usize) -> String {
        let text = text.trim();
        // Redaction only shortens: what could end up in the first `max` characters.
        let window = match text.char_indices().nth(max.saturating_mul(2) + 256) {
            Some((i, _)) => &text[..i],
            None => text,
        };
        let clean = self.redact(window);
        let cut = match clean.char_indices().nth(max) {
            Some((i, _)) => format!("{}…", &clean[..i]),
            None if window.len() < text.len() => format!("{clean}…"),
            None => clean,
        };
        self.redact(&cut)
    }

    /// `e` with its message and code redacted.
    pub(crate) fn error(&self, mut e: SendError) -> SendError {
        if !self.is_empty() {
            e.message = self.redact(&e.message);
            e.code = e.code.map(|c| self.redact(&c));
        }
        e
    }

    /// Every string in `v` (keys included) redacted, in place.
    pub(crate) fn json(&self, v: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        match v {
            serde_json::Value::String(s) => *s = self.redact(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| self.json(v)),
            serde_json::Value::Object(o) => {
                let old = std::mem::take(o);
                for (k, mut v) in old {
                    self.json(&mut v);
                    o.insert(self.redact(&k), v);
                }
            }
            _ => {}
        }
    }
}

/// `s` percent-encoded as URLs and forms write it (every byte but unreserved ones; hex in
/// upper and lower case; spaces also as `+`); nothing when `s` needs no encoding.
fn percent_forms(s: &str) -> Vec<String> {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Vec::new();
    }
    let encode = |lower: bool, plus: bool| {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else if b == b' ' && plus {
                out.push('+');
            } else if lower {
                out.push_str(&format!("%{b:02x}"));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    vec![
        encode(false, false),
        encode(true, false),
        encode(false, true),
        encode(true, true),
    ]
}

/// One configured channel, ready to send.
#[derive(Debug)]
pub enum Channel {
    Console(Console),
    Outbox(Outbox),
    WhatsappCloud(WhatsappCloud),
    Twilio(Twilio),
    Smtp(Smtp),
    Webhook(Webhook),
    Command(Command),
}

impl Channel {
    /// Builds the channel `name` from its configuration: reads its secrets from the
    /// environment, resolves relative paths against the project root, checks URLs.
    pub fn build(
        name: &str,
        config: &ChannelConfig,
        ctx: &BuildContext,
    ) -> Result<Channel, ChannelBuildError> {
        Ok(match config {
            ChannelConfig::Console { .. } => Channel::Console(Console),
            ChannelConfig::Outbox { path, .. } => Channel::Outbox(Outbox::new(
                ctx.resolve(path.as_deref().unwrap_or(Path::new("outbox.jsonl"))),
            )),
            ChannelConfig::WhatsappCloud(c) => {
                Channel::WhatsappCloud(WhatsappCloud::build(name, c, ctx)?)
            }
            ChannelConfig::Twilio(c) => Channel::Twilio(Twilio::build(name, c, ctx)?),
            ChannelConfig::Smtp(c) => Channel::Smtp(Smtp::build(name, c, ctx)?),
            ChannelConfig::Webhook(c) => Channel::Webhook(Webhook::build(name, c, ctx)?),
            ChannelConfig::Command(c) => Channel::Command(Command::build(name, c, ctx)?),
        })
    }

    /// This channel's redactor, when it has secrets.
    fn redactor(&self) -> Option<&Redactor> {
        let r = match self {
            Channel::Console(_) | Channel::Outbox(_) | Channel::Command(_) => return None,
            Channel::WhatsappCloud(c) => &c.redactor,
            Channel::Twilio(c) => &c.redactor,
            Channel::Smtp(c) => &c.redactor,
            Channel::Webhook(c) => &c.redactor,
        };
        (!r.is_empty()).then_some(r)
    }

    /// Sends one message once; retries are the dispatcher's business.
    pub async fn send(&self, envelope: &Envelope) -> Result<Delivered, SendError> {
        self.send_outgoing(&Outgoing::from(envelope)).await
    }

    /// [`send`](Self::send) for a borrowed message (what the dispatcher hands over: nothing
    /// is copied into an [`Envelope`] first).
    /// What it returns (provider id, error message and code) has the channel's secrets
    /// removed (see [`Redactor`]).
    pub async fn send_outgoing(&self, message: &Outgoing<'_>) -> Result<Delivered, SendError> {
        let result = self.send_unredacted(message).await;
        match self.redactor() {
            None => result,
            Some(r) => match result {
                Ok(mut d) => {
                    d.provider_id = d.provider_id.map(|id| r.redact(&id));
                    Ok(d)
                }
                Err(e) => Err(r.error(e)),
            },
        }
    }

    async fn send_unredacted(&self, message: &Outgoing<'_>) -> Result<Delivered, SendError> {
        match self {
            Channel::Console(c) => c.send(message).await,
            Channel::Outbox(c) => c.send(message).await,
            Channel::WhatsappCloud(c) => c.send(message).await,
            Channel::Twilio(c) => c.send(message).await,
            Channel::Smtp(c) => c.send(message).await,
            Channel::Webhook(c) => c.send(message).await,
            Channel::Command(c) => c.send(message).await,
        }
    }

    /// The longest one send of this channel can take before the adapter gives up (and
    /// returns a transient error): HTTP adapters [`REQUEST_TIMEOUT`](http::REQUEST_TIMEOUT)
    /// for connecting, the request and the answer together (whatever client they were given);
    /// `command` its `timeout` and the kill; `smtp` its `timeout` until the relay accepted the message, then 1 s for the goodbye;
    /// `console` and `outbox` a nominal [`LOCAL_SEND_TIMEOUT`] (a local write, not timed). A
    /// dispatcher keeps every send shorter than its lease with it.
    pub fn send_timeout(&self) -> Duration {
        match self {
            Channel::Console(_) | Channel::Outbox(_) => LOCAL_SEND_TIMEOUT,
            Channel::WhatsappCloud(_) | Channel::Twilio(_) | Channel::Webhook(_) => {
                http::REQUEST_TIMEOUT
            }
            Channel::Smtp(c) => c.send_timeout(),
            Channel::Command(c) => c.send_timeout(),
        }
    }

    /// What can be made of a message before its send starts: the dispatcher calls this on
    /// the store thread as the message is claimed, off the network thread, and passes the
    /// result back in [`Outgoing::prepared`]. For the webhook, the JSON body up to its
    /// per-attempt fields; nothing for the other adapters.
    pub fn prepare(&self, message: &Outgoing<'_>) -> Option<Vec<u8>> {
        match self {
            Channel::Webhook(_) => Some(message_head(message)),
            _ => None,
        }
    }

    /// The exact request this channel would send for `envelope`, secrets redacted, for `preview`.
    /// HTTP adapters give `{method, url, headers, body}`.
    pub fn preview_request(&self, envelope: &Envelope) -> serde_json::Value {
        let message = Outgoing::from(envelope);
        let mut request = match self {
            Channel::Console(c) => c.preview_request(&message),
            Channel::Outbox(c) => c.preview_request(&message),
            Channel::WhatsappCloud(c) => c.preview_request(&message),
            Channel::Twilio(c) => c.preview_request(&message),
            Channel::Smtp(c) => c.preview_request(&message),
            Channel::Webhook(c) => c.preview_request(&message),
            Channel::Command(c) => c.preview_request(&message),
        };
        if let Some(r) = self.redactor() {
            r.json(&mut request);
        }
        request
    }
}

/// One message for one delivery attempt, borrowed: the fields of an [`Envelope`], with the
/// template variables either parsed ([`Vars::Map`], from an `Envelope`) or as the stored JSON
/// text ([`Vars::Raw`], from the store, copied into request bodies without being parsed).
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub message_id: &'a str,
    pub campaign: &'a str,
    pub recipient: &'a str,
    pub channel: &'a str,
    pub address: &'a str,
    pub locale: Option<&'a str>,
    pub content: &'a Content,
    pub vars: Vars<'a>,
    pub scheduled_at: jiff::Timestamp,
    pub attempt: u32,
    pub attempt_at: jiff::Timestamp,
    /// What [`Channel::prepare`] made of this message beforehand, if anything.
    pub prepared: Option<&'a [u8]>,
    /// The message's row in the store, when it comes from one: with the key it makes the
    /// callback reference receipts name it by ([`Outgoing::reference`]).
    pub row: Option<i64>,
}

impl Outgoing<'_> {
    /// The callback reference (`<key>.<row>`, see [`crate::receipt::CallbackRef`]) that
    /// adapters hand to providers so their receipts name this message; `None` outside a
    /// store (a preview, a test send).
    pub fn reference(&self) -> Option<String> {
        self.row
            .map(|row| crate::receipt::CallbackRef::new(self.message_id, row).to_string())
    }
}

/// Template variables as a JSON object, parsed or not; both serialize to the same JSON.
#[derive(Debug, Clone, Copy)]
pub enum Vars<'a> {
    Map(&'a serde_json::Map<String, serde_json::Value>),
    Raw(&'a serde_json::value::RawValue),
}

impl Vars<'_> {
    /// One top-level variable: read in place from a parsed map, or parsed out of the raw
    /// JSON (the rest stays unparsed).
    pub fn get(&self, name: &str) -> Option<serde_json::Value> {
        match self {
            Vars::Map(m) => m.get(name).cloned(),
            Vars::Raw(r) => {
                let fields: std::collections::HashMap<String, &serde_json::value::RawValue> =
                    serde_json::from_str(r.get()).ok()?;
                serde_json::from_str(fields.get(name)?.get()).ok()
            }
        }
    }
}

impl serde::Serialize for Vars<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Vars::Map(m) => m.serialize(s),
            Vars::Raw(r) => r.serialize(s),
        }
    }
}

impl<'a> From<&'a Envelope> for Outgoing<'a> {
    fn from(env: &'a Envelope) -> Outgoing<'a> {
        Outgoing {
            message_id: &env.message_id,
            campaign: &env.campaign,
            recipient: &env.recipient,
            channel: &env.channel,
            address: &env.address,
            locale: env.locale.as_deref(),
            content: &env.content,
            vars: Vars::Map(&env.vars),
            scheduled_at: env.scheduled_at,
            attempt: env.attempt,
            attempt_at: env.attempt_at,
            prepared: None,
            row: None,
        }
    }
}

/// The JSON document describing one message, as the webhook posts it and the command adapter
/// writes it to stdin.
#[derive(serde::Serialize)]
pub(crate) struct MessageDoc<'a> {
    #[serde(flatten)]
    head: MessageHead<'a>,
    attempt: u32,
    attempt_at: jiff::Timestamp,
}

/// The fields of a [`MessageDoc`] that stay the same from one attempt to the next, in order;
/// the per-attempt ones come last, so a head serialized beforehand needs only them appended
/// (see [`message_json`]).
#[derive(serde::Serialize)]
struct MessageHead<'a> {
    id: &'a str,
    campaign: &'a str,
    recipient: &'a str,
    channel: &'a str,
    to: &'a str,
    locale: Option<&'a str>,
    body: &'a str,
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    html: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    whatsapp: Option<&'a crate::message::WhatsappTemplate>,
    /// The campaign's A/B variant that rendered it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    vars: Vars<'a>,
    scheduled_at: jiff::Timestamp,
    /// What a receipt posted back to `disparo serve` names the message by.
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
}

impl<'a> MessageDoc<'a> {
    pub(crate) fn new(env: &Outgoing<'a>) -> MessageDoc<'a> {
        MessageDoc {
            head: MessageHead::new(env),
            attempt: env.attempt,
            attempt_at: env.attempt_at,
        }
    }
}

impl<'a> MessageHead<'a> {
    fn new(env: &Outgoing<'a>) -> MessageHead<'a> {
        MessageHead {
            id: env.message_id,
            campaign: env.campaign,
            recipient: env.recipient,
            channel: env.channel,
            to: env.address,
            locale: env.locale,
            body: &env.content.body,
            subject: env.content.subject.as_deref(),
            html: env.content.html.as_deref(),
            whatsapp: env.content.whatsapp.as_ref(),
            variant: env.content.variant.as_deref(),
            vars: env.vars,
            scheduled_at: env.scheduled_at,
            reference: env.reference(),
        }
    }
}

/// The [`MessageDoc`] of `env` as JSON, without its closing brace and per-attempt fields.
fn message_head(env: &Outgoing<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    // Serializing borrowed strings, numbers and valid JSON into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &MessageHead::new(env));
    out.pop(); // `}`
    out
}

/// The [`MessageDoc`] of `env` as JSON bytes; from its prepared head when it has one.
pub(crate) fn message_json(env: &Outgoing<'_>) -> Vec<u8> {
    let mut out = match env.prepared {
        Some(head) => {
            let mut out = Vec::with_capacity(head.len() + 64);
            out.extend_from_slice(head);
            out
        }
        None => message_head(env),
    };
    out.extend_from_slice(b",\"attempt\":");
    out.extend_from_slice(env.attempt.to_string().as_bytes());
    out.extend_from_slice(b",\"attempt_at\":");
    let _ = serde_json::to_writer(&mut out, &env.attempt_at);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::{MessageDoc, Outgoing, Vars, error_chain, message_head, message_json};
    use crate::message::{Content, WhatsappTemplate};

    /// A body made from a head prepared beforehand is the one made at once, byte for byte
    /// (the webhook signs these bytes).
    #[test]
    fn vars_read_one_field_alike_parsed_or_raw() {
        let json = r#"{"full_name":"João \"Jô\"","n":3,"none":null}"#;
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap();
        let raw: Box<serde_json::value::RawValue> = serde_json::from_str(json).unwrap();
        for vars in [Vars::Map(&map), Vars::Raw(&raw)] {
            assert_eq!(vars.get("full_name"), Some("João \"Jô\"".into()));
            assert_eq!(vars.get("n"), Some(3.into()));
            assert_eq!(vars.get("none"), Some(serde_json::Value::Null));
            assert_eq!(vars.get("absent"), None);
        }
    }

    #[test]
    fn message_json_from_a_prepared_head_is_the_same_document() {
        let vars = serde_json::value::RawValue::from_string(
            r#"{"first_name":"Ana \"A\"","points":7}"#.into(),
        )
        .unwrap();
        let mut content = Content {
            body: "Olá Ana!\nTom & Jerry".into(),
            subject: None,
            html: None,
            whatsapp: None,
            twilio: None,
            variant: None,
        };
        for i in 0..3 {
            if i == 1 {
                content.subject = Some("Oferta".into());
                content.html = Some("<p>Olá</p>".into());
            }
            if i == 2 {
                content.whatsapp = Some(WhatsappTemplate {
                    name: "promo".into(),
                    language: "pt_BR".into(),
                    body: vec!["Ana".into()],
                    ..Default::default()
                });
            }
            let mut env = Outgoing {
                message_id: "m-1",
                campaign: "bf",
                recipient: "r1",
                channel: "hook",
                address: "+5511999990000",
                locale: (i > 0).then_some("pt-BR"),
                content: &content,
                vars: Vars::Raw(&vars),
                scheduled_at: "2026-11-27T12:00:00Z".parse().unwrap(),
                attempt: 3,
                attempt_at: "2026-11-27T12:00:01.25Z".parse().unwrap(),
                prepared: None,
                row: None,
            };
            let whole = serde_json::to_vec(&MessageDoc::new(&env)).unwrap();
            assert_eq!(message_json(&env), whole);
            let head = message_head(&env);
            env.prepared = Some(&head);
            assert_eq!(
                String::from_utf8(message_json(&env)).unwrap(),
                String::from_utf8(whole).unwrap()
            );
        }
    }

    /// Every channel says how long one of its sends can take, from its configuration.
    #[test]
    fn send_timeout_is_the_adapters_own_bound() {
        use super::{BuildContext, Channel, ChannelConfig, LOCAL_SEND_TIMEOUT};
        use std::time::Duration;
        let program = std::env::current_exe().unwrap();
        let ctx = BuildContext::new(".", reqwest::Client::new()).with_env(|k| {
            ["TOKEN", "SID", "USER", "PASS"]
                .contains(&k)
                .then(|| "AC0123456789abcdef".to_string())
        });
        let cases = [
            ("{ type: console }".to_string(), LOCAL_SEND_TIMEOUT),
            ("{ type: outbox }".to_string(), LOCAL_SEND_TIMEOUT),
            ("{ type: webhook, url: 'http://127.0.0.1:9/h' }".to_string(), Duration::from_secs(30)),
            ("{ type: webhook, url: 'https://example.com/h' }".to_string(), Duration::from_secs(30)),
            (
                "{ type: whatsapp_cloud, phone_number_id: '1', token_env: TOKEN }".to_string(),
                Duration::from_secs(30),
            ),
            (
                "{ type: twilio, account_sid_env: SID, auth_token_env: TOKEN, from: '+15005550006' }"
                    .to_string(),
                Duration::from_secs(30),
            ),
            (
                "{ type: smtp, host: 127.0.0.1, tls: none, from: a@example.com }".to_string(),
                Duration::from_secs(31),
            ),
            (
                "{ type: smtp, host: 127.0.0.1, tls: none, from: a@example.com, timeout: 7s, username_env: USER, password_env: PASS }".to_string(),
                Duration::from_secs(8),
            ),
            (
                format!("{{ type: command, program: '{}' }}", program.display()),
                Duration::from_secs(31),
            ),
            (
                format!("{{ type: command, program: '{}', timeout: 2s }}", program.display()),
                Duration::from_secs(3),
            ),
        ];
        for (yaml, want) in cases {
            let config: ChannelConfig = serde_saphyr::from_str(&yaml).unwrap();
            let channel = Channel::build("c", &config, &ctx).unwrap();
            assert_eq!(channel.send_timeout(), want, "{yaml}");
        }
    }

    const USER: &str = "AC9f3kQ2mLx7";
    const PASS: &str = "tok\"en/Pz8 Wq+Rv%4yN";

    fn redactor() -> super::Redactor {
        super::Redactor::new([USER, PASS, "s3"], &[(USER, PASS)])
    }

    /// No piece of 8 bytes of `secret` is left in `text`.
    fn assert_clean(text: &str, secret: &str, context: &str) {
        for w in secret.as_bytes().windows(super::PIECE) {
            let w = String::from_utf8_lossy(w);
            assert!(
                !text.contains(&*w),
                "{w:?} survived in {text:?} ({context})"
            );
        }
    }

    /// Every form a secret takes in an answer is removed: as is, JSON-escaped,
    /// percent-encoded, base64 of it alone, of `user:pass`, of AUTH PLAIN's `\0user\0pass`,
    /// and inside any longer base64 text.
    #[test]
    fn redaction_removes_every_encoding_of_a_secret() {
        let r = redactor();
        let json = serde_json::to_string(PASS).unwrap();
        let forms = [
            PASS.to_string(),
            json[1..json.len() - 1].to_string(),
            super::percent_forms(PASS)[0].clone(),
            super::percent_forms(PASS)[1].clone(),
            super::percent_forms(PASS)[3].clone(),
            super::base64(PASS.as_bytes(), super::BASE64),
            super::base64(PASS.as_bytes(), super::BASE64_URL),
            super::base64(format!("{USER}:{PASS}").as_bytes(), super::BASE64),
            super::base64(format!("\0{USER}\0{PASS}").as_bytes(), super::BASE64),
            super::base64(format!("x{PASS}yz").as_bytes(), super::BASE64),
            super::base64(format!("xy{PASS}").as_bytes(), super::BASE64_URL),
            super::base64(format!("{{\"u\":\"{USER}\"}}").as_bytes(), super::BASE64),
        ];
        for (i, f) in forms.iter().enumerate() {
            let text = format!("HTTP 500: you sent [{f}] at 12:00");
            let clean = r.redact(&text);
            assert!(clean.starts_with("HTTP 500: you sent [") && clean.ends_with("] at 12:00"));
            assert!(clean.contains("***"), "{f} not redacted: {clean}");
            assert_clean(&clean, PASS, "the secret");
            if i < 9 {
                // An encoding of the secret (or pair) alone: nothing of it stays.
                assert_clean(&clean, f, "a form");
            } else {
                // Inside a longer base64 text: at most the groups it shares with its
                // neighbours stay (those depend on bytes that are not the secret).
                let left = clean.len() - "HTTP 500: you sent [] at 12:00".len() - 3;
                assert!(left <= f.len().min(24), "{clean}");
            }
        }
        // A short secret is replaced where it appears whole.
        assert_eq!(r.redact("a s3 b"), "a *** b");
        // Nothing else changes; non-ASCII around a removal stays valid.
        assert_eq!(r.redact("plain text, ção"), "plain text, ção");
        assert_eq!(r.redact(&format!("ção{PASS}ção")), "ção***ção");
        assert_eq!(super::Redactor::default().redact(PASS), PASS);
    }

    /// Whatever prefix or suffix of a secret (or of one of its forms) is in a text, a piece
    /// of 8 bytes or more is removed, and an excerpt cut anywhere in a secret leaves none.
    #[test]
    fn redaction_removes_every_prefix_and_suffix_and_excerpts_cut_nothing_open() {
        let r = redactor();
        let b64 = super::base64(format!("{USER}:{PASS}").as_bytes(), super::BASE64);
        for secret in [PASS, USER, b64.as_str()] {
            let n = secret.len();
            for i in 1..n {
                for piece in [&secret[..i], &secret[i..]] {
                    let text = format!("before {piece} after");
                    let clean = r.redact(&text);
                    if piece.len() >= super::PIECE {
                        // (A neighbouring space goes too when the secret has one there.)
                        assert!(
                            clean.starts_with("before") && clean.contains("***"),
                            "{piece:?}: {clean}"
                        );
                    }
                    assert_clean(&clean, secret, piece);
                }
            }
            // An excerpt boundary at every position inside the secret.
            for lead in 0..n + 4 {
                let text = format!("{}{secret} and the rest of a long answer", "x".repeat(lead));
                for max in 1..text.len() {
                    let e = r.excerpt(&text, max);
                    assert_clean(&e, secret, &format!("excerpt {max} of {text:?}"));
                    assert!(e.chars().count() <= max + 3 + 1, "{e:?} longer than {max}");
                }
            }
        }
    }

    #[test]
    fn redaction_reaches_every_string_of_a_previewed_request() {
        let r = redactor();
        let mut v = serde_json::json!({
            "url": format!("http://{USER}:x@h/"),
            "headers": {"Authorization": format!("Basic {}", super::base64(format!("{USER}:{PASS}").as_bytes(), super::BASE64))},
            "list": [PASS, 1, null],
            PASS: true,
        });
        r.json(&mut v);
        let text = v.to_string();
        assert_clean(&text, PASS, "json");
        assert_clean(&text, USER, "json");
        assert_eq!(v["list"][1], 1);
    }

    #[test]
    fn percent_decode_reads_what_urls_carry() {
        assert_eq!(super::percent_decode("p%40ss%3Aw%2frd"), "p@ss:w/rd");
        assert_eq!(super::percent_decode("100%"), "100%");
        assert_eq!(super::percent_decode("%zz%4"), "%zz%4");
    }

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn error_chain_says_each_cause_once() {
        let inner = E("connection refused", None);
        let mid = E(
            "tcp connect error: connection refused",
            Some(Box::new(inner)),
        );
        let top = E("error sending request", Some(Box::new(mid)));
        assert_eq!(
            error_chain(&top),
            "error sending request: tcp connect error: connection refused"
        );
    }
}
