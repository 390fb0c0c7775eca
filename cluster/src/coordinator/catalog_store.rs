//! The coordinator's catalog, kept durable in the coordinator's own storage engine: segment
//! configuration rows, the epoch, user table definitions and the configuration history. A
//! change is one committed, flushed transaction before anyone acts on it (the prober records a
//! role flip before it sends PROMOTE).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{de::DeserializeOwned, Serialize};

use crate::io::runtime;
use crate::model::bugs::PlantedBugs;
use crate::model::catalog::{
    Catalog, CatalogError, Content, Dbid, HistoryRow, Pair, RowChange, SegmentConfig,
};
use crate::storage::{Engine, StorageError};
use crate::wal::{TableDef, TableId, TableKind, Write};

mod standby;

const CONFIG_TABLE: TableId = 1;
const HISTORY_TABLE: TableId = 2;
const META_TABLE: TableId = 3;
const TABLES_TABLE: TableId = 4;
/// User tables get ids from here on.
/// Distributed-commit records: gxid → the contents that wrote.
const DTX_TABLE: TableId = 5;
/// Dropped user tables, by id: their ids are never given again, and the contents are told to
/// drop their storage with every later drop (one that did not reach a content is finished).
const DROPPED_TABLE: TableId = 6;
const FIRST_USER_TABLE: TableId = 100;
const EPOCH_KEY: i64 = 0;
/// Set once this coordinator learns an activated standby replaced it: why, for people.
const DEPOSED_KEY: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CatalogStoreError {
    #[error("catalog storage: {0}")]
    Storage(#[from] StorageError),
    #[error("catalog row does not decode: {0}")]
    Decode(String),
    #[error(transparent)]
    Invalid(#[from] CatalogError),
    #[error("{0}")]
    Refused(String),
    #[error("table \"{0}\" already exists")]
    TableExists(String),
    #[error("relation \"{0}\" does not exist")]
    NoTable(String),
}

/// Shared handle to the durable catalog and its in-memory copy.
#[derive(Clone)]
pub struct CatalogStore {
    engine: Arc<tokio::sync::Mutex<Engine>>,
    current: Arc<Mutex<Catalog>>,
    /// The epoch of `current`, set each time it moves forward: what a call to an acting primary
    /// waits on to learn that the prober replaced it, without a copy of the catalog per call.
    published: Arc<crate::io::sync::Watch<u64>>,
    /// The newest catalog committed to the engine, durable or still flushing: what the next
    /// change starts from. Set under the engine lock. A change that started from `current`
    /// while an earlier one was flushing would reuse its epoch and, once published, undo it.
    latest: Arc<Mutex<Catalog>>,
    tables: Arc<Mutex<BTreeMap<String, TableDef>>>,
    /// The ids of dropped tables (see [`DROPPED_TABLE`]).
    dropped: Arc<Mutex<std::collections::BTreeSet<TableId>>>,
    /// Unmirrored contents whose primary the prober cannot reach (not catalog state: the
    /// catalog never marks an acting primary down).
    unmirrored_lost: Arc<Mutex<std::collections::BTreeSet<Content>>>,
    /// Instances `recoverseg` is recovering now: the prober records none of them in sync until
    /// the recovery has recorded its own change (see [`CatalogStore::begin_recovery`]).
    recovering: Arc<Mutex<std::collections::BTreeSet<Dbid>>>,
    /// Per content, how often recoverseg began or ended recovering one of its instances.
    recoveries: Arc<Mutex<BTreeMap<Content, u64>>>,
    /// The standby coordinator's replication state; changes wait for its flush while it is
    /// synchronized.
    standby: Arc<crate::coordinator::mirroring::link::StandbyLink>,
    /// Why this coordinator no longer serves, once an activated standby deposed it.
    deposed: Arc<crate::io::sync::Watch<Option<String>>>,
    /// Where the changes it commits are reported (the simulator's checkers; off in production).
    observe: crate::model::observe::Observe,
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("catalog rows always encode")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CatalogStoreError> {
    postcard::from_bytes(bytes).map_err(|e| CatalogStoreError::Decode(e.to_string()))
}

impl CatalogStore {
    /// This store, reporting to `observe` the catalog positions it acts on once its
    /// synchronized standby flushed them. Called before the store is shared.
    pub fn observed(mut self, observe: crate::model::observe::Observe) -> CatalogStore {
        self.standby = Arc::new(crate::coordinator::mirroring::link::StandbyLink::observed(
            observe.clone(),
        ));
        self.observe = observe;
        self
    }

    /// Reports a fact to whoever observes this coordinator (the simulator's checkers).
    pub(crate) fn report(&self, fact: crate::model::observe::Fact) {
        self.observe.report(fact);
    }

    /// Reports a committed configuration change of one row (see
    /// [`crate::model::observe::Fact::CatalogChanged`]).
    pub(crate) fn report_change(
        &self,
        epoch: u64,
        dbid: crate::model::catalog::Dbid,
        desc: String,
        fts: Option<crate::model::observe::FtsChange>,
    ) {
        self.observe
            .report(crate::model::observe::Fact::CatalogChanged {
                epoch,
                dbid,
                desc,
                fts,
            });
    }

    /// Reports the catalog this coordinator starts on, as recovered from its disk (see
    /// [`crate::model::observe::Fact::CatalogRecovered`]).
    pub(crate) fn report_recovered(&self) {
        let catalog = self.snapshot();
        let rows = catalog
            .segments
            .values()
            .map(|row| {
                let fts = crate::model::observe::FtsChange {
                    content: row.content,
                    role: row.role,
                    status: row.status,
                    mode: row.mode,
                };
                (row.dbid, fts)
            })
            .collect();
        self.observe
            .report(crate::model::observe::Fact::CatalogRecovered {
                epoch: catalog.epoch,
                rows,
            });
    }

    /// Logs the history lines of a committed administration change, with its epoch, and
    /// reports them: the account of every configuration change an administrator's utility made
    /// (the prober logs and reports its own).
    pub(crate) fn committed(&self, epoch: u64, history: &[(crate::model::catalog::Dbid, String)]) {
        for (dbid, desc) in history {
            tracing::info!(target: "cluster::configuration", dbid = *dbid, epoch, "{desc}");
            self.report_change(epoch, *dbid, desc.clone(), None);
        }
    }

    /// Loads the catalog, or initializes it from `initial` on a fresh coordinator.
    pub async fn open(
        mut engine: Engine,
        initial: &[SegmentConfig],
    ) -> Result<CatalogStore, CatalogStoreError> {
        let system = [
            (CONFIG_TABLE, "gp_segment_configuration", TableKind::Heap),
            (
                HISTORY_TABLE,
                "gp_configuration_history",
                TableKind::AppendOptimized,
            ),
            (META_TABLE, "gp_catalog_meta", TableKind::Heap),
            (TABLES_TABLE, "pg_class", TableKind::Heap),
            (DTX_TABLE, "gp_distributed_log", TableKind::Heap),
        ];
        let fresh = engine.tables().is_empty();
        // Every system table where it is missing: all of them in a fresh catalog, and in one
        // made before a system table existed, that one, empty.
        let mut lsn = 0;
        for (id, name, kind) in system {
            if !engine.tables().iter().any(|t| t.id == id) {
                lsn = engine.create_table(TableDef {
                    id,
                    name: name.to_string(),
                    kind,
                    schema: None,
                })?;
            }
        }
        let wal = engine.wal();
        if !fresh && lsn > 0 {
            wal.flush_to(lsn).await?;
        }
        if fresh {
            let mut writes: Vec<Write> = initial
                .iter()
                .map(|s| Write::Put {
                    table: CONFIG_TABLE,
                    key: s.dbid as i64,
                    value: encode(s),
                })
                .collect();
            writes.push(Write::Put {
                table: META_TABLE,
                key: EPOCH_KEY,
                value: encode(&1u64),
            });
            lsn = lsn.max(engine.commit(1, &writes)?);
            wal.flush_to(lsn).await?;
        }
        let mut catalog = Catalog::new(Vec::new());
        for (_, value) in engine.scan(CONFIG_TABLE)? {
            let row: SegmentConfig = decode(&value)?;
            catalog.segments.insert(row.dbid, row);
        }
        catalog.epoch = match engine.get(META_TABLE, EPOCH_KEY)? {
            Some(v) => decode(&v)?,
            None => 1,
        };
        let mut tables = BTreeMap::new();
        for (_, value) in engine.scan(TABLES_TABLE)? {
            let def: TableDef = decode(&value)?;
            tables.insert(def.name.clone(), def);
        }
        // Made by the first DROP TABLE (a catalog that never dropped one has none).
        let mut dropped = std::collections::BTreeSet::new();
        if engine.tables().iter().any(|t| t.id == DROPPED_TABLE) {
            for (key, _) in engine.scan(DROPPED_TABLE)? {
                dropped.insert(key as TableId);
            }
        }
        let deposed = match engine.get(META_TABLE, DEPOSED_KEY)? {
            Some(v) => Some(decode::<String>(&v)?),
            None => None,
        };
        Ok(CatalogStore {
            engine: Arc::new(tokio::sync::Mutex::new(engine)),
            latest: Arc::new(Mutex::new(catalog.clone())),
            published: Arc::new(crate::io::sync::Watch::new(catalog.epoch)),
            current: Arc::new(Mutex::new(catalog)),
            tables: Arc::new(Mutex::new(tables)),
            dropped: Arc::new(Mutex::new(dropped)),
            unmirrored_lost: Default::default(),
            recovering: Default::default(),
            recoveries: Default::default(),
            standby: Default::default(),
            deposed: Arc::new(crate::io::sync::Watch::new(deposed)),
            observe: Default::default(),
        })
    }

    /// Why this coordinator no longer serves, if an activated standby deposed it.
    pub fn deposed(&self) -> Option<String> {
        self.deposed.get()
    }

    /// Waits until this coordinator is deposed; returns why.
    pub async fn wait_deposed(&self) -> String {
        self.deposed
            .wait_until(|d| d.is_some())
            .await
            .expect("waited for a reason")
    }

    /// Records that a coordinator of a later generation than this one's acts for the cluster
    /// (an instance follows epoch `newer`, or the activated standby answered with it): from
    /// now on this coordinator serves nothing, and says why, even after a restart. Does
    /// nothing for an epoch of this coordinator's own generation. Returns whether it is
    /// deposed.
    pub async fn depose(&self, newer: u64, seen_at: &str) -> bool {
        use crate::model::catalog::epoch::{describe, generation};
        if self.deposed().is_some() {
            return true;
        }
        let ours = self.latest.lock().unwrap().epoch;
        if generation(newer) <= generation(ours) {
            return false;
        }
        let reason = format!(
            "this coordinator (configuration epoch {}) was deposed: {seen_at} follows epoch {} \
             of coordinator generation {}, set by an activated standby. It serves nothing more; \
             the activated standby is the coordinator. To bring this host back, make it a \
             standby of the acting coordinator (init-standby -s HOST)",
            describe(ours),
            describe(newer),
            generation(newer)
        );
        let mut engine = self.engine.lock().await;
        let written = engine.commit(
            ours,
            &[Write::Put {
                table: META_TABLE,
                key: DEPOSED_KEY,
                value: encode(&reason),
            }],
        );
        match written {
            Ok(lsn) => {
                let wal = engine.wal();
                drop(engine);
                if let Err(e) = wal.flush_to(lsn).await {
                    tracing::warn!(error = %e, "could not make the deposition durable");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not record the deposition"),
        }
        tracing::error!("{reason}");
        self.deposed.set(Some(reason));
        true
    }

    fn refuse_if_deposed(&self) -> Result<(), CatalogStoreError> {
        match self.deposed() {
            Some(_) => Err(CatalogStoreError::Refused(
                "this coordinator was deposed: it changes the configuration no more".into(),
            )),
            None => Ok(()),
        }
    }

    /// Records whether an unmirrored content's primary is lost; returns whether that changed.
    pub fn set_unmirrored_lost(&self, content: Content, lost: bool) -> bool {
        let mut set = self.unmirrored_lost.lock().unwrap();
        if lost {
            set.insert(content)
        } else {
            set.remove(&content)
        }
    }

    /// The first unmirrored content whose primary is lost, if any: while there is one, the
    /// system is not operational.
    pub fn unmirrored_lost(&self) -> Option<Content> {
        self.unmirrored_lost.lock().unwrap().iter().next().copied()
    }

    pub fn snapshot(&self) -> Catalog {
        self.current.lock().unwrap().clone()
    }

    /// Reads the current catalog in place: every statement asks for the epoch or a route, and
    /// a copy of the whole configuration each time grows with the cluster.
    pub fn read<R>(&self, f: impl FnOnce(&Catalog) -> R) -> R {
        f(&self.current.lock().unwrap())
    }

    /// Reads the newest committed catalog, a change still flushing included: what a recovery
    /// that begins now must take as already decided (a prober's decision committed just before
    /// it, and published only once flushed, counts).
    pub fn read_latest<R>(&self, f: impl FnOnce(&Catalog) -> R) -> R {
        f(&self.latest.lock().unwrap())
    }

    /// The current configuration epoch.
    pub fn epoch(&self) -> u64 {
        self.read(|c| c.epoch)
    }

    /// Waits until the published catalog stops naming the instance at `endpoint` as `content`'s
    /// acting primary (another instance acts for the content, or this one is marked down);
    /// returns at once if it already does not.
    pub async fn replaced(&self, content: Content, endpoint: &str) {
        self.published
            .wait_until(|_| !self.read(|c| c.is_acting_primary(content, endpoint)))
            .await;
    }

    pub fn table(&self, name: &str) -> Option<TableDef> {
        self.tables.lock().unwrap().get(name).cloned()
    }

    /// Records `changes` and their history rows as one durable transaction, then updates the
    /// in-memory catalog (bumping the epoch). Nothing changes if the result would break the
    /// prober's invariants.
    pub async fn record(&self, changes: &[RowChange]) -> Result<Catalog, CatalogStoreError> {
        self.record_with(changes, PlantedBugs::none()).await
    }

    /// [`CatalogStore::record`], with planted bugs.
    pub async fn record_with(
        &self,
        changes: &[RowChange],
        bugs: PlantedBugs,
    ) -> Result<Catalog, CatalogStoreError> {
        self.record_checked(None, changes, bugs).await
    }

    /// Records a decision taken on `pair`, only if the catalog still has the pair as it was:
    /// a decision on rows that changed since (an administrator's recovery, say) is stale, and
    /// the next probe decides afresh.
    /// `recoverseg` begins recovering `dbid`: until [`CatalogStore::end_recovery`], a
    /// decision of the prober that records it in sync is refused (it may still be marked down,
    /// so that its primary stops waiting for it). A full copy wipes the
    /// instance's WAL; a probe answered just before, saying the mirror was back and caught up,
    /// would otherwise record the pair in sync while the mirror holds nothing (standard seed
    /// 13 of its sweep, with durable-claims judging each pair the catalog records in sync).
    ///
    /// Beginning and ending a recovery also count in [`CatalogStore::recoveries`]: a decision
    /// the prober took on a probe round begun before either is refused, since the instance
    /// may have been wiped or stopped since its primary answered (standard seed 311: a full
    /// copy killed midway, and a decision on a probe answered before it recorded the empty
    /// mirror in sync once the recovery had ended).
    ///
    /// Counted under the catalog's lock, so a decision being recorded is either done before
    /// (and seen by the recovery's own look at the catalog) or refused.
    pub async fn begin_recovery(&self, dbid: Dbid, content: Content) {
        let _serialized = self.engine.lock().await;
        self.recovering.lock().unwrap().insert(dbid);
        *self.recoveries.lock().unwrap().entry(content).or_default() += 1;
    }

    /// The recovery of `dbid` is over (recorded or failed).
    pub async fn end_recovery(&self, dbid: Dbid, content: Content) {
        let _serialized = self.engine.lock().await;
        self.recovering.lock().unwrap().remove(&dbid);
        *self.recoveries.lock().unwrap().entry(content).or_default() += 1;
    }

    /// How often a recovery of one of `content`'s instances began or ended.
    pub fn recoveries(&self, content: Content) -> u64 {
        self.recoveries
            .lock()
            .unwrap()
            .get(&content)
            .copied()
            .unwrap_or(0)
    }

    /// Records the prober's decision on `pair`, taken on a probe round that began when
    /// `recoveries` recoveries of the content had begun or ended.
    pub async fn record_decision(
        &self,
        pair: &Pair,
        changes: &[RowChange],
        recoveries: u64,
        bugs: PlantedBugs,
    ) -> Result<Catalog, CatalogStoreError> {
        self.record_checked(Some((pair, recoveries)), changes, bugs)
            .await
    }

    async fn record_checked(
        &self,
        decided_on: Option<(&Pair, u64)>,
        changes: &[RowChange],
        bugs: PlantedBugs,
    ) -> Result<Catalog, CatalogStoreError> {
        let mut engine = self.engine.lock().await;
        let mut next = self.latest.lock().unwrap().clone();
        if let Some((pair, recoveries)) = decided_on {
            let recovering = self.recovering.lock().unwrap().clone();
            let now = self.recoveries(pair.content);
            crate::protocol::fts::recordable(changes, recoveries, now, &recovering).map_err(
                |why| CatalogStoreError::Refused(format!("content {}: {why}", pair.content)),
            )?;
        }
        let decided_on = decided_on.map(|(pair, _)| pair);
        if let Some(pair) = decided_on {
            if next.pair(pair.content).as_ref() != Some(pair) {
                return Err(CatalogStoreError::Refused(format!(
                    "content {} changed since the decision (epoch {} now)",
                    pair.content, next.epoch
                )));
            }
        }
        next.apply(changes)?;
        next.check()?;
        let now = runtime::unix_time_ms();
        let history_base = engine
            .scan(HISTORY_TABLE)?
            .last()
            .map(|(k, _)| k + 1)
            .unwrap_or(0);
        let mut writes = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            let row = &next.segments[&change.dbid];
            writes.push(Write::Put {
                table: CONFIG_TABLE,
                key: change.dbid as i64,
                value: encode(row),
            });
            let history = HistoryRow {
                time_ms: now,
                dbid: change.dbid,
                desc: change.history_desc(row.content),
            };
            if bugs.forget_configuration_history {
                continue;
            }
            writes.push(Write::Put {
                table: HISTORY_TABLE,
                key: history_base + i as i64,
                value: encode(&history),
            });
        }
        self.commit_configuration(engine, next, writes).await
    }

    /// Commits a configuration change: `writes` and the new epoch go in one transaction, durable
    /// on the coordinator (and on a synchronized standby) before the catalog anyone reads moves
    /// to `next`. Refused once this coordinator is deposed, also where the deposition came while
    /// the change was flushing: the prober's work on each content is already under way when a
    /// refusal deposes the coordinator, and an instance that never heard of the new generation
    /// would obey what it decides (a restarted old coordinator turned a stale primary's
    /// synchronous waiting off, and that primary acknowledged a commit the promoted mirror
    /// never had).
    async fn commit_configuration(
        &self,
        engine: tokio::sync::MutexGuard<'_, Engine>,
        next: Catalog,
        writes: Vec<Write>,
    ) -> Result<Catalog, CatalogStoreError> {
        self.commit_configuration_then(engine, next, writes, || {})
            .await
    }

    /// [`CatalogStore::commit_configuration`], calling `committed` once the change is committed
    /// (and `latest`) and before it is flushed or waited for: still under the catalog's lock,
    /// so no other change comes in between.
    async fn commit_configuration_then(
        &self,
        mut engine: tokio::sync::MutexGuard<'_, Engine>,
        next: Catalog,
        mut writes: Vec<Write>,
        committed: impl FnOnce(),
    ) -> Result<Catalog, CatalogStoreError> {
        self.refuse_if_deposed()?;
        writes.push(Write::Put {
            table: META_TABLE,
            key: EPOCH_KEY,
            value: encode(&next.epoch),
        });
        let lsn = engine.commit(next.epoch, &writes)?;
        *self.latest.lock().unwrap() = next.clone();
        committed();
        let wal = engine.wal();
        drop(engine);
        wal.flush_to(lsn).await?;
        self.standby.wait_flushed(lsn).await;
        self.refuse_if_deposed()?;
        // Changes flush in order, but their waiters may wake in any order: publish only forward.
        let moved = {
            let mut current = self.current.lock().unwrap();
            let moved = next.epoch > current.epoch;
            if moved {
                *current = next.clone();
            }
            moved
        };
        // Set with `current` unlocked: a waiter reads `current` while it holds the watch's lock.
        if moved {
            self.published.set(next.epoch);
        }
        Ok(next)
    }

    /// An administration change: `edit` rewrites rows of the latest catalog (under the lock,
    /// so no prober decision in between is lost) and returns history lines per dbid. Recorded as
    /// one durable transaction with a new epoch; nothing changes if `edit` refuses or the
    /// result breaks the prober's invariants.
    pub async fn edit_rows<E>(&self, edit: E) -> Result<Catalog, CatalogStoreError>
    where
        E: FnOnce(&mut Catalog) -> Result<Vec<(crate::model::catalog::Dbid, String)>, String>,
    {
        let mut engine = self.engine.lock().await;
        let before = self.latest.lock().unwrap().clone();
        let mut next = before.clone();
        let history = edit(&mut next).map_err(CatalogStoreError::Refused)?;
        next.epoch = before.epoch + 1;
        next.check()?;
        let now = runtime::unix_time_ms();
        let history_base = engine
            .scan(HISTORY_TABLE)?
            .last()
            .map(|(k, _)| k + 1)
            .unwrap_or(0);
        let mut writes = Vec::new();
        for (dbid, row) in &next.segments {
            if before.segments.get(dbid) != Some(row) {
                writes.push(Write::Put {
                    table: CONFIG_TABLE,
                    key: *dbid as i64,
                    value: encode(row),
                });
            }
        }
        for dbid in before.segments.keys() {
            if !next.segments.contains_key(dbid) {
                writes.push(Write::Delete {
                    table: CONFIG_TABLE,
                    key: *dbid as i64,
                });
            }
        }
        for (i, (dbid, desc)) in history.iter().enumerate() {
            let row = HistoryRow {
                time_ms: now,
                dbid: *dbid,
                desc: desc.clone(),
            };
            writes.push(Write::Put {
                table: HISTORY_TABLE,
                key: history_base + i as i64,
                value: encode(&row),
            });
        }
        let committed = self.commit_configuration(engine, next, writes).await?;
        self.committed(committed.epoch, &history);
        Ok(committed)
    }

    /// The configuration history, oldest first.
    pub async fn history(&self) -> Result<Vec<HistoryRow>, CatalogStoreError> {
        let rows = self.engine.lock().await.scan(HISTORY_TABLE)?;
        rows.iter().map(|(_, v)| decode(v)).collect()
    }

    /// The distributed-commit record: once this returns, the transaction is committed, whatever
    /// happens to the coordinator or the segments afterwards.
    pub async fn record_distributed_commit(
        &self,
        gxid: u64,
        writers: &[Content],
    ) -> Result<(), CatalogStoreError> {
        let mut engine = self.engine.lock().await;
        let lsn = engine.commit(
            gxid,
            &[Write::Put {
                table: DTX_TABLE,
                key: gxid as i64,
                value: encode(&writers.to_vec()),
            }],
        )?;
        let wal = engine.wal();
        drop(engine);
        wal.flush_to(lsn).await?;
        self.standby.wait_flushed(lsn).await;
        Ok(())
    }

    /// Forgets a record once every writer committed. Not flushed: if the forget is lost, the
    /// resolver re-sends COMMIT PREPARED, which the segments answer as already done.
    pub async fn forget_distributed_commit(&self, gxid: u64) -> Result<(), CatalogStoreError> {
        self.engine.lock().await.commit(
            gxid,
            &[Write::Delete {
                table: DTX_TABLE,
                key: gxid as i64,
            }],
        )?;
        Ok(())
    }

    /// Every distributed-commit record not yet forgotten.
    pub async fn distributed_commits(
        &self,
    ) -> Result<BTreeMap<u64, Vec<Content>>, CatalogStoreError> {
        let rows = self.engine.lock().await.scan(DTX_TABLE)?;
        rows.iter()
            .map(|(k, v)| Ok((*k as u64, decode(v)?)))
            .collect()
    }

    /// Records a new user table; returns its definition.
    pub async fn create_table(
        &self,
        name: &str,
        kind: TableKind,
        schema: Option<crate::model::schema::TableSchema>,
    ) -> Result<TableDef, CatalogStoreError> {
        let mut engine = self.engine.lock().await;
        if self.tables.lock().unwrap().contains_key(name) {
            return Err(CatalogStoreError::TableExists(name.to_string()));
        }
        // Never an id a table had before, dropped or not: a content that kept a dropped
        // table's storage must not take it for the new one.
        let id = self
            .tables
            .lock()
            .unwrap()
            .values()
            .map(|t| t.id + 1)
            .chain(self.dropped.lock().unwrap().iter().map(|id| id + 1))
            .max()
            .unwrap_or(FIRST_USER_TABLE)
            .max(FIRST_USER_TABLE);
        let def = TableDef {
            id,
            name: name.to_string(),
            kind,
            schema: schema.map(Box::new),
        };
        let lsn = engine.commit(
            0,
            &[Write::Put {
                table: TABLES_TABLE,
                key: id as i64,
                value: encode(&def),
            }],
        )?;
        let wal = engine.wal();
        drop(engine);
        wal.flush_to(lsn).await?;
        self.standby.wait_flushed(lsn).await;
        self.tables
            .lock()
            .unwrap()
            .insert(name.to_string(), def.clone());
        Ok(def)
    }

    /// Drops the user table `name` from the catalog, durably and on the synchronized
    /// standby; returns its definition and every dropped table's id, for the contents.
    pub async fn drop_table(
        &self,
        name: &str,
    ) -> Result<(TableDef, Vec<TableId>), CatalogStoreError> {
        let mut engine = self.engine.lock().await;
        let def = match self.tables.lock().unwrap().get(name) {
            Some(def) if def.id >= FIRST_USER_TABLE => def.clone(),
            Some(_) => {
                return Err(CatalogStoreError::Refused(format!(
                    "\"{name}\" is a system table and cannot be dropped"
                )))
            }
            None => return Err(CatalogStoreError::NoTable(name.to_string())),
        };
        if !engine.tables().iter().any(|t| t.id == DROPPED_TABLE) {
            engine.create_table(TableDef {
                id: DROPPED_TABLE,
                name: "gp_dropped_tables".into(),
                kind: TableKind::Heap,
                schema: None,
            })?;
        }
        let lsn = engine.commit(
            0,
            &[
                Write::Delete {
                    table: TABLES_TABLE,
                    key: def.id as i64,
                },
                Write::Put {
                    table: DROPPED_TABLE,
                    key: def.id as i64,
                    value: encode(&def.name),
                },
            ],
        )?;
        let wal = engine.wal();
        drop(engine);
        wal.flush_to(lsn).await?;
        self.standby.wait_flushed(lsn).await;
        self.tables.lock().unwrap().remove(name);
        let mut dropped = self.dropped.lock().unwrap();
        dropped.insert(def.id);
        Ok((def, dropped.iter().copied().collect()))
    }
}
