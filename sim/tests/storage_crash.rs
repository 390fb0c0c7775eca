//! Crash safety of the storage engine on the simulated disk.
//!
//! The property test drives random transactions (heap puts and deletes, append-optimized
//! appends, two-phase commits), tables dropped and made again under a new id, checkpoints
//! and flushes against a model, crashes the disk at
//! random points (torn tails, a flush or checkpoint in flight), recovers, and requires the
//! recovered data to be exactly the model after some prefix of the logged transactions: every
//! transaction acknowledged by a completed flush is there, and the rest are wholly present or
//! wholly absent, in order. Then it keeps writing and crashes again.
//!
//! Also here: corruption of a table block, group commit, a full disk, and the WAL-before-data
//! rule under a tiny cache (corruption elsewhere is in `storage_corruption.rs`). Replication is in `storage_replication.rs`.
//!
//! A failing case prints its minimal input, seed included; rerun one test with
//! `cargo test -p sim --test storage_crash -- <test name>`.

mod storage_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cluster::storage::{
    Engine, EngineOptions, Key, Lsn, StorageError, TableDef, TableId, TableKind, Value, Wal, Write,
    Xid, TUPLE_SPACE,
};
use proptest::prelude::*;
use sim::world::disk::{SimDisk, TornTail};
use tokio::sync::Mutex;

use storage_support::*;

/// The logical content the engine must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    heap: BTreeMap<Key, Value>,
    ao: BTreeMap<Key, Value>,
    prepared: BTreeMap<Xid, Vec<Write>>,
    /// The ids the two tables have now: each drop and create gives a table a new one.
    ids: (TableId, TableId),
}

impl State {
    fn apply(&mut self, writes: &[Write]) {
        for write in writes {
            let rows = if write.table() == self.ids.0 {
                &mut self.heap
            } else {
                &mut self.ao
            };
            match write {
                Write::Put { key, value, .. } => {
                    rows.insert(*key, value.clone());
                }
                Write::Delete { key, .. } => {
                    rows.remove(key);
                }
            }
        }
    }

    fn view(&self) -> View {
        let prepared = self.prepared.keys().copied().collect();
        (self.heap.clone(), self.ao.clone(), prepared, self.ids)
    }
}

type View = (
    BTreeMap<Key, Value>,
    BTreeMap<Key, Value>,
    Vec<Xid>,
    (TableId, TableId),
);

/// What differs between two views, briefly (values are kilobytes long).
fn diff(got: &View, want: &View) -> String {
    let rows = |name: &str, got: &BTreeMap<Key, Value>, want: &BTreeMap<Key, Value>| {
        let keys: std::collections::BTreeSet<&Key> = got.keys().chain(want.keys()).collect();
        keys.into_iter()
            .filter(|k| got.get(k) != want.get(k))
            .map(|k| {
                let len = |m: &BTreeMap<Key, Value>| m.get(k).map(|v| v.len());
                format!(
                    "{name}[{k}]: got {:?} bytes, want {:?}",
                    len(got),
                    len(want)
                )
            })
            .collect::<Vec<_>>()
    };
    let mut out = rows("heap", &got.0, &want.0);
    out.extend(rows("ao", &got.1, &want.1));
    if got.2 != want.2 {
        out.push(format!("prepared: got {:?}, want {:?}", got.2, want.2));
    }
    if got.3 != want.3 {
        out.push(format!("table ids: got {:?}, want {:?}", got.3, want.3));
    }
    out.join("; ")
}

fn actual(engine: &mut Engine) -> Result<View, StorageError> {
    let id = |name: &str| {
        let ids: Vec<TableId> = engine
            .tables()
            .into_iter()
            .filter(|t| t.name == name)
            .map(|t| t.id)
            .collect();
        match ids[..] {
            [id] => Ok(id),
            // Dropped, and the crash came before it was made again.
            [] => Ok(0),
            _ => Err(StorageError::CorruptControl {
                path: format!("tables named {name}: {ids:?}"),
            }),
        }
    };
    let ids = (id("accounts")?, id("history")?);
    let mut scan = |id| match id {
        0 => Ok(BTreeMap::new()),
        id => engine.scan(id).map(|rows| rows.into_iter().collect()),
    };
    let heap = scan(ids.0)?;
    let ao = scan(ids.1)?;
    Ok((heap, ao, engine.prepared(), ids))
}

