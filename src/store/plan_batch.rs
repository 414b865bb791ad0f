//! Planned messages on their way to [`super::Store::save_plan`], packed for a fast hand-over.
//!
//! `plan` renders on one thread while the store writes on another. A message as separate
//! `String`s cost the writer a cache miss per string it copied and a cross-thread `free` per
//! string it dropped (a third of the writer's time outside SQLite, on 1M messages). A
//! [`PlanBatch`] keeps the text of a few hundred messages in one buffer, read front to back,
//! and goes back to the planning thread to be refilled: after the first few batches nothing
//! is allocated or freed per message on either side.

use std::ops::Range;

use jiff::Timestamp;

/// One planned message as the store reads it, borrowed from wherever it was packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    pub recipient: &'a str,
    pub occurrence: u32,
    pub address: &'a str,
    pub zone: &'a str,
    pub locale: Option<&'a str>,
    pub at: Timestamp,
    /// Comma-separated reasons it moved (`quiet_hours,weekday`).
    pub reasons: &'a str,
    /// The rendered content as JSON text, and the template variables as a JSON object.
    pub content: &'a str,
    pub vars: &'a str,
    /// `Some(reason)` to store it as `skipped` (suppressed, invalid with `--skip-invalid`).
    pub skipped: Option<&'a str>,
}

/// Where [`super::Store::save_plan`] reads a campaign's messages from, one at a time. An
/// `Err` stops the plan and rolls everything back (with the text as the reason).
pub trait PlanSource {
    fn next_message(&mut self) -> Option<Result<MessageRef<'_>, String>>;
}

/// The text fields of one packed message, as ranges of [`PlanBatch`]'s buffer.
#[derive(Debug, Clone)]
struct Packed {
    recipient: Range<usize>,
    address: Range<usize>,
    zone: Range<usize>,
    locale: Option<Range<usize>>,
    reasons: Range<usize>,
    content: Range<usize>,
    vars: Range<usize>,
    skipped: Option<Range<usize>>,
    occurrence: u32,
    at: Timestamp,
}

/// A batch of planned messages with all their text in one buffer. Reuse it with
/// [`PlanBatch::clear`]: the buffers keep their capacity.
#[derive(Debug, Default, Clone)]
pub struct PlanBatch {
    text: String,
    rows: Vec<Packed>,
    /// Where [`RowWriter::json`] serializes before copying into `text`.
    scratch: Vec<u8>,
}

/// Writes one message's fields into a [`PlanBatch`]; see [`PlanBatch::push_with`].
pub struct RowWriter<'b> {
    text: &'b mut String,
    scratch: &'b mut Vec<u8>,
}

impl RowWriter<'_> {
    /// Appends `s` as the next field.
    pub fn str(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    /// Appends the pieces, joined by `sep`, as the next field.
    pub fn join<'s>(
        &mut self,
        pieces: impl IntoIterator<Item = &'s str>,
        sep: &str,
    ) -> Range<usize> {
        let start = self.text.len();
        for (i, p) in pieces.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(sep);
            }
            self.text.push_str(p);
        }
        start..self.text.len()
    }

    /// Appends the JSON text of `v` as the next field. serde_json writes small pieces (a
    /// quote, a colon): they go to a byte buffer, then into the text as one checked copy.
    pub fn json(&mut self, v: &impl serde::Serialize) -> Result<Range<usize>, serde_json::Error> {
        self.scratch.clear();
        serde_json::to_writer(&mut *self.scratch, v)?;
        let json = std::str::from_utf8(self.scratch).map_err(|e| {
            serde_json::Error::io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })?;
        let start = self.text.len();
        self.text.push_str(json);
        Ok(start..self.text.len())
    }
}

/// The text fields of a message being packed, in [`RowWriter`] ranges.
pub struct PackedText {
    pub recipient: Range<usize>,
    pub address: Range<usize>,
    pub zone: Range<usize>,
    pub locale: Option<Range<usize>>,
    pub reasons: Range<usize>,
    pub content: Range<usize>,
    pub vars: Range<usize>,
    pub skipped: Option<Range<usize>>,
}

