//! The catalog's side of the standby coordinator: the base backup and WAL the walsender ships,
//! the mirroring status, and the catalog changes `init-standby` and `activate-standby` make
//! (rows added or re-roled, each with its history line, under a new epoch).

use std::sync::Arc;

use super::{encode, CatalogStore, CatalogStoreError, CONFIG_TABLE, HISTORY_TABLE};
use crate::coordinator::mirroring::link::StandbyLink;
use crate::io::runtime;
use crate::model::catalog::{Catalog, Dbid, HistoryRow, SegmentConfig};
use crate::storage::base_backup::BaseBackup;
use crate::wal::{Lsn, Wal, Write};
use crate::wire::MirroringStatus;

impl CatalogStore {
    pub fn standby_link(&self) -> &Arc<StandbyLink> {
        &self.standby
    }

    /// The catalog's WAL handle (flushed position, waiting for new WAL).
    pub async fn wal(&self) -> Arc<Wal> {
        self.engine.lock().await.wal()
    }

    /// A consistent copy of the catalog's files at its flushed WAL end.
    pub async fn base_backup(&self) -> Result<BaseBackup, CatalogStoreError> {
        Ok(self.engine.lock().await.base_backup().await?)
    }

    /// Flushed catalog WAL from `from`, at most `max_bytes`.
    pub async fn read_wal(
        &self,
        from: Lsn,
        max_bytes: usize,
    ) -> Result<Vec<u8>, CatalogStoreError> {
        Ok(self.engine.lock().await.read_wal(from, max_bytes)?)
    }

    /// The mirroring view: the standby's catalog row and its replication state.
    pub async fn mirroring_status(&self) -> MirroringStatus {
        let ours = self.wal().await.flushed_lsn();
        self.standby.tracker().status(&self.snapshot(), ours)
    }

    /// Writes `rows` (added or replaced whole, by dbid) with one history line each, under a new
    /// epoch, as one durable transaction; then updates the in-memory catalog. Nothing changes
    /// if the result would break the catalog's invariants. `new_generation`: the epoch is the
    /// first of the next coordinator generation (activation; see [`crate::model::catalog::epoch`]).
    pub async fn record_rows(
        &self,
        rows: &[(SegmentConfig, String)],
        new_generation: bool,
    ) -> Result<Catalog, CatalogStoreError> {
        let mut engine = self.engine.lock().await;
        // The newest committed catalog, not the published one: a change still flushing (a
        // prober's decision) would otherwise be built over, its epoch reused and its rows lost.
        let mut next = self.latest.lock().unwrap().clone();
        for (row, _) in rows {
            next.segments.insert(row.dbid, row.clone());
        }
        next.epoch = if new_generation {
            crate::model::catalog::epoch::first_of_next_generation(next.epoch)
        } else {
            next.epoch + 1
        };
        next.check()?;
        let now = runtime::unix_time_ms();
        let history_base = engine
            .scan(HISTORY_TABLE)?
            .last()
            .map(|(k, _)| k + 1)
            .unwrap_or(0);
        let mut writes = Vec::new();
        for (i, (row, desc)) in rows.iter().enumerate() {
            writes.push(Write::Put {
                table: CONFIG_TABLE,
                key: row.dbid as i64,
                value: encode(row),
            });
            let history = HistoryRow {
                time_ms: now,
                dbid: row.dbid,
                desc: desc.clone(),
            };
            writes.push(Write::Put {
                table: HISTORY_TABLE,
                key: history_base + i as i64,
                value: encode(&history),
            });
        }
        let committed = self.commit_configuration(engine, next, writes).await?;
        let history: Vec<_> = rows.iter().map(|(r, d)| (r.dbid, d.clone())).collect();
        self.committed(committed.epoch, &history);
        Ok(committed)
    }

    /// The next free dbid.
    pub fn next_dbid(&self) -> Dbid {
        self.snapshot()
            .segments
            .keys()
            .next_back()
            .map(|d| d + 1)
            .unwrap_or(1)
    }
}
