//! The endpoints providers call. Every one that writes checks its provider's signature first:
//! an unsigned or badly signed request is refused with 401, logged, and stores nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;

use super::AppState;
use crate::receipt::{Applied, Receipt, twilio, webhook, whatsapp};

/// How far a Standard Webhooks timestamp may be from our clock (their libraries' default).
const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A JSON answer with `status`.
pub(super) fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn refused(what: &str, path: &str) -> Response {
    tracing::warn!(path, source = what, "refused: missing or wrong signature");
    json(
        StatusCode::UNAUTHORIZED,
        serde_json::json!({"error": format!("the {what} signature is missing or wrong")}),
    )
}

fn not_configured(what: &str, hint: &str) -> Response {
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"error": format!("{what} receipts are not configured on this server"), "hint": hint}),
    )
}

fn bad_request(e: String) -> Response {
    json(StatusCode::BAD_REQUEST, serde_json::json!({"error": e}))
}

/// Hands the receipts to the writer and answers once they are committed: 200 with what
/// became of them, or 503 (nothing stored: the provider sends them again).
async fn store(state: &AppState, source: &str, receipts: Vec<Receipt>) -> Response {
    let n = receipts.len();
    match state.ingest.submit(receipts).await {
        Ok(applied) => {
            let count = |a: Applied| applied.iter().filter(|x| **x == a).count();
            tracing::debug!(
                source,
                receipts = n,
                recorded = count(Applied::Recorded),
                stale = count(Applied::Stale),
                duplicate = count(Applied::Duplicate),
                unmatched = count(Applied::Unmatched),
                "receipts stored"
            );
            json(
                StatusCode::OK,
                serde_json::json!({
                    "received": n,
                    "results": applied.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                }),
            )
        }
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": e, "hint": "nothing was stored; send it again"}),
        ),
    }
}

pub(super) async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let stats = &state.ingest.stats;
    use std::sync::atomic::Ordering::Relaxed;
    json(
        StatusCode::OK,
        serde_json::json!({
            "status": "ok",
            "receipts": stats.receipts.load(Relaxed),
            "commits": stats.commits.load(Relaxed),
            "duplicates": stats.duplicates.load(Relaxed),
            "unmatched": stats.unmatched.load(Relaxed),
            "late_matches": stats.late_matches.load(Relaxed),
            "store_failures": stats.failures.load(Relaxed),
        }),
    )
}

#[derive(serde::Deserialize)]
pub(super) struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription check: echo `hub.challenge` when the verify token is ours.
pub(super) async fn whatsapp_verify(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Handshake>,
) -> Response {
    let Some(expected) = &state.config.whatsapp_verify_token else {
        return not_configured(
            "WhatsApp",
            "set `verify_token_env` on the whatsapp_cloud channel in disparo.yaml",
        );
    };
    let given = q.verify_token.unwrap_or_default();
    let same = constant_time_eq(given.as_bytes(), expected.as_bytes());
    match (q.mode.as_deref(), same, q.challenge) {
        (Some("subscribe"), true, Some(challenge)) => {
            tracing::info!("WhatsApp webhook subscription verified");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain")],
                challenge,
            )
                .into_response()
        }
        _ => {
            tracing::warn!("refused: WhatsApp verification with a wrong token");
            (StatusCode::FORBIDDEN, "wrong verify token").into_response()
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    // Equal-length digests compared without an early exit: timing says nothing of either.
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

pub(super) async fn whatsapp_post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.config.whatsapp_app_secrets.is_empty() {
        return not_configured(
            "WhatsApp",
            "set `app_secret_env` on the whatsapp_cloud channel in disparo.yaml",
        );
    }
    let signature = header_str(&headers, "x-hub-signature-256");
    if !state
        .config
        .whatsapp_app_secrets
        .iter()
        .any(|s| whatsapp::signature_ok(s, &body, signature))
    {
        return refused("X-Hub-Signature-256", "/whatsapp");
    }
    let parsed = match whatsapp::parse(&body, (state.clock)()) {
        Ok(p) => p,
        Err(e) => return bad_request(e),
    };
    for what in &parsed.ignored {
        tracing::debug!(what = %crate::inert::inert(what), "WhatsApp notification part not used");
    }
    store(&state, "whatsapp", parsed.receipts).await
}

/// The URL Twilio called, as it signed it: the public URL (behind a proxy) with the path
/// and query of this request.
fn twilio_url(state: &AppState, headers: &HeaderMap, uri: &Uri) -> String {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    match &state.config.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => format!(
            "http://{}{path}",
            header_str(headers, "host").unwrap_or("localhost")
        ),
    }
}

