//! The store thread of a run. Every store call of the dispatcher runs on this one thread, in
//! the order it was made, so the async side never blocks on the database and never hands a
//! call to a new blocking task.
//!
//! Outcomes are committed in groups: the dispatcher hands them over in chunks
//! ([`Worker::complete`]), and they are written in one transaction when the oldest has waited
//! `flush_every`, when `max_pending` have gathered, when the next claim is made (in the claim's
//! own transaction: [`Store::complete_and_claim`]) or when the dispatcher asks
//! ([`Worker::flush`]). An outcome is counted in the run's [`Summary`] only once its
//! transaction committed; a crash before that leaves the message `sending` under a lease that
//! expires, and it is sent again with the same idempotency key (at-least-once).
//!
//! On paused tokio time (tests), tokio moves its clock to the next timer whenever the runtime
//! has nothing to run, and a store call working on this thread is nothing to the runtime: the
//! clock would jump (and leases lapse) in the middle of every claim. So a worker started with
//! `hold_time` makes every call the runtime waits for count as work, with a blocking task that
//! lasts until the call is answered (under tokio's `test-util`, a blocking task inhibits
//! auto-advance on a current-thread runtime from `spawn_blocking` until it ends), and enters
//! the runtime on this thread so that clocks read here see the paused time too. Production
//! runs do neither.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::Summary;
use crate::store::{Claimed, Completion, Store, StoreError};

type Call = Box<dyn FnOnce(&dyn Store) + Send>;

/// A finished message and what was prepared for its channel, to be freed here.
pub(super) type Spent = (Claimed, Option<Vec<u8>>);
/// Runs with the outcomes not committed yet, which it must record (in the same transaction
/// as whatever else it does); returns how many of them were recorded, `None` if it failed
/// (and reported the failure itself).
type WithPending = Box<dyn FnOnce(&dyn Store, &[Completion]) -> Option<usize> + Send>;

enum Msg {
    /// Outcomes, and the messages they are about, dropped here: they were allocated on this
    /// thread, and freeing them is work the network thread need not do.
    Complete(Vec<Completion>, Vec<Spent>),
    Call(Call),
    WithPending(WithPending),
    Flush(oneshot::Sender<Result<Summary, StoreError>>, Busy),
}

/// While alive, paused tokio time does not auto-advance (see the module doc); `None` when the
/// worker does not hold time. Dropped on the store thread once the call it goes with has
/// been answered.
type Busy = Option<mpsc::Sender<()>>;

/// The handle the dispatcher holds.
pub(super) struct Worker {
    tx: Option<mpsc::Sender<Msg>>,
    /// The first error of a commit nobody waited for (a group commit), to end the run with.
    failure: Arc<Failure>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Make the calls the runtime waits for count as work for paused time.
    hold_time: bool,
}

#[derive(Default)]
struct Failure {
    error: Mutex<Option<StoreError>>,
    notify: tokio::sync::Notify,
}

/// When pending outcomes are committed.
#[derive(Debug, Clone, Copy)]
pub(super) struct CommitPolicy {
    /// The longest an outcome waits for its commit.
    pub flush_every: Duration,
    /// Commit as soon as this many outcomes wait.
    pub max_pending: usize,
}

impl Worker {
    /// Starts the store thread. `hold_time`: the run's clocks follow tokio's (paused in
    /// tests), see the module doc.
    pub(super) fn start(
        store: Arc<dyn Store>,
        owner: String,
        policy: CommitPolicy,
        hold_time: bool,
    ) -> Result<Worker, StoreError> {
        let (tx, rx) = mpsc::channel();
        let failure = Arc::new(Failure::default());
        let runtime = hold_time
            .then(tokio::runtime::Handle::try_current)
            .and_then(Result::ok);
        let thread = {
            let failure = failure.clone();
            std::thread::Builder::new()
                .name("disparo-store".into())
                .spawn(move || {
                    let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
                    Thread {
                        store,
                        owner,
                        policy,
                        pending: Vec::new(),
                        oldest: None,
                        summary: Summary::default(),
                        failure,
                        commits: 0,
                        claims: 0,
                        busy: Duration::ZERO,
                    }
                    .run(rx)
                })
                .map_err(|e| StoreError::Other(format!("cannot start the store thread: {e}")))?
        };
        Ok(Worker {
            tx: Some(tx),
            failure,
            thread: Some(thread),
            hold_time,
        })
    }

