//! A client session on a primary: one open transaction per connection. Writes are buffered in
//! the transaction and reach the WAL only at commit, in one batch ending in the commit record,
//! so a crash can never leave half a transaction behind.

use std::collections::BTreeMap;

use tracing::debug;

use super::Instance;
use crate::model::catalog::{Dbid, Role};
use crate::storage::StorageError;
use crate::wal::{Key, TableDef, TableId, TableKind, Value, Write, Xid};
use crate::wire::{DbError, Op, OpResult, SegmentRequest, SegmentResponse};

#[derive(Default)]
pub(super) struct Session {
    txn: Option<Txn>,
}

struct Txn {
    xid: Xid,
    /// Buffered writes: `Some(value)` put, `None` deleted.
    writes: BTreeMap<(TableId, Key), Option<Value>>,
}

fn failed(msg: impl Into<String>) -> SegmentResponse {
    SegmentResponse::Error(DbError::Failed(msg.into()))
}

impl Session {
    /// Handles one request; `None` means the instance failed itself and the connection must drop.
    pub(super) async fn handle(
        &mut self,
        inst: &Instance,
        req: SegmentRequest,
        peer: &super::peer::Peer,
    ) -> Option<SegmentResponse> {
        if inst.role() != Role::Primary {
            self.txn = None;
            return Some(failed(format!(
                "dbid {} is a mirror; it serves no queries",
                inst.dbid()
            )));
        }
        match req {
            SegmentRequest::Begin { xid, epoch } => {
                if let Err(refusal) = inst.fence(epoch, peer).await {
                    return Some(refusal);
                }
                self.txn = Some(Txn {
                    xid,
                    writes: BTreeMap::new(),
                });
                Some(SegmentResponse::Ok)
            }
            SegmentRequest::Exec { op } => {
                let Some(txn) = self.txn.as_mut() else {
                    return Some(failed("no transaction is open"));
                };
                match txn.exec(inst, op).await {
                    Ok(result) => Some(SegmentResponse::Result(result)),
                    Err(Fault::Refused(msg)) => Some(failed(msg)),
                    Err(Fault::Storage(e)) => {
                        inst.storage_fault(&e);
                        None
                    }
                }
            }
            SegmentRequest::Commit => {
                let Some(txn) = self.txn.take() else {
                    return Some(failed("no transaction is open"));
                };
                txn.commit(inst).await
            }
            SegmentRequest::Abort => {
                self.txn = None;
                Some(SegmentResponse::Ok)
            }
            SegmentRequest::Prepare => {
                let Some(txn) = self.txn.take() else {
                    return Some(failed("no transaction is open"));
                };
                txn.prepare(inst).await
            }
            SegmentRequest::CommitPrepared { xid, epoch } => match inst.fence(epoch, peer).await {
                Ok(()) => finish_prepared(inst, xid, true).await,
                Err(refusal) => Some(refusal),
            },
            SegmentRequest::AbortPrepared { xid, epoch } => match inst.fence(epoch, peer).await {
                Ok(()) => finish_prepared(inst, xid, false).await,
                Err(refusal) => Some(refusal),
            },
            SegmentRequest::ListPrepared { epoch } => match inst.fence(epoch, peer).await {
                Ok(()) => Some(SegmentResponse::PreparedList(
                    inst.inner.engine.lock().await.prepared(),
                )),
                Err(refusal) => Some(refusal),
            },
            SegmentRequest::CreateTable { def } => create_table(inst, def).await,
            SegmentRequest::DropTables { ids } => drop_tables(inst, &ids).await,
            other => Some(failed(format!("unexpected request {other:?}"))),
        }
    }
}

enum Fault {
    Refused(String),
    Storage(StorageError),
}

