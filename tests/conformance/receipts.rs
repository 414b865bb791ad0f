//! Receipts: stored once, a delivery status that never moves backwards, effects on addresses
//! and messages, late matching, and the funnel — alike on every store.

use disparo::receipt::{Applied, CallbackRef, Effect, Event, FunnelBy, Receipt, Source, Target};
use disparo::store::State;

use super::support::*;

fn receipt(provider_id: &str, event: Event, dedupe: &str) -> Receipt {
    Receipt {
        source: Source::Whatsapp,
        target: Target {
            provider_id: Some(provider_id.into()),
            ..Default::default()
        },
        event,
        code: None,
        detail: None,
        occurred_at: t(),
        raw: "{}".into(),
        dedupe: dedupe.into(),
        effect: Effect::None,
    }
}

/// Plans `n` messages and sends them all (provider ids `p-r0`, `p-r1`, ...).
fn sent_campaign(s: &dyn disparo::store::Store, n: usize) -> Vec<disparo::store::Claimed> {
    plan(s, &campaign("c"), &audience(n));
    let c = claim(s, "w", n);
    let done: Vec<_> = c.iter().map(|m| sent(m, t())).collect();
    s.complete("w", &done).unwrap();
    c
}

conformance! {
    fn a_receipt_is_stored_once_and_the_status_only_moves_up(db) {
        let s = db.create();
        sent_campaign(&*s, 2);
        let read = receipt("p-r0", Event::Read, "r0-read");
        let delivered = receipt("p-r0", Event::Delivered, "r0-delivered");
        // Read overtakes delivered: read stays.
        assert_eq!(s.record_receipts(std::slice::from_ref(&read), t()).unwrap(), [Applied::Recorded]);
        assert_eq!(s.record_receipts(std::slice::from_ref(&delivered), t()).unwrap(), [Applied::Stale]);
        // The provider sends both again: nothing new.
        assert_eq!(s.record_receipts(&[read, delivered], t()).unwrap(), [Applied::Duplicate, Applied::Duplicate]);
        // A failure after delivery does not undo it.
        let mut failed = receipt("p-r1", Event::Delivered, "r1-delivered");
        assert_eq!(s.record_receipts(&[failed.clone()], t()).unwrap(), [Applied::Recorded]);
        failed.event = Event::Failed;
        failed.dedupe = "r1-failed".into();
        assert_eq!(s.record_receipts(&[failed], t()).unwrap(), [Applied::Stale]);
        let f = &s.funnel(Some("c"), FunnelBy::Campaign).unwrap()[0];
        assert_eq!((f.planned, f.sent, f.delivered, f.read, f.failed), (2, 2, 2, 1, 0));
        let mut rows = Vec::new();
        s.report("c", &mut |r| { rows.push(r); Ok(()) }).unwrap();
        rows.sort_by(|a, b| a.recipient.cmp(&b.recipient));
        assert_eq!(rows[0].delivery.as_deref(), Some("read"));
        assert_eq!(rows[0].read_at, Some(t()));
        assert_eq!(rows[0].delivered_at, None, "a stale event sets nothing");
        assert_eq!(rows[1].delivery.as_deref(), Some("delivered"));
    }

    fn unknown_ids_are_kept_and_matched_when_the_send_is_recorded(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(1));
        let c = claim(&*s, "w", 1);
        // The provider's status overtakes the run's record of the send.
        let early = receipt("p-r0", Event::Delivered, "early");
        assert_eq!(s.record_receipts(&[early], t()).unwrap(), [Applied::Unmatched]);
        assert_eq!(s.match_receipts(t() - mins(5), t()).unwrap(), 0, "nothing to match yet");
        s.complete("w", &[sent(&c[0], t())]).unwrap();
        assert_eq!(s.match_receipts(t() - mins(5), t()).unwrap(), 1);
        assert_eq!(s.match_receipts(t() - mins(5), t()).unwrap(), 0, "matched once");
        let f = &s.funnel(None, FunnelBy::Campaign).unwrap()[0];
        assert_eq!(f.delivered, 1);
        // An id nobody sent stays unmatched, and is no error.
        assert_eq!(s.record_receipts(&[receipt("p-nobody", Event::Read, "x")], t()).unwrap(), [Applied::Unmatched]);
    }

    fn the_callback_reference_names_a_message_without_the_provider_id(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(1));
        let c = claim(&*s, "w", 1);
        let mut r = receipt("p-unknown", Event::Read, "ref");
        r.target.reference = Some(CallbackRef::new(&c[0].key, c[0].id));
        assert_eq!(s.record_receipts(&[r.clone()], t()).unwrap(), [Applied::Recorded]);
        // A reference whose key does not match its row is not believed.
        let mut forged = r.clone();
        forged.dedupe = "forged".into();
        forged.target.reference = Some(CallbackRef::new("m-000000000000000000000000", c[0].id));
        assert_eq!(s.record_receipts(&[forged], t()).unwrap(), [Applied::Unmatched]);
    }

    fn opt_outs_suppress_move_the_gate_and_count_in_the_funnel(db) {
        let s = db.create();
        let c = sent_campaign(&*s, 3);
        let gate = s.gate().unwrap();
        let mut stop = receipt("p-r0", Event::Failed, "r0-131050");
        stop.code = Some("131050".into());
        stop.effect = Effect::Suppress { reason: "WhatsApp 131050: user stopped marketing messages".into() };
        assert_eq!(s.record_receipts(&[stop], t()).unwrap(), [Applied::Recorded]);
        assert!(s.is_suppressed(&c[0].address).unwrap(), "the message's address is suppressed");
        assert_ne!(s.gate().unwrap(), gate, "runs holding claims must look again");
        // An opt-out by address alone (a STOP from a number we never messaged).
        let stop_only = Receipt {
            target: Target { address: Some("+5511999990000".into()), ..Default::default() },
            event: Event::OptedOut,
            effect: Effect::Suppress { reason: "STOP".into() },
            source: Source::Twilio,
            ..receipt("", Event::OptedOut, "stop-1")
        };
        assert_eq!(s.record_receipts(&[stop_only], t()).unwrap(), [Applied::Recorded]);
        assert!(s.is_suppressed("+5511999990000").unwrap());
        // START lifts only the suppression STOP made.
        let start = Receipt {
            target: Target { address: Some("+5511999990000".into()), ..Default::default() },
            event: Event::OptedIn,
            effect: Effect::Unsuppress { source: "twilio".into() },
            source: Source::Twilio,
            ..receipt("", Event::OptedIn, "start-1")
        };
        s.record_receipts(std::slice::from_ref(&start), t()).unwrap();
        assert!(!s.is_suppressed("+5511999990000").unwrap());
        s.suppress("+5511999990000", Some("asked by phone"), "cli", t()).unwrap();
        s.record_receipts(&[Receipt { dedupe: "start-2".into(), ..start }], t()).unwrap();
        assert!(s.is_suppressed("+5511999990000").unwrap(), "a START does not lift another opt-out");
        // An opt-out traced to a message by (campaign, recipient), as an unsubscribe link does.
        let unsub = Receipt {
            target: Target { recipient: Some(("c".into(), "r1".into())), ..Default::default() },
            event: Event::OptedOut,
            effect: Effect::Suppress { reason: "unsubscribe link".into() },
            source: Source::Unsubscribe,
            ..receipt("", Event::OptedOut, "unsub-r1")
        };
        assert_eq!(s.record_receipts(std::slice::from_ref(&unsub), t()).unwrap(), [Applied::Recorded]);
        assert!(s.is_suppressed(&c[1].address).unwrap());
        // A link made for another address (a test send's, to a tester) names the recipient
        // but is not its message: the tester is suppressed, the recipient's message untouched.
        let tester = Receipt {
            target: Target {
                recipient: Some(("c".into(), "r2".into())),
                address: Some("+5511900009999".into()),
                ..Default::default()
            },
            dedupe: "unsub-tester".into(),
            ..unsub.clone()
        };
        assert_eq!(s.record_receipts(&[tester], t()).unwrap(), [Applied::Recorded]);
        assert!(s.is_suppressed("+5511900009999").unwrap());
        assert!(!s.is_suppressed(&c[2].address).unwrap());
        let f = &s.funnel(Some("c"), FunnelBy::Campaign).unwrap()[0];
        assert_eq!((f.failed, f.undelivered, f.opted_out), (1, 1, 1));
    }

    fn a_late_failure_counts_as_failed_and_undelivered_a_failed_send_only_as_failed(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(3));
        let c = claim(&*s, "w", 3);
        let mut done: Vec<_> = c.iter().map(|m| sent(m, t())).collect();
        done[2].outcome = disparo::store::Outcome::Failed { code: Some("HTTP 400".into()), error: "refused".into() };
        s.complete("w", &done).unwrap();
        let mut late = receipt(&format!("p-{}", c[0].recipient), Event::Failed, "late");
        late.code = Some("30008".into());
        assert_eq!(s.record_receipts(&[late], t()).unwrap(), [Applied::Recorded]);
        s.record_receipts(&[receipt(&format!("p-{}", c[1].recipient), Event::Read, "read")], t()).unwrap();
        let f = &s.funnel(Some("c"), FunnelBy::Campaign).unwrap()[0];
        // The late failure stays `sent` in the queue: counted as sent, failed and undelivered.
        assert_eq!(
            (f.planned, f.sent, f.delivered, f.read, f.failed, f.undelivered, f.bounced),
            (3, 2, 1, 1, 2, 1, 0)
        );
        assert_eq!((f.delivered_pct(), f.read_pct()), (Some(50.0), Some(100.0)));
        assert_eq!(states(&*s).iter().filter(|(_, st)| *st == State::Sent).count(), 2);
    }

    fn the_per_user_limit_sends_again_a_day_later(db) {
        let s = db.create();
        sent_campaign(&*s, 1);
        let mut limit = receipt("p-r0", Event::Failed, "r0-131049");
        limit.code = Some("131049".into());
        limit.effect = Effect::Resend { after_secs: 86_400 };
        s.record_receipts(&[limit], t()).unwrap();
        assert_eq!(states(&*s), [("c/r0".to_string(), State::Pending)]);
        let row = &s.messages(&Default::default()).unwrap()[0];
        assert_eq!(row.due_at, t() + mins(24 * 60));
        assert!(row.last_error.as_deref().unwrap().contains("131049"), "{:?}", row.last_error);
        assert!(claim(&*s, "w", 1).is_empty(), "not due before the day is over");
        // The next send starts the ladder again.
        let again = claim_at(&*s, "w", t() + mins(24 * 60), mins(1), 1);
        assert_eq!(again.len(), 1);
    }

    fn the_report_gathers_the_same_figures_on_every_store(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(3));
        let c = claim(&*s, "w", 3);
        let mut done: Vec<_> = c.iter().map(|m| sent(m, t())).collect();
        done[2].outcome = disparo::store::Outcome::Failed { code: Some("HTTP 400".into()), error: "<b>no</b>".into() };
        s.complete("w", &done).unwrap();
        let mut read = receipt(&format!("p-{}", c[0].recipient), Event::Read, "read");
        read.occurred_at = t() + mins(3);
        let mut bounce = receipt(&format!("p-{}", c[1].recipient), Event::Bounced, "bounce");
        bounce.code = Some("5.1.1".into());
        s.record_receipts(&[read, bounce], t()).unwrap();
        let r = disparo::app::report::gather(&*s, "c", t()).unwrap();
        let f = &r.funnel.counts;
        assert_eq!((f.planned, f.sent, f.delivered, f.read, f.failed, f.bounced), (3, 2, 1, 1, 1, 1));
        assert_eq!(r.sends.total, f.sent);
        assert_eq!(r.sends.per_utc_hour.len(), 1);
        assert_eq!(r.sends.per_local_hour.iter().sum::<u64>(), 2);
        let failures: Vec<_> = r.failures.iter().map(|g| (g.stage.as_str(), g.code.as_deref(), g.count)).collect();
        assert_eq!(failures, [("send", Some("HTTP 400"), 1), ("bounce", Some("5.1.1"), 1)], "most frequent first, then sends before receipts");
        assert_eq!(r.failures[0].example.as_deref(), Some("<b>no</b>"));
        assert_eq!((r.time_to_read.count, r.time_to_read.median_secs), (1, Some(180)));
        assert_eq!(r.messages, 3);
        assert!(disparo::app::report::gather(&*s, "nope", t()).is_err());
    }

    fn the_funnel_splits_by_zone_and_locale(db) {
        let s = db.create();
        let mut rows = audience(3);
        rows[2].zone = "Europe/Lisbon".into();
        rows[2].locale = Some("pt-PT".into());
        rows[0].content = r#"{"body":"Oi r0","variant":"long"}"#.into();
        rows[2].content = r#"{"body":"Oi r2","variant":"short"}"#.into();
        plan(&*s, &campaign("c"), &rows);
        let c = claim(&*s, "w", 3);
        let done: Vec<_> = c.iter().map(|m| sent(m, t())).collect();
        s.complete("w", &done).unwrap();
        s.record_receipts(&[receipt("p-r2", Event::Read, "r2")], t()).unwrap();
        let by_zone = s.funnel(Some("c"), FunnelBy::Zone).unwrap();
        let zones: Vec<_> = by_zone.iter().map(|f| (f.group.clone().unwrap(), f.sent, f.read)).collect();
        assert_eq!(zones, [("America/Sao_Paulo".to_string(), 2, 0), ("Europe/Lisbon".to_string(), 1, 1)]);
        let by_locale = s.funnel(Some("c"), FunnelBy::Locale).unwrap();
        assert_eq!(by_locale.iter().map(|f| f.group.clone().unwrap()).collect::<Vec<_>>(), ["pt-BR", "pt-PT"]);
        // The A/B variant rendered into the content; '' for a message without one.
        let by_variant = s.funnel(Some("c"), FunnelBy::Variant).unwrap();
        let variants: Vec<_> = by_variant.iter().map(|f| (f.group.clone().unwrap(), f.sent, f.read)).collect();
        assert_eq!(variants, [(String::new(), 1, 0), ("long".to_string(), 1, 0), ("short".to_string(), 1, 1)]);
        let mut exported = Vec::new();
        s.report("c", &mut |r| {
            exported.push((r.recipient, r.variant));
            Ok(())
        })
        .unwrap();
        exported.sort();
        assert_eq!(exported, [("r0".into(), Some("long".into())), ("r1".into(), None), ("r2".into(), Some("short".into()))]);
        assert!(s.funnel(Some("nope"), FunnelBy::Campaign).is_err());
    }
}
