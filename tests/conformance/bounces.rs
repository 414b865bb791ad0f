//! `bounces import` through the application layer on each store: a mailbox of DSNs for sent
//! messages, named by their callback reference, imported in batches smaller than itself, and
//! again.

use disparo::app::bounces::{self, Options};
use disparo::store::Claimed;

use super::support::*;

fn dsn(m: &Claimed, status: &str, action: &str) -> String {
    format!(
        "From MAILER-DAEMON Mon Nov 30 12:00:06 2026\nMessage-ID: <dsn-{id}@mta.example>\nDate: Mon, 30 Nov 2026 12:00:06 +0000\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mta.example\n\nFinal-Recipient: rfc822; {address}\nAction: {action}\nStatus: {status}\n\n--b\nContent-Type: text/rfc822-headers\n\nMessage-ID: <{key}@loja.example>\nX-Disparo-Ref: {key}.{id}\n--b--\n\n",
        id = m.id,
        key = m.key,
        address = m.address,
    )
}

conformance! {
    fn bounces_imported_twice_suppress_once_and_count_soft_ones(db) {
        let s = db.create();
        let mut people = audience(4);
        for p in &mut people {
            p.address = format!("{}@example.com", p.recipient);
        }
        plan(&*s, &campaign("c"), &people);
        let c = claim(&*s, "w", 4);
        let done: Vec<_> = c.iter().map(|m| sent(m, t())).collect();
        s.complete("w", &done).unwrap();
        let mut mbox = String::new();
        for (i, m) in c.iter().enumerate() {
            mbox.push_str(&match i {
                0 => dsn(m, "4.2.2", "delayed"),
                _ => dsn(m, "5.1.1", "failed"),
            });
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bounces.mbox");
        std::fs::write(&path, mbox).unwrap();
        let boxes = bounces::open(std::slice::from_ref(&path)).unwrap();
        let options = Options { dry_run: false, batch: 3, now: t() };
        let first = bounces::import(Some(&*s), &boxes, options, &mut |_| Ok(())).unwrap();
        assert_eq!((first.hard_bounces, first.soft_bounces, first.matched), (3, 1, 4));
        assert_eq!(first.newly_suppressed, 3);
        let again = bounces::import(Some(&*s), &boxes, options, &mut |_| Ok(())).unwrap();
        assert_eq!((again.duplicates, again.matched, again.newly_suppressed), (4, 0, 0));
        let soft = &c[0].address;
        assert!(!s.is_suppressed(soft).unwrap());
        for m in &c[1..] {
            assert!(s.is_suppressed(&m.address).unwrap(), "{}", m.address);
        }
        let f = &s.funnel(Some("c"), disparo::receipt::FunnelBy::Campaign).unwrap()[0];
        assert_eq!((f.sent, f.bounced), (4, 3));
        let mut rows = Vec::new();
        s.report("c", &mut |r| { rows.push(r); Ok(()) }).unwrap();
        let bounced: Vec<_> = rows.iter().filter(|r| r.delivery.as_deref() == Some("bounced")).collect();
        assert_eq!(bounced.len(), 3);
        assert!(bounced.iter().all(|r| r.delivery_code.as_deref() == Some("5.1.1")));
    }
}

conformance! {
    /// A receipt whose event sets no instant column (a provider's `sent`, a soft bounce)
    /// is stored on every store (PostgreSQL once refused to type the unused instant).
    fn receipts_that_set_no_instant_are_stored(db) {
        use disparo::receipt::{Applied, Effect, Event, Receipt, Source, Target};
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(1));
        let c = claim(&*s, "w", 1);
        s.complete("w", &[sent(&c[0], t())]).unwrap();
        let r = |event, dedupe: &str| Receipt {
            source: Source::Webhook,
            target: Target { provider_id: Some("p-r0".into()), ..Default::default() },
            event,
            code: None,
            detail: None,
            occurred_at: t(),
            raw: "{}".into(),
            dedupe: dedupe.into(),
            effect: Effect::None,
        };
        let applied = s
            .record_receipts(&[r(Event::Sent, "a"), r(Event::SoftBounce, "b")], t())
            .unwrap();
        assert_eq!(applied, [Applied::Recorded, Applied::Recorded]);
    }
}
