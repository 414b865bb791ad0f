//! The dispatch side of the SQLite store, through the `Store` trait, on databases planned by
//! the real binary: claims and outcomes in one transaction, outcomes of a lease another run
//! took over, and the in-memory window of recent sends that frequency caps read (it must see
//! sends other processes record after it was first read). Two `SqliteStore`s on one file stand
//! for two processes.

use std::path::Path;

use crate::harness::Project;
use disparo::store::{ClaimRequest, Completion, Outcome, SqliteStore, Store};
use jiff::{SignedDuration, Timestamp};

const PLAN_NOW: &str = "2026-11-30T11:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// `n` recipients, all at one phone number, due at 12:00Z on 2026-11-30.
fn planned(n: usize) -> Project {
    let p = Project::empty();
    let mut csv = String::from("id,phone\n");
    for i in 0..n {
        csv.push_str(&format!("r{i},+5511999990000\n"));
    }
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file(
            "campaigns/c.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n",
        )
        .file("templates/t.hbs", "oi")
        .file("a.csv", &csv);
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    p
}

fn open(p: &Project) -> SqliteStore {
    SqliteStore::open(&p.path().join("disparo.db")).unwrap()
}

/// Claims up to `limit` messages for one minute, after recording `done`; gives each claimed
/// message's id and the number of its attempt to come.
fn claim(
    s: &SqliteStore,
    owner: &str,
    now: &str,
    limit: usize,
    done: &[Completion],
) -> Vec<(i64, u32)> {
    let now = ts(now);
    let (_, claimed) = s
        .complete_and_claim(
            done,
            &ClaimRequest {
                owner,
                now,
                lease_now: now,
                lease_until: now + SignedDuration::from_secs(60),
                limit,
                campaign: None,
                ramps: &[],
            },
        )
        .unwrap();
    claimed.iter().map(|c| (c.id, c.attempts + 1)).collect()
}

fn sent((id, attempt): (i64, u32), at: &str) -> Completion {
    Completion {
        id,
        attempt,
        started_at: ts(at),
        finished_at: ts(at),
        outcome: Outcome::Sent {
            provider_id: Some(format!("p-{id}")),
        },
    }
}

