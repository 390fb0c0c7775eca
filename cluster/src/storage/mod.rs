//! The per-instance storage engine: heap and append-optimized tables in 8 KiB checksummed
//! blocks, a bounded buffer cache, the WAL with group commit, checkpoints, crash recovery, and
//! the WAL shipping a mirror replays.
//!
//! Durability rules, in one place:
//! - Nothing is logged before commit: a transaction's data records and its commit record are
//!   appended as one batch, and redo applies a batch only when its commit record is there.
//! - A commit is acknowledged only after `wal().flush_to(lsn)` returns (the caller does that,
//!   outside the engine lock, so commits share `fsync`s).
//! - WAL before data: a block reaches disk only after the WAL up to its page LSN is durable.
//! - A checkpoint makes every block durable before the control file moves the redo point.
//! - Torn writes: a block is overwritten in place only once its image is durable in the
//!   double-write area, and crash recovery restores torn blocks from there first.
//!
//! All file I/O goes through [`Disk`].

mod apply;
pub mod base_backup;
mod cache;
mod control;
mod doublewrite;
pub mod identity;
mod open;
mod page;
mod redo;
mod rewind;
pub mod small_file;
mod table;
mod txn;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::io::Disk;

pub use crate::wal::StorageError;
pub use crate::wal::{Key, Lsn, Record, TableDef, TableId, TableKind, Value, Wal, Write, Xid};
pub use page::{BLOCK_SIZE, TUPLE_SPACE};
pub use rewind::{wipe_instance_dir, WAL_SUMMARY_CHUNK};

use cache::BufferCache;
use table::Table;

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// The buffer cache's bound in blocks. A soft limit: blocks waiting for a WAL flush stay.
    pub cache_blocks_max: usize,
    /// Planted bug (off by default): a replica's replay drops heap deletes.
    pub replica_skips_deletes: bool,
    /// Planted bug (off by default): a replica's replay applies each commit after the next one.
    pub replica_replays_out_of_order: bool,
    /// Planted bug (off by default): the buffer cache evicts (writes) a dirty block before the
    /// WAL up to its page LSN is durable.
    pub evict_before_wal_flush: bool,
    /// Planted bug (off by default): a WAL flush claims what was appended during its fsync.
    pub wal_flush_covers_later_appends: bool,
    /// Planted bug (off by default): a failed WAL `fsync` is retried and the flush carries on.
    pub retry_failed_fsync: bool,
    /// Planted bug (off by default): a checkpoint carries on past a failed table-file `fsync`.
    pub checkpoint_ignores_fsync_failure: bool,
    /// Block checksums leave out the block number (off by default; the format before they
    /// covered it). Kept for a planted bug that no checker catches yet: a block misdirected
    /// to another block's place would then pass.
    pub page_checksum_skips_block_number: bool,
    /// Planted bug (off by default): blocks are written in place without their image in the
    /// double-write area first, so a crash that tears one loses it.
    pub torn_page_unprotected: bool,
    /// Planted bug (off by default): crash recovery cuts the WAL at a damaged record even when
    /// whole records follow it.
    pub wal_damage_taken_for_end: bool,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            cache_blocks_max: 256,
            replica_skips_deletes: false,
            replica_replays_out_of_order: false,
            evict_before_wal_flush: false,
            wal_flush_covers_later_appends: false,
            retry_failed_fsync: false,
            checkpoint_ignores_fsync_failure: false,
            page_checksum_skips_block_number: false,
            wal_damage_taken_for_end: false,
            torn_page_unprotected: false,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// WAL bytes this engine appended or received since it opened.
    pub wal_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub evictions: u64,
    pub blocks_written: u64,
    /// Blocks in the buffer cache now.
    pub cached_blocks: usize,
}

/// Who writes this instance's WAL, decided by the first call that writes or receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Undecided,
    /// Appends its own records (a primary, or a promoted mirror).
    Writer,
    /// Receives a primary's WAL byte for byte and replays it; must not add records of its
    /// own, or its WAL would stop being a prefix of the primary's.
    Replica,
}

