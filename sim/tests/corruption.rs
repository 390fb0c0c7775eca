//! A corrupt block is never served: the instance that finds it fails itself, the prober fails
//! over to the in-sync mirror, and every acknowledged row is still there.

use std::time::Duration;

use cluster::client::Client;
use cluster::model::catalog::{Mode, Role};
use cluster::wal::TableKind;
use sim::config::RunConfig;
use sim::world::World;

const ROWS: i64 = 150;

/// Retries `$attempt` (an expression yielding `Option`) every 250 ms, for up to 60 s.
macro_rules! until {
    ($what:expr, $attempt:expr) => {{
        let mut found = None;
        for _ in 0..240 {
            if let Some(v) = $attempt {
                found = Some(v);
                break;
            }
            madsim::time::sleep(Duration::from_millis(250)).await;
        }
        found.unwrap_or_else(|| panic!("timed out waiting for {}", $what))
    }};
}

async fn read(c: &mut Client, key: i64) -> Option<Option<Vec<u8>>> {
    c.begin().await.ok()?;
    let row = c.get("t_heap", key).await.ok()?;
    c.commit().await.ok()?;
    Some(row)
}

/// Seed 002: "the instance reports itself failed, never serves bad data". Sequence: rows are
/// committed and checkpointed; a bit flips in the primary's heap block on disk; the primary's
/// host restarts; the primary finds the bad checksum and stays down; the mirror is promoted and
/// serves every acknowledged row.
#[madsim::test]
async fn a_primary_that_finds_a_corrupt_block_fails_itself_and_its_mirror_takes_over() {
    let cfg = RunConfig::pair();
    let mut world = World::build(&cfg, 7);
    let coordinator = world.coordinator_addr.clone();
    let node = sim::world::credentials::client_node();

    let addr = coordinator.clone();
    node.spawn(async move {
        let mut c = Client::new(vec![addr], Duration::from_secs(10));
        until!(
            "create table",
            c.create_table("t_heap", TableKind::Heap).await.ok()
        );
        until!(
            "the pair in sync",
            c.catalog()
                .await
                .ok()
                .filter(|cat| cat.pair(0).unwrap().primary.mode == Mode::Synced)
        );
        for key in 0..ROWS {
            c.begin().await.unwrap();
            c.insert("t_heap", key, key.to_le_bytes().to_vec())
                .await
                .unwrap();
            c.commit().await.unwrap();
        }
    })
    .await
    .unwrap();
    // Past the next checkpoint, so the rows sit in synced table blocks, not only in the WAL.
    madsim::time::sleep(cfg.checkpoint_interval * 2).await;

    let disk = world.hosts["sdw1"].disk.clone();
    let (table, len) = disk
        .files()
        .into_iter()
        .find(|(name, _)| name.starts_with("data/primary/gpseg0/base/"))
        .expect("the primary has a heap file");
    assert!(len >= 8192, "{table} holds at least one block");
    assert!(
        disk.corrupt(&table, 200, 0x10),
        "flip a bit inside the first block"
    );
    world.kill_host("sdw1");
    world.restart_host("sdw1");

    node.spawn(async move {
        let mut c = Client::new(vec![coordinator], Duration::from_secs(10));
        let catalog = until!(
            "the mirror promoted",
            c.catalog()
                .await
                .ok()
                .filter(|cat| cat.pair(0).unwrap().primary.dbid == 3)
        );
        assert_eq!(
            catalog.segments[&2].role,
            Role::Mirror,
            "the corrupt instance is marked failed, not serving"
        );
        for key in 0..ROWS {
            let row = until!("a read from the promoted mirror", read(&mut c, key).await);
            assert_eq!(
                row,
                Some(key.to_le_bytes().to_vec()),
                "acknowledged row {key}"
            );
        }
    })
    .await
    .unwrap();
}
