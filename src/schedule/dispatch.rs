//! Rules 5, 6 and 7: late one-shot messages at plan time, the decision at dispatch time, and
//! frequency caps. All take `now` as a parameter.

use std::fmt;
use std::str::FromStr;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::cron::Occurrence;
use super::window::{SendWindow, place_instant};
use super::{Placement, Reasons, place, to_instant};

/// What to do with a one-shot `at` whose placement is already in the past at plan time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LatePolicy {
    /// The same local time on the next allowed day whose placement is not in the past.
    #[default]
    NextDay,
    /// Due at once: now's local wall time, then rule 3.
    SendNow,
    /// Not sent; the message is recorded as skipped.
    Skip,
}

/// A `late:` value that is not a policy; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown late policy {0:?}: use next_day, send_now or skip")]
pub struct UnknownLatePolicy(pub String);

impl LatePolicy {
    pub const ALL: [LatePolicy; 3] = [LatePolicy::NextDay, LatePolicy::SendNow, LatePolicy::Skip];

    pub fn name(self) -> &'static str {
        match self {
            LatePolicy::NextDay => "next_day",
            LatePolicy::SendNow => "send_now",
            LatePolicy::Skip => "skip",
        }
    }
}

impl fmt::Display for LatePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LatePolicy {
    type Err = UnknownLatePolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        LatePolicy::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownLatePolicy(s.to_string()))
    }
}

/// The plan-time outcome for a one-shot message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneShot {
    /// Send at this placement (`reasons` contains `LATE` if it moved because it was late).
    Send(Placement),
    /// Late under [`LatePolicy::Skip`]: not sent. `missed` is where it would have been placed.
    Skip { missed: Placement },
}

/// How many days [`plan_at`] looks ahead for `next_day`.
const NEXT_DAY_SEARCH: usize = 400;

/// Rule 7 (with rules 2 and 3): plan a one-shot message aimed at local wall time `at`.
///
/// The message is late when its rule-3 placement (not the raw `at`) is before `now`: a target
/// inside quiet hours whose morning placement is still ahead is simply placed, not late.
/// A late message follows `late`:
/// - `next_day`: for each following local date in turn, skipping disallowed weekdays and
///   blackout dates, take the wall time `at.time()` on that date, apply rule 3 (quiet hours
///   may still move it) and use the first whose instant is not before `now`. Reasons: `late`,
///   rule 3's own, and `weekday`/`blackout` when such a day was skipped that would otherwise
///   have been used.
/// - `send_now`: now's local wall time through rule 3 (so `late`, maybe `quiet_hours`); never
///   before `now`.
/// - `skip`: [`OneShot::Skip`].
///
/// `None` when the window allows no time within 400 days.
pub fn plan_at(
    at: DateTime,
    tz: &TimeZone,
    window: &SendWindow,
    late: LatePolicy,
    now: Timestamp,
) -> Option<OneShot> {
    let placed = place(at, tz, window)?;
    if placed.at >= now {
        return Some(OneShot::Send(placed));
    }
    match late {
        LatePolicy::Skip => Some(OneShot::Skip { missed: placed }),
        LatePolicy::SendNow => {
            let mut p = place_instant(now, tz, window)?;
            p.reasons.insert(Reasons::LATE);
            Some(OneShot::Send(p))
        }
        LatePolicy::NextDay => {
            let mut reasons = Reasons::LATE;
            let mut day = at.date();
            for _ in 0..NEXT_DAY_SEARCH {
                day = day.tomorrow().ok()?;
                let candidate = day.to_datetime(at.time());
                if !window.allows_date(day) {
                    if to_instant(candidate, tz) >= now {
                        reasons.insert(if window.is_blackout(day) {
                            Reasons::BLACKOUT
                        } else {
                            Reasons::WEEKDAY
                        });
                    }
                    continue;
                }
                let p = place(candidate, tz, window)?;
                if p.at >= now {
                    return Some(OneShot::Send(Placement {
                        reasons: p.reasons | reasons,
                        ..p
                    }));
                }
            }
            None
        }
    }
}

/// No `at` and no `cron`: "as soon as allowed" is now's local wall time through rule 3, never
/// before `now`. `None` when the window allows no time within 400 days.
pub fn place_asap(tz: &TimeZone, window: &SendWindow, now: Timestamp) -> Option<Placement> {
    place_instant(now, tz, window)
}

/// Rules 2 and 3 for one occurrence of a recurring schedule (its wall time through rule 3).
pub fn place_occurrence(
    occurrence: &Occurrence,
    tz: &TimeZone,
    window: &SendWindow,
) -> Option<Placement> {
    place(occurrence.wall, tz, window)
}

/// At most `max` messages per recipient address and channel in any trailing `per` window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrequencyCap {
    pub max: u32,
    pub per: SignedDuration,
}