#[test]
fn cap_window_sees_sends_another_process_records_after_it_was_read() {
    let p = planned(3);
    let (a, b) = (open(&p), open(&p));
    let pair = [("outbox", "+5511999990000")];
    let since = ts("2026-11-30T00:00:00Z");
    // Read (and kept in memory) while nothing was sent yet.
    assert!(a.sends_among(&pair, since).unwrap().is_empty());
    // Another process sends two of them, in two transactions.
    let ids = claim(&b, "b", "2026-11-30T12:00:00Z", 2, &[]);
    assert_eq!(ids.len(), 2);
    claim(
        &b,
        "b",
        "2026-11-30T12:00:01Z",
        0,
        &[sent(ids[0], "2026-11-30T12:00:01Z")],
    );
    assert_eq!(
        a.sends_since("outbox", "+5511999990000", since).unwrap(),
        [ts("2026-11-30T12:00:01Z")]
    );
    b.complete("b", &[sent(ids[1], "2026-11-30T12:00:02Z")])
        .unwrap();
    let got = a.sends_among(&pair, since).unwrap();
    assert_eq!(
        got[&("outbox".to_string(), "+5511999990000".to_string())],
        [ts("2026-11-30T12:00:01Z"), ts("2026-11-30T12:00:02Z")]
    );
    // A later window leaves the older send out; an earlier one is read again from the table.
    assert_eq!(
        a.sends_since("outbox", "+5511999990000", ts("2026-11-30T12:00:01Z"))
            .unwrap(),
        [ts("2026-11-30T12:00:02Z")]
    );
    assert_eq!(
        a.sends_since("outbox", "+5511999990000", ts("2026-11-29T00:00:00Z"))
            .unwrap()
            .len(),
        2
    );
    assert!(
        a.sends_since("outbox", "+5511999990001", since)
            .unwrap()
            .is_empty()
    );
    assert!(
        a.sends_since("console", "+5511999990000", since)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn outcomes_of_a_lease_taken_over_are_dropped_and_the_others_recorded() {
    let p = planned(2);
    let (a, b) = (open(&p), open(&p));
    let ids = claim(&a, "a", "2026-11-30T12:00:00Z", 2, &[]);
    assert_eq!(ids.len(), 2);
    // Two minutes later a's one-minute leases have expired: b takes one message over.
    let taken = claim(&b, "b", "2026-11-30T12:02:00Z", 1, &[]);
    assert_eq!(taken.len(), 1);
    // a reports both as sent, in the transaction of its next claim: only its own counts.
    let done: Vec<Completion> = ids
        .iter()
        .map(|&id| sent(id, "2026-11-30T12:02:01Z"))
        .collect();
    let (recorded, _) = a
        .complete_and_claim(
            &done,
            &ClaimRequest {
                owner: "a",
                now: ts("2026-11-30T12:02:01Z"),
                lease_now: ts("2026-11-30T12:02:01Z"),
                lease_until: ts("2026-11-30T12:03:01Z"),
                limit: 10,
                campaign: None,
                ramps: &[],
            },
        )
        .unwrap();
    assert_eq!(recorded, 1);
    let recent = |s: &SqliteStore| {
        s.sends_since("outbox", "+5511999990000", ts("2026-11-30T00:00:00Z"))
            .unwrap()
            .len()
    };
    assert_eq!(recent(&a), 1, "only the recorded send counts for caps");
    assert_eq!(
        b.complete("b", &[sent(taken[0], "2026-11-30T12:02:02Z")])
            .unwrap(),
        1
    );
    assert_eq!(recent(&a), 2);
    let msgs = p.messages();
    assert!(msgs.iter().all(|m| m["state"] == "sent"), "{msgs:?}");
    // The lost lease is on record but spends no attempt: the send b made is attempt 1.
    let taken_over = msgs
        .iter()
        .find(|m| m["provider_id"] == format!("p-{}", taken[0].0));
    assert_eq!(taken_over.unwrap()["attempts"], 1, "{msgs:?}");
}

/// V3 moves the sends V1 recorded into the time-ordered table, oldest first.
#[test]
fn migration_v3_keeps_the_sends_recorded_before() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let c = rusqlite::Connection::open_in_memory().unwrap();
    c.execute_batch(&std::fs::read_to_string(root.join("V1__initial.sql")).unwrap())
        .unwrap();
    c.execute_batch(
        "INSERT INTO sends (channel, address, at) VALUES ('wa', '+1', 30), ('wa', '+2', 10), ('sms', '+1', 20)",
    )
    .unwrap();
    c.execute_batch(&std::fs::read_to_string(root.join("V3__sends_by_time.sql")).unwrap())
        .unwrap();
    let rows: Vec<(i64, String, String, i64)> = c
        .prepare("SELECT id, channel, address, at FROM sends ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (1, "wa".into(), "+2".into(), 10),
            (2, "sms".into(), "+1".into(), 20),
            (3, "wa".into(), "+1".into(), 30)
        ]
    );
}

/// Every change a run holding claims must honour before its next send moves the gate, as
/// seen from another connection (another process): an opt-out, its removal, a pause, a
/// resume, a cancel, a re-plan. Reads change nothing.
#[test]
fn the_gate_moves_with_every_change_that_must_stop_a_send() {
    let p = planned(2);
    let s = open(&p);
    let other = open(&p);
    let mut last = other.gate().unwrap();
    let mut moved = |what: &str| {
        let g = other.gate().unwrap();
        assert!(g > last, "{what} did not move the gate ({last} -> {g})");
        last = g;
    };
    let now = ts("2026-11-30T12:00:00Z");
    assert!(s.suppress("+5511999990000", None, "test", now).unwrap());
    moved("suppress");
    assert!(s.unsuppress("+5511999990000").unwrap());
    moved("unsuppress");
    s.set_campaign_status("c", disparo::store::CampaignStatus::Paused, None)
        .unwrap();
    moved("pause");
    s.set_campaign_status("c", disparo::store::CampaignStatus::Active, None)
        .unwrap();
    moved("resume");
    s.cancel_pending("c").unwrap();
    moved("cancel");
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    moved("re-plan");
    s.summaries(None).unwrap();
    s.messages(&Default::default()).unwrap();
    assert_eq!(other.gate().unwrap(), last, "reads moved the gate");
}

