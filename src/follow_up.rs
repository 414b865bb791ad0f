//! Follow-ups (`follows:` in a campaign): whether and when a recipient gets the next step,
//! judged from what happened to the step before — its queue state and the receipts the
//! provider sent back. Pure: no store, no clock (`now` is a parameter), so `plan`, `run`,
//! `preview` and the check at the moment of the send all judge a recipient the same way
//! (docs/follow-ups.md).

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::store::State;

/// What must have happened to the parent's message for the follow-up to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The provider accepted it: `after` after the send.
    Sent,
    /// A delivery receipt came within `within` of the send: `after` after it.
    Delivered,
    /// A read receipt came within `within`: `after` after it.
    Read,
    /// No delivery (or read) receipt within `after` of the send, or the send failed.
    NotDelivered,
    /// No read receipt within `after` of the send, or the send failed.
    NotRead,
    /// The send failed, or a failure or bounce was reported within `within`: `after` after it.
    Failed,
}

impl Condition {
    pub const ALL: [Condition; 6] = [
        Condition::Sent,
        Condition::Delivered,
        Condition::Read,
        Condition::NotDelivered,
        Condition::NotRead,
        Condition::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Sent => "sent",
            Condition::Delivered => "delivered",
            Condition::Read => "read",
            Condition::NotDelivered => "not_delivered",
            Condition::NotRead => "not_read",
            Condition::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the condition is the absence of an event: it can only be judged once `after`
    /// has passed since the send, and `after` is that wait.
    pub fn is_absence(self) -> bool {
        matches!(self, Condition::NotDelivered | Condition::NotRead)
    }

    /// Whether the condition waits for a receipt that may never come (`within` bounds it).
    pub fn awaits_receipt(self) -> bool {
        matches!(
            self,
            Condition::Delivered | Condition::Read | Condition::Failed
        )
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a follow-up waiting for a receipt (`delivered`, `read`, `failed`) waits by
/// default before it is judged not needed.
pub const DEFAULT_WITHIN: SignedDuration = SignedDuration::from_hours(7 * 24);

/// A campaign's `follows:` as the store keeps it with the campaign's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowRule {
    /// The parent campaign's name.
    pub parent: String,
    pub when: Condition,
    pub after_secs: i64,
    pub within_secs: i64,
}

impl FollowRule {
    pub fn after(&self) -> SignedDuration {
        SignedDuration::from_secs(self.after_secs)
    }
    pub fn within(&self) -> SignedDuration {
        SignedDuration::from_secs(self.within_secs)
    }
    /// `not_read after 24h`, as status and reports print it.
    pub fn describe(&self) -> String {
        let after = human(self.after());
        match self.when {
            c if c.is_absence() => format!("{} of {} within {after}", c, self.parent),
            c => format!("{after} after {} {}", self.parent, c),
        }
    }
}

/// What the store knows of one parent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentFacts {
    pub recipient: String,
    pub occurrence: u32,
    pub state: State,
    /// When the queue row last changed: for a finished message, when it finished (its send,
    /// for a sent one).
    pub settled_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
    /// The first failure or bounce reported after the provider accepted it.
    pub failed_at: Option<Timestamp>,
}

/// A follow-up's verdict for one parent message at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not decided yet; `until`: when it will be at the latest (`None`: when the parent is
    /// sent).
    Wait {
        until: Option<Timestamp>,
        why: String,
    },
    /// Send it, aimed at `at` (before the follow-up's own quiet hours and days move it).
    Due { at: Timestamp, why: String },
    /// Never: the condition cannot hold any more.
    NotNeeded { why: String },
}

impl Verdict {
    pub fn is_due(&self) -> bool {
        matches!(self, Verdict::Due { .. })
    }
    pub fn why(&self) -> &str {
        match self {
            Verdict::Wait { why, .. } | Verdict::Due { why, .. } | Verdict::NotNeeded { why } => {
                why
            }
        }
    }
}

/// `24h`, `90min`, `2d`: the largest whole unit.
pub fn human(d: SignedDuration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}min", s / 60),
        s => format!("{s}s"),
    }
}

