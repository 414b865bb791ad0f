//! Channels against the lying provider (issue #12): an answer the provider accepted is never
//! counted as a failure (class 3); secrets never reach errors, stored text or outputs
//! (class 4); an outbox append is all-or-nothing (class 8).

#[path = "../support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};

use disparo::channel::{Channel, Delivered, SendError};
use disparo::message::Envelope;

use crate::provider::{Behaviour, Provider};
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
    assert_eq!(d.provider_id.as_deref(), id);
    if id.is_none() {
        assert!(
            warnings.contains("WARN") && warnings.contains("without a provider id"),
            "no warning says why the id is missing: {warnings:?}"
        );
    }
    warnings
}

/// The 2xx answers a provider can get wrong, with the id an adapter can still read.
fn bad_2xx() -> Vec<(Behaviour, &'static str)> {
    vec![
        (
            Behaviour::Huge {
                status: 200,
                size: 20 << 20,
            },
            "20 MiB body",
        ),
        (
            Behaviour::Truncated {
                status: 200,
                declared: 4096,
                body: br#"{"id":"p-cut","#.to_vec(),
            },
            "Content-Length larger than the body, then close",
        ),
        (
            Behaviour::Answer {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: b"<html>not json".to_vec(),
            },
            "not JSON",
        ),
        (
            Behaviour::Answer {
                status: 200,
                headers: vec![("Transfer-Encoding".into(), "chunked".into())],
                body: b"zz\r\nbroken".to_vec(),
            },
            "malformed chunked body",
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
        for (b, what) in bad_2xx() {
            p.push(b);
            let mut env = envelope("+5511987654321");
            env.message_id = format!("{transport}-{what}");
            eprintln!("{transport}: {what}");
            accepted(channel, &env, None).await;
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
        for (b, what) in bad_2xx() {
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
