//! The write side: creating tables, committing, two-phase commit, and checkpoints.
//!
//! Every write method appends its WAL records and returns the end LSN to flush. The engine
//! never waits for the flush itself: the caller releases the engine lock and awaits
//! `wal().flush_to(lsn)` before acknowledging, so concurrent commits share one `fsync`.

use crate::io::points::FaultPoint;
use crate::io::runtime;
use crate::wal::record::encode_frame;

use super::cache::TableFile;
use super::control::Control;
use super::doublewrite::{self, Image};
use super::table::Table;
use super::{Engine, Lsn, Record, Role, StorageError, TableDef, TableId, TableKind, Write, Xid};

impl Engine {
    /// Local writes are refused on a replica; the first one makes this engine the writer
    /// (see [`Engine::append_batch`]).
    fn check_writable(&self) -> Result<(), StorageError> {
        match self.role {
            Role::Replica => Err(StorageError::Replica),
            Role::Undecided | Role::Writer => Ok(()),
        }
    }

    /// Creates a table. Creating one that exists with the same definition is a no-op that
    /// returns the current WAL end.
    pub fn create_table(&mut self, def: TableDef) -> Result<Lsn, StorageError> {
        if let Some(table) = self.tables.get(&def.id) {
            if table.def == def {
                return Ok(self.wal.end_lsn());
            }
            return Err(StorageError::TableExists {
                id: def.id,
                existing: table.def.name.clone(),
                requested: def.name,
            });
        }
        self.check_writable()?;
        let table = Table::empty(def.clone());
        // The file's directory entry becomes durable at the next checkpoint; until then redo
        // of the CreateTable record recreates it.
        self.create_table_file(&table)?;
        let end = self.append_batch(&[], Record::CreateTable { def })?;
        self.tables.insert(table.def.id, table);
        Ok(end)
    }

    /// Drops a table: its rows are gone from here on. Dropping one that does not exist (dropped
    /// already, or never created here) is a no-op that returns the current WAL end. A table
    /// with writes of a prepared transaction is refused: that transaction must commit or roll
    /// back first, or its COMMIT PREPARED could never apply.
    pub fn drop_table(&mut self, id: TableId) -> Result<Lsn, StorageError> {
        if !self.tables.contains_key(&id) {
            return Ok(self.wal.end_lsn());
        }
        if let Some((xid, _)) = self
            .prepared
            .iter()
            .find(|(_, writes)| writes.iter().any(|w| w.table() == id))
        {
            return Err(StorageError::TableInUse { id, xid: *xid });
        }
        self.check_writable()?;
        let end = self.append_batch(&[], Record::DropTable { id })?;
        self.forget_table(id);
        Ok(end)
    }

    /// Takes a dropped table out of the tables and the buffer cache. Its file stays until a
    /// checkpoint has written a control file without it: a crash before then redoes from a
    /// checkpoint that still names the table, and its blocks must be there.
    pub(crate) fn forget_table(&mut self, id: TableId) {
        if let Some(table) = self.tables.remove(&id) {
            self.cache.forget(table.file);
        }
    }

    /// Removes the files no table owns: those of dropped tables, once the control file no
    /// longer names them. Best effort: a file left by a failure is removed by a later
    /// checkpoint, and nothing reads it meanwhile.
    fn remove_orphan_files(&self) {
        for kind in [TableKind::Heap, TableKind::AppendOptimized] {
            let dir = TableFile::dir(kind);
            let Ok(names) = self.disk.list(dir) else {
                continue;
            };
            for name in names {
                // A name that is no table id is not ours to remove.
                let Ok(id) = name.parse::<TableId>() else {
                    continue;
                };
                if self.tables.get(&id).is_none_or(|t| t.file.kind != kind) {
                    let path = format!("{dir}/{name}");
                    match self.disk.remove(&path) {
                        Ok(()) => tracing::debug!(path, "file of a dropped table removed"),
                        Err(error) => {
                            tracing::warn!(path, %error, "cannot remove the file of a dropped table")
                        }
                    }
                }
            }
        }
    }