fn twilio_form(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> Result<Vec<(String, String)>, Response> {
    if state.config.twilio_auth_tokens.is_empty() {
        return Err(not_configured(
            "Twilio",
            "define a twilio channel in disparo.yaml with its `auth_token_env` set in this environment",
        ));
    }
    let params: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|e| bad_request(format!("not a form: {e}")))?;
    let url = twilio_url(state, headers, uri);
    let signature = header_str(headers, "x-twilio-signature");
    if !state
        .config
        .twilio_auth_tokens
        .iter()
        .any(|t| twilio::signature_ok(t, &url, &params, signature))
    {
        return Err(refused("X-Twilio-Signature", uri.path()));
    }
    Ok(params)
}

pub(super) async fn twilio_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let params = match twilio_form(&state, &headers, &uri, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    match twilio::status(&params, &query, (state.clock)()) {
        Ok(Some(r)) => store(&state, "twilio", vec![r]).await,
        Ok(None) => json(StatusCode::OK, serde_json::json!({"received": 0})),
        Err(e) => bad_request(e),
    }
}

/// An empty TwiML answer: Twilio sends no reply of ours (its own opt-out confirmation, for
/// the standard keywords, it sends itself).
fn twiml() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    )
        .into_response()
}

pub(super) async fn twilio_inbound(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let params = match twilio_form(&state, &headers, &uri, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match twilio::inbound(&params, (state.clock)()) {
        Ok(Some(r)) => {
            let response = store(&state, "twilio", vec![r]).await;
            if response.status() == StatusCode::OK {
                twiml()
            } else {
                response
            }
        }
        Ok(None) => twiml(),
        Err(e) => bad_request(e),
    }
}

pub(super) async fn webhook_receipts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.config.webhook_keys.is_empty() {
        return not_configured(
            "Webhook",
            "set `secret_env` on the webhook channel in disparo.yaml: receipts are signed with the same secret",
        );
    }
    if !webhook_signed(&state, &headers, &body) {
        return refused("webhook", "/webhook/receipts");
    }
    match webhook::parse(&body, (state.clock)()) {
        Ok(receipts) => store(&state, "webhook", receipts).await,
        Err(e) => bad_request(e),
    }
}

/// Standard Webhooks headers with a timestamp within five minutes, or
/// `X-Disparo-Signature` over the body.
fn webhook_signed(state: &AppState, headers: &HeaderMap, body: &[u8]) -> bool {
    let keys = &state.config.webhook_keys;
    if let (Some(id), Some(ts), Some(sig)) = (
        header_str(headers, "webhook-id"),
        header_str(headers, "webhook-timestamp"),
        header_str(headers, "webhook-signature"),
    ) {
        let Ok(secs) = ts.trim().parse::<i64>() else {
            return false;
        };
        let now = Timestamp::now().as_second();
        if (now - secs).abs() > TIMESTAMP_TOLERANCE_SECS {
            return false;
        }
        return keys.iter().any(|k| k.standard_ok(id, ts.trim(), body, sig));
    }
    match header_str(headers, "x-disparo-signature") {
        Some(sig) => keys.iter().any(|k| k.legacy_ok(body, sig)),
        None => false,
    }
}
