//! The data vocabulary: WAL positions, transaction ids, tables, keys and values. The storage
//! engine defines what they mean on disk; messages, catalog facts and observations carry them.

use serde::{Deserialize, Serialize};

/// A byte position in the WAL stream: the offset in `pg_wal/wal`. LSN 0 is the start.
pub type Lsn = u64;
/// A transaction id, chosen by the caller and never reused.
pub type Xid = u64;
pub type TableId = u32;
pub type Key = i64;
pub type Value = Vec<u8>;

/// The size of a table block (a page), on disk and in the buffer cache.
pub const BLOCK_SIZE: usize = 8192;

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
    /// The columns, key and placement of a table made by SQL; `None` for the system's own
    /// tables and those of the key-value protocol.
    #[serde(default)]
    pub schema: Option<Box<super::schema::TableSchema>>,
}
