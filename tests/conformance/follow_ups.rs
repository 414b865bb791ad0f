//! Follow-ups: drafts stored by a follow-up's plan, released into messages once per parent
//! message as its facts decide them, re-planned without duplicates — alike on every store.

use disparo::follow_up::{Condition, FollowRule};
use disparo::receipt::{Applied, Effect, Event, Receipt, Source, Target};
use disparo::store::{CampaignRecord, ReleaseStats, State};

use super::support::*;

fn follow_up(name: &str, parent: &str, when: Condition) -> CampaignRecord {
    let mut c = campaign(name);
    c.channel = "mail".into();
    c.rules.quiet = Some(("21:00:00".into(), "08:00:00".into()));
    c.rules.follows = Some(FollowRule {
        parent: parent.into(),
        when,
        after_secs: 86_400,
        within_secs: 3 * 86_400,
    });
    c
}

fn read(provider_id: &str, at: jiff::Timestamp) -> Receipt {
    Receipt {
        source: Source::Whatsapp,
        target: Target {
            provider_id: Some(provider_id.into()),
            ..Default::default()
        },
        event: Event::Read,
        code: None,
        detail: None,
        occurred_at: at,
        raw: "{}".into(),
        dedupe: format!("{provider_id}-read"),
        effect: Effect::None,
    }
}

/// The follow-up campaign's messages: recipient, state, due instant, last error.
fn follow_ups(
    s: &dyn disparo::store::Store,
    campaign: &str,
) -> Vec<(String, State, String, String)> {
    let mut rows: Vec<_> = s
        .messages(&disparo::store::MessageFilter {
            campaign: Some(campaign.into()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.recipient,
                m.state,
                m.due_at.to_string(),
                m.last_error.unwrap_or_default(),
            )
        })
        .collect();
    rows.sort();
    rows
}

