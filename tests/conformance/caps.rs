//! Frequency caps across workers, and the sends they are counted on.

use disparo::store::Completion;

use super::support::*;

conformance! {
    /// Sends are read by (channel, address) and time, oldest first; pairs without sends are
    /// left out; a send recorded by another connection is seen at once.
    fn sends_since_and_among(db) {
        let s = db.create();
        let rows = [msg("a", t() - mins(3)).to("+1"), msg("b", t() - mins(2)).to("+1"), msg("c", t() - mins(1)).to("+2")];
        plan(&*s, &campaign("c"), &rows);
        let got = claim(&*s, "w", 10);
        let at = |i: i64| t() - mins(10) + mins(i);
        let done: Vec<Completion> = got.iter().enumerate().map(|(i, c)| sent(c, at(i as i64))).collect();
        // Read before the sends: the window must still see them afterwards.
        assert!(s.sends_since("sms", "+1", t() - mins(60)).unwrap().is_empty());
        let other = db.writer();
        assert_eq!(other.complete("w", &done).unwrap(), 3);
        assert_eq!(s.sends_since("sms", "+1", t() - mins(60)).unwrap(), [at(0), at(1)]);
        assert_eq!(s.sends_since("sms", "+1", at(0)).unwrap(), [at(1)], "since is exclusive");
        assert!(s.sends_since("email", "+1", t() - mins(60)).unwrap().is_empty());
        let among = s.sends_among(&[("sms", "+1"), ("sms", "+2"), ("sms", "+3")], t() - mins(60)).unwrap();
        assert_eq!(among.len(), 2);
        assert_eq!(among[&("sms".to_string(), "+2".to_string())], [at(2)]);
    }

    /// A capped campaign's claim skips an address another run holds under a live lease (two
    /// runs cannot both send to it inside the cap's window); an uncapped one does not, and
    /// once the other run's lease is over, the address is claimed.
    fn address_held_by_another_run_is_not_claimed_when_capped(db) {
        let s = db.create();
        plan(&*s, &capped("promo"), &[msg("a", t() - mins(2)).to("+1"), msg("a2", t() - mins(1)).to("+1"), msg("b", t() - mins(1)).to("+2")]);
        plan(&*s, &campaign("plain"), &[msg("p", t() - mins(1)).to("+1")]);
        let first = claim(&*s, "w1", 1);
        assert_eq!(recipients(&first), ["a"]);
        let other = db.writer();
        let second = claim(&*other, "w2", 10);
        let mut got = recipients(&second);
        got.sort();
        assert_eq!(got, ["b", "p"], "a2 goes to +1, which w1 holds");
        // w2's uncapped message to +1 holds the address too.
        assert!(claim(&*s, "w1", 10).is_empty());
        // Once the others' messages to +1 are done, the same run may take more to an address it
        // holds (it applies the cap to what it holds itself).
        let p = second.iter().find(|c| c.recipient == "p").unwrap();
        assert_eq!(other.complete("w2", &[sent(p, t())]).unwrap(), 1);
        assert_eq!(recipients(&claim(&*s, "w1", 10)), ["a2"]);
    }

    /// Two runs racing for capped messages to one address: only one gets any.
    fn racing_runs_never_both_take_a_capped_address(db) {
        let s = db.create();
        let rows: Vec<Msg> = (0..40).map(|i| msg(&format!("r{i:02}"), t() - mins(1)).to(&format!("+{}", i % 4))).collect();
        plan(&*s, &capped("promo"), &rows);
        let db = std::sync::Arc::new(db);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4).map(|w| {
            let (db, barrier) = (db.clone(), barrier.clone());
            std::thread::spawn(move || {
                let s = db.writer();
                barrier.wait();
                let mut addresses = std::collections::HashSet::new();
                for _ in 0..5 {
                    for c in claim(&*s, &format!("w{w}"), 3) {
                        addresses.insert(c.address);
                    }
                }
                addresses
            })
        }).collect();
        let sets: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for (i, a) in sets.iter().enumerate() {
            for b in &sets[i + 1..] {
                assert!(a.is_disjoint(b), "two runs hold one capped address: {a:?} {b:?}");
            }
        }
        assert_eq!(sets.iter().map(|s| s.len()).sum::<usize>(), 4, "every address went to some run");
    }
}
