//! The heartbeat: renewing this run's leases and announcing it to the fleet, joining the
//! fleet before claiming, and taking this run's share of the fleet's rates.

use jiff::Timestamp;

use super::fleet;
use super::state::Run;
use super::worker::Worker;
use super::{Dispatcher, RunError};
use crate::store::StoreError;

/// A heartbeat's answer (see [`Beat`]).
pub(super) type RenewReply = tokio::sync::oneshot::Receiver<Result<Beat, StoreError>>;

/// A heartbeat: when the store renewed this run's leases and until when (real clock), whether
/// the run held any, and the fleet as the store sees it (when this run announces channels).
pub(super) struct Beat {
    pub(super) at: Timestamp,
    pub(super) until: Timestamp,
    pub(super) holding: bool,
    pub(super) fleet: Option<crate::store::FleetView>,
}

impl Dispatcher {
    /// The heartbeat: extends every lease this run holds by a whole lease from now, and
    /// announces this run on its channels to the fleet.
    pub(super) fn request_renew(
        &self,
        worker: &Worker,
        holding: bool,
    ) -> Result<RenewReply, StoreError> {
        let (clock, owner, lease) = (
            self.lease_clock.clone(),
            self.opts.owner.clone(),
            self.opts.lease,
        );
        let channels: Vec<String> = self.channels.keys().cloned().collect();
        worker.request(move |s| {
            let at = clock.now();
            let until = at + lease;
            if holding {
                s.renew_leases(&owner, until)?;
            }
            let fleet = if channels.is_empty() {
                None
            } else {
                let names: Vec<&str> = channels.iter().map(String::as_str).collect();
                Some(s.worker_heartbeat(&owner, &names, lease)?)
            };
            Ok(Beat {
                at,
                until,
                holding,
                fleet,
            })
        })
    }

    /// Announces this run to the fleet and takes its shares, now.
    pub(super) async fn beat_now(
        &self,
        worker: &Worker,
        run: &mut Run,
    ) -> Result<Option<crate::store::FleetView>, RunError> {
        if self.channels.is_empty() {
            return Ok(None);
        }
        let (owner, lease) = (self.opts.owner.clone(), self.opts.lease);
        let channels: Vec<String> = self.channels.keys().cloned().collect();
        let view = worker
            .call(move |s| {
                let names: Vec<&str> = channels.iter().map(String::as_str).collect();
                s.worker_heartbeat(&owner, &names, lease)
            })
            .await?;
        self.take_shares(run, &view);
        Ok(Some(view))
    }

    /// Before the first claim: announces this run and waits until every other live worker
    /// on its channels counts it (they shrink their shares when they do), then one settling
    /// window ([`fleet`]). Alone, it starts at once.
    pub(super) async fn join_fleet(&self, worker: &Worker, run: &mut Run) -> Result<(), RunError> {
        let poll = self
            .opts
            .heartbeat()
            .min(std::time::Duration::from_millis(250));
        let mut waited = false;
        while let Some(view) = self.beat_now(worker, run).await? {
            if fleet::Fleet::settled(&view) || self.shutdown.is_set() {
                if waited {
                    tracing::info!(
                        "every other worker counts this one now; sending at this worker's share"
                    );
                }
                break;
            }
            waited = true;
            self.shutdown.sleep(poll).await;
        }
        Ok(())
    }

    /// Applies the fleet's view to the channel limiters and campaign throttles of this run.
    pub(super) fn take_shares(&self, run: &mut Run, view: &crate::store::FleetView) {
        let hold_for = self.opts.heartbeat() * 2;
        run.fleet.apply(
            view,
            &self.channels,
            &run.throttles,
            &run.campaigns,
            tokio::time::Instant::now(),
            hold_for,
        );
    }
}