/// The model of one life (open to crash): the recovered state and each logged event after it.
#[derive(Default)]
struct Model {
    base: State,
    /// (end LSN of the event's last record, state after it)
    events: Vec<(Lsn, State)>,
    /// The highest LSN a completed flush reported durable.
    acked: Lsn,
    next_xid: Xid,
    next_ao_key: Key,
    /// The last table id given; ids are never given twice, crashes or not.
    last_table_id: TableId,
}

impl Model {
    fn current(&self) -> &State {
        self.events.last().map_or(&self.base, |(_, s)| s)
    }

    fn log(&mut self, end: Lsn, state: State) {
        self.events.push((end, state));
    }

    fn ack(&mut self, flushed: Lsn) {
        self.acked = self.acked.max(flushed);
    }

    /// After a crash: the states recovery may produce, oldest first.
    fn candidates(&self) -> Vec<&State> {
        let required = self
            .events
            .iter()
            .filter(|(end, _)| *end <= self.acked)
            .count();
        let mut all = vec![&self.base];
        all.extend(self.events.iter().map(|(_, s)| s));
        all.split_off(required)
    }

    fn recovered(&mut self, state: State) {
        self.base = state;
        self.events.clear();
        self.acked = 0;
    }

    fn xid(&mut self) -> Xid {
        self.next_xid += 1;
        self.next_xid
    }
}

#[derive(Clone, Debug)]
struct CrashSpec {
    /// 0: nothing in flight, 1: a WAL flush, 2: a checkpoint, 3: a flush, a commit, a flush.
    in_flight: u8,
    delay_us: u64,
    /// Per file, cyclically: `None` drops the unsynced tail, `Some(n)` keeps `n` mod its size.
    torn: Vec<Option<usize>>,
    cache_blocks_max: usize,
}

#[derive(Clone, Debug)]
enum Op {
    Commit(Vec<W>, bool),
    Prepare(Vec<W>, bool),
    Resolve(usize, bool, bool),
    Checkpoint,
    Flush,
    Refused(u8),
    /// Drops the heap (`false`) or append-optimized table and makes it again, empty, under a
    /// new id; then flushes, or not.
    Recreate(bool, bool),
    Crash(CrashSpec),
}

fn crash_strategy() -> impl Strategy<Value = CrashSpec> {
    let keep = prop_oneof![
        Just(None),
        Just(Some(usize::MAX)),
        (0usize..20_000).prop_map(Some)
    ];
    let torn = prop::collection::vec(keep, 1..6);
    (0u8..4, 0u64..1500, torn, 2usize..5).prop_map(|(in_flight, delay_us, torn, cache)| CrashSpec {
        in_flight,
        delay_us,
        torn,
        cache_blocks_max: cache,
    })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let writes = |min| prop::collection::vec(write_strategy(), min..5);
    prop_oneof![
        10 => (writes(0), any::<bool>()).prop_map(|(w, f)| Op::Commit(w, f)),
        2 => (writes(1), any::<bool>()).prop_map(|(w, f)| Op::Prepare(w, f)),
        2 => (any::<usize>(), any::<bool>(), any::<bool>()).prop_map(|(p, c, f)| Op::Resolve(p, c, f)),
        2 => Just(Op::Checkpoint),
        2 => Just(Op::Flush),
        1 => (0u8..5).prop_map(Op::Refused),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(t, f)| Op::Recreate(t, f)),
        2 => crash_strategy().prop_map(Op::Crash),
    ]
}

/// One running instance: the engine behind the lock the cluster uses, and its WAL handle.
struct Life {
    engine: Arc<Mutex<Engine>>,
    wal: Arc<Wal>,
}

impl Life {
    async fn start(disk: &SimDisk, cache_blocks_max: usize) -> Result<Life, StorageError> {
        let engine = open(disk, cache_blocks_max).await?;
        let wal = engine.wal();
        Ok(Life {
            engine: Arc::new(Mutex::new(engine)),
            wal,
        })
    }
}

/// Drives the ops of one test case and checks the model after every recovery.
struct Driver {
    disk: SimDisk,
    life: Life,
    model: Model,
}

