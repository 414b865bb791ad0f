//! The application layer: what each command does, as library calls. The binary's `cli`
//! module only turns flags into these calls' arguments and prints their results, so that a
//! test, a benchmark or another front end gets the same behaviour without a command line.
//!
//! - [`db`]: which database a command means, and opening it for what it will do.
//! - [`plan`]: the two-thread plan pipeline and its commit rule (all or nothing per campaign).
//! - [`channels`]: building the channel adapters a run needs, from `disparo.yaml`.
//! - [`checks`], [`forecast`]: what `preview` shows of each message and of all of them.
//! - [`preview`], [`validate`]: a campaign prepared for a preview; one checked end to end.
//! - [`report`]: a campaign's funnel, sends per hour, failures and reading times, gathered
//!   from the store and written as one self-contained HTML page.
//! - [`run`]: one dispatch run on its own runtime, and what a dry run would send.
//! - [`bounces`], [`mailbox`]: bounces and complaints imported from mbox files and Maildirs.

pub mod bounces;
pub mod channels;
pub mod checks;
pub mod db;
pub mod follow_up;
pub mod forecast;
pub mod mailbox;
pub mod plan;
pub mod preview;
pub mod report;
pub mod run;
pub mod send_test;
pub mod serve;
pub mod validate;

use crate::diag::Problem;
use crate::store::StoreError;

/// A command's failure: located problems with the input (exit 2), or the environment or
/// disparo itself failing (exit 4).
#[derive(Debug)]
pub enum Error {
    Invalid(Vec<Problem>),
    Internal(String),
}

impl From<Problem> for Error {
    fn from(p: Problem) -> Self {
        Error::Invalid(vec![p])
    }
}

impl From<Vec<Problem>> for Error {
    fn from(p: Vec<Problem>) -> Self {
        Error::Invalid(p)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            // A command run where no plan made a database (a cron job in the wrong folder)
            // is a usage error, as an unknown campaign is.
            StoreError::UnknownCampaign(_) | StoreError::Missing { .. } => {
                Error::Invalid(vec![Problem::new(e.to_string())])
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<crate::store::ReportError> for Error {
    fn from(e: crate::store::ReportError) -> Self {
        match e {
            crate::store::ReportError::Store(s) => s.into(),
            crate::store::ReportError::Write(e) => {
                Error::Internal(format!("cannot write the report: {e}"))
            }
        }
    }
}

impl From<crate::dispatch::RunError> for Error {
    fn from(e: crate::dispatch::RunError) -> Self {
        match e {
            crate::dispatch::RunError::Store(s) => s.into(),
            other => Error::Internal(other.to_string()),
        }
    }
}
