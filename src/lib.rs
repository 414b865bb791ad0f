//! disparo: schedule template ("HSM") message campaigns in each recipient's local time and
//! dispatch them through channel adapters, never at night and never twice.
//!
//! The library is the whole product; the `disparo` binary (`src/main.rs`, `src/cli/`) is a
//! thin command-line edge over it: it parses flags, calls the library and prints.
//! Map (see ARCHITECTURE.md):
//! - [`schedule`]: pure time engine (zones, RFC 5545, quiet hours, cron, caps).
//! - [`message`]: rendered content and the envelope handed to channels.
//! - [`channel`]: the adapters (console, outbox, webhook, WhatsApp, Twilio, SMTP, command).
//! - [`ramp`]: a channel's warm-up ramp (daily budgets for its first days).
//! - [`units`]: durations, rates and times as people write them.

// `Problem` carries a whole located diagnostic (file, line, column, row, field, hint); it is
// returned on cold paths only, so boxing it everywhere would add noise for no speed.
#![allow(clippy::result_large_err)]

pub mod address;
pub mod app;
pub mod audit;
pub mod channel;
pub mod diag;
pub mod dispatch;
pub mod follow_up;
pub mod inert;
pub mod message;
pub mod model;
pub mod phone;
pub mod plan;
pub mod ramp;
pub mod receipt;
pub mod schedule;
pub mod serve;
pub mod spill;
pub mod store;
pub mod template;
pub mod units;
pub mod unsubscribe;