/// Rule 6: the earliest instant at or after `now` at which one more message is allowed, given
/// the instants of earlier sends to the address on the channel. A send at `s` counts against
/// instant `t` while `t - per < s <= t` (a send exactly `per` ago no longer counts). `None`
/// when `max` is 0. A `per` of zero or less is no cap.
pub fn cap_next_allowed(
    recent: &[Timestamp],
    cap: FrequencyCap,
    now: Timestamp,
) -> Option<Timestamp> {
    if cap.max == 0 {
        return None;
    }
    if !cap.per.is_positive() {
        return Some(now);
    }
    let max = cap.max as usize;
    let window_start = now.checked_sub(cap.per).unwrap_or(Timestamp::MIN);
    let mut counted: Vec<Timestamp> = recent
        .iter()
        .copied()
        .filter(|s| *s > window_start)
        .collect();
    if counted.len() < max {
        return Some(now);
    }
    // The max-th most recent send must leave the window: t - per >= it.
    let (_, kth, _) = counted.select_nth_unstable_by(max - 1, |a, b| b.cmp(a));
    let free = kth.checked_add(cap.per).unwrap_or(Timestamp::MAX);
    Some(free.max(now))
}

/// What `run` does with a pending message now (rule 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// Send it now.
    SendNow,
    /// Not yet: due at `placement.at`; `placement.reasons` say why it moved.
    Defer(Placement),
    /// It could only be sent more than `expire_after` after its planned instant: never send.
    Expired {
        /// How late it would be at the earliest allowed instant.
        late_by: SignedDuration,
    },
    /// No allowed instant exists (window with no allowed day within 400 days, or a cap of 0).
    Never,
}

/// Rule 5: decide a pending message at dispatch. Rule 3 is applied to `max(planned, now)`; a
/// message whose earliest allowed instant is more than `expire_after` after `planned` is
/// expired at once rather than deferred (exactly `expire_after` late is still sent).
pub fn at_dispatch(
    planned: Timestamp,
    now: Timestamp,
    tz: &TimeZone,
    window: &SendWindow,
    expire_after: Option<SignedDuration>,
) -> Dispatch {
    at_dispatch_capped(planned, now, tz, window, expire_after, &[], &[])
}

