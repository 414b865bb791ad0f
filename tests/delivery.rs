//! Delivery guarantees end to end (SPEC §5), with the real binary against a counting HTTP
//! server on 127.0.0.1: overlapping runs never send a message twice, a killed run's messages
//! are re-sent after their lease expires with the same idempotency key (and nothing else is
//! repeated), SIGTERM lets in-flight sends finish and exits 3, `--watch` picks up new and
//! resumed campaigns, the admin commands work, and an unusable database is a clear error.
//!
//! No assertion is about speed; every wait has a generous deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Output, Project};
use serde_json::Value;

const PLAN_NOW: &str = "2026-11-30T11:00:00Z";
/// 09:00 in São Paulo on 2026-11-30, when the test campaigns are due.
const DUE: &str = "2026-11-30T12:00:00Z";

// ---------------------------------------------------------------------------------------------
// A counting HTTP/1.1 server: one thread per connection, keep-alive, Content-Length bodies.

#[derive(Default)]
struct Seen {
    /// `Idempotency-Key` of every request, in arrival order.
    keys: Vec<String>,
    /// Requests whose body `id` differs from the header (must stay empty).
    mismatched: Vec<String>,
}

struct Sink {
    url: String,
    seen: Arc<Mutex<Seen>>,
    total: Arc<AtomicU64>,
}

impl Sink {
    fn start(delay: Duration) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let total = Arc::new(AtomicU64::new(0));
        let (s, t) = (seen.clone(), total.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, t) = (s.clone(), t.clone());
                std::thread::spawn(move || serve(conn, delay, &s, &t));
            }
        });
        Sink { url, seen, total }
    }
    fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }
    fn counts(&self) -> BTreeMap<String, usize> {
        let seen = self.seen.lock().unwrap();
        assert!(
            seen.mismatched.is_empty(),
            "Idempotency-Key differs from the message id: {:?}",
            seen.mismatched
        );
        let mut c = BTreeMap::new();
        for k in &seen.keys {
            *c.entry(k.clone()).or_insert(0) += 1;
        }
        c
    }
    fn wait_for(&self, n: u64, within: Duration) {
        let t0 = Instant::now();
        while self.total() < n {
            assert!(
                t0.elapsed() < within,
                "server saw {} requests, expected {n}",
                self.total()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn serve(conn: TcpStream, delay: Duration, seen: &Mutex<Seen>, total: &AtomicU64) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut key = None;
        let mut len = 0usize;
        let mut line = String::new();
        // Request line; EOF ends the connection.
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    len = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("idempotency-key") {
                    key = Some(value.to_owned());
                }
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let key = key.unwrap_or_else(|| "<no Idempotency-Key>".into());
        let id = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned));
        {
            let mut s = seen.lock().unwrap();
            if id.as_deref() != Some(key.as_str()) {
                s.mismatched.push(format!("{key} vs body id {id:?}"));
            }
            s.keys.push(key);
        }
        let n = total.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::sleep(delay);
        let reply = format!("{{\"id\":\"sink-{n}\"}}");
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            reply.len()
        );
        if w.write_all(head.as_bytes()).is_err() || w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Projects and processes.

/// `n` São Paulo recipients due at 09:00 local on 2026-11-30 through a webhook to `url`,
/// planned.
fn webhook_project(url: &str, n: usize, concurrency: usize) -> Project {
    let p = Project::empty();
    let mut csv = String::with_capacity(n * 40);
    csv.push_str("id,first_name,phone\n");
    for i in 0..n {
        csv.push_str(&format!("r{i},Ana {i},+55119{:08}\n", 30_000_000 + i));
    }
    p.file(
        "disparo.yaml",
        &format!(
            "timezone: America/Sao_Paulo\nchannels:\n  hook: {{ type: webhook, url: \"{url}\", concurrency: {concurrency} }}\n"
        ),
    )
    .file(
        "campaigns/c.yaml",
        "channel: hook\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n",
    )
    .file("templates/t.hbs", "Oi {{first_name}}\n")
    .file("a.csv", &csv);
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    p
}

fn spawn(p: &Project, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_disparo"))
        .args(args)
        .current_dir(p.path())
        .env_remove("DISPARO_DB")
        .env_remove("DISPARO_CONFIG")
        .env_remove("DISPARO_NOW")
        .env("DISPARO_SIMULATE", "1")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn disparo")
}

