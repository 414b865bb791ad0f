//! What one outcome writes, and the words of a lost lease: the same in every store.

use jiff::Timestamp;

use std::collections::HashSet;

use super::{Completion, Outcome, State};

/// A lease lost this many times (its run died holding it each time) fails the message: it
/// probably kills the run.
pub(crate) const MAX_LEASE_LOSSES: i64 = 5;

/// The error of a message taken over from a run that had started sending it.
pub(crate) fn lease_lost(holder: &str) -> String {
    format!(
        "the run {holder} was sending it when it stopped renewing its lease (crashed or killed?); it may or may not have reached the provider, so it is sent again with the same idempotency key"
    )
}

/// The reason a message whose runs keep dying while sending it fails.
pub(crate) fn gave_up(losses: i64, holder: &str) -> String {
    format!(
        "failed: the run sending it died {losses} times while holding it (the last: {holder}); look for what kills `disparo run` on this message, then re-plan it"
    )
}

/// The columns one outcome writes.
pub(crate) struct RecordedOutcome<'a> {
    pub(crate) state: State,
    pub(crate) due: Option<Timestamp>,
    pub(crate) provider: Option<&'a str>,
    pub(crate) error: Option<&'a str>,
    pub(crate) outcome: &'static str,
    pub(crate) code: Option<&'a str>,
}

impl<'a> RecordedOutcome<'a> {
    pub(crate) fn of(o: &'a Outcome) -> RecordedOutcome<'a> {
        let r = |state, due, provider, error, outcome, code| RecordedOutcome {
            state,
            due,
            provider,
            error,
            outcome,
            code,
        };
        match o {
            Outcome::Sent { provider_id } => r(
                State::Sent,
                None,
                provider_id.as_deref(),
                None,
                "sent",
                None,
            ),
            Outcome::Retry {
                due_at,
                code,
                error,
            } => r(
                State::Pending,
                Some(*due_at),
                None,
                Some(error.as_str()),
                "retry",
                code.as_deref(),
            ),
            Outcome::Failed { code, error } => r(
                State::Failed,
                None,
                None,
                Some(error.as_str()),
                "failed",
                code.as_deref(),
            ),
            Outcome::Refused { code, error, .. } => r(
                State::Failed,
                None,
                None,
                Some(error.as_str()),
                "refused",
                code.as_deref(),
            ),
            Outcome::Deferred { due_at, .. } => {
                r(State::Pending, Some(*due_at), None, None, "deferred", None)
            }
            Outcome::Expired { reason } => r(
                State::Expired,
                None,
                None,
                Some(reason.as_str()),
                "expired",
                None,
            ),
            Outcome::Skipped { reason } => r(
                State::Skipped,
                None,
                None,
                Some(reason.as_str()),
                "skipped",
                None,
            ),
            Outcome::Released => r(State::Pending, None, None, None, "released", None),
            // Never recorded as an outcome (see `complete_in`).
            Outcome::Started => r(State::Sending, None, None, None, "started", None),
            Outcome::Cancelled { reason } => r(
                State::Cancelled,
                None,
                None,
                Some(reason.as_str()),
                "cancelled",
                None,
            ),
        }
    }
}

/// The completions to record for the messages still `held` (the others' leases were taken
/// over: their new holder's outcome wins), and the held messages whose send started and has
/// no outcome in this batch (to be marked "started by me").
pub(crate) fn split<'c>(
    completions: &'c [Completion],
    held: &HashSet<i64>,
) -> (Vec<&'c Completion>, Vec<i64>) {
    let finals = || completions.iter().filter(|c| c.outcome.is_final());
    let mine = finals().filter(|c| held.contains(&c.id)).collect();
    let done: HashSet<i64> = finals().map(|c| c.id).collect();
    let started = completions
        .iter()
        .filter(|c| !c.outcome.is_final() && held.contains(&c.id) && !done.contains(&c.id))
        .map(|c| c.id)
        .collect();
    (mine, started)
}
