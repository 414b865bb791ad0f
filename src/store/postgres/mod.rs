//! The PostgreSQL store (being written).

use super::StoreError;
use super::open::{Access, CheckReport, MigrationReport};

pub struct PostgresStore;

impl PostgresStore {
    pub fn open(_url: &str, _access: Access) -> Result<super::SqliteStore, StoreError> {
        Err(StoreError::Other("not yet".into()))
    }
    pub(crate) fn migrate(_url: &str) -> Result<MigrationReport, StoreError> {
        Err(StoreError::Other("not yet".into()))
    }
    pub(crate) fn check(_url: &str) -> Result<CheckReport, StoreError> {
        Err(StoreError::Other("not yet".into()))
    }
}
