//! Shared pieces of the channel tests: envelopes, build contexts with injected environment
//! variables, the loopback HTTP server, and the Python helpers (a real SMTP server and the
//! OpenAPI request validator) that `scripts/test-deps.sh` installs the packages for.

#![allow(dead_code)]

pub mod bounce_fill;
pub mod http;
pub mod prism;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use disparo::channel::{BuildContext, Channel, ChannelConfig};
use disparo::message::{Content, Envelope, WhatsappTemplate};
use tokio::io::{AsyncBufReadExt, BufReader};

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A message to Ana with a WhatsApp template, a subject and a body with an ampersand.
pub fn envelope(address: &str) -> Envelope {
    let mut vars = serde_json::Map::new();
    vars.insert("first_name".into(), "Ana".into());
    vars.insert("coupon".into(), "BF26".into());
    Envelope {
        message_id: "bf26:ana:0".into(),
        campaign: "black-friday".into(),
        recipient: "ana".into(),
        channel: "test".into(),
        address: address.into(),
        locale: Some("pt-BR".into()),
        content: Content {
            body: "Olá Ana! Tom & Jerry: use o cupom BF26.".into(),
            subject: Some("Ana, sua oferta chegou".into()),
            html: None,
            whatsapp: Some(WhatsappTemplate {
                name: "black_friday_offer".into(),
                language: "pt_BR".into(),
                body: vec!["Ana".into(), "BF26".into()],
                ..Default::default()
            }),
            twilio: None,
            variant: None,
        },
        vars,
        scheduled_at: "2026-11-27T13:00:00Z".parse().unwrap(),
        attempt: 1,
        attempt_at: "2026-11-27T13:00:05Z".parse().unwrap(),
    }
}

/// A build context rooted at `root` whose environment is exactly `vars`.
pub fn context(root: &Path, vars: &[(&str, &str)]) -> BuildContext {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    BuildContext::new(root, reqwest::Client::new()).with_env(move |k| map.get(k).cloned())
}

/// Parses a channel config from YAML, as `disparo.yaml` would hold it.
pub fn config(yaml: &str) -> ChannelConfig {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("bad test config {yaml}: {e}"))
}

pub fn build(yaml: &str, ctx: &BuildContext) -> Channel {
    Channel::build("test", &config(yaml), ctx).unwrap_or_else(|e| panic!("build failed: {e}"))
}

const DEPS_HINT: &str =
    "run `scripts/test-deps.sh` (installs the pinned Python packages the channel tests need)";

fn python_imports(code: &str) -> std::process::Output {
    std::process::Command::new("python3")
        .args(["-c", code])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {DEPS_HINT}"))
}

