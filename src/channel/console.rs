//! `console`: prints each message to standard output, for trying a campaign out.

use std::io::Write;

use super::Outgoing;
use super::{Delivered, SendError};
use crate::inert::{inert, inert_text};

/// Error code of a send that found standard output closed (`disparo run | head`): the run
/// stops and gives the message back instead of counting it as a failure.
pub const STDOUT_CLOSED: &str = "stdout_closed";

#[derive(Debug, Default)]
pub struct Console;

impl Console {
    pub async fn send(&self, env: &Outgoing<'_>) -> Result<Delivered, SendError> {
        let mut out = std::io::stdout().lock();
        // Recipient data is shown inert: an escape sequence in a name must not drive the
        // terminal (docs/output.md).
        let mut text = format!(
            "── {} → {} ({}) · {}\n",
            inert(env.campaign),
            inert(env.recipient),
            inert(env.address),
            env.scheduled_at
        );
        if let Some(subject) = &env.content.subject {
            text.push_str(&format!("Subject: {}\n", inert(subject)));
        }
        if let Some(wa) = &env.content.whatsapp {
            text.push_str(&format!(
                "[template {} ({}) params: {}]\n",
                inert(&wa.name),
                inert(&wa.language),
                inert(&wa.body.join(" | "))
            ));
        }
        text.push_str(&inert_text(&env.content.body));
        if !text.ends_with('\n') {
            text.push('\n');
        }
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| {
                let mut err = SendError::transient(format!("cannot write to standard output: {e}"));
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    err.code = Some(STDOUT_CLOSED.into());
                }
                err
            })?;
        Ok(Delivered {
            provider_id: Some(format!("console-{}", env.message_id)),
        })
    }

    pub fn preview_request(&self, env: &Outgoing<'_>) -> serde_json::Value {
        serde_json::json!({ "stdout": env.content.body })
    }
}
