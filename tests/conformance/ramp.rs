//! Warm-up ramps: a claim takes no more of a ramped channel's messages than its ramp day has
//! left, counting the channel's sends of the day and what any run holds under a live lease,
//! on both stores and across connections racing for the budget.

use disparo::ramp::{ChannelRamp, Ramp};
use disparo::store::{Claimed, Completion, Outcome, Store};
use jiff::{SignedDuration, Timestamp};

use super::support::*;

fn ramp_of(channel: &str, per_day: &[u64]) -> Vec<ChannelRamp> {
    vec![ChannelRamp {
        channel: channel.into(),
        ramp: Ramp::new(per_day.to_vec()).unwrap(),
    }]
}

/// Claims up to `limit` at `now` (both clocks) for a one-minute lease, under `ramps`.
fn claim_ramped(
    store: &dyn Store,
    owner: &str,
    now: Timestamp,
    limit: usize,
    ramps: &[ChannelRamp],
) -> Vec<Claimed> {
    claim_under(store, owner, now, mins(1), limit, ramps)
}

fn on(name: &str, channel: &str) -> disparo::store::CampaignRecord {
    let mut c = campaign(name);
    c.channel = channel.into();
    c
}

conformance! {
    /// Day 0 (from the first send) takes 3 in all: what w1 holds keeps w2 out; a failure and
    /// a retry give their share back, a send keeps it. Day 1 takes 5; after the last entry
    /// nothing limits the channel.
    fn claims_take_no_more_than_the_ramp_day_has_left(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(10));
        // Another channel's sends and messages are none of the ramp's business.
        plan(&*s, &on("mail", "email"), &[msg("m", t() - mins(90))]);
        let ramps = ramp_of("sms", &[3, 5]);
        let first = claim_ramped(&*s, "w1", t(), 10, &ramps);
        assert_eq!(recipients(&first), ["m", "r0", "r1", "r2"], "3 of sms, and email's");
        let other = db.writer();
        assert!(claim_ramped(&*other, "w2", t(), 10, &ramps).is_empty(), "w1 holds the day's 3");
        let mail = first.iter().find(|c| c.recipient == "m").unwrap();
        let sms: Vec<&Claimed> = first.iter().filter(|c| c.recipient != "m").collect();
        let done = [
            sent(mail, t()),
            sent(sms[0], t()),
            finished(sms[1], t(), Outcome::Failed { code: None, error: "400".into() }),
            finished(sms[2], t(), Outcome::Retry { due_at: t() + mins(1), code: None, error: "503".into() }),
        ];
        assert_eq!(s.complete("w1", &done).unwrap(), 4);
        let second = claim_ramped(&*other, "w2", t(), 10, &ramps);
        assert_eq!(recipients(&second), ["r3", "r4"], "one sent: 2 left (the retry is not due yet)");

        let usage = s.ramp_usage(&ramps, t(), t(), None).unwrap();
        assert_eq!(usage.len(), 1);
        let u = &usage[0];
        assert_eq!((u.channel.as_str(), u.first_send, u.sent, u.held), ("sms", Some(t()), 1, 2));
        assert_eq!(u.next_due, Some(t() - mins(55)));
        let day_end = t() + mins(24 * 60);
        assert_eq!(s.ramp_held_back("sms", day_end, None).unwrap(), 6, "r5..r9, and r2's retry before the day ends");
        assert_eq!(s.ramp_held_back("sms", t() + SignedDuration::from_millis(1), None).unwrap(), 5, "due by now");
        assert!(u.closed(&ramps[0].ramp, t()));
        assert_eq!(u.day(&ramps[0].ramp, t()).ends(), Some(t() + mins(24 * 60)));
        // Of one campaign only: the channel's counts, that campaign's due messages.
        let of_mail = s.ramp_usage(&ramps, t(), t(), Some("mail")).unwrap();
        assert_eq!((of_mail[0].sent, of_mail[0].held, of_mail[0].next_due), (1, 2, None));
        assert_eq!(s.ramp_held_back("sms", day_end, Some("mail")).unwrap(), 0);
        // w2 sends its two: the day's 3 are sent, and it is still day 0 a second before its end.
        assert_eq!(other.complete("w2", &[sent(&second[0], t()), sent(&second[1], t())]).unwrap(), 2);
        let late = t() + mins(24 * 60) - SignedDuration::from_secs(1);
        assert!(claim_ramped(&*s, "w3", late, 10, &ramps).is_empty());

        // Day 1: 5 are taken, most due first (r2's retry is due later than the others).
        let day1 = t() + mins(24 * 60);
        let third = claim_ramped(&*s, "w3", day1, 10, &ramps);
        assert_eq!(recipients(&third), ["r5", "r6", "r7", "r8", "r9"]);
        let done: Vec<Completion> = third.iter().map(|c| sent(c, day1)).collect();
        assert_eq!(s.complete("w3", &done).unwrap(), 5);
        let u = &s.ramp_usage(&ramps, day1, day1, None).unwrap()[0];
        assert_eq!((u.first_send, u.sent, u.held), (Some(t()), 5, 0));
        assert_eq!(s.ramp_held_back("sms", day1 + mins(24 * 60), None).unwrap(), 1, "r2's retry is due and waits");
        assert!(claim_ramped(&*other, "w4", day1, 10, &ramps).is_empty());
        // Day 2: the ramp is over, nothing limits the channel.
        let day2 = t() + mins(48 * 60);
        assert_eq!(recipients(&claim_ramped(&*other, "w4", day2, 100, &ramps)), ["r2"]);
        let u = &s.ramp_usage(&ramps, day2, day2, None).unwrap()[0];
        assert_eq!((u.sent, u.left(&ramps[0].ramp, day2)), (0, None));
    }

    /// Before the channel's first send, the first day's budget is shared by what every run
    /// holds, and its end is not known yet.
    fn before_any_send_the_first_day_counts_what_runs_hold(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(6));
        let ramps = ramp_of("sms", &[3]);
        assert_eq!(claim_ramped(&*s, "w1", t(), 2, &ramps).len(), 2);
        let other = db.writer();
        assert_eq!(claim_ramped(&*other, "w2", t(), 10, &ramps).len(), 1);
        assert!(claim_ramped(&*other, "w2", t(), 10, &ramps).is_empty());
        let u = &other.ramp_usage(&ramps, t(), t(), None).unwrap()[0];
        assert_eq!((u.first_send, u.sent, u.held, u.next_due), (None, 0, 3, Some(t() - mins(57))));
        assert_eq!(other.ramp_held_back("sms", t(), None).unwrap(), 3);
        assert_eq!(u.day(&ramps[0].ramp, t()).ends(), None);
        // Without ramps the same claim takes everything.
        assert_eq!(claim(&*other, "w3", 10).len(), 3);
        assert!(s.ramp_usage(&[], t(), t(), None).unwrap().is_empty());
    }

    /// Runs racing for one channel's budget never take more than it together.
    fn racing_runs_never_take_more_than_the_day_budget(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(40));
        drop(s);
        let db = std::sync::Arc::new(db);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4).map(|w| {
            let (db, barrier) = (db.clone(), barrier.clone());
            std::thread::spawn(move || {
                let s = db.writer();
                let ramps = ramp_of("sms", &[7]);
                barrier.wait();
                (0..5).map(|_| claim_ramped(&*s, &format!("w{w}"), t(), 3, &ramps).len()).sum::<usize>()
            })
        }).collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 7);
    }

    /// What is due, and when leases end, can leave out channels (the ramped ones whose day
    /// is spent: their messages are not due until it opens).
    fn next_due_and_lease_expiry_leave_out_the_channels_asked(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &[msg("a", t() - mins(5)), msg("b", t() - mins(4))]);
        plan(&*s, &on("w", "wa"), &[msg("x", t() - mins(3)), msg("y", t() + mins(2))]);
        assert_eq!(s.next_due(None, &[]).unwrap(), Some(t() - mins(5)));
        assert_eq!(s.next_due(None, &["sms"]).unwrap(), Some(t() - mins(3)));
        assert_eq!(s.next_due(None, &["sms", "wa"]).unwrap(), None);
        assert_eq!(s.next_due(Some("w"), &["sms"]).unwrap(), Some(t() - mins(3)));
        let got = claim_at(&*s, "w1", t(), mins(1), 3);
        assert_eq!(recipients(&got), ["a", "b", "x"]);
        let other = db.writer();
        assert!(other.next_lease_expiry(None, &[]).unwrap().is_some());
        assert!(other.next_lease_expiry(None, &["sms", "wa"]).unwrap().is_none());
        assert!(other.next_lease_expiry(Some("c"), &["wa"]).unwrap().is_some());
        assert_eq!(other.next_due(None, &["sms"]).unwrap(), Some(t() + mins(2)));
    }
}
