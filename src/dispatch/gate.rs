//! Reading the store's gate before sends (see [`super::start::GATE_EVERY`]). An embedded store
//! answers on the network thread in microseconds; a store across a network would block the
//! whole dispatch loop for a round trip every few milliseconds, so its gate is read by a
//! thread of its own that publishes each value with the instant its read began, and a send
//! starts only on a value read within [`FRESH`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::start::GATE_EVERY;
use crate::store::{Store, StoreError};

/// How old a watched gate value may be (from the start of its read) for a send to start on
/// it: a few reads' worth, so that one slow round trip does not stall sending, while a send
/// still never starts on facts older than this.
pub(super) const FRESH: Duration = Duration::from_millis(25);

/// Where a run gets the gate from.
pub(super) enum Gate {
    /// Read on the spot (the store says its gate is cheap to read).
    Direct,
    Watched(Watch),
}

impl Gate {
    pub(super) fn for_store(store: &Arc<dyn Store>) -> Gate {
        if store.gate_is_cheap() {
            Gate::Direct
        } else {
            Gate::Watched(Watch::start(store.clone()))
        }
    }

    /// The gate now: `Ok(None)` when no read is fresh enough yet (try again shortly).
    pub(super) fn read(&self, store: &dyn Store) -> Result<Option<u64>, StoreError> {
        match self {
            Gate::Direct => store.gate().map(Some),
            Gate::Watched(w) => w.latest(FRESH),
        }
    }
}

/// A thread reading the gate every [`GATE_EVERY`] until dropped.
pub(super) struct Watch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    /// The latest value read and when its read began.
    latest: Mutex<Option<(u64, Instant)>>,
    failed: Mutex<Option<StoreError>>,
    stop: AtomicBool,
}

impl Watch {
    fn start(store: Arc<dyn Store>) -> Watch {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("disparo-gate".into())
            .spawn(move || {
                while !s.stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    match store.gate() {
                        Ok(v) => *lock(&s.latest) = Some((v, began)),
                        Err(e) => {
                            *lock(&s.failed) = Some(e);
                            return;
                        }
                    }
                    std::thread::sleep(GATE_EVERY.saturating_sub(began.elapsed()));
                }
            })
            .ok();
        Watch { shared, thread }
    }

    fn latest(&self, fresh: Duration) -> Result<Option<u64>, StoreError> {
        if let Some(e) = lock(&self.shared.failed).take() {
            return Err(e);
        }
        if self.thread.is_none() {
            return Err(StoreError::Other(
                "cannot start the thread that reads the store's gate".into(),
            ));
        }
        Ok((*lock(&self.shared.latest))
            .filter(|(_, began)| began.elapsed() <= fresh)
            .map(|(v, _)| v))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    /// A watched gate follows the store: a change committed is seen within a few reads, and
    /// a value is only given while fresh.
    #[test]
    fn a_watched_gate_follows_the_store_and_goes_stale_when_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("g.db")).unwrap());
        let watch = Watch::start(store.clone());
        let first = wait_for(|| watch.latest(FRESH).unwrap());
        store
            .suppress("+5511999990000", None, "test", jiff::Timestamp::now())
            .unwrap();
        let moved = wait_for(|| watch.latest(FRESH).unwrap().filter(|&g| g != first));
        assert!(moved > first);
        watch.shared.stop.store(true, Ordering::Relaxed);
        std::thread::sleep(FRESH * 3);
        assert_eq!(
            watch.latest(FRESH).unwrap(),
            None,
            "a stale value was given"
        );
    }

    fn wait_for(mut f: impl FnMut() -> Option<u64>) -> u64 {
        let t0 = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "no gate value");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