/// The heartbeat extends exactly the leases its run holds; an expired lease of a message the
/// dead run never started is taken over with nothing on record and no attempt spent; one
/// whose send had started is an attempt (`lease_expired`), and a message whose runs keep dying
/// while sending it ends `failed` after five such losses.
#[test]
fn heartbeats_renew_only_own_leases_and_lost_leases_spend_no_attempt() {
    let p = planned(3);
    let s = open(&p);
    let a = claim(&s, "a", "2026-11-30T12:00:00Z", 2, &[]);
    assert_eq!(a.len(), 2);
    // Renewed by "a" to far ahead: "b" finds nothing to take over at 12:02 (the claim's own
    // lease, 60 s, would have expired).
    assert_eq!(s.renew_leases("a", ts("2026-11-30T13:00:00Z")).unwrap(), 2);
    assert_eq!(
        s.renew_leases("nobody", ts("2026-11-30T13:00:00Z"))
            .unwrap(),
        0
    );
    let b = claim(&s, "b", "2026-11-30T12:02:00Z", 10, &[]);
    assert_eq!(b.len(), 1, "only the unclaimed message: {b:?}");
    // "a" and "b" die before starting anything; "c" takes the three over once the leases
    // expired: nothing on record, no attempt spent.
    let c = claim(&s, "c", "2026-11-30T13:00:01Z", 10, &[]);
    assert_eq!(c.len(), 3);
    assert!(c.iter().all(|&(_, next)| next == 1), "{c:?}");
    assert_eq!(lease_expired_rows(&s), 0);
    // From now on every run dies while sending them: each loss is on record as an attempt of
    // unknown outcome; losses 1 to 4 are retried, the 5th fails the message.
    let started = |ids: &[(i64, u32)], at: &str| -> Vec<Completion> {
        ids.iter()
            .map(|&(id, attempt)| Completion {
                id,
                attempt,
                started_at: ts(at),
                finished_at: ts(at),
                outcome: Outcome::Started,
            })
            .collect()
    };
    assert_eq!(
        s.complete("c", &started(&c, "2026-11-30T13:00:02Z"))
            .unwrap(),
        0
    );
    let mut at = ts("2026-11-30T13:00:01Z");
    let mut retried = 0;
    for _ in 0..6 {
        at += SignedDuration::from_mins(2);
        let got = claim(&s, "d", &at.to_string(), 10, &[]);
        retried += got.len();
        s.complete("d", &started(&got, &at.to_string())).unwrap();
    }
    assert_eq!(retried, 3 * 4);
    assert_eq!(lease_expired_rows(&s), 3 * 5);
    let rows = s.messages(&Default::default()).unwrap();
    for m in &rows {
        assert_eq!(m.state, disparo::store::State::Failed, "{m:?}");
        assert_eq!(m.attempts, 5, "{m:?}");
        let e = m.last_error.as_deref().unwrap_or_default();
        assert!(e.contains("died 5 times"), "{e}");
    }
}

fn lease_expired_rows(s: &SqliteStore) -> usize {
    let mut n = 0;
    s.report_attempts("c", &mut |a| {
        n += usize::from(a.outcome == "lease_expired");
        Ok(())
    })
    .unwrap();
    n
}

/// A database file deleted or replaced under an open store is noticed at the next call,
/// instead of reading and writing the unlinked file nobody else sees.
#[test]
fn a_database_file_removed_or_replaced_underneath_is_an_error() {
    let p = planned(1);
    let s = open(&p);
    s.gate().unwrap();
    let db = p.path().join("disparo.db");
    std::fs::rename(&db, p.path().join("moved.db")).unwrap();
    let e = s.next_due(None, &[]).unwrap_err().to_string();
    assert!(
        e.contains("was removed while this process was using it"),
        "{e}"
    );
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    let e = s.gate().unwrap_err().to_string();
    assert!(e.contains("was replaced by another file"), "{e}");
    assert!(claim_err(&s).contains("replaced"));
}

fn claim_err(s: &SqliteStore) -> String {
    let now = ts("2026-11-30T12:00:00Z");
    s.claim("x", now, now + SignedDuration::from_secs(60), 10, None)
        .unwrap_err()
        .to_string()
}
