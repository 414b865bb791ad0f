//! The suppression list and the gate that tells runs holding claims to look again.

use disparo::store::{CampaignStatus, Completion, Outcome};

use super::support::*;

conformance! {
    fn suppress_unsuppress_and_among(db) {
        let s = db.create();
        assert!(s.suppress("+1", Some("STOP"), "cli", t()).unwrap());
        assert!(!s.suppress("+1", Some("again"), "cli", t()).unwrap(), "already on the list");
        assert!(s.suppress("+2", None, "import", t() + mins(1)).unwrap());
        assert!(s.is_suppressed("+1").unwrap());
        assert!(!s.is_suppressed("+3").unwrap());
        let among = s.suppressed_among(&["+1", "+3", "+2"]).unwrap();
        assert_eq!(among.len(), 2);
        assert!(among.contains("+1") && among.contains("+2"));
        assert!(s.suppressed_among(&[]).unwrap().is_empty());
        let list = s.suppressions().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].address.as_str(), list[0].reason.as_deref(), list[0].source.as_deref(), list[0].created_at), ("+1", Some("STOP"), Some("cli"), t()));
        assert!(s.unsuppress("+1").unwrap());
        assert!(!s.unsuppress("+1").unwrap());
        assert!(!s.is_suppressed("+1").unwrap());
    }

    /// Every change a run holding claims must honour moves the gate, seen from another
    /// connection; reads and claims do not.
    fn the_gate_moves_with_each_change(db) {
        let s = db.create();
        let other = db.writer();
        let mut last = other.gate().unwrap();
        let mut moved = |what: &str, yes: bool| {
            let now = other.gate().unwrap();
            assert_eq!(now != last, yes, "{what}: gate {last} -> {now}");
            last = now;
        };
        plan(&*s, &campaign("c"), &audience(3));
        moved("plan", true);
        let c = claim(&*s, "w", 3);
        s.summaries(None).unwrap();
        moved("claim and reads", false);
        s.suppress("+1", None, "cli", t()).unwrap();
        moved("suppress", true);
        s.suppress("+1", None, "cli", t()).unwrap();
        moved("suppress again (no change)", false);
        s.unsuppress("+1").unwrap();
        moved("unsuppress", true);
        s.set_campaign_status("c", CampaignStatus::Paused, None).unwrap();
        moved("pause", true);
        s.set_campaign_status("c", CampaignStatus::Active, None).unwrap();
        moved("resume", true);
        s.cancel_pending("c").unwrap();
        moved("cancel", true);
        let refused = Completion { id: c[0].id, attempt: 1, started_at: t(), finished_at: t(), outcome: Outcome::Refused { code: None, error: "opted out".into(), suppress: true } };
        s.complete("w", &[refused]).unwrap();
        moved("a provider's opt-out", true);
        assert!(s.is_suppressed(&c[0].address).unwrap());
    }
}
