//! What the rules need to know about the messages a run holds: each campaign's stored rules
//! and status, which addresses are suppressed, recent sends for frequency caps. Read on the
//! store thread right after a claim, and read again for everything still queued whenever the
//! store's gate moved (an opt-out, a pause, a cancel or a re-plan committed by anyone).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::hash::FastHash;
use super::rules::window_of;
use crate::follow_up::{ParentFacts, Verdict, judge};
use crate::schedule;
use crate::store::{CampaignInfo, CampaignStatus, Claimed, Store, StoreError};

/// A campaign's rules as dispatch uses them.
pub(super) struct CampaignRt {
    pub(super) info: CampaignInfo,
    pub(super) window: schedule::SendWindow,
    pub(super) caps: Vec<schedule::FrequencyCap>,
    pub(super) expire_after: Option<SignedDuration>,
}

impl CampaignRt {
    /// `Err` with the reason when the stored rules cannot be read back.
    fn new(info: CampaignInfo) -> Result<CampaignRt, String> {
        let rules = &info.rules;
        Ok(CampaignRt {
            window: window_of(rules)?,
            caps: rules
                .caps
                .iter()
                .map(|&(max, per)| schedule::FrequencyCap {
                    max,
                    per: SignedDuration::from_secs(per),
                })
                .collect(),
            expire_after: rules.expire_after_secs.map(SignedDuration::from_secs),
            info,
        })
    }
    pub(super) fn longest_cap(&self) -> Option<SignedDuration> {
        self.caps.iter().map(|c| c.per).max()
    }
}

/// A campaign's facts: `None` when it is gone from the store or its stored rules are
/// unreadable (its messages are given back, unsent).
pub(super) type CampaignFacts = Option<Arc<CampaignRt>>;

/// Campaigns and suppressions for a set of held messages, with the gate they were read at.
pub(super) struct Facts {
    /// The store's gate, read before everything else here: these facts are at least as new.
    pub(super) gate: u64,
    pub(super) campaigns: HashMap<String, CampaignFacts, FastHash>,
    /// Ids of the messages whose address is on the suppression list.
    pub(super) suppressed: HashSet<i64, FastHash>,
    /// Follow-up messages whose condition no longer holds (a read came after the release),
    /// with the reason: cancelled instead of sent.
    pub(super) withdrawn: HashMap<i64, String, FastHash>,
    /// Campaigns paused here because their stored rules could not be read.
    pub(super) paused: usize,
}

/// One held message as [`Facts::read`] needs it.
pub(super) struct Held {
    pub(super) id: i64,
    pub(super) campaign: String,
    pub(super) address: String,
    pub(super) recipient: String,
    pub(super) occurrence: u32,
}

impl Held {
    pub(super) fn of(m: &Claimed) -> Held {
        Held {
            id: m.id,
            campaign: m.campaign.clone(),
            address: m.address.clone(),
            recipient: m.recipient.clone(),
            occurrence: m.occurrence,
        }
    }
    pub(super) fn as_ref(&self) -> HeldRef<'_> {
        HeldRef {
            id: self.id,
            campaign: &self.campaign,
            address: &self.address,
            recipient: &self.recipient,
            occurrence: self.occurrence,
        }
    }
}

/// A held message, borrowed.
#[derive(Clone, Copy)]
pub(super) struct HeldRef<'a> {
    pub(super) id: i64,
    pub(super) campaign: &'a str,
    pub(super) address: &'a str,
    pub(super) recipient: &'a str,
    pub(super) occurrence: u32,
}

