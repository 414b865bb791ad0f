//! The one writer of `serve`: receipts from every request go through a thread of its own
//! that commits them in groups, so a burst of a thousand callbacks costs a few durable
//! commits, not a thousand, and a request is answered only once its receipts are on disk
//! (a provider that got a 200 will not send them again).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, oneshot};

use crate::receipt::{Applied, Receipt};
use crate::store::Store;

/// At most this many receipts per commit.
const MAX_BATCH: usize = 4096;
/// How often receipts that found no message are tried again, and how far back.
const MATCH_EVERY: Duration = Duration::from_secs(5);
const MATCH_WINDOW: SignedDuration = SignedDuration::from_hours(1);

type Reply = oneshot::Sender<Result<Vec<Applied>, String>>;

struct Job {
    receipts: Vec<Receipt>,
    reply: Reply,
}

/// Counters a health check and the final log line read.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub receipts: AtomicU64,
    pub commits: AtomicU64,
    pub duplicates: AtomicU64,
    pub unmatched: AtomicU64,
    pub late_matches: AtomicU64,
    pub failures: AtomicU64,
}

/// The handle requests hand their receipts to.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Job>,
    pub stats: Arc<IngestStats>,
}

/// The writer thread.
pub struct Writer {
    thread: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Writer {
    /// Refuses receipts from now on (requests still holding a handle get an error, so
    /// answer 503), commits those already handed in, and waits for the thread.
    pub fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Starts the writer on `store`. `clock` gives the instant receipts are received at (the
/// real clock, or `--now` for tests and what-ifs).
pub fn start(
    store: Arc<dyn Store>,
    clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
) -> (Ingest, Writer) {
    // Bounded: when the disk cannot keep up, requests wait here instead of piling up memory.
    let (tx, rx) = mpsc::channel::<Job>(8192);
    let (stop, stop_rx) = oneshot::channel();
    let stats = Arc::new(IngestStats::default());
    let thread_stats = stats.clone();
    let thread = std::thread::Builder::new()
        .name("disparo-ingest".into())
        .spawn(move || run(store, clock, rx, stop_rx, &thread_stats))
        .expect("the ingest thread starts");
    (Ingest { tx, stats }, Writer { thread, stop })
}

impl Ingest {
    /// Stores `receipts` and waits for their commit. An error means nothing of them was
    /// stored (the caller answers 503, and the provider sends them again).
    pub async fn submit(&self, receipts: Vec<Receipt>) -> Result<Vec<Applied>, String> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { receipts, reply })
            .await
            .map_err(|_| "the server is shutting down".to_string())?;
        answer
            .await
            .map_err(|_| "the receipt writer stopped".to_string())?
    }
}

fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    mut rx: mpsc::Receiver<Job>,
    mut stop: oneshot::Receiver<()>,
    stats: &IngestStats,
) {
    let mut last_match = Instant::now();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "the receipt writer cannot start");
            return;
        }
    };
    let mut stopped = false;
    loop {
        // Wait for work, but wake up to match stragglers now and then.
        let first = match rx.try_recv() {
            Ok(job) => job,
            Err(_) if stopped => break,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                match_late(&*store, &*clock, &mut last_match, stats);
                match wait(&rt, &mut rx, &mut stop, MATCH_EVERY) {
                    Wake::Job(job) => job,
                    Wake::Idle => continue,
                    Wake::Stop => {
                        // No more receipts; what was handed in before is still committed.
                        rx.close();
                        stopped = true;
                        continue;
                    }
                    Wake::Closed => break,
                }
            }
        };
        let mut jobs = vec![first];
        let mut n = jobs[0].receipts.len();
        while n < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    n += job.receipts.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        commit(&*store, clock(), jobs, stats);
        if last_match.elapsed() >= MATCH_EVERY {
            match_late(&*store, &*clock, &mut last_match, stats);
        }
    }
    // Shutting down: a last look for receipts that raced their sends.
    last_match = Instant::now() - MATCH_EVERY;
    match_late(&*store, &*clock, &mut last_match, stats);
}

enum Wake {
    Job(Job),
    /// Nothing came within the wait.
    Idle,
    /// [`Writer::finish`] was called.
    Stop,
    /// Every handle is gone.
    Closed,
}

/// Waits for a job, the stop signal or the end of `wait`. The wait runs on a small runtime
/// of the thread's own; store calls stay outside it (a synchronous database client must not
/// run inside one).
fn wait(
    rt: &tokio::runtime::Runtime,
    rx: &mut mpsc::Receiver<Job>,
    stop: &mut oneshot::Receiver<()>,
    wait: Duration,
) -> Wake {
    rt.block_on(async {
        tokio::select! {
            biased;
            job = rx.recv() => job.map_or(Wake::Closed, Wake::Job),
            _ = &mut *stop => Wake::Stop,
            () = tokio::time::sleep(wait) => Wake::Idle,
        }
    })
}

fn commit(store: &dyn Store, now: Timestamp, jobs: Vec<Job>, stats: &IngestStats) {
    let all: Vec<Receipt> = jobs
        .iter()
        .flat_map(|j| j.receipts.iter().cloned())
        .collect();
    match store.record_receipts(&all, now) {
        Ok(applied) => {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats
                .receipts
                .fetch_add(applied.len() as u64, Ordering::Relaxed);
            let count = |a: Applied| applied.iter().filter(|x| **x == a).count() as u64;
            stats
                .duplicates
                .fetch_add(count(Applied::Duplicate), Ordering::Relaxed);
            stats
                .unmatched
                .fetch_add(count(Applied::Unmatched), Ordering::Relaxed);
            let mut rest = applied.into_iter();
            for job in jobs {
                let mine: Vec<Applied> = rest.by_ref().take(job.receipts.len()).collect();
                let _ = job.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, receipts = all.len(), "receipts not stored");
            let message = e.to_string();
            for job in jobs {
                let _ = job.reply.send(Err(message.clone()));
            }
        }
    }
}

fn match_late(
    store: &dyn Store,
    clock: &(dyn Fn() -> Timestamp + Send + Sync),
    last: &mut Instant,
    stats: &IngestStats,
) {
    if last.elapsed() < MATCH_EVERY {
        return;
    }
    *last = Instant::now();
    let now = clock();
    match store.match_receipts(now - MATCH_WINDOW, now) {
        Ok(0) => {}
        Ok(n) => {
            stats.late_matches.fetch_add(n, Ordering::Relaxed);
            tracing::info!(
                matched = n,
                "receipts matched to their messages after the send was recorded"
            );
        }
        Err(e) => tracing::warn!(error = %e, "matching earlier receipts failed; tried again later"),
    }
}
