//! Connections to PostgreSQL: parsing the URL (TLS through rustls), telling which errors are
//! worth retrying, and reconnecting with a bounded backoff when the server goes away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::postgres::error::SqlState;
use ::postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;
use crate::store::open::redact_url;

/// How long one call keeps reconnecting before it gives up (a server restart takes seconds).
const OUTAGE_LIMIT: Duration = Duration::from_secs(60);
/// The first wait between reconnection attempts, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where to connect and how, parsed once from the URL.
pub(super) struct Target {
    config: ::postgres::Config,
    tls: Option<MakeRustlsConnect>,
    /// The URL without its password, for errors and logs.
    pub(super) shown: String,
    /// `host:port`, for the outage log lines.
    pub(super) server: String,
}

impl Target {
    /// Parses a `postgres://` URL. `sslmode=disable` connects in plain text; `prefer` (the
    /// default) tries TLS first; `require`, `verify-ca` and `verify-full` insist on TLS. The
    /// certificate is always verified, against the platform's roots and the CAs of
    /// `sslrootcert` (a PEM file): rustls has no "encrypt but trust anyone" mode, and a store
    /// holding a fleet's schedule should not have one.
    pub(super) fn parse(url: &str) -> Result<Target, StoreError> {
        let shown = redact_url(url);
        let bad = |reason: String| {
            StoreError::Open {
            path: shown.clone(),
            reason,
            hint: "write --db as postgres://USER:PASSWORD@HOST:PORT/DATABASE, with ?sslmode=disable, require or verify-full if needed".into(),
        }
        };
        // tokio-postgres knows disable, prefer and require; libpq's stricter modes are
        // `require` here, with the certificate verified. `sslrootcert` (a PEM file of CAs to
        // trust besides the platform's) is ours to read.
        let (url, root_cert) = take_param(url, "sslrootcert");
        let normalised = url
            .replace("sslmode=verify-full", "sslmode=require")
            .replace("sslmode=verify-ca", "sslmode=require");
        let mut config: ::postgres::Config = normalised
            .parse()
            .map_err(|e: ::postgres::Error| bad(describe(&e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("disparo");
        }
        let server = match (config.get_hosts().first(), config.get_ports().first()) {
            (Some(::postgres::config::Host::Tcp(h)), port) => {
                format!("{h}:{}", port.copied().unwrap_or(5432))
            }
            (Some(::postgres::config::Host::Unix(p)), _) => p.display().to_string(),
            (None, port) => format!("localhost:{}", port.copied().unwrap_or(5432)),
        };
        let tls = match config.get_ssl_mode() {
            ::postgres::config::SslMode::Disable => None,
            _ => Some(
                tls_connector(root_cert.as_deref())
                    .map_err(|e| bad(format!("cannot set up TLS: {e}")))?,
            ),
        };
        Ok(Target {
            config,
            tls,
            shown,
            server,
        })
    }

    pub(super) fn connect(&self) -> Result<Client, ::postgres::Error> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
    }

    /// The error of a first connection, with what to do about it.
    pub(super) fn connect_error(&self, e: &::postgres::Error) -> StoreError {
        let open = |reason: String, hint: &str| StoreError::Open {
            path: self.shown.clone(),
            reason,
            hint: hint.into(),
        };
        match e.code() {
            Some(c)
                if *c == SqlState::INVALID_PASSWORD
                    || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                open(
                    describe(e),
                    "check the user and password in --db / DISPARO_DB (the server refused them)",
                )
            }
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => open(
                describe(e),
                "create the database (`createdb NAME`, or CREATE DATABASE), or fix its name in the URL",
            ),
            _ if describe(e).to_ascii_lowercase().contains("certificate") => open(
                describe(e),
                "the server's TLS certificate is not trusted here: pass its CA with sslrootcert=/path/ca.pem in the URL (or install it in the system's store), and connect by the name the certificate names",
            ),
            _ if is_retryable(e) => StoreError::Unavailable {
                what: format!(
                    "cannot connect to PostgreSQL at {}: {}",
                    self.server,
                    describe(e)
                ),
                hint: format!(
                    "is the server running and listening on {}? check the host and port in --db / DISPARO_DB",
                    self.server
                ),
            },
            _ => open(
                describe(e),
                "check the URL in --db / DISPARO_DB and the server's log",
            ),
        }
    }
}

