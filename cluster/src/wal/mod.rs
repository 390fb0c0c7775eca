//! The write-ahead log: one append-only file, `pg_wal/wal`, whose byte offsets are LSNs.
//!
//! This module owns the shared vocabulary of the storage layer (LSNs, xids, table definitions,
//! logical writes), the on-disk record format ([`record`]), a sequential reader ([`reader`]) and
//! [`Wal`], the handle that appends records and makes them durable with group commit.

mod log;
pub mod reader;
pub mod record;

use serde::{Deserialize, Serialize};

pub use crate::storage::StorageError;
pub use log::{Wal, WAL_DIR, WAL_PATH};
pub use record::Record;

/// A byte position in the WAL stream: the offset in `pg_wal/wal`. LSN 0 is the start.
pub type Lsn = u64;
/// A transaction id, chosen by the caller and never reused.
pub type Xid = u64;
pub type TableId = u32;
pub type Key = i64;
pub type Value = Vec<u8>;

/// How a table stores its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TableKind {
    /// Rows live in any block with room; updates and deletes are allowed.
    Heap,
    /// Rows are only ever appended to the last block; updates and deletes are refused.
    AppendOptimized,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: TableId,
    pub name: String,
    pub kind: TableKind,
}

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
