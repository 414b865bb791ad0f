//! Opening for an access, migrations, and refusing what this disparo cannot read.

use std::sync::{Arc, Barrier};

use disparo::store::{Access, StoreError};

use super::support::*;

fn version(db: &Db) -> i64 {
    raw_i64(
        db,
        "SELECT CAST(MAX(version) AS BIGINT) FROM refinery_schema_history",
    )
}

conformance! {
    /// Only `Create` makes a schedule; `Write` and `ReadOnly` on none say to plan first.
    fn only_create_makes_a_schedule(db) {
        for access in [Access::Write, Access::ReadOnly] {
            let err = db.open(access).err().expect("no schedule yet");
            assert!(matches!(err, StoreError::Missing { .. }), "{access:?}: {err}");
            assert!(err.to_string().contains("disparo plan"), "{err}");
            assert!(!err.is_retryable());
        }
        let report = disparo::store::check(&db.location);
        assert!(matches!(report, Err(StoreError::Missing { .. })), "{report:?}");
        db.create();
        db.open(Access::Write).unwrap();
        db.open(Access::ReadOnly).unwrap();
        let report = disparo::store::check(&db.location).unwrap();
        assert_eq!(report.state, "up_to_date");
        assert_eq!(report.schema_version, report.known_version);
        assert_eq!(report.backend, db.location.backend());
    }

    /// A database from a newer disparo is refused by every access, and left as it was.
    fn newer_schema_is_refused_unchanged(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(2));
        drop(s);
        raw_sql(&db, "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (99, 'future', '2030-01-01', '0')");
        let gate = raw_i64(&db, "SELECT value FROM control WHERE name = 'gate'");
        for access in [Access::Create, Access::Write, Access::ReadOnly] {
            let err = db.open(access).err().expect("refused");
            assert!(matches!(err, StoreError::NewerSchema { found: 99, .. }), "{err}");
            assert!(err.to_string().contains("newer disparo"), "{err}");
        }
        assert!(matches!(disparo::store::migrate(&db.location), Err(StoreError::NewerSchema { .. })));
        assert_eq!(disparo::store::check(&db.location).unwrap().state, "newer");
        assert_eq!(version(&db), 99);
        assert_eq!(raw_i64(&db, "SELECT value FROM control WHERE name = 'gate'"), gate);
        assert_eq!(raw_i64(&db, "SELECT COUNT(*) FROM queue"), 2);
    }

    /// A read-only open of an older schema refuses it and changes nothing; a writer, or
    /// `db migrate`, brings it up to date.
    fn read_only_never_migrates(db) {
        let s = db.create();
        plan(&*s, &campaign("c"), &audience(2));
        drop(s);
        let known = version(&db);
        let before = undo_last_migration(&db);
        assert!(before < known);
        let err = db.open(Access::ReadOnly).err().expect("refused");
        assert!(matches!(err, StoreError::Behind { .. }), "{err}");
        assert!(err.to_string().contains("disparo db migrate"), "{err}");
        assert_eq!(version(&db), before);
        let report = disparo::store::check(&db.location).unwrap();
        assert_eq!((report.state, report.schema_version), ("behind", before));
        let done = disparo::store::migrate(&db.location).unwrap();
        assert_eq!((done.from, done.to, done.applied.len()), (before, known, 1));
        assert_eq!(version(&db), known);
        let again = disparo::store::migrate(&db.location).unwrap();
        assert!(again.applied.is_empty());
        undo_last_migration(&db);
        let s = db.open(Access::Write).unwrap();
        assert_eq!(version(&db), known);
        assert_eq!(count(&*s, disparo::store::State::Pending), 2);
    }

    /// Ten workers opening an older schema at once: it is migrated once, and every one of
    /// them opens.
    fn concurrent_writers_migrate_once(db) {
        drop(db.create());
        let known = version(&db);
        undo_last_migration(&db);
        let db = Arc::new(db);
        let barrier = Arc::new(Barrier::new(10));
        let handles: Vec<_> = (0..10).map(|_| {
            let (db, barrier) = (db.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                db.open(Access::Write).map(|_| ()).map_err(|e| e.to_string())
            })
        }).collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        assert_eq!(version(&db), known);
        assert_eq!(raw_i64(&db, &format!("SELECT COUNT(*) FROM refinery_schema_history WHERE version = {known}")), 1);
    }

    /// Plans racing to create the schema of an empty database: one creates it, all open.
    fn concurrent_creates_migrate_once(db) {
        let db = Arc::new(db);
        let barrier = Arc::new(Barrier::new(6));
        let handles: Vec<_> = (0..6).map(|_| {
            let (db, barrier) = (db.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                db.open(Access::Create).map(|_| ()).map_err(|e| e.to_string())
            })
        }).collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        assert_eq!(raw_i64(&db, "SELECT COUNT(*) FROM refinery_schema_history"), raw_i64(&db, "SELECT COUNT(DISTINCT version) FROM refinery_schema_history"));
    }
}
