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
mod webhook;
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
    /// Replaces every occurrence of the secret in `text` (provider messages may echo input).
    pub(crate) fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.0, "***")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
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

    /// Sends one message once; retries are the dispatcher's business.
    pub async fn send(&self, envelope: &Envelope) -> Result<Delivered, SendError> {
        self.send_outgoing(&Outgoing::from(envelope)).await
    }

    /// [`send`](Self::send) for a borrowed message (what the dispatcher hands over: nothing
    /// is copied into an [`Envelope`] first).
    pub async fn send_outgoing(&self, message: &Outgoing<'_>) -> Result<Delivered, SendError> {
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
    /// `command` its `timeout` and the kill; `smtp` its `timeout` for the whole session;
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
        match self {
            Channel::Console(c) => c.preview_request(&message),
            Channel::Outbox(c) => c.preview_request(&message),
            Channel::WhatsappCloud(c) => c.preview_request(&message),
            Channel::Twilio(c) => c.preview_request(&message),
            Channel::Smtp(c) => c.preview_request(&message),
            Channel::Webhook(c) => c.preview_request(&message),
            Channel::Command(c) => c.preview_request(&message),
        }
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
}

/// Template variables as a JSON object, parsed or not; both serialize to the same JSON.
#[derive(Debug, Clone, Copy)]
pub enum Vars<'a> {
    Map(&'a serde_json::Map<String, serde_json::Value>),
    Raw(&'a serde_json::value::RawValue),
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
    vars: Vars<'a>,
    scheduled_at: jiff::Timestamp,
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
            vars: env.vars,
            scheduled_at: env.scheduled_at,
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
                Duration::from_secs(30),
            ),
            (
                "{ type: smtp, host: 127.0.0.1, tls: none, from: a@example.com, timeout: 7s, username_env: USER, password_env: PASS }".to_string(),
                Duration::from_secs(7),
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