    /// Creates an empty file for a new table. A file left by a table whose CreateTable record
    /// was lost in a crash is emptied: nothing in it was ever committed.
    pub(crate) fn create_table_file(&self, table: &Table) -> Result<(), StorageError> {
        let path = table.file.path();
        if self.disk.exists(&path) {
            self.disk
                .truncate(&path, 0)
                .map_err(|source| StorageError::io("truncate", &path, source))
        } else {
            self.disk
                .create(&path)
                .map_err(|source| StorageError::io("create", &path, source))
        }
    }

    /// Commits `writes` as transaction `xid`; returns the end LSN of its commit record, which
    /// the caller must flush before acknowledging. All writes are validated first; on error
    /// nothing changes. An empty transaction still logs a commit record (cheap, and keeps the
    /// returned LSN's meaning uniform).
    pub fn commit(&mut self, xid: Xid, writes: &[Write]) -> Result<Lsn, StorageError> {
        if self.prepared.contains_key(&xid) {
            return Err(StorageError::AlreadyPrepared(xid));
        }
        self.check_writable()?;
        let records = self.plan(xid, writes)?;
        self.commit_batch(&records, |first_lsn| Record::Commit { xid, first_lsn })
    }

    /// Prepares transaction `xid`: validates `writes` and logs them; applies nothing until
    /// [`Engine::commit_prepared`].
    pub fn prepare(&mut self, xid: Xid, writes: &[Write]) -> Result<Lsn, StorageError> {
        if self.prepared.contains_key(&xid) {
            return Err(StorageError::AlreadyPrepared(xid));
        }
        self.check_writable()?;
        self.plan(xid, writes)?;
        let record = Record::Prepare {
            xid,
            writes: writes.to_vec(),
        };
        let end = self.append_batch(&[], record)?;
        self.prepared.insert(xid, writes.to_vec());
        Ok(end)
    }

    /// Applies a prepared transaction. Its writes are validated again: an append-optimized
    /// key committed by another transaction since PREPARE is refused, and it stays prepared.
    pub fn commit_prepared(&mut self, xid: Xid) -> Result<Lsn, StorageError> {
        let writes = self
            .prepared
            .get(&xid)
            .ok_or(StorageError::UnknownPrepared(xid))?
            .clone();
        self.check_writable()?;
        let records = self.plan(xid, &writes)?;
        let end = self.commit_batch(&records, |first_lsn| Record::CommitPrepared {
            xid,
            first_lsn,
        })?;
        self.prepared.remove(&xid);
        Ok(end)
    }

    pub fn abort_prepared(&mut self, xid: Xid) -> Result<Lsn, StorageError> {
        if !self.prepared.contains_key(&xid) {
            return Err(StorageError::UnknownPrepared(xid));
        }
        self.check_writable()?;
        let end = self.append_batch(&[], Record::AbortPrepared { xid })?;
        self.prepared.remove(&xid);
        Ok(end)
    }

    /// Logs data records and their commit record as one batch, then applies them. The blocks
    /// are read first, so once the batch is in the WAL applying it cannot fail.
    fn commit_batch(
        &mut self,
        records: &[Record],
        commit: impl FnOnce(Lsn) -> Record,
    ) -> Result<Lsn, StorageError> {
        self.load_batch(records)?;
        let end = match self.append_batch(records, commit(self.wal.end_lsn())) {
            Ok(end) => end,
            Err(err) => {
                self.cache.unpin_all();
                return Err(err);
            }
        };
        self.apply_batch(records, end)
            .expect("a planned batch fits the blocks it was planned for");
        self.check_invariants();
        Ok(end)
    }

    /// Appends `records` then `last` contiguously at the WAL end; returns the new end.
    fn append_batch(&mut self, records: &[Record], last: Record) -> Result<Lsn, StorageError> {
        let start = self.wal.end_lsn();
        let mut bytes = Vec::new();
        let mut lsn = start;
        for record in records {
            lsn = encode_frame(lsn, record, &mut bytes);
        }
        encode_frame(lsn, &last, &mut bytes);
        let end = self.wal.append_at(start, &bytes)?;
        self.wal_bytes += bytes.len() as u64;
        self.role = Role::Writer;
        // A writer applies what it logs at once, so everything logged is applied.
        self.applied_lsn = end;
        Ok(end)
    }

