//! `disparo db migrate` / `db check` and the access each command opens the database with,
//! end to end through the binary on SQLite (the same commands on PostgreSQL: `fleet`).

use crate::harness::Project;

fn sql(p: &Project, statement: &str) {
    let conn = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
    conn.execute_batch(statement).unwrap();
}

fn version(p: &Project) -> i64 {
    let conn = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
    conn.query_row(
        "SELECT MAX(version) FROM refinery_schema_history",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn migrate_creates_the_schema_and_check_says_it_is_up_to_date() {
    let p = Project::example();
    let missing = p.expect(2, &["db", "check"]);
    assert!(
        missing.stderr.contains("there is no database"),
        "{}",
        missing.stderr
    );
    assert!(
        !p.path().join("disparo.db").exists(),
        "check created a database"
    );
    let migrated = p.ok(&["--format", "json", "db", "migrate"]);
    let report = &migrated.json_lines()[0];
    assert_eq!(report["backend"], "sqlite");
    assert_eq!(report["from"], 0);
    let known = report["to"].as_i64().unwrap();
    assert!(known >= 6, "{report}");
    let checked = p.ok(&["--format", "json", "db", "check"]);
    assert_eq!(checked.json_lines()[0]["state"], "up_to_date");
    let again = p.ok(&["--format", "json", "db", "migrate"]);
    assert_eq!(
        again.json_lines()[0]["applied"],
        "",
        "a second migrate applies nothing"
    );
}

/// A schema one version behind: `db check` exits 1 and read-only commands refuse it
/// unchanged; `db migrate` (or a worker) brings it up to date.
#[test]
fn read_only_commands_never_migrate_and_check_exits_1_when_behind() {
    let p = Project::example();
    p.ok(&[
        "-q",
        "--now",
        "2026-11-26T12:00:00Z",
        "plan",
        "black-friday",
    ]);
    let known = version(&p);
    // Undoes the newest migration (V10, sends by channel), as the conformance suite does.
    sql(
        &p,
        &format!(
            "DROP INDEX sends_by_channel;
             DELETE FROM refinery_schema_history WHERE version = {known};"
        ),
    );
    let before = version(&p);
    assert!(before < known);
    let checked = p.expect(1, &["db", "check"]);
    assert!(
        checked.stderr.contains("disparo db migrate"),
        "{}",
        checked.stderr
    );
    for args in [&["status"][..], &["messages"], &["suppress", "list"]] {
        let out = p.expect(4, args);
        assert!(
            out.stderr.contains("run `disparo db migrate`"),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(version(&p), before, "{args:?} migrated the schema");
    }
    p.ok(&["db", "migrate"]);
    assert_eq!(version(&p), known);
    p.ok(&["status"]);
}

#[test]
fn a_schema_from_a_newer_disparo_is_exit_4_for_every_command() {
    let p = Project::example();
    p.ok(&["db", "migrate"]);
    sql(
        &p,
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (99, 'future', '2030-01-01', '0')",
    );
    for args in [
        &["db", "check"][..],
        &["db", "migrate"],
        &["status"],
        &["run"],
    ] {
        let out = p.expect(4, args);
        assert!(out.stderr.contains("newer"), "{args:?}: {}", out.stderr);
    }
    assert_eq!(version(&p), 99);
}
