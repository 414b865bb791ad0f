//! `command`: any program, one JSON message on stdin, one JSON result on stdout.

use super::*;
use crate::support::{build, context, envelope};
use disparo::channel::{Channel, ErrorClass};

fn command(mode: &str, capture: &std::path::Path, timeout: &str) -> Channel {
    build(
        &format!(
            "{{ type: command, program: tests/fixtures/command/send.sh, args: [{mode}, '{}'], timeout: {timeout} }}",
            capture.display()
        ),
        &context(&root(), &[]),
    )
}

#[tokio::test]
async fn command_success_reads_the_message_on_stdin_and_the_id_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("in.json");
    let channel = command("ok", &capture, "30s");
    let env = envelope("+5511987654321");
    let delivered = channel.send(&env).await.unwrap();
    assert_eq!(delivered.provider_id.as_deref(), Some("cmd-42"));
    let input: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&capture).unwrap()).unwrap();
    assert_eq!(input["id"], "bf26:ana:0");
    assert_eq!(input["to"], "+5511987654321");
    assert_eq!(input["body"], "Olá Ana! Tom & Jerry: use o cupom BF26.");
    assert_eq!(channel.preview_request(&env)["stdin"], input);
}

#[tokio::test]
async fn command_exit_status_classifies_errors() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("in.json");
    let env = envelope("+1");

    let err = command("transient", &capture, "30s")
        .send(&env)
        .await
        .unwrap_err();
    assert_eq!(err.class, transient(Some(7)), "{err}");
    assert_eq!(err.code.as_deref(), Some("exit 75"));
    assert!(err.message.contains("upstream busy"));

    let err = command("retry", &capture, "30s")
        .send(&env)
        .await
        .unwrap_err();
    assert_eq!(err.class, transient(None), "{err}");

    let err = command("permanent", &capture, "30s")
        .send(&env)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("invalid number"));
}

#[tokio::test]
async fn command_timeout_kills_the_program_and_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("in.json");
    let started = std::time::Instant::now();
    let err = command("hang", &capture, "1s")
        .send(&envelope("+1"))
        .await
        .unwrap_err();
    assert_eq!(err.class, transient(None), "{err}");
    assert_eq!(err.code.as_deref(), Some("timeout"));
    assert!(started.elapsed() < Duration::from_secs(10));
}
