//! One dispatch run: the channel adapters of what is pending, the dispatcher on a runtime of
//! its own, and the summary; and what a dry run would send.

use std::sync::Arc;

use jiff::Timestamp;

use super::Error;
use crate::dispatch::{Clock, Dispatcher, RunOptions, Shutdown, Summary};
use crate::model::Project;
use crate::ramp::ChannelRamp;
use crate::store::{MessageFilter, MessageRow, State, Store, StoreError};

/// Dispatches what is due in `store` through the channels `project` defines, until done (or
/// stopped through `shutdown`). `on_start` runs inside the run's runtime before the first
/// claim: the CLI installs its signal handlers there.
pub fn dispatch(
    project: &Project,
    store: Box<dyn Store>,
    clock: Clock,
    opts: RunOptions,
    shutdown: Arc<Shutdown>,
    on_start: impl FnOnce(Arc<Shutdown>),
) -> Result<Summary, Error> {
    if let Some(c) = &opts.campaign
        && store.campaign(c)?.is_none()
    {
        return Err(StoreError::UnknownCampaign(c.clone()).into());
    }
    let channels = super::channels::for_pending(project, store.as_ref())?;
    // One thread for the network side (sends, timers, signals): the store works on its own
    // thread (see dispatch::worker), so nothing here blocks, and a single-threaded runtime
    // saves the cross-thread wake-ups of a multi-threaded one.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    let store: Arc<dyn Store> = Arc::from(store);
    let for_run = store.clone();
    let summary = runtime.block_on(async {
        on_start(shutdown.clone());
        Dispatcher::new(for_run, channels, clock, opts, shutdown)
            .run()
            .await
    });
    // The store is dropped here, outside the runtime: a client that blocks to say goodbye
    // to its server (PostgreSQL's does) may not do so on a thread that drives async tasks.
    drop(runtime);
    drop(store);
    Ok(summary?)
}

/// The pending messages due at `now` (of `campaign`, if given), at most `limit`: what a run
/// would send now, for `run --dry-run`.
pub fn due(
    store: &dyn Store,
    campaign: Option<&str>,
    now: Timestamp,
    limit: Option<u64>,
) -> Result<Vec<MessageRow>, Error> {
    let rows = store.messages(&MessageFilter {
        campaign: campaign.map(str::to_owned),
        state: Some(State::Pending),
        ..Default::default()
    })?;
    let limit = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    Ok(rows
        .into_iter()
        .filter(|r| r.due_at <= now)
        .take(limit)
        .collect())
}

/// What the warm-up ramps of the channels with due messages allow now, one line each, for
/// `run --dry-run` (which lists every due message; a run sends only what the day has left).
pub fn ramp_notes(
    project: &Project,
    store: &dyn Store,
    due: &[MessageRow],
    campaign: Option<&str>,
    now: Timestamp,
) -> Result<Vec<String>, Error> {
    let mut channels: Vec<&str> = due.iter().map(|r| r.channel.as_str()).collect();
    channels.sort_unstable();
    channels.dedup();
    let ramps: Vec<ChannelRamp> = channels
        .into_iter()
        .filter_map(|c| {
            Some(ChannelRamp {
                channel: c.to_owned(),
                ramp: project.config.channel(c)?.settings().ramp?,
            })
        })
        .collect();
    // Leases are judged on the real clock, whatever --now says.
    let usage = store.ramp_usage(&ramps, now, Timestamp::now(), campaign)?;
    Ok(ramps
        .iter()
        .zip(&usage)
        .map(|(r, u)| {
            let day = u.day(&r.ramp, now);
            match r.ramp.budget(day.index) {
                None => format!("channel `{}`: its ramp is over, no daily limit", r.channel),
                Some(budget) => format!(
                    "channel `{}`: ramp day {} of {} allows {} more now ({} sent, {} in flight of {}); the rest of its due messages wait for the next ramp day",
                    r.channel,
                    day.index + 1,
                    r.ramp.per_day().len(),
                    budget.saturating_sub(u.sent + u.held),
                    u.sent,
                    u.held,
                    budget
                ),
            }
        })
        .collect())
}