impl Driver {
    async fn new(cache_blocks_max: usize) -> Driver {
        let disk = sim_disk();
        let life = Life::start(&disk, cache_blocks_max)
            .await
            .expect("open empty");
        let mut end = 0;
        for def in defs() {
            end = life.engine.lock().await.create_table(def).expect("create");
        }
        life.wal.flush_to(end).await.expect("flush");
        let mut model = Model::default();
        model.base.ids = (HEAP, AO);
        model.last_table_id = HEAP.max(AO);
        model.ack(end);
        Driver { disk, life, model }
    }

    fn writes(&mut self, xid: Xid, spec: &[W]) -> Vec<Write> {
        let (heap, ao) = self.model.current().ids;
        spec.iter()
            .map(|w| match *w {
                W::HeapPut(key, len) => Write::Put {
                    table: heap,
                    key,
                    value: value(xid, key, len),
                },
                W::HeapDelete(key) => Write::Delete { table: heap, key },
                W::AoPut(len) => {
                    self.model.next_ao_key += 1;
                    let key = self.model.next_ao_key;
                    Write::Put {
                        table: ao,
                        key,
                        value: value(xid, key, len),
                    }
                }
            })
            .collect()
    }

    async fn flush(&mut self, end: Lsn) -> Result<(), TestCaseError> {
        let flushed = self.life.wal.flush_to(end).await;
        let flushed = flushed.map_err(|e| TestCaseError::fail(format!("flush: {e}")))?;
        prop_assert!(flushed >= end);
        self.model.ack(flushed);
        Ok(())
    }