conformance! {
    fn a_follow_up_is_released_once_per_parent_message_as_its_facts_decide(db) {
        let s = db.create();
        // Parent: r0..r3 sent at T (12:00Z = 09:00 in São Paulo); r3 is still pending.
        plan(&*s, &campaign("wa"), &audience(4));
        let claimed = claim(&*s, "w", 3);
        let done: Vec<_> = claimed.iter().map(|m| sent(m, t())).collect();
        s.complete("w", &done).unwrap();
        let stats = plan(&*s, &follow_up("nudge", "wa", Condition::NotRead), &audience(4));
        assert_eq!((stats.inserted, stats.cancelled), (4, 0));
        assert!(follow_ups(&*s, "nudge").is_empty(), "a draft is no message");
        let progress = s.follow_up_progress("nudge", "wa").unwrap();
        assert_eq!((progress.drafts, progress.waiting), (4, 4));
        // r0 reads it an hour later.
        let p0 = format!("p-{}", claimed.iter().find(|c| c.recipient == "r0").unwrap().recipient);
        assert_eq!(s.record_receipts(&[read(&p0, t() + mins(60))], t() + mins(60)).unwrap(), [Applied::Recorded]);
        // Before the day is over only the read one is decided.
        let early = s.release_follow_ups(t() + mins(120)).unwrap();
        assert_eq!(early, ReleaseStats { released: 0, not_needed: 1, waiting: 0 });
        // A day later r1 and r2 are due at T + 24 h (09:00 local: allowed); r3 still waits.
        let day = s.release_follow_ups(t() + mins(24 * 60 + 1)).unwrap();
        assert_eq!(day, ReleaseStats { released: 2, not_needed: 0, waiting: 0 });
        let again = s.release_follow_ups(t() + mins(24 * 60 + 2)).unwrap();
        assert_eq!(again, ReleaseStats::default(), "released once");
        let rows = follow_ups(&*s, "nudge");
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].0.as_str(), rows[0].1), ("r0", State::Cancelled));
        assert!(rows[0].3.starts_with("not needed: wa read at"), "{rows:?}");
        assert_eq!((rows[1].0.as_str(), rows[1].1, rows[1].2.as_str()), ("r1", State::Pending, "2026-12-01T12:00:00Z"));
        assert_eq!((rows[2].0.as_str(), rows[2].1), ("r2", State::Pending));
        assert_eq!(s.follow_up_progress("nudge", "wa").unwrap().waiting, 1, "r3's parent is not sent");
        // The parent facts the send-time check reads.
        let facts = s.parent_facts("wa", Some(&["r0", "r3"])).unwrap();
        assert_eq!(facts.len(), 2);
        let r0 = facts.iter().find(|f| f.recipient == "r0").unwrap();
        assert_eq!((r0.state, r0.read_at), (State::Sent, Some(t() + mins(60))));
        assert_eq!(facts.iter().find(|f| f.recipient == "r3").unwrap().state, State::Pending);
        assert_eq!(s.parent_facts("wa", None).unwrap().len(), 4);
        // A released follow-up is an ordinary message: claimed with its parent's occurrence.
        let due = claim_at(&*s, "w2", t() + mins(24 * 60 + 5), mins(1), 10);
        let mut got: Vec<_> = due.iter().filter(|c| c.campaign == "nudge").map(|c| (c.recipient.clone(), c.occurrence, c.channel.clone())).collect();
        got.sort();
        assert_eq!(got, [("r1".to_string(), 0, "mail".to_string()), ("r2".to_string(), 0, "mail".to_string())]);
    }

    fn re_planning_a_follow_up_updates_what_is_not_sent_and_cancels_who_left(db) {
        let s = db.create();
        plan(&*s, &campaign("wa"), &audience(3));
        let claimed = claim(&*s, "w", 3);
        let done: Vec<_> = claimed.iter().map(|m| sent(m, t())).collect();
        s.complete("w", &done).unwrap();
        let rule = follow_up("nudge", "wa", Condition::Sent);
        plan(&*s, &rule, &audience(3));
        assert_eq!(s.release_follow_ups(t()).unwrap().released, 3);
        // New wording, and r2 leaves the audience.
        let rows: Vec<Msg> = audience(2).into_iter().map(|m| m.body("Oi de novo")).collect();
        let stats = plan(&*s, &rule, &rows);
        assert_eq!((stats.inserted, stats.updated, stats.unchanged, stats.cancelled), (0, 2, 0, 1));
        let rows_now = follow_ups(&*s, "nudge");
        assert_eq!(rows_now.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(), [("r0", State::Pending), ("r1", State::Pending), ("r2", State::Cancelled)]);
        // The same plan again changes nothing, and releasing again adds nothing.
        let same = plan(&*s, &rule, &rows);
        assert_eq!((same.inserted, same.updated, same.unchanged, same.cancelled), (0, 0, 2, 0));
        assert_eq!(s.release_follow_ups(t() + mins(1)).unwrap(), ReleaseStats::default());
        // What is sent is the new wording.
        let due = claim_at(&*s, "w2", t() + mins(25 * 60), mins(1), 10);
        assert_eq!(due.len(), 2);
        assert!(due.iter().all(|c| c.content.body == "Oi de novo"), "{:?}", due.iter().map(|c| &c.content.body).collect::<Vec<_>>());
    }

    fn a_parent_never_attempted_or_refused_decides_at_once(db) {
        let s = db.create();
        plan(&*s, &campaign("wa"), &[msg("a", t()), msg("b", t()).skipped("suppressed"), msg("c", t())]);
        let claimed = claim(&*s, "w", 2);
        let c = claimed.iter().find(|m| m.recipient == "c").unwrap();
        s.complete("w", &[disparo::store::Completion {
            id: c.id,
            attempt: 1,
            started_at: t(),
            finished_at: t(),
            outcome: disparo::store::Outcome::Failed { code: Some("131026".into()), error: "undeliverable".into() },
        }]).unwrap();
        plan(&*s, &follow_up("fallback", "wa", Condition::Failed), &[msg("a", t()), msg("b", t()), msg("c", t())]);
        let stats = s.release_follow_ups(t()).unwrap();
        assert_eq!((stats.released, stats.not_needed), (1, 1), "c failed: due; b was skipped: not needed; a is in flight");
        let rows = follow_ups(&*s, "fallback");
        assert_eq!(rows.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(), [("b", State::Cancelled), ("c", State::Pending)]);
        assert!(rows[0].3.contains("wa was skipped"), "{rows:?}");
    }

    /// docs/follow-ups.md: "a read receipt that arrives after the SMS was planned, even while
    /// `run` holds it, cancels it instead … Receipts move the store's gate, so a run in
    /// progress re-reads this before its next send." A run only re-reads the facts of what
    /// it holds (and so `withdrawn`) when the gate moved; a read receipt does not move it.
    fn a_read_receipt_moves_the_gate_so_a_run_holding_its_follow_up_looks_again(db) {
        let s = db.create();
        plan(&*s, &campaign("wa"), &audience(1));
        let claimed = claim(&*s, "w", 1);
        s.complete("w", &[sent(&claimed[0], t())]).unwrap();
        plan(&*s, &follow_up("nudge", "wa", Condition::NotRead), &audience(1));
        assert_eq!(s.release_follow_ups(t() + mins(24 * 60)).unwrap().released, 1);
        // A run claims the SMS (it holds it, waiting for its turn under a rate limit).
        let held = claim_at(&*s, "w2", t() + mins(24 * 60 + 1), mins(10), 10);
        assert_eq!(held.len(), 1);
        let before = s.gate().unwrap();
        // Then the WhatsApp read receipt arrives.
        assert_eq!(
            s.record_receipts(&[read("p-r0", t() + mins(24 * 60 + 2))], t() + mins(24 * 60 + 2)).unwrap(),
            [Applied::Recorded]
        );
        assert_ne!(s.gate().unwrap(), before, "the run holding the SMS is told to look again");
    }

    /// A parent skipped at plan (an invalid number, later fixed) or cancelled by a re-plan
    /// (removed from the audience, then added back) is planned again by the next plan of the
    /// parent and sent; but its follow-up was already recorded `not needed: wa was skipped`
    /// under the same (recipient, occurrence), so the recipient never gets it.
    fn a_parent_planned_again_after_its_follow_up_was_judged_not_needed_still_gets_it(db) {
        let s = db.create();
        let wa = campaign("wa");
        plan(&*s, &wa, &[msg("r0", t()).skipped("invalid: phone"), msg("r1", t()), msg("r2", t())]);
        // r2 leaves the audience before anything is sent.
        plan(&*s, &wa, &[msg("r0", t()).skipped("invalid: phone"), msg("r1", t())]);
        let claimed = claim(&*s, "w", 5);
        assert_eq!(recipients(&claimed), ["r1"]);
        s.complete("w", &[sent(&claimed[0], t())]).unwrap();
        let rule = follow_up("nudge", "wa", Condition::Sent);
        plan(&*s, &rule, &[msg("r0", t()), msg("r1", t()), msg("r2", t())]);
        let first = s.release_follow_ups(t()).unwrap();
        assert_eq!((first.released, first.not_needed), (1, 2));
        // The operator fixes r0's number and puts r2 back: both are planned and sent.
        let stats = plan(&*s, &wa, &[msg("r0", t()), msg("r1", t()), msg("r2", t())]);
        assert_eq!(stats.updated, 2, "r0 and r2 are pending again");
        let again = claim_at(&*s, "w", t() + mins(10), mins(1), 5);
        assert_eq!(recipients(&again).len(), 2);
        let done: Vec<_> = again.iter().map(|m| sent(m, t() + mins(10))).collect();
        s.complete("w", &done).unwrap();
        s.release_follow_ups(t() + mins(30 * 60)).unwrap();
        let rows = follow_ups(&*s, "nudge");
        assert_eq!(
            rows.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(),
            [("r0", State::Pending), ("r1", State::Pending), ("r2", State::Pending)],
            "every recipient whose WhatsApp was sent gets the follow-up: {rows:?}"
        );
    }

    /// A release and a re-plan of the follow-up at once. The re-plan removes r1 from the
    /// follow-up's audience, so it cancels r1's pending follow-up and deletes its draft; the
    /// release, started just before, inserted r1's message from that draft and has not
    /// committed. SQLite serializes the two (both take the write lock first); PostgreSQL runs
    /// them side by side in READ COMMITTED and neither takes a lock the other waits for, so
    /// the re-plan's cancel does not see the release's row: r1 stays pending and is sent
    /// though the plan removed it. (The gate row's lock, held here, only widens the window:
    /// both block on it at their very end, after everything else they do.)
    fn a_release_racing_a_re_plan_never_leaves_a_message_for_a_recipient_the_plan_removed(db) {
        let s = db.create();
        plan(&*s, &campaign("wa"), &audience(2));
        let claimed = claim(&*s, "w", 2);
        let done: Vec<_> = claimed.iter().map(|m| sent(m, t())).collect();
        s.complete("w", &done).unwrap();
        let rule = follow_up("nudge", "wa", Condition::Sent);
        plan(&*s, &rule, &audience(2));
        enum Hold {
            Sqlite(rusqlite::Connection),
            Postgres(postgres::Client),
        }
        let mut hold = match &db.location {
            disparo::store::Location::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                Hold::Sqlite(c)
            }
            disparo::store::Location::Postgres(url) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
                c.batch_execute("BEGIN; SELECT value FROM control WHERE name = 'gate' FOR UPDATE").unwrap();
                Hold::Postgres(c)
            }
        };
        std::thread::scope(|scope| {
            let release = scope.spawn(|| db.writer().release_follow_ups(t()).unwrap());
            std::thread::sleep(std::time::Duration::from_millis(400));
            let replan = scope.spawn(|| plan(&*db.writer(), &rule, &audience(1)));
            std::thread::sleep(std::time::Duration::from_millis(400));
            match &mut hold {
                Hold::Sqlite(c) => c.execute_batch("COMMIT").unwrap(),
                Hold::Postgres(c) => c.batch_execute("COMMIT").unwrap(),
            }
            release.join().unwrap();
            replan.join().unwrap();
        });
        let rows = follow_ups(&*s, "nudge");
        assert!(
            !rows.iter().any(|r| r.0 == "r1" && r.1 == State::Pending),
            "r1 left the follow-up's audience: {rows:?}"
        );
    }

    /// What `run` prints ("follow-ups: N planned, M not needed") and what `status` and the
    /// report show as `not needed` should be one number. A draft stored skipped (suppressed
    /// at plan) is released as `skipped`, and the release counts it `not_needed`; status
    /// counts only `cancelled` rows whose note starts with "not needed".
    fn a_skipped_draft_is_counted_alike_by_the_release_and_by_status(db) {
        let s = db.create();
        plan(&*s, &campaign("wa"), &audience(2));
        let claimed = claim(&*s, "w", 2);
        let done: Vec<_> = claimed.iter().map(|m| sent(m, t())).collect();
        s.complete("w", &done).unwrap();
        plan(&*s, &follow_up("nudge", "wa", Condition::Sent), &[msg("r0", t()), msg("r1", t()).skipped("suppressed")]);
        let stats = s.release_follow_ups(t()).unwrap();
        let progress = s.follow_up_progress("nudge", "wa").unwrap();
        assert_eq!(stats.released, 1);
        assert_eq!(stats.not_needed, progress.not_needed, "{stats:?} vs {progress:?}");
    }
}
