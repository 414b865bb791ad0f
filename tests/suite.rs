//! Every integration test, in one test binary (as ripgrep does): one link of the library
//! instead of one per file, and one process that shares the throwaway servers it starts.
//! Each module was a test binary of its own before; `cargo test --test suite MODULE::` runs one.

mod harness;
mod support;

mod bad_input;
mod bench_tools;
mod bounces;
mod channels;
mod cli;
mod conformance;
mod db_commands;
mod delivery;
mod faults;
mod filters;
mod follow_ups;
mod loaders_fuzz;
mod outputs;
mod ramp;
mod rate_limit;
mod report;
mod run_channels;
mod schedule_properties;
mod schedule_reference;
mod send_test;
mod serve;
mod store_dispatch;
mod template_differential;
mod template_reference;
mod variants;
