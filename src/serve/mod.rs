//! `disparo serve`: the HTTP server providers call back — WhatsApp status webhooks, Twilio
//! status callbacks and incoming messages, webhook receipts, one-click unsubscribe — writing
//! into the same store `run` sends from.
//!
//! axum routes the requests; the accept loop is ours (hyper-util) so that it can bound how
//! long a client may take to send its headers (slow-loris) and drain connections on
//! shutdown. Bodies are capped (`body_limit`), each request has a deadline, every request is
//! logged with its status and time, and receipts reach the disk through one writer thread
//! ([`ingest`]) that commits them in groups before any request is answered.
//!
//! Files: `routes` (the providers' endpoints and their signature checks), `unsubscribe` (the
//! one-click endpoint and its page), `ingest` (the group-committing writer).

pub mod ingest;
mod routes;
mod unsubscribe;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use jiff::Timestamp;
use tokio::net::TcpListener;

use crate::channel::webhook::sign::SigningKey;
use crate::store::Store;

/// What the server accepts and whom it believes. Secrets come from the environment
/// variables the channels name in `disparo.yaml` (see `app::serve`).
#[derive(Clone, Default)]
pub struct ServeConfig {
    /// The URL providers reach this server at (behind a reverse proxy), without a trailing
    /// slash: Twilio signs the URL it called, so it must be known to check the signature.
    pub public_url: Option<String>,
    pub whatsapp_app_secrets: Vec<Vec<u8>>,
    pub whatsapp_verify_token: Option<String>,
    pub twilio_auth_tokens: Vec<Vec<u8>>,
    pub(crate) webhook_keys: Vec<SigningKey>,
    pub unsubscribe_keys: Vec<Vec<u8>>,
    pub limits: Limits,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets: only which sources are configured.
        f.debug_struct("ServeConfig")
            .field("public_url", &self.public_url)
            .field("whatsapp", &!self.whatsapp_app_secrets.is_empty())
            .field("twilio", &!self.twilio_auth_tokens.is_empty())
            .field("webhook", &!self.webhook_keys.is_empty())
            .field("unsubscribe", &!self.unsubscribe_keys.is_empty())
            .field("limits", &self.limits)
            .finish()
    }
}

impl ServeConfig {
    /// Adds a webhook channel's signing secret (as `secret_env` holds it); the error says
    /// what is wrong with it without showing it.
    pub fn add_webhook_secret(&mut self, secret: &str) -> Result<(), String> {
        self.webhook_keys.push(SigningKey::from_secret(secret)?);
        Ok(())
    }

    /// The sources that will accept requests, for the start-up line.
    pub fn sources(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.whatsapp_app_secrets.is_empty() {
            out.push("whatsapp");
        }
        if !self.twilio_auth_tokens.is_empty() {
            out.push("twilio");
        }
        if !self.webhook_keys.is_empty() {
            out.push("webhook");
        }
        if !self.unsubscribe_keys.is_empty() {
            out.push("unsubscribe");
        }
        out
    }
}

/// Bounds on what one client may cost the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted (413 above it). Meta batches at most a few hundred
    /// statuses per notification, far below the default 1 MiB.
    pub body_bytes: usize,
    /// How long a client may take to send its request headers.
    pub header_timeout: Duration,
    /// How long one request may take from its headers to the answer (its body included).
    pub request_timeout: Duration,
    /// How long shutdown waits for requests under way.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 1 << 20,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(10),
        }
    }
}

pub(crate) struct AppState {
    config: ServeConfig,
    ingest: ingest::Ingest,
    clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

/// How a server run ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeSummary {
    pub connections: u64,
    pub receipts: u64,
    pub commits: u64,
}

fn router(state: Arc<AppState>) -> Router {
    let limits = state.config.limits;
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route(
            "/whatsapp",
            get(routes::whatsapp_verify).post(routes::whatsapp_post),
        )
        .route("/twilio/status", post(routes::twilio_status))
        .route("/twilio/inbound", post(routes::twilio_inbound))
        .route("/webhook/receipts", post(routes::webhook_receipts))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::confirm_page).post(unsubscribe::one_click),
        )
        .fallback(|| async {
            routes::json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "no such endpoint", "hint": "see docs/receipts.md for the endpoints disparo serve answers"}),
            )
        })
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            log_and_bound(req, next, limits.request_timeout)
        }))
        .with_state(state)
}

/// Logs every request (method, path without its query, status, time) and answers 503 when
/// it runs past its deadline.
async fn log_and_bound(req: Request, next: Next, deadline: Duration) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = crate::inert::inert(req.uri().path()).into_owned();
    let peer = req
        .extensions()
        .get::<SocketAddr>()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let response = match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the request took too long; nothing was stored",
        )
            .into_response(),
    };
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 400 {
        tracing::info!(%method, path, status, ms, peer, "request");
    } else {
        tracing::debug!(%method, path, status, ms, peer, "request");
    }
    response
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting, lets requests under
/// way finish within the grace period, and returns once every receipt handed in is
/// committed.
pub async fn serve(
    store: Arc<dyn Store>,
    listener: TcpListener,
    config: ServeConfig,
    clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<ServeSummary> {
    let limits = config.limits;
    let (ingest, writer) = ingest::start(store, clock.clone());
    let stats = ingest.stats.clone();
    let state = Arc::new(AppState {
        config,
        ingest,
        clock,
    });
    let app = router(state.clone());
    drop(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = 0u64;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                connections += 1;
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer);
                    let mut app = app.clone();
                    async move {
                        use tower::Service as _;
                        app.call(req.map(axum::body::Body::new)).await
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    drop(app);
    tracing::info!("stopping: no new connections; finishing requests under way");
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.grace, "requests still under way after the grace period were cut");
    }
    // The last handle to the writer went with the router: it commits what it holds and ends.
    tokio::task::spawn_blocking(move || writer.finish())
        .await
        .map_err(std::io::Error::other)?;
    use std::sync::atomic::Ordering::Relaxed;
    Ok(ServeSummary {
        connections,
        receipts: stats.receipts.load(Relaxed),
        commits: stats.commits.load(Relaxed),
    })
}