/// `url` without its `name=` query parameter, and that parameter's value.
fn take_param(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.split_once('=') {
            Some((k, v)) if k == name => {
                value = Some(v.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, value)
}

/// TLS through rustls (aws-lc-rs), the server's certificate checked against the platform's
/// roots and, with `sslrootcert`, the CAs of that PEM file.
fn tls_connector(root_cert: Option<&str>) -> Result<MakeRustlsConnect, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut extra = Vec::new();
    if let Some(path) = root_cert {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            extra.push(
                cert.map_err(|e| format!("sslrootcert {path} is not a PEM certificate file: {e}"))?,
            );
        }
        if extra.is_empty() {
            return Err(format!("sslrootcert {path} holds no certificate"));
        }
    }
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// What went wrong, in the server's words when it said something (::postgres::Error's own
/// text is only "db error" then).
pub(super) fn describe(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            s.push_str(&format!("; {detail}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    s
}

/// Whether trying again may succeed: the connection was lost or refused, the server is
/// shutting down or starting up, it has no free connection, or the transaction lost a
/// serialization race or a deadlock (nothing of it was committed).
pub(super) fn is_retryable(e: &::postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let c = code.code();
        return c.starts_with("08")
            || [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code);
    }
    // No SQLSTATE: an I/O error (refused, reset, timed out) or the connection's end.
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if inner.is::<std::io::Error>() {
            return true;
        }
        source = inner.source();
    }
    false
}

/// One connection, reopened when lost.
pub(super) struct Link {
    target: Arc<Target>,
    client: Option<Client>,
    /// Whether it was connected before: a connection missing then is an outage, logged.
    connected_once: bool,
}

/// The client says goodbye to its server when dropped, blocking on its own runtime, which
/// panics on a thread that drives a tokio runtime (a store dropped at the end of an async
/// run): there, the goodbye happens on a thread of its own.
impl Drop for Link {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

/// Whether a call may run again after a lost connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
    /// The call is read-only, or idempotent by its WHERE clauses (a repeat after a commit
    /// whose answer was lost changes nothing more): run it again on a new connection.
    Safe,
    /// It cannot be repeated (it consumed a stream): report the outage.
    Never,
}

impl Link {
    pub(super) fn new(target: Arc<Target>, client: Option<Client>) -> Link {
        let connected_once = client.is_some();
        Link {
            target,
            client,
            connected_once,
        }
    }

    /// The connection, opened (with retries for as long as the outage allows) if needed.
    pub(super) fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let lost = self.connected_once.then_some("the connection was closed");
            let client = self.reconnect(Instant::now(), lost)?;
            self.client = Some(client);
            self.connected_once = true;
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Other("the PostgreSQL connection is not open".into()))
    }

    /// Connects again, backing off, until the server answers or [`OUTAGE_LIMIT`] has passed
    /// since `since`. `lost` is the reason of the outage, logged once, with one line when back.
    fn reconnect(&self, since: Instant, lost: Option<&str>) -> Result<Client, StoreError> {
        let t = &self.target;
        if let Some(reason) = lost {
            tracing::warn!(
                "lost the connection to PostgreSQL at {} ({reason}); reconnecting",
                t.server
            );
        }
        let mut delay = FIRST_BACKOFF;
        loop {
            match t.connect() {
                Ok(client) => {
                    if lost.is_some() {
                        tracing::warn!(
                            "reconnected to PostgreSQL at {} after {:.1} s",
                            t.server,
                            since.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(client);
                }
                Err(e) if is_retryable(&e) && since.elapsed() + delay < OUTAGE_LIMIT => {
                    tracing::debug!("PostgreSQL at {} not back yet: {}", t.server, describe(&e));
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
                Err(e) if lost.is_some() && is_retryable(&e) => {
                    return Err(StoreError::Unavailable {
                        what: format!(
                            "PostgreSQL at {} has been unreachable for {} s: {}",
                            t.server,
                            since.elapsed().as_secs(),
                            describe(&e)
                        ),
                        hint: "the interrupted call stored nothing more; run again once the server is back".into(),
                    });
                }
                Err(e) => return Err(t.connect_error(&e)),
            }
        }
    }

    /// Runs `f` (a whole transaction, commit included) on the connection. When the
    /// connection is lost or the transaction loses a race, the connection is opened again and
    /// `f` runs again if `replay` allows, within [`OUTAGE_LIMIT`].
    pub(super) fn run<T>(
        &mut self,
        what: &str,
        replay: Replay,
        mut f: impl FnMut(&mut Client) -> Result<T, ::postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut since: Option<Instant> = None;
        loop {
            let client = self.client()?;
            let e = match f(client) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !is_retryable(&e) {
                return Err(self.failed(what, &e));
            }
            let lost = self.client.as_ref().is_none_or(Client::is_closed) || e.code().is_none();
            let start = *since.get_or_insert_with(Instant::now);
            if replay == Replay::Never || start.elapsed() >= OUTAGE_LIMIT {
                self.client = None;
                return Err(StoreError::Unavailable {
                    what: format!(
                        "lost the connection to PostgreSQL at {} while {what}: {}",
                        self.target.server,
                        describe(&e)
                    ),
                    hint: "nothing of the interrupted call was stored; run it again once the server is back".into(),
                });
            }
            if lost {
                self.client = None;
                let client = self.reconnect(start, Some(&describe(&e)))?;
                self.client = Some(client);
            } else {
                // A serialization failure or deadlock: the transaction was rolled back.
                tracing::debug!("retrying {what}: {}", describe(&e));
            }
        }
    }

    /// A non-retryable error of a call.
    pub(super) fn failed(&self, what: &str, e: &::postgres::Error) -> StoreError {
        StoreError::Other(format!(
            "PostgreSQL at {} failed while {what}: {}",
            self.target.server,
            describe(e)
        ))
    }

    /// After an error outside [`Link::run`]: forget a connection that is gone.
    pub(super) fn forget_if_closed(&mut self) {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
    }
}