impl From<StorageError> for Fault {
    fn from(e: StorageError) -> Fault {
        match e {
            // The world's faults, never served around: the instance fails itself. A failed
            // fsync is one too, however it is reported (PostgreSQL PANICs on it).
            StorageError::Io { .. }
            | StorageError::Corrupt { .. }
            | StorageError::CorruptWal { .. }
            | StorageError::CorruptWalMiddle { .. }
            | StorageError::WalFailed { .. } => Fault::Storage(e),
            other => Fault::Refused(other.to_string()),
        }
    }
}

impl Txn {
    async fn exec(&mut self, inst: &Instance, op: Op) -> Result<OpResult, Fault> {
        let mut engine = inst.inner.engine.lock().await;
        let def = engine
            .tables()
            .into_iter()
            .find(|t| t.name == op.table())
            .ok_or_else(|| Fault::Refused(format!("relation \"{}\" does not exist", op.table())))?;
        if def.kind == TableKind::AppendOptimized
            && matches!(op, Op::Update { .. } | Op::Delete { .. })
        {
            // Refused at the statement, not at commit: the client learns at once.
            return Err(Fault::Refused(format!(
                "append-optimized table \"{}\" does not support update or delete",
                def.name
            )));
        }
        let table = def.id;
        let current = |engine: &mut crate::storage::Engine,
                       writes: &BTreeMap<(TableId, Key), Option<Value>>,
                       key: Key|
         -> Result<Option<Value>, Fault> {
            match writes.get(&(table, key)) {
                Some(buffered) => Ok(buffered.clone()),
                None => Ok(engine.get(table, key)?),
            }
        };
        match op {
            Op::Insert { key, value, .. } => {
                if current(&mut engine, &self.writes, key)?.is_some() {
                    return Err(Fault::Refused(format!("duplicate key value violates unique constraint: key {key} already exists in \"{}\"", op_table_name(&engine, table))));
                }
                self.writes.insert((table, key), Some(value));
                Ok(OpResult::Done)
            }
            Op::Update { key, value, .. } => {
                if current(&mut engine, &self.writes, key)?.is_none() {
                    return Ok(OpResult::Count(0));
                }
                self.writes.insert((table, key), Some(value));
                Ok(OpResult::Count(1))
            }
            Op::Delete { key, .. } => {
                if current(&mut engine, &self.writes, key)?.is_none() {
                    return Ok(OpResult::Count(0));
                }
                self.writes.insert((table, key), None);
                Ok(OpResult::Count(1))
            }
            Op::Get { key, .. } => Ok(OpResult::Row(current(&mut engine, &self.writes, key)?)),
            Op::Scan { .. } => {
                let mut rows: BTreeMap<Key, Value> = engine.scan(table)?.into_iter().collect();
                for ((t, key), value) in &self.writes {
                    if *t != table {
                        continue;
                    }
                    match value {
                        Some(v) => rows.insert(*key, v.clone()),
                        None => rows.remove(key),
                    };
                }
                Ok(OpResult::Rows(rows.into_iter().collect()))
            }
        }
    }

    fn into_writes(self) -> (Xid, Vec<Write>) {
        let writes = self
            .writes
            .into_iter()
            .map(|((table, key), value)| match value {
                Some(value) => Write::Put { table, key, value },
                None => Write::Delete { table, key },
            })
            .collect();
        (self.xid, writes)
    }

    /// First phase: the writes become a prepared transaction, durable (and on the mirror, in
    /// synchronous mode) before the coordinator hears "prepared".
    async fn prepare(self, inst: &Instance) -> Option<SegmentResponse> {
        let (xid, writes) = self.into_writes();
        let result = inst.inner.engine.lock().await.prepare(xid, &writes);
        match result {
            Ok(lsn) => acknowledge_after_durable(inst, lsn)
                .await
                .map(done_if_durable),
            Err(e) => refuse_or_fail(inst, e),
        }
    }

    async fn commit(self, inst: &Instance) -> Option<SegmentResponse> {
        let xid = self.xid;
        let (_, writes) = self.into_writes();
        if writes.is_empty() {
            return Some(SegmentResponse::Committed {
                lsn: inst.inner.wal.flushed_lsn(),
            });
        }
        let lsn = match inst.inner.engine.lock().await.commit(xid, &writes) {
            Ok(lsn) => lsn,
            Err(e) => return refuse_or_fail(inst, e),
        };
        acknowledge_after_durable(inst, lsn).await
    }
}

