//! The model-based test of the delivery state machine (issue #12).
//!
//! Each case is a random sequence of operations run against the real binary on a fresh project
//! and a lying provider (the scripted webhook of [`super::dispatch`]: it answers 503 to about one
//! request in five, at most twice per message, and slowly now and then):
//!
//! - `Plan { mask, variant }`: (re-)plan campaign `c` with the recipients in `mask` (of five),
//!   their names changed when `variant` changes: recipients are removed, added back, changed;
//! - `Run`: `run --once --lease 2s` to its end;
//! - `Crash { after }`: the same run, SIGKILLed once the provider saw `after` more requests (or
//!   after 3 s, or when it ended by itself);
//! - `Expire`: wait for the 2 s leases of a crashed run to expire;
//! - `Pause`, `Resume`, `Cancel`, `Suppress(i)`, `Unsuppress(i)`: the admin commands;
//! - `During(change)`: a run is started, and once a batch is in hand (the provider saw a
//!   request, answering slowly meanwhile) `pause`, `cancel` or `suppress add` runs in another
//!   process; then the run is awaited.
//!
//! All processes share one simulated clock: each gets `--now` = the case's start instant (a few
//! seconds before 21:00 in São Paulo, where quiet hours 21:00-08:00 begin; Manaus is an hour
//! behind, Lisbon already inside them) plus the real time elapsed, and `run` gets
//! `DISPARO_SIMULATE=1`.
//!
//! The reference model is small: which recipients the last plan had (and which were ever
//! planned), the campaign's status, the suppressed addresses (and which ever were), the real
//! instants at which each pause, cancel and suppression was committed and undone, and, per
//! message key, how many crashes found it `sending` (a send in flight at a crash, or answered but
//! not yet recorded, may be repeated once with the same key). After every step and at the end
//! the provider's log and `messages --format json` are checked against it:
//!
//! 1. **No double delivery**: a key is accepted by the provider at most once, plus once per crash
//!    that found its message `sending` (and the webhook's `Idempotency-Key` is always the
//!    message's key: the provider checks it against the body's `id`).
//! 2. **Nothing after a committed stop**: no request reaches the provider for a paused or
//!    cancelled campaign, or a suppressed address, later than 250 ms after the command that did
//!    it returned (and before the one undoing it started): a send already re-checked when the
//!    command committed may still be on the wire.
//! 3. **Nothing at night**: no accepted request arrives inside 21:00-08:00 of its recipient's
//!    zone (judged at the simulated instant of arrival less 1 s: a process's clock starts a little
//!    after its `--now` was computed).
//! 4. **States are explained**: `sent` only with an accepted request for the key; `cancelled`
//!    only when the campaign is cancelled or the last plan dropped the recipient (a recipient
//!    added back is pending again); `skipped` only for an address suppressed at some point;
//!    `failed` only after `max_attempts` attempts (or five lost leases); `expired` never;
//!    `sending` only after a crash.
//! 5. **Nothing lost**: at the end, after `resume`, the leases' expiry and a final clean run, a
//!    message of a campaign not cancelled, for a recipient in the last plan and never
//!    suppressed, is `sent`, or `pending` deferred by quiet hours to a later morning, or `failed`
//!    with its attempts exhausted; nothing is left `sending`.
//!
//! Few cases (12 by default, `PROPTEST_CASES` to change; `PROPTEST_RNG_SEED` to replay a seed;
//! failures are saved in `model.proptest-regressions`), little shrinking: each case runs the
//! binary a dozen times.

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::Value;

use super::dispatch::{
    Answer, Hit, Provider, assert_no_panic, command, finish, log, phone, spawn, table,
};
use crate::harness::{Output, Project};

/// Recipients in the pool: `r0`..`r4`.
const N: usize = 5;
const ZONES: [&str; N] = [
    "America/Sao_Paulo",
    "America/Manaus",
    "Europe/Lisbon",
    "America/Sao_Paulo",
    "America/Manaus",
];
const MAX_ATTEMPTS: u64 = 8;
const LEASE: Duration = Duration::from_secs(2);
const GRACE: Duration = Duration::from_millis(250);
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum Change {
    Pause,
    Cancel,
    Suppress(usize),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Plan { mask: u8, variant: u8 },
    Run,
    Crash { after: usize },
    Expire,
    Pause,
    Resume,
    Cancel,
    Suppress(usize),
    Unsuppress(usize),
    During(Change),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..32, 0u8..3).prop_map(|(mask, variant)| Op::Plan { mask, variant }),
        4 => Just(Op::Run),
        3 => (1usize..4).prop_map(|after| Op::Crash { after }),
        1 => Just(Op::Expire),
        1 => Just(Op::Pause),
        2 => Just(Op::Resume),
        1 => Just(Op::Cancel),
        1 => (0..N).prop_map(Op::Suppress),
        1 => (0..N).prop_map(Op::Unsuppress),
        2 => prop_oneof![
            Just(Change::Pause),
            Just(Change::Cancel),
            (0..N).prop_map(Change::Suppress)
        ]
        .prop_map(Op::During),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Paused,
    Cancelled,
}