    async fn commit(&mut self, spec: &[W], flush: bool) -> Result<(), TestCaseError> {
        let xid = self.model.xid();
        let writes = self.writes(xid, spec);
        let end = self.life.engine.lock().await.commit(xid, &writes);
        let end = end.map_err(|e| TestCaseError::fail(format!("commit: {e}")))?;
        let mut state = self.model.current().clone();
        state.apply(&writes);
        self.model.log(end, state);
        if flush {
            self.flush(end).await?;
        }
        Ok(())
    }

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Commit(spec, flush) => self.commit(spec, *flush).await?,
            Op::Prepare(spec, flush) => {
                let xid = self.model.xid();
                let writes = self.writes(xid, spec);
                let end = self.life.engine.lock().await.prepare(xid, &writes);
                let end = end.map_err(|e| TestCaseError::fail(format!("prepare: {e}")))?;
                let mut state = self.model.current().clone();
                state.prepared.insert(xid, writes);
                self.model.log(end, state);
                if *flush {
                    self.flush(end).await?;
                }
            }
            Op::Resolve(pick, commit, flush) => self.resolve(*pick, *commit, *flush).await?,
            Op::Checkpoint => {
                let end = self.life.wal.end_lsn();
                let done = self.life.engine.lock().await.checkpoint().await;
                done.map_err(|e| TestCaseError::fail(format!("checkpoint: {e}")))?;
                self.model.ack(end);
                self.check_files()?;
            }
            Op::Recreate(ao, flush) => self.recreate(*ao, *flush).await?,
            Op::Flush => {
                let end = self.life.wal.end_lsn();
                self.flush(end).await?;
            }
            Op::Refused(kind) => self.refused(*kind).await?,
            Op::Crash(spec) => self.crash(spec).await?,
        }
        self.check_live().await
    }

    async fn resolve(
        &mut self,
        pick: usize,
        commit: bool,
        flush: bool,
    ) -> Result<(), TestCaseError> {
        let prepared: Vec<Xid> = self.model.current().prepared.keys().copied().collect();
        let mut engine = self.life.engine.lock().await;
        if prepared.is_empty() {
            let err = engine.commit_prepared(u64::MAX).unwrap_err();
            prop_assert!(matches!(err, StorageError::UnknownPrepared(_)), "{err}");
            return Ok(());
        }
        let xid = prepared[pick % prepared.len()];
        let mut state = self.model.current().clone();
        let writes = state.prepared.remove(&xid).expect("picked from the model");
        let end = if commit {
            state.apply(&writes);
            engine.commit_prepared(xid)
        } else {
            engine.abort_prepared(xid)
        };
        drop(engine);
        let end = end.map_err(|e| TestCaseError::fail(format!("resolve {xid}: {e}")))?;
        self.model.log(end, state);
        if flush {
            self.flush(end).await?;
        }
        Ok(())
    }

    /// Drops a table and makes it again under the next id. A table with writes of a prepared
    /// transaction is refused, changing nothing.
    async fn recreate(&mut self, ao: bool, flush: bool) -> Result<(), TestCaseError> {
        let mut state = self.model.current().clone();
        let id = if ao { state.ids.1 } else { state.ids.0 };
        let in_use = state
            .prepared
            .values()
            .any(|writes| writes.iter().any(|w| w.table() == id));
        let mut engine = self.life.engine.lock().await;
        let dropped = engine.drop_table(id);
        if in_use {
            let err = dropped.unwrap_err();
            prop_assert!(
                matches!(err, StorageError::TableInUse { id: t, .. } if t == id),
                "{err}"
            );
            return Ok(());
        }
        let end = dropped.map_err(|e| TestCaseError::fail(format!("drop {id}: {e}")))?;
        if ao {
            state.ao.clear();
            state.ids.1 = 0;
        } else {
            state.heap.clear();
            state.ids.0 = 0;
        }
        // Recovery may stop between the drop and the create.
        self.model.log(end, state);
        drop(engine);
        self.create_missing(flush).await
    }

    /// Makes the table the current state lacks (dropped, by `recreate` or before a crash that
    /// came before its create) again, empty, under a new id.
    async fn create_missing(&mut self, flush: bool) -> Result<(), TestCaseError> {
        let mut state = self.model.current().clone();
        let [heap_def, ao_def] = defs();
        let def = match state.ids {
            (0, _) => heap_def,
            (_, 0) => ao_def,
            _ => return Ok(()),
        };
        self.model.last_table_id += 1;
        let id = self.model.last_table_id;
        if def.kind == TableKind::Heap {
            state.ids.0 = id;
        } else {
            state.ids.1 = id;
        }
        let created = self
            .life
            .engine
            .lock()
            .await
            .create_table(TableDef { id, ..def });
        let end = created.map_err(|e| TestCaseError::fail(format!("create {id}: {e}")))?;
        self.model.log(end, state);
        if flush {
            self.flush(end).await?;
        }
        Ok(())
    }

    /// After a checkpoint, the table directories hold exactly the files of the tables there are.
    fn check_files(&self) -> Result<(), TestCaseError> {
        use cluster::io::Disk;
        let (heap, ao) = self.model.current().ids;
        for (dir, id) in [("base", heap), ("ao", ao)] {
            let files = self
                .disk
                .list(dir)
                .map_err(|e| TestCaseError::fail(format!("list {dir}: {e}")))?;
            prop_assert_eq!(
                files,
                vec![id.to_string()],
                "files in {} after a checkpoint",
                dir
            );
        }
        Ok(())
    }

    /// A refused write must change nothing (checked by the next live comparison).
    async fn refused(&mut self, kind: u8) -> Result<(), TestCaseError> {
        let (heap, ao) = self.model.current().ids;
        let xid = self.model.xid();
        let good = Write::Put {
            table: heap,
            key: 1,
            value: value(xid, 1, 10),
        };
        let ao_key = self.model.current().ao.keys().next().copied();
        let bad = match (kind, ao_key) {
            (0, _) => Write::Delete { table: ao, key: 1 },
            (1, Some(key)) => Write::Put {
                table: ao,
                key,
                value: vec![1],
            },
            (2, _) => Write::Put {
                table: heap,
                key: 2,
                value: vec![0; TUPLE_SPACE],
            },
            _ => Write::Put {
                table: 99_999,
                key: 1,
                value: vec![],
            },
        };
        let mut engine = self.life.engine.lock().await;
        let err = if kind == 4 {
            engine.prepare(xid, &[good, bad]).unwrap_err()
        } else {
            engine.commit(xid, &[good, bad]).unwrap_err()
        };
        let expected = match &err {
            StorageError::AppendOnly { .. } => kind <= 1,
            StorageError::TupleTooLarge { .. } => kind == 2,
            StorageError::UnknownTable(99_999) => kind >= 1,
            _ => false,
        };
        prop_assert!(expected, "refused write {kind}: unexpected error {err}");
        Ok(())
    }

    async fn check_live(&mut self) -> Result<(), TestCaseError> {
        let mut engine = self.life.engine.lock().await;
        let got = actual(&mut engine).map_err(|e| TestCaseError::fail(format!("scan: {e}")))?;
        let want = self.model.current().view();
        prop_assert!(
            got == want,
            "live engine diverged from the model: {}",
            diff(&got, &want)
        );
        Ok(())
    }

    /// A task that flushes the WAL to its current end, and that end.
    fn spawn_flush(&self) -> (madsim::task::JoinHandle<Result<(), StorageError>>, Lsn) {
        let wal = self.life.wal.clone();
        let end = wal.end_lsn();
        let task = madsim::task::spawn(async move { wal.flush_to(end).await.map(|_| ()) });
        (task, end)
    }

    /// Crashes the disk (with flushes or a checkpoint possibly in flight), recovers and checks.
    async fn crash(&mut self, spec: &CrashSpec) -> Result<(), TestCaseError> {
        let mut in_flight = Vec::new();
        match spec.in_flight {
            1 => in_flight.push(self.spawn_flush()),
            2 => {
                let engine = self.life.engine.clone();
                let end = self.life.wal.end_lsn();
                let task = madsim::task::spawn(async move {
                    engine.lock().await.checkpoint().await.map(|_| ())
                });
                in_flight.push((task, end));
            }
            3 => {
                // A commit arrives while an fsync is in flight: the fsync must not cover it.
                in_flight.push(self.spawn_flush());
                madsim::time::sleep(Duration::from_micros(1)).await;
                self.commit(&[W::HeapPut(0, 200)], false).await?;
                in_flight.push(self.spawn_flush());
            }
            _ => {}
        }
        madsim::time::sleep(Duration::from_micros(spec.delay_us)).await;
        let mut torn = spec.torn.iter().cycle();
        self.disk
            .crash(|_, unsynced| match torn.next().copied().flatten() {
                None => TornTail::None,
                Some(usize::MAX) => TornTail::Keep(unsynced),
                Some(n) => TornTail::Keep(n % (unsynced + 1)),
            });
        for (task, end) in in_flight {
            // A task still waiting on the disk never finishes: its host is gone.
            if task.is_finished() {
                if let Ok(Ok(())) = task.await {
                    self.model.ack(end);
                }
            } else {
                task.abort();
            }
        }
        self.recover(spec.cache_blocks_max).await
    }

    async fn recover(&mut self, cache_blocks_max: usize) -> Result<(), TestCaseError> {
        let life = Life::start(&self.disk, cache_blocks_max).await;
        self.life = life.map_err(|e| TestCaseError::fail(format!("recovery failed: {e}")))?;
        let got = {
            let mut engine = self.life.engine.lock().await;
            actual(&mut engine).map_err(|e| TestCaseError::fail(format!("scan: {e}")))?
        };
        let candidates = self.model.candidates();
        let Some(state) = candidates.iter().rev().find(|s| s.view() == got) else {
            let oldest = candidates[0].view();
            return Err(TestCaseError::fail(format!(
                "recovered state matches none of the {} allowed prefixes (acked lsn {}); \
                 against the oldest: {}",
                candidates.len(),
                self.model.acked,
                diff(&got, &oldest),
            )));
        };
        let state = (*state).clone();
        self.model.recovered(state);
        // A table dropped before the crash and not made again is made now.
        self.create_missing(true).await
    }
}

