//! The channels' warm-up ramps, as an idle run sees them. Claims never take more of a ramped
//! channel's messages than its ramp day has left (the store counts inside the claim); here,
//! once nothing more can be claimed, the run finds which channels have spent their day's
//! budget, so that their due messages do not count as due (a run would wake for them every
//! 50 ms, and `--once` would never end), when it should look again (when the next ramp day
//! opens), and what to report: how many messages the ramp held back and until when.

use jiff::Timestamp;

use super::worker::Worker;
use super::{Dispatcher, RunError};
use crate::ramp::thousands;

/// A ramped channel whose day's budget is spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Closed {
    pub(super) channel: String,
    /// The ramp day (0-based) and its budget.
    pub(super) day: usize,
    pub(super) budget: u64,
    pub(super) days: usize,
    /// Its messages due before the day ends (by now, before its first send), waiting for
    /// the next ramp day: counted only when reported ([`Dispatcher::count_held_back`]).
    pub(super) held_back: u64,
    /// When the next ramp day opens; `None` before the channel's first send (other runs
    /// hold the whole first day's budget).
    pub(super) opens: Option<Timestamp>,
    /// Its earliest pending message.
    pub(super) next_due: Option<Timestamp>,
}

impl Closed {
    /// When the channel may send its next message: when the next ramp day opens, or later if
    /// nothing is due by then; `None` if it has nothing pending, or it is not known.
    pub(super) fn wakes(&self) -> Option<Timestamp> {
        Some(self.next_due?.max(self.opens?))
    }
}

/// What an idle run found: when the next message is due and when another run's lease ends
/// (both leaving out the closed channels), and the closed channels.
pub(super) struct Idle {
    pub(super) due: Option<Timestamp>,
    pub(super) lease: Option<Timestamp>,
    pub(super) closed: Vec<Closed>,
}

impl Dispatcher {
    /// Looks at what is due, leases and the ramps, in one call to the store thread.
    pub(super) async fn look_idle(&self, worker: &Worker) -> Result<Idle, RunError> {
        let campaign = self.opts.campaign.clone();
        let ramps = self.ramps.clone();
        let (now, lease_now) = (self.clock.now(), self.lease_clock.now());
        Ok(worker
            .call(move |s| {
                let c = campaign.as_deref();
                let usage = if ramps.is_empty() {
                    Vec::new()
                } else {
                    s.ramp_usage(&ramps, now, lease_now, c)?
                };
                let closed: Vec<Closed> = ramps
                    .iter()
                    .zip(&usage)
                    .filter(|(r, u)| u.closed(&r.ramp, now))
                    .map(|(r, u)| {
                        let day = u.day(&r.ramp, now);
                        Closed {
                            channel: u.channel.clone(),
                            day: day.index,
                            budget: r.ramp.budget(day.index).unwrap_or(0),
                            days: r.ramp.per_day().len(),
                            held_back: 0,
                            opens: day.ends(),
                            next_due: u.next_due,
                        }
                    })
                    .collect();
                let except: Vec<&str> = closed.iter().map(|c| c.channel.as_str()).collect();
                Ok(Idle {
                    due: s.next_due(c, &except)?,
                    lease: s.next_lease_expiry(c, &except)?,
                    closed,
                })
            })
            .await?)
    }
}

impl Dispatcher {
    /// Counts what each closed channel holds back (its messages due before its next day
    /// opens), in one call to the store thread. It reads every such message, so it is done
    /// when the run reports: when a channel closes, and as a run ends.
    pub(super) async fn count_held_back(
        &self,
        worker: &Worker,
        closed: &mut [Closed],
    ) -> Result<(), RunError> {
        let campaign = self.opts.campaign.clone();
        let now = self.clock.now();
        let asked: Vec<(String, Timestamp)> = closed
            .iter()
            .map(|c| {
                let before = c.opens.unwrap_or_else(|| {
                    now.checked_add(jiff::SignedDuration::from_millis(1))
                        .unwrap_or(now)
                });
                (c.channel.clone(), before)
            })
            .collect();
        let counts = worker
            .call(move |s| {
                asked
                    .iter()
                    .map(|(channel, before)| {
                        s.ramp_held_back(channel, *before, campaign.as_deref())
                    })
                    .collect::<Result<Vec<u64>, _>>()
            })
            .await?;
        for (c, n) in closed.iter_mut().zip(counts) {
            c.held_back = n;
        }
        Ok(())
    }
}

