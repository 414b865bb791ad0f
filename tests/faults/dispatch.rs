//! Hostile dispatch tests (issue #12): the real binary against a scripted provider on
//! 127.0.0.1 that answers slowly, holds a request until the test releases it, hangs, refuses
//! credentials or asks to be retried in a thousand years.
//!
//! What each test holds (the contract of `disparo run`, docs/delivery.md):
//! - leases are renewed while their run lives, so two overlapping runs against a slow provider
//!   deliver every message once; a SIGKILLed run's claims are retried seconds after its short
//!   lease expires, only the send in flight at the kill repeats (same key), and a lost lease does
//!   not use up one of a never-sent message's `max_attempts`;
//! - a `suppress add`, `pause` or `cancel` committed by another process while a batch is in hand
//!   is honoured before every later send of that batch;
//! - quiet hours are judged when the send really starts (after the rate limiter), the recorded
//!   attempt time is that instant, the campaign `throttle` is enforced, and `run --now` needs
//!   `DISPARO_SIMULATE=1`;
//! - a database file deleted and recreated under `run --watch` stops the run (exit 4) before it
//!   sends anything twice;
//! - after the circuit breaker trips, no more than `threshold + concurrency - 1` requests reach
//!   the provider;
//! - a huge `Retry-After` does not panic the run.
//!
//! No assertion is about speed; every wait has a generous deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Output, Project};

// ---------------------------------------------------------------------------------------------
// A scripted webhook provider: one thread per connection, keep-alive, Content-Length bodies.

/// One request as the provider received it.
#[derive(Debug, Clone)]
pub struct Hit {
    /// 1 for the first request the provider received.
    pub n: usize,
    /// The `Idempotency-Key` header (checked equal to the body's `id`).
    pub key: String,
    pub campaign: String,
    pub recipient: String,
    /// The body's `to` (the recipient's address).
    pub to: String,
    /// When the whole request had arrived (monotonic, and as a wall-clock instant).
    pub at: Instant,
    pub wall: jiff::Timestamp,
    /// The status the script chose for it (2xx: the provider accepted the message).
    pub status: u16,
}

impl Hit {
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How the provider answers one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Do not answer until [`Provider::release`] (or the provider is dropped).
    pub hold: bool,
}

impl Answer {
    pub fn ok() -> Answer {
        Answer::status(200)
    }
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
            hold: false,
        }
    }
    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
    pub fn held(mut self) -> Answer {
        self.hold = true;
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Chooses the answer to a request, given it and every request received before it.
pub type Script = Box<dyn FnMut(&Hit, &[Hit]) -> Answer + Send>;

struct Shared {
    log: Mutex<Log>,
    changed: Condvar,
    script: Mutex<Script>,
}

#[derive(Default)]
struct Log {
    hits: Vec<Hit>,
    /// Requests whose body `id` differs from the `Idempotency-Key` header (must stay empty).
    mismatched: Vec<String>,
    /// Held requests are released when this is set.
    released: bool,
}

pub struct Provider {
    pub url: String,
    shared: Arc<Shared>,
}

impl Provider {
    /// A provider answering every request with `200 {"id": "p-N"}` at once.
    pub fn ok() -> Provider {
        Provider::scripted(|_, _| Answer::ok())
    }

    pub fn scripted(script: impl FnMut(&Hit, &[Hit]) -> Answer + Send + 'static) -> Provider {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            log: Mutex::new(Log::default()),
            changed: Condvar::new(),
            script: Mutex::new(Box::new(script)),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        Provider { url, shared }
    }

    /// Every request so far, in arrival order.
    pub fn hits(&self) -> Vec<Hit> {
        let log = self.shared.log.lock().unwrap();
        assert!(
            log.mismatched.is_empty(),
            "Idempotency-Key differs from the message id: {:?}",
            log.mismatched
        );
        log.hits.clone()
    }

    /// Accepted requests (2xx) per idempotency key.
    pub fn accepted(&self) -> BTreeMap<String, usize> {
        let mut c = BTreeMap::new();
        for h in self.hits().iter().filter(|h| h.accepted()) {
            *c.entry(h.key.clone()).or_insert(0) += 1;
        }
        c
    }

    /// Requests of any answer per idempotency key.
    pub fn arrivals(&self) -> BTreeMap<String, usize> {
        let mut c = BTreeMap::new();
        for h in self.hits() {
            *c.entry(h.key).or_insert(0) += 1;
        }
        c
    }

    /// Waits until at least `n` requests have arrived.
    pub fn wait_for(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        let mut log = self.shared.log.lock().unwrap();
        while log.hits.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the provider saw {} requests within {within:?}, expected {n}",
                log.hits.len()
            );
            log = self.shared.changed.wait_timeout(log, left).unwrap().0;
        }
    }

    /// Lets every held request (and any later one the script holds) be answered.
    pub fn release(&self) {
        self.shared.log.lock().unwrap().released = true;
        self.shared.changed.notify_all();
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.release();
    }
}