fn crash_cycles(
    seed: u64,
    cache: usize,
    ops: Vec<Op>,
    last: CrashSpec,
) -> Result<(), TestCaseError> {
    run(seed, async move {
        let mut driver = Driver::new(cache).await;
        for op in &ops {
            driver.step(op).await?;
        }
        driver.crash(&last).await?;
        // Recovery must leave an engine that keeps working.
        driver
            .step(&Op::Commit(vec![W::HeapPut(3, 100), W::AoPut(50)], true))
            .await?;
        driver.step(&Op::Checkpoint).await?;
        driver.crash(&last).await
    })
}

proptest! {
    #![proptest_config(proptest_config(256))]

    #[test]
    fn recovery_keeps_every_acknowledged_transaction_and_tears_none(
        seed in any::<u64>(),
        cache in 2usize..5,
        ops in prop::collection::vec(op_strategy(), 5..60),
        last in crash_strategy(),
    ) {
        crash_cycles(seed, cache, ops, last)?;
    }
}

/// Commits ten transactions on a one-block cache without flushing their WAL, each followed by
/// a read that evicts their blocks, then crashes the disk keeping every unsynced byte of the
/// table files and none of the WAL. Returns the WAL's durable end at the crash.
async fn commit_unflushed_and_crash(disk: &SimDisk, opts: EngineOptions) -> Lsn {
    let mut engine = Engine::open(Arc::new(disk.clone()), opts).await.unwrap();
    for def in defs() {
        engine.create_table(def).unwrap();
    }
    engine.commit(1, &[put(HEAP, 1, 1, 100)]).unwrap();
    engine.checkpoint().await.unwrap();
    let flushed = engine.wal().flushed_lsn();
    for xid in 2..12 {
        let key = xid as Key;
        engine.commit(xid, &[put(AO, xid, key, 3000)]).unwrap();
        // Reading the heap block evicts the new append-optimized blocks.
        assert!(engine.get(HEAP, 1).unwrap().is_some());
    }
    assert!(engine.stats().evictions > 0);
    assert_eq!(engine.wal().flushed_lsn(), flushed);
    drop(engine);
    disk.crash(|path, unsynced| {
        if path.ends_with("pg_wal/wal") {
            TornTail::None
        } else {
            TornTail::Keep(unsynced)
        }
    });
    flushed
}

