//! Without mirroring, a segment failure makes the whole system non-operational until the
//! segment is back.

use std::time::Duration;

use cluster::client::Client;
use cluster::coordinator::content_for_key;
use cluster::wal::TableKind;
use cluster::wire::DbError;
use sim::config::RunConfig;
use sim::world::World;

async fn insert(c: &mut Client, key: i64) -> Result<(), DbError> {
    c.begin().await?;
    c.insert("t", key, vec![1]).await?;
    c.commit().await
}

/// Seed 002 (overview of mirroring): without mirrors, "a segment failure makes the system
/// non-operational". Sequence: two contents, no mirrors; the host of content 1 crashes; work on
/// content 0, whose host is fine, is refused with an error saying why; the host returns and the
/// system works again with every acknowledged row.
#[madsim::test]
async fn without_mirrors_one_failed_segment_stops_the_whole_system_until_it_returns() {
    let cfg = RunConfig {
        contents: 2,
        mirrors: false,
        ..RunConfig::pair()
    };
    let mut world = World::build(&cfg, 9);
    let coordinator = world.coordinator_addr.clone();
    let node = sim::world::credentials::client_node();
    let on_content_0: Vec<i64> = (0..)
        .filter(|k| content_for_key(*k, 2) == 0)
        .take(3)
        .collect();
    let host_of_content_1 = world
        .segments
        .iter()
        .find(|s| s.content == 1)
        .unwrap()
        .hostname
        .clone();

    let (addr, keys) = (coordinator.clone(), on_content_0.clone());
    node.spawn(async move {
        let mut c = Client::new(vec![addr], Duration::from_secs(10));
        for _ in 0..100 {
            if c.create_table("t", TableKind::Heap).await.is_ok() {
                break;
            }
            madsim::time::sleep(Duration::from_millis(100)).await;
        }
        insert(&mut c, keys[0]).await.unwrap();
    })
    .await
    .unwrap();

    world.kill_host(&host_of_content_1);
    let (addr, keys) = (coordinator.clone(), on_content_0.clone());
    node.spawn(async move {
        let mut c = Client::new(vec![addr], Duration::from_secs(10));
        madsim::time::sleep(cfg.probe.probe_interval * 3 + cfg.probe.probe_timeout * 4).await;
        let err = insert(&mut c, keys[1]).await.unwrap_err();
        assert!(matches!(&err, DbError::Failed(m) if m.contains("not operational") && m.contains("content 1")), "{err}");
        // Through SQL: SQLSTATE 57P03 (cannot connect now: a driver retries later), naming
        // the content.
        c.sql("CREATE TABLE IF NOT EXISTS s (k bigint PRIMARY KEY, v text)", false)
            .await
            .unwrap_err();
        let err = c
            .sql(&format!("INSERT INTO t VALUES ({}, 'x')", keys[1]), false)
            .await
            .unwrap_err();
        assert!(matches!(&err, DbError::Failed(m) if m.starts_with("57P03:") && m.contains("content 1")), "{err}");
    })
    .await
    .unwrap();

    world.restart_host(&host_of_content_1);
    node.spawn(async move {
        let mut c = Client::new(vec![coordinator], Duration::from_secs(10));
        let mut result = Err(DbError::Failed("not tried".into()));
        for _ in 0..100 {
            result = insert(&mut c, on_content_0[2]).await;
            if result.is_ok() {
                break;
            }
            madsim::time::sleep(Duration::from_millis(250)).await;
        }
        result.expect("the system is operational again");
        c.begin().await.unwrap();
        let rows: Vec<i64> = c
            .scan("t", 0)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(rows, vec![on_content_0[0], on_content_0[2]]);
    })
    .await
    .unwrap();
}
