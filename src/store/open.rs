//! Where a schedule lives and how a command may use it: the one entry point (`open`) that
//! picks the back end from `--db`, so that nothing above the store names one.

use std::path::PathBuf;

use serde::Serialize;

use super::{PostgresStore, SqliteStore, Store, StoreError};

/// A schedule's database: a file (SQLite) or a PostgreSQL URL.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    /// `postgres://` and `postgresql://` URLs are PostgreSQL; anything else is a file path.
    pub fn parse(s: &str) -> Location {
        let lower = s.trim_start().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Location::Postgres(s.trim().to_owned())
        } else {
            Location::Sqlite(PathBuf::from(s))
        }
    }

    /// `given` (a path or a URL) with a relative path taken from `dir`; without it, the
    /// embedded store's file `default_file` in `dir`: callers need not know which back end a
    /// path means.
    pub fn resolve(given: Option<&str>, dir: &std::path::Path, default_file: &str) -> Location {
        match given.map(Location::parse) {
            Some(Location::Sqlite(p)) => Location::Sqlite(dir.join(p)),
            Some(other) => other,
            None => Location::Sqlite(dir.join(default_file)),
        }
    }

    /// The back end's name, as `disparo db check` prints it.
    pub fn backend(&self) -> &'static str {
        match self {
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "postgres",
        }
    }
}

/// A URL without its password (in the user part or a `password=` parameter): what errors,
/// logs and reports show.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _password)) => format!("{name}@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
                .collect();
            if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({self})", self.backend())
    }
}

/// What a command may do to the database it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// May create the database file or schema (`plan` only: a schedule starts with a plan).
    Create,
    /// The schedule must exist; its schema is brought up to date when behind (workers, and
    /// commands that change state).
    Write,
    /// The schedule must exist and is never migrated (status, messages, export, report): an
    /// old schema is refused with what to run, instead of being changed by a look at it.
    ReadOnly,
}

/// Opens the schedule at `location` for `access`.
pub fn open(location: &Location, access: Access) -> Result<Box<dyn Store>, StoreError> {
    Ok(match location {
        Location::Sqlite(path) => Box::new(SqliteStore::open_for(path, access)?),
        Location::Postgres(url) => Box::new(PostgresStore::open(url, access)?),
    })
}

/// What `disparo db migrate` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    pub backend: &'static str,
    pub location: String,
    /// The schema version before (0: no schema yet) and after.
    pub from: i64,
    pub to: i64,
    /// The migrations applied, by name (`V6__fleet`); empty when it was up to date.
    pub applied: Vec<String>,
}

/// What `disparo db check` prints: whether this disparo can use the database as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub backend: &'static str,
    pub location: String,
    /// The schema version found (0: none) and the newest this disparo knows.
    pub schema_version: i64,
    pub known_version: i64,
    /// `up_to_date`, `behind` (run `disparo db migrate`) or `newer` (upgrade disparo).
    pub state: &'static str,
    /// The server's version (PostgreSQL) or the library's (SQLite).
    pub server_version: String,
}

impl CheckReport {
    pub(crate) fn state_of(found: i64, known: i64) -> &'static str {
        match found.cmp(&known) {
            std::cmp::Ordering::Equal => "up_to_date",
            std::cmp::Ordering::Less => "behind",
            std::cmp::Ordering::Greater => "newer",
        }
    }
}

/// Brings the schema at `location` up to date (creating it when there is none), under a
/// lock where several processes may try at once.
pub fn migrate(location: &Location) -> Result<MigrationReport, StoreError> {
    match location {
        Location::Sqlite(path) => SqliteStore::migrate(path),
        Location::Postgres(url) => PostgresStore::migrate(url),
    }
}

/// Looks at the database at `location` without changing it.
pub fn check(location: &Location) -> Result<CheckReport, StoreError> {
    match location {
        Location::Sqlite(path) => SqliteStore::check(path),
        Location::Postgres(url) => PostgresStore::check(url),
    }
}

/// The refusal of a schema older than this disparo for a read-only look.
pub(crate) fn behind(location: String, found: i64, known: i64) -> StoreError {
    StoreError::Behind {
        location,
        found,
        needed: known,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_paths() {
        assert!(matches!(
            Location::parse("postgres://u:p@h/db"),
            Location::Postgres(_)
        ));
        assert!(matches!(
            Location::parse("PostgreSQL://h/db"),
            Location::Postgres(_)
        ));
        assert_eq!(
            Location::parse("disparo.db"),
            Location::Sqlite("disparo.db".into())
        );
        assert_eq!(
            Location::parse("./postgres/x.db"),
            Location::Sqlite("./postgres/x.db".into())
        );
    }

    /// Errors, logs and `db check` show the location: never with the password.
    #[test]
    fn display_never_shows_the_password() {
        for (url, shown) in [
            (
                "postgres://disparo:s3cret@db.example:5432/app?sslmode=require",
                "postgres://disparo@db.example:5432/app?sslmode=require",
            ),
            ("postgresql://u:s3cret@h", "postgresql://u@h"),
            (
                "postgres://h/db?password=s3cret&sslmode=disable",
                "postgres://h/db?sslmode=disable",
            ),
            ("postgres://u@h/db?password=s3cret", "postgres://u@h/db"),
            ("postgres://u:p%40ss@h/db", "postgres://u@h/db"),
        ] {
            let l = Location::parse(url);
            assert_eq!(l.to_string(), shown);
            assert!(!format!("{l:?}").contains("s3cret"));
        }
    }
}