    /// A [`Busy`] for a call about to be made.
    fn busy(&self) -> Busy {
        if !self.hold_time {
            return None;
        }
        let (tx, rx) = mpsc::channel::<()>();
        // Ends when `tx` is dropped (recv fails).
        tokio::task::spawn_blocking(move || while rx.recv().is_ok() {});
        Some(tx)
    }

    fn send(&self, msg: Msg) -> Result<(), StoreError> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(msg).ok())
            .ok_or_else(|| StoreError::Other("the store thread has stopped".into()))
    }

    /// Hands outcomes over for the next group commit, with the finished messages to drop.
    pub(super) fn complete(
        &self,
        completions: Vec<Completion>,
        spent: Vec<Spent>,
    ) -> Result<(), StoreError> {
        if completions.is_empty() && spent.is_empty() {
            return Ok(());
        }
        self.send(Msg::Complete(completions, spent))
    }

    /// Runs `f` on the store thread, after every call made before it.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        let busy = self.busy();
        self.send(Msg::Call(Box::new(move |s| {
            let _ = reply.send(f(s));
            drop(busy);
        })))?;
        rx.await
            .map_err(|_| StoreError::Other("the store thread has stopped".into()))?
    }

    /// [`call`](Self::call) without waiting: the result arrives on the returned receiver,
    /// so the dispatch loop can go on sending meanwhile.
    pub(super) fn request<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        let busy = self.busy();
        self.send(Msg::Call(Box::new(move |s| {
            let _ = reply.send(f(s));
            drop(busy);
        })))?;
        Ok(rx)
    }

    /// Runs `f` with the outcomes not committed yet (see [`WithPending`]); the result arrives
    /// on the returned receiver.
    pub(super) fn with_pending<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store, &[Completion]) -> Result<(usize, T), StoreError> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        let busy = self.busy();
        self.send(Msg::WithPending(Box::new(move |s, pending| {
            let (recorded, result) = match f(s, pending) {
                Ok((recorded, value)) => (Some(recorded), Ok(value)),
                Err(e) => (None, Err(e)),
            };
            let _ = reply.send(result);
            drop(busy);
            recorded
        })))?;
        Ok(rx)
    }

    /// Commits every outcome handed over so far; returns what the run recorded until now.
    pub(super) async fn flush(&self) -> Result<Summary, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Flush(reply, self.busy()))?;
        rx.await
            .map_err(|_| StoreError::Other("the store thread has stopped".into()))?
    }

    /// Resolves with the error of a group commit that failed.
    pub(super) async fn failed(&self) -> StoreError {
        loop {
            let notified = self.failure.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self.failure.error.lock().ok().and_then(|mut e| e.take()) {
                return e;
            }
            notified.await;
        }
    }

    /// Commits what is pending and stops the thread.
    pub(super) async fn finish(mut self) -> Result<Summary, StoreError> {
        let summary = self.flush().await;
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        summary
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The thread ends once the channel is closed, after committing what is pending.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Thread {
    store: Arc<dyn Store>,
    owner: String,
    policy: CommitPolicy,
    pending: Vec<Completion>,
    /// When the oldest pending outcome arrived.
    oldest: Option<Instant>,
    summary: Summary,
    failure: Arc<Failure>,
    /// For the debug log: group commits, claims, time spent in store calls.
    commits: u64,
    claims: u64,
    busy: Duration,
}

impl Thread {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let msg = match self.oldest {
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
                Some(t) => {
                    let wait =
                        (t + self.policy.flush_every).saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(m) => m,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.commit_or_report();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match msg {
                Msg::Complete(c, spent) => {
                    drop(spent);
                    if self.pending.is_empty() && !c.is_empty() {
                        self.oldest = Some(Instant::now());
                    }
                    self.pending.extend(c);
                    if self.pending.len() >= self.policy.max_pending {
                        self.commit_or_report();
                    }
                }
                Msg::Call(f) => f(self.store.as_ref()),
                Msg::WithPending(f) => {
                    let done = std::mem::take(&mut self.pending);
                    self.oldest = None;
                    // On failure the transaction rolled back: those outcomes are lost like
                    // after a crash, and the caller has the error.
                    self.claims += 1;
                    let t0 = Instant::now();
                    let r = f(self.store.as_ref(), &done);
                    self.busy += t0.elapsed();
                    if let Some(recorded) = r {
                        self.count(&done, recorded);
                    }
                }
                Msg::Flush(reply, busy) => {
                    let r = self.commit().map(|()| self.summary);
                    let _ = reply.send(r);
                    drop(busy);
                }
            }
        }
        self.commit_or_report();
        tracing::debug!(
            group_commits = self.commits,
            claims = self.claims,
            busy_ms = self.busy.as_millis() as u64,
            "store thread done"
        );
    }

    fn count(&mut self, done: &[Completion], recorded: usize) {
        let mut finals = 0;
        for c in done.iter().filter(|c| c.outcome.is_final()) {
            self.summary.add(&c.outcome);
            finals += 1;
        }
        if recorded < finals {
            let lost = (finals - recorded) as u64;
            self.summary.lost += lost;
            tracing::warn!(
                lost,
                "outcomes not recorded: another run took these messages over after our lease expired; use a longer --lease than a send can take"
            );
        }
    }

    /// Commits the pending outcomes in one transaction. On failure they are dropped: their
    /// messages stay `sending` until the lease expires, as after a crash.
    fn commit(&mut self) -> Result<(), StoreError> {
        self.oldest = None;
        if self.pending.is_empty() {
            return Ok(());
        }
        let done = std::mem::take(&mut self.pending);
        self.commits += 1;
        let t0 = Instant::now();
        let recorded = self.store.complete(&self.owner, &done);
        self.busy += t0.elapsed();
        let recorded = recorded?;
        self.count(&done, recorded);
        Ok(())
    }

    fn commit_or_report(&mut self) {
        if let Err(e) = self.commit() {
            self.report(e);
        }
    }

    fn report(&self, e: StoreError) {
        if let Ok(mut slot) = self.failure.error.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
        self.failure.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap())
    }

    /// On paused time, tokio advances its clock to the next timer as soon as the runtime has
    /// nothing to run. A store call takes real time on the store thread while the runtime
    /// only waits for its answer: unless the call counts as work, a run's clock jumps to its
    /// next timer (a heartbeat, a lease cut) in the middle of every store call.
    #[tokio::test(start_paused = true)]
    async fn a_store_call_holds_paused_time_still() {
        let dir = tempfile::tempdir().unwrap();
        let policy = CommitPolicy {
            flush_every: Duration::from_millis(250),
            max_pending: 8192,
        };
        let worker = Worker::start(store(&dir), "me".into(), policy, true).unwrap();
        let t0 = tokio::time::Instant::now();
        let timer = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(timer);
        for _ in 0..3 {
            tokio::select! {
                r = worker.call(|s| {
                    std::thread::sleep(Duration::from_millis(20));
                    s.gate()
                }) => { r.unwrap(); }
                _ = &mut timer => panic!("the timer fired while the store thread worked"),
            }
            let rx = worker
                .request(|s| {
                    std::thread::sleep(Duration::from_millis(20));
                    s.gate()
                })
                .unwrap();
            tokio::select! {
                r = rx => { r.unwrap().unwrap(); }
                _ = &mut timer => panic!("the timer fired while the store thread worked"),
            }
        }
        assert_eq!(tokio::time::Instant::now(), t0);
        // With nothing to wait for but the timer, time moves to it at once.
        timer.await;
        assert_eq!(tokio::time::Instant::now() - t0, Duration::from_secs(5));
        worker.finish().await.unwrap();
    }
}
