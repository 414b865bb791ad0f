//! The warm-up ramp (`ramp:` on a channel): runs in-process on paused time, and what the
//! commands say about it.
mod cli;
mod dispatch;