fn one_block_cache(evict_before_wal_flush: bool) -> EngineOptions {
    EngineOptions {
        cache_blocks_max: 1,
        evict_before_wal_flush,
        ..EngineOptions::default()
    }
}

/// WAL before data: blocks of transactions whose commit records are not durable never reach
/// the table files, even when a tiny cache must evict them and every unsynced byte of the
/// table files survives the crash.
#[test]
fn unflushed_commits_never_reach_table_files() {
    run(7, async {
        let disk = sim_disk();
        commit_unflushed_and_crash(&disk, one_block_cache(false)).await;
        let mut engine = open(&disk, 1).await.unwrap();
        assert_eq!(keys(engine.scan(AO).unwrap()), Vec::<Key>::new());
        assert_eq!(keys(engine.scan(HEAP).unwrap()), vec![1]);
    });
}

/// The same run with the planted bug `evict-before-wal-flush`: blocks of unflushed commits
/// reach the table files, the crash keeps them and loses their WAL, and recovery refuses to
/// open (`BlockBeyondWal`) rather than serve changes it has no log of.
#[test]
fn recovery_refuses_a_block_written_before_its_wal() {
    run(7, async {
        let disk = sim_disk();
        let wal_end = commit_unflushed_and_crash(&disk, one_block_cache(true)).await;
        let err = Engine::open(Arc::new(disk.clone()), one_block_cache(true))
            .await
            .err()
            .expect("recovery must refuse a block beyond its WAL");
        match err {
            StorageError::BlockBeyondWal {
                page_lsn,
                wal_end: end,
                ..
            } => {
                assert_eq!(end, wal_end);
                assert!(page_lsn > wal_end);
            }
            other => panic!("expected BlockBeyondWal, got {other}"),
        }
    });
}

/// A bit flipped on disk in a table block is never served: reads of that block fail with
/// `Corrupt`, and so does recovery, since the block lies inside the checkpointed length.
#[test]
fn a_flipped_bit_in_a_table_block_is_reported_as_corrupt() {
    run(11, async {
        let disk = sim_disk();
        let mut engine = open(&disk, 2).await.unwrap();
        for def in defs() {
            engine.create_table(def).unwrap();
        }
        // Two 3 KiB rows per block: keys 0 and 1 land in block 0.
        let rows: Vec<Write> = (0..12).map(|k| put(HEAP, 1, k, 3000)).collect();
        engine.commit(1, &rows).unwrap();
        engine.checkpoint().await.unwrap();
        // Touch other blocks so that block 0 leaves the two-block cache.
        for key in [11, 9, 7] {
            assert!(engine.get(HEAP, key).unwrap().is_some());
        }
        assert!(disk.corrupt("base/1", 100, 0x01));
        let corrupt = |err: StorageError| matches!(err, StorageError::Corrupt { ref file, block: 0 } if file == "base/1");
        let err = engine.get(HEAP, 0).unwrap_err();
        assert!(corrupt(err));
        let err = engine.scan(HEAP).unwrap_err();
        assert!(corrupt(err));
        // Other blocks are still served.
        assert!(engine.get(HEAP, 5).unwrap().is_some());
        drop(engine);
        disk.crash(|_, _| TornTail::None);
        let err = open(&disk, 2)
            .await
            .err()
            .expect("recovery must refuse a corrupt block");
        assert!(corrupt(err));
    });
}

