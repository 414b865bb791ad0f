//! Which database a command means, and opening it for what the command will do: only `plan`
//! (and adding opt-outs) may create one, so that `run` or `status` from the wrong folder (a
//! cron job) fails loudly instead of reporting an empty database; read-only commands never
//! migrate a schema.

use std::path::Path;

use crate::model::Project;
use crate::store::{self, Access, CheckReport, Location, MigrationReport, Store, StoreError};

use super::Error;

/// The database named by `--db`/`DISPARO_DB` (a path or a `postgres://` URL), or the
/// project's default file.
#[derive(Debug, Clone)]
pub struct Database {
    location: Location,
}

impl Database {
    /// `given` (a path relative to `cwd`, or a URL); without it, `disparo.db` in the project
    /// root (or `cwd`).
    pub fn locate(given: Option<&str>, cwd: &Path, project: Option<&Project>) -> Database {
        let location = match given {
            Some(_) => Location::resolve(given, cwd, "disparo.db"),
            None => Location::resolve(
                None,
                project.map_or(cwd, |p| p.root.as_path()),
                "disparo.db",
            ),
        };
        Database { location }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Opens the schedule for `access` (see [`Access`]).
    pub fn open(&self, access: Access) -> Result<Box<dyn Store>, Error> {
        Ok(store::open(&self.location, access)?)
    }

    /// The schedule if there is one, else `None`: a dry run or a preview reads it and never
    /// creates one.
    pub fn open_if_exists(&self, access: Access) -> Result<Option<Box<dyn Store>>, Error> {
        match store::open(&self.location, access) {
            Ok(s) => Ok(Some(s)),
            Err(StoreError::Missing { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `disparo db migrate`: the schema brought up to date, created if there is none.
    pub fn migrate(&self) -> Result<MigrationReport, Error> {
        Ok(store::migrate(&self.location)?)
    }

    /// `disparo db check`: whether this disparo can use the database as it is.
    pub fn check(&self) -> Result<CheckReport, Error> {
        Ok(store::check(&self.location)?)
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.location.fmt(f)
    }
}