/// The second phase. A transaction no longer prepared here was already finished (the request
/// is a retry), so the answer is "done" either way, once that finish is as durable as a fresh
/// one: the coordinator decides, this only carries the decision out.
async fn finish_prepared(inst: &Instance, xid: Xid, commit: bool) -> Option<SegmentResponse> {
    let result = {
        let mut engine = inst.inner.engine.lock().await;
        if commit {
            engine.commit_prepared(xid)
        } else {
            engine.abort_prepared(xid)
        }
    };
    match result {
        Ok(lsn) => acknowledge_after_durable(inst, lsn)
            .await
            .map(done_if_durable),
        // Already finished here. "Done" must mean what it means for a fresh request: whatever
        // finished it is durable here and, in synchronous mode, on the mirror — an instance that
        // restarted after logging the commit may not have shipped it yet, and a failover to
        // that mirror would bring the transaction back as merely prepared.
        Err(StorageError::UnknownPrepared(_)) => {
            let end = inst.inner.wal.end_lsn();
            acknowledge_after_durable(inst, end)
                .await
                .map(done_if_durable)
        }
        Err(e) => refuse_or_fail(inst, e),
    }
}

fn refuse_or_fail(inst: &Instance, e: StorageError) -> Option<SegmentResponse> {
    match Fault::from(e) {
        Fault::Refused(msg) => Some(failed(msg)),
        Fault::Storage(e) => {
            inst.storage_fault(&e);
            None
        }
    }
}

fn op_table_name(engine: &crate::storage::Engine, table: TableId) -> String {
    engine
        .tables()
        .into_iter()
        .find(|t| t.id == table)
        .map(|t| t.name)
        .unwrap_or_default()
}

/// The durability order of every acknowledgement: the WAL up to `lsn` is flushed locally, then
/// (synchronous mode, while the mirror is not marked down) flushed by the mirror. Only then is
/// the commit acknowledged; acknowledging earlier would let a failover to the mirror lose it.
async fn acknowledge_after_durable(
    inst: &Instance,
    lsn: crate::wal::Lsn,
) -> Option<SegmentResponse> {
    if let Err(e) = inst.inner.wal.flush_to(lsn).await {
        inst.storage_fault(&e);
        return None;
    }
    if !inst.inner.cfg.bugs.ack_before_mirror_flush {
        inst.wait_for_mirror(lsn).await;
    }
    if let Some(refusal) = not_acknowledged(inst.failure(), inst.role(), inst.dbid()) {
        return Some(refusal);
    }
    debug!(lsn, "commit acknowledged");
    inst.inner
        .cfg
        .observe
        .report(crate::model::observe::Fact::Acknowledged {
            content: inst.inner.cfg.content,
            dbid: inst.dbid(),
            epoch: inst.epoch(),
            lsn,
        });
    Some(SegmentResponse::Committed { lsn })
}

/// Why a commit whose record is flushed locally, and which waited for its mirror, is not
/// acknowledged; `None` if it is. Either way its outcome is unknown, never "failed": the record
/// is durable here and may be on the mirror.
///
/// - The instance failed itself meanwhile (`failure`: a failed fsync, a full disk, a corrupt
///   block), maybe on another session's write: like PostgreSQL after a PANIC it acknowledges
///   nothing more, and its client sees the connection go.
/// - It was demoted meanwhile (recoverseg -r): the mirror this waited for was promoted, and may
///   or may not hold the commit record.
fn not_acknowledged(failure: Option<String>, role: Role, dbid: Dbid) -> Option<SegmentResponse> {
    let why = match (failure, role) {
        (Some(reason), _) => format!("dbid {dbid} failed while committing: {reason}"),
        (None, Role::Mirror) => format!("dbid {dbid} stopped acting as primary while committing"),
        (None, Role::Primary) => return None,
    };
    Some(SegmentResponse::Error(crate::wire::DbError::Unknown(why)))
}

