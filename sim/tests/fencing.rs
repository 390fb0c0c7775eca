//! Fencing by configuration epoch: an instance refuses work stamped with an older epoch than the
//! newest it has seen.

use std::time::Duration;

use cluster::catalog::Mode;
use cluster::client::Client;
use cluster::io::net::Connection;
use cluster::proto::{DbError, SegmentRequest, SegmentResponse};
use cluster::wal::TableKind;
use sim::config::RunConfig;
use sim::world::World;

async fn call(addr: &str, req: SegmentRequest) -> SegmentResponse {
    let mut conn = Connection::connect(addr, Duration::from_secs(1))
        .await
        .unwrap();
    conn.call(&req, Duration::from_secs(5)).await.unwrap()
}

/// DESIGN (fault detection): "every decision is a catalog change with a new configuration epoch;
/// segments refuse work stamped with an older epoch". Sequence: the pair comes up in sync; a
/// probe stamped with a newer epoch reaches the primary (as after a catalog change); a
/// transaction and a SYNCREP_OFF stamped with an older epoch are refused; a transaction stamped
/// with the newer epoch is accepted, and the primary still waits for its mirror.
#[madsim::test]
async fn work_stamped_with_an_older_configuration_epoch_is_refused() {
    let world = World::build(&RunConfig::pair(), 11);
    let coordinator = world.coordinator_addr.clone();
    let primary = world
        .segments
        .iter()
        .find(|s| s.dbid == 2)
        .unwrap()
        .endpoint();
    let node = madsim::runtime::Handle::current()
        .create_node()
        .name("client")
        .ip("10.0.1.1".parse().unwrap())
        .build();
    node.spawn(async move {
        let mut c = Client::new(vec![coordinator], Duration::from_secs(10));
        let mut ready = None;
        for _ in 0..200 {
            let _ = c.create_table("t", TableKind::Heap).await;
            if let Ok(cat) = c.catalog().await {
                if cat.pair(0).unwrap().primary.mode == Mode::Synced {
                    ready = Some(cat.epoch);
                    break;
                }
            }
            madsim::time::sleep(Duration::from_millis(250)).await;
        }
        let newer = ready.expect("the pair came up in sync") + 10;
        match call(&primary, SegmentRequest::Probe { dbid: 2, content: 0, epoch: newer }).await {
            SegmentResponse::Probe(reply) => assert!(reply.syncrep_enabled),
            other => panic!("{other:?}"),
        }

        let stale = call(&primary, SegmentRequest::Begin { xid: 7, epoch: newer - 1 }).await;
        assert!(matches!(&stale, SegmentResponse::Error(DbError::Failed(m)) if m.contains(&format!("stale configuration epoch {}", newer - 1))), "{stale:?}");
        let stale = call(&primary, SegmentRequest::SyncrepOff { dbid: 2, epoch: newer - 1 }).await;
        assert!(matches!(&stale, SegmentResponse::Error(DbError::Failed(m)) if m.contains("stale configuration epoch")), "{stale:?}");

        let current = call(&primary, SegmentRequest::Begin { xid: 8, epoch: newer }).await;
        assert!(matches!(current, SegmentResponse::Ok), "{current:?}");
        match call(&primary, SegmentRequest::Probe { dbid: 2, content: 0, epoch: newer }).await {
            SegmentResponse::Probe(reply) => assert!(reply.syncrep_enabled, "the stale SYNCREP_OFF changed nothing"),
            other => panic!("{other:?}"),
        }
    })
    .await
    .unwrap();
}
