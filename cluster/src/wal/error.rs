//! The storage layer's errors: the world's faults (I/O, corruption) and refused requests. The
//! WAL and the tables above it share this one type; it lives with the WAL, the lower of the two.

use super::{Key, Lsn, TableId, Xid};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} of {path} failed: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "block {block} of {file} (offset {}) is corrupt: its checksum or layout does not match",
        *block as u64 * crate::model::data::BLOCK_SIZE as u64
    )]
    Corrupt { file: String, block: u32 },
    #[error("wal record at lsn {lsn} (offset {lsn} of pg_wal/wal) is corrupt")]
    CorruptWal { lsn: Lsn },
    /// A damaged record with a valid one after it: not a torn tail (a crash leaves garbage
    /// only past the last record written), so durable WAL is damaged and cutting it here
    /// would drop committed transactions.
    #[error("{path} is corrupt at offset {lsn}: a valid record follows at offset {next}, so this is damage in the middle of the wal, not its end")]
    CorruptWalMiddle { path: String, lsn: Lsn, next: Lsn },
    /// The WAL-before-data rule was broken: a block reached disk before the WAL that covers it,
    /// and that WAL was lost in a crash.
    #[error("block {block} of {file} has page lsn {page_lsn} beyond the end of the wal ({wal_end}): it reached disk before the wal covering it was durable")]
    BlockBeyondWal {
        file: String,
        block: u32,
        page_lsn: Lsn,
        wal_end: Lsn,
    },
    #[error("control file {path} is corrupt")]
    CorruptControl { path: String },
    #[error("control file says redo starts at lsn {redo_lsn} but the wal ends at {wal_end}")]
    WalTooShort { redo_lsn: Lsn, wal_end: Lsn },
    #[error("table {0} does not exist")]
    UnknownTable(TableId),
    #[error(
        "table {id} has writes of prepared transaction {xid}, which must end before it is dropped"
    )]
    TableInUse { id: TableId, xid: Xid },
    #[error("table {id} already exists as {existing:?}, cannot create it as {requested:?}")]
    TableExists {
        id: TableId,
        existing: String,
        requested: String,
    },
    #[error("table {table} is append-optimized: key {key} cannot be {action}")]
    AppendOnly {
        table: String,
        key: Key,
        action: &'static str,
    },
    #[error("row with key {key} in table {table} takes {size} bytes; a block holds at most {max}")]
    TupleTooLarge {
        table: String,
        key: Key,
        size: usize,
        max: usize,
    },
    #[error("wal received at lsn {got} but the local wal ends at {expected}")]
    WalGap { expected: Lsn, got: Lsn },
    #[error(
        "wal received differs from the local wal at lsn {lsn}, below the replay lsn {replay_lsn}"
    )]
    WalDiverged { lsn: Lsn, replay_lsn: Lsn },
    #[error("wal read from lsn {from} is past the flushed lsn {flushed}")]
    WalBeyondFlush { from: Lsn, flushed: Lsn },
    #[error("wal read of {wanted} bytes from lsn {from} found only {got}: the file ends below what was flushed")]
    WalShort {
        from: Lsn,
        wanted: usize,
        got: usize,
    },
    #[error("wal flush to lsn {lsn} asked for more than was written (end {end})")]
    FlushBeyondEnd { lsn: Lsn, end: Lsn },
    #[error("wal append landed at offset {got} instead of lsn {expected}")]
    WalOffset { expected: Lsn, got: Lsn },
    #[error("wal is unusable after a failed fsync ({reason}); the instance must restart")]
    WalFailed { reason: String },
    #[error("transaction {0} is not prepared")]
    UnknownPrepared(Xid),
    #[error("transaction {0} is already prepared")]
    AlreadyPrepared(Xid),
    #[error("this instance replays wal from a primary; local writes are refused")]
    Replica,
    #[error("this instance writes its own wal; it cannot receive wal from a primary")]
    NotReplica,
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: &str, source: std::io::Error) -> StorageError {
        StorageError::Io {
            op,
            path: path.to_string(),
            source,
        }
    }
}
