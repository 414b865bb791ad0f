//! Claims, leases and outcomes: the guarantees several `run` workers rely on.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use disparo::store::{CampaignStatus, ClaimRequest, Completion, Outcome, State};
use jiff::{SignedDuration, Timestamp};

use super::support::*;

conformance! {
    /// Claims take due pending messages, most due first, up to the limit; not what is due later.
    fn claims_due_messages_in_due_order(db) {
        let s = db.create();
        let mut rows = audience(5);
        rows.push(msg("later", t() + mins(5)));
        plan(&*s, &campaign("c"), &rows);
        assert_eq!(recipients(&claim(&*s, "w", 3)), ["r0", "r1", "r2"]);
        assert_eq!(recipients(&claim(&*s, "w", 10)), ["r3", "r4"]);
        assert!(claim(&*s, "w", 10).is_empty());
        let c = &claim_at(&*s, "w", t() + mins(5), mins(1), 10)[0];
        assert_eq!(c.recipient, "later");
        assert_eq!(c.attempts, 0);
        assert_eq!(c.key, disparo::store::message_key("c", "later", 0));
    }

    /// Eight workers (eight connections) racing for 400 messages: each message is claimed by
    /// exactly one of them.
    fn racing_claims_never_share_a_message(db) {
        let _s = db.create();
        let rows: Vec<Msg> = (0..400).map(|i| msg(&format!("r{i:03}"), t() - mins(1))).collect();
        plan(&*_s, &campaign("c"), &rows);
        let workers = 8;
        let barrier = Arc::new(Barrier::new(workers));
        let db = Arc::new(db);
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (db, barrier) = (db.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let s = db.writer();
                    barrier.wait();
                    let mut mine = Vec::new();
                    loop {
                        let got = claim(&*s, &format!("w{w}"), 7);
                        if got.is_empty() {
                            break;
                        }
                        mine.extend(got.into_iter().map(|c| c.id));
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().unwrap());
        }
        let unique: HashSet<i64> = all.iter().copied().collect();
        assert_eq!(all.len(), 400, "claimed {} times for 400 messages", all.len());
        assert_eq!(unique.len(), 400);
    }

    /// A lease that expired is taken over by the next claim; a live one is not.
    fn expired_leases_are_taken_over(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(2));
        // w1's lease of r0 is already over when it is granted; w1's r1 is live.
        let dead = claim_at(&*s, "w1", t(), SignedDuration::from_secs(-1), 1);
        assert_eq!(recipients(&dead), ["r0"]);
        let live = claim(&*s, "w1", 1);
        assert_eq!(recipients(&live), ["r1"]);
        let other = db.writer();
        let taken = claim(&*other, "w2", 10);
        assert_eq!(recipients(&taken), ["r0"], "only the expired lease is taken over");
        // The dead run never started r0: taking it over spends no attempt.
        assert_eq!(taken[0].attempts, 0);
        // w1's late outcome for r0 is ignored: w2 holds it now.
        assert_eq!(s.complete("w1", &[sent(&dead[0], t())]).unwrap(), 0);
        assert_eq!(other.complete("w2", &[sent(&taken[0], t())]).unwrap(), 1);
        let rows = s.messages(&Default::default()).unwrap();
        let r0 = rows.iter().find(|m| m.recipient == "r0").unwrap();
        assert_eq!(r0.provider_id.as_deref(), Some("p-r0"));
        assert_eq!(r0.state, State::Sent);
    }

    /// A message whose send had started when its run died counts that attempt as of unknown
    /// outcome (`lease_expired`) when it is taken over.
    fn started_sends_count_when_taken_over(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(1));
        let c = claim_at(&*s, "w1", t(), SignedDuration::from_secs(-1), 1);
        let started = Completion { id: c[0].id, attempt: 1, started_at: t(), finished_at: t(), outcome: Outcome::Started };
        assert_eq!(s.complete("w1", &[started]).unwrap(), 0, "Started is not an outcome");
        let taken = claim(&*s, "w2", 1);
        assert_eq!(taken[0].attempts, 1);
        let m = &s.messages(&Default::default()).unwrap()[0];
        assert!(m.last_error.as_deref().unwrap_or_default().contains("w1"), "{m:?}");
    }

    /// Only the lease holder records outcomes; a retry goes back to pending at its time.
    fn only_the_lease_holder_completes(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(2));
        let c = claim(&*s, "w1", 2);
        assert_eq!(s.complete("intruder", &[sent(&c[0], t())]).unwrap(), 0);
        let retry = Completion {
            id: c[1].id,
            attempt: 1,
            started_at: t(),
            finished_at: t(),
            outcome: Outcome::Retry { due_at: t() + mins(10), code: Some("429".into()), error: "slow down".into() },
        };
        assert_eq!(s.complete("w1", &[sent(&c[0], t()), retry]).unwrap(), 2);
        // Recording the same outcomes again changes nothing (the lease is gone).
        assert_eq!(s.complete("w1", &[sent(&c[0], t())]).unwrap(), 0);
        let rows = s.messages(&Default::default()).unwrap();
        let by = |r: &str| rows.iter().find(|m| m.recipient == r).unwrap().clone();
        assert_eq!((by("r0").state, by("r0").attempts), (State::Sent, 1));
        assert_eq!((by("r1").state, by("r1").attempts, by("r1").due_at), (State::Pending, 1, t() + mins(10)));
        assert_eq!(by("r1").last_error.as_deref(), Some("slow down"));
        assert_eq!(s.next_due(None, &[]).unwrap(), Some(t() + mins(10)));
        let again = claim_at(&*s, "w2", t() + mins(10), mins(1), 5);
        assert_eq!((again[0].recipient.as_str(), again[0].attempts), ("r1", 1));
        let mut n = 0;
        s.report_attempts("c", &mut |a| {
            n += 1;
            assert!(a.outcome == "sent" || a.outcome == "retry", "{a:?}");
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
        let mut report = Vec::new();
        s.report("c", &mut |r| {
            report.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(report.len(), 2);
        let r0 = report.iter().find(|r| r.recipient == "r0").unwrap();
        assert_eq!((r0.last_outcome.as_deref(), r0.sent_at), (Some("sent"), Some(t())));
        let run = s.last_run("c", mins(5)).unwrap().unwrap();
        assert_eq!((run.attempts, run.sent), (2, 1));
    }

    /// Renewing extends every lease the owner holds, and only its own.
    fn renew_leases_extends_what_the_owner_holds(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(3));
        let now = Timestamp::now();
        let a = claim_at(&*s, "w1", now, SignedDuration::from_secs(-1), 2);
        assert_eq!(a.len(), 2);
        claim_at(&*s, "w2", now, mins(1), 1);
        assert_eq!(s.renew_leases("w1", Timestamp::now() + mins(1)).unwrap(), 2);
        // Renewed: nobody may take them over now.
        assert!(claim_at(&*s, "w3", Timestamp::now(), mins(1), 10).is_empty());
        assert_eq!(s.renew_leases("nobody", Timestamp::now() + mins(1)).unwrap(), 0);
    }

    /// `next_due` is the earliest pending message of an active campaign; `next_lease_expiry`
    /// the earliest lease of a message in flight, on the caller's clock.
    fn next_due_and_next_lease_expiry(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &[msg("a", t() + mins(3)), msg("b", t() + mins(7))]);
        plan(&*s, &campaign("d"), &[msg("x", t() + mins(1))]);
        assert_eq!(s.next_due(None, &[]).unwrap(), Some(t() + mins(1)));
        assert_eq!(s.next_due(Some("c"), &[]).unwrap(), Some(t() + mins(3)));
        s.set_campaign_status("d", CampaignStatus::Paused, None).unwrap();
        assert_eq!(s.next_due(None, &[]).unwrap(), Some(t() + mins(3)));
        assert_eq!(s.next_lease_expiry(None, &[]).unwrap(), None);
        let now = Timestamp::now();
        let c = s.complete_and_claim(&[], &ClaimRequest {
            owner: "w",
            now: t() + mins(3),
            lease_now: now,
            lease_until: now + mins(2),
            limit: 1,
            campaign: None,
            ramps: &[],
        }).unwrap().1;
        assert_eq!(c.len(), 1);
        let expiry = s.next_lease_expiry(Some("c"), &[]).unwrap().expect("a lease");
        // On the caller's clock: where it put it, give or take the clocks' agreement.
        let off = expiry.duration_since(now + mins(2)).abs();
        assert!(off < SignedDuration::from_secs(1), "expiry {expiry} vs {}", now + mins(2));
        assert_eq!(s.next_lease_expiry(Some("d"), &[]).unwrap(), None);
        assert_eq!(s.next_due(Some("c"), &[]).unwrap(), Some(t() + mins(7)));
    }

    /// Claims skip paused and cancelled campaigns; resuming brings them back; cancelling
    /// cancels every pending message; a claim can be limited to one campaign.
    fn pause_resume_cancel(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(2));
        plan(&*s, &campaign("d"), &audience(2));
        s.set_campaign_status("c", CampaignStatus::Paused, Some("checking")).unwrap();
        let info = s.campaign("c").unwrap().unwrap();
        assert_eq!((info.status, info.status_reason.as_deref()), (CampaignStatus::Paused, Some("checking")));
        let got = claim(&*s, "w", 10);
        assert!(got.iter().all(|c| c.campaign == "d"), "{:?}", recipients(&got));
        assert_eq!(got.len(), 2);
        s.set_campaign_status("c", CampaignStatus::Active, None).unwrap();
        let only = s.complete_and_claim(&[], &ClaimRequest { owner: "w", now: t(), lease_now: t(), lease_until: t() + mins(1), limit: 1, campaign: Some("c"), ramps: &[] }).unwrap().1;
        assert_eq!((only.len(), only[0].campaign.as_str()), (1, "c"));
        s.set_campaign_status("c", CampaignStatus::Cancelled, Some("stop")).unwrap();
        assert_eq!(s.cancel_pending("c").unwrap(), 1);
        assert!(claim(&*s, "w", 10).is_empty());
        let sum = s.summaries(Some("c")).unwrap();
        assert_eq!(sum[0].status, CampaignStatus::Cancelled);
        assert_eq!(sum[0].counts.get(&State::Cancelled), Some(&1));
        assert_eq!(sum[0].counts.get(&State::Sending), Some(&1));
        assert!(matches!(
            s.set_campaign_status("nope", CampaignStatus::Paused, None),
            Err(disparo::store::StoreError::UnknownCampaign(_))
        ));
        assert!(s.summaries(Some("nope")).is_err());
    }
}
