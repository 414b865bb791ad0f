//! Which database a command means, and opening it for what the command will do: only `plan`
//! may create one, so that `run` or `status` from the wrong folder (a cron job) fails loudly
//! instead of reporting an empty database.

use std::path::{Path, PathBuf};

use crate::diag::Problem;
use crate::model::Project;
use crate::store::{SqliteStore, Store};

use super::Error;

/// The database named by `--db`/`DISPARO_DB`, or the project's default.
#[derive(Debug, Clone)]
pub struct Database {
    path: PathBuf,
}

impl Database {
    /// `given` relative to `cwd`; without it, `disparo.db` in the project root (or `cwd`).
    pub fn locate(given: Option<&Path>, cwd: &Path, project: Option<&Project>) -> Database {
        let path = match given {
            Some(p) => cwd.join(p),
            None => project
                .map(|p| p.root.clone())
                .unwrap_or_else(|| cwd.to_path_buf())
                .join("disparo.db"),
        };
        Database { path }
    }

    /// Whether there is a database to read (read-only commands must not create one).
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Opens the database, creating it when missing (only `plan` does this).
    pub fn create(&self) -> Result<Box<dyn Store>, Error> {
        Ok(Box::new(SqliteStore::open(&self.path)?))
    }

    /// The database a plan created; refused (exit 2 with a hint) when there is none.
    pub fn existing(&self) -> Result<Box<dyn Store>, Error> {
        if !self.exists() {
            return Err(Problem::new(format!("there is no database at {self}"))
            .hint("run `disparo plan CAMPAIGN` first (it creates the database), or pass --db / DISPARO_DB, or run from the project folder")
            .into());
        }
        self.create()
    }

    /// The database if there is one, else `None` (a dry run reads it, never creates it).
    pub fn if_exists(&self) -> Result<Option<Box<dyn Store>>, Error> {
        if self.exists() {
            self.create().map(Some)
        } else {
            Ok(None)
        }
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())
    }
}
