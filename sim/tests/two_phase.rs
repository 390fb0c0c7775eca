//! Distributed transactions through the whole stack, on a cluster of two contents.

use std::time::Duration;

use cluster::client::Client;
use cluster::coordinator::content_for_key;
use cluster::model::catalog::Mode;
use cluster::wal::TableKind;
use sim::config::RunConfig;
use sim::world::World;

fn two_contents() -> RunConfig {
    RunConfig {
        contents: 2,
        ..RunConfig::pair()
    }
}

/// The first key at or after `from` that lives on `content`.
fn key_on(content: i16, from: i64) -> i64 {
    (from..)
        .find(|k| content_for_key(*k, 2) == content)
        .unwrap()
}

async fn ready(c: &mut Client) {
    for _ in 0..200 {
        let synced = |cat: &cluster::model::catalog::Catalog| {
            cat.pairs().iter().all(|p| p.primary.mode == Mode::Synced)
        };
        if c.create_table("t", TableKind::Heap).await.is_ok()
            && c.catalog().await.map(|cat| synced(&cat)).unwrap_or(false)
        {
            return;
        }
        madsim::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("cluster never became ready");
}

async fn rows(c: &mut Client) -> Vec<(i64, Vec<u8>)> {
    let mut all = Vec::new();
    for content in 0..2 {
        c.begin().await.unwrap();
        all.extend(c.scan("t", content).await.unwrap());
        c.commit().await.unwrap();
    }
    all.sort();
    all
}

async fn commits_on_both_contents_or_neither(c: &mut Client, world_hosts: Vec<String>) {
    let _ = world_hosts;
    let (a, b) = (key_on(0, 0), key_on(1, 0));
    c.begin().await.unwrap();
    c.insert("t", a, b"a".to_vec()).await.unwrap();
    c.insert("t", b, b"b".to_vec()).await.unwrap();
    c.commit().await.unwrap();
    assert_eq!(rows(c).await, {
        let mut v = vec![(a, b"a".to_vec()), (b, b"b".to_vec())];
        v.sort();
        v
    });

    let (x, y) = (key_on(0, a + 1), key_on(1, b + 1));
    c.begin().await.unwrap();
    c.insert("t", x, b"x".to_vec()).await.unwrap();
    c.insert("t", y, b"y".to_vec()).await.unwrap();
    c.abort().await.unwrap();
    assert_eq!(
        rows(c).await.len(),
        2,
        "an aborted distributed transaction leaves nothing on either content"
    );

    // A duplicate key on one content fails that statement; the transaction is then abandoned.
    c.begin().await.unwrap();
    c.insert("t", x, b"x".to_vec()).await.unwrap();
    assert!(c.insert("t", b, b"again".to_vec()).await.is_err());
    c.abort().await.unwrap();
    assert_eq!(rows(c).await.len(), 2);
}

/// Seed 002 (distributed transactions): prepare on every participant, a durable commit record
/// on the coordinator, then commit prepared. Sequence: a transaction writes on both contents and
/// commits; both rows are there; an aborted one leaves nothing anywhere.
#[madsim::test]
async fn a_transaction_on_two_contents_commits_on_both_or_neither() {
    let world = World::build(&two_contents(), 3);
    let coordinator = world.coordinator_addr.clone();
    let hosts = world.segment_host_names();
    let node = sim::world::credentials::client_node();
    node.spawn(async move {
        let mut c = Client::new(vec![coordinator], Duration::from_secs(10));
        ready(&mut c).await;
        Box::pin(commits_on_both_contents_or_neither(&mut c, hosts)).await;
    })
    .await
    .unwrap();
}
