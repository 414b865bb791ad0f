//! `disparo serve`: the receipts server (delivery statuses, opt-outs, one-click unsubscribe).

use std::net::SocketAddr;

use super::{CliError, CliResult, Ctx, Exit};
use disparo::serve::Limits;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free one (printed at start).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The URL providers reach this server at behind a reverse proxy (e.g.
    /// https://hooks.example.com): Twilio signs the URL it called.
    #[arg(long, env = "DISPARO_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes (413 above it).
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub body_limit: usize,
    /// After SIGINT/SIGTERM, how long requests under way may take.
    #[arg(long, default_value = "10s")]
    pub grace: disparo::units::Duration,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let project = ctx.project()?;
    if let Some(u) = &args.public_url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        return Err(CliError::Invalid(vec![
            disparo::diag::Problem::new(format!("--public-url {u:?} is not an http(s) URL"))
                .field("--public-url")
                .hint("give the URL providers call, e.g. https://hooks.example.com"),
        ]));
    }
    let limits = Limits {
        body_bytes: args.body_limit,
        grace: std::time::Duration::from_secs(args.grace.as_secs().max(0).unsigned_abs()),
        ..Limits::default()
    };
    let env = |var: &str| std::env::var(var).ok();
    let config = disparo::app::serve::config(&project, &env, args.public_url.clone(), limits)?;
    let store = ctx.existing_store(Some(&project), disparo::store::Access::Write)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("cannot start the server's runtime: {e}")))?;
    let summary = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
            CliError::Invalid(vec![
                disparo::diag::Problem::new(format!("cannot listen on {}: {e}", args.listen))
                    .field("--listen")
                    .hint("pick a free port (or 0 for any), or stop what holds this one"),
            ])
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| CliError::Internal(e.to_string()))?;
        eprintln!(
            "disparo serve: listening on http://{local} (receipts from: {})",
            config.sources().join(", ")
        );
        if config.public_url.is_none() && !config.twilio_auth_tokens.is_empty() {
            eprintln!(
                "warning: no --public-url: Twilio signatures are checked against http://<Host header>/..., which fails behind an https proxy"
            );
        }
        disparo::app::serve::run(store, listener, config, ctx.fixed_now, stop_signal()).await
    })?;
    eprintln!(
        "disparo serve: stopped ({} connections, {} receipts in {} commits)",
        summary.connections, summary.receipts, summary.commits
    );
    Ok(Exit::Ok)
}

/// Resolves on the first SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
