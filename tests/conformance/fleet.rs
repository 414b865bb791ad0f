//! Workers announcing themselves, for rates shared by a fleet.

use disparo::store::ChannelFleet;
use jiff::SignedDuration;

use super::support::*;

fn view(live_workers: u32, seen_by_all: bool) -> ChannelFleet {
    ChannelFleet {
        live_workers,
        seen_by_all,
    }
}

conformance! {
    /// Counts live workers per channel; a newcomer is "seen by all" only once every other live
    /// worker has announced itself after it first did; retiring and expiring remove workers.
    fn heartbeat_counts_and_seen_since(db) {
        let s = db.create();
        let ttl = SignedDuration::from_secs(60);
        let a = s.worker_heartbeat("a", &["sms", "email"], ttl).unwrap();
        assert_eq!(a.channels.len(), 2);
        assert_eq!(a.channels["sms"], view(1, true), "alone: nobody else to see it");
        let other = db.writer();
        let b = other.worker_heartbeat("b", &["sms"], ttl).unwrap();
        assert_eq!(b.channels["sms"], view(2, false), "a has not announced itself since b came");
        assert_eq!(b.channels.len(), 1);
        let a = s.worker_heartbeat("a", &["sms", "email"], ttl).unwrap();
        assert_eq!(a.channels["sms"], view(2, true), "b announced itself after a did");
        assert_eq!(a.channels["email"], view(1, true));
        let b = other.worker_heartbeat("b", &["sms"], ttl).unwrap();
        assert_eq!(b.channels["sms"], view(2, true), "a has seen b now");
        // A third worker with a lease of life already over is not counted by the others.
        s.worker_heartbeat("ghost", &["sms"], SignedDuration::from_secs(-1)).unwrap();
        assert_eq!(other.worker_heartbeat("b", &["sms"], ttl).unwrap().channels["sms"], view(2, true));
        // a stops sending email: its announcement there goes.
        let a = s.worker_heartbeat("a", &["sms"], ttl).unwrap();
        assert_eq!(a.channels.keys().collect::<Vec<_>>(), ["sms"]);
        s.retire_worker("a").unwrap();
        assert_eq!(other.worker_heartbeat("b", &["sms"], ttl).unwrap().channels["sms"], view(1, true));
        // Retired, then back: a newcomer again.
        let a = s.worker_heartbeat("a", &["sms"], ttl).unwrap();
        assert_eq!(a.channels["sms"], view(2, false));
    }
}
