//! Channels against the lying provider (issue #12): an answer the provider accepted is never
//! counted as a failure (class 3); secrets never reach errors, stored text or outputs
//! (class 4); an outbox append is all-or-nothing (class 8).

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use disparo::channel::{Channel, Delivered, SendError};
use disparo::message::Envelope;

use super::provider::{Behaviour, Provider};
use support::{build, context, envelope};

const WA_TOKEN: &str = "EAAGwaSecretToken7Qx";
const TW_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TW_TOKEN: &str = "twSecretAuthTok5678z";

fn root() -> std::path::PathBuf {
    support::manifest_dir()
}

/// What `tracing` wrote (at warn and above) while `f` ran, on this thread: the tests here run
/// on a current-thread runtime, so the adapter's code runs on it.
async fn with_warnings<T>(f: impl std::future::Future<Output = T>) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let out = f.await;
    drop(guard);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (out, text)
}

/// Sends once and expects the provider's acceptance to be a success, with a warning that
/// says the id is missing when it could not be read.
async fn accepted(channel: &Channel, env: &Envelope, id: Option<&str>) -> String {
    let (r, warnings): (Result<Delivered, SendError>, String) =
        with_warnings(channel.send(env)).await;
    let d = r.unwrap_or_else(|e| panic!("an accepted answer counted as a failure: {e:?}"));
    match (id, d.provider_id.as_deref()) {
        (Some(want), Some(got)) if want.ends_with('*') => {
            assert!(got.starts_with(want.trim_end_matches('*')), "{got}")
        }
        (want, got) => assert_eq!(got, want),
    }
    if id.is_none() {
        assert!(
            warnings.contains("WARN") && warnings.contains("without a provider id"),
            "no warning says why the id is missing: {warnings:?}"
        );
    }
    warnings
}

/// The 2xx answers a provider can get wrong, with what they are, and the id the webhook can
/// still read (the others cannot: their ids are nested).
fn bad_2xx() -> Vec<(Behaviour, &'static str, Option<&'static str>)> {
    vec![
        (
            Behaviour::Huge {
                status: 200,
                size: 20 << 20,
            },
            "20 MiB body",
            Some("p-*"),
        ),
        (
            Behaviour::Truncated {
                status: 200,
                declared: 4096,
                body: br#"{"id":"p-cut","#.to_vec(),
            },
            "Content-Length larger than the body, then close",
            Some("p-cut"),
        ),
        (
            Behaviour::Answer {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: b"<html>not json".to_vec(),
            },
            "not JSON",
            None,
        ),
        (
            Behaviour::Answer {
                status: 200,
                headers: vec![("Transfer-Encoding".into(), "chunked".into())],
                body: b"zz\r\nbroken".to_vec(),
            },
            "malformed chunked body",
            None,
        ),
    ]
}

#[tokio::test]
async fn a_webhook_2xx_with_an_unreadable_body_is_sent_once_on_both_transports() {
    let p = Provider::start();
    let yaml = format!("{{ type: webhook, url: '{}' }}", p.url("/hook"));
    let plain = build(&yaml, &context(&root(), &[]));
    // A proxy named in the environment sends plain http through reqwest (the variable only
    // steers the choice: reqwest reads the real environment).
    let through_reqwest = build(
        &yaml,
        &context(&root(), &[("HTTP_PROXY", "http://proxy.invalid:3128")]),
    );
    let mut sent = 0;
    for (channel, transport) in [(&plain, "plain"), (&through_reqwest, "reqwest")] {
        for (b, what, id) in bad_2xx() {
            p.push(b);
            let mut env = envelope("+5511987654321");
            env.message_id = format!("{transport}-{what}");
            eprintln!("{transport}: {what}");
            accepted(channel, &env, id).await;
            sent += 1;
        }
    }
    let d = p.deliveries();
    assert_eq!(d.len(), sent);
    assert!(d.values().all(|&n| n == 1), "{d:?}");
    // A normal answer after them still works on both (the broken connections were dropped).
    for channel in [&plain, &through_reqwest] {
        let r = channel.send(&envelope("+5511987654321")).await.unwrap();
        assert!(r.provider_id.is_some_and(|id| id.starts_with("p-")));
    }
}

