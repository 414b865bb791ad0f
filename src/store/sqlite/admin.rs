//! Opening an SQLite schedule for a kind of access, and the operators' `db migrate` and
//! `db check` on a file.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{SqliteStore, embedded, known_version, schema_version};
use crate::store::StoreError;
use crate::store::open::{Access, CheckReport, MigrationReport};

fn missing(path: &Path) -> StoreError {
    StoreError::Missing {
        location: path.display().to_string(),
    }
}

impl SqliteStore {
    /// Opens the file at `path` for `access` (see [`Access`]): only `Create` makes a new file,
    /// only `Create` and `Write` migrate.
    pub fn open_for(path: &Path, access: Access) -> Result<SqliteStore, StoreError> {
        if access != Access::Create && !path.exists() {
            return Err(missing(path));
        }
        SqliteStore::open_with(path, access != Access::ReadOnly)
    }

    /// Creates or brings up to date the schema of the file at `path`.
    pub(crate) fn migrate(path: &Path) -> Result<MigrationReport, StoreError> {
        let from = if path.exists() {
            SqliteStore::check(path)?.schema_version
        } else {
            0
        };
        let store = SqliteStore::open(path)?;
        let to = {
            let conn = store.conn()?;
            schema_version(&conn).map_err(super::other)?
        };
        let applied = embedded::migrations::runner()
            .get_migrations()
            .iter()
            .filter(|m| (from + 1..=to).contains(&i64::from(m.version())))
            .map(|m| m.to_string())
            .collect();
        Ok(MigrationReport {
            backend: "sqlite",
            location: path.display().to_string(),
            from,
            to,
            applied,
        })
    }

    /// The schema version of the file at `path`, read without writing anything.
    pub(crate) fn check(path: &Path) -> Result<CheckReport, StoreError> {
        if !path.is_file() {
            return Err(missing(path));
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
                StoreError::Open {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                    hint: "check the path and its permissions".into(),
                }
            })?;
        let found = schema_version(&conn).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
            hint: "the file is not a disparo database (or is corrupt); restore it from a backup or pass another --db".into(),
        })?;
        let known = known_version();
        Ok(CheckReport {
            backend: "sqlite",
            location: path.display().to_string(),
            schema_version: found,
            known_version: known,
            state: CheckReport::state_of(found, known),
            server_version: format!("SQLite {}", rusqlite::version()),
        })
    }
}
