//! The write-ahead log: one append-only file, `pg_wal/wal`, whose byte offsets are LSNs.
//!
//! This module owns the logical writes a transaction makes ([`Write`]), the on-disk record format
//! ([`record`]), a sequential reader ([`reader`]), [`Wal`], the handle that appends records and
//! makes them durable with group commit, and the storage layer's errors ([`StorageError`], here
//! at the bottom of the storage layer so that the WAL and the tables above it share them). The
//! vocabulary (LSNs, xids, table definitions) is the model's ([`crate::model::data`]), re-exported
//! here.

mod error;
mod log;
pub mod reader;
pub mod record;

use serde::{Deserialize, Serialize};

pub use crate::model::data::{Key, Lsn, TableDef, TableId, TableKind, Value, Xid};
pub use error::StorageError;
pub use log::{Wal, WAL_DIR, WAL_PATH};
pub use record::Record;

/// One logical change a transaction makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    Put {
        table: TableId,
        key: Key,
        #[serde(with = "serde_bytes")]
        value: Value,
    },
    Delete {
        table: TableId,
        key: Key,
    },
}

impl Write {
    pub fn table(&self) -> TableId {
        match self {
            Write::Put { table, .. } | Write::Delete { table, .. } => *table,
        }
    }

    pub fn key(&self) -> Key {
        match self {
            Write::Put { key, .. } | Write::Delete { key, .. } => *key,
        }
    }
}
