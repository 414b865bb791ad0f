//! The dispatcher in-process on paused tokio time (issue #14): a real `SqliteStore` (a temp
//! file planned by the real binary), real channels (an outbox file, a webhook to a loopback
//! peer in the test's runtime) and `Clock::tokio` for both the run's clock and the lease clock,
//! so that retries, Retry-After, heartbeats, lease cuts, the breaker, pacing and shutdown are
//! checked at exact instants, without one real sleep.
//!
//! Paused time moves to the next timer as soon as the runtime has nothing to run. The
//! dispatcher's store thread counts as work while the runtime waits for it (see
//! `dispatch::worker`); the peer here does the same from accepting a connection until the
//! client closed it, so an answer arrives at the instant the request was sent. What remains
//! outside that is the kernel's loopback delivery of the connection itself, immediate on
//! Linux: the instants asserted after an answer (a retry's due time, the next attempt) are
//! measured from the recorded end of the attempt, never from its start.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use disparo::channel::limits::RetryPolicy;
use disparo::channel::{BuildContext, Channel, ChannelConfig};
use disparo::dispatch::{ChannelRuntime, Clock, Dispatcher, RunOptions, Shutdown, Summary};
use disparo::store::{AttemptRow, CampaignStatus, MessageFilter, MessageRow, SqliteStore, Store};
use jiff::{SignedDuration, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::harness::{Project, hook_project};

/// When the planned messages are due (09:00 in São Paulo, see `hook_project`), and where both
/// clocks of every run here start.
const T0: &str = "2026-11-30T12:00:00Z";

fn t0() -> Timestamp {
    T0.parse().unwrap()
}

fn ms(n: i64) -> SignedDuration {
    SignedDuration::from_millis(n)
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

/// A planned project (`n` recipients due at [`T0`] on the channel `hook`) and what a run of
/// it needs, built in-process.
struct Bench {
    project: Arc<Project>,
    store: Arc<dyn Store>,
    channel: ChannelRuntime,
    opts: RunOptions,
    shutdown: Arc<Shutdown>,
}

impl Bench {
    fn new(channel_yaml: &str, n: usize) -> Bench {
        let project = hook_project(channel_yaml, n);
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&project.path().join("disparo.db")).unwrap());
        let config: ChannelConfig = serde_saphyr::from_str(channel_yaml).unwrap();
        let ctx = BuildContext::new(project.path(), BuildContext::default_http_client().unwrap());
        let channel = Channel::build("hook", &config, &ctx).unwrap();
        Bench {
            channel: ChannelRuntime::new(channel, config.settings()),
            project,
            store,
            opts: RunOptions {
                linger: SignedDuration::from_mins(10),
                ..RunOptions::default()
            },
            shutdown: Shutdown::new(),
        }
    }

    /// Runs the dispatcher to its end, both clocks on paused time from [`T0`].
    async fn run(self) -> (Summary, Arc<dyn Store>, Arc<Project>) {
        let channels = [("hook".to_owned(), Arc::new(self.channel))].into();
        let summary = Dispatcher::new(
            self.store.clone(),
            channels,
            Clock::tokio(t0()),
            self.opts,
            self.shutdown,
        )
        .with_lease_clock(Clock::tokio(t0()))
        .run()
        .await
        .unwrap();
        (summary, self.store, self.project)
    }
}

fn attempts(store: &dyn Store) -> Vec<AttemptRow> {
    let mut rows = Vec::new();
    store
        .report_attempts("c", &mut |r| {
            rows.push(r);
            Ok(())
        })
        .unwrap();
    rows
}

fn messages(store: &dyn Store) -> Vec<MessageRow> {
    store.messages(&MessageFilter::default()).unwrap()
}

/// Offsets from [`T0`] of the attempts' starts.
fn starts(rows: &[AttemptRow]) -> Vec<SignedDuration> {
    rows.iter()
        .map(|r| r.started_at.duration_since(t0()))
        .collect()
}

/// How the peer answers one request.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// This status, with these headers and a `{}` body.
    Status(u16, Vec<(&'static str, String)>),
    /// Never answers; the connection stays open until the client drops it.
    Hang,
}

/// A webhook provider on 127.0.0.1, served by the test's own (paused) runtime. Every request
/// is answered by the next scripted [`Reply`], then by the default one, with
/// `Connection: close`.
#[derive(Clone)]
pub(crate) struct Peer {
    port: u16,
    state: Arc<Mutex<PeerState>>,
}

struct PeerState {
    script: VecDeque<Reply>,
    default: Reply,
    /// When each request had arrived, on the paused clock.
    arrivals: Vec<Instant>,
}

/// While alive, paused time does not auto-advance: a blocking task is work to tokio (under
/// `test-util`, on a current-thread runtime) until it ends, which it does when this is
/// dropped.
fn hold_time() -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || while rx.recv().is_ok() {});
    tx
}

