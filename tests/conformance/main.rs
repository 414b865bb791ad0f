//! One conformance suite for every store: each test runs against SQLite (a temp file) and
//! PostgreSQL (a database of its own on a throwaway cluster, tests/harness/pg.rs).

#[path = "../harness/pg.rs"]
mod pg;

mod cluster;
