//! Hostile tests (issue #12): a lying provider, crashes, state changed mid-batch, injected text.
mod channels;
pub mod dispatch;
mod fleet;
mod inputs;
mod model;
pub(crate) mod paused;
mod provider;