impl Peer {
    pub(crate) async fn start(script: Vec<Reply>, default: Reply) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = Peer {
            port: listener.local_addr().unwrap().port(),
            state: Arc::new(Mutex::new(PeerState {
                script: script.into(),
                default,
                arrivals: Vec::new(),
            })),
        };
        let p = peer.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let held = hold_time();
                tokio::spawn(p.clone().serve(sock, held));
            }
        });
        peer
    }

    pub(crate) fn channel_yaml(&self, extra: &str) -> String {
        format!(
            "{{ type: webhook, url: \"http://127.0.0.1:{}/hook\"{extra} }}",
            self.port
        )
    }

    pub(crate) fn arrivals(&self) -> Vec<Instant> {
        self.state.lock().unwrap().arrivals.clone()
    }

    async fn serve(self, mut sock: TcpStream, held: std::sync::mpsc::Sender<()>) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // The head, then as much body as it announces.
        let body_end = loop {
            let n = sock.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                break end + 4 + length;
            }
        };
        while buf.len() < body_end {
            let n = sock.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let reply = {
            let mut st = self.state.lock().unwrap();
            st.arrivals.push(Instant::now());
            let next = st.script.pop_front();
            next.unwrap_or_else(|| st.default.clone())
        };
        match reply {
            Reply::Hang => drop(held),
            Reply::Status(status, headers) => {
                let mut answer = format!("HTTP/1.1 {status} Scripted\r\nConnection: close\r\n");
                for (k, v) in headers {
                    answer.push_str(&format!("{k}: {v}\r\n"));
                }
                answer.push_str("Content-Length: 2\r\n\r\n{}");
                let _ = sock.write_all(answer.as_bytes()).await;
            }
        }
        // Until the client is done with the connection (it closes it after the answer).
        while sock.read(&mut chunk).await.unwrap_or(0) > 0 {}
    }
}

/// Transient errors are retried after the configured backoff: full jitter under
/// `min(cap, base * 2^(attempt-1))`, drawn from the run's seeded generator, each retry due
/// when its attempt ended plus that delay (to the stored millisecond), the next attempt
/// starting at that instant, and the message failed after `max_attempts`.
#[tokio::test(start_paused = true)]
async fn retries_back_off_as_configured_at_exact_instants() {
    // An outbox in a folder that does not exist: every append fails, transiently.
    let mut b = Bench::new(
        "{ type: outbox, path: missing/out.jsonl, max_attempts: 4 }",
        1,
    );
    let policy = RetryPolicy {
        base: Duration::from_secs(10),
        cap: Duration::from_secs(25),
        max_attempts: 4,
    };
    b.channel.retry = policy.clone();
    let seed = 14;
    b.opts.jitter_seed = Some(seed);
    let (summary, store, _p) = b.run().await;
    assert_eq!((summary.failed, summary.retried), (1, 3), "{summary:?}");

    // The delays the run drew, replayed.
    let mut rng = fastrand::Rng::with_seed(seed);
    let delays: Vec<SignedDuration> = (1..4)
        .map(|attempt| {
            let d = policy.backoff_with(&mut rng, attempt, None).unwrap();
            assert!(d <= policy.ceiling(attempt));
            // The run waits at least 50 ms between two looks at what is due: a seed drawing
            // less would test that floor instead.
            assert!(d >= Duration::from_millis(50), "pick another seed: {d:?}");
            SignedDuration::try_from(d).unwrap()
        })
        .collect();
    // The third ceiling is the cap (10 s, 20 s, then 25 s instead of 40 s).
    assert_eq!(policy.ceiling(3), Duration::from_secs(25));
    let mut expected = vec![SignedDuration::ZERO];
    for d in &delays {
        let due = (t0() + *expected.last().unwrap() + *d).as_millisecond();
        expected.push(
            Timestamp::from_millisecond(due)
                .unwrap()
                .duration_since(t0()),
        );
    }
    let rows = attempts(store.as_ref());
    assert_eq!(starts(&rows), expected);
    for r in &rows {
        assert_eq!(r.finished_at, r.started_at, "an outbox fails at once");
    }
    let outcomes: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "retry", "failed"]);
    let m = &messages(store.as_ref())[0];
    assert_eq!((m.state.as_str(), m.attempts), ("failed", 4));
    assert!(
        m.last_error
            .as_deref()
            .unwrap()
            .contains("gave up after 4 attempts"),
        "{m:?}"
    );
}