#[tokio::test]
async fn whatsapp_and_twilio_2xx_answers_that_cannot_be_read_are_sent_with_a_warning() {
    let p = Provider::start();
    let ctx = context(
        &root(),
        &[
            ("WA_TOKEN", WA_TOKEN),
            ("TW_SID", TW_SID),
            ("TW_TOKEN", TW_TOKEN),
        ],
    );
    let wa = build(
        &format!(
            "{{ type: whatsapp_cloud, phone_number_id: '10987', token_env: WA_TOKEN, base_url: '{}' }}",
            p.url("/v23.0")
        ),
        &ctx,
    );
    let tw = build(
        &format!(
            "{{ type: twilio, account_sid_env: TW_SID, auth_token_env: TW_TOKEN, from: '+15005550006', base_url: '{}' }}",
            p.url("")
        ),
        &ctx,
    );
    for channel in [&wa, &tw] {
        for (b, what, _) in bad_2xx() {
            p.push(b);
            eprintln!("{what}");
            accepted(channel, &envelope("+5511987654321"), None).await;
        }
    }
    assert_eq!(p.requests().len(), 8);
}

/// A program that exits 0 is a success even when a child it left behind holds its stdout
/// open (reading to EOF would wait for the child), and when it writes far more than an
/// outcome line before that line.
#[tokio::test]
async fn a_command_that_exits_0_is_sent_whatever_its_stdout_does() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("bg.pid");
    let background = dir.path().join("background.sh");
    std::fs::write(
        &background,
        format!(
            "#!/bin/sh\ncat >/dev/null\nsleep 60 &\necho $! > '{}'\necho '{{\"id\":\"bg-1\"}}'\nexit 0\n",
            pid_file.display()
        ),
    )
    .unwrap();
    let chatty = dir.path().join("chatty.sh");
    std::fs::write(
        &chatty,
        "#!/bin/sh\ncat >/dev/null\nhead -c 50000000 /dev/zero | tr '\\0' 'x'\necho\necho '{\"id\":\"chatty-1\"}'\n",
    )
    .unwrap();
    for f in [&background, &chatty] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ctx = context(dir.path(), &[]);
    let bg = build(
        &format!(
            "{{ type: command, program: '{}', timeout: 5s }}",
            background.display()
        ),
        &ctx,
    );
    let started = std::time::Instant::now();
    let r = bg.send(&envelope("+5511987654321")).await;
    let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
    if let Ok(pid) = pid.trim().parse::<i32>() {
        // The child left behind, not something of ours by name.
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    assert_eq!(
        r.map(|d| d.provider_id),
        Ok(Some("bg-1".to_string())),
        "after {:?}",
        started.elapsed()
    );
    let chatty = build(
        &format!(
            "{{ type: command, program: '{}', timeout: 60s }}",
            chatty.display()
        ),
        &ctx,
    );
    let r = chatty.send(&envelope("+5511987654321")).await.unwrap();
    assert_eq!(r.provider_id.as_deref(), Some("chatty-1"));
}

/// A program asking for an absurd `retry_after` (and a provider's absurd `Retry-After`) gets
/// the longest wait, never a panic (`Duration::from_secs_f64(1e300)` panicked).
#[tokio::test]
async fn an_absurd_retry_after_is_the_longest_wait_and_never_a_panic() {
    use disparo::channel::{ErrorClass, MAX_RETRY_AFTER};
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("later.sh");
    std::fs::write(
        &program,
        "#!/bin/sh\ncat >/dev/null\necho '{\"retry\":true,\"retry_after\":1e300}'\nexit 75\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ctx = context(dir.path(), &[]);
    let c = build(
        &format!("{{ type: command, program: '{}' }}", program.display()),
        &ctx,
    );
    let e = c.send(&envelope("+5511987654321")).await.unwrap_err();
    assert_eq!(
        e.class,
        ErrorClass::Transient {
            retry_after: Some(MAX_RETRY_AFTER)
        }
    );
    let p = Provider::start();
    let hook = build(
        &format!("{{ type: webhook, url: '{}' }}", p.url("/h")),
        &ctx,
    );
    for value in [
        "18446744073709551615",
        "99999999999999999999",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        p.push(Behaviour::status(503).header("Retry-After", value));
        let e = hook.send(&envelope("+5511987654321")).await.unwrap_err();
        assert_eq!(e.retry_after(), Some(MAX_RETRY_AFTER), "{value}");
    }
}

/// Runs the real binary with a file size limit of `limit` bytes and SIGXFSZ ignored (so a
/// write past it fails with EFBIG, after writing what fits: what a full disk does to an
/// append), through python3 (setrlimit, then exec).
fn run_with_file_size_limit(p: &crate::harness::Project, limit: u64, args: &[&str]) -> i32 {
    let script = "import os, resource, signal, sys\n\
                  signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n\
                  n = int(sys.argv[1])\n\
                  resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))\n\
                  os.execv(sys.argv[2], sys.argv[2:])\n";
    std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &limit.to_string(),
            env!("CARGO_BIN_EXE_disparo"),
        ])
        .args(args)
        .current_dir(p.path())
        .env_remove("DISPARO_DB")
        .env_remove("DISPARO_CONFIG")
        .env_remove("DISPARO_NOW")
        .env("NO_COLOR", "1")
        .env("DISPARO_SIMULATE", "1")
        .status()
        .expect("python3")
        .code()
        .unwrap_or(-1)
}