/// Reads one request (head parsed by `httparse`, body by its `Content-Length`): its
/// `Idempotency-Key` and body, or `None` at the end of the connection.
fn read_request(r: &mut impl Read, buf: &mut Vec<u8>) -> Option<(Option<String>, Vec<u8>)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head) = req.parse(buf).ok()? {
            let value = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(str::to_owned)
            };
            let len: usize = value("content-length")?.parse().ok()?;
            let key = value("idempotency-key");
            while buf.len() < head + len {
                fill(r, buf)?;
            }
            let body = buf[head..head + len].to_vec();
            buf.drain(..head + len);
            return Some((key, body));
        }
        fill(r, buf)?;
    }
}

/// Appends what the connection has next; `None` at its end.
fn fill(r: &mut impl Read, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match r.read(&mut chunk) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn serve(mut conn: TcpStream, shared: &Shared) {
    let Ok(mut w) = conn.try_clone() else { return };
    let mut buf = Vec::new();
    while let Some((key, body)) = read_request(&mut conn, &mut buf) {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let field = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
        let key = key.unwrap_or_else(|| "<no Idempotency-Key>".into());
        let mut hit = Hit {
            n: 0,
            key,
            campaign: field("campaign"),
            recipient: field("recipient"),
            to: field("to"),
            at: Instant::now(),
            wall: jiff::Timestamp::now(),
            status: 0,
        };
        let answer = {
            let mut log = shared.log.lock().unwrap();
            if field("id") != hit.key {
                let m = format!("{} vs body id {:?}", hit.key, body["id"]);
                log.mismatched.push(m);
            }
            hit.n = log.hits.len() + 1;
            let answer = (shared.script.lock().unwrap())(&hit, &log.hits);
            hit.status = answer.status;
            log.hits.push(hit.clone());
            shared.changed.notify_all();
            answer
        };
        if answer.hold {
            let mut log = shared.log.lock().unwrap();
            while !log.released {
                log = shared.changed.wait(log).unwrap();
            }
        }
        std::thread::sleep(answer.delay);
        let reply = if answer.accepted() {
            format!("{{\"id\":\"p-{}\"}}", hit.n)
        } else {
            "{\"error\":\"scripted\"}".to_owned()
        };
        let mut head = format!(
            "HTTP/1.1 {} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            answer.status,
            reply.len()
        );
        for (k, v) in &answer.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if w.write_all(head.as_bytes()).is_err() || w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

impl Answer {
    fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

// ---------------------------------------------------------------------------------------------
// Projects and processes.

/// `n` São Paulo recipients (`r0`..) on a webhook channel `hook` to `url` with the extra channel
/// settings `channel` (e.g. `"concurrency: 1"`), in campaign `c` with the extra campaign lines
/// `campaign` (no `schedule` line: due as soon as allowed). Not planned yet.
pub fn project(url: &str, channel: &str, n: usize, campaign: &str) -> Project {
    let p = Project::empty();
    let mut csv = String::from("id,first_name,phone\n");
    for i in 0..n {
        csv.push_str(&format!("r{i},Ana {i},{}\n", phone(i)));
    }
    let sep = if channel.is_empty() { "" } else { ", " };
    p.file(
        "disparo.yaml",
        &format!(
            "timezone: America/Sao_Paulo\nchannels:\n  hook: {{ type: webhook, url: \"{url}\"{sep}{channel} }}\n"
        ),
    )
    .file(
        "campaigns/c.yaml",
        &format!("channel: hook\ntemplate: t\naudience: a.csv\n{campaign}"),
    )
    .file("templates/t.hbs", "Oi {{first_name}}\n")
    .file("a.csv", &csv);
    p
}

/// The phone number of recipient `r{i}`.
pub fn phone(i: usize) -> String {
    format!("+55119{:08}", 30_000_000 + i)
}

/// The binary in the project's folder with a clean environment: no database, config or `now`
/// from the caller's, `DISPARO_SIMULATE` only when `simulate`.
pub fn command(p: &Project, simulate: bool, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_disparo"));
    c.args(args)
        .current_dir(p.path())
        .env_remove("DISPARO_DB")
        .env_remove("DISPARO_CONFIG")
        .env_remove("DISPARO_NOW")
        .env_remove("DISPARO_SIMULATE")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if simulate {
        c.env("DISPARO_SIMULATE", "1");
    }
    c
}

pub fn spawn(p: &Project, simulate: bool, args: &[&str]) -> Child {
    command(p, simulate, args).spawn().expect("spawn disparo")
}

/// Runs to the end (killed and reported after `within`).
pub fn run(p: &Project, simulate: bool, args: &[&str], within: Duration) -> Output {
    finish(spawn(p, simulate, args), within)
}

/// Waits for a child's exit and output (a thread waits; this one takes its answer with a
/// deadline, after which the child is SIGKILLed and the test fails with its stderr).
pub fn finish(child: Child, within: Duration) -> Output {
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let o = match rx.recv_timeout(within) {
        Ok(o) => o.expect("wait for disparo"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            let o = rx.recv().unwrap().expect("wait for disparo");
            panic!(
                "disparo did not finish within {within:?}\n--- stderr\n{}",
                text(&o.stderr)
            );
        }
    };
    Output {
        code: o.status.code().unwrap_or(-1),
        stdout: text(&o.stdout),
        stderr: text(&o.stderr),
    }
}

/// Asserts that a run ended the way a user may see it end: not a crash, not a panic.
pub fn assert_no_panic(o: &Output) {
    assert!(
        o.code != 101 && o.code != -1 && !o.stderr.contains("panicked"),
        "exit {}\n--- stderr\n{}",
        o.code,
        o.stderr
    );
}

pub fn by_state(msgs: &[Value]) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for m in msgs {
        *c.entry(m["state"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    c
}

pub fn keys_in(msgs: &[Value], state: &str) -> BTreeSet<String> {
    msgs.iter()
        .filter(|m| m["state"] == state)
        .map(|m| m["key"].as_str().unwrap().to_owned())
        .collect()
}

/// One line per message (recipient, state, attempts, last error), for failure messages.
pub fn table(msgs: &[Value]) -> String {
    msgs.iter()
        .map(|m| {
            format!(
                "{} {} {} attempts={} {}\n",
                m["recipient"].as_str().unwrap_or("?"),
                m["key"].as_str().unwrap_or("?"),
                m["state"].as_str().unwrap_or("?"),
                m["attempts"],
                m["last_error"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// One line per request (number, recipient, key, status), for failure messages.
pub fn log(hits: &[Hit]) -> String {
    hits.iter()
        .map(|h| format!("#{} {} {} -> {}\n", h.n, h.recipient, h.key, h.status))
        .collect()
}

fn message<'a>(msgs: &'a [Value], key: &str) -> &'a Value {
    msgs.iter()
        .find(|m| m["key"] == key)
        .unwrap_or_else(|| panic!("no message {key} in {msgs:?}"))
}

/// `export c --attempts` as JSON objects.
pub fn attempts(p: &Project) -> Vec<Value> {
    p.ok(&["--format", "json", "export", "c", "--attempts"])
        .json_lines()
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const MINUTE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// 1. Leases.

/// A claimed batch that takes longer to send than the lease: the lease is renewed while the
/// run lives, so an overlapping run does not reclaim (and resend) what the first still holds.
#[test]
fn overlapping_runs_against_a_slow_provider_deliver_each_message_once() {
    let provider = Provider::scripted(|_, _| Answer::ok().after(Duration::from_millis(1500)));
    let p = project(&provider.url, "concurrency: 1", 6, "");
    p.ok(&["-q", "plan", "c"]);
    let args = ["run", "--once", "--lease", "2s"];
    let a = spawn(&p, false, &args);
    let b = spawn(&p, false, &args);
    for o in [finish(a, 2 * MINUTE), finish(b, 2 * MINUTE)] {
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(!o.stderr.contains("locked"), "{}", o.stderr);
    }
    let accepted = provider.accepted();
    let repeated: Vec<_> = accepted.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    assert_eq!(accepted.len(), 6, "every message delivered: {accepted:?}");
    let msgs = p.messages();
    assert_eq!(by_state(&msgs).get("sent"), Some(&6), "{msgs:?}");
}

/// A run SIGKILLed while the provider hangs on its first request: a run started 3 s later
/// (its 2 s lease expired) sends every message, only the hung one may arrive twice (with the
/// same key). The hung send's lost lease is an attempt of unknown outcome (on record as
/// `lease_expired`); claims the dead run never started are taken over silently and spend no
/// attempt: with `max_attempts: 2`, one 503 does not fail a message that was never sent.
#[test]
fn a_killed_runs_claims_are_retried_after_its_short_lease_without_using_up_attempts() {
    let first_503: Arc<Mutex<Option<String>>> = Arc::default();
    let chosen = first_503.clone();
    let provider = Provider::scripted(move |hit, before| {
        if hit.n == 1 {
            return Answer::ok().held(); // hangs until the end of the test
        }
        let mut chosen = chosen.lock().unwrap();
        // The first message other than the hung one: 503 once, then accepted.
        if hit.key != before[0].key && chosen.is_none() {
            *chosen = Some(hit.key.clone());
            return Answer::status(503);
        }
        Answer::ok()
    });
    let p = project(&provider.url, "concurrency: 1, max_attempts: 2", 6, "");
    p.ok(&["-q", "plan", "c"]);
    let mut child = spawn(&p, false, &["run", "--once", "--lease", "2s"]);
    provider.wait_for(1, MINUTE);
    // The run writes "started" for sends still under way with its group commits (every
    // 250 ms): give it one before the kill, so the hung send is on record as possibly sent.
    std::thread::sleep(Duration::from_millis(800));
    child.kill().unwrap(); // SIGKILL: nothing released, nothing recorded
    child.wait().unwrap();
    let killed_at = Instant::now();
    let hung = provider.hits()[0].key.clone();
    let at_kill = p.messages();
    let never_started: BTreeSet<String> = keys_in(&at_kill, "sending")
        .into_iter()
        .filter(|k| *k != hung)
        .collect();
    for k in &never_started {
        assert_eq!(message(&at_kill, k)["attempts"], 0, "{}", table(&at_kill));
    }
    std::thread::sleep(Duration::from_secs(3).saturating_sub(killed_at.elapsed()));
    let o = run(&p, false, &["run", "--once", "--lease", "2s"], 2 * MINUTE);
    assert_no_panic(&o);
    let msgs = p.messages();
    assert_eq!(
        by_state(&msgs).get("sent"),
        Some(&6),
        "every message sent, none failed:\n{}{}\n{}",
        table(&msgs),
        log(&provider.hits()),
        o.stderr
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let arrivals = provider.arrivals();
    let refused = first_503.lock().unwrap().clone().expect("a 503 was given");
    for (key, n) in &arrivals {
        let most = if *key == hung || *key == refused {
            2
        } else {
            1
        };
        assert!(*n <= most, "{key} arrived {n} times (hung: {hung})");
    }
    assert_eq!(arrivals.len(), 6, "every message reached the provider");
    assert_eq!(provider.accepted().len(), 6);
    // The hung send's lost lease is on record (an attempts row, `lease_expired`) and is an
    // attempt of unknown outcome: the retry is attempt 2.
    let rows = attempts(&p);
    let lost = |k: &str| {
        rows.iter()
            .any(|a| a["message_id"] == k && a["outcome"] == "lease_expired")
    };
    assert_eq!(message(&msgs, &hung)["attempts"], 2, "{}", table(&msgs));
    assert!(
        lost(&hung),
        "the lost lease of {hung} is recorded: {rows:?}"
    );
    // A claim the dead run never started is taken over silently: no lost lease on record,
    // attempts are its real sends (1, or 2 after the 503).
    for k in &never_started {
        assert_eq!(
            message(&msgs, k)["attempts"],
            arrivals[k],
            "{k}: the lost lease of a message never started counted as an attempt\n{}",
            table(&msgs)
        );
        assert!(!lost(k), "{k} was never started: {rows:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. State changed by another process while a batch is in hand.

/// Five messages, one at a time; the provider holds the first request while the test runs
/// `change` (another process), then releases it. Returns the provider, the project, the key
/// and recipient of the held message, and the run's output.
fn change_mid_batch(
    change: impl FnOnce(&Project, &Hit),
) -> (Provider, Project, Hit, Output, Vec<Value>) {
    let provider = Provider::scripted(|hit, _| {
        if hit.n == 1 {
            Answer::ok().held()
        } else {
            Answer::ok()
        }
    });
    let p = project(&provider.url, "concurrency: 1", 5, "");
    p.ok(&["-q", "plan", "c"]);
    let child = spawn(&p, false, &["run", "--once"]);
    provider.wait_for(1, MINUTE);
    let held = provider.hits()[0].clone();
    // The whole batch is in hand: the held one in flight, the rest claimed behind it.
    change(&p, &held);
    provider.release();
    let o = finish(child, 2 * MINUTE);
    assert_no_panic(&o);
    let msgs = p.messages();
    (provider, p, held, o, msgs)
}

#[test]
fn suppress_add_during_a_batch_is_honoured_before_the_next_send() {
    let target = Arc::new(Mutex::new(String::new()));
    let t = target.clone();
    let (provider, _p, held, o, msgs) = change_mid_batch(move |p, held| {
        // The last recipient that is not the one in flight.
        let i = if held.recipient == "r4" { 3 } else { 4 };
        *t.lock().unwrap() = format!("r{i}");
        p.ok(&["suppress", "add", &phone(i)]);
    });
    assert_eq!(o.code, 0, "{}", o.stderr);
    let target = target.lock().unwrap().clone();
    let hits = provider.hits();
    assert!(
        hits.iter().all(|h| h.recipient != target),
        "{target} was messaged after its opt-out was committed:\n{}",
        log(&hits)
    );
    for m in &msgs {
        let want = if m["recipient"] == target.as_str() {
            "skipped"
        } else {
            "sent"
        };
        assert_eq!(
            m["state"],
            want,
            "held {}:\n{}",
            held.recipient,
            table(&msgs)
        );
    }
}

/// `disparo <command> c` while the first request of the batch is held: nothing more reaches
/// the provider, the held message is `sent`, the rest `rest`.
fn stop_during_a_batch(command: &'static str, rest: &str) {
    let (provider, _p, held, o, msgs) = change_mid_batch(|p, _| {
        p.ok(&[command, "c"]);
    });
    assert_eq!(o.code, 0, "{}", o.stderr);
    let hits = provider.hits();
    assert_eq!(
        hits.len(),
        1,
        "sent after `{command}` was committed:\n{}",
        log(&hits)
    );
    for m in &msgs {
        let want = if m["key"] == held.key.as_str() {
            "sent"
        } else {
            rest
        };
        assert_eq!(m["state"], want, "{}", table(&msgs));
    }
}

#[test]
fn pause_during_a_batch_stops_it_after_the_send_in_flight() {
    stop_during_a_batch("pause", "pending");
}

#[test]
fn cancel_during_a_batch_stops_it_after_the_send_in_flight() {
    stop_during_a_batch("cancel", "cancelled");
}

// ---------------------------------------------------------------------------------------------
// 3. Rules judged at the moment of the send; the campaign throttle; `--now` only simulated.

fn ts(s: &str) -> jiff::Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("not an instant: {s:?}: {e}"))
}

/// `rate: 30/m` (a send every 2 s) and quiet hours from 21:00 São Paulo, 3 s after the
/// simulated start: the third message's turn comes inside quiet hours, so it and the fourth
/// are deferred to 08:00 (reason `quiet_hours`), never sent; a sent message's recorded
/// `started_at` is the instant it reached the provider (within a second), not when it began
/// waiting for the rate limiter.
#[test]
fn quiet_hours_are_judged_after_the_rate_limiter_wait() {
    let provider = Provider::ok();
    let p = project(
        &provider.url,
        "rate: 30/m, concurrency: 1",
        4,
        "schedule: { quiet_hours: { start: \"21:00\", end: \"08:00\" } }\n",
    );
    // 20:59:50 in São Paulo: due at once.
    p.ok(&["-q", "--now", "2026-12-01T23:59:50Z", "plan", "c"]);
    let quiet = ts("2026-12-02T00:00:00Z"); // 21:00 local
    let morning = ts("2026-12-02T11:00:00Z"); // 08:00 local
    let o = run(
        &p,
        true,
        &["--now", "2026-12-01T23:59:57Z", "run", "--once"],
        2 * MINUTE,
    );
    assert_no_panic(&o);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let hits = provider.hits();
    let msgs = p.messages();
    let sent_attempts: BTreeMap<String, jiff::Timestamp> = attempts(&p)
        .iter()
        .filter(|a| a["outcome"] == "sent")
        .map(|a| {
            (
                a["message_id"].as_str().unwrap().to_owned(),
                ts(a["started_at"].as_str().unwrap()),
            )
        })
        .collect();
    let first = hits
        .first()
        .expect("the first message was sent before 21:00");
    // The simulated clock runs at real speed from `--now`: the first send (no wait in the
    // limiter) fixes its offset from the wall clock.
    let offset = sent_attempts[&first.key].duration_since(first.wall);
    let context = format!("{}{}\n{}", table(&msgs), log(&hits), o.stderr);
    let simulated = |h: &Hit| h.wall.checked_add(offset).unwrap();
    let margin = jiff::SignedDuration::from_millis(50);
    for h in &hits {
        assert!(
            simulated(h) < quiet.checked_add(margin).unwrap(),
            "{} reached the provider at {} (simulated), inside quiet hours\n{context}",
            h.recipient,
            simulated(h)
        );
    }
    for h in &hits {
        let at = simulated(h);
        let started = sent_attempts
            .get(&h.key)
            .unwrap_or_else(|| panic!("no sent attempt for {}\n{context}", h.key));
        let gap = started.duration_since(at).abs();
        assert!(
            gap <= jiff::SignedDuration::from_secs(1),
            "{}: attempt recorded at {started}, reached the provider at {at}\n{context}",
            h.recipient
        );
    }
    let sent = keys_in(&msgs, "sent");
    assert!(!sent.is_empty() && sent.len() < 4, "{context}");
    for m in msgs.iter().filter(|m| m["state"] != "sent") {
        assert_eq!(m["state"], "pending", "{context}");
        assert!(
            m["reasons"].as_str().unwrap_or("").contains("quiet_hours"),
            "{context}"
        );
        assert!(ts(m["due_at"].as_str().unwrap()) >= morning, "{context}");
    }
}

/// Campaign `throttle: 2/s` on a channel without a rate: the provider never sees more than 2
/// of its requests in any second (a 0.9 s window: arrival times jitter by a few ms around
/// the send starts the limiter spaces).
#[test]
fn campaign_throttle_is_enforced_at_dispatch() {
    let provider = Provider::ok();
    let p = project(&provider.url, "", 8, "throttle: 2/s\n");
    p.ok(&["-q", "plan", "c"]);
    let o = run(&p, false, &["run", "--once"], 2 * MINUTE);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let hits: Vec<Hit> = provider
        .hits()
        .into_iter()
        .filter(|h| h.campaign == "c")
        .collect();
    assert_eq!(provider.accepted().len(), 8, "{}", log(&hits));
    let window = Duration::from_millis(900);
    for (i, h) in hits.iter().enumerate() {
        let within: Vec<&Hit> = hits[i..]
            .iter()
            .filter(|x| x.at.duration_since(h.at) < window)
            .collect();
        assert!(
            within.len() <= 2,
            "{} requests within {window:?} of #{} (throttle 2/s): {:?}",
            within.len(),
            h.n,
            within
                .iter()
                .map(|x| x.at.duration_since(h.at))
                .collect::<Vec<_>>()
        );
    }
}

/// `run --now X` sends for real while judging quiet hours at X: refused (exit 2, naming
/// `--now` and `DISPARO_SIMULATE`) unless `DISPARO_SIMULATE=1`; `--dry-run --now X` (which
/// sends nothing) still works.
#[test]
fn run_with_a_fake_now_is_refused_unless_simulating() {
    let provider = Provider::ok();
    let p = project(&provider.url, "", 2, "");
    p.ok(&["-q", "plan", "c"]);
    let later = "2026-12-24T12:00:00Z";
    let o = run(&p, false, &["--now", later, "run", "--once"], MINUTE);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("--now") && o.stderr.contains("DISPARO_SIMULATE"),
        "{}",
        o.stderr
    );
    let o = finish(
        command(&p, false, &["run", "--once"])
            .env("DISPARO_NOW", later)
            .spawn()
            .unwrap(),
        MINUTE,
    );
    assert_eq!(o.code, 2, "DISPARO_NOW: {}", o.stderr);
    assert!(o.stderr.contains("DISPARO_SIMULATE"), "{}", o.stderr);
    assert!(provider.hits().is_empty(), "{}", log(&provider.hits()));
    let o = run(&p, false, &["--now", later, "run", "--dry-run"], MINUTE);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(provider.hits().is_empty());
    assert_eq!(by_state(&p.messages()).get("pending"), Some(&2));
}

// ---------------------------------------------------------------------------------------------
// 4. The database file replaced under `run --watch`.

/// A watching run whose database file is deleted and recreated by a new `plan` notices (exit 4,
/// saying the file was replaced or removed) before it sends anything from the file it still has
/// open. Here the provider answers each message's first request with 503 and `Retry-After: 5`:
/// the watcher holds two retries in the old file; meanwhile the file is replaced, the messages
/// planned again and sent by a `run --once` on the new file. Today the watcher goes on with the
/// old file and delivers both a second time 5 s later.
#[test]
fn a_database_replaced_under_watch_stops_the_run_before_a_second_send() {
    let provider = Provider::scripted(|hit, before| {
        if before.iter().any(|b| b.key == hit.key) {
            Answer::ok()
        } else {
            Answer::status(503).header("Retry-After", "5")
        }
    });
    let p = project(&provider.url, "", 2, "");
    p.ok(&["-q", "plan", "c"]);
    let mut watcher = spawn(&p, false, &["run", "--watch"]);
    provider.wait_for(2, MINUTE);
    wait_until("the two retries to be recorded", MINUTE, || {
        p.messages().iter().all(|m| m["attempts"] == 1)
    });
    for f in ["disparo.db", "disparo.db-wal", "disparo.db-shm"] {
        let _ = std::fs::remove_file(p.path().join(f));
    }
    p.ok(&["-q", "plan", "c"]);
    let o = run(&p, false, &["run", "--once"], MINUTE);
    assert_eq!(o.code, 0, "the run on the new file: {}", o.stderr);
    let t0 = Instant::now();
    while watcher.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if watcher.try_wait().unwrap().is_none() {
        let _ = Command::new("kill")
            .args(["-INT", &watcher.id().to_string()])
            .status();
    }
    let o = finish(watcher, MINUTE);
    let twice: Vec<_> = provider
        .accepted()
        .into_iter()
        .filter(|(_, c)| *c > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "delivered twice: {twice:?}\n{}\n{}",
        log(&provider.hits()),
        o.stderr
    );
    assert_eq!(
        o.code, 4,
        "the watching run did not stop on the replaced database\n{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("replaced") || o.stderr.contains("removed"),
        "{}",
        o.stderr
    );
    assert_no_panic(&o);
}

// ---------------------------------------------------------------------------------------------
// 5. The circuit breaker stops what is queued.

/// Every request refused with 401, 300 messages, concurrency 4, `rate: 5/s`: the sends that
/// hold a concurrency slot wait their turn in the rate limiter. Once the breaker trips (the
/// third 401) none of them may go out: at most threshold + concurrency - 1 = 6 requests in all,
/// and none reaching the provider after the third answer (today they all do: 6, the last three
/// after the trip). The campaign is paused with the reason; every message is still pending.
#[test]
fn after_the_breaker_trips_no_queued_send_goes_out() {
    let provider = Provider::scripted(|_, _| Answer::status(401));
    let p = project(&provider.url, "concurrency: 4, rate: 5/s", 300, "");
    p.ok(&["-q", "plan", "c"]);
    let o = run(&p, false, &["run", "--once"], 2 * MINUTE);
    assert_no_panic(&o);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let hits = provider.hits();
    assert!(
        (3..=6).contains(&hits.len()),
        "{} requests reached the provider after 401s (at most 6):\n{}",
        hits.len(),
        log(&hits)
    );
    // Answers are immediate: the third one tripped the breaker about when it arrived. The
    // limiter spaces sends 200 ms apart, so a send started before the trip arrives well
    // within 100 ms of it.
    let tripped = hits[2].at + Duration::from_millis(100);
    let late: Vec<String> = hits
        .iter()
        .filter(|h| h.at > tripped)
        .map(|h| {
            format!(
                "#{} {:?} after the trip",
                h.n,
                h.at.duration_since(hits[2].at)
            )
        })
        .collect();
    assert!(late.is_empty(), "sent after the breaker tripped: {late:?}");
    let st = p.ok(&["--format", "json", "status", "c"]).json_lines();
    assert_eq!(st[0]["status"], "paused", "{st:?}");
    assert!(
        st[0]["status_reason"]
            .as_str()
            .unwrap_or("")
            .contains("circuit breaker"),
        "{st:?}"
    );
    assert_eq!(by_state(&p.messages()).get("pending"), Some(&300));
}

// ---------------------------------------------------------------------------------------------
// 6. A provider's absurd Retry-After.

/// A provider asking to be retried in 3,000 years (`Retry-After: 99999999999`) or in 300,000
/// (beyond the calendar's end), under `run --once` and `run --watch` (which sleeps until the next
/// due instant): no panic; the message waits (pending, far in the future) or fails with a
/// reason; the run's exit code is a documented one (0 or 1; 3 for the stopped watcher), never 4
/// or 101.
#[test]
fn a_huge_retry_after_does_not_panic_the_run() {
    for (retry_after, watch) in [
        ("99999999999", true),
        ("99999999999", false),
        ("9999999999999", false),
    ] {
        let provider =
            Provider::scripted(move |_, _| Answer::status(503).header("Retry-After", retry_after));
        let p = project(&provider.url, "", 1, "");
        p.ok(&["-q", "plan", "c"]);
        let what = format!("Retry-After: {retry_after}, watch: {watch}");
        let o = if watch {
            let child = spawn(&p, false, &["run", "--watch"]);
            provider.wait_for(1, MINUTE);
            let mut child = child;
            wait_until("the retry to be recorded", MINUTE, || {
                child.try_wait().unwrap().is_some() || p.messages()[0]["attempts"] == 1
            });
            // Give the watcher its turn to compute its next wake-up.
            std::thread::sleep(Duration::from_millis(1500));
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let o = finish(child, MINUTE);
            assert_no_panic(&o);
            assert_eq!(o.code, 3, "{what}: {}", o.stderr);
            o
        } else {
            let o = run(&p, false, &["run", "--once"], 2 * MINUTE);
            assert_no_panic(&o);
            assert!(
                o.code == 0 || o.code == 1,
                "{what}: exit {}: {}",
                o.code,
                o.stderr
            );
            o
        };
        let msgs = p.messages();
        let m = &msgs[0];
        match m["state"].as_str() {
            Some("pending") => assert!(
                ts(m["due_at"].as_str().unwrap()) > jiff::Timestamp::now(),
                "{what}: {}{}",
                table(&msgs),
                o.stderr
            ),
            Some("failed") => assert!(
                m["last_error"].as_str().is_some_and(|e| !e.is_empty()),
                "{what}: {}",
                table(&msgs)
            ),
            _ => panic!("{what}: {}{}", table(&msgs), o.stderr),
        }
    }
}
