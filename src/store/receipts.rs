//! How a batch of receipts is applied, written once for every back end: each store provides
//! the few statements ([`ReceiptTx`]) inside one of its transactions, and this module decides
//! what they do — an event stored once, a delivery status that never moves backwards, opt-outs
//! and hard bounces suppressing the address, WhatsApp's per-user limit sending again later.

use jiff::{SignedDuration, Timestamp};

use super::message_key;
use crate::receipt::{Applied, CallbackRef, Effect, Event, Receipt};

/// A message a receipt names, as the store knows it.
#[derive(Debug, Clone)]
pub(crate) struct MessageFacts {
    pub id: i64,
    pub campaign_id: i64,
    pub campaign: String,
    pub recipient: String,
    pub occurrence: u32,
    pub address: String,
    /// The queue state (`sent`, `sending`, ...).
    pub state: String,
}

/// A receipt stored earlier without its message, read back to try matching it again.
#[derive(Debug, Clone)]
pub(crate) struct Unmatched {
    pub id: i64,
    pub source: String,
    pub provider_id: Option<String>,
    pub reference: Option<String>,
    pub event: String,
    pub code: Option<String>,
    pub occurred_at: Timestamp,
    pub effect: String,
}

/// One change to a message's delivery row.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryChange<'a> {
    pub message_id: i64,
    pub campaign_id: i64,
    /// New status and rank, or `None` to leave them (an event off the ladder).
    pub status: Option<(&'static str, u8)>,
    pub code: Option<&'a str>,
    /// The instant column this event sets if still empty (`delivered_at`, `read_at`, ...).
    pub column: Option<&'static str>,
    pub at: Timestamp,
    pub soft_bounce: bool,
    pub now: Timestamp,
}