/// A provider's `Retry-After` sets the retry exactly (it is longer than the backoff's
/// ceiling), and an absurd one is capped at the longest wait, 7 days.
#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_capped() {
    let busy = |after: &str| Reply::Status(503, vec![("Retry-After", after.to_owned())]);
    let peer = Peer::start(
        vec![busy("7"), busy("99999999999")],
        Reply::Status(200, vec![]),
    )
    .await;
    let b = Bench::new(&peer.channel_yaml(""), 1);
    let (summary, store, _p) = b.run().await;
    // The second retry is due beyond the run's linger: the run ends with it pending.
    assert_eq!((summary.sent, summary.retried), (0, 2), "{summary:?}");
    let arrivals = peer.arrivals();
    assert_eq!(arrivals.len(), 2);
    let rows = attempts(store.as_ref());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].started_at, t0());
    assert_eq!(rows[1].started_at, rows[0].finished_at + secs(7));
    assert_eq!(arrivals[1] - arrivals[0], Duration::from_secs(7));
    let m = &messages(store.as_ref())[0];
    assert_eq!((m.state.as_str(), m.attempts), ("pending", 2));
    let week = SignedDuration::from_hours(7 * 24);
    assert_eq!(m.due_at, rows[1].finished_at + week);
}

/// A provider that never answers, one message, `lease`, one attempt allowed; `watch` (given
/// the database's path) runs beside the dispatcher. The project is returned to keep its
/// folder.
async fn hanging_send<F: std::future::Future<Output = ()>>(
    lease: i64,
    watch: impl FnOnce(std::path::PathBuf) -> F,
) -> (Arc<dyn Store>, Arc<Project>) {
    let peer = Peer::start(vec![], Reply::Hang).await;
    let mut b = Bench::new(&peer.channel_yaml(", max_attempts: 1"), 1);
    b.opts.lease = secs(lease);
    let watch = watch(b.project.path().join("disparo.db"));
    let ((summary, store, project), ()) = tokio::join!(b.run(), watch);
    assert_eq!(summary.failed, 1, "{summary:?}");
    assert_eq!(peer.arrivals().len(), 1);
    (store, project)
}

/// While a send hangs, the run renews its lease every tenth of `--lease 10s`: just after each
/// second, the database holds a lease of 10 s from that second.
#[tokio::test(start_paused = true)]
async fn a_heartbeat_renews_the_leases_every_tenth_of_the_lease() {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    hanging_send(10, |db| async move {
        // Just after the claim, then just after each heartbeat's instant (the send is cut at
        // 9 s: see the next test).
        let other = SqliteStore::open(&db).unwrap();
        for k in 0..9u64 {
            tokio::time::sleep_until(start + Duration::from_millis(k * 1000 + 1)).await;
            s.lock()
                .unwrap()
                .push(other.next_lease_expiry(None, &[]).unwrap().unwrap());
        }
    })
    .await;
    let expected: Vec<Timestamp> = (0..9).map(|k| t0() + secs(k) + secs(10)).collect();
    assert_eq!(*seen.lock().unwrap(), expected);
}

/// The send is cut when the lease it started under would end (less a margin), however often
/// the heartbeat renewed it since, with code `lease`; out of attempts, the message fails.
#[tokio::test(start_paused = true)]
async fn a_send_that_would_outlive_its_lease_is_cut_at_the_lease_end() {
    let (store, _project) = hanging_send(20, |_| async {}).await;
    let rows = attempts(store.as_ref());
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.started_at, t0());
    // The lease it started under ends at 20 s; the margin is a tenth of it, at most 1 s.
    assert_eq!(r.finished_at, t0() + secs(19));
    assert_eq!(
        (r.outcome.as_str(), r.code.as_deref()),
        ("failed", Some("lease"))
    );
    let m = &messages(store.as_ref())[0];
    assert_eq!((m.state.as_str(), m.attempts), ("failed", 1));
}

