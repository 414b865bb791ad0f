//! `outbox`: appends each message as one JSON line to a file, so a campaign can be run end to
//! end, inspected and diffed without any provider.
//!
//! An append is all-or-nothing: the line goes out in one write, and when that fails (a full
//! disk, a file size limit) after writing part of it, the file is cut back to where the line
//! started, so the retry's line (or the next message's) is not joined to a fragment. A file
//! found not ending in a newline when it is opened (a line torn by a crash or by another
//! program) gets one before the first line appended, so that line stays whole too.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Outgoing;
use super::{Delivered, SendError};

#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl Outbox {
    pub fn new(path: impl Into<PathBuf>) -> Outbox {
        Outbox {
            path: path.into(),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn line(env: &Outgoing<'_>) -> serde_json::Value {
        serde_json::json!({
            "id": env.message_id,
            "campaign": env.campaign,
            "recipient": env.recipient,
            "channel": env.channel,
            "to": env.address,
            "locale": env.locale,
            "scheduled_at": env.scheduled_at.to_string(),
            "attempt": env.attempt,
            "sent_at": env.attempt_at.to_string(),
            "content": env.content,
        })
    }

    pub async fn send(&self, env: &Outgoing<'_>) -> Result<Delivered, SendError> {
        let mut line = serde_json::to_vec(&Self::line(env))
            .map_err(|e| SendError::permanent(format!("cannot encode message: {e}")))?;
        line.push(b'\n');
        let mut guard = self
            .file
            .lock()
            .map_err(|_| SendError::transient("outbox writer was poisoned"))?;
        let cannot = |what: &str, e: std::io::Error| {
            SendError::transient(format!("cannot {what} outbox {}: {e}", self.path.display()))
        };
        if guard.is_none() {
            let f = File::options()
                .create(true)
                .read(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| cannot("open", e))?;
            *guard = Some(f);
        }
        let file = guard
            .as_mut()
            .ok_or_else(|| SendError::transient("outbox not open"))?;
        // Where this line starts: appends always write at the end.
        let start = file
            .seek(SeekFrom::End(0))
            .map_err(|e| cannot("append to", e))?;
        if start > 0 && !ends_with_newline(file, start) {
            line.insert(0, b'\n');
        }
        if let Err(e) = file.write_all(&line) {
            // Part of the line may be there: cut it off (another program appending to the
            // same file at the same instant would lose its line too; disparo's own writers
            // share this lock).
            let undone = file.set_len(start).and_then(|()| file.sync_data());
            return Err(SendError::transient(match undone {
                Ok(()) => format!(
                    "cannot append to outbox {}: {e} (nothing of the line was kept)",
                    self.path.display()
                ),
                Err(e2) => format!(
                    "cannot append to outbox {}: {e}; and cannot remove the part written: {e2}",
                    self.path.display()
                ),
            }));
        }
        Ok(Delivered {
            provider_id: Some(format!("outbox-{}", env.message_id)),
        })
    }

    pub fn preview_request(&self, env: &Outgoing<'_>) -> serde_json::Value {
        serde_json::json!({ "append_to": self.path.display().to_string(), "line": Self::line(env) })
    }
}

/// Whether the file's last byte (of `len`) is a newline; read errors count as yes (nothing to
/// repair that can be seen).
fn ends_with_newline(file: &mut File, len: u64) -> bool {
    let mut last = [0u8; 1];
    let read = file
        .seek(SeekFrom::Start(len - 1))
        .and_then(|_| file.read_exact(&mut last));
    read.is_err() || last[0] == b'\n'
}
