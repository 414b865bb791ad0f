//! `smtp`: email through an SMTP relay with lettre (rustls on aws-lc-rs, like reqwest).
//!
//! A message is `text/plain`, or `multipart/alternative` (text, then HTML) when the rendered
//! content has an HTML part. Its `Message-ID` is derived from the message id, so a message
//! re-sent after a crash carries the same one (receivers and mailbox providers deduplicate on
//! it); that id is the provider id. Connections are reused: one the relay accepted a message
//! on waits for the next (answering `NOOP` first, and no longer than [`IDLE_MAX`]), at most the
//! channel's `concurrency` of them, so a campaign opens `concurrency` connections, not one per
//! message. What goes in the message is `compose.rs`.

mod compose;

use std::sync::Mutex;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;

use super::Outgoing;
use super::{
    BuildContext, ChannelBuildError, Delivered, ErrorClass, Redactor, SendError, SmtpConfig,
    SmtpTls,
};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the goodbye (`QUIT`) after an accepted message is waited for; its answer changes
/// nothing.
const QUIT_WAIT: Duration = Duration::from_secs(1);
/// How long a kept connection may take to answer `NOOP` (at most a quarter of the timeout).
const NOOP_WAIT: Duration = Duration::from_secs(2);
/// How long an idle connection is kept: below the idle timeouts of common relays (Postfix
/// closes after 300 s, many providers after 30–60 s), so a reused one is rarely found closed.
const IDLE_MAX: Duration = Duration::from_secs(20);