/// Spawns `n` committers that each commit one heap row and flush; waits for all of them.
async fn commit_concurrently(life: &Life, n: u64) {
    let committers: Vec<_> = (1..=n)
        .map(|xid| {
            let (engine, wal) = (life.engine.clone(), life.wal.clone());
            madsim::task::spawn(async move {
                let row = put(HEAP, xid, xid as Key, 10 * xid as usize);
                let end = engine.lock().await.commit(xid, &[row])?;
                wal.flush_to(end).await
            })
        })
        .collect();
    for committer in committers {
        committer.await.unwrap().unwrap();
    }
}

async fn start_with_heap(disk: &SimDisk, cache_blocks_max: usize) -> Life {
    let life = Life::start(disk, cache_blocks_max).await.unwrap();
    let end = life.engine.lock().await.create_table(defs()[0].clone());
    life.wal.flush_to(end.unwrap()).await.unwrap();
    life
}

/// Group commit: committers that flush while an fsync is in flight share the next one.
#[test]
fn concurrent_commits_share_wal_fsyncs() {
    run(17, async {
        let disk = sim_disk();
        let life = start_with_heap(&disk, 16).await;
        let syncs_before = disk.stats().syncs;
        commit_concurrently(&life, 20).await;
        let syncs = disk.stats().syncs - syncs_before;
        assert!(syncs <= 5, "20 concurrent commits took {syncs} wal fsyncs");
        assert_eq!(life.engine.lock().await.scan(HEAP).unwrap().len(), 20);
    });
}

/// Determinism: one seed gives one run, fsync for fsync and byte for byte, across concurrent
/// committers, evictions, a checkpoint, a torn crash and recovery.
#[test]
fn the_same_seed_replays_the_same_run() {
    let fingerprint = || {
        run(23, async {
            let disk = sim_disk();
            let life = start_with_heap(&disk, 2).await;
            commit_concurrently(&life, 12).await;
            life.engine.lock().await.checkpoint().await.unwrap();
            commit_concurrently(&life, 6).await;
            disk.crash(|_, unsynced| TornTail::Keep(unsynced / 3));
            let mut engine = open(&disk, 2).await.unwrap();
            (disk.stats(), disk.files(), engine.data_digest().unwrap())
        })
    };
    assert_eq!(fingerprint(), fingerprint());
}

/// A write refused by a full disk changes nothing, and the engine works once space returns.
#[test]
fn a_full_disk_refuses_a_commit_and_changes_nothing() {
    run(19, async {
        let disk = sim_disk();
        let mut engine = open(&disk, 4).await.unwrap();
        for def in defs() {
            engine.create_table(def).unwrap();
        }
        let end = engine.commit(1, &[put(HEAP, 1, 1, 100)]).unwrap();
        engine.wal().flush_to(end).await.unwrap();
        let digest = engine.data_digest().unwrap();
        let wal_end = engine.wal().end_lsn();
        disk.set_capacity(Some(0));
        let err = engine
            .commit(2, &[put(HEAP, 2, 2, 100), put(AO, 2, 1, 100)])
            .unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
        assert_eq!(engine.data_digest().unwrap(), digest);
        assert_eq!(engine.wal().end_lsn(), wal_end);
        disk.set_capacity(None);
        let end = engine.commit(3, &[put(HEAP, 3, 3, 100)]).unwrap();
        engine.wal().flush_to(end).await.unwrap();
        drop(engine);
        disk.crash(|_, _| TornTail::None);
        let mut engine = open(&disk, 4).await.unwrap();
        assert_eq!(keys(engine.scan(HEAP).unwrap()), vec![1, 3]);
    });
}