/// An append that does not fit (a full disk) leaves nothing behind: the next message's line
/// is whole. Before, the part that fitted stayed and the next append joined it into one
/// corrupted line.
#[test]
fn a_failed_outbox_append_leaves_no_partial_line() {
    let p = crate::harness::Project::empty().env("DISPARO_SIMULATE", "1");
    let mut csv = String::from("id,first_name,phone\n");
    for i in 0..3 {
        csv.push_str(&format!("r{i},Ana {i},+55119{:08}\n", 20_000_000 + i));
    }
    p.file(
        "disparo.yaml",
        "timezone: America/Sao_Paulo\nchannels:\n  out: { type: outbox, path: outbox.jsonl }\n",
    )
    .file(
        "campaigns/c.yaml",
        "channel: out\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n",
    )
    .file("templates/t.hbs", "Oi {{first_name}}")
    .file("a.csv", &csv);
    p.ok(&["-q", "--now", crate::harness::PLAN_NOW_MONDAY, "plan", "c"]);
    // Earlier lines, so that the limit falls in the outbox and far above the database's size.
    let earlier: String = (0..8000)
        .map(|i| format!("{{\"earlier\":{i},\"pad\":\"{}\"}}\n", "x".repeat(1000)))
        .collect();
    p.file("outbox.jsonl", &earlier);
    let limit = earlier.len() as u64 + 40;
    let now = [
        "--now",
        "2026-11-30T12:00:00Z",
        "run",
        "--once",
        "--limit",
        "1",
    ];
    // (Retries in this run fail alike; some messages may run out of attempts.)
    let code = run_with_file_size_limit(&p, limit, &now);
    assert_ne!(code, 0, "the appends should have failed");
    assert_eq!(
        std::fs::metadata(p.path().join("outbox.jsonl"))
            .unwrap()
            .len(),
        earlier.len() as u64,
        "a failed append left part of its line"
    );
    // Room again: every message goes out, each line whole.
    let later = ["--now", "2026-11-30T13:00:00Z", "run", "--once"];
    p.ok(&later);
    let text = p.read("outbox.jsonl");
    let lines: Vec<&str> = text.lines().skip(8000).collect();
    for l in &lines {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("a corrupted outbox line ({e}): {l}"));
    }
    let sent = p.messages().iter().filter(|m| m["state"] == "sent").count();
    assert!(sent >= 1 && lines.len() == sent, "{sent} sent: {lines:#?}");
}