/// What a stop applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Campaign,
    Address(String),
}

/// A committed pause, cancel or suppression: from `from` (the command returned) to `to` (the
/// command undoing it started), if undone.
#[derive(Debug, Clone)]
struct Stop {
    target: Target,
    what: &'static str,
    from: Instant,
    to: Option<Instant>,
}

struct Model {
    present: [bool; N],
    planned: [bool; N],
    status: Status,
    suppressed: [bool; N],
    ever_suppressed: [bool; N],
    stops: Vec<Stop>,
    /// Per key: how many crashes found its message `sending`.
    in_flight_at_crash: BTreeMap<String, usize>,
    crashes: usize,
}

/// One case: the project, the provider, the simulated clock, the model.
struct Case {
    p: Project,
    provider: Provider,
    slow: Arc<AtomicBool>,
    /// Simulated minus real time.
    offset: SignedDuration,
    model: Model,
    /// What happened, for failure messages.
    trail: Vec<String>,
}

/// A child process killed if the test panics before it is awaited.
struct Guard(Option<Child>);

impl Guard {
    fn take(&mut self) -> Child {
        self.0.take().expect("child already taken")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Case {
    fn new(start: Timestamp, seed: u64) -> Case {
        let slow = Arc::new(AtomicBool::new(false));
        let s = slow.clone();
        let rng = Mutex::new(fastrand::Rng::with_seed(seed));
        let provider = Provider::scripted(move |hit: &Hit, before: &[Hit]| {
            let mut rng = rng.lock().unwrap();
            let refused = before
                .iter()
                .filter(|b| b.key == hit.key && b.status == 503)
                .count();
            let slow = s.load(Ordering::SeqCst) || rng.f32() < 0.15;
            let answer = if refused < 2 && rng.f32() < 0.2 {
                Answer::status(503)
            } else {
                Answer::ok()
            };
            if slow {
                answer.after(Duration::from_millis(400))
            } else {
                answer
            }
        });
        let p = super::dispatch::project(
            &provider.url,
            &format!("concurrency: 2, max_attempts: {MAX_ATTEMPTS}"),
            0,
            "schedule: { quiet_hours: { start: \"21:00\", end: \"08:00\" } }\n",
        );
        let offset = start.duration_since(Timestamp::now());
        Case {
            p,
            provider,
            slow,
            offset,
            model: Model {
                present: [false; N],
                planned: [false; N],
                status: Status::Active,
                suppressed: [false; N],
                ever_suppressed: [false; N],
                stops: Vec::new(),
                in_flight_at_crash: BTreeMap::new(),
                crashes: 0,
            },
            trail: Vec::new(),
        }
    }

    fn sim_now(&self) -> String {
        Timestamp::now()
            .checked_add(self.offset)
            .unwrap()
            .to_string()
    }

    /// An admin command (or `plan`) at the simulated now; asserts exit 0.
    fn admin(&self, args: &[&str]) -> Output {
        let now = self.sim_now();
        let mut all = vec!["--now", now.as_str(), "-q"];
        all.extend_from_slice(args);
        let o = finish(command(&self.p, false, &all).spawn().unwrap(), DEADLINE);
        assert_eq!(
            o.code,
            0,
            "disparo {all:?}: {}\n{}",
            o.stderr,
            self.trail.join("\n")
        );
        o
    }

    fn spawn_run(&self) -> Guard {
        let now = self.sim_now();
        let lease = format!("{}s", LEASE.as_secs());
        Guard(Some(spawn(
            &self.p,
            true,
            &["--now", &now, "run", "--once", "--lease", &lease],
        )))
    }

    fn end_run(&mut self, mut child: Guard) {
        let o = finish(child.take(), DEADLINE);
        assert_no_panic(&o);
        assert!(
            o.code == 0 || o.code == 1,
            "run exited {}: {}\n{}",
            o.code,
            o.stderr,
            self.trail.join("\n")
        );
        let summary = o.stderr.lines().find(|l| l.starts_with("run: "));
        self.trail
            .push(format!("  {}", summary.unwrap_or("(no summary)")));
    }

    /// Waits until the provider saw `n` requests in all, or the child ended, or `within`.
    fn wait_hits(&self, child: &mut Guard, n: usize, within: Duration) {
        let t0 = Instant::now();
        while self.provider.hits().len() < n
            && t0.elapsed() < within
            && child.0.as_mut().unwrap().try_wait().unwrap().is_none()
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn write_audience(&self, mask: u8, variant: u8) {
        let mut csv = String::from("id,first_name,phone,timezone\n");
        for (i, zone) in ZONES.iter().enumerate() {
            if mask & (1 << i) != 0 {
                csv.push_str(&format!("r{i},Ana {i} v{variant},{},{zone}\n", phone(i)));
            }
        }
        self.p.file("a.csv", &csv);
    }

    fn stop(&mut self, target: Target, what: &'static str) {
        self.model.stops.push(Stop {
            target,
            what,
            from: Instant::now(),
            to: None,
        });
    }

    fn undo(&mut self, target: &Target, what: &'static str, at: Instant) {
        for s in &mut self.model.stops {
            if s.target == *target && s.what == what && s.to.is_none() {
                s.to = Some(at);
            }
        }
    }

    fn change(&mut self, c: Change) {
        match c {
            Change::Pause if self.model.status == Status::Active => {
                self.admin(&["pause", "c"]);
                self.model.status = Status::Paused;
                self.stop(Target::Campaign, "pause");
            }
            Change::Cancel if self.model.status != Status::Cancelled => {
                self.admin(&["cancel", "c"]);
                self.model.status = Status::Cancelled;
                self.stop(Target::Campaign, "cancel");
            }
            Change::Suppress(i) => {
                self.admin(&["suppress", "add", &phone(i)]);
                if !self.model.suppressed[i] {
                    self.stop(Target::Address(phone(i)), "suppress");
                }
                self.model.suppressed[i] = true;
                self.model.ever_suppressed[i] = true;
            }
            _ => {}
        }
    }

    fn step(&mut self, op: Op) {
        self.trail.push(format!("{op:?}"));
        match op {
            Op::Plan { mask, variant } => {
                if self.model.status == Status::Cancelled {
                    return;
                }
                self.write_audience(mask, variant);
                self.admin(&["plan", "c"]);
                for i in 0..N {
                    let here = mask & (1 << i) != 0;
                    self.model.present[i] = here;
                    self.model.planned[i] |= here;
                }
            }
            Op::Run => {
                let child = self.spawn_run();
                self.end_run(child);
            }
            Op::Crash { after } => {
                let seen = self.provider.hits().len();
                let mut child = self.spawn_run();
                self.wait_hits(&mut child, seen + after, Duration::from_secs(3));
                let mut c = child.take();
                let ended = c.try_wait().unwrap().is_some();
                let _ = c.kill();
                let _ = c.wait();
                if ended {
                    self.trail.push("  (ended before the kill)".into());
                    return;
                }
                self.model.crashes += 1;
                let sending: Vec<String> = self
                    .messages()
                    .iter()
                    .filter(|m| m["state"] == "sending")
                    .map(|m| m["key"].as_str().unwrap().to_owned())
                    .collect();
                self.trail
                    .push(format!("  killed with {} sending", sending.len()));
                for k in sending {
                    *self.model.in_flight_at_crash.entry(k).or_default() += 1;
                }
            }
            Op::Expire => std::thread::sleep(LEASE + Duration::from_millis(100)),
            Op::Pause => self.change(Change::Pause),
            Op::Cancel => self.change(Change::Cancel),
            Op::Suppress(i) => self.change(Change::Suppress(i)),
            Op::Resume => {
                if self.model.status == Status::Paused {
                    let at = Instant::now();
                    self.admin(&["resume", "c"]);
                    self.undo(&Target::Campaign, "pause", at);
                    self.model.status = Status::Active;
                }
            }
            Op::Unsuppress(i) => {
                let at = Instant::now();
                self.admin(&["suppress", "remove", &phone(i)]);
                self.undo(&Target::Address(phone(i)), "suppress", at);
                self.model.suppressed[i] = false;
            }
            Op::During(c) => {
                let seen = self.provider.hits().len();
                self.slow.store(true, Ordering::SeqCst);
                let mut child = self.spawn_run();
                self.wait_hits(&mut child, seen + 1, Duration::from_secs(3));
                self.change(c);
                self.slow.store(false, Ordering::SeqCst);
                self.end_run(child);
            }
        }
    }

    fn messages(&self) -> Vec<Value> {
        self.p.messages()
    }

    fn fail(&self, what: String, msgs: &[Value]) -> ! {
        panic!(
            "{what}\n--- steps\n{}\n--- messages\n{}--- provider\n{}",
            self.trail.join("\n"),
            table(msgs),
            log(&self.provider.hits())
        )
    }

    /// Invariants 1 to 4.
    fn check(&self) {
        let msgs = self.messages();
        let hits = self.provider.hits();
        let m = &self.model;
        // 1. No double delivery.
        for (key, n) in self.provider.accepted() {
            let allowed = 1 + m.in_flight_at_crash.get(&key).copied().unwrap_or(0);
            if n > allowed {
                self.fail(
                    format!("{key} delivered {n} times (at most {allowed})"),
                    &msgs,
                );
            }
        }
        // 2. Nothing after a committed stop.
        for h in &hits {
            for s in &m.stops {
                let applies = match &s.target {
                    Target::Campaign => true,
                    Target::Address(a) => *a == h.to,
                };
                if applies && h.at > s.from + GRACE && s.to.is_none_or(|to| h.at < to) {
                    self.fail(
                        format!(
                            "request #{} to {} reached the provider {:?} after `{}` was committed",
                            h.n,
                            h.recipient,
                            h.at.duration_since(s.from),
                            s.what
                        ),
                        &msgs,
                    );
                }
            }
        }
        // 3. Nothing at night.
        for h in hits.iter().filter(|h| h.accepted()) {
            let i = index(&h.recipient);
            let at = h
                .wall
                .checked_add(self.offset)
                .unwrap()
                .checked_sub(SignedDuration::from_secs(1))
                .unwrap();
            let local = at.to_zoned(jiff::tz::TimeZone::get(ZONES[i]).unwrap());
            if local.hour() >= 21 || local.hour() < 8 {
                self.fail(
                    format!(
                        "request #{} to {} accepted at {} local (quiet hours 21:00-08:00)",
                        h.n,
                        h.recipient,
                        local.datetime()
                    ),
                    &msgs,
                );
            }
        }
        // 4. States are explained.
        let accepted = self.provider.accepted();
        for msg in &msgs {
            let key = msg["key"].as_str().unwrap();
            let i = index(msg["recipient"].as_str().unwrap());
            let state = msg["state"].as_str().unwrap();
            let ok = match state {
                "sent" => accepted.get(key).is_some_and(|n| *n >= 1),
                "cancelled" => m.status == Status::Cancelled || !m.present[i],
                "skipped" => m.ever_suppressed[i],
                "failed" => exhausted(msg, m),
                "sending" => m.crashes > 0,
                "pending" => true,
                _ => false,
            };
            if !ok || !m.planned[i] {
                self.fail(format!("r{i} ({key}) is {state}"), &msgs);
            }
        }
    }

    /// Resume, let the leases expire, one clean run, then invariant 5.
    fn finish(&mut self) {
        self.step(Op::Resume);
        self.step(Op::Expire);
        self.step(Op::Run);
        self.check();
        let msgs = self.messages();
        let now = Timestamp::now().checked_add(self.offset).unwrap();
        let m = &self.model;
        for msg in &msgs {
            let i = index(msg["recipient"].as_str().unwrap());
            let state = msg["state"].as_str().unwrap();
            if state == "sending" {
                self.fail(format!("r{i} left sending"), &msgs);
            }
            let owed = m.status != Status::Cancelled && m.present[i] && !m.ever_suppressed[i];
            if !owed {
                continue;
            }
            let deferred = state == "pending"
                && msg["reasons"]
                    .as_str()
                    .unwrap_or("")
                    .contains("quiet_hours")
                && msg["due_at"]
                    .as_str()
                    .and_then(|d| d.parse::<Timestamp>().ok())
                    .is_some_and(|d| d > now);
            let exhausted = state == "failed" && exhausted(msg, m);
            if !(state == "sent" || deferred || exhausted) {
                self.fail(
                    format!("r{i} is {state} at the end: lost (owed a delivery)"),
                    &msgs,
                );
            }
        }
    }
}

/// A message may be `failed` after `MAX_ATTEMPTS` attempts, or after five lost leases (a
/// message that keeps killing its run).
fn exhausted(msg: &Value, m: &Model) -> bool {
    let key = msg["key"].as_str().unwrap_or_default();
    msg["attempts"].as_u64().unwrap_or(0) >= MAX_ATTEMPTS
        || m.in_flight_at_crash.get(key).copied().unwrap_or(0) >= 5
}

/// `3` for recipient `r3`.
fn index(recipient: &str) -> usize {
    recipient.trim_start_matches('r').parse().unwrap()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 8,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// Random plan/run/crash/expiry/pause/resume/cancel/suppress sequences keep invariants 1-5
    /// (module doc).
    #[test]
    fn delivery_state_machine_matches_the_model(
        before_quiet in 3u64..15,
        seed in any::<u64>(),
        first in 1u8..32,
        ops in proptest::collection::vec(op(), 1..10),
    ) {
        // `before_quiet` seconds before 21:00 in São Paulo.
        let start = Timestamp::from_second(
            "2026-12-02T00:00:00Z".parse::<Timestamp>().unwrap().as_second()
                - before_quiet as i64,
        )
        .unwrap();
        let mut case = Case::new(start, seed);
        case.step(Op::Plan { mask: first, variant: 0 });
        case.check();
        for op in ops {
            case.step(op);
            case.check();
        }
        case.finish();
    }
}
