//! `command`: hands each message to any program.
//!
//! Protocol, one process per message:
//! - stdin: one JSON object, the same document the webhook posts (`id`, `campaign`,
//!   `recipient`, `channel`, `to`, `locale`, `body`, `subject`, `vars`, `scheduled_at`,
//!   `attempt`, `attempt_at`, ...), then end of file;
//! - stdout: optionally one JSON object `{"id": "...", "error": "...", "retry": bool,
//!   "retry_after": seconds}` (every field optional; anything else on stdout is ignored);
//! - exit status: 0 = sent (`id` is the provider id); [`EXIT_TEMPFAIL`] (75, `EX_TEMPFAIL`
//!   from sysexits.h), or any non-zero status with `"retry": true`, = transient; any other
//!   non-zero status = permanent; killed by a signal = transient.
//! - A program still running after `timeout` (default 30 s) is killed and the attempt is
//!   transient.
//!
//! The program runs in the project root with the run's environment (that is how it gets its
//! secrets); nothing secret is ever put on its command line. Its stderr is inherited.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Outgoing;
use super::{
    BuildContext, ChannelBuildError, CommandConfig, Delivered, ErrorClass, MessageDoc, SendError,
};

/// The exit status a program uses to say "try again later".
pub const EXIT_TEMPFAIL: i32 = 75;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a program killed at its timeout is waited for.
const KILL_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Command {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
    timeout: Duration,
}

#[derive(Deserialize, Default)]
struct Outcome {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    retry: Option<bool>,
    #[serde(default)]
    retry_after: Option<f64>,
}

impl Command {
    pub(crate) fn build(
        name: &str,
        c: &CommandConfig,
        ctx: &BuildContext,
    ) -> Result<Command, ChannelBuildError> {
        if c.program.trim().is_empty() {
            return Err(ChannelBuildError::invalid(name, "`program` is empty"));
        }
        // A bare name is looked up on PATH; anything with a slash is a path from the root.
        let program = if c.program.contains('/') {
            ctx.resolve(std::path::Path::new(&c.program))
        } else {
            PathBuf::from(&c.program)
        };
        if c.program.contains('/') && !program.is_file() {
            return Err(ChannelBuildError::invalid(
                name,
                format!(
                    "`program: {}`: no such file ({})",
                    c.program,
                    program.display()
                ),
            ));
        }
        Ok(Command {
            name: name.into(),
            program,
            args: c.args.clone(),
            cwd: ctx.root.clone(),
            timeout: c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.to_std()),
        })
    }

    pub async fn send(&self, env: &Outgoing<'_>) -> Result<Delivered, SendError> {
        let input = serde_json::to_vec(&MessageDoc::new(env))
            .map_err(|e| SendError::permanent(format!("cannot encode the message: {e}")))?;
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                SendError::breaker(format!(
                    "channel `{}`: cannot start {}: {e}",
                    self.name,
                    self.program.display()
                ))
                .with_code("spawn")
            })?;
        let mut stdin = child.stdin.take();
        let mut stdout = child.stdout.take();
        // The exit status decides, not the end of stdout: a child the program left behind may
        // hold stdout open long after the program exited 0. Stdout is read meanwhile (its last
        // MAX_STDOUT bytes kept, the rest read and dropped, so a chatty program never blocks
        // on a full pipe), and after the exit only what is already there is taken.
        let mut out = Tail::default();
        let io = async {
            let write = async {
                if let Some(mut s) = stdin.take() {
                    // A program that exits without reading its input is not an error.
                    let _ = s.write_all(&input).await;
                    let _ = s.shutdown().await;
                }
            };
            let exit = async { tokio::join!(child.wait(), write).0 };
            tokio::pin!(exit);
            let mut chunk = vec![0u8; 16 * 1024];
            let mut open = stdout.is_some();
            let status = loop {
                tokio::select! {
                    status = &mut exit => break status,
                    n = read_some(&mut stdout, &mut chunk), if open => match n {
                        Some(n) => out.push(&chunk[..n]),
                        None => open = false,
                    },
                }
            };
            // What the program wrote before it exited is in the pipe already.
            if open {
                let drain = async {
                    while let Some(n) = read_some(&mut stdout, &mut chunk).await {
                        out.push(&chunk[..n]);
                    }
                };
                let _ = tokio::time::timeout(DRAIN, drain).await;
            }
            status
        };
        let status = match tokio::time::timeout(self.timeout, io).await {
            Ok(status) => status,
            Err(_) => {
                let _ = tokio::time::timeout(KILL_WAIT, child.kill()).await;
                return Err(SendError::transient(format!(
                    "channel `{}`: {} did not finish within {:?} and was killed",
                    self.name,
                    self.program.display(),
                    self.timeout
                ))
                .with_code("timeout"));
            }
        };
        let out = out.bytes;
        let status = status.map_err(|e| {
            SendError::transient(format!(
                "channel `{}`: waiting for the program: {e}",
                self.name
            ))
        })?;
        let outcome = parse_outcome(&out);
        let id = outcome.id.as_ref().and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let Some(exit) = status.code() else {
            return Err(SendError::transient(format!(
                "channel `{}`: {} was killed by a signal",
                self.name,
                self.program.display()
            ))
            .with_code("signal"));
        };
        if exit == 0 {
            return Ok(Delivered { provider_id: id });
        }
        let retry_after = outcome.retry_after.and_then(super::retry_after_secs);
        let class = if exit == EXIT_TEMPFAIL || outcome.retry == Some(true) {
            ErrorClass::Transient { retry_after }
        } else {
            ErrorClass::Permanent
        };
        let detail = outcome.error.unwrap_or_else(|| "no error message".into());
        Err(SendError {
            class,
            code: Some(format!("exit {exit}")),
            message: format!(
                "channel `{}`: {} exited with status {exit}: {detail}",
                self.name,
                self.program.display()
            ),
        })
    }

    /// The longest one send takes: the program's `timeout`, then its kill.
    pub fn send_timeout(&self) -> Duration {
        self.timeout + KILL_WAIT
    }

    pub fn preview_request(&self, env: &Outgoing<'_>) -> serde_json::Value {
        serde_json::json!({
            "program": self.program.display().to_string(),
            "args": self.args,
            "timeout_seconds": self.timeout.as_secs_f64(),
            "stdin": serde_json::to_value(MessageDoc::new(env)).unwrap_or_default(),
        })
    }
}

/// The most of a program's stdout that is kept (its end: the outcome is the last line).
const MAX_STDOUT: usize = 64 * 1024;
/// How long, after the program exited, stdout is read for what it wrote before (a child it
/// left behind may keep writing).
const DRAIN: Duration = Duration::from_millis(100);

/// The last [`MAX_STDOUT`] bytes written.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        if data.len() >= MAX_STDOUT {
            self.bytes.clear();
            self.bytes
                .extend_from_slice(&data[data.len() - MAX_STDOUT..]);
            return;
        }
        let over = (self.bytes.len() + data.len()).saturating_sub(MAX_STDOUT);
        self.bytes.drain(..over);
        self.bytes.extend_from_slice(data);
    }
}

/// Reads what is there; `None` at the end of the stream (or on an error, or without one).
async fn read_some(s: &mut Option<tokio::process::ChildStdout>, buf: &mut [u8]) -> Option<usize> {
    match s.as_mut()?.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// The last line of stdout that is a JSON object, if any.
fn parse_outcome(out: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(out);
    if let Ok(o) = serde_json::from_str::<Outcome>(text.trim()) {
        return o;
    }
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Outcome>(l.trim()).ok())
        .unwrap_or_default()
}
