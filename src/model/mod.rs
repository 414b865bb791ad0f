//! The user's files as checked values: `disparo.yaml`, campaigns, audiences.
//!
//! Loading turns YAML/CSV/JSON into validated types or located [`Problem`]s; nothing past this
//! module sees a raw string that could still be wrong.

pub mod audience;
pub mod campaign;
pub mod config;
pub mod filter;
pub mod follows;
pub mod project;
pub mod vars;

pub use audience::{AudienceFormat, Fields, Recipient};
pub use campaign::{Campaign, ScheduleKind};
pub use config::Config;
pub use project::Project;
pub use vars::Vars;

use crate::diag::Problem;

pub use crate::schedule::zone;

/// A problem for a zone name that is not in the IANA database.
pub fn unknown_zone(name: &str) -> Problem {
    Problem::new(format!("unknown time zone {name:?}"))
        .hint("use an IANA zone name such as America/Sao_Paulo, Europe/Lisbon or America/New_York")
}