    /// Makes every block durable and moves the redo point; returns the new redo LSN.
    ///
    /// Order matters: WAL flushed to its end (so every dirty block may be written), every
    /// dirty block's image made durable in the double-write area, every dirty block written in
    /// place, every table file and directory synced, the area emptied, and only then the control
    /// file replaced. A crash anywhere before the rename leaves the old redo point, from which
    /// redo still finds everything. A mirror (replica) writes no WAL record: its WAL must stay
    /// byte-identical to its primary's.
    pub async fn checkpoint(&mut self) -> Result<Lsn, StorageError> {
        let end = self.wal.end_lsn();
        self.wal.flush_to(end).await?;
        let flushed = self.wal.flushed_lsn();
        self.write_back(self.cache.dirty_images(flushed), true)
            .await?;
        let redo_lsn = self.applied_lsn;
        if self.role == Role::Writer {
            self.append_batch(&[], Record::Checkpoint { redo_lsn })?;
        }
        let control = Control {
            redo_lsn,
            tables: self.tables(),
            checkpoint_blocks: self
                .tables
                .iter()
                .map(|(id, t)| (*id, t.nblocks()))
                .collect(),
            prepared: self.prepared.clone(),
        };
        control.write(&*self.disk).await?;
        self.remove_orphan_files();
        for table in self.tables.values_mut() {
            table.checkpoint_blocks = table.nblocks();
        }
        self.cache.shrink(&*self.disk, self.wal.flushed_lsn())?;
        self.check_invariants();
        tracing::debug!(redo_lsn, "checkpoint complete");
        Ok(redo_lsn)
    }

    /// Writes back the dirty blocks whose changes are in the flushed WAL, as a checkpoint
    /// does, but leaves the redo point where it is: a mirror's way of keeping its cache
    /// bounded. Its dirty blocks reach their places only through the double-write area, which
    /// takes an fsync eviction cannot wait for, and a mirror replays from its last checkpoint
    /// on restart, so a block written back is replayed over, which redo allows (it skips what
    /// a block already holds). Returns how many blocks were written.
    pub async fn write_back_dirty(&mut self) -> Result<usize, StorageError> {
        let flushed = self.wal.flushed_lsn();
        let images = self.cache.dirty_images_upto(flushed);
        if images.is_empty() {
            return Ok(0);
        }
        self.write_back(images, false).await
    }

    /// Writes `images` in place through the double-write area: every image durable in the
    /// area (one append, one fsync for the batch) before any block is overwritten in place,
    /// then every table file and directory synced, then the area emptied. The fault point
    /// `checkpoint-blocks-written` is a checkpoint's alone: mirrors pass their write-backs far
    /// more often, and with those passages counted the armed point fired mostly there, and
    /// `torn-page-unprotected` took 83 seeds (median, standard) to be found instead of 24.
    async fn write_back(
        &mut self,
        images: Vec<Image>,
        checkpoint: bool,
    ) -> Result<usize, StorageError> {
        if self.cache.doublewrite() {
            doublewrite::write_batch(&*self.disk, &images).await?;
        }
        self.cache.write_in_place(&*self.disk, &images)?;
        if checkpoint {
            runtime::fault_point(FaultPoint::CheckpointBlocksWritten).await;
        }
        for table in self.tables.values() {
            let path = table.file.path();
            if let Err(source) = self.disk.sync(&path).await {
                if !self.checkpoint_ignores_fsync_failure {
                    return Err(StorageError::io("sync", &path, source));
                }
                tracing::warn!(path, error = %source, "table fsync failed; checkpoint goes on");
            }
        }
        for kind in [TableKind::Heap, TableKind::AppendOptimized] {
            let dir = TableFile::dir(kind);
            self.disk
                .sync_dir(dir)
                .await
                .map_err(|source| StorageError::io("sync", dir, source))?;
        }
        // Every block is synced at its place: the images are no longer needed.
        doublewrite::clear(&*self.disk).await?;
        self.cache.shrink(&*self.disk, self.wal.flushed_lsn())?;
        Ok(images.len())
    }
}