impl PlanBatch {
    pub fn with_capacity(rows: usize, text_bytes: usize) -> PlanBatch {
        PlanBatch {
            text: String::with_capacity(text_bytes),
            rows: Vec::with_capacity(rows),
            scratch: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }

    /// Packs a message whose text fields `write` appends through a [`RowWriter`], in any
    /// order, returning their ranges. If `write` fails, the batch is left as it was.
    pub fn push_with<E>(
        &mut self,
        occurrence: u32,
        at: Timestamp,
        write: impl FnOnce(&mut RowWriter<'_>) -> Result<PackedText, E>,
    ) -> Result<(), E> {
        let mark = self.text.len();
        let mut w = RowWriter {
            text: &mut self.text,
            scratch: &mut self.scratch,
        };
        match write(&mut w) {
            Ok(t) => {
                self.rows.push(Packed {
                    recipient: t.recipient,
                    address: t.address,
                    zone: t.zone,
                    locale: t.locale,
                    reasons: t.reasons,
                    content: t.content,
                    vars: t.vars,
                    skipped: t.skipped,
                    occurrence,
                    at,
                });
                Ok(())
            }
            Err(e) => {
                self.text.truncate(mark);
                Err(e)
            }
        }
    }

    /// Packs a copy of `m`.
    pub fn push(&mut self, m: MessageRef<'_>) {
        let packed: Result<(), std::convert::Infallible> =
            self.push_with(m.occurrence, m.at, |w| {
                Ok(PackedText {
                    recipient: w.str(m.recipient),
                    address: w.str(m.address),
                    zone: w.str(m.zone),
                    locale: m.locale.map(|l| w.str(l)),
                    reasons: w.str(m.reasons),
                    content: w.str(m.content),
                    vars: w.str(m.vars),
                    skipped: m.skipped.map(|s| w.str(s)),
                })
            });
        let Ok(()) = packed;
    }

    /// The `i`th message packed, if there is one.
    pub fn get(&self, i: usize) -> Option<MessageRef<'_>> {
        let p = self.rows.get(i)?;
        let t = |r: &Range<usize>| &self.text[r.clone()];
        Some(MessageRef {
            recipient: t(&p.recipient),
            occurrence: p.occurrence,
            address: t(&p.address),
            zone: t(&p.zone),
            locale: p.locale.as_ref().map(t),
            at: p.at,
            reasons: t(&p.reasons),
            content: t(&p.content),
            vars: t(&p.vars),
            skipped: p.skipped.as_ref().map(t),
        })
    }

    /// Every message packed, in order.
    pub fn iter(&self) -> impl Iterator<Item = MessageRef<'_>> {
        (0..self.rows.len()).filter_map(|i| self.get(i))
    }
}

/// Reads a whole [`PlanBatch`] as a [`PlanSource`] (small plans, tests).
pub struct BatchSource<'b> {
    batch: &'b PlanBatch,
    next: usize,
}

impl<'b> BatchSource<'b> {
    pub fn new(batch: &'b PlanBatch) -> BatchSource<'b> {
        BatchSource { batch, next: 0 }
    }
}

impl PlanSource for BatchSource<'_> {
    fn next_message(&mut self) -> Option<Result<MessageRef<'_>, String>> {
        let m = self.batch.get(self.next)?;
        self.next += 1;
        Some(Ok(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<'a>(recipient: &'a str, skipped: Option<&'a str>) -> MessageRef<'a> {
        MessageRef {
            recipient,
            occurrence: 2,
            address: "+5511999990000",
            zone: "America/Sao_Paulo",
            locale: Some("pt-BR"),
            at: Timestamp::from_second(1_795_784_400).unwrap(),
            reasons: "quiet_hours",
            content: r#"{"body":"Olá"}"#,
            vars: r#"{"first_name":"Ana"}"#,
            skipped,
        }
    }

    #[test]
    fn packed_messages_read_back_as_they_were_given_and_clear_keeps_capacity() {
        let mut b = PlanBatch::default();
        b.push(message("c1", None));
        b.push(message("c2", Some("suppressed")));
        assert_eq!(b.len(), 2);
        assert_eq!(b.get(0), Some(message("c1", None)));
        assert_eq!(b.get(1), Some(message("c2", Some("suppressed"))));
        assert_eq!(b.get(2), None);
        let capacity = b.text.capacity();
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.text.capacity(), capacity);
        let mut source = BatchSource::new(&b);
        assert!(source.next_message().is_none());
    }

    #[test]
    fn json_fields_are_written_in_place_and_a_failed_row_leaves_nothing() {
        let mut b = PlanBatch::default();
        b.push(message("c1", None));
        let before = b.text.len();
        let failed: Result<(), &str> = b.push_with(0, Timestamp::UNIX_EPOCH, |w| {
            w.str("c2");
            Err("render failed")
        });
        assert_eq!(failed, Err("render failed"));
        assert_eq!((b.len(), b.text.len()), (1, before));
        b.push_with::<serde_json::Error>(0, Timestamp::UNIX_EPOCH, |w| {
            Ok(PackedText {
                recipient: w.str("c3"),
                address: w.str("a@example.com"),
                zone: w.str("UTC"),
                locale: None,
                reasons: w.join(["quiet_hours", "weekday"], ","),
                content: w.json(&serde_json::json!({"body": "Oi \"Zé\"\n"}))?,
                vars: w.json(&serde_json::json!({"nome": "Zé"}))?,
                skipped: None,
            })
        })
        .unwrap();
        let m = b.get(1).unwrap();
        assert_eq!(m.reasons, "quiet_hours,weekday");
        assert_eq!(m.content, r#"{"body":"Oi \"Zé\"\n"}"#);
        assert_eq!(m.vars, r#"{"nome":"Zé"}"#);
        assert_eq!(m.locale, None);
        let mut source = BatchSource::new(&b);
        let first = source.next_message().unwrap().unwrap().recipient.to_owned();
        let second = source.next_message().unwrap().unwrap().recipient.to_owned();
        assert_eq!((first.as_str(), second.as_str()), ("c1", "c3"));
    }
}
