//! Opening an instance's storage: creating it on an empty disk, or recovering after a crash.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::io::Disk;
use crate::wal::reader::{Next, WalReader};
use crate::wal::record::next_valid_frame;
use crate::wal::{WAL_DIR, WAL_PATH};

use super::cache::{BufferCache, TableFile};
use super::control::{Control, CONTROL_DIR};
use super::doublewrite;
use super::table::Table;
use super::{Engine, EngineOptions, Lsn, Role, StorageError, TableKind, Wal};

impl Engine {
    /// Opens the storage on `disk`: creates it if the disk holds none, otherwise recovers.
    ///
    /// Recovery: read the control file, restore torn blocks from the double-write area, rebuild
    /// each table's index from its file, cut the WAL
    /// after its last valid record (so new records follow valid ones), then redo every
    /// committed transaction from the checkpoint's redo LSN. Prepared transactions come back
    /// from the control file and the Prepare records after it, still pending.
    pub async fn open(disk: Arc<dyn Disk>, opts: EngineOptions) -> Result<Engine, StorageError> {
        Engine::open_reporting(disk, opts, &AtomicU64::new(0)).await
    }

    /// [`Engine::open`], storing in `replayed` how far redo has gone (what a starting instance
    /// tells a probe, so the prober sees recovery advance).
    pub async fn open_reporting(
        disk: Arc<dyn Disk>,
        opts: EngineOptions,
        replayed: &AtomicU64,
    ) -> Result<Engine, StorageError> {
        let control = match Control::read(&*disk)? {
            Some(control) => control,
            None => initialize(&*disk).await?,
        };
        // Before anything reads a block: a block torn by the crash comes back whole from the
        // double-write area.
        doublewrite::restore(&*disk, !opts.page_checksum_skips_block_number).await?;
        let wal_end = recover_wal(&*disk, control.redo_lsn, opts.wal_damage_taken_for_end).await?;
        let wal = Wal::new(disk.clone(), wal_end)
            .retrying_failed_fsync(opts.retry_failed_fsync)
            .covering_later_appends(opts.wal_flush_covers_later_appends);
        let mut engine = Engine {
            wal: Arc::new(wal),
            disk,
            tables: Default::default(),
            cache: BufferCache::new(opts.cache_blocks_max)
                .evicting_before_wal_flush(opts.evict_before_wal_flush)
                .checksums_without_block_number(opts.page_checksum_skips_block_number)
                .without_doublewrite(opts.torn_page_unprotected),
            prepared: control.prepared.clone(),
            applied_lsn: control.redo_lsn,
            role: Role::Undecided,
            wal_bytes: 0,
            replica_skips_deletes: opts.replica_skips_deletes,
            replica_replays_out_of_order: opts.replica_replays_out_of_order,
            checkpoint_ignores_fsync_failure: opts.checkpoint_ignores_fsync_failure,
        };
        for def in &control.tables {
            let blocks = control.checkpoint_blocks.get(&def.id).copied().unwrap_or(0);
            let table = Table::load(
                &*engine.disk,
                def.clone(),
                blocks,
                wal_end,
                engine.cache.numbered(),
            )?;
            engine.tables.insert(def.id, table);
        }
        replayed.store(engine.applied_lsn, Ordering::Relaxed);
        if let Some(lsn) = engine.redo_in_steps(wal_end, replayed).await? {
            // The framing pass accepted this record, so it failed to apply: the WAL and the
            // blocks disagree.
            return Err(StorageError::CorruptWal { lsn });
        }
        engine.check_invariants();
        tracing::info!(
            redo_lsn = control.redo_lsn,
            wal_end,
            applied_lsn = engine.applied_lsn,
            tables = engine.tables.len(),
            prepared = engine.prepared.len(),
            "storage opened"
        );
        Ok(engine)
    }
}

/// WAL redone between two waits for the disk during crash recovery.
const REDO_STEP_BYTES: u64 = 32 * 1024;

