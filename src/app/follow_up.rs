//! What a follow-up campaign would do now, recipient by recipient, for `preview`: each
//! parent message of theirs judged as the release step judges it (`follow_up::judge`), and
//! a due one placed by the follow-up's own quiet hours and days on their clock.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::Serialize;

use super::Error;
use crate::follow_up::{FollowRule, ParentFacts, Verdict, judge};
use crate::schedule::{self, Placement, SendWindow};
use crate::store::{MessageFilter, State, Store};

/// The parent campaign's messages, by recipient, as the store has them.
pub struct FollowUpView {
    pub rule: FollowRule,
    parents: HashMap<String, Vec<ParentFacts>>,
    /// Follow-up messages already released, by (recipient, occurrence): state, due, note.
    released: HashMap<(String, u32), (State, Timestamp, Option<String>)>,
    /// Whether the parent campaign is in the database at all.
    pub parent_planned: bool,
}

/// One parent message of a recipient, judged now.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    pub occurrence: u32,
    /// `due` (would be sent, or is planned), `waiting`, `not_needed`, or `done` (sent,
    /// failed or otherwise finished already).
    pub verdict: &'static str,
    pub why: String,
    /// For a due one: when it would be sent (after the follow-up's quiet hours and days).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_local: Option<String>,
    /// For a waiting one: when it is decided at the latest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<Timestamp>,
}

/// Counts over every recipient previewed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tally {
    pub due: u64,
    pub waiting: u64,
    pub not_needed: u64,
    /// Recipients with no message of the parent campaign.
    pub no_parent: u64,
    /// Follow-up messages already sent, failed or otherwise finished.
    pub done: u64,
}

impl FollowUpView {
    /// Reads the parent's messages (none without a database: every recipient then waits).
    pub fn read(
        campaign: &str,
        rule: FollowRule,
        store: Option<&dyn Store>,
    ) -> Result<FollowUpView, Error> {
        let mut parents: HashMap<String, Vec<ParentFacts>> = HashMap::new();
        let mut released = HashMap::new();
        let mut parent_planned = false;
        if let Some(s) = store {
            if s.campaign(campaign)?.is_some() {
                for m in s.messages(&MessageFilter {
                    campaign: Some(campaign.to_owned()),
                    ..Default::default()
                })? {
                    released.insert(
                        (m.recipient, m.occurrence),
                        (m.state, m.due_at, m.last_error),
                    );
                }
            }
            parent_planned = s.campaign(&rule.parent)?.is_some();
            if parent_planned {
                for p in s.parent_facts(&rule.parent, None)? {
                    parents.entry(p.recipient.clone()).or_default().push(p);
                }
            }
        }
        for list in parents.values_mut() {
            list.sort_by_key(|p| p.occurrence);
        }
        Ok(FollowUpView {
            rule,
            parents,
            released,
            parent_planned,
        })
    }

    /// The recipient's parent messages judged at `now`; empty when they have none.
    pub fn judge(
        &self,
        recipient: &str,
        zone: &str,
        window: &SendWindow,
        now: Timestamp,
        tally: &mut Tally,
    ) -> Vec<Judged> {
        let Some(list) = self.parents.get(recipient) else {
            tally.no_parent += 1;
            return Vec::new();
        };
        let tz = schedule::zone(zone).unwrap_or(jiff::tz::TimeZone::UTC);
        list.iter()
            .map(|p| {
                if let Some((state, due, note)) =
                    self.released.get(&(recipient.to_owned(), p.occurrence))
                {
                    return self.already(p.occurrence, *state, *due, note.as_deref(), &tz, tally);
                }
                let v = judge(&self.rule, p, now);
                let why = v.why().to_owned();
                match v {
                    Verdict::Due { at, .. } => {
                        tally.due += 1;
                        let placed: Option<Placement> = schedule::place_asap(&tz, window, at);
                        Judged {
                            occurrence: p.occurrence,
                            verdict: "due",
                            why,
                            at: placed.map(|p| p.at),
                            at_local: placed.map(|p| {
                                p.at.to_zoned(tz.clone())
                                    .strftime("%a %Y-%m-%d %H:%M %:z")
                                    .to_string()
                            }),
                            decided_by: None,
                        }
                    }
                    Verdict::Wait { until, .. } => {
                        tally.waiting += 1;
                        Judged {
                            occurrence: p.occurrence,
                            verdict: "waiting",
                            why,
                            at: None,
                            at_local: None,
                            decided_by: until,
                        }
                    }
                    Verdict::NotNeeded { .. } => {
                        tally.not_needed += 1;
                        Judged {
                            occurrence: p.occurrence,
                            verdict: "not_needed",
                            why,
                            at: None,
                            at_local: None,
                            decided_by: None,
                        }
                    }
                }
            })
            .collect()
    }