/// A line torn before the outbox was opened (a crash mid-write, another program) stays
/// apart: the next line appended starts on a line of its own.
#[tokio::test]
async fn an_outbox_ending_in_a_torn_line_gets_whole_lines_after_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("o.jsonl"), "{\"id\":\"torn").unwrap();
    let ctx = context(dir.path(), &[]);
    let out = build("{ type: outbox, path: o.jsonl }", &ctx);
    out.send(&envelope("+5511987654321")).await.unwrap();
    out.send(&envelope("+5511987654322")).await.unwrap();
    let text = std::fs::read_to_string(dir.path().join("o.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "{\"id\":\"torn");
    for l in &lines[1..] {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
    assert_eq!(lines.len(), 3);
}

// ---------------------------------------------------------------------------------------
// Class 4: secrets never reach errors, stored text or outputs.

const HOOK_USER: &str = "hkUser7Tq2Zp";
/// In the URL percent-encoded: `hk%22Pa%20ss%2F9Wm4Xr`.
const HOOK_PASS: &str = "hk\"Pa ss/9Wm4Xr";
const HOOK_HMAC: &str = "hmacS3cr3tVb6Ny";
/// A credential written in disparo.yaml as a header value.
const HOOK_KEY: &str = "apiK3yLiteral8Jd";
const SMTP_USER: &str = "smtpUs3rQw9Hv";
const SMTP_PASS: &str = "smtpP4ss\"Zx7Lk";

/// `bytes` in standard base64, padded (written out here rather than trusting disparo's).
fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                char::from(A[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

/// Every secret of the project, the base64 forms a provider echoes, and every 8-character
/// piece of each.
fn needles() -> Vec<String> {
    let secrets = [
        HOOK_USER, HOOK_PASS, HOOK_HMAC, HOOK_KEY, WA_TOKEN, TW_SID, TW_TOKEN, SMTP_USER, SMTP_PASS,
    ];
    let mut out: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    out.push(b64(format!("{HOOK_USER}:{HOOK_PASS}").as_bytes()));
    out.push(b64(format!("{TW_SID}:{TW_TOKEN}").as_bytes()));
    out.push(b64(format!("{SMTP_USER}:{SMTP_PASS}").as_bytes()));
    out.push(b64(format!("\0{SMTP_USER}\0{SMTP_PASS}").as_bytes()));
    for s in secrets {
        for w in s.as_bytes().windows(8) {
            out.push(String::from_utf8(w.to_vec()).unwrap());
        }
    }
    out
}

/// Every channel with secrets (webhook with URL credentials, an HMAC secret and a key
/// header; WhatsApp Cloud; Twilio; SMTP with AUTH) against a provider that echoes each
/// request (headers included) in its error answers and in its 2xx answers (as the provider
/// id); then every command that shows stored or previewed text. No secret, no base64 of a
/// credential pair, no 8-character piece of a secret is in any stdout or stderr, in the
/// database, its WAL, or the outbox.
#[test]
fn no_secret_reaches_any_output_the_database_or_the_outbox() {
    use super::provider::{SmtpBehaviour, SmtpStage};
    let provider = Provider::start();
    let p = crate::harness::Project::empty()
        .env("DISPARO_SIMULATE", "1")
        .env("HOOK_SECRET", HOOK_HMAC)
        .env("WA_TOKEN", WA_TOKEN)
        .env("TW_SID", TW_SID)
        .env("TW_TOKEN", TW_TOKEN)
        .env("SMTP_USER", SMTP_USER)
        .env("SMTP_PASS", SMTP_PASS);
    let hook_url = provider
        .url("/hook")
        .replace("http://", "http://hkUser7Tq2Zp:hk%22Pa%20ss%2F9Wm4Xr@");
    let base = provider.url("");
    let port = provider.smtp_port();
    p.file(
        "disparo.yaml",
        &format!(
            "timezone: America/Sao_Paulo
channels:
  hook: {{ type: webhook, url: '{hook_url}', secret_env: HOOK_SECRET, headers: {{ X-Api-Key: {HOOK_KEY} }} }}
  wa: {{ type: whatsapp_cloud, phone_number_id: '10987', token_env: WA_TOKEN, base_url: '{base}/v23.0' }}
  tw: {{ type: twilio, account_sid_env: TW_SID, auth_token_env: TW_TOKEN, from: '+15005550006', base_url: '{base}' }}
  mail: {{ type: smtp, host: 127.0.0.1, port: {port}, tls: none, from: 'Shop <news@example.com>', username_env: SMTP_USER, password_env: SMTP_PASS, address_field: email }}
  out: {{ type: outbox, path: outbox.jsonl }}
"
        ),
    )
    .file(
        "templates/t.hbs",
        "---\nsubject: Oferta\nwhatsapp: { name: promo, language: pt_BR, body: [\"{{first_name}}\"] }\n---\nOi {{first_name}}",
    )
    .file(
        "a.csv",
        "id,first_name,phone,email\nr1,Ana,+5511920000001,ana@example.com\nr2,Bia,+5511920000002,bia@example.com\n",
    );
    let campaigns = ["hook", "wa", "tw", "mail", "out"];
    for c in campaigns {
        p.file(
            &format!("campaigns/{c}.yaml"),
            &format!(
                "channel: {c}\ntemplate: t\naudience: a.csv\nschedule: {{ at: 2026-11-30T09:00 }}\n"
            ),
        );
    }
    let mut outputs = Vec::new();
    let mut keep = |what: String, o: crate::harness::Output| {
        outputs.push((format!("{what}: stdout"), o.stdout));
        outputs.push((format!("{what}: stderr"), o.stderr));
    };
    let mut plan = vec!["-v", "--now", crate::harness::PLAN_NOW_MONDAY, "plan"];
    plan.extend(campaigns);
    keep("plan".into(), p.ok(&plan));
    // One message of each campaign gets an echoing error, the other an echoing 2xx.
    provider.default(Behaviour::echo(200));
    for c in campaigns {
        match c {
            "mail" => {
                provider.push_smtp(SmtpBehaviour::Echo {
                    at: SmtpStage::Message,
                    code: 554,
                });
            }
            "out" => {}
            _ => {
                provider.push(Behaviour::echo(400));
            }
        }
        let o = p.run(&[
            "-vv",
            "--now",
            "2026-11-30T12:00:00Z",
            "run",
            "--once",
            "--campaign",
            c,
        ]);
        keep(format!("run {c}"), o);
    }
    // The provider saw the credentials (so there was something to leak).
    let seen = provider.requests();
    assert!(seen.len() >= 6, "{seen:#?}");
    assert!(
        seen.iter().any(|r| r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic "))),
        "no request carried the URL credentials"
    );
    assert!(
        seen.iter()
            .any(|r| r.transcript.iter().any(|l| l.starts_with("AUTH"))),
        "no SMTP session authenticated"
    );
    let msgs = p.messages();
    for c in ["hook", "wa", "tw", "mail"] {
        let states: Vec<&str> = msgs
            .iter()
            .filter(|m| m["campaign"] == c)
            .map(|m| m["state"].as_str().unwrap_or_default())
            .collect();
        assert!(
            states.contains(&"failed") && states.contains(&"sent"),
            "{c}: {states:?}"
        );
    }
    for args in [
        vec!["-v", "status"],
        vec!["-v", "--format", "json", "status"],
        vec!["-v", "messages"],
        vec!["-v", "--format", "csv", "messages"],
        vec!["-v", "--format", "json", "messages"],
    ] {
        keep(args.join(" "), p.ok(&args));
    }
    for c in campaigns {
        for args in [
            vec!["-v", "--format", "csv", "export", c],
            vec!["-v", "--format", "json", "export", c],
            vec!["-v", "--format", "json", "export", "--attempts", c],
            vec![
                "-v",
                "--now",
                crate::harness::PLAN_NOW_MONDAY,
                "preview",
                c,
                "--show-request",
            ],
            vec![
                "-v",
                "--now",
                crate::harness::PLAN_NOW_MONDAY,
                "--format",
                "json",
                "preview",
                c,
                "--show-request",
            ],
        ] {
            keep(args.join(" "), p.ok(&args));
        }
    }
    for f in ["disparo.db", "disparo.db-wal", "outbox.jsonl"] {
        if let Ok(bytes) = std::fs::read(p.path().join(f)) {
            outputs.push((f.to_string(), String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    assert!(outputs.iter().any(|(w, _)| w == "disparo.db"));
    // The previews did show requests, and the errors were stored.
    let all: String = outputs.iter().map(|(_, t)| t.as_str()).collect();
    assert!(all.contains("Idempotency-Key") && all.contains("answered HTTP 400"));
    let mut leaks = Vec::new();
    for (what, text) in &outputs {
        for n in needles() {
            if let Some(at) = text.find(&n) {
                let from = text.floor_char_boundary(at.saturating_sub(60));
                let to = text.ceil_char_boundary((at + n.len() + 60).min(text.len()));
                leaks.push(format!("{what}: {n:?} in …{}…", &text[from..to]));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

/// What a provider that did not accept does (garbage, an answer cut in its head, a hang the
/// test ends) is a transient error: the retry carries the same key; a slow 2xx is a success.
#[tokio::test]
async fn answers_without_an_acceptance_are_transient_and_a_slow_2xx_is_sent() {
    use disparo::channel::ErrorClass;
    let p = Arc::new(Provider::start());
    let ctx = context(&root(), &[]);
    let hook = Arc::new(build(
        &format!("{{ type: webhook, url: '{}' }}", p.url("/h")),
        &ctx,
    ));
    for b in [
        Behaviour::Garbage(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
        Behaviour::CloseMidAnswer,
    ] {
        p.push(b.clone());
        let e = hook.send(&envelope("+5511987654321")).await.unwrap_err();
        assert!(
            matches!(e.class, ErrorClass::Transient { .. }),
            "{b:?}: {e:?}"
        );
    }
    p.push(Behaviour::Hang);
    let send = {
        let hook = hook.clone();
        tokio::spawn(async move { hook.send(&envelope("+5511987654321")).await })
    };
    p.wait_for_requests(3, Duration::from_secs(20)).await;
    p.release();
    let e = send.await.unwrap().unwrap_err();
    assert!(matches!(e.class, ErrorClass::Transient { .. }), "{e:?}");
    p.push(Behaviour::Slow {
        head: Duration::from_millis(20),
        between: Duration::from_millis(1),
        then: Box::new(Behaviour::Accept),
    });
    let d = hook.send(&envelope("+5511987654321")).await.unwrap();
    assert!(d.provider_id.is_some_and(|id| id.starts_with("p-")));
    // One key, four arrivals, one delivery.
    assert_eq!(p.arrivals()["bf26:ana:0"], 4);
    assert_eq!(p.deliveries()["bf26:ana:0"], 1);
}

/// A relay that accepted the message (250 after the data) and then never answers QUIT (or
/// drops the connection): the message is sent; retrying it would deliver it twice.
#[tokio::test]
async fn an_smtp_message_accepted_before_a_stalled_quit_is_sent_once() {
    use super::provider::{SmtpBehaviour, SmtpStage};
    let p = Provider::start();
    let ctx = context(
        &root(),
        &[("SMTP_USER", SMTP_USER), ("SMTP_PASS", SMTP_PASS)],
    );
    // A channel keeps the connection for the next message (and says QUIT only when it keeps
    // enough): each case gets a channel of its own, so each message opens its connection.
    let mail = || {
        build(
            &format!(
                "{{ type: smtp, host: 127.0.0.1, port: {}, tls: none, from: 'Shop <news@example.com>', username_env: SMTP_USER, password_env: SMTP_PASS, timeout: 1s }}",
                p.smtp_port()
            ),
            &ctx,
        )
    };
    for b in [
        SmtpBehaviour::Hang {
            at: SmtpStage::Quit,
        },
        SmtpBehaviour::Drop {
            at: SmtpStage::Quit,
        },
    ] {
        p.push_smtp(b.clone());
        let r = mail().send(&envelope("ana@example.com")).await;
        assert!(
            r.as_ref().is_ok_and(|d| d.provider_id.is_some()),
            "{b:?}: {r:?}"
        );
    }
    let seen = p.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| r.accepted));
    // A relay that stalls before accepting is a transient error within the timeout.
    p.push_smtp(SmtpBehaviour::Hang {
        at: SmtpStage::Message,
    });
    let e = mail().send(&envelope("ana@example.com")).await.unwrap_err();
    assert!(
        matches!(e.class, disparo::channel::ErrorClass::Transient { .. }),
        "{e:?}"
    );
}

/// A relay that keeps a connection open after accepting a message but never answers on it
/// again: the next message's check (`NOOP`) is given a quarter of the timeout, then a new
/// connection takes the message, within the send's timeout, instead of the send timing out.
#[tokio::test]
async fn a_kept_smtp_connection_that_stalls_is_replaced_within_the_timeout() {
    use super::provider::{SmtpBehaviour, SmtpStage};
    let p = Provider::start();
    let ctx = context(
        &root(),
        &[("SMTP_USER", SMTP_USER), ("SMTP_PASS", SMTP_PASS)],
    );
    let mail = build(
        &format!(
            "{{ type: smtp, host: 127.0.0.1, port: {}, tls: none, from: 'Shop <news@example.com>', username_env: SMTP_USER, password_env: SMTP_PASS, timeout: 1s }}",
            p.smtp_port()
        ),
        &ctx,
    );
    p.push_smtp(SmtpBehaviour::Hang {
        at: SmtpStage::Noop,
    });
    mail.send(&envelope("ana@example.com"))
        .await
        .expect("first sent");
    let mut second = envelope("bia@example.com");
    second.message_id = "bf26:bia:0".into();
    let d = mail
        .send(&second)
        .await
        .expect("second sent on a new connection, not timed out");
    assert!(d.provider_id.is_some());
    let seen = p.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| r.accepted));
}
