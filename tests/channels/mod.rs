//! Channel adapters against real servers on 127.0.0.1 that each test starts: a loopback HTTP
//! server (tests/support/http.rs), Prism mocks of the providers' OpenAPI descriptions
//! (tests/support/prism.rs), a real SMTP server (aiosmtpd) and a shell script.
//! Needs `scripts/test-deps.sh` (run by the tests when something is missing).

mod command;
mod smtp;
mod twilio;
mod webhook;
mod webhook_replay;
mod whatsapp;

use crate::support;
use std::time::Duration;

use crate::support::http::{Reply, TestServer};
use crate::support::{build, context, envelope};
use disparo::channel::limits::{RateLimiter, RetryPolicy};
use disparo::channel::{Channel, ChannelBuildError, ErrorClass, SendError};
use disparo::message::Envelope;
use disparo::units::Rate;
use serde_json::json;

const WA_TOKEN: &str = "EAAG-wa-secret-token-1234";
const TW_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TW_TOKEN: &str = "tw-secret-auth-token-5678";
const HOOK_SECRET: &str = "hook-hmac-secret-9012";
const SMTP_USER: &str = "mailer";
const SMTP_PASS: &str = "smtp-secret-password-3456";

fn root() -> std::path::PathBuf {
    support::manifest_dir()
}

/// Sends with the retry policy as the dispatcher would, without sleeping: returns the
/// final result, the attempts made and the delays the policy asked for.
async fn send_with_retries(
    channel: &Channel,
    env: &Envelope,
    policy: &RetryPolicy,
) -> (
    Result<disparo::channel::Delivered, SendError>,
    u32,
    Vec<Duration>,
) {
    let mut env = env.clone();
    let mut delays = Vec::new();
    loop {
        match channel.send(&env).await {
            Ok(d) => return (Ok(d), env.attempt, delays),
            Err(e) => match policy.next_delay(env.attempt, &e) {
                Some(d) => {
                    delays.push(d);
                    env.attempt += 1;
                }
                None => return (Err(e), env.attempt, delays),
            },
        }
    }
}

fn transient(after: Option<u64>) -> ErrorClass {
    ErrorClass::Transient {
        retry_after: after.map(Duration::from_secs),
    }
}

