//! Helpers shared by the storage tests: a madsim runtime per case, a simulated disk with
//! fsync latency, the two tables every test uses, and row values that name their writer.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cluster::io::Disk;
use cluster::storage::{
    Engine, EngineOptions, Key, StorageError, TableDef, TableId, TableKind, Value, Write, Xid,
};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use sim::world::disk::SimDisk;

pub const HEAP: TableId = 1;
pub const AO: TableId = 2;

pub fn run<F: Future>(seed: u64, future: F) -> F::Output {
    madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default()).block_on(future)
}

pub fn sim_disk() -> SimDisk {
    SimDisk::new().with_sync_latency(Duration::from_micros(50), Duration::from_micros(500))
}

pub async fn open(disk: &SimDisk, cache_blocks_max: usize) -> Result<Engine, StorageError> {
    let disk: Arc<dyn Disk> = Arc::new(disk.clone());
    Engine::open(
        disk,
        EngineOptions {
            cache_blocks_max,
            ..EngineOptions::default()
        },
    )
    .await
}

pub fn defs() -> [TableDef; 2] {
    [
        TableDef {
            id: HEAP,
            name: "accounts".into(),
            kind: TableKind::Heap,
            schema: None,
        },
        TableDef {
            id: AO,
            name: "history".into(),
            kind: TableKind::AppendOptimized,
            schema: None,
        },
    ]
}

/// A value whose bytes depend on who wrote it, so a stale or misplaced row shows.
pub fn value(xid: Xid, key: Key, len: usize) -> Value {
    (0..len)
        .map(|i| (xid as usize * 31 + key as usize * 7 + i) as u8)
        .collect()
}

pub fn put(table: TableId, xid: Xid, key: Key, len: usize) -> Write {
    Write::Put {
        table,
        key,
        value: value(xid, key, len),
    }
}

/// Row keys, for assertions that should not print kilobytes of values.
pub fn keys(rows: Vec<(Key, Value)>) -> Vec<Key> {
    rows.into_iter().map(|(k, _)| k).collect()
}

/// A write a generated transaction makes; append-optimized keys are assigned fresh.
#[derive(Clone, Debug)]
pub enum W {
    HeapPut(Key, usize),
    HeapDelete(Key),
    AoPut(usize),
}

pub fn write_strategy() -> impl Strategy<Value = W> {
    prop_oneof![
        4 => (0i64..24, 0usize..3000).prop_map(|(k, len)| W::HeapPut(k, len)),
        2 => (0i64..24).prop_map(W::HeapDelete),
        2 => (0usize..3000).prop_map(W::AoPut),
    ]
}

/// Proptest settings. The case generator starts from a fixed seed, so every run explores the
/// same cases and a failure reproduces by rerunning the test; `PROPTEST_RNG_SEED=<n>` explores
/// others. Each case's madsim runtime is seeded from the generated input.
pub fn proptest_config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let rng_seed = match default.rng_seed {
        RngSeed::Random => RngSeed::Fixed(0x5eed_0f57_0a6e),
        chosen => chosen,
    };
    ProptestConfig {
        cases,
        rng_seed,
        failure_persistence: None,
        ..default
    }
}
