//! How follow-up messages come to exist, written once for every back end: `plan` stores a
//! follow-up campaign's rendered message per recipient as a *draft*; this module's
//! [`release_all`], run at the start of every `run` (and whenever it goes idle) and after
//! every `plan`, turns a draft into a message per parent message once the parent's facts
//! decide it — `pending` at the instant the condition names, placed by the follow-up's own
//! quiet hours and days on the recipient's clock, or `cancelled` with the reason it is not
//! needed. Its identity is (follow-up, recipient, parent occurrence), so a release done
//! twice, by two workers or after a crash, inserts it once. The decision is re-checked at
//! the moment of the send (`dispatch::facts`): a read arriving after the release withdraws
//! the message then.

use jiff::Timestamp;
use serde::Serialize;

use super::{DispatchRules, State};
use crate::follow_up::{Condition, FollowRule, ParentFacts, Verdict, judge};
use crate::schedule::{self, Reasons};

/// A follow-up campaign as [`release_all`] reads it.
pub(crate) struct FollowUpCampaign {
    pub id: i64,
    pub name: String,
    pub rules: String,
}

/// A parent message without a follow-up message yet, and the zone of the recipient's draft.
pub(crate) struct Undecided {
    pub parent: ParentFacts,
    pub zone: String,
    /// The draft's skip reason (`--skip-invalid`, suppressed at plan): released as skipped.
    pub skipped: Option<String>,
    /// A follow-up message judged not needed earlier, whose parent changed since (planned
    /// again and sent after being skipped or cancelled): judged again.
    pub existing: Option<i64>,
}

/// What becomes of one draft for one parent message.
pub(crate) struct Release<'a> {
    pub follow_up: i64,
    pub recipient: &'a str,
    pub occurrence: u32,
    pub state: State,
    pub due: Timestamp,
    pub reasons: &'a str,
    /// Why it is cancelled or skipped (`last_error`).
    pub note: Option<&'a str>,
    /// Judged again: this not-needed message is rewritten instead of a new one inserted.
    pub existing: Option<i64>,
}

/// The statements a store runs for a release, inside one write transaction.
pub(crate) trait FollowUpTx {
    type Error;
    /// Active campaigns whose rules have `follows`.
    fn follow_up_campaigns(&mut self) -> Result<Vec<FollowUpCampaign>, Self::Error>;
    fn campaign_id(&mut self, name: &str) -> Result<Option<i64>, Self::Error>;
    /// Messages of `parent` no longer pending or sending whose recipient has a draft of
    /// `follow_up` and which have no follow-up message yet (or one judged not needed before
    /// the parent last changed); of those still sent, only the
    /// ones settled at or before `ripe` or for which `early` (an SQL condition on the
    /// `delivery` row `dl`, from [`early`]) holds: the others cannot be decided yet.
    fn undecided(
        &mut self,
        follow_up: i64,
        parent: i64,
        ripe: Timestamp,
        early: &'static str,
    ) -> Result<Vec<Undecided>, Self::Error>;
    /// Inserts the follow-up message from the recipient's draft (or rewrites `existing`
    /// from it, if still not needed); `false` when it exists (or changed meanwhile).
    fn insert(&mut self, r: &Release<'_>, now: Timestamp) -> Result<bool, Self::Error>;
    fn bump_gate(&mut self) -> Result<(), Self::Error>;
}

/// What one release did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReleaseStats {
    /// Follow-up messages made pending.
    pub released: u64,
    /// Follow-up messages recorded as not needed (cancelled with the reason).
    pub not_needed: u64,
    /// Parent messages looked at and not decidable yet.
    pub waiting: u64,
}

/// The earliest instant a parent settled at `ripe` or before can be judged by `rule` (only
/// these are read, with any that has a receipt beyond `sent`).
fn ripe(rule: &FollowRule, now: Timestamp) -> Timestamp {
    let wait = if rule.when.is_absence() {
        rule.after()
    } else if rule.when.awaits_receipt() {
        rule.within()
    } else {
        jiff::SignedDuration::ZERO
    };
    now.checked_sub(wait).unwrap_or(Timestamp::MIN)
}

