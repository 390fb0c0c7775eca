//! Redo: applying committed WAL to blocks, after a crash (from the checkpoint's redo LSN) and
//! continuously on a mirror (from its replay LSN). Also the mirror's side of WAL shipping.

use crate::wal::reader::{Next, WalReader};

use super::apply::Misfit;
use super::table::Table;
use super::{Engine, Lsn, Record, Role, StorageError, TableDef, Xid};

/// A commit record held back by the planted bug `mirror-replays-out-of-order`: its LSN, the
/// record, its end, and its batch of data records.
type HeldCommit = (Lsn, Record, Lsn, Vec<(Lsn, Record)>);

/// Where a redo pass stopped.
pub(crate) struct Redone {
    /// The end of the last whole record before the stop.
    pub valid_end: Lsn,
    /// The LSN of a whole record that failed its checksum, if that is what stopped it.
    pub bad: Option<Lsn>,
}

impl Engine {
    /// Applies every committed batch in `[applied_lsn, limit)`, advancing `applied_lsn` past
    /// each transaction-level record. Data records wait for their commit record; a batch
    /// without one (torn by a crash, or still arriving) is left alone.
    pub(crate) fn redo(&mut self, limit: Lsn) -> Result<Redone, StorageError> {
        let disk = self.disk.clone();
        let mut reader = WalReader::new(&*disk, self.applied_lsn, limit);
        let mut batch: Vec<(Lsn, Record)> = Vec::new();
        // Planted bug: a replica holds each commit back and applies it after the next one.
        let mut held: Option<HeldCommit> = None;
        loop {
            let (lsn, record, end) = match reader.next_record()? {
                Next::Record { lsn, record, end } => (lsn, record, end),
                Next::Incomplete { lsn } => {
                    return Ok(Redone {
                        valid_end: lsn,
                        bad: None,
                    })
                }
                Next::End => {
                    return Ok(Redone {
                        valid_end: limit,
                        bad: None,
                    })
                }
                Next::Bad { lsn } => {
                    return Ok(Redone {
                        valid_end: lsn,
                        bad: Some(lsn),
                    })
                }
            };
            if record.is_data() {
                batch.push((lsn, record));
                continue;
            }
            let commit = matches!(
                record,
                Record::Commit { .. } | Record::CommitPrepared { .. }
            );
            if self.replica_replays_out_of_order
                && self.role == Role::Replica
                && commit
                && held.is_none()
            {
                held = Some((lsn, record, end, std::mem::take(&mut batch)));
                continue;
            }
            self.redo_record(lsn, record, end, std::mem::take(&mut batch))?;
            self.applied_lsn = end;
            if let Some((lsn, record, end, batch)) = held.take() {
                self.redo_record(lsn, record, end, batch)?;
            }
        }
    }

    fn redo_record(
        &mut self,
        lsn: Lsn,
        record: Record,
        end: Lsn,
        batch: Vec<(Lsn, Record)>,
    ) -> Result<(), StorageError> {
        match record {
            Record::Commit { xid, first_lsn } => self.redo_commit(lsn, xid, first_lsn, end, batch),
            Record::CommitPrepared { xid, first_lsn } => {
                self.redo_commit(lsn, xid, first_lsn, end, batch)?;
                self.prepared.remove(&xid);
                Ok(())
            }
            Record::Prepare { xid, writes } => {
                self.prepared.insert(xid, writes);
                Ok(())
            }
            Record::AbortPrepared { xid } => {
                self.prepared.remove(&xid);
                Ok(())
            }
            Record::CreateTable { def } => self.redo_create_table(lsn, def),
            Record::DropTable { id } => {
                self.forget_table(id);
                Ok(())
            }
            Record::Checkpoint { .. } => Ok(()),
            Record::HeapPut { .. } | Record::HeapDelete { .. } | Record::AoAppend { .. } => {
                unreachable!("data records are batched by the caller")
            }
        }
    }

    /// Applies the batch `[first_lsn, lsn)` ended by the commit record at `lsn`. Earlier
    /// batched records are leftovers of a batch torn by a crash and are dropped.
    fn redo_commit(
        &mut self,
        lsn: Lsn,
        xid: Xid,
        first_lsn: Lsn,
        end: Lsn,
        batch: Vec<(Lsn, Record)>,
    ) -> Result<(), StorageError> {
        let batch: Vec<(Lsn, Record)> = batch
            .into_iter()
            .filter(|(at, _)| *at >= first_lsn)
            .collect();
        let starts_right = match batch.first() {
            Some((at, _)) => *at == first_lsn,
            None => first_lsn == lsn,
        };
        if !starts_right {
            return Err(StorageError::CorruptWal { lsn });
        }
        if let Some((at, _)) = batch.iter().find(|(_, r)| r.xid() != Some(xid)) {
            return Err(StorageError::CorruptWal { lsn: *at });
        }
        let mut records: Vec<Record> = batch.into_iter().map(|(_, r)| r).collect();
        if self.replica_skips_deletes && self.role == Role::Replica {
            records.retain(|r| !matches!(r, Record::HeapDelete { .. }));
        }
        self.load_batch(&records).map_err(|err| match err {
            StorageError::UnknownTable(_) => StorageError::CorruptWal { lsn },
            other => other,
        })?;
        self.apply_batch(&records, end)
            .map_err(|Misfit| StorageError::CorruptWal { lsn })
    }