/// Waits for a child with a deadline (killing it if the deadline passes).
fn finish(mut child: Child, within: Duration) -> Output {
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > within {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "disparo did not finish within {within:?}\n--- stderr\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    Output {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

fn by_state(msgs: &[Value]) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for m in msgs {
        *c.entry(m["state"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    c
}

fn keys_in(msgs: &[Value], state: &str) -> BTreeSet<String> {
    msgs.iter()
        .filter(|m| m["state"] == state)
        .map(|m| m["key"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Overlapping runs.

fn overlapping_runs_send_each_message_exactly_once(processes: usize) {
    let n = 2000;
    let sink = Sink::start(Duration::ZERO);
    let p = webhook_project(&sink.url, n, 8);
    // Small batches so that the processes interleave their claims.
    let children: Vec<Child> = (0..processes)
        .map(|_| spawn(&p, &["--now", DUE, "run", "--once", "--batch", "40"]))
        .collect();
    let mut sent_total = 0u64;
    for c in children {
        let o = finish(c, Duration::from_secs(120));
        assert_eq!(o.code, 0, "a run failed:\n{}", o.stderr);
        assert!(
            !o.stderr.contains("locked") && !o.stderr.contains("busy"),
            "{}",
            o.stderr
        );
        let line = o
            .stderr
            .lines()
            .find(|l| l.starts_with("run: "))
            .unwrap_or_else(|| panic!("no summary line:\n{}", o.stderr));
        eprintln!("{processes} processes: {line}");
        sent_total += line
            .trim_start_matches("run: ")
            .split(' ')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    let counts = sink.counts();
    assert_eq!(counts.len(), n, "distinct messages at the server");
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dups.is_empty(), "sent twice: {dups:?}");
    assert_eq!(sent_total, n as u64, "summary lines add up");
    let msgs = p.messages();
    assert_eq!(
        by_state(&msgs).get("sent"),
        Some(&n),
        "{:?}",
        by_state(&msgs)
    );
    let stored: BTreeSet<String> = keys_in(&msgs, "sent");
    assert_eq!(stored, counts.keys().cloned().collect::<BTreeSet<_>>());
}

#[test]
fn two_overlapping_runs_send_each_message_exactly_once() {
    overlapping_runs_send_each_message_exactly_once(2);
}

#[test]
fn four_overlapping_runs_send_each_message_exactly_once() {
    overlapping_runs_send_each_message_exactly_once(4);
}

// ---------------------------------------------------------------------------------------------
// Crash: SIGKILL mid-dispatch, then a later run after the lease expired.

#[test]
fn killed_run_is_recovered_after_the_lease_with_the_same_keys_and_no_other_repeats() {
    let n = 200u64;
    for percent in [10u64, 50, 90] {
        let sink = Sink::start(Duration::from_millis(15));
        let p = webhook_project(&sink.url, n as usize, 4);
        let child = spawn(
            &p,
            &[
                "--now", DUE, "run", "--once", "--lease", "2s", "--batch", "16",
            ],
        );
        sink.wait_for(n * percent / 100, Duration::from_secs(60));
        let mut child = child;
        child.kill().unwrap(); // SIGKILL: no chance to release anything
        child.wait().unwrap();
        let at_kill = p.messages();
        let in_flight = keys_in(&at_kill, "sending");
        let sent_before = keys_in(&at_kill, "sent");
        assert!(
            by_state(&at_kill).contains_key("sending") || percent == 90,
            "{percent}%: nothing was in flight at the kill: {:?}",
            by_state(&at_kill)
        );
        // Ten minutes later (by --now): the 2 s leases are long expired.
        let o = p.ok(&["--now", "2026-11-30T12:10:00Z", "run", "--once"]);
        assert!(o.stderr.contains("run: "), "{}", o.stderr);
        let counts = sink.counts();
        let after = p.messages();
        eprintln!(
            "kill at {percent}%: {} in flight, {} sent before, {} repeated at the server",
            in_flight.len(),
            sent_before.len(),
            counts.values().filter(|c| **c > 1).count()
        );
        assert_eq!(
            by_state(&after).get("sent").copied(),
            Some(n as usize),
            "{percent}%: {:?}",
            by_state(&after)
        );
        assert_eq!(
            counts.len() as u64,
            n,
            "{percent}%: every message reached the server"
        );
        for (key, c) in &counts {
            if *c > 1 {
                assert!(
                    in_flight.contains(key),
                    "{percent}%: {key} was sent {c} times but was not in flight at the kill"
                );
                assert!(
                    !sent_before.contains(key),
                    "{percent}%: {key} re-sent after sent"
                );
                assert_eq!(*c, 2, "{percent}%: {key} sent {c} times");
            }
        }
        // Claimed but never started by the dead run: no attempt spent. Started (the run writes
        // that with its group commits, so a send started in the last quarter second before
        // the kill may not be on record): the lost lease is an attempt, then the retry.
        for m in after
            .iter()
            .filter(|m| in_flight.contains(m["key"].as_str().unwrap()))
        {
            let n = m["attempts"].as_u64().unwrap();
            assert!(n == 1 || n == 2, "{percent}%: {m}");
            if counts.get(m["key"].as_str().unwrap()) == Some(&1) {
                assert_eq!(n, 1, "{percent}%: never sent by the dead run: {m}");
            }
        }
        let lost: Vec<&Value> = after
            .iter()
            .filter(|m| in_flight.contains(m["key"].as_str().unwrap()))
            .collect();
        if let Some(m) = lost.iter().find(|m| m["attempts"] == 2) {
            let st = p.ok(&["status", "c"]);
            assert!(
                st.stdout.contains("stopped renewing its lease")
                    || st.stderr.contains("stopped renewing its lease"),
                "{percent}%: status does not show the lost lease of {}:\n{}{}",
                m["key"],
                st.stdout,
                st.stderr
            );
        }
    }
}

/// Outcomes are committed in groups while sends go on, not when the batch ends: messages the
/// server answered are `sent` in the database while the run is still sending the same batch
/// (so a crash repeats only what was in flight, or answered within the last group commit).
#[test]
fn outcomes_are_committed_while_the_batch_is_still_being_sent() {
    let n = 60;
    let sink = Sink::start(Duration::from_millis(150));
    let p = webhook_project(&sink.url, n, 1);
    // One batch, one send at a time: 60 x 150 ms at the server, at least 9 s.
    let mut child = spawn(&p, &["--now", DUE, "run", "--once", "--batch", "100"]);
    sink.wait_for(6, Duration::from_secs(60));
    wait_until(
        "answered messages to be recorded as sent",
        Duration::from_secs(30),
        || by_state(&p.messages()).get("sent").copied().unwrap_or(0) >= 20,
    );
    assert!(
        sink.total() < n as u64 && child.try_wait().unwrap().is_none(),
        "the batch was over before 20 of its outcomes were committed"
    );
    let o = finish(child, Duration::from_secs(120));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("run: 60 sent"), "{}", o.stderr);
    assert!(sink.counts().values().all(|c| *c == 1));
}

// ---------------------------------------------------------------------------------------------
// Signals.

#[test]
fn sigterm_lets_in_flight_sends_finish_and_exits_3() {
    let sink = Sink::start(Duration::from_millis(2500));
    let p = webhook_project(&sink.url, 6, 3);
    let child = spawn(&p, &["--now", DUE, "run", "--once", "--batch", "6"]);
    sink.wait_for(3, Duration::from_secs(60));
    signal(&child, "-TERM");
    let o = finish(child, Duration::from_secs(60));
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stderr.contains("(interrupted)"), "{}", o.stderr);
    assert!(o.stderr.contains("run: 3 sent"), "{}", o.stderr);
    let msgs = p.messages();
    let states = by_state(&msgs);
    assert_eq!(states.get("sent"), Some(&3), "{states:?}");
    assert_eq!(states.get("pending"), Some(&3), "{states:?}");
    assert_eq!(
        states.get("sending"),
        None,
        "claims left behind: {states:?}"
    );
    assert_eq!(sink.total(), 3, "nothing claimed after the signal");
    // The rest go out on the next run.
    p.ok(&["--now", DUE, "run", "--once"]);
    assert_eq!(by_state(&p.messages()).get("sent"), Some(&6));
    assert!(sink.counts().values().all(|c| *c == 1));
}

#[test]
fn sigint_after_the_grace_period_aborts_and_gives_the_claims_back() {
    let sink = Sink::start(Duration::from_secs(8));
    let p = webhook_project(&sink.url, 2, 2);
    let child = spawn(&p, &["--now", DUE, "run", "--once", "--grace", "1s"]);
    sink.wait_for(2, Duration::from_secs(60));
    signal(&child, "-INT");
    let o = finish(child, Duration::from_secs(60));
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stderr.contains("run: 0 sent"), "{}", o.stderr);
    let msgs = p.messages();
    assert_eq!(by_state(&msgs).get("pending"), Some(&2), "{msgs:?}");
    for m in &msgs {
        assert_eq!(m["attempts"], 1, "the aborted attempt is recorded: {m}");
        assert!(
            m["last_error"].as_str().unwrap_or("").contains("aborted"),
            "{m}"
        );
    }
}

#[test]
fn a_second_signal_exits_at_once_and_leaves_the_database_usable() {
    let sink = Sink::start(Duration::from_secs(30));
    let p = webhook_project(&sink.url, 3, 3);
    let child = spawn(&p, &["--now", DUE, "run", "--once", "--lease", "1s"]);
    sink.wait_for(3, Duration::from_secs(60));
    signal(&child, "-TERM");
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "-TERM");
    let o = finish(child, Duration::from_secs(20));
    assert_eq!(o.code, 3, "{}", o.stderr);
    // Consistent: claims are still held (to expire), and every command still works.
    let msgs = p.messages();
    assert_eq!(by_state(&msgs).get("sending"), Some(&3), "{msgs:?}");
    p.ok(&["status"]);
}

// ---------------------------------------------------------------------------------------------
// --watch.

fn outbox_lines(p: &Project) -> Vec<Value> {
    p.read("outbox.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_picks_up_new_and_resumed_campaigns_and_stops_on_sigint() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("templates/t.hbs", "Oi {{first_name}}\n")
        .file("a.csv", "id,first_name,phone\n1,Ana,+5511999990001\n")
        .file(
            "campaigns/early.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n",
        )
        .file(
            "campaigns/later.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n",
        );
    // A paused campaign exists before the watcher starts.
    let start = "2026-11-30T11:59:56Z";
    p.ok(&["-q", "--now", start, "plan", "early"]);
    p.ok(&["pause", "early"]);
    let child = spawn(&p, &["--now", start, "run", "--watch"]);
    std::thread::sleep(Duration::from_millis(500));
    // Planned after the watcher started, due a few seconds ahead.
    p.ok(&["-q", "--now", start, "plan", "later"]);
    wait_until(
        "the later campaign to be sent",
        Duration::from_secs(40),
        || outbox_lines(&p).iter().any(|l| l["campaign"] == "later"),
    );
    let lines = outbox_lines(&p);
    assert!(
        lines.iter().all(|l| l["campaign"] != "early"),
        "a paused campaign was sent"
    );
    // Sent at (or after) its instant, never before.
    let sent_at: jiff::Timestamp = lines[0]["sent_at"].as_str().unwrap().parse().unwrap();
    assert!(sent_at >= DUE.parse().unwrap(), "sent early: {sent_at}");
    p.ok(&["resume", "early"]);
    wait_until(
        "the resumed campaign to be sent",
        Duration::from_secs(40),
        || outbox_lines(&p).iter().any(|l| l["campaign"] == "early"),
    );
    signal(&child, "-INT");
    let o = finish(child, Duration::from_secs(40));
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stderr.contains("run: 2 sent"), "{}", o.stderr);
    assert_eq!(outbox_lines(&p).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Exit codes and the summary line.

#[test]
fn exit_codes_and_summary_line() {
    // All sent: 0, and the summary names each count.
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("templates/t.hbs", "Oi {{first_name}}\n")
        .file(
            "a.csv",
            "id,first_name,phone\n1,Ana,+5511999990001\n2,Bia,+5511999990002\n3,Caio,+5511999990003\n",
        )
        .file(
            "campaigns/c.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00, expire_after: 1h }\n",
        );
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    p.ok(&["suppress", "add", "+55 11 99999-0003"]);
    // Two hours late: expired (exit 1), the suppressed one skipped.
    let o = p.expect(1, &["--now", "2026-11-30T14:00:00Z", "run", "--once"]);
    assert!(
        o.stderr
            .contains("run: 0 sent, 0 failed, 0 retrying, 0 deferred, 2 expired, 1 skipped"),
        "{}",
        o.stderr
    );
    // Nothing due: 0.
    let o = p.ok(&["--now", "2026-11-30T14:00:00Z", "run", "--once"]);
    assert!(o.stderr.contains("run: 0 sent"), "{}", o.stderr);
    // JSON summary on stdout.
    let o = p.ok(&[
        "--format",
        "json",
        "--now",
        "2026-11-30T14:00:00Z",
        "run",
        "--once",
    ]);
    let v: Value = serde_json::from_str(o.stdout.trim()).unwrap();
    for k in [
        "sent",
        "failed",
        "deferred",
        "expired",
        "skipped",
        "interrupted",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    // Deferred (night in São Paulo): 0.
    let q = Project::empty();
    q.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("templates/t.hbs", "Oi\n")
        .file("a.csv", "id,phone\n1,+5511999990001\n")
        .file(
            "campaigns/c.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00, quiet_hours: { start: \"21:00\", end: \"08:00\" } }\n",
        );
    q.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    let o = q.ok(&["--now", "2026-12-01T02:00:00Z", "run", "--once"]);
    assert!(o.stderr.contains("1 deferred"), "{}", o.stderr);
    // Bad input: 2; unknown campaign: 2.
    q.expect(2, &["run", "--campaign", "nope"]);
    q.expect(2, &["run", "--lease", "five minutes"]);
    // No database (a mistyped --db, the wrong folder): 2, and none is created (issue #13).
    q.expect(2, &["--db", "no/such/dir/x.db", "run"]);
    // Unusable database: 4.
    q.file("junk.db", "this is not a SQLite database, only text\n");
    q.expect(4, &["--db", "junk.db", "run"]);
}

#[test]
fn failed_sends_exit_1() {
    // A webhook that refuses every request (HTTP 400, permanent).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if line.trim_end().is_empty() {
                            break;
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply = "{\"error\":\"bad\"}";
                    let _ = write!(
                        w,
                        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                }
            });
        }
    });
    let p = webhook_project(&url, 2, 2);
    let o = p.expect(1, &["--now", DUE, "run", "--once"]);
    assert!(o.stderr.contains("run: 0 sent, 2 failed"), "{}", o.stderr);
}

// ---------------------------------------------------------------------------------------------
// Admin commands, end to end.

#[test]
fn suppress_add_remove_list_import_normalise_and_are_honoured_at_dispatch() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("templates/t.hbs", "Oi\n")
        .file(
            "a.csv",
            "id,phone\n1,+5511999990001\n2,+5511999990002\n3,+5511999990003\n4,+5511999990004\n",
        )
        .file(
            "campaigns/c.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n",
        )
        .file("optout.csv", "name,phone\nx,+55 (11) 99999-0002\n")
        .file("optout.txt", "Someone@Example.COM\n+55 11 99999 0004\n");
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    // Added after planning, in a sloppy spelling: honoured at dispatch.
    p.ok(&["suppress", "add", "+55 11 99999-0001", "--reason", "asked"]);
    p.ok(&["suppress", "import", "optout.csv"]);
    p.ok(&["suppress", "import", "optout.txt"]);
    let list = p.ok(&["--format", "json", "suppress", "list"]).json_lines();
    let addrs: BTreeSet<&str> = list
        .iter()
        .map(|s| s["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        addrs,
        BTreeSet::from([
            "+5511999990001",
            "+5511999990002",
            "+5511999990004",
            "someone@example.com"
        ]),
        "{list:?}"
    );
    // Removed again (any spelling): sent.
    p.ok(&["suppress", "remove", "+55-11-99999-0004"]);
    let o = p.ok(&["--now", DUE, "run", "--once"]);
    assert!(
        o.stderr.contains("2 sent") && o.stderr.contains("2 skipped"),
        "{}",
        o.stderr
    );
    let msgs = p.messages();
    for m in &msgs {
        let want = if ["1", "2"].contains(&m["recipient"].as_str().unwrap()) {
            "skipped"
        } else {
            "sent"
        };
        assert_eq!(m["state"], want, "{m}");
    }
}

#[test]
fn pause_resume_cancel_gate_dispatch() {
    let p = Project::empty();
    let mut csv = String::from("id,phone\n");
    for i in 0..10 {
        csv.push_str(&format!("{i},+55119999900{i:02}\n"));
    }
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("templates/t.hbs", "Oi\n")
        .file("a.csv", &csv)
        .file(
            "campaigns/c.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n",
        );
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    p.ok(&["pause", "c"]);
    let o = p.ok(&["--now", DUE, "run", "--once"]);
    assert!(o.stderr.contains("run: 0 sent"), "{}", o.stderr);
    let st = p.ok(&["--format", "json", "status"]).stdout;
    assert!(st.contains("paused"), "{st}");
    p.ok(&["resume", "c"]);
    p.ok(&["--now", DUE, "run", "--once", "--limit", "4"]);
    assert_eq!(by_state(&p.messages()).get("sent"), Some(&4));
    p.ok(&["cancel", "c"]);
    p.ok(&["--now", DUE, "run", "--once"]);
    let s = by_state(&p.messages());
    assert_eq!(
        (s.get("sent"), s.get("cancelled")),
        (Some(&4), Some(&6)),
        "{s:?}"
    );
    assert_eq!(outbox_lines(&p).len(), 4);
    p.expect(2, &["pause", "nope"]);
}

/// Stored rules that no longer parse (a hand-edited or corrupted database) are never dropped:
/// quiet hours silently off would send at night. The campaign is paused with the reason,
/// nothing is sent, the run exits 1, and another campaign in the same run is sent as usual
/// (pausing moves the gate once, not at every re-read); a re-plan and `resume` bring it back.
#[test]
fn corrupted_stored_quiet_hours_pause_the_campaign_instead_of_sending() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("templates/t.hbs", "Oi\n")
        .file("a.csv", "id,phone\n1,+5511999990001\n")
        .file(
            "campaigns/c.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00, quiet_hours: { start: \"21:00\", end: \"08:00\" } }\n",
        )
        .file("b.csv", &(0..50).fold(String::from("id,phone\n"), |s, i| s + &format!("{i},+55119888800{i:02}\n")))
        .file(
            "campaigns/ok.yaml",
            "channel: outbox\ntemplate: t\naudience: b.csv\nschedule: { at: 2026-11-30T09:00 }\n",
        );
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c", "ok"]);
    {
        let c = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
        let n = c
            .execute(
                "UPDATE campaigns SET rules = replace(rules, '08:00:00', '8 o''clock') WHERE name = 'c'",
                [],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let o = p.expect(1, &["--now", DUE, "run", "--once", "--batch", "8"]);
    assert!(o.stderr.contains("run: 50 sent"), "{}", o.stderr);
    assert!(
        outbox_lines(&p).iter().all(|l| l["campaign"] == "ok"),
        "nothing of c is sent"
    );
    let st = p.ok(&["status", "c"]);
    let text = format!("{}{}", st.stdout, st.stderr);
    assert!(
        text.contains("paused") && text.contains("stored rules cannot be read"),
        "{text}"
    );
    assert_eq!(by_state(&p.messages()).get("pending"), Some(&1));
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    p.ok(&["resume", "c"]);
    p.ok(&["--now", DUE, "run", "--once"]);
    assert_eq!(outbox_lines(&p).len(), 51);
}

/// A stored zone this build's time-zone data does not know (a database planned by a newer
/// tzdb, or hand-edited) is never judged in UTC: quiet hours could not be applied, so the
/// message fails with code `zone` and says why; the others are sent. A zero lease is refused
/// before anything is claimed.
#[test]
fn an_unknown_stored_zone_fails_its_message_and_a_sub_second_lease_is_refused() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("templates/t.hbs", "Oi\n")
        .file("a.csv", "id,phone\n1,+5511999990001\n2,+5511999990002\n")
        .file(
            "campaigns/c.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00, quiet_hours: { start: \"21:00\", end: \"08:00\" } }\n",
        );
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    {
        let c = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
        let n = c
            .execute(
                "UPDATE messages SET zone = 'Mars/Olympus_Mons' WHERE recipient = '1'",
                [],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let o = p.expect(2, &["--now", DUE, "run", "--once", "--lease", "0s"]);
    assert!(o.stderr.contains("--lease"), "{}", o.stderr);
    assert!(outbox_lines(&p).is_empty(), "nothing claimed or sent");
    let o = p.expect(1, &["--now", DUE, "run", "--once"]);
    assert!(o.stderr.contains("run: 1 sent, 1 failed"), "{}", o.stderr);
    let lines = outbox_lines(&p);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["recipient"], "2");
    let failed: Vec<Value> = p
        .messages()
        .into_iter()
        .filter(|m| m["state"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let e = failed[0]["last_error"].as_str().unwrap_or_default();
    assert!(
        e.contains("Mars/Olympus_Mons") && e.contains("quiet hours cannot be judged"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// The database file.

#[cfg(unix)]
#[test]
fn read_only_database_is_a_clear_error_and_unchanged() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file("templates/t.hbs", "Oi\n")
        .file("a.csv", "id,phone\n1,+5511999990001\n")
        .file(
            "campaigns/c.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n",
        );
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    // Checkpoint so that the whole database is in the main file, then make it read-only.
    {
        let c = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let db = p.path().join("disparo.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(&db).unwrap();
    // As root, permissions are not enforced: run as `nobody` instead (setpriv, util-linux).
    let root = std::fs::OpenOptions::new().write(true).open(&db).is_ok();
    let mut cmd = if root {
        std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_disparo"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_disparo"))
    };
    cmd.args(["--now", DUE, "run", "--once"])
        .current_dir(p.path())
        .env_remove("DISPARO_DB")
        .env_remove("DISPARO_CONFIG")
        .env_remove("DISPARO_NOW")
        .env("DISPARO_SIMULATE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let Ok(child) = cmd.spawn() else {
        eprintln!("setpriv unavailable as root: read-only case not checked");
        return;
    };
    let o = finish(child, Duration::from_secs(60));
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert!(
        o.stderr.contains("read-only")
            || o.stderr.contains("readonly")
            || o.stderr.contains("writable"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("hint:"), "{}", o.stderr);
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn full_database_rolls_the_plan_back_with_a_clear_error() {
    let p = Project::empty();
    let mut csv = String::from("id,first_name,phone\n");
    for i in 0..3000 {
        csv.push_str(&format!(
            "r{i},Someone with a long name {i},+55119{:08}\n",
            40_000_000 + i
        ));
    }
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\n")
        .file(
            "templates/t.hbs",
            "Oi {{first_name}}, this body is long enough to fill pages quickly.\n",
        )
        .file("a.csv", "id,first_name,phone\n1,Ana,+5511999990001\n")
        .file(
            "campaigns/small.yaml",
            "channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n",
        )
        .file("big.csv", &csv)
        .file(
            "campaigns/big.yaml",
            "channel: outbox\ntemplate: t\naudience: big.csv\nschedule: { at: 2026-11-30T09:00 }\n",
        );
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "small"]);
    let pages: i64 = {
        let c = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
        c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap()
    };
    // The database may grow by a few pages only: the big plan cannot fit.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_disparo"));
    cmd.args(["--now", PLAN_NOW, "plan", "big"])
        .current_dir(p.path())
        .env_remove("DISPARO_DB")
        .env_remove("DISPARO_CONFIG")
        .env_remove("DISPARO_NOW")
        .env("DISPARO_SIMULATE", "1")
        .env("DISPARO_DB_MAX_PAGES", (pages + 4).to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let o = finish(cmd.spawn().unwrap(), Duration::from_secs(120));
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert!(o.stderr.contains("full"), "{}", o.stderr);
    assert!(o.stderr.contains("hint:"), "{}", o.stderr);
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    // Rolled back: only the small campaign's message, and no trace of the big one.
    let msgs = p.messages();
    assert_eq!(msgs.len(), 1, "the failed plan left rows behind");
    assert_eq!(msgs[0]["campaign"], "small");
    p.expect(2, &["status", "big"]);
}
