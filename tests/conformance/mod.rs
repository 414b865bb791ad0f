//! One conformance suite for every store, in the spirit of a driver test suite: each test
//! runs against SQLite (a temp file) and PostgreSQL (a database of its own on a throwaway
//! cluster, tests/harness/pg.rs), through the `Store` trait only. SQLite's behaviour is the
//! reference; a store that passes is one `disparo` may run on.

mod support;

mod bounces;
mod caps;
mod claims;
mod cluster;
mod fleet;
mod follow_ups;
mod plan;
mod ramp;
mod receipts;
mod schema;
mod server;
mod suppress;