impl Engine {
    /// Redoes up to `wal_end` a step at a time, waiting after each for the disk to serve what
    /// the step read and wrote, so recovery takes the time its bytes take and a probe meanwhile
    /// sees `replayed` advance. Returns the LSN of a record that failed to apply, if any.
    async fn redo_in_steps(
        &mut self,
        wal_end: Lsn,
        replayed: &AtomicU64,
    ) -> Result<Option<Lsn>, StorageError> {
        let mut upto = self.applied_lsn;
        loop {
            upto = upto.saturating_add(REDO_STEP_BYTES).min(wal_end);
            // A step that ends inside a transaction's batch leaves it for the next step, which
            // reads it again from the last applied record.
            let redone = self.redo(upto)?;
            replayed.store(self.applied_lsn, Ordering::Relaxed);
            if redone.bad.is_some() {
                return Ok(redone.bad);
            }
            self.disk
                .settle()
                .await
                .map_err(|source| StorageError::io("read", WAL_PATH, source))?;
            if upto >= wal_end {
                return Ok(None);
            }
        }
    }
}

/// Lays out an empty instance durably. The control file is written last, so its presence
/// means initialization finished; a crash before it leaves a disk that is initialized again.
async fn initialize(disk: &dyn Disk) -> Result<Control, StorageError> {
    let dirs = [
        CONTROL_DIR,
        WAL_DIR,
        TableFile::dir(TableKind::Heap),
        TableFile::dir(TableKind::AppendOptimized),
    ];
    for dir in dirs {
        disk.create_dir(dir)
            .map_err(|source| StorageError::io("create", dir, source))?;
    }
    let io = |op| move |source| StorageError::io(op, WAL_PATH, source);
    if disk.exists(WAL_PATH) {
        disk.truncate(WAL_PATH, 0).map_err(io("truncate"))?;
    } else {
        disk.create(WAL_PATH).map_err(io("create"))?;
    }
    disk.sync(WAL_PATH).await.map_err(io("sync"))?;
    disk.sync_dir(WAL_DIR)
        .await
        .map_err(|source| StorageError::io("sync", WAL_DIR, source))?;
    disk.sync_dir("")
        .await
        .map_err(|source| StorageError::io("sync", "", source))?;
    let control = Control::default();
    control.write(disk).await?;
    Ok(control)
}

/// A damaged or partial record at `end` is the end of the WAL only if no valid record follows
/// it before `len`; otherwise the durable WAL is damaged in its middle, and cutting it there
/// would silently drop the records after it: the instance refuses to start.
fn refuse_damage_in_the_middle(disk: &dyn Disk, end: Lsn, len: Lsn) -> Result<(), StorageError> {
    let rest = disk
        .read_at(WAL_PATH, end, (len - end) as usize)
        .map_err(|source| StorageError::io("read", WAL_PATH, source))?;
    match next_valid_frame(end, &rest) {
        Some(next) => Err(StorageError::CorruptWalMiddle {
            path: WAL_PATH.to_string(),
            lsn: end,
            next,
        }),
        None => Ok(()),
    }
}

/// Finds the end of the last valid WAL record after `redo_lsn`, cuts the file there and makes
/// it durable; returns that end. `damage_is_end`: the planted bug `wal-damage-taken-for-end`,
/// which cuts at damage in the middle of the log too.
async fn recover_wal(
    disk: &dyn Disk,
    redo_lsn: Lsn,
    damage_is_end: bool,
) -> Result<Lsn, StorageError> {
    let io = |op| move |source| StorageError::io(op, WAL_PATH, source);
    let len = disk.len(WAL_PATH).map_err(io("stat"))?;
    if len < redo_lsn {
        return Err(StorageError::WalTooShort {
            redo_lsn,
            wal_end: len,
        });
    }
    let mut reader = WalReader::new(disk, redo_lsn, len);
    let end = loop {
        match reader.next_record()? {
            Next::Record { .. } => continue,
            Next::End => break len,
            Next::Incomplete { lsn } => break lsn,
            Next::Bad { lsn } => {
                tracing::warn!(
                    lsn,
                    wal_len = len,
                    "wal record fails its checksum; wal ends here unless a valid one follows"
                );
                break lsn;
            }
        }
    };
    if end < len {
        if !damage_is_end {
            refuse_damage_in_the_middle(disk, end, len)?;
        }
        tracing::info!(end, cut = len - end, "cutting torn wal tail");
        disk.truncate(WAL_PATH, end).map_err(io("truncate"))?;
    }
    // What we just read may exist only in the OS page cache (the process died, the host did
    // not); it is about to be treated as durable, so make it so.
    disk.sync(WAL_PATH).await.map_err(io("sync"))?;
    Ok(end)
}
