//! The warm-up ramp in-process, on paused tokio time (as `faults::paused` does): a real
//! `SqliteStore` planned by the binary (`hook_project`: messages due at [`T0`] on the channel
//! `hook`), a real outbox file or a webhook to a loopback peer, and `Clock::tokio` for both
//! clocks, each run starting at an instant of its own. Every assertion is an exact count or
//! instant of the paused clock.

use std::sync::Arc;

use disparo::channel::{BuildContext, Channel, ChannelConfig};
use disparo::dispatch::{ChannelRuntime, Clock, Dispatcher, RunOptions, Shutdown, Summary};
use disparo::ramp::{ChannelRamp, DAY};
use disparo::store::{MessageFilter, SqliteStore, State, Store};
use jiff::{SignedDuration, Timestamp};

use crate::faults::paused::{Peer, Reply};
use crate::harness::{Project, hook_project};

/// When the planned messages are due (09:00 in São Paulo).
const T0: &str = "2026-11-30T12:00:00Z";

fn t0() -> Timestamp {
    T0.parse().unwrap()
}

fn store_of(project: &Project) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&project.path().join("disparo.db")).unwrap())
}

/// One run of the dispatcher on `channel_yaml` (the channel `hook`), both clocks starting at
/// `start`, on a store of its own (another process's connection); returns its summary and
/// how long it took on the paused clock.
async fn run_at(
    project: &Project,
    channel_yaml: &str,
    start: Timestamp,
) -> (Summary, std::time::Duration) {
    run_with(
        project,
        channel_yaml,
        start,
        RunOptions::default(),
        Shutdown::new(),
    )
    .await
}

/// [`run_at`] with these options (`linger` 10 minutes, jitter seeded) and this shutdown.
async fn run_with(
    project: &Project,
    channel_yaml: &str,
    start: Timestamp,
    opts: RunOptions,
    shutdown: Arc<Shutdown>,
) -> (Summary, std::time::Duration) {
    let config: ChannelConfig = serde_saphyr::from_str(channel_yaml).unwrap();
    let ctx = BuildContext::new(project.path(), BuildContext::default_http_client().unwrap());
    let channel = Channel::build("hook", &config, &ctx).unwrap();
    let channels = [(
        "hook".to_owned(),
        Arc::new(ChannelRuntime::new(channel, config.settings())),
    )]
    .into();
    let opts = RunOptions {
        linger: SignedDuration::from_mins(10),
        jitter_seed: Some(7),
        ..opts
    };
    let watch = opts.watch;
    let began = tokio::time::Instant::now();
    let run = Dispatcher::new(
        store_of(project),
        channels,
        Clock::tokio(start),
        opts,
        shutdown,
    )
    .with_lease_clock(Clock::tokio(start));
    // A `--once` run that waited for the held-back messages as if they were due would never
    // end (paused time runs out fast: 50 ms a look).
    let bound = if watch { 3 * 24 * 3600 } else { 11 * 60 };
    let summary = tokio::time::timeout(std::time::Duration::from_secs(bound), run.run())
        .await
        .expect("the run did not stop: it waits for messages the ramp holds back")
        .unwrap();
    (summary, began.elapsed())
}

fn count(store: &dyn Store, state: State) -> usize {
    store
        .messages(&MessageFilter::default())
        .unwrap()
        .iter()
        .filter(|m| m.state == state)
        .count()
}

fn outbox_lines(project: &Project) -> usize {
    std::fs::read_to_string(project.path().join("out.jsonl")).map_or(0, |s| s.lines().count())
}

/// The channel's first send, as the store records it.
fn first_send(store: &dyn Store, channel_yaml: &str) -> Timestamp {
    let config: ChannelConfig = serde_saphyr::from_str(channel_yaml).unwrap();
    let ramps = [ChannelRamp {
        channel: "hook".into(),
        ramp: config.settings().ramp.unwrap(),
    }];
    store.ramp_usage(&ramps, t0(), t0(), None).unwrap()[0]
        .first_send
        .unwrap()
}

const OUTBOX: &str = "{ type: outbox, path: out.jsonl, ramp: [3/day, 5/day] }";

/// 20 due messages, `ramp: [3/day, 5/day]`: the first run sends 3 and stops at once
/// (`--once` does not wait for the next ramp day), saying 17 wait until day 2 opens; a run
/// later that day sends none; day 2 sends 5; on day 3 the ramp is over and the rest go.
#[tokio::test(start_paused = true)]
async fn the_ramp_sends_each_days_budget_then_the_rest() {
    let p = hook_project(OUTBOX, 20);
    let (s, took) = run_at(&p, OUTBOX, t0()).await;
    assert_eq!((s.sent, s.failed, s.ramp_held), (3, 0, 17), "{s:?}");
    let store = store_of(&p);
    let first = first_send(store.as_ref(), OUTBOX);
    assert_eq!(first, t0(), "day 1 starts with the first send");
    assert_eq!(s.ramp_opens, Some(first + DAY));
    assert!(
        took < std::time::Duration::from_secs(5),
        "--once lingered for the next ramp day: {took:?}"
    );
    assert_eq!(
        count(store.as_ref(), State::Pending),
        17,
        "held back, not failed or moved"
    );

    let (s, took) = run_at(&p, OUTBOX, first + SignedDuration::from_hours(1)).await;
    assert_eq!(
        (s.sent, s.ramp_held, s.ramp_opens),
        (0, 17, Some(first + DAY)),
        "{s:?}"
    );
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");

    let (s, _) = run_at(&p, OUTBOX, first + DAY).await;
    assert_eq!(
        (s.sent, s.ramp_held, s.ramp_opens),
        (5, 12, Some(first + DAY * 2)),
        "{s:?}"
    );

    let (s, _) = run_at(&p, OUTBOX, first + DAY * 2).await;
    assert_eq!((s.sent, s.ramp_held, s.ramp_opens), (12, 0, None), "{s:?}");
    assert_eq!(count(store.as_ref(), State::Sent), 20);
    assert_eq!(outbox_lines(&p), 20);
}

