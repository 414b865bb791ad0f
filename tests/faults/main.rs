//! Hostile tests (issue #12): a lying provider, crashes, state changed mid-batch, injected text.
#[path = "../harness/mod.rs"]
mod harness;
mod provider;
mod channels;
mod inputs;
mod dispatch;
mod model;