/// One instance's storage. Used behind `Arc<tokio::sync::Mutex<Engine>>`; the WAL handle
/// ([`Engine::wal`]) is shared separately so commits can wait for a flush without the lock.
pub struct Engine {
    disk: Arc<dyn Disk>,
    wal: Arc<Wal>,
    tables: BTreeMap<TableId, Table>,
    cache: BufferCache,
    /// Prepared, unresolved transactions and their writes.
    prepared: BTreeMap<Xid, Vec<Write>>,
    /// Every committed transaction before this LSN is in the blocks (cache or disk). On a
    /// replica it is the replay LSN: the start of the first record not yet applied.
    applied_lsn: Lsn,
    role: Role,
    wal_bytes: u64,
    replica_skips_deletes: bool,
    replica_replays_out_of_order: bool,
    /// Planted bug: a checkpoint carries on past a failed table-file `fsync`.
    checkpoint_ignores_fsync_failure: bool,
}

impl Engine {
    pub fn wal(&self) -> Arc<Wal> {
        self.wal.clone()
    }

    pub fn tables(&self) -> Vec<TableDef> {
        self.tables.values().map(|t| t.def.clone()).collect()
    }

    /// Prepared transactions awaiting COMMIT PREPARED or ROLLBACK PREPARED, sorted.
    pub fn prepared(&self) -> Vec<Xid> {
        self.prepared.keys().copied().collect()
    }

    pub fn stats(&self) -> EngineStats {
        let cache = self.cache.stats;
        EngineStats {
            wal_bytes: self.wal_bytes,
            cache_hits: cache.hits,
            cache_misses: cache.misses,
            evictions: cache.evictions,
            blocks_written: cache.blocks_written,
            cached_blocks: self.cache.cached_blocks(),
        }
    }

    fn table(&self, id: TableId) -> Result<&Table, StorageError> {
        self.tables.get(&id).ok_or(StorageError::UnknownTable(id))
    }

    pub fn get(&mut self, table: TableId, key: Key) -> Result<Option<Value>, StorageError> {
        let table = self.table(table)?;
        let Some(slot) = table.index.get(&key) else {
            return Ok(None);
        };
        let id = (table.file, slot.block);
        // `id` is copied out so the cache can be borrowed mutably.
        let flushed = self.wal.flushed_lsn();
        let page = self.cache.read(&*self.disk, flushed, id)?;
        let value = page.get(key).cloned();
        debug_assert!(
            value.is_some(),
            "index sends key {key} to {id:?}, which lacks it"
        );
        Ok(value)
    }

    /// Every row of a table, sorted by key.
    pub fn scan(&mut self, table: TableId) -> Result<Vec<(Key, Value)>, StorageError> {
        let table = self.table(table)?;
        let file = table.file;
        let mut by_block: BTreeMap<u32, Vec<Key>> = BTreeMap::new();
        for (key, slot) in &table.index {
            by_block.entry(slot.block).or_default().push(*key);
        }
        let mut rows = Vec::with_capacity(table.index.len());
        let flushed = self.wal.flushed_lsn();
        for (block, keys) in by_block {
            let page = self.cache.read(&*self.disk, flushed, (file, block))?;
            for key in keys {
                let value = page.get(key);
                debug_assert!(value.is_some(), "index sends key {key} to block {block}");
                if let Some(value) = value {
                    rows.push((key, value.clone()));
                }
            }
        }
        rows.sort_by_key(|(key, _)| *key);
        Ok(rows)
    }

    /// A digest of the logical content (table definitions and rows, in sorted order): equal on
    /// two instances holding the same committed data, whatever their block layout.
    pub fn data_digest(&mut self) -> Result<u64, StorageError> {
        let mut digest = Fnv::default();
        for def in self.tables() {
            digest.add(&def.id.to_le_bytes());
            digest.add(&[def.kind as u8]);
            digest.add(&(def.name.len() as u64).to_le_bytes());
            digest.add(def.name.as_bytes());
            let rows = self.scan(def.id)?;
            digest.add(&(rows.len() as u64).to_le_bytes());
            for (key, value) in rows {
                digest.add(&key.to_le_bytes());
                digest.add(&(value.len() as u64).to_le_bytes());
                digest.add(&value);
            }
        }
        Ok(digest.0)
    }

    /// Asserts the LSN ordering the engine relies on (debug and simulation builds).
    fn check_invariants(&self) {
        let (end, flushed) = (self.wal.end_lsn(), self.wal.flushed_lsn());
        debug_assert!(flushed <= end, "flushed {flushed} beyond wal end {end}");
        debug_assert!(
            self.applied_lsn <= end,
            "applied {} beyond {end}",
            self.applied_lsn
        );
        if self.role == Role::Replica {
            debug_assert!(
                self.applied_lsn <= flushed,
                "replica replayed to {} beyond flushed {flushed}",
                self.applied_lsn
            );
        }
    }
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike `std`'s hasher.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn add(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