/// The receipts that decide a sent parent before `ripe`, as an SQL condition on its
/// `delivery` row `dl` (the same columns on every store): only these are worth reading early,
/// so that a release while many parents are inside their window reads none of them.
pub(crate) fn early(when: Condition) -> &'static str {
    match when {
        // Decided at the send.
        Condition::Sent => "TRUE",
        Condition::Read | Condition::NotRead => "dl.read_at IS NOT NULL",
        Condition::NotDelivered => "(dl.delivered_at IS NOT NULL OR dl.read_at IS NOT NULL)",
        Condition::Delivered | Condition::Failed => {
            "(dl.delivered_at IS NOT NULL OR dl.read_at IS NOT NULL OR dl.failed_at IS NOT NULL OR dl.bounced_at IS NOT NULL)"
        }
    }
}

/// Releases every follow-up whose parent's facts decide it at `now`; the caller commits.
pub(crate) fn release_all<T: FollowUpTx>(
    tx: &mut T,
    now: Timestamp,
) -> Result<ReleaseStats, T::Error> {
    let mut stats = ReleaseStats::default();
    for c in tx.follow_up_campaigns()? {
        let Ok(rules) = serde_json::from_str::<DispatchRules>(&c.rules) else {
            // Dispatch pauses a campaign whose rules it cannot read; nothing to release.
            continue;
        };
        let Some(rule) = rules.follows.clone() else {
            continue;
        };
        let Some(parent) = tx.campaign_id(&rule.parent)? else {
            continue;
        };
        let window = match crate::dispatch::window_of(&rules) {
            Ok(w) => w,
            Err(why) => {
                tracing::error!(
                    campaign = c.name,
                    "stored rules unreadable ({why}): follow-ups not released"
                );
                continue;
            }
        };
        for u in tx.undecided(c.id, parent, ripe(&rule, now), early(rule.when))? {
            let verdict = judge(&rule, &u.parent, now);
            let (state, due, reasons, note) = match verdict {
                Verdict::Due { .. } if u.skipped.is_some() => {
                    (State::Skipped, now, String::new(), u.skipped.clone())
                }
                Verdict::Wait { .. } => {
                    stats.waiting += 1;
                    continue;
                }
                Verdict::NotNeeded { why } => (
                    State::Cancelled,
                    now,
                    String::new(),
                    Some(format!("not needed: {why}")),
                ),
                Verdict::Due { at, .. } => {
                    let tz = schedule::zone(&u.zone).unwrap_or(jiff::tz::TimeZone::UTC);
                    match schedule::place_asap(&tz, &window, at) {
                        Some(p) => (State::Pending, p.at, reasons_text(p.reasons), None),
                        None => (
                            State::Skipped,
                            at,
                            String::new(),
                            Some("no allowed time: the follow-up's days and blackout dates leave none within 400 days".to_string()),
                        ),
                    }
                }
            };
            let inserted = tx.insert(
                &Release {
                    follow_up: c.id,
                    recipient: &u.parent.recipient,
                    occurrence: u.parent.occurrence,
                    state,
                    due,
                    reasons: &reasons,
                    note: note.as_deref(),
                    existing: u.existing,
                },
                now,
            )?;
            // Judged not needed again: the same message, not counted twice.
            if inserted && !(u.existing.is_some() && state != State::Pending) {
                // A skipped one (suppressed at plan, no allowed time) is neither: status
                // counts it with the campaign's skipped, not as not needed.
                match state {
                    State::Pending => stats.released += 1,
                    State::Cancelled => stats.not_needed += 1,
                    _ => {}
                }
            }
        }
    }
    if stats.released + stats.not_needed > 0 {
        tx.bump_gate()?;
    }
    Ok(stats)
}

fn reasons_text(r: Reasons) -> String {
    r.names().collect::<Vec<_>>().join(",")
}