pub mod base64_check {
    /// `Basic base64(user:password)`, written out here rather than trusting reqwest's.
    pub fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", encode(format!("{user}:{password}").as_bytes()))
    }

    /// Standard base64 with padding, written out here rather than trusting the adapters'.
    pub fn encode(input: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

// ───────────────────────────── Limits ─────────────────────────────

/// Every window of `period` holds at most `n` of the (sorted) instants.
fn assert_window(times: &[tokio::time::Instant], n: usize, period: Duration) {
    for i in n..times.len() {
        assert!(
            times[i] - times[i - n] >= period,
            "{} sends within {period:?} (at #{i})",
            n + 1
        );
    }
}

#[tokio::test(start_paused = true)]
async fn rate_limiter_never_exceeds_n_per_second_across_tasks() {
    let limiter = std::sync::Arc::new(RateLimiter::new(Rate::per_second(80.0)));
    let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (limiter, times) = (limiter.clone(), times.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..125 {
                limiter.acquire().await;
                times.lock().unwrap().push(tokio::time::Instant::now());
                // Uneven work between sends.
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..20))).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut times = times.lock().unwrap().clone();
    times.sort();
    assert_eq!(times.len(), 1000);
    assert_window(&times, 80, Duration::from_secs(1));
    // And it is not slower than it must be: 1000 at 80/s is 12 full windows after the first.
    let took = *times.last().unwrap() - start;
    assert!(
        took >= Duration::from_secs(12) && took < Duration::from_secs(13),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limiter_slow_rates_space_messages_out() {
    let limiter = RateLimiter::new("30/m".parse::<Rate>().unwrap());
    let mut times = Vec::new();
    for _ in 0..5 {
        limiter.acquire().await;
        times.push(tokio::time::Instant::now());
    }
    assert_window(&times, 1, Duration::from_secs(2));
    // Four intervals of 2 s, each 0.5 % longer (the limiter's headroom for jitter).
    assert_eq!(
        times[4] - times[0],
        Duration::from_secs(8).mul_f64(1.0 + disparo::channel::limits::HEADROOM)
    );
}

#[test]
fn retry_policy_backs_off_with_full_jitter_honours_retry_after_and_stops() {
    let policy = RetryPolicy::new(6);
    let mut rng = fastrand::Rng::with_seed(7);
    let err = SendError::transient("boom");
    for attempt in 1..6 {
        for _ in 0..200 {
            let d = policy.next_delay_with(&mut rng, attempt, &err).unwrap();
            assert!(d <= policy.ceiling(attempt), "attempt {attempt}: {d:?}");
        }
    }
    assert_eq!(policy.ceiling(5), Duration::from_secs(16));
    // The provider's Retry-After wins when longer, even past the cap.
    let throttled = SendError {
        class: transient(Some(900)),
        code: None,
        message: String::new(),
    };
    assert_eq!(
        policy.next_delay_with(&mut rng, 1, &throttled),
        Some(Duration::from_secs(900))
    );
    assert_eq!(
        policy.next_delay_with(&mut rng, 6, &err),
        None,
        "out of attempts"
    );
    assert_eq!(policy.next_delay(1, &SendError::permanent("no")), None);
    let mut breaker = SendError::permanent("no");
    breaker.class = ErrorClass::Breaker;
    assert_eq!(policy.next_delay(1, &breaker), None);
}

// ───────────────────────────── Config, secrets ─────────────────────────────

#[test]
fn a_missing_secret_names_the_channel_the_key_and_the_variable() {
    let config = support::config(
        "{ type: twilio, account_sid_env: TW_SID, auth_token_env: TW_TOKEN, from: '+1555' }",
    );
    let ctx = context(&root(), &[("TW_SID", TW_SID)]);
    let err = Channel::build("sms", &config, &ctx).unwrap_err();
    assert_eq!(
        err,
        ChannelBuildError::MissingEnv {
            channel: "sms".into(),
            key: "auth_token_env".into(),
            var: "TW_TOKEN".into()
        }
    );
    let text = err.to_string();
    assert!(text.contains("`sms`") && text.contains("auth_token_env") && text.contains("TW_TOKEN"));
    assert!(!text.contains(TW_SID));
}

#[test]
fn configs_refuse_unknown_keys_and_apply_adapter_defaults() {
    let bad: Result<disparo::channel::ChannelConfig, _> = serde_saphyr::from_str(
        "{ type: whatsapp_cloud, phone_number_id: '1', token_env: T, base_ulr: 'http://x' }",
    );
    assert!(bad.is_err(), "a misspelt key must be refused");
    let wa =
        support::config("{ type: whatsapp_cloud, phone_number_id: 106540352242922, token_env: T }");
    match &wa {
        disparo::channel::ChannelConfig::WhatsappCloud(c) => {
            assert_eq!(c.phone_number_id, "106540352242922")
        }
        other => panic!("{other:?}"),
    }
    let s = wa.settings();
    assert_eq!(s.rate.map(|r| r.as_per_second()), Some(80.0));
    assert_eq!(s.address_field, "phone");
    let smtp = support::config("{ type: smtp, host: h, from: 'a@b.c' }");
    assert_eq!(smtp.settings().address_field, "email");
    let both = support::config(
        "{ type: twilio, account_sid_env: A, auth_token_env: B, from: '+1', messaging_service_sid: MG1 }",
    );
    let ctx = context(&root(), &[("A", TW_SID), ("B", TW_TOKEN)]);
    assert!(matches!(
        Channel::build("sms", &both, &ctx),
        Err(ChannelBuildError::Invalid { .. })
    ));
}

#[tokio::test]
async fn secrets_never_appear_in_debug_previews_or_errors() {
    // Every provider answers an error whose text echoes the channel's credentials back.
    let server = TestServer::start(vec![
        Reply::json(
            401,
            json!({"error": {"message": format!("bad token {WA_TOKEN}"), "code": 190}}),
        ),
        Reply::json(
            401,
            json!({"code": 20003, "message": format!("bad login {TW_SID}:{TW_TOKEN}")}),
        ),
        Reply::text(401, &format!("bad signature key {HOOK_SECRET}")),
    ])
    .await;
    let env = envelope("+5511987654321");
    let channels = [
        whatsapp::whatsapp(&server),
        twilio::twilio(&server, "from: '+15550001111'"),
        webhook::webhook(&server, ", secret_env: HOOK_SECRET"),
    ];
    let secrets = [
        WA_TOKEN,
        TW_SID,
        TW_TOKEN,
        HOOK_SECRET,
        SMTP_PASS,
        SMTP_USER,
    ];
    let check = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "{what} shows a secret: {text}");
        }
    };
    for channel in &channels {
        check("Debug", &format!("{channel:?}"));
        check("preview", &channel.preview_request(&env).to_string());
        let err = channel.send(&env).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Breaker);
        check("error", &err.to_string());
        check("error Debug", &format!("{err:?}"));
    }
    let smtp = build(
        "{ type: smtp, host: 127.0.0.1, port: 1, username_env: U, password_env: P, from: 'a@b.example' }",
        &context(&root(), &[("U", SMTP_USER), ("P", SMTP_PASS)]),
    );
    check("Debug", &format!("{smtp:?}"));
    check(
        "preview",
        &smtp
            .preview_request(&envelope("ana@example.com"))
            .to_string(),
    );
    let err = smtp.send(&envelope("ana@example.com")).await.unwrap_err();
    check("error", &err.to_string());

    // A transport error to Twilio does not show the account SID that is in its URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = build(
        &format!(
            "{{ type: twilio, account_sid_env: S, auth_token_env: T, from: '+1', base_url: 'http://127.0.0.1:{port}' }}"
        ),
        &context(&root(), &[("S", TW_SID), ("T", TW_TOKEN)]),
    );
    let err = closed.send(&env).await.unwrap_err();
    assert!(matches!(err.class, ErrorClass::Transient { .. }));
    check("network error", &err.to_string());
}