    fn redo_create_table(&mut self, lsn: Lsn, def: TableDef) -> Result<(), StorageError> {
        match self.tables.get(&def.id) {
            Some(table) if table.def == def => Ok(()),
            Some(_) => Err(StorageError::CorruptWal { lsn }),
            None => {
                let table = Table::empty(def);
                self.create_table_file(&table)?;
                self.tables.insert(table.def.id, table);
                Ok(())
            }
        }
    }

    /// Mirror: writes WAL bytes streamed from the primary at `start`. Re-sent bytes equal to
    /// those already here are skipped (a resend after a lost acknowledgement is harmless);
    /// where they differ the local WAL is cut first. Unsynced: the caller flushes with
    /// `wal().flush_to(end)` and then calls [`Engine::replay`].
    pub fn receive_wal(&mut self, start: Lsn, bytes: &[u8]) -> Result<(), StorageError> {
        if self.role == Role::Writer {
            return Err(StorageError::NotReplica);
        }
        self.wal.receive(start, bytes, self.applied_lsn)?;
        self.role = Role::Replica;
        self.wal_bytes += bytes.len() as u64;
        self.check_invariants();
        Ok(())
    }

    /// Mirror: applies every whole committed transaction in the flushed WAL, in order; returns
    /// the replay LSN. A partial record or a batch without its commit record waits for more.
    pub fn replay(&mut self) -> Result<Lsn, StorageError> {
        let flushed = self.wal.flushed_lsn();
        if self.applied_lsn < flushed {
            let redone = self.redo(flushed)?;
            if let Some(lsn) = redone.bad {
                return Err(StorageError::CorruptWal { lsn });
            }
        }
        self.check_invariants();
        Ok(self.applied_lsn)
    }

    /// The start of the first WAL record not yet applied.
    pub fn replay_lsn(&self) -> Lsn {
        self.applied_lsn
    }

    /// Promotion: applies every whole committed transaction in the local WAL (flushed or not;
    /// the WAL-before-data rule still holds for the blocks), cuts any partial or corrupt tail
    /// after the last whole record, and makes this engine the WAL writer. Returns the new WAL
    /// end; the caller flushes to it before serving writes.
    pub fn end_of_valid_wal(&mut self) -> Result<Lsn, StorageError> {
        let end = self.wal.end_lsn();
        let redone = self.redo(end)?;
        if redone.valid_end < end {
            tracing::info!(
                end = redone.valid_end,
                cut = end - redone.valid_end,
                "cutting partial wal tail at promotion"
            );
            self.wal.truncate(redone.valid_end)?;
        }
        self.role = Role::Writer;
        self.check_invariants();
        Ok(redone.valid_end)
    }

    /// Takes back what [`Engine::end_of_valid_wal`] decided, before this engine added a
    /// record of its own: it may receive another instance's WAL again, as after opening (a
    /// standby whose activation was refused once it had replayed to its end). A cut torn tail
    /// is received again like any WAL the engine lacks.
    pub fn receive_again(&mut self) {
        self.role = Role::Undecided;
        self.check_invariants();
    }

    /// Planted bug `promotion-ends-at-last-commit`: [`Engine::end_of_valid_wal`], then the WAL
    /// is cut after the last record that finishes a transaction (a commit or an abort of a
    /// prepared one), as if whatever follows were an unfinished transaction's records.
    pub fn end_at_last_commit(&mut self) -> Result<Lsn, StorageError> {
        let end = self.end_of_valid_wal()?;
        let disk = self.disk.clone();
        let mut reader = WalReader::new(&*disk, 0, end);
        let mut last = 0;
        while let Next::Record { record, end, .. } = reader.next_record()? {
            if matches!(
                record,
                Record::Commit { .. }
                    | Record::CommitPrepared { .. }
                    | Record::AbortPrepared { .. }
            ) {
                last = end;
            }
        }
        if last < end {
            self.wal.truncate(last)?;
            self.applied_lsn = self.applied_lsn.min(last);
        }
        self.check_invariants();
        Ok(last)
    }

    /// Primary: raw WAL bytes `[from, min(from + max_bytes, flushed))` for a walsender. Only
    /// flushed WAL is shipped, so a mirror never holds records its primary could lose.
    pub fn read_wal(&self, from: Lsn, max_bytes: usize) -> Result<Vec<u8>, StorageError> {
        let flushed = self.wal.flushed_lsn();
        if from > flushed {
            return Err(StorageError::WalBeyondFlush { from, flushed });
        }
        let len = (max_bytes as u64).min(flushed - from) as usize;
        self.wal.read(from, len)
    }
}
