//! A mirror that comes back while its primary still holds the WAL it lacks catches up on its
//! own and the pair returns to Synchronized — no recovery tool involved.

use std::time::Duration;

use cluster::client::Client;
use cluster::model::catalog::{Catalog, Mode, Status};
use cluster::wal::TableKind;
use sim::config::RunConfig;
use sim::world::World;

fn mirror_state(cat: &Catalog) -> (Status, Mode) {
    let m = cat.pair(0).unwrap().mirror.unwrap();
    (m.status, m.mode)
}

async fn wait_for(c: &mut Client, what: &str, want: (Status, Mode)) -> Catalog {
    for _ in 0..400 {
        if let Ok(cat) = c.catalog().await {
            if mirror_state(&cat) == want {
                return cat;
            }
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn insert(c: &mut Client, key: i64) {
    c.begin().await.unwrap();
    c.insert("t", key, key.to_le_bytes().to_vec())
        .await
        .unwrap();
    c.commit().await.unwrap();
}

/// Seed 002 (segment mirroring): "If the mirror segment fails ... the primary's system state
/// changes to Change Tracking, and it tracks changes to be applied to the mirror when it is
/// recovered." Sequence: the pair is in sync; the mirror's host crashes; the prober marks it
/// down after the grace period and commits go on without it; the host returns; the mirror
/// catches up and the prober records the pair in sync again; then the primary fails and the
/// former mirror serves every row.
#[madsim::test]
async fn a_returning_mirror_catches_up_and_the_pair_is_synchronized_again() {
    let cfg = RunConfig::pair();
    let mut world = World::build(&cfg, 5);
    let coordinator = world.coordinator_addr.clone();
    let node = sim::world::credentials::client_node();
    let addr = coordinator.clone();
    node.spawn(async move {
        let mut c = Client::new(vec![addr], Duration::from_secs(30));
        for _ in 0..100 {
            if c.create_table("t", TableKind::Heap).await.is_ok() {
                break;
            }
            madsim::time::sleep(Duration::from_millis(100)).await;
        }
        wait_for(&mut c, "the pair in sync", (Status::Up, Mode::Synced)).await;
        for key in 0..20 {
            insert(&mut c, key).await;
        }
    })
    .await
    .unwrap();

    world.kill_host("sdw2");
    let addr = coordinator.clone();
    node.spawn(async move {
        let mut c = Client::new(vec![addr], Duration::from_secs(30));
        // Commits wait for the lost mirror until the prober marks it down, then go on.
        for key in 20..60 {
            insert(&mut c, key).await;
        }
        let cat = wait_for(
            &mut c,
            "the mirror marked down",
            (Status::Down, Mode::NotSynced),
        )
        .await;
        assert_eq!(
            cat.pair(0).unwrap().primary.mode,
            Mode::NotSynced,
            "both rows of the pair share mode n"
        );
    })
    .await
    .unwrap();

    world.restart_host("sdw2");
    let addr = coordinator.clone();
    node.spawn(async move {
        let mut c = Client::new(vec![addr], Duration::from_secs(30));
        let cat = wait_for(
            &mut c,
            "the pair synchronized again",
            (Status::Up, Mode::Synced),
        )
        .await;
        assert_eq!(cat.pair(0).unwrap().primary.dbid, 2, "no failover happened");
        insert(&mut c, 60).await;
    })
    .await
    .unwrap();

    world.kill_host("sdw1");
    node.spawn(async move {
        let mut c = Client::new(vec![coordinator], Duration::from_secs(30));
        for _ in 0..400 {
            let promoted = c
                .catalog()
                .await
                .map(|cat| cat.pair(0).unwrap().primary.dbid == 3)
                .unwrap_or(false);
            if promoted && c.begin().await.is_ok() {
                if let Ok(rows) = c.scan("t", 0).await {
                    let _ = c.commit().await;
                    assert_eq!(rows.len(), 61, "the resynchronized mirror holds every row");
                    return;
                }
            }
            madsim::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the resynchronized mirror was never promoted");
    })
    .await
    .unwrap();
}
