//! `outbox`: appends each message as one JSON line to a file, so a campaign can be run end to
//! end, inspected and diffed without any provider.

use std::fs::File;
use std::io::Write;
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
        if guard.is_none() {
            let f = File::options()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| {
                    SendError::transient(format!("cannot open outbox {}: {e}", self.path.display()))
                })?;
            *guard = Some(f);
        }
        let file = guard
            .as_mut()
            .ok_or_else(|| SendError::transient("outbox not open"))?;
        file.write_all(&line).map_err(|e| {
            SendError::transient(format!(
                "cannot append to outbox {}: {e}",
                self.path.display()
            ))
        })?;
        Ok(Delivered {
            provider_id: Some(format!("outbox-{}", env.message_id)),
        })
    }

    pub fn preview_request(&self, env: &Outgoing<'_>) -> serde_json::Value {
        serde_json::json!({ "append_to": self.path.display().to_string(), "line": Self::line(env) })
    }
}