/// Two runs at once on one SQLite file share the day's budget: together they send 3.
#[tokio::test(start_paused = true)]
async fn two_runs_at_once_never_exceed_the_days_budget_together() {
    let yaml = "{ type: outbox, path: out.jsonl, ramp: [3/day] }";
    let p = hook_project(yaml, 20);
    let ((a, _), (b, _)) = tokio::join!(run_at(&p, yaml, t0()), run_at(&p, yaml, t0()));
    assert_eq!(a.sent + b.sent, 3, "{a:?} {b:?}");
    assert_eq!(outbox_lines(&p), 3);
    let store = store_of(&p);
    assert_eq!(count(store.as_ref(), State::Sent), 3);
    assert_eq!(count(store.as_ref(), State::Pending), 17);
    // A third run the same day sends nothing more.
    let (c, _) = run_at(&p, yaml, t0() + SignedDuration::from_mins(30)).await;
    assert_eq!((c.sent, c.ramp_held), (0, 17), "{c:?}");
}

/// A failed send and a retried one do not use the budget: of `ramp: [3/day]`, two answered
/// 400 (failed) and one 503 (retry) leave the 3 for the next three messages; the retry then
/// waits for the next day.
#[tokio::test(start_paused = true)]
async fn failures_and_retries_do_not_use_the_budget() {
    let peer = Peer::start(
        vec![
            Reply::Status(400, vec![]),
            Reply::Status(400, vec![]),
            Reply::Status(503, vec![]),
        ],
        Reply::Status(200, vec![]),
    )
    .await;
    let yaml = peer.channel_yaml(", ramp: [3/day]");
    let p = hook_project(&yaml, 6);
    let (s, _) = run_at(&p, &yaml, t0()).await;
    assert_eq!((s.sent, s.failed, s.retried), (3, 2, 1), "{s:?}");
    assert_eq!(peer.arrivals().len(), 6);
    let store = store_of(&p);
    assert_eq!(count(store.as_ref(), State::Sent), 3);
    assert_eq!(count(store.as_ref(), State::Failed), 2);
    assert_eq!(
        count(store.as_ref(), State::Pending),
        1,
        "the retry waits for day 2"
    );
    // The failures did not start the ramp: its first day starts with the first send.
    let first = first_send(store.as_ref(), &yaml);
    assert!(first > t0(), "{first}");
    assert_eq!((s.ramp_held, s.ramp_opens), (1, Some(first + DAY)), "{s:?}");
}

/// `--watch` sleeps while the day's budget is spent and sends the next day's at the instant
/// it opens (looking at most every `watch_poll`, here an hour: a second would be 86,400
/// looks of paused time); stopped a minute into day 2, it has sent 3 + 5 and says 12 wait.
#[tokio::test(start_paused = true)]
async fn watch_sleeps_until_the_next_ramp_day_opens_and_sends_it_then() {
    let p = hook_project(OUTBOX, 20);
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(24 * 3600 + 60)).await;
        stop.trigger();
    });
    let opts = RunOptions {
        watch: true,
        watch_poll: SignedDuration::from_hours(1),
        ..RunOptions::default()
    };
    let (s, _) = run_with(&p, OUTBOX, t0(), opts, shutdown).await;
    stopper.await.unwrap();
    assert_eq!((s.sent, s.ramp_held, s.interrupted), (8, 12, true), "{s:?}");
    let store = store_of(&p);
    let first = first_send(store.as_ref(), OUTBOX);
    assert_eq!(s.ramp_opens, Some(first + DAY * 2));
    let mut starts: Vec<Timestamp> = Vec::new();
    store
        .report_attempts("c", &mut |r| {
            starts.push(r.started_at);
            Ok(())
        })
        .unwrap();
    starts.sort();
    assert_eq!(starts.len(), 8);
    assert!(
        starts[2] < first + SignedDuration::from_secs(1),
        "{starts:?}"
    );
    let late = starts[3].duration_since(first + DAY);
    assert!(
        late >= SignedDuration::ZERO && late < SignedDuration::from_secs(1),
        "day 2 began at {}, its first send at {}",
        first + DAY,
        starts[3]
    );
}