    /// A follow-up message `run` or `plan` already made: what became of it.
    fn already(
        &self,
        occurrence: u32,
        state: State,
        due: Timestamp,
        note: Option<&str>,
        tz: &jiff::tz::TimeZone,
        tally: &mut Tally,
    ) -> Judged {
        let local = |t: Timestamp| {
            t.to_zoned(tz.clone())
                .strftime("%a %Y-%m-%d %H:%M %:z")
                .to_string()
        };
        let (verdict, why, at) = match state {
            State::Pending | State::Sending => {
                tally.due += 1;
                ("due", "planned already".to_owned(), Some(due))
            }
            State::Cancelled if note.is_some_and(|n| n.starts_with("not needed")) => {
                tally.not_needed += 1;
                let why = note.unwrap_or_default();
                (
                    "not_needed",
                    why.trim_start_matches("not needed: ").to_owned(),
                    None,
                )
            }
            s => {
                tally.done += 1;
                let why = match note {
                    Some(n) => format!("{}: {n}", s.as_str()),
                    None => s.as_str().to_owned(),
                };
                ("done", why, Some(due))
            }
        };
        Judged {
            occurrence,
            verdict,
            why,
            at,
            at_local: at.map(local),
            decided_by: None,
        }
    }
}

/// One step of a chain of follow-ups, for `status` and the report: the campaign, the rule it
/// follows (none for the first step), its funnel and how far its releases have come.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub campaign: String,
    /// The parent and condition, `None` for the chain's first campaign.
    pub follows: Option<FollowRule>,
    /// `not_read of wa within 1d`, as people read it.
    pub rule: Option<String>,
    pub funnel: crate::receipt::Funnel,
    pub progress: crate::store::FollowUpProgress,
}

/// The chain `campaign` belongs to, first step first (parents before the campaigns that
/// follow them); empty when it neither follows nor is followed.
pub fn chain(store: &dyn Store, campaign: &str) -> Result<Vec<Step>, Error> {
    let mut rules: Vec<(String, Option<FollowRule>)> = Vec::new();
    for s in store.summaries(None)? {
        let follows = store.campaign(&s.name)?.and_then(|c| c.rules.follows);
        rules.push((s.name, follows));
    }
    let parent_of = |name: &str| {
        rules
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, f)| f.as_ref().map(|f| f.parent.clone()))
    };
    // Up to the first step (a cycle cannot be planned, but a hand-edited database could
    // hold one: stop where a name repeats).
    let mut root = campaign.to_owned();
    let mut seen = vec![root.clone()];
    while let Some(p) = parent_of(&root) {
        if seen.contains(&p) || !rules.iter().any(|(n, _)| *n == p) {
            break;
        }
        seen.push(p.clone());
        root = p;
    }
    // Then down, breadth first.
    let mut order = vec![root];
    let mut i = 0;
    while i < order.len() {
        let here = order[i].clone();
        for (n, f) in &rules {
            if f.as_ref().is_some_and(|f| f.parent == here) && !order.contains(n) {
                order.push(n.clone());
            }
        }
        i += 1;
    }
    if order.len() < 2 {
        return Ok(Vec::new());
    }
    let funnels = store.funnel(None, crate::receipt::FunnelBy::Campaign)?;
    order
        .into_iter()
        .map(|name| {
            let follows = rules
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, f)| f.clone());
            let progress = match &follows {
                Some(f) => store.follow_up_progress(&name, &f.parent)?,
                None => Default::default(),
            };
            Ok(Step {
                funnel: funnels
                    .iter()
                    .find(|f| f.campaign == name)
                    .cloned()
                    .unwrap_or_default(),
                rule: follows.as_ref().map(FollowRule::describe),
                follows,
                campaign: name,
                progress,
            })
        })
        .collect()
}
