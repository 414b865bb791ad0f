//! `save_plan`: what a plan stores, and what a re-plan may and may not change.

use disparo::store::{PlanStats, State};

use super::support::*;

conformance! {
    /// The same plan twice: the second changes nothing and says so.
    fn same_plan_twice_is_unchanged(db) {
        let s = db.create();
        let rows = audience(5);
        let first = plan(&*s, &campaign("c"), &rows);
        assert_eq!(first, PlanStats { inserted: 5, ..PlanStats::default() });
        let before = s.messages(&Default::default()).unwrap();
        let again = plan(&*s, &campaign("c"), &rows);
        assert_eq!(again, PlanStats { unchanged: 5, ..PlanStats::default() });
        assert_eq!(s.messages(&Default::default()).unwrap(), before);
    }

    /// A re-plan updates pending messages, keeps sent and in-flight ones, cancels pending
    /// ones no longer planned, stores invalid recipients as skipped (`--skip-invalid`) and
    /// plans again what an earlier re-plan cancelled.
    fn replan_rules(db) {
        let s = db.create();
        let rows = audience(5);
        plan(&*s, &campaign("c"), &rows);
        // r0 sent, r1 in flight.
        let claimed = claim(&*s, "w", 2);
        assert_eq!(recipients(&claimed), ["r0", "r1"]);
        assert_eq!(s.complete("w", &[sent(&claimed[0], t())]).unwrap(), 1);
        // r2 changes, r3 leaves the audience, r4 stays as it was, r5 is new and invalid.
        let mut next: Vec<Msg> = rows.iter().filter(|m| m.recipient != "r3").cloned().collect();
        for m in &mut next {
            if m.recipient == "r0" || m.recipient == "r1" || m.recipient == "r2" {
                *m = m.clone().body("new text");
            }
        }
        next.push(msg("r5", t()).skipped("invalid phone"));
        let stats = plan(&*s, &campaign("c"), &next);
        assert_eq!(
            stats,
            PlanStats { inserted: 1, updated: 1, unchanged: 1, kept: 2, skipped: 1, cancelled: 1 }
        );
        assert_eq!(
            states(&*s),
            [
                ("c/r0".to_string(), State::Sent),
                ("c/r1".to_string(), State::Sending),
                ("c/r2".to_string(), State::Pending),
                ("c/r3".to_string(), State::Cancelled),
                ("c/r4".to_string(), State::Pending),
                ("c/r5".to_string(), State::Skipped),
            ]
        );
        let r2 = s.messages(&disparo::store::MessageFilter {
            recipient: Some("r2".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r2.len(), 1);
        // The claimed content of r2 is the new one.
        let c = claim_at(&*s, "w2", t(), mins(1), 10);
        let r2c = c.iter().find(|c| c.recipient == "r2").unwrap();
        assert_eq!(r2c.content.body, "new text");
        // r3 back in the audience: pending again (a re-plan cancelled it, not a person).
        let stats = plan(&*s, &campaign("c"), &rows);
        assert_eq!(stats.updated, 1, "{stats:?}");
        assert!(states(&*s).contains(&("c/r3".to_string(), State::Pending)));
    }

    /// A message `cancel` cancelled stays cancelled when a later plan includes it.
    fn cancelled_campaign_is_not_revived(db) {
        let s = db.create();
        let rows = audience(3);
        plan(&*s, &campaign("c"), &rows);
        s.set_campaign_status("c", disparo::store::CampaignStatus::Cancelled, Some("stop")).unwrap();
        assert_eq!(s.cancel_pending("c").unwrap(), 3);
        let stats = plan(&*s, &campaign("c"), &rows);
        assert_eq!(stats.kept, 3, "{stats:?}");
        assert_eq!(count(&*s, State::Cancelled), 3);
    }

    /// A source that fails halfway stores nothing, on a new campaign and on a re-plan.
    fn failing_source_stores_nothing(db) {
        let s = db.create();
        let rows = audience(6);
        let err = s.save_plan(&campaign("c"), &mut Plan::failing_after(&rows, 3)).unwrap_err();
        assert!(err.to_string().contains("row 3"), "{err}");
        assert!(s.messages(&Default::default()).unwrap().is_empty());
        assert!(s.campaign("c").unwrap().is_none());
        plan(&*s, &campaign("c"), &rows[..2]);
        let before = s.messages(&Default::default()).unwrap();
        assert!(s.save_plan(&campaign("c"), &mut Plan::failing_after(&rows, 4)).is_err());
        assert_eq!(s.messages(&Default::default()).unwrap(), before);
    }

    /// What a plan stores is what claims and reports give back, byte for byte.
    fn stored_fields_round_trip(db) {
        let s = db.create();
        let mut m = msg("r0", t() - mins(1)).occurrence(3);
        m.locale = None;
        m.reasons = "quiet_hours,weekday".into();
        m.vars = r#"{"name":"Zoë","n":1.50,"emoji":"🎉"}"#.into();
        m.content = r#"{"body":"Olá \"Zoë\" 🎉","subject":"S"}"#.into();
        let mut c = campaign("c");
        c.recurrence_start = Some("2026-11-01T09:00:00".into());
        c.rules.quiet = Some(("21:00:00".into(), "08:00:00".into()));
        plan(&*s, &c, std::slice::from_ref(&m));
        assert_eq!(s.recurrence_start("c").unwrap().as_deref(), Some("2026-11-01T09:00:00"));
        assert_eq!(s.campaign("c").unwrap().unwrap().rules, c.rules);
        let got = claim(&*s, "w", 5);
        assert_eq!(got.len(), 1);
        let g = &got[0];
        assert_eq!(g.key, disparo::store::message_key("c", "r0", 3));
        assert_eq!(g.address, m.address);
        assert_eq!(g.vars.get(), m.vars);
        assert_eq!(g.content.body, "Olá \"Zoë\" 🎉");
        assert_eq!(g.locale, None);
        assert_eq!(g.due_at, m.at);
        assert_eq!(g.planned_at, m.at);
        let rows = s.messages(&Default::default()).unwrap();
        assert_eq!(rows[0].reasons, "quiet_hours,weekday");
        assert_eq!(rows[0].occurrence, 3);
        assert_eq!(rows[0].planned_local, "2026-11-30T08:59:00-03:00");
    }

    /// A plan of 100,000 messages (PostgreSQL loads it with binary COPY): every message
    /// stored once, counts right, a re-plan unchanged.
    fn plan_of_100k(db) {
        let s = db.create();
        let rows: Vec<Msg> = (0..100_000)
            .map(|i| {
                let m = msg(&format!("r{i:06}"), t() + mins(i % 1440));
                if i % 1000 == 0 { m.skipped("invalid phone") } else { m }
            })
            .collect();
        let stats = plan(&*s, &campaign("big"), &rows);
        assert_eq!(stats, PlanStats { inserted: 100_000, skipped: 100, ..PlanStats::default() });
        let summary = &s.summaries(Some("big")).unwrap()[0];
        assert_eq!(summary.counts.get(&State::Pending), Some(&99_900));
        assert_eq!(summary.counts.get(&State::Skipped), Some(&100));
        assert_eq!(summary.next_due, Some(t()), "r001440 is due at T");
        let again = plan(&*s, &campaign("big"), &rows);
        assert_eq!(again, PlanStats { unchanged: 100_000, skipped: 100, ..PlanStats::default() });
        let sample = s.messages(&disparo::store::MessageFilter { recipient: Some("r054321".into()), ..Default::default() }).unwrap();
        assert_eq!(sample.len(), 1);
        assert_eq!(sample[0].due_at, t() + mins(54321 % 1440));
    }
}