/// Rules 5 and 6 together: caps first (the earliest instant every cap allows, reason `cap`),
/// then rule 3 on that instant, then expiry against `planned`. Because a cap only loosens as
/// time passes, the rule-3 move cannot break a cap again.
pub fn at_dispatch_capped(
    planned: Timestamp,
    now: Timestamp,
    tz: &TimeZone,
    window: &SendWindow,
    expire_after: Option<SignedDuration>,
    recent: &[Timestamp],
    caps: &[FrequencyCap],
) -> Dispatch {
    let due = planned.max(now);
    let mut t = due;
    let mut reasons = Reasons::empty();
    for cap in caps {
        match cap_next_allowed(recent, *cap, t) {
            Some(free) if free > t => {
                t = free;
                reasons.insert(Reasons::CAP);
            }
            Some(_) => {}
            None => return Dispatch::Never,
        }
    }
    let Some(mut p) = place_instant(t, tz, window) else {
        return Dispatch::Never;
    };
    p.reasons.insert(reasons);
    let late_by = p.at.duration_since(planned);
    if let Some(limit) = expire_after
        && late_by > limit
    {
        return Dispatch::Expired { late_by };
    }
    if p.at <= now {
        Dispatch::SendNow
    } else {
        Dispatch::Defer(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{QuietHours, Weekdays};
    use jiff::civil::{date, time};

    fn sp() -> TimeZone {
        TimeZone::get("America/Sao_Paulo").unwrap()
    }
    fn night() -> SendWindow {
        SendWindow::new(
            Some(QuietHours::new(time(21, 0, 0, 0), time(8, 0, 0, 0)).unwrap()),
            Weekdays::ALL,
            vec![],
        )
    }
    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn late_policies() {
        let at = date(2026, 11, 27).at(10, 0, 0, 0); // 13:00Z
        let now = ts("2026-11-27T15:00:00Z"); // 12:00 local
        let Some(OneShot::Send(p)) = plan_at(at, &sp(), &night(), LatePolicy::NextDay, now) else {
            panic!()
        };
        assert_eq!(p.local, date(2026, 11, 28).at(10, 0, 0, 0));
        assert_eq!(p.reasons, Reasons::LATE);
        let Some(OneShot::Send(p)) = plan_at(at, &sp(), &night(), LatePolicy::SendNow, now) else {
            panic!()
        };
        assert_eq!((p.at, p.reasons), (now, Reasons::LATE));
        assert!(matches!(
            plan_at(at, &sp(), &night(), LatePolicy::Skip, now),
            Some(OneShot::Skip { .. })
        ));
        // Not late: unchanged.
        let early = ts("2026-11-27T12:00:00Z");
        let Some(OneShot::Send(p)) = plan_at(at, &sp(), &night(), LatePolicy::Skip, early) else {
            panic!()
        };
        assert_eq!(
            (p.at, p.reasons),
            (ts("2026-11-27T13:00:00Z"), Reasons::empty())
        );
    }

    #[test]
    fn quiet_target_with_morning_still_ahead_is_not_late() {
        // Aimed at 22:00, now 23:00 local: placement is 08:00 tomorrow, still ahead.
        let at = date(2026, 11, 27).at(22, 0, 0, 0);
        let now = ts("2026-11-28T02:00:00Z");
        let Some(OneShot::Send(p)) = plan_at(at, &sp(), &night(), LatePolicy::NextDay, now) else {
            panic!()
        };
        assert_eq!(p.local, date(2026, 11, 28).at(8, 0, 0, 0));
        assert_eq!(p.reasons, Reasons::QUIET_HOURS);
    }

    #[test]
    fn next_day_skips_weekend() {
        let w = SendWindow::new(None, Weekdays::MON_FRI, vec![]);
        let at = date(2026, 11, 27).at(10, 0, 0, 0); // Friday
        let now = ts("2026-11-27T20:00:00Z");
        let Some(OneShot::Send(p)) = plan_at(at, &sp(), &w, LatePolicy::NextDay, now) else {
            panic!()
        };
        assert_eq!(p.local, date(2026, 11, 30).at(10, 0, 0, 0));
        assert_eq!(p.reasons, Reasons::LATE | Reasons::WEEKDAY);
    }

    #[test]
    fn send_now_at_night_waits_for_morning() {
        let at = date(2026, 11, 27).at(10, 0, 0, 0);
        let now = ts("2026-11-28T01:30:00Z"); // 22:30 local
        let Some(OneShot::Send(p)) = plan_at(at, &sp(), &night(), LatePolicy::SendNow, now) else {
            panic!()
        };
        assert_eq!(p.local, date(2026, 11, 28).at(8, 0, 0, 0));
        assert_eq!(p.reasons, Reasons::LATE | Reasons::QUIET_HOURS);
    }

    #[test]
    fn dispatch_defers_into_morning_or_expires() {
        let planned = ts("2026-11-27T23:00:00Z"); // 20:00 local
        let now = ts("2026-11-28T01:00:00Z"); // 22:00 local: the run was late
        let d = at_dispatch(planned, now, &sp(), &night(), None);
        let Dispatch::Defer(p) = d else {
            panic!("{d:?}")
        };
        assert_eq!(p.at, ts("2026-11-28T11:00:00Z"));
        assert_eq!(p.reasons, Reasons::QUIET_HOURS);
        // Exactly 12 h late is still sent; with 11 h allowed it expires.
        assert_eq!(
            at_dispatch(
                planned,
                now,
                &sp(),
                &night(),
                Some(SignedDuration::from_hours(12))
            ),
            Dispatch::Defer(p)
        );
        assert_eq!(
            at_dispatch(
                planned,
                now,
                &sp(),
                &night(),
                Some(SignedDuration::from_hours(11))
            ),
            Dispatch::Expired {
                late_by: SignedDuration::from_hours(12)
            }
        );
        let soon = ts("2026-11-27T23:05:00Z");
        assert_eq!(
            at_dispatch(planned, soon, &sp(), &night(), None),
            Dispatch::SendNow
        );
    }

    #[test]
    fn cap_window_boundary() {
        let cap = FrequencyCap {
            max: 2,
            per: SignedDuration::from_hours(24 * 7),
        };
        let sends = [ts("2026-11-01T10:00:00Z"), ts("2026-11-02T10:00:00Z")];
        assert_eq!(
            cap_next_allowed(&sends, cap, ts("2026-11-03T00:00:00Z")),
            Some(ts("2026-11-08T10:00:00Z"))
        );
        assert_eq!(
            cap_next_allowed(&sends[..1], cap, ts("2026-11-03T00:00:00Z")),
            Some(ts("2026-11-03T00:00:00Z"))
        );
        assert_eq!(
            cap_next_allowed(&sends, FrequencyCap { max: 0, ..cap }, sends[0]),
            None
        );
    }

    #[test]
    fn capped_dispatch_then_quiet_hours() {
        // Florida: 3 per 24 h. The oldest of three sends leaves the window at 22:00 local,
        // inside quiet hours, so the message goes at 08:00.
        let cap = FrequencyCap {
            max: 3,
            per: SignedDuration::from_hours(24),
        };
        let sends = [
            ts("2026-11-27T01:00:00Z"),
            ts("2026-11-27T13:00:00Z"),
            ts("2026-11-27T14:00:00Z"),
        ];
        let now = ts("2026-11-27T15:00:00Z");
        let d = at_dispatch_capped(now, now, &sp(), &night(), None, &sends, &[cap]);
        let Dispatch::Defer(p) = d else {
            panic!("{d:?}")
        };
        assert_eq!(p.at, ts("2026-11-28T11:00:00Z"));
        assert_eq!(p.reasons, Reasons::CAP | Reasons::QUIET_HOURS);
    }

    #[test]
    fn late_policy_parse() {
        assert_eq!("send_now".parse::<LatePolicy>(), Ok(LatePolicy::SendNow));
        let e = "later".parse::<LatePolicy>().unwrap_err().to_string();
        assert!(e.contains("next_day") && e.contains("skip"));
    }
}
