//! Finishing a send: its result as an outcome (retry with backoff, failure, refusal), the
//! circuit breaker, and the sends aborted after the grace period.

use jiff::{SignedDuration, Timestamp};

use super::start::CODE_BREAKER_ABORT;
use super::state::{Run, SendDone};
use super::worker::Worker;
use super::{Dispatcher, RunError};
use crate::channel::limits::RetryPolicy;
use crate::channel::{ErrorClass, SendError};
use crate::store::{CampaignStatus, Completion, Outcome};

impl Dispatcher {
    /// The grace period is over: every send still under way is dropped (cancelled). Each may
    /// or may not have reached the provider: pending again, due now, retried later with the
    /// same idempotency key.
    pub(super) fn abort_sends(&self, run: &mut Run) {
        run.sends.clear();
        let at = self.clock.now();
        for (id, f) in std::mem::take(&mut run.in_flight) {
            if let Some(key) = &f.capped {
                run.own_send_done(key, id, false);
            }
            run.push(Completion {
                id,
                attempt: f.attempt,
                started_at: f.started,
                finished_at: at,
                outcome: Outcome::Retry {
                    due_at: at,
                    code: Some("aborted".into()),
                    error: "send aborted at shutdown after the grace period; the provider may or may not have received it".into(),
                },
            });
        }
    }

    /// A send ended: turn its result into an outcome.
    pub(super) async fn finished(
        &self,
        worker: &Worker,
        run: &mut Run,
        done: Result<SendDone, i64>,
    ) -> Result<(), RunError> {
        let done = match done {
            Ok(done) => done,
            Err(id) => {
                return Err(RunError::Internal(format!(
                    "the send of message {id} panicked"
                )));
            }
        };
        let capped = run.in_flight.remove(&done.m.id).and_then(|f| f.capped);
        let SendDone {
            m,
            head,
            ch,
            attempt,
            started,
            finished,
            result,
        } = done;
        let outcome = match result {
            Ok(d) => Outcome::Sent {
                provider_id: d.provider_id,
            },
            Err(e) if e.code.as_deref() == Some(crate::channel::STDOUT_CLOSED) => {
                // Whoever read our output is gone: stop quietly, give the message back.
                self.shutdown.trigger();
                Outcome::Released
            }
            // Cut by the breaker: not the message's fault, keep it for the resume.
            Err(e) if e.code.as_deref() == Some(CODE_BREAKER_ABORT) => Outcome::Retry {
                due_at: finished,
                code: e.code,
                error: e.message,
            },
            Err(e) => match e.class {
                ErrorClass::Transient { .. } => {
                    retry_or_give_up(&ch.retry, &mut run.rng, attempt, finished, e)
                }
                ErrorClass::Permanent => Outcome::Failed {
                    code: e.code,
                    error: e.message,
                },
                ErrorClass::Recipient { suppress } => Outcome::Refused {
                    code: e.code,
                    error: e.message,
                    suppress,
                },
                ErrorClass::Breaker => {
                    self.breaker_hit(worker, run, &m.campaign, &e.message)
                        .await?;
                    // Not the message's fault: keep it for when the campaign resumes.
                    Outcome::Retry {
                        due_at: finished,
                        code: e.code,
                        error: e.message,
                    }
                }
            },
        };
        if let Some(key) = &capped {
            let sent = matches!(outcome, Outcome::Sent { .. });
            run.own_send_done(key, m.id, sent);
        }
        run.push(Completion {
            id: m.id,
            attempt,
            started_at: started,
            finished_at: finished,
            outcome,
        });
        run.spent.push((m, head));
        Ok(())
    }

    /// Counts an error that fails every message of `campaign` alike; at the threshold, pauses
    /// the campaign (committed before anything else of it is judged) and cuts its sends still
    /// in flight.
    pub(super) async fn breaker_hit(
        &self,
        worker: &Worker,
        run: &mut Run,
        campaign: &str,
        message: &str,
    ) -> Result<(), RunError> {
        let hits = run.breaker_hits.entry(campaign.to_owned()).or_default();
        *hits += 1;
        if *hits != self.opts.breaker_threshold {
            return Ok(());
        }
        let reason = format!(
            "circuit breaker: {message} ({hits} errors in a row that fail every message alike); fix the cause, then `disparo resume {campaign}`"
        );
        run.paused_here.insert(campaign.to_owned());
        run.abort_for(campaign).trigger();
        let name = campaign.to_owned();
        worker
            .call(move |s| s.set_campaign_status(&name, CampaignStatus::Paused, Some(&reason)))
            .await?;
        run.paused += 1;
        tracing::error!(campaign = %campaign, "campaign paused by the circuit breaker: {message}");
        Ok(())
    }
}

/// A transient error: the message is retried after its backoff, or fails once its attempts
/// are used up.
fn retry_or_give_up(
    retry: &RetryPolicy,
    rng: &mut fastrand::Rng,
    attempt: u32,
    finished: Timestamp,
    e: SendError,
) -> Outcome {
    match retry.next_delay_with(rng, attempt, &e) {
        // Exponential backoff with full jitter, never sooner than Retry-After
        // (however large: a date past the end of time is the end of time).
        Some(delay) => Outcome::Retry {
            due_at: SignedDuration::try_from(delay)
                .ok()
                .and_then(|d| finished.checked_add(d).ok())
                .unwrap_or(Timestamp::MAX),
            code: e.code,
            error: e.message,
        },
        None => Outcome::Failed {
            code: e.code,
            error: format!("{} (gave up after {attempt} attempts)", e.message),
        },
    }
}
