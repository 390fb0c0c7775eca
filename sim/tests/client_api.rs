//! The client API through the whole stack (client → coordinator → primary → mirror): a
//! transaction sees its own writes, others see only committed ones, abort leaves nothing.

use std::time::Duration;

use cluster::client::Client;
use cluster::model::catalog::Mode;
use cluster::wal::TableKind;
use cluster::wire::DbError;
use sim::config::RunConfig;
use sim::world::World;

async fn ready(c: &mut Client) {
    for _ in 0..200 {
        let created = c.create_table("t", TableKind::Heap).await.is_ok()
            && c.create_table("log", TableKind::AppendOptimized)
                .await
                .is_ok();
        if created
            && c.catalog()
                .await
                .map(|cat| cat.pair(0).unwrap().primary.mode == Mode::Synced)
                .unwrap_or(false)
        {
            return;
        }
        madsim::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("cluster never became ready");
}

async fn phase_1(a: &mut Client, b: &mut Client) {
    let _ = &b;
    a.begin().await.unwrap();
    a.insert("t", 1, b"one".to_vec()).await.unwrap();
    a.insert("t", 2, b"two".to_vec()).await.unwrap();
    assert_eq!(
        a.get("t", 1).await.unwrap(),
        Some(b"one".to_vec()),
        "a transaction sees its own insert"
    );
    b.begin().await.unwrap();
    assert_eq!(
        b.get("t", 1).await.unwrap(),
        None,
        "others do not see uncommitted rows"
    );
    b.commit().await.unwrap();
    a.commit().await.unwrap();
}

async fn phase_2(a: &mut Client, b: &mut Client) {
    let _ = &b;
    a.begin().await.unwrap();
    let dup = a.insert("t", 1, b"again".to_vec()).await.unwrap_err();
    assert!(
        matches!(&dup, DbError::Failed(m) if m.contains("duplicate key")),
        "{dup}"
    );
    a.abort().await.unwrap();
}

async fn phase_3(a: &mut Client, b: &mut Client) {
    let _ = &b;
    a.begin().await.unwrap();
    assert_eq!(a.update("t", 1, b"uno".to_vec()).await.unwrap(), 1);
    assert_eq!(
        a.update("t", 99, b"none".to_vec()).await.unwrap(),
        0,
        "updating a missing row changes nothing"
    );
    assert_eq!(a.delete("t", 2).await.unwrap(), 1);
    assert_eq!(
        a.scan("t", 0).await.unwrap(),
        vec![(1, b"uno".to_vec())],
        "scan sees the transaction's own changes"
    );
    a.commit().await.unwrap();
}

async fn phase_4(a: &mut Client, b: &mut Client) {
    let _ = &b;
    a.begin().await.unwrap();
    a.insert("t", 3, b"three".to_vec()).await.unwrap();
    a.delete("t", 1).await.unwrap();
    a.abort().await.unwrap();
    b.begin().await.unwrap();
    assert_eq!(
        b.scan("t", 0).await.unwrap(),
        vec![(1, b"uno".to_vec())],
        "an aborted transaction leaves nothing"
    );
    b.commit().await.unwrap();
}

async fn phase_5(a: &mut Client, b: &mut Client) {
    let _ = &b;
    a.begin().await.unwrap();
    a.insert("log", 10, b"entry".to_vec()).await.unwrap();
    a.commit().await.unwrap();
    a.begin().await.unwrap();
    let refused = a.update("log", 10, b"changed".to_vec()).await;
    assert!(
        matches!(&refused, Err(DbError::Failed(m)) if m.contains("append")),
        "append-optimized rows are not updated: {refused:?}"
    );
    a.abort().await.unwrap();
}

async fn phase_6(a: &mut Client, b: &mut Client) {
    let _ = &b;
    a.begin().await.unwrap();
    let missing = a.get("nope", 1).await.unwrap_err();
    assert!(
        matches!(&missing, DbError::Failed(m) if m.contains("relation \"nope\" does not exist")),
        "{missing}"
    );
}

#[madsim::test]
async fn begin_insert_update_delete_get_scan_commit_and_abort_behave_as_a_database_should() {
    let world = World::build(&RunConfig::pair(), 1);
    let coordinator = world.coordinator_addr.clone();
    let node = sim::world::credentials::client_node();
    node.spawn(async move {
        let mut a = Client::new(vec![coordinator.clone()], Duration::from_secs(10));
        let mut b = Client::new(vec![coordinator], Duration::from_secs(10));
        ready(&mut a).await;

        Box::pin(phase_1(&mut a, &mut b)).await;
        Box::pin(phase_2(&mut a, &mut b)).await;
        Box::pin(phase_3(&mut a, &mut b)).await;
        Box::pin(phase_4(&mut a, &mut b)).await;
        Box::pin(phase_5(&mut a, &mut b)).await;
        Box::pin(phase_6(&mut a, &mut b)).await;
    })
    .await
    .unwrap();
}
