//! Hostile tests (issue #12): a lying provider, crashes, state changed mid-batch, injected text.
mod channels;
mod dispatch;
mod fleet;
mod inputs;
mod model;
pub(crate) mod paused;
mod provider;
