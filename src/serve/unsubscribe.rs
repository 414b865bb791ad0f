//! One-click unsubscribe (RFC 8058) and the page behind the link.
//!
//! `POST /unsubscribe/{token}` — what Gmail, Yahoo and Apple Mail send on the reader's
//! behalf (`List-Unsubscribe=One-Click` in the body), and what the page's button sends —
//! suppresses the token's address. `GET` only shows a page with that button: mail scanners
//! and link previewers fetch links, and a fetch must never unsubscribe anyone (RFC 8058
//! section 3.2).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::receipt::{Effect, Event, Receipt, Source, Target};
use crate::unsubscribe::{Subscriber, verify};

fn who(state: &AppState, token: &str) -> Option<Subscriber> {
    state
        .config
        .unsubscribe_keys
        .iter()
        .find_map(|k| verify(k, token))
}

/// `a***@example.com`, `+55*******0000`: enough for the reader to recognise, not to harvest.
fn masked(address: &str) -> String {
    if let Some((local, domain)) = address.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let chars: Vec<char> = address.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         button{{font-size:1rem;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #444;background:#222;color:#fff;cursor:pointer}}</style>\
         </head><body><h1>{title}</h1>{body_html}</body></html>",
        title = crate::inert::html(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

fn invalid() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "<p>The unsubscribe link is incomplete or was changed. Use the link from the latest \
         message you received, or reply to it asking to be removed.</p>",
    )
}

pub(super) async fn confirm_page(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
) -> Response {
    let Some(who) = who(&state, &token) else {
        return invalid();
    };
    page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop messages to <strong>{}</strong>?</p>\
             <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>",
            crate::inert::html(&masked(&who.address))
        ),
    )
}

pub(super) async fn one_click(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
) -> Response {
    let Some(who) = who(&state, &token) else {
        tracing::warn!("refused: unsubscribe with an invalid token");
        return invalid();
    };
    let receipt = Receipt {
        source: Source::Unsubscribe,
        target: Target {
            address: Some(who.address.clone()),
            recipient: Some((who.campaign.clone(), who.recipient.clone())),
            ..Default::default()
        },
        event: Event::OptedOut,
        code: None,
        detail: Some(format!("unsubscribe link of campaign {}", who.campaign)),
        occurred_at: (state.clock)(),
        raw: token.clone(),
        // One opt-out per link: a second click (or the mailbox's retry) is the same event.
        dedupe: format!("token:{token}"),
        effect: Effect::Suppress {
            reason: format!("unsubscribed by link ({})", who.campaign),
        },
    };
    match state.ingest.submit(vec![receipt]).await {
        Ok(_) => {
            tracing::info!(campaign = %crate::inert::inert(&who.campaign), "unsubscribed by link");
            page(
                StatusCode::OK,
                "You are unsubscribed",
                &format!(
                    "<p><strong>{}</strong> will receive no more messages from us.</p>",
                    crate::inert::html(&masked(&who.address))
                ),
            )
        }
        Err(_) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again",
            "<p>We could not record your request just now. Please try again in a minute.</p>",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_escapes() {
        assert_eq!(masked("ana@example.com"), "a***@example.com");
        assert_eq!(masked("+5511999990000"), "+55*******0000");
        assert_eq!(masked("+1234"), "*****");
    }
}
