//! `follows:` in a campaign file: the campaign is the next step of another one, sent to each
//! recipient only when the parent's message to them met a condition (docs/follow-ups.md).

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::Problem;
use crate::follow_up::{Condition, DEFAULT_WITHIN, FollowRule};
use crate::units::Duration;

/// `follows: { campaign: wa-promo, when: not_read, after: 24h }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FollowsFile {
    campaign: Spanned<String>,
    when: Spanned<String>,
    #[serde(default)]
    after: Option<Duration>,
    #[serde(default)]
    within: Option<Duration>,
}

/// A checked `follows:`: the rule and where its keys stand, for problems found later (an
/// unknown parent campaign, a cycle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follows {
    pub rule: FollowRule,
    /// Line and column of `follows.campaign`.
    pub line: (u64, u64),
}

fn pos<T>(s: &Spanned<T>) -> (u64, u64) {
    (s.referenced.line(), s.referenced.column())
}

/// Checks `follows:` of campaign `name`; every problem goes to `bad`.
pub(super) fn check(
    name: &str,
    file: &Spanned<FollowsFile>,
    bad: &mut dyn FnMut(Problem),
) -> Option<Follows> {
    let f = &file.value;
    let (wl, wc) = pos(&f.when);
    let when = match f.when.value.trim() {
        "clicked" => {
            bad(Problem::new("`when: clicked` cannot be judged: disparo does not track clicks (links are sent as written)")
                .at(wl, wc)
                .field("follows.when")
                .hint("use read, delivered, not_read, not_delivered, sent or failed"));
            None
        }
        w => {
            let c = Condition::parse(w);
            if c.is_none() {
                bad(Problem::new(format!("unknown follow-up condition {w:?}"))
                    .at(wl, wc)
                    .field("follows.when")
                    .hint("use one of sent, delivered, read, not_delivered, not_read, failed"));
            }
            c
        }
    };
    let parent = f.campaign.value.trim().to_string();
    let (pl, pc) = pos(&f.campaign);
    if parent.is_empty() {
        bad(Problem::new("`follows.campaign` is empty")
            .at(pl, pc)
            .field("follows.campaign")
            .hint("name the campaign this one follows (its `name`, or its file's stem)"));
    } else if parent == name {
        bad(Problem::new(format!("campaign {name:?} follows itself"))
            .at(pl, pc)
            .field("follows.campaign")
            .hint("name the campaign whose receipts decide this one"));
    }
    let after = f.after.map(|d| d.as_secs()).unwrap_or(0);
    if after < 0 {
        bad(Problem::new("`follows.after` is negative")
            .at(wl, wc)
            .field("follows.after")
            .hint("write how long to wait, e.g. after: 24h"));
    }
    let when = when?;
    if when.is_absence() && after <= 0 {
        bad(Problem::new(format!(
            "`when: {when}` needs `after`: how long to wait for the receipt before deciding it did not come"
        ))
        .at(wl, wc)
        .field("follows.after")
        .hint("e.g. after: 24h"));
    }
    let within = match (f.within, when.awaits_receipt()) {
        (Some(w), true) if w.as_secs() <= 0 => {
            bad(Problem::new("`follows.within` must be longer than 0")
                .at(wl, wc)
                .field("follows.within")
                .hint("how long after the send to wait for the receipt, e.g. within: 3d"));
            0
        }
        (Some(w), true) => w.as_secs(),
        (Some(_), false) => {
            bad(Problem::new(format!("`within` does not apply to `when: {when}`"))
                .at(wl, wc)
                .field("follows.within")
                .hint("`within` bounds the wait for a delivered, read or failed receipt; for not_read and not_delivered, `after` is the wait"));
            0
        }
        (None, _) => DEFAULT_WITHIN.as_secs(),
    };
    Some(Follows {
        rule: FollowRule {
            parent,
            when,
            after_secs: after,
            within_secs: within,
        },
        line: (pl, pc),
    })
}