impl<'a> HeldRef<'a> {
    pub(super) fn of(m: &'a Claimed) -> HeldRef<'a> {
        HeldRef {
            id: m.id,
            campaign: &m.campaign,
            address: &m.address,
            recipient: &m.recipient,
            occurrence: m.occurrence,
        }
    }
}

impl Facts {
    /// Reads the gate, then each campaign's rules (once per campaign) and the suppressions
    /// (one query for all addresses). A campaign whose stored rules no longer parse (a
    /// hand-edited database) is paused with the reason: dropping a rule it cannot read would
    /// send at night.
    pub(super) fn read<'a>(
        store: &dyn Store,
        held: impl Iterator<Item = HeldRef<'a>> + Clone,
        now: Timestamp,
    ) -> Result<Facts, StoreError> {
        let gate = store.gate()?;
        let mut campaigns: HashMap<String, CampaignFacts, FastHash> = HashMap::default();
        let mut paused = 0;
        for HeldRef { campaign, .. } in held.clone() {
            if campaigns.contains_key(campaign) {
                continue;
            }
            let rt = match store.campaign(campaign)? {
                None => None,
                Some(info) => {
                    let active = info.status == CampaignStatus::Active;
                    match CampaignRt::new(info) {
                        Ok(rt) => Some(Arc::new(rt)),
                        // Paused once (the pause moves the gate: pausing again at every
                        // re-read would never let the facts settle).
                        Err(why) if active => {
                            let reason = format!(
                                "paused: its stored rules cannot be read ({why}); nothing of it is sent until you re-plan it (`disparo plan {campaign}`), then `disparo resume {campaign}`"
                            );
                            tracing::error!(campaign, "{reason}");
                            store.set_campaign_status(
                                campaign,
                                CampaignStatus::Paused,
                                Some(&reason),
                            )?;
                            paused += 1;
                            None
                        }
                        Err(_) => None,
                    }
                }
            };
            campaigns.insert(campaign.to_owned(), rt);
        }
        let addresses: Vec<&str> = held
            .clone()
            .map(|h| h.address)
            .collect::<HashSet<_, FastHash>>()
            .into_iter()
            .collect();
        let on_list = store.suppressed_among(&addresses)?;
        let suppressed = held
            .clone()
            .filter(|h| on_list.contains(h.address))
            .map(|h| h.id)
            .collect();
        let withdrawn = withdrawn(store, held, &campaigns, now)?;
        Ok(Facts {
            gate,
            campaigns,
            suppressed,
            withdrawn,
            paused,
        })
    }
}

/// The held follow-up messages whose parent's facts, read now, say they are no longer
/// needed: the check at the moment of the send, so that a read receipt arriving after the
/// release (or while the message waits for its turn) still stops it. One query per
/// follow-up campaign held; none when no follow-up is held.
fn withdrawn<'a>(
    store: &dyn Store,
    held: impl Iterator<Item = HeldRef<'a>>,
    campaigns: &HashMap<String, CampaignFacts, FastHash>,
    now: Timestamp,
) -> Result<HashMap<i64, String, FastHash>, StoreError> {
    let mut by_campaign: HashMap<&str, Vec<HeldRef<'a>>, FastHash> = HashMap::default();
    for h in held {
        if let Some(Some(rt)) = campaigns.get(h.campaign)
            && rt.info.rules.follows.is_some()
        {
            by_campaign.entry(h.campaign).or_default().push(h);
        }
    }
    let mut out = HashMap::default();
    for (campaign, list) in by_campaign {
        let Some(Some(rt)) = campaigns.get(campaign) else {
            continue;
        };
        let Some(rule) = &rt.info.rules.follows else {
            continue;
        };
        let recipients: Vec<&str> = list.iter().map(|h| h.recipient).collect();
        let parents: HashMap<(String, u32), ParentFacts> = store
            .parent_facts(&rule.parent, Some(&recipients))?
            .into_iter()
            .map(|p| ((p.recipient.clone(), p.occurrence), p))
            .collect();
        for h in list {
            let why = match parents.get(&(h.recipient.to_owned(), h.occurrence)) {
                None => Some(format!(
                    "not needed: the message of {} it follows is gone from the database",
                    rule.parent
                )),
                Some(p) => match judge(rule, p, now) {
                    Verdict::NotNeeded { why } => Some(format!("not needed: {why}")),
                    _ => None,
                },
            };
            if let Some(why) = why {
                out.insert(h.id, why);
            }
        }
    }
    Ok(out)
}

/// Recent successful sends per (channel, address) for the capped campaigns of a batch: one
/// call for the whole batch, only when a campaign in it has a frequency cap.
pub(super) fn recent_sends(
    store: &dyn Store,
    batch: &[Claimed],
    campaigns: &HashMap<String, CampaignFacts, FastHash>,
    suppressed: &HashSet<i64, FastHash>,
    now: Timestamp,
) -> Result<HashMap<(String, String), Vec<Timestamp>>, StoreError> {
    let longest = campaigns
        .values()
        .flatten()
        .filter_map(|rt| rt.longest_cap())
        .max();
    let Some(longest) = longest else {
        return Ok(HashMap::new());
    };
    let mut capped: HashSet<(&str, &str)> = HashSet::new();
    for m in batch.iter().filter(|m| !suppressed.contains(&m.id)) {
        if let Some(Some(rt)) = campaigns.get(&m.campaign)
            && !rt.caps.is_empty()
        {
            capped.insert((rt.info.channel.as_str(), m.address.as_str()));
        }
    }
    if capped.is_empty() {
        return Ok(HashMap::new());
    }
    let pairs: Vec<(&str, &str)> = capped.into_iter().collect();
    store.sends_among(&pairs, now - longest)
}
