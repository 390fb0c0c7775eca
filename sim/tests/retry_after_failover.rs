//! A transaction in flight when its segment's primary fails is rolled back and run again on the
//! promoted mirror; the client sees success, never a partial result.

use std::time::Duration;

use cluster::client::Client;
use sim::config::RunConfig;
use sim::world::World;
use tokio::sync::oneshot;

/// Seed 002 (fault detection): in-flight transactions "roll back and restart automatically on
/// the reconfigured set of segments". Sequence: a transaction inserts a row; the primary's host
/// crashes; the transaction's next statement waits while the prober promotes the mirror, then
/// the transaction runs again there from its first statement; commit succeeds and exactly its
/// rows are present.
#[madsim::test]
async fn a_transaction_in_flight_during_a_failover_is_retried_on_the_promoted_mirror() {
    let mut cfg = RunConfig::pair();
    cfg.statement_timeout = Duration::from_secs(20);
    let mut world = World::build(&cfg, 13);
    let coordinator = world.coordinator_addr.clone();
    let node = sim::world::credentials::client_node();
    let (mid_txn, crash_now) = oneshot::channel::<()>();
    let (crashed, after_crash) = oneshot::channel::<()>();
    let client = node.spawn(async move {
        let mut c = Client::new(vec![coordinator], Duration::from_secs(60));
        sim::operator::harness::table_on_a_synchronized_pair(&mut c, "t").await;
        c.begin().await.unwrap();
        c.insert("t", 1, b"first".to_vec()).await.unwrap();
        mid_txn.send(()).unwrap();
        after_crash.await.unwrap();
        c.insert("t", 2, b"second".to_vec())
            .await
            .expect("retried on the promoted mirror");
        c.commit().await.unwrap();
        let catalog = c.catalog().await.unwrap();
        assert_eq!(
            catalog.pair(0).unwrap().primary.dbid,
            3,
            "the mirror was promoted"
        );
        let rows = sim::operator::harness::scan_keys(&mut c, "t", 0).await;
        assert_eq!(
            rows,
            vec![1, 2],
            "both statements of the retried transaction, once each"
        );
    });
    crash_now.await.unwrap();
    world.kill_host("sdw1");
    crashed.send(()).unwrap();
    client.await.unwrap();
}