/// The answer to a request whose success is "done", not a commit position: done once durable;
/// an instance demoted while waiting keeps its error, since it cannot say the change survives.
fn done_if_durable(ack: SegmentResponse) -> SegmentResponse {
    match ack {
        SegmentResponse::Committed { .. } => SegmentResponse::Ok,
        other => other,
    }
}

async fn create_table(inst: &Instance, def: TableDef) -> Option<SegmentResponse> {
    let lsn = {
        let mut engine = inst.inner.engine.lock().await;
        // The catalog gives a name to a new table only once the one that had it was dropped
        // (and table ids only grow): a table here with the name and an older id is one whose
        // drop did not reach this content, and it goes now, before statements find the name.
        let stale: Vec<TableId> = engine
            .tables()
            .into_iter()
            .filter(|t| t.name == def.name && t.id < def.id)
            .map(|t| t.id)
            .collect();
        let mut lsn = 0;
        for id in stale {
            match engine.drop_table(id) {
                Ok(end) => lsn = end,
                Err(e) => return refuse_or_fail(inst, e),
            }
        }
        match engine.create_table(def) {
            Ok(end) => lsn.max(end),
            Err(e) => return refuse_or_fail(inst, e),
        }
    };
    acknowledge_after_durable(inst, lsn)
        .await
        .map(done_if_durable)
}

async fn drop_tables(inst: &Instance, ids: &[crate::wal::TableId]) -> Option<SegmentResponse> {
    let mut lsn = 0;
    {
        let mut engine = inst.inner.engine.lock().await;
        for id in ids {
            match engine.drop_table(*id) {
                Ok(end) => lsn = lsn.max(end),
                Err(e) => return refuse_or_fail(inst, e),
            }
        }
    }
    acknowledge_after_durable(inst, lsn)
        .await
        .map(done_if_durable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::DbError;

    /// A prepare or COMMIT PREPARED that waited for the mirror answers "done" only if the
    /// change is durable where it must be; an instance demoted while it waited keeps its error
    /// (a deposed primary once answered "done" for a commit its promoted mirror never had, and
    /// the coordinator forgot the distributed commit with the content only prepared).
    /// Standard seeds 229 and 329 (and slow-disk seed 9): an instance failed itself on a full disk (another
    /// session's WAL append) while a commit whose record it had flushed waited for the mirror.
    /// That commit was answered "failed", yet its record was on the mirror, which was promoted:
    /// a "failed" insert's row was present (229), a "failed" delete's row was gone (329). Its
    /// outcome is unknown.
    #[test]
    fn a_commit_flushed_before_the_instance_failed_has_an_unknown_outcome() {
        let failure = "storage fault: append of pg_wal/wal failed: no space left on device";
        let answer = not_acknowledged(Some(failure.into()), Role::Primary, 14);
        assert!(
            matches!(&answer, Some(SegmentResponse::Error(DbError::Unknown(m))) if m.contains(failure)),
            "{answer:?}"
        );
        assert!(matches!(
            not_acknowledged(None, Role::Mirror, 14),
            Some(SegmentResponse::Error(DbError::Unknown(_)))
        ));
        assert!(not_acknowledged(None, Role::Primary, 14).is_none());
    }

    #[test]
    fn only_a_durable_acknowledgement_becomes_done() {
        assert!(matches!(
            done_if_durable(SegmentResponse::Committed { lsn: 7 }),
            SegmentResponse::Ok
        ));
        let why = "dbid 8 stopped acting as primary while committing";
        let demoted = SegmentResponse::Error(DbError::Unknown(why.into()));
        assert!(matches!(
            done_if_durable(demoted),
            SegmentResponse::Error(DbError::Unknown(m)) if m == why
        ));
    }
}