/// Three errors of the breaker class (401) pause the campaign: exactly three requests reach
/// the provider, the paused campaign says why, and every message stays pending.
#[tokio::test(start_paused = true)]
async fn the_breaker_pauses_the_campaign_after_three_breaker_errors() {
    let peer = Peer::start(vec![], Reply::Status(401, vec![])).await;
    let b = Bench::new(&peer.channel_yaml(", concurrency: 1"), 6);
    let (summary, store, _p) = b.run().await;
    assert_eq!(summary.paused, 1, "{summary:?}");
    assert_eq!((summary.retried, summary.released), (3, 3), "{summary:?}");
    let arrivals = peer.arrivals();
    assert_eq!(arrivals.len(), 3);
    let rows = attempts(store.as_ref());
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!((r.outcome.as_str(), r.attempt), ("retry", 1));
    }
    let c = store.campaign("c").unwrap().unwrap();
    assert_eq!(c.status, CampaignStatus::Paused);
    assert!(
        c.status_reason
            .as_deref()
            .unwrap()
            .starts_with("circuit breaker:"),
        "{c:?}"
    );
    let states: Vec<&str> = messages(store.as_ref())
        .iter()
        .map(|m| m.state.as_str())
        .collect();
    assert_eq!(states, ["pending"; 6]);
}

/// `rate: 4/s` spaces the sends one per 253.75 ms (a quarter second, 1.5 % longer), each on
/// the first millisecond tick at or after its slot (tokio's timers tick in milliseconds), and
/// no five starts fall within a second.
#[tokio::test(start_paused = true)]
async fn pacing_spaces_sends_at_the_channel_rate() {
    let b = Bench::new("{ type: outbox, path: out.jsonl, rate: 4/s }", 10);
    let (summary, store, p) = b.run().await;
    assert_eq!(summary.sent, 10, "{summary:?}");
    let slot_us = 250_000.0 * (1.0 + disparo::channel::limits::HEADROOM);
    let expected: Vec<SignedDuration> = (0..10)
        .map(|k| ms((k as f64 * slot_us / 1000.0).ceil() as i64))
        .collect();
    assert_eq!(
        expected.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        [0, 254, 508, 762, 1015, 1269, 1523, 1777, 2030, 2284]
    );
    let rows = attempts(store.as_ref());
    let mut got = starts(&rows);
    got.sort();
    assert_eq!(got, expected);
    for w in got.windows(5) {
        assert!(w[4] - w[0] >= secs(1), "{got:?}");
    }
    // What the outbox received carries the same instants.
    let mut sent_at: Vec<SignedDuration> = p
        .read("out.jsonl")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let at: Timestamp = v["sent_at"].as_str().unwrap().parse().unwrap();
            at.duration_since(t0())
        })
        .collect();
    sent_at.sort();
    assert_eq!(sent_at, expected);
}

/// A stop signal at 1 s, with one send hanging and two messages waiting for the channel's
/// only slot: the two are released at once (pending, unchanged, no attempt spent), the send
/// is aborted when the 5 s grace period ends (its attempt recorded with code `aborted`, due
/// again at that instant), and the run says it was interrupted.
#[tokio::test(start_paused = true)]
async fn shutdown_releases_unstarted_claims_and_aborts_in_flight_sends_after_the_grace() {
    let peer = Peer::start(vec![], Reply::Hang).await;
    let mut b = Bench::new(&peer.channel_yaml(", concurrency: 1"), 3);
    b.opts.grace = secs(5);
    let shutdown = b.shutdown.clone();
    let stop = async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.trigger();
    };
    let ((summary, store, _p), ()) = tokio::join!(b.run(), stop);
    assert!(summary.interrupted, "{summary:?}");
    assert_eq!(
        (summary.released, summary.retried, summary.sent),
        (2, 1, 0),
        "{summary:?}"
    );
    assert_eq!(peer.arrivals().len(), 1);
    let rows = attempts(store.as_ref());
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!((r.started_at, r.finished_at), (t0(), t0() + secs(6)));
    assert_eq!(
        (r.outcome.as_str(), r.code.as_deref()),
        ("retry", Some("aborted"))
    );
    let mut ms: Vec<(u32, Timestamp, &str)> = Vec::new();
    let rows = messages(store.as_ref());
    for m in &rows {
        assert_eq!(m.state.as_str(), "pending");
        ms.push((m.attempts, m.due_at, m.recipient.as_str()));
    }
    ms.sort();
    assert_eq!(
        ms.iter().map(|(a, d, _)| (*a, *d)).collect::<Vec<_>>(),
        [(0, t0()), (0, t0()), (1, t0() + secs(6))]
    );
}