/// Makes sure the Python modules the tests need are there: when one is missing, runs the
/// project's own `scripts/test-deps.sh` (pinned versions, once per test binary), so that
/// `cargo test` works on a fresh clone; fails with what to do if that did not help.
pub fn require_python(modules: &[&str]) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    let code = format!("import {}", modules.join(", "));
    let mut out = python_imports(&code);
    if !out.status.success() {
        INSTALL.call_once(|| {
            let status = std::process::Command::new("bash")
                .arg(manifest_dir().join("scripts/test-deps.sh"))
                .status();
            eprintln!("ran scripts/test-deps.sh: {status:?}");
        });
        out = python_imports(&code);
    }
    assert!(
        out.status.success(),
        "missing Python modules {modules:?}: {DEPS_HINT}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Validates `instance` against the schema `components.schemas[name]` of the OpenAPI
/// description `spec` (a file under tests/fixtures/specs): payloads the provider sends us.
pub fn validate_component(
    spec: &str,
    name: &str,
    instance: &serde_json::Value,
) -> Result<(), String> {
    validate_request(spec, "component", name, "-", false, instance)
}

/// Validates `instance` against the request body schema of `method path_template` in the
/// OpenAPI description `spec` (a file under tests/fixtures/specs).
pub fn validate_request(
    spec: &str,
    method: &str,
    path_template: &str,
    content_type: &str,
    closed: bool,
    instance: &serde_json::Value,
) -> Result<(), String> {
    require_python(&["jsonschema", "yaml", "referencing"]);
    let dir = manifest_dir();
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(dir.join("tests/support/validate_request.py"))
        .arg(dir.join("tests/fixtures/specs").join(spec))
        .args([method, path_template, content_type]);
    if closed {
        cmd.arg("--closed");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run validate_request.py");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(instance.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A real SMTP server (aiosmtpd) on 127.0.0.1, stopped when dropped.
pub struct SmtpServer {
    pub port: u16,
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

/// One message the SMTP server received.
#[derive(Debug, serde::Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub data: String,
    pub tls: bool,
    pub login: Option<String>,
    /// Decoded headers, lower-case names.
    pub headers: HashMap<String, String>,
    pub content_type: String,
    pub parts: Vec<Part>,
    /// The client's port: one per connection.
    pub peer: Option<u16>,
    /// Whether the DKIM signature verified (servers started with a DKIM key only).
    pub dkim: Option<bool>,
}

#[derive(Debug, serde::Deserialize)]
pub struct Part {
    pub content_type: String,
    pub text: String,
}

pub struct Certs {
    pub dir: tempfile::TempDir,
}

impl Certs {
    /// A test CA and a server certificate for 127.0.0.1 signed by it.
    pub fn generate() -> Certs {
        require_python(&["cryptography"]);
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("python3")
            .arg(manifest_dir().join("tests/support/smtp_server.py"))
            .arg("make-certs")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "make-certs failed");
        Certs { dir }
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl SmtpServer {
    pub async fn start(certs: Option<&Certs>, login: Option<(&str, &str)>) -> SmtpServer {
        SmtpServer::start_with(certs, login, None).await
    }

    /// With `dkim_txt`, the DNS TXT record (`v=DKIM1; k=rsa; p=…`) the server verifies each
    /// message's DKIM signature against.
    pub async fn start_with(
        certs: Option<&Certs>,
        login: Option<(&str, &str)>,
        dkim_txt: Option<&Path>,
    ) -> SmtpServer {
        SmtpServer::start_full(certs, login, dkim_txt, None).await
    }

    /// With `idle_timeout`, the server closes a connection idle that long.
    pub async fn start_full(
        certs: Option<&Certs>,
        login: Option<(&str, &str)>,
        dkim_txt: Option<&Path>,
        idle_timeout: Option<f64>,
    ) -> SmtpServer {
        require_python(&["aiosmtpd", "dkim"]);
        let mut cmd = tokio::process::Command::new("python3");
        cmd.arg(manifest_dir().join("tests/support/smtp_server.py"))
            .arg("serve");
        if let Some(c) = certs {
            cmd.arg("--cert")
                .arg(c.dir.path().join("server.pem"))
                .arg("--key")
                .arg(c.dir.path().join("server.key"));
        }
        if let Some((u, p)) = login {
            cmd.args(["--user", u, "--password", p]);
        }
        if let Some(txt) = dkim_txt {
            cmd.arg("--dkim-key").arg(txt);
        }
        if let Some(t) = idle_timeout {
            cmd.arg("--idle-timeout").arg(t.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start smtp_server.py");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("SMTP server did not start in 20 s")
            .unwrap()
            .unwrap_or_else(|| panic!("SMTP server exited: {DEPS_HINT}"));
        let v: serde_json::Value = serde_json::from_str(&first).unwrap();
        SmtpServer {
            port: v["port"].as_u64().unwrap() as u16,
            child,
            lines,
        }
    }

    /// The next message the server received.
    pub async fn received(&mut self) -> Received {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), self.lines.next_line())
            .await
            .expect("no message received in 20 s")
            .unwrap()
            .expect("SMTP server exited");
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Makes sure the npm tools of tests/tools (Prism, handlebars.js) are installed: when they are
/// missing, runs `scripts/test-deps.sh` once per test binary; fails with what to do otherwise.
pub fn require_npm_tools() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    let tools = manifest_dir().join("tests/tools/node_modules");
    let present = || tools.join(".bin/prism").exists() && tools.join("handlebars").exists();
    if !present() {
        INSTALL.call_once(|| {
            let status = std::process::Command::new("bash")
                .arg(manifest_dir().join("scripts/test-deps.sh"))
                .status();
            eprintln!("ran scripts/test-deps.sh: {status:?}");
        });
    }
    assert!(
        present(),
        "the npm tools are not in {}: run `scripts/test-deps.sh` (installs Node.js and tests/tools)",
        tools.display()
    );
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `key`: how Meta signs a webhook
/// (`X-Hub-Signature-256`) and disparo its own (`X-Disparo-Signature`), written here from
/// their descriptions, independently of the code under test.
pub fn hmac_sha256_header(key: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}