/// The statements a store runs for receipts, inside one transaction.
pub(crate) trait ReceiptTx {
    type Error;
    /// Stores the receipt, matched to `message_id` (or none) and `applied` or not; `None`
    /// when (source, dedupe) is already stored.
    fn insert_receipt(
        &mut self,
        r: &Receipt,
        message_id: Option<i64>,
        applied: bool,
        now: Timestamp,
    ) -> Result<Option<i64>, Self::Error>;
    fn message_by_id(&mut self, id: i64) -> Result<Option<MessageFacts>, Self::Error>;
    fn message_by_provider_id(&mut self, id: &str) -> Result<Option<MessageFacts>, Self::Error>;
    /// The recipient's latest message of the campaign (highest occurrence).
    fn latest_message(
        &mut self,
        campaign: &str,
        recipient: &str,
    ) -> Result<Option<MessageFacts>, Self::Error>;
    /// The message's delivery rank, `None` without a delivery row.
    fn delivery_rank(&mut self, message_id: i64) -> Result<Option<u8>, Self::Error>;
    fn write_delivery(&mut self, change: &DeliveryChange<'_>) -> Result<(), Self::Error>;
    /// Marks the receipt matched to `message_id` (or none) and applied.
    fn set_matched(
        &mut self,
        receipt_id: i64,
        message_id: Option<i64>,
        applied: bool,
    ) -> Result<(), Self::Error>;
    /// Adds the address to the suppression list; whether it was not on it.
    fn suppress(
        &mut self,
        address: &str,
        reason: &str,
        source: &str,
        now: Timestamp,
    ) -> Result<bool, Self::Error>;
    /// Removes the address's suppression if `source` put it there.
    fn unsuppress(&mut self, address: &str, source: &str) -> Result<bool, Self::Error>;
    /// A sent message back to pending at `due_at` with `note` as its last error, its delivery
    /// row cleared (the next send starts the ladder again); whether it was `sent`.
    fn resend(
        &mut self,
        message_id: i64,
        due_at: Timestamp,
        note: &str,
    ) -> Result<bool, Self::Error>;
    /// Receipts stored without a message since `since`, oldest first.
    fn unmatched_since(&mut self, since: Timestamp) -> Result<Vec<Unmatched>, Self::Error>;
    fn bump_gate(&mut self) -> Result<(), Self::Error>;
    /// The stored rules (JSON) of the active campaigns that follow another one.
    fn follow_up_rules(&mut self) -> Result<Vec<String>, Self::Error>;
}

/// The campaigns that active follow-ups follow, read once per batch when first needed: a
/// receipt moving one of their messages must move the gate, so that a run holding a
/// follow-up of it judges it again before sending (a read cancels a `not_read` SMS).
struct Followed(Option<std::collections::HashSet<String>>);

impl Followed {
    fn contains<T: ReceiptTx>(&mut self, tx: &mut T, campaign: &str) -> Result<bool, T::Error> {
        if self.0.is_none() {
            let names = tx
                .follow_up_rules()?
                .iter()
                .filter_map(|r| serde_json::from_str::<super::DispatchRules>(r).ok())
                .filter_map(|r| r.follows.map(|f| f.parent))
                .collect();
            self.0 = Some(names);
        }
        Ok(self.0.as_ref().is_some_and(|n| n.contains(campaign)))
    }
}

/// Applies `receipts` in order; the caller commits. Returns what became of each.
pub(crate) fn apply_all<T: ReceiptTx>(
    tx: &mut T,
    receipts: &[Receipt],
    now: Timestamp,
) -> Result<Vec<Applied>, T::Error> {
    let mut out = Vec::with_capacity(receipts.len());
    let mut gate = false;
    let mut followed = Followed(None);
    for r in receipts {
        let message = find(tx, r)?;
        // Worth matching later only if it names a message; an address-only event (an
        // opt-out, a bounce of no message of ours) is done.
        let later =
            message.is_none() && (r.target.provider_id.is_some() || r.target.reference.is_some());
        if tx
            .insert_receipt(r, message.as_ref().map(|m| m.id), !later, now)?
            .is_none()
        {
            out.push(Applied::Duplicate);
            continue;
        }
        let address = r
            .target
            .address
            .clone()
            .or_else(|| message.as_ref().map(|m| m.address.clone()));
        // Effects on the address do not wait for the message: a STOP from a number we never
        // messaged is still a STOP.
        if let Some(address) = &address {
            gate |= address_effect(tx, r, address, now)?;
        }
        let outcome = match &message {
            Some(m) => {
                let moved = ladder(tx, m, event_of(r), r.code.as_deref(), r.occurred_at, now)?;
                message_effect(tx, m, &r.effect, r.occurred_at, r.code.as_deref())?;
                if moved && !gate {
                    gate = followed.contains(tx, &m.campaign)?;
                }
                if moved {
                    Applied::Recorded
                } else {
                    Applied::Stale
                }
            }
            None => {
                if later || address.is_none() {
                    Applied::Unmatched
                } else {
                    Applied::Recorded
                }
            }
        };
        out.push(outcome);
    }
    if gate {
        tx.bump_gate()?;
    }
    Ok(out)
}

/// Matches receipts stored without their message since `since` (they raced the record of
/// their own send: a provider's `sent` can arrive before the run commits the provider's id)
/// and applies them. Returns how many found their message.
pub(crate) fn match_unmatched<T: ReceiptTx>(
    tx: &mut T,
    since: Timestamp,
    now: Timestamp,
) -> Result<u64, T::Error> {
    let mut matched = 0;
    let mut followed = Followed(None);
    let mut gate = false;
    for u in tx.unmatched_since(since)? {
        let target = crate::receipt::Target {
            provider_id: u.provider_id.clone(),
            reference: u.reference.as_deref().and_then(CallbackRef::parse),
            ..Default::default()
        };
        let Some(m) = find_target(tx, &target)? else {
            continue;
        };
        let Some(event) = Event::parse(&u.event) else {
            continue;
        };
        if ladder(tx, &m, event, u.code.as_deref(), u.occurred_at, now)? && !gate {
            gate = followed.contains(tx, &m.campaign)?;
        }
        let effect: Effect = serde_json::from_str(&u.effect).unwrap_or(Effect::None);
        if let Effect::Suppress { .. } = effect {
            // Applied when stored if the receipt named the address; else now.
            if address_effect_inner(tx, &effect, &u.source, &m.address, now)? {
                tx.bump_gate()?;
            }
        }
        message_effect(tx, &m, &effect, u.occurred_at, u.code.as_deref())?;
        tx.set_matched(u.id, Some(m.id), true)?;
        matched += 1;
    }
    if gate {
        tx.bump_gate()?;
    }
    Ok(matched)
}

fn event_of(r: &Receipt) -> Event {
    r.event
}

fn find<T: ReceiptTx>(tx: &mut T, r: &Receipt) -> Result<Option<MessageFacts>, T::Error> {
    if let Some(m) = find_target(tx, &r.target)? {
        return Ok(Some(m));
    }
    match &r.target.recipient {
        // The token names the campaign, the recipient and the address it was made for: only
        // a message to that address is that recipient's (a test send's link carries the
        // tester's address and must not mark the customer's message).
        Some((campaign, recipient)) => Ok(tx
            .latest_message(campaign, recipient)?
            .filter(|m| r.target.address.as_deref().is_none_or(|a| a == m.address))),
        None => Ok(None),
    }
}

fn find_target<T: ReceiptTx>(
    tx: &mut T,
    target: &crate::receipt::Target,
) -> Result<Option<MessageFacts>, T::Error> {
    if let Some(reference) = &target.reference
        && let Some(m) = tx.message_by_id(reference.id)?
        && message_key(&m.campaign, &m.recipient, m.occurrence) == reference.key
    {
        return Ok(Some(m));
    }
    match &target.provider_id {
        Some(id) => tx.message_by_provider_id(id),
        None => Ok(None),
    }
}

/// Moves the message's delivery row for `event`; whether it moved.
fn ladder<T: ReceiptTx>(
    tx: &mut T,
    m: &MessageFacts,
    event: Event,
    code: Option<&str>,
    at: Timestamp,
    now: Timestamp,
) -> Result<bool, T::Error> {
    let column = match event {
        Event::Delivered => Some("delivered_at"),
        Event::Read => Some("read_at"),
        Event::Failed => Some("failed_at"),
        Event::Bounced => Some("bounced_at"),
        Event::Complained | Event::OptedOut => Some("opted_out_at"),
        Event::Sent | Event::SoftBounce | Event::OptedIn => None,
    };
    let status = match event.rank() {
        Some(rank) => {
            let current = tx.delivery_rank(m.id)?;
            if current.is_some_and(|c| c >= rank) {
                return Ok(false);
            }
            Some((event.as_str(), rank))
        }
        None if matches!(event, Event::OptedIn) => return Ok(false),
        None => None,
    };
    tx.write_delivery(&DeliveryChange {
        message_id: m.id,
        campaign_id: m.campaign_id,
        status,
        code: code.filter(|_| matches!(event, Event::Failed | Event::Bounced)),
        column,
        at,
        soft_bounce: matches!(event, Event::SoftBounce),
        now,
    })?;
    Ok(true)
}

/// The receipt's effect on an address; whether a run holding claims must look again.
fn address_effect<T: ReceiptTx>(
    tx: &mut T,
    r: &Receipt,
    address: &str,
    now: Timestamp,
) -> Result<bool, T::Error> {
    address_effect_inner(tx, &r.effect, r.source.as_str(), address, now)
}

fn address_effect_inner<T: ReceiptTx>(
    tx: &mut T,
    effect: &Effect,
    source: &str,
    address: &str,
    now: Timestamp,
) -> Result<bool, T::Error> {
    match effect {
        Effect::Suppress { reason } => tx.suppress(address, reason, source, now),
        Effect::Unsuppress { source } => tx.unsuppress(address, source),
        Effect::None | Effect::Resend { .. } => Ok(false),
    }
}

fn message_effect<T: ReceiptTx>(
    tx: &mut T,
    m: &MessageFacts,
    effect: &Effect,
    at: Timestamp,
    code: Option<&str>,
) -> Result<(), T::Error> {
    if let Effect::Resend { after_secs } = effect
        && m.state == "sent"
    {
        let due = at
            .checked_add(SignedDuration::from_secs(*after_secs))
            .unwrap_or(at);
        let note = format!(
            "the provider refused it for now ({}): sent again after {} h",
            code.unwrap_or("no code"),
            after_secs / 3600
        );
        tx.resend(m.id, due, &note)?;
    }
    Ok(())
}