/// Whether a channel closed since the last report (a channel and day not reported yet).
pub(super) fn newly_closed(seen: &[(String, usize)], closed: &[Closed]) -> bool {
    closed
        .iter()
        .any(|c| !seen.iter().any(|(ch, d)| *ch == c.channel && *d == c.day))
}

/// Says, once per channel and ramp day, that a channel spent its day's budget (counted).
pub(super) fn announce(seen: &mut Vec<(String, usize)>, closed: &[Closed]) {
    for c in closed {
        let key = (c.channel.clone(), c.day);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        if c.held_back == 0 {
            continue;
        }
        let opens = c.opens.map_or_else(
            || "once its first send is recorded".to_owned(),
            |t| t.to_string(),
        );
        tracing::info!(
            "ramp: channel `{}` used its {} message(s) of ramp day {} of {}: {} due message(s) wait for the next ramp day, which opens {}",
            c.channel,
            thousands(c.budget),
            c.day + 1,
            c.days,
            thousands(c.held_back),
            if c.opens.is_some() {
                format!("at {opens}")
            } else {
                opens
            }
        );
    }
}

/// The messages held back by the ramps and when the first of their channels opens again.
pub(super) fn held_back(closed: &[Closed]) -> (u64, Option<Timestamp>) {
    let held = closed.iter().map(|c| c.held_back).sum();
    let opens = closed
        .iter()
        .filter(|c| c.held_back > 0)
        .filter_map(|c| c.opens)
        .min();
    (held, opens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn closed(held_back: u64, opens: Option<&str>, next_due: Option<&str>) -> Closed {
        Closed {
            channel: "wa".into(),
            day: 0,
            budget: 3,
            days: 2,
            held_back,
            opens: opens.map(t),
            next_due: next_due.map(t),
        }
    }

    #[test]
    fn a_closed_channel_wakes_when_its_next_day_opens_or_its_next_message_is_due() {
        let opens = "2026-12-01T12:00:00Z";
        assert_eq!(
            closed(5, Some(opens), Some("2026-11-30T12:00:00Z")).wakes(),
            Some(t(opens))
        );
        assert_eq!(
            closed(0, Some(opens), Some("2026-12-03T00:00:00Z")).wakes(),
            Some(t("2026-12-03T00:00:00Z"))
        );
        assert_eq!(
            closed(0, Some(opens), None).wakes(),
            None,
            "nothing pending"
        );
        assert_eq!(
            closed(5, None, Some(opens)).wakes(),
            None,
            "opening unknown"
        );
    }

    #[test]
    fn what_was_held_back_sums_the_channels_and_names_the_first_opening() {
        let a = closed(5, Some("2026-12-01T12:00:00Z"), None);
        let mut b = closed(7, Some("2026-12-01T10:00:00Z"), None);
        b.channel = "mail".into();
        let c = closed(0, Some("2026-12-01T09:00:00Z"), None);
        assert_eq!(
            held_back(&[a.clone(), b, c]),
            (12, Some(t("2026-12-01T10:00:00Z")))
        );
        assert_eq!(held_back(&[]), (0, None));
        let mut seen = Vec::new();
        assert!(newly_closed(&seen, std::slice::from_ref(&a)));
        announce(&mut seen, std::slice::from_ref(&a));
        announce(&mut seen, std::slice::from_ref(&a));
        assert_eq!(seen, [("wa".to_owned(), 0)]);
        assert!(!newly_closed(&seen, std::slice::from_ref(&a)));
        let mut next_day = a;
        next_day.day = 1;
        assert!(newly_closed(&seen, &[next_day]));
    }
}
