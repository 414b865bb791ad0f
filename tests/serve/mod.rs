//! `disparo serve` end to end: the real binary on 127.0.0.1, called with the providers'
//! documented payloads (tests/fixtures/receipts), signed as they sign them.

mod load;
mod twilio;
mod unsubscribe;
mod webhook;
pub mod whatsapp;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::Project;

/// A running `disparo serve`, stopped (SIGTERM) when dropped.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `disparo serve --listen 127.0.0.1:0 ARGS...` in the project and waits for it to
    /// say where it listens.
    pub fn start(p: &Project, args: &[&str]) -> Server {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut child = p
            .command(&all)
            .env("DISPARO_LOG", "disparo=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start disparo serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1)
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(addr.split_whitespace().next().unwrap_or("").to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "disparo serve did not start: {:?}\n{}",
                    out.status,
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            child: Some(child),
            base,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGKILL: the server dies at once, as in a crash.
    pub fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit; returns the exit code and the log.
    pub fn stop(mut self) -> (i32, String) {
        let mut child = self.child.take().unwrap();
        terminate(&child);
        let status = child.wait().unwrap();
        // The reader thread drains the pipe until the process is gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !self.log().contains("disparo serve: stopped") {
            std::thread::sleep(Duration::from_millis(20));
        }
        (status.code().unwrap_or(-1), self.log())
    }
}

fn terminate(child: &Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&c);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A fixture from tests/fixtures/receipts.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        crate::support::manifest_dir()
            .join("tests/fixtures/receipts")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Rows of a query on the project's SQLite database (what is really stored).
pub fn count(p: &Project, sql: &str) -> i64 {
    let db = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `sha256=<hex>` of `body` under `secret`, as Meta signs a webhook.
pub fn meta_signature(secret: &str, body: &[u8]) -> String {
    crate::support::hmac_sha256_header(secret.as_bytes(), body)
}