pub struct Smtp {
    name: String,
    host: String,
    port: u16,
    tls: SmtpTls,
    compose: Box<compose::Compose>,
    /// Connections the relay last accepted a message on, with when; at most `max_idle`.
    idle: Mutex<Vec<(AsyncSmtpConnection, tokio::time::Instant)>>,
    max_idle: usize,
    /// TLS parameters, unless `tls: none`.
    tls_params: Option<TlsParameters>,
    /// lettre's `Credentials` debug-prints nothing. The redactor removes them (and AUTH
    /// PLAIN/LOGIN's base64 of them) from server messages.
    credentials: Option<Credentials>,
    pub(crate) redactor: Redactor,
    /// The longest a send may take until the relay accepted the message (connect, every
    /// command, the message); lettre's own timeout, set to the same, bounds each read and
    /// write. The `QUIT` after it is waited for [`QUIT_WAIT`] more, at most.
    timeout: Duration,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Smtp {
    pub(crate) fn build(
        name: &str,
        c: &SmtpConfig,
        ctx: &BuildContext,
    ) -> Result<Smtp, ChannelBuildError> {
        let compose = Box::new(compose::Compose::build(name, c, ctx)?);
        let port = c.port.unwrap_or(match c.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        });
        let timeout = c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.to_std());
        let mut tls_params = None;
        if c.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(c.host.clone());
            if let Some(path) = &c.ca_cert {
                let path = ctx.resolve(path);
                let pem = std::fs::read(&path).map_err(|e| {
                    ChannelBuildError::invalid(
                        name,
                        format!("`ca_cert`: cannot read {}: {e}", path.display()),
                    )
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    ChannelBuildError::invalid(
                        name,
                        format!(
                            "`ca_cert`: {} is not a PEM certificate: {e}",
                            path.display()
                        ),
                    )
                })?;
                params = params
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| ChannelBuildError::invalid(name, format!("cannot set up TLS: {e}")))?;
            tls_params = Some(params);
        }
        let mut redactor = Redactor::default();
        let mut credentials = None;
        match (&c.username_env, &c.password_env) {
            (Some(u), Some(p)) => {
                let user = ctx.secret(name, "username_env", u)?;
                let pass = ctx.secret(name, "password_env", p)?;
                credentials = Some(Credentials::new(
                    user.expose().to_string(),
                    pass.expose().to_string(),
                ));
                redactor = Redactor::new(
                    [user.expose(), pass.expose()],
                    &[(user.expose(), pass.expose())],
                );
            }
            (None, None) => {}
            _ => {
                return Err(ChannelBuildError::invalid(
                    name,
                    "set both `username_env` and `password_env`, or neither",
                ));
            }
        }
        Ok(Smtp {
            name: name.into(),
            host: c.host.clone(),
            port,
            tls: c.tls,
            compose,
            idle: Mutex::new(Vec::new()),
            max_idle: super::ChannelConfig::Smtp(c.clone())
                .settings()
                .concurrency
                .max(1),
            tls_params,
            credentials,
            redactor,
            timeout,
        })
    }

    /// `<{message id}@{sender's domain}>`, with characters a msg-id cannot hold replaced.
    fn message_id(&self, env: &Outgoing<'_>) -> String {
        let local: String = env
            .message_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let local = local.trim_matches('.');
        format!(
            "<{}@{}>",
            if local.is_empty() { "m" } else { local },
            self.compose.from().email.domain()
        )
    }

    fn message(&self, env: &Outgoing<'_>) -> Result<lettre::Message, SendError> {
        self.compose.message(&self.name, env, self.message_id(env))
    }

    pub async fn send(&self, env: &Outgoing<'_>) -> Result<Delivered, SendError> {
        let message = self.message(env)?;
        match tokio::time::timeout(self.timeout, self.deliver(&message)).await {
            Ok(Ok(conn)) => {
                // Accepted: from here on nothing can make it a failure (a retry would deliver
                // it twice). Kept for the next message, or a bounded goodbye.
                self.keep(conn).await;
                Ok(Delivered {
                    provider_id: Some(self.message_id(env)),
                })
            }
            Ok(Err(e)) => Err(self.error(e)),
            // Not accepted yet (or its answer never came): the retry carries the same
            // Message-ID.
            Err(_) => Err(SendError::transient(format!(
                "channel `{}`: SMTP {}:{}: the relay did not accept the message within {:?}",
                self.name, self.host, self.port, self.timeout
            ))
            .with_code("timeout")),
        }
    }

    /// Sends `message` on an idle connection that still answers, or a new one; the
    /// connection, once the relay accepted it.
    async fn deliver(
        &self,
        message: &lettre::Message,
    ) -> Result<AsyncSmtpConnection, lettre::transport::smtp::Error> {
        while let Some(mut conn) = self.take_idle() {
            // A relay that closed an idle connection fails the NOOP, one that stalls does not
            // answer it in time: that connection is dropped before any part of this message
            // went out on it.
            let wait = (self.timeout / 4).min(NOOP_WAIT);
            if tokio::time::timeout(wait, conn.test_connected())
                .await
                .unwrap_or(false)
            {
                conn.send(message.envelope(), &message.formatted()).await?;
                return Ok(conn);
            }
        }
        let mut conn = self.connect().await?;
        conn.send(message.envelope(), &message.formatted()).await?;
        Ok(conn)
    }

    /// The most recently used idle connection young enough to reuse; older ones are dropped.
    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        idle.retain(|(_, since)| now.duration_since(*since) < IDLE_MAX);
        idle.pop().map(|(conn, _)| conn)
    }

    /// Keeps `conn` for the next message, or says goodbye when enough are kept.
    async fn keep(&self, mut conn: AsyncSmtpConnection) {
        if !conn.has_broken() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.max_idle {
                idle.push((conn, tokio::time::Instant::now()));
                return;
            }
        }
        let _ = tokio::time::timeout(QUIT_WAIT, conn.abort()).await;
    }

    /// Connects (TLS or STARTTLS as configured) and authenticates.
    async fn connect(&self) -> Result<AsyncSmtpConnection, lettre::transport::smtp::Error> {
        let hello = ClientId::default();
        let wrapper = (self.tls == SmtpTls::Tls)
            .then(|| self.tls_params.clone())
            .flatten();
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &hello,
            wrapper,
            None,
        )
        .await?;
        if self.tls == SmtpTls::Starttls
            && let Some(params) = &self.tls_params
        {
            // Required: lettre refuses a relay that does not offer STARTTLS.
            conn.starttls(params.clone(), &hello).await?;
        }
        if let Some(c) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, c).await?;
        }
        Ok(conn)
    }

    /// The longest one send takes: its `timeout` until the relay accepts, then the goodbye.
    pub fn send_timeout(&self) -> Duration {
        self.timeout + QUIT_WAIT
    }

    fn error(&self, e: lettre::transport::smtp::Error) -> SendError {
        let code = e.status().map(|c| c.to_string());
        let class = match code.as_deref() {
            // Authentication required or refused: every message fails alike.
            Some("530" | "534" | "535" | "538") => ErrorClass::Breaker,
            _ if e.is_permanent() => ErrorClass::Permanent,
            _ if e.is_transient() => ErrorClass::Transient { retry_after: None },
            // Certificate or handshake problems do not go away by retrying.
            _ if e.is_tls() => ErrorClass::Breaker,
            _ if e.is_client() => ErrorClass::Permanent,
            // Connection refused or reset, timeouts.
            _ => ErrorClass::Transient { retry_after: None },
        };
        let text = super::error_chain(&e);
        // A certificate the client does not trust fails every message alike.
        let class = if matches!(class, ErrorClass::Transient { .. })
            && text.contains("invalid peer certificate")
        {
            ErrorClass::Breaker
        } else {
            class
        };
        SendError {
            class,
            code: Some(code.unwrap_or_else(|| "smtp".into())),
            message: format!(
                "channel `{}`: SMTP {}:{}: {text}",
                self.name,
                self.host,
                self.port,
                text = self.redactor.excerpt(&text, 500)
            ),
        }
    }

    pub fn preview_request(&self, env: &Outgoing<'_>) -> serde_json::Value {
        let message = match self.message(env) {
            Ok(m) => {
                serde_json::Value::String(String::from_utf8_lossy(&m.formatted()).into_owned())
            }
            Err(e) => serde_json::json!({ "error": e.message }),
        };
        serde_json::json!({
            "smtp": format!("{}:{}", self.host, self.port),
            "tls": match self.tls {
                SmtpTls::Starttls => "starttls",
                SmtpTls::Tls => "tls",
                SmtpTls::None => "none",
            },
            "auth": if self.credentials.is_none() { "none" } else { "*** (from the environment)" },
            "mail_from": self.compose.from().email.to_string(),
            "rcpt_to": env.address,
            "message": message,
        })
    }
}