fn plus(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn at(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// Judges the follow-up of one parent message at `now`.
///
/// A parent that was never attempted (skipped, cancelled, expired) gets no follow-up: the
/// campaign chose not to reach that person then, and the next step would be just as late or
/// unwanted. A parent refused by the provider (`failed`) counts as failed, not delivered and
/// not read, from the moment it failed.
pub fn judge(rule: &FollowRule, p: &ParentFacts, now: Timestamp) -> Verdict {
    let after = rule.after();
    let parent = &rule.parent;
    match p.state {
        State::Pending | State::Sending => {
            return Verdict::Wait {
                until: None,
                why: format!("{parent} has not been sent yet"),
            };
        }
        State::Skipped | State::Cancelled | State::Expired => {
            return Verdict::NotNeeded {
                why: format!("{parent} was {} for this recipient", p.state.as_str()),
            };
        }
        State::Failed => {
            let failed = format!("{parent} failed at {}", at(p.settled_at));
            return match rule.when {
                Condition::Failed | Condition::NotDelivered | Condition::NotRead => Verdict::Due {
                    at: plus(p.settled_at, after),
                    why: failed,
                },
                _ => Verdict::NotNeeded { why: failed },
            };
        }
        State::Sent => {}
    }
    let sent = p.settled_at;
    let delivered = match (p.delivered_at, p.read_at) {
        (Some(d), Some(r)) => Some(d.min(r)),
        (d, r) => d.or(r),
    };
    let deadline = plus(sent, rule.within());
    let waiting = |event: &str| {
        if now >= deadline {
            Verdict::NotNeeded {
                why: format!(
                    "{parent} sent at {}, not {event} within {}",
                    at(sent),
                    human(rule.within())
                ),
            }
        } else {
            Verdict::Wait {
                until: Some(deadline),
                why: format!("{parent} sent at {}, not {event} yet", at(sent)),
            }
        }
    };
    // A receipt that came once `within` was over is as good as none: the follow-up was not
    // needed from the deadline on, whether or not a release looked then.
    let late = |event: &str, t: Timestamp| Verdict::NotNeeded {
        why: format!(
            "{parent} sent at {}, {event} only at {}, after {}",
            at(sent),
            at(t),
            human(rule.within())
        ),
    };
    match rule.when {
        Condition::Sent => Verdict::Due {
            at: plus(sent, after),
            why: format!("{parent} sent at {}", at(sent)),
        },
        Condition::Delivered => match (delivered, p.failed_at) {
            (Some(d), _) if d >= deadline => late("delivered", d),
            (Some(d), _) => Verdict::Due {
                at: plus(d, after),
                why: format!("{parent} delivered at {}", at(d)),
            },
            (None, Some(f)) => Verdict::NotNeeded {
                why: format!("{parent} failed to deliver at {}", at(f)),
            },
            (None, None) => waiting("delivered"),
        },
        Condition::Read => match p.read_at {
            Some(r) if r >= deadline => late("read", r),
            Some(r) => Verdict::Due {
                at: plus(r, after),
                why: format!("{parent} read at {}", at(r)),
            },
            None => waiting("read"),
        },
        Condition::Failed => match (p.failed_at, delivered) {
            (Some(f), _) if f >= deadline => late("reported failed", f),
            (Some(f), _) => Verdict::Due {
                at: plus(f, after),
                why: format!("{parent} failed to deliver at {}", at(f)),
            },
            (None, Some(d)) => Verdict::NotNeeded {
                why: format!("{parent} delivered at {}", at(d)),
            },
            (None, None) => waiting("reported failed"),
        },
        Condition::NotDelivered | Condition::NotRead => {
            let event = if rule.when == Condition::NotRead {
                p.read_at.map(|r| ("read", r))
            } else {
                delivered.map(|d| ("delivered", d))
            };
            let word = if rule.when == Condition::NotRead {
                "read"
            } else {
                "delivered"
            };
            let due = plus(sent, after);
            match event {
                Some((what, t)) => Verdict::NotNeeded {
                    why: format!("{parent} {what} at {}", at(t)),
                },
                None if now >= due => Verdict::Due {
                    at: due,
                    why: format!(
                        "{parent} sent at {}, not {word} within {}",
                        at(sent),
                        human(after)
                    ),
                },
                None => Verdict::Wait {
                    until: Some(due),
                    why: format!("{parent} sent at {}, not {word} yet", at(sent)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn rule(when: Condition) -> FollowRule {
        FollowRule {
            parent: "wa".into(),
            when,
            after_secs: 86_400,
            within_secs: 3 * 86_400,
        }
    }

    fn sent_at(s: &str) -> ParentFacts {
        ParentFacts {
            recipient: "c1".into(),
            occurrence: 0,
            state: State::Sent,
            settled_at: ts(s),
            delivered_at: None,
            read_at: None,
            failed_at: None,
        }
    }

    #[test]
    fn not_read_waits_a_day_then_is_due_at_the_day_unless_read() {
        let r = rule(Condition::NotRead);
        let p = sent_at("2026-12-01T10:00:00Z");
        let before = judge(&r, &p, ts("2026-12-02T09:59:59Z"));
        assert_eq!(
            before,
            Verdict::Wait {
                until: Some(ts("2026-12-02T10:00:00Z")),
                why: "wa sent at 2026-12-01 10:00 UTC, not read yet".into()
            }
        );
        let due = judge(&r, &p, ts("2026-12-02T10:00:00Z"));
        assert_eq!(
            due,
            Verdict::Due {
                at: ts("2026-12-02T10:00:00Z"),
                why: "wa sent at 2026-12-01 10:00 UTC, not read within 1d".into()
            }
        );
        let read = ParentFacts {
            read_at: Some(ts("2026-12-02T11:00:00Z")),
            delivered_at: Some(ts("2026-12-01T10:00:05Z")),
            ..p.clone()
        };
        // A read after the deadline still withdraws a follow-up not sent yet.
        assert!(matches!(
            judge(&r, &read, ts("2026-12-02T12:00:00Z")),
            Verdict::NotNeeded { .. }
        ));
        // Delivered but not read is still not read.
        let delivered = ParentFacts {
            delivered_at: Some(ts("2026-12-01T10:00:05Z")),
            ..p
        };
        assert!(judge(&r, &delivered, ts("2026-12-03T00:00:00Z")).is_due());
    }

    #[test]
    fn not_delivered_counts_a_read_as_delivered() {
        let r = rule(Condition::NotDelivered);
        let p = ParentFacts {
            read_at: Some(ts("2026-12-01T12:00:00Z")),
            ..sent_at("2026-12-01T10:00:00Z")
        };
        assert_eq!(
            judge(&r, &p, ts("2026-12-05T00:00:00Z")),
            Verdict::NotNeeded {
                why: "wa delivered at 2026-12-01 12:00 UTC".into()
            }
        );
    }

    #[test]
    fn receipt_conditions_are_due_after_the_event_and_give_up_after_within() {
        let p = sent_at("2026-12-01T10:00:00Z");
        let read = ParentFacts {
            read_at: Some(ts("2026-12-01T15:00:00Z")),
            ..p.clone()
        };
        assert_eq!(
            judge(&rule(Condition::Read), &read, ts("2026-12-01T16:00:00Z")),
            Verdict::Due {
                at: ts("2026-12-02T15:00:00Z"),
                why: "wa read at 2026-12-01 15:00 UTC".into()
            }
        );
        assert!(matches!(
            judge(&rule(Condition::Read), &p, ts("2026-12-04T09:59:59Z")),
            Verdict::Wait { .. }
        ));
        assert_eq!(
            judge(&rule(Condition::Read), &p, ts("2026-12-04T10:00:00Z")),
            Verdict::NotNeeded {
                why: "wa sent at 2026-12-01 10:00 UTC, not read within 3d".into()
            }
        );
        let failed = ParentFacts {
            failed_at: Some(ts("2026-12-01T10:01:00Z")),
            ..p.clone()
        };
        assert!(
            judge(
                &rule(Condition::Failed),
                &failed,
                ts("2026-12-01T10:02:00Z")
            )
            .is_due()
        );
        assert!(matches!(
            judge(
                &rule(Condition::Delivered),
                &failed,
                ts("2026-12-01T10:02:00Z")
            ),
            Verdict::NotNeeded { .. }
        ));
        assert_eq!(
            judge(&rule(Condition::Sent), &p, ts("2026-12-01T10:00:00Z")),
            Verdict::Due {
                at: ts("2026-12-02T10:00:00Z"),
                why: "wa sent at 2026-12-01 10:00 UTC".into()
            }
        );
    }

    #[test]
    fn a_refused_send_is_failed_not_delivered_and_not_read_but_never_sent() {
        let p = ParentFacts {
            state: State::Failed,
            ..sent_at("2026-12-01T10:00:00Z")
        };
        let now = ts("2026-12-01T10:00:01Z");
        for c in [
            Condition::Failed,
            Condition::NotDelivered,
            Condition::NotRead,
        ] {
            assert_eq!(
                judge(&rule(c), &p, now),
                Verdict::Due {
                    at: ts("2026-12-02T10:00:00Z"),
                    why: "wa failed at 2026-12-01 10:00 UTC".into()
                },
                "{c}"
            );
        }
        for c in [Condition::Sent, Condition::Delivered, Condition::Read] {
            assert!(matches!(
                judge(&rule(c), &p, now),
                Verdict::NotNeeded { .. }
            ));
        }
    }

    #[test]
    fn parents_not_sent_wait_and_parents_never_attempted_end_it() {
        for c in Condition::ALL {
            for (state, waits) in [
                (State::Pending, true),
                (State::Sending, true),
                (State::Skipped, false),
                (State::Cancelled, false),
                (State::Expired, false),
            ] {
                let p = ParentFacts {
                    state,
                    ..sent_at("2026-12-01T10:00:00Z")
                };
                let v = judge(&rule(c), &p, ts("2027-01-01T00:00:00Z"));
                assert_eq!(matches!(v, Verdict::Wait { .. }), waits, "{c} {state:?}");
                assert_eq!(
                    matches!(v, Verdict::NotNeeded { .. }),
                    !waits,
                    "{c} {state:?}"
                );
            }
        }
    }

    #[test]
    fn conditions_round_trip_and_rules_describe_themselves() {
        for c in Condition::ALL {
            assert_eq!(Condition::parse(c.as_str()), Some(c));
        }
        assert_eq!(Condition::parse("clicked"), None);
        assert_eq!(
            rule(Condition::NotRead).describe(),
            "not_read of wa within 1d"
        );
        assert_eq!(rule(Condition::Failed).describe(), "1d after wa failed");
        assert_eq!(human(SignedDuration::from_secs(5400)), "90min");
    }

    /// docs/follow-ups.md: `read` (and `delivered`, `failed`) is "not needed when no read
    /// receipt [came] within `within`", and `within` is "how long after the parent's send the
    /// receipt may still come". A receipt that came after `within` but before any release
    /// looked (no `run` in between, or `serve` catching up on late webhooks) makes it due: the
    /// verdict depends on when a release happened to run.
    #[test]
    fn a_receipt_after_within_does_not_make_it_due() {
        let p = sent_at("2026-12-01T10:00:00Z");
        // within is 3 days: the read comes on the fifth.
        let late_read = ParentFacts {
            read_at: Some(ts("2026-12-05T10:00:00Z")),
            delivered_at: Some(ts("2026-12-01T10:00:05Z")),
            ..p.clone()
        };
        let now = ts("2026-12-05T11:00:00Z");
        assert!(
            matches!(
                judge(&rule(Condition::Read), &late_read, now),
                Verdict::NotNeeded { .. }
            ),
            "{:?}",
            judge(&rule(Condition::Read), &late_read, now)
        );
        let late_failure = ParentFacts {
            failed_at: Some(ts("2026-12-05T10:00:00Z")),
            ..p
        };
        assert!(
            matches!(
                judge(&rule(Condition::Failed), &late_failure, now),
                Verdict::NotNeeded { .. }
            ),
            "{:?}",
            judge(&rule(Condition::Failed), &late_failure, now)
        );
    }

    #[test]
    /// `sent` is the provider's acceptance, whatever later receipts say (a follow-up that
    /// depends on delivery says `delivered`); docs/follow-ups.md says so.
    fn sent_is_due_even_when_a_receipt_later_reports_a_failure() {
        let p = ParentFacts {
            failed_at: Some(ts("2026-12-01T10:01:00Z")),
            ..sent_at("2026-12-01T10:00:00Z")
        };
        let v = judge(&rule(Condition::Sent), &p, ts("2026-12-01T10:02:00Z"));
        assert!(v.is_due(), "{v:?}");
    }
}
