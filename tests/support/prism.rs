//! Prism mocks of the providers' own OpenAPI descriptions (tests/fixtures/specs): peers that
//! nobody on the team wrote. Started with `--errors`, a mock answers 422 with the list of
//! violations for a request the description does not allow (a wrong field, a missing one, a
//! bad account SID, a missing credential → 401), and the description's example otherwise.
//!
//! One mock per description per test process, started on first use on a free port and stopped
//! when the process ends, even on a panic or a SIGKILL: a watchdog shell kills it once its stdin
//! (a pipe from this process) reaches EOF. The tools come from tests/tools (npm, pinned by its
//! lock file), installed by `scripts/test-deps.sh`, which this runs when they are missing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::manifest_dir;

/// A running mock: requests go to `base` (`http://127.0.0.1:PORT`).
pub struct Prism {
    pub base: String,
    log: PathBuf,
    _watchdog: Mutex<(Child, ChildStdin)>,
}

impl Prism {
    /// `base` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the mock printed so far (its request log), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Meta's WhatsApp Business Messaging API v23.0 (`/{Version}/{Phone-Number-ID}/messages`, …).
pub fn meta() -> &'static Prism {
    static MOCK: OnceLock<Prism> = OnceLock::new();
    MOCK.get_or_init(|| start("meta_business_messaging_api_v23.0.yaml"))
}

/// Twilio's 2010-04-01 REST API (`/2010-04-01/Accounts/{AccountSid}/Messages.json`, …).
pub fn twilio() -> &'static Prism {
    static MOCK: OnceLock<Prism> = OnceLock::new();
    MOCK.get_or_init(|| start("twilio_api_v2010.json"))
}

/// An account SID the Twilio description accepts (`^AC[0-9a-fA-F]{32}$`).
pub const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";

/// The answer a mock gives to a raw request, for tests that check a body outside an adapter.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends one HTTP/1.1 request to a mock and reads its whole answer.
pub fn request(
    mock: &Prism,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let addr = mock.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect to the Prism mock");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("read the mock's answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in the mock's answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Answer { status, body }
}

fn prism_bin() -> PathBuf {
    manifest_dir().join("tests/tools/node_modules/.bin/prism")
}

fn start(spec: &str) -> Prism {
    super::require_npm_tools();
    let spec_path = manifest_dir().join("tests/fixtures/specs").join(spec);
    // A port the kernel just gave out; released right before Prism binds it. Another
    // process could take it in between: then Prism fails to start and this retries.
    for _ in 0..3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let log =
            std::env::temp_dir().join(format!("disparo-prism-{}-{port}.log", std::process::id()));
        let script = format!(
            "{prism} mock --host 127.0.0.1 --port {port} --errors {spec} >{log} 2>&1 & p=$!; read _; kill $p 2>/dev/null; wait $p 2>/dev/null; rm -f {log}",
            prism = sh_quote(&prism_bin().display().to_string()),
            spec = sh_quote(&spec_path.display().to_string()),
            log = sh_quote(&log.display().to_string()),
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the Prism watchdog shell");
        let stdin = child.stdin.take().expect("the watchdog's stdin is piped");
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Prism is listening") {
                return Prism {
                    base: format!("http://127.0.0.1:{port}"),
                    log,
                    _watchdog: Mutex::new((child, stdin)),
                };
            }
            if text.contains("EADDRINUSE") || matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        drop(stdin);
        let _ = child.wait();
        if !text.contains("EADDRINUSE") {
            panic!("Prism did not start for {spec} within 90 s:\n{text}");
        }
    }
    panic!("Prism could not get a free port for {spec} in three tries");
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
