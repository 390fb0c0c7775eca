//! The catalog's side of the standby coordinator: the base backup and WAL the walsender ships,
//! the mirroring status, and the catalog changes `init-standby` and `activate-standby` make
//! (rows added, re-roled or removed, each with its history line, under a new epoch).

use std::sync::Arc;

use super::{encode, CatalogStore, CatalogStoreError, CONFIG_TABLE, HISTORY_TABLE};
use crate::coordinator::mirroring::link::{configured_standby, StandbyLink};
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

    /// The configured standby in the newest committed catalog, a change still flushing
    /// included: what the walsender checks a stream against, so that a stream the removal of
    /// its standby missed is refused (see [`CatalogStore::remove_standby`]).
    pub fn latest_standby(&self) -> Option<SegmentConfig> {
        configured_standby(&self.latest.lock().unwrap())
    }

    /// `init-standby -r`: removes the configured standby `dbid`'s row, with one history line,
    /// under a new epoch, as one durable transaction; then updates the in-memory catalog.
    /// Returns the new catalog and the removed row. Refused, changing nothing, when no standby
    /// is configured, when `dbid` is not the configured standby, or once this coordinator is
    /// deposed.
    ///
    /// The removal does not wait for the standby it removes: once it is committed (before it
    /// is flushed) the standby link stops waiting for and counting that standby and ends its
    /// stream, and from then on the newest catalog no longer names it, so a stream it starts
    /// again is refused.
    pub async fn remove_standby(
        &self,
        dbid: Dbid,
    ) -> Result<(Catalog, SegmentConfig), CatalogStoreError> {
        self.refuse_if_deposed()?;
        let mut engine = self.engine.lock().await;
        let mut next = self.latest.lock().unwrap().clone();
        let row = match configured_standby(&next) {
            Some(row) if row.dbid == dbid => row,
            Some(row) => {
                return Err(CatalogStoreError::Refused(format!(
                    "dbid {dbid} is not the configured standby coordinator (that is dbid {} on host {}); nothing was changed",
                    row.dbid, row.hostname
                )))
            }
            None => {
                return Err(CatalogStoreError::Refused(format!(
                    "no standby coordinator is configured (dbid {dbid} is none); nothing was changed"
                )))
            }
        };
        next.segments.remove(&dbid);
        next.epoch += 1;
        next.check()?;
        let desc = format!(
            "initstandby: remove standby coordinator dbid {dbid} on host {} ({})",
            row.hostname,
            row.endpoint()
        );
        let history_key = engine
            .scan(HISTORY_TABLE)?
            .last()
            .map(|(k, _)| k + 1)
            .unwrap_or(0);
        let history = HistoryRow {
            time_ms: runtime::unix_time_ms(),
            dbid,
            desc: desc.clone(),
        };
        let writes = vec![
            Write::Delete {
                table: CONFIG_TABLE,
                key: dbid as i64,
            },
            Write::Put {
                table: HISTORY_TABLE,
                key: history_key,
                value: encode(&history),
            },
        ];
        let link = self.standby.clone();
        let committed = self
            .commit_configuration_then(engine, next, writes, || link.remove(dbid))
            .await?;
        self.committed(committed.epoch, &[(dbid, desc)]);
        Ok((committed, row))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::RealDisk;
    use crate::model::catalog::tests::{standby_row, synced_pair};
    use crate::storage::{Engine, EngineOptions};

    /// A catalog store on a fresh directory: a synced pair, and the standby if `with_standby`.
    async fn open_store(name: &str, with_standby: bool) -> CatalogStore {
        let dir =
            std::env::temp_dir().join(format!("hacluster-catalog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let disk: Arc<dyn crate::io::Disk> = Arc::new(RealDisk::new(&dir).unwrap());
        let engine = Engine::open(disk, EngineOptions::default()).await.unwrap();
        let mut rows: Vec<SegmentConfig> = synced_pair().segments.into_values().collect();
        if with_standby {
            rows.push(standby_row());
        }
        CatalogStore::open(engine, &rows).await.unwrap()
    }

    /// A dropped table's id is never given again, by this store or by one opened later on the
    /// same catalog: a content the drop did not reach keeps storage under that id, and must not
    /// take it for a new table.
    #[tokio::test]
    async fn a_dropped_tables_id_is_never_given_again() {
        use crate::wal::TableKind;
        let dir =
            std::env::temp_dir().join(format!("hacluster-catalog-drop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let open = || async {
            let disk: Arc<dyn crate::io::Disk> = Arc::new(RealDisk::new(&dir).unwrap());
            let engine = Engine::open(disk, EngineOptions::default()).await.unwrap();
            let rows: Vec<SegmentConfig> = synced_pair().segments.into_values().collect();
            CatalogStore::open(engine, &rows).await.unwrap()
        };
        let store = open().await;
        let t = store
            .create_table("t", TableKind::Heap, None)
            .await
            .unwrap();
        let u = store
            .create_table("u", TableKind::Heap, None)
            .await
            .unwrap();
        assert!(u.id > t.id);
        let (dropped, ids) = store.drop_table("u").await.unwrap();
        assert_eq!((dropped.id, ids), (u.id, vec![u.id]));
        assert!(matches!(
            store.drop_table("u").await,
            Err(CatalogStoreError::NoTable(_))
        ));
        let u2 = store
            .create_table("u", TableKind::Heap, None)
            .await
            .unwrap();
        assert!(u2.id > u.id, "{} reuses {}", u2.id, u.id);
        store.drop_table("u").await.unwrap();
        drop(store);
        let store = open().await;
        assert_eq!(store.table("t"), Some(t));
        assert_eq!(store.table("u"), None);
        let v = store
            .create_table("v", TableKind::Heap, None)
            .await
            .unwrap();
        assert!(v.id > u2.id, "{} reuses {} after a restart", v.id, u2.id);
        let (_, ids) = store.drop_table("v").await.unwrap();
        assert_eq!(
            ids,
            vec![u.id, u2.id, v.id],
            "every dropped id, for the contents"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn removing_the_standby_is_one_change_under_a_new_epoch_with_its_history_line() {
        let store = open_store("remove", true).await;
        let before = store.snapshot();
        let history_before = store.history().await.unwrap().len();
        let (catalog, removed) = store.remove_standby(standby_row().dbid).await.unwrap();
        assert_eq!(removed, standby_row());
        assert_eq!(catalog.epoch, before.epoch + 1);
        assert!(!catalog.segments.contains_key(&removed.dbid));
        assert_eq!(
            catalog.segments.len(),
            before.segments.len() - 1,
            "only the standby's row goes"
        );
        assert_eq!(store.snapshot(), catalog, "published");
        assert_eq!(store.latest_standby(), None);
        let history = store.history().await.unwrap();
        assert_eq!(history.len(), history_before + 1);
        let line = history.last().unwrap();
        assert_eq!(line.dbid, removed.dbid);
        assert!(
            line.desc
                .contains("remove standby coordinator dbid 9 on host smdw"),
            "{}",
            line.desc
        );
        let status = store.mirroring_status().await;
        assert_eq!(
            status.summary_state,
            crate::wire::SummaryState::NotConfigured
        );
        assert_eq!(status.standby, None);
        // Once removed, the same dbid is refused: nothing is configured.
        let again = store.remove_standby(removed.dbid).await.unwrap_err();
        assert!(
            again
                .to_string()
                .contains("no standby coordinator is configured"),
            "{again}"
        );
        // The dbid is free for the next standby, which is added as before.
        let next = SegmentConfig {
            dbid: store.next_dbid(),
            ..standby_row()
        };
        let added = store
            .record_rows(&[(next.clone(), "add".into())], false)
            .await
            .unwrap();
        assert_eq!(added.epoch, catalog.epoch + 1);
        assert_eq!(store.latest_standby(), Some(next));
    }

    #[tokio::test]
    async fn removal_is_refused_for_another_dbid_or_when_no_standby_is_configured() {
        let store = open_store("refuse", true).await;
        let before = store.snapshot();
        let history = store.history().await.unwrap();
        // A segment's dbid, and one no row has.
        for dbid in [2, 77] {
            let err = store.remove_standby(dbid).await.unwrap_err();
            assert!(
                err.to_string()
                    .contains("is not the configured standby coordinator (that is dbid 9"),
                "{err}"
            );
        }
        assert_eq!(store.snapshot(), before, "a refusal changes nothing");
        assert_eq!(store.history().await.unwrap(), history);

        let none = open_store("refuse-none", false).await;
        let before = none.snapshot();
        let err = none.remove_standby(9).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("no standby coordinator is configured"),
            "{err}"
        );
        assert_eq!(none.snapshot(), before);
    }
}
