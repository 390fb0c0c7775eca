//! One linear WAL history per content, under partitions: a primary cut off from the
//! coordinator, whose mirror is not in sync, is not failed over — so when the partition heals
//! and the work it was sent meanwhile arrives late, it is still the only instance writing. With
//! the planted bug `promote-unsynced-mirror` the prober promotes the lagging mirror anyway, the
//! late work commits on the deposed primary beyond the promoted mirror's WAL, and the
//! linear-history checker reports the fork.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::client::Client;
use cluster::model::catalog::{Catalog, Mode, Status};
use cluster::wal::TableKind;
use madsim::net::NetSim;
use sim::config::RunConfig;
use sim::invariants::{linear_history, Violation};
use sim::observer::Recorder;
use sim::world::World;

fn mirror_state(cat: &Catalog) -> (Status, Mode) {
    let m = cat.pair(0).unwrap().mirror.unwrap();
    (m.status, m.mode)
}

async fn wait_for_mirror(coordinator: String, want: (Status, Mode)) {
    let mut c = Client::new(vec![coordinator], Duration::from_secs(5));
    for _ in 0..600 {
        if let Ok(cat) = c.catalog().await {
            if mirror_state(&cat) == want {
                return;
            }
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for the mirror to be {want:?}");
}

/// Clients that insert fresh keys one transaction at a time, forever.
async fn write_forever(coordinator: String, client: i64, acked: Arc<Mutex<Vec<i64>>>) {
    let mut c = Client::new(vec![coordinator], Duration::from_secs(60));
    for n in 0.. {
        let key = client * 1_000_000 + n;
        let ok = async {
            c.begin().await?;
            c.insert("t", key, key.to_le_bytes().to_vec()).await?;
            c.commit().await
        }
        .await;
        match ok {
            Ok(_) => acked.lock().unwrap().push(key),
            Err(_) => {
                let _ = c.abort().await;
                madsim::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A client that opens a transaction and inserts a row, then sends its commit only once the
/// primary is cut off: the commit waits in the partitioned link and arrives late.
async fn commit_late(coordinator: String, key: i64, cut: Arc<AtomicBool>) {
    let mut c = Client::new(vec![coordinator], Duration::from_secs(60));
    c.begin().await.unwrap();
    c.insert("t", key, key.to_le_bytes().to_vec())
        .await
        .unwrap();
    while !cut.load(Ordering::SeqCst) {
        madsim::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = c.commit().await;
}

fn clog_both(net: &NetSim, a: madsim::task::NodeId, b: madsim::task::NodeId, on: bool) {
    if on {
        net.clog_link(a, b);
        net.clog_link(b, a);
    } else {
        net.unclog_link(a, b);
        net.unclog_link(b, a);
    }
}

/// The pair is in sync; the link between primary and mirror is cut, so the prober marks the
/// mirror down and the primary commits alone (Change Tracking); then the primary is cut from the
/// coordinator for 20 s while clients keep sending it work; then every link heals.
async fn partition_a_lagging_pair(bug: bool) -> Vec<Violation> {
    let mut cfg = RunConfig::pair();
    if bug {
        cfg.bugs.enable("promote-unsynced-mirror").unwrap();
    }
    let recorder = Recorder::default();
    let world = World::build_observed(&cfg, 21, recorder.hook());
    let coordinator = world.coordinator_addr.clone();
    let node = |name: &str| world.hosts[name].processes[0].node.id();
    let (mdw, sdw1, sdw2) = (node("mdw"), node("sdw1"), node("sdw2"));
    let net = NetSim::current();
    let client = sim::world::credentials::client_node();

    let addr = coordinator.clone();
    client
        .spawn(async move {
            let mut c = Client::new(vec![addr.clone()], Duration::from_secs(10));
            for _ in 0..100 {
                if c.create_table("t", TableKind::Heap).await.is_ok() {
                    break;
                }
                madsim::time::sleep(Duration::from_millis(100)).await;
            }
            wait_for_mirror(addr, (Status::Up, Mode::Synced)).await;
        })
        .await
        .unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    for i in 0..16 {
        client.spawn(write_forever(coordinator.clone(), i, acked.clone()));
    }
    madsim::time::sleep(Duration::from_secs(2)).await;

    clog_both(&net, sdw1, sdw2, true);
    let addr = coordinator.clone();
    client
        .spawn(wait_for_mirror(addr, (Status::Down, Mode::NotSynced)))
        .await
        .unwrap();
    let before = acked.lock().unwrap().len();
    madsim::time::sleep(Duration::from_secs(2)).await;
    assert!(
        acked.lock().unwrap().len() > before,
        "the primary commits alone once its mirror is marked down"
    );

    let cut = Arc::new(AtomicBool::new(false));
    for key in 0..4 {
        client.spawn(commit_late(coordinator.clone(), -1 - key, cut.clone()));
    }
    madsim::time::sleep(Duration::from_secs(1)).await;
    clog_both(&net, mdw, sdw1, true);
    cut.store(true, Ordering::SeqCst);
    madsim::time::sleep(Duration::from_secs(20)).await;
    clog_both(&net, mdw, sdw1, false);
    clog_both(&net, sdw1, sdw2, false);
    madsim::time::sleep(Duration::from_secs(20)).await;
    linear_history::check(&recorder.facts())
}

#[madsim::test]
async fn a_lagging_mirror_is_not_promoted_so_the_history_stays_one_line() {
    let violations = partition_a_lagging_pair(false).await;
    assert!(violations.is_empty(), "{violations:?}");
}

#[madsim::test]
async fn promoting_the_lagging_mirror_forks_the_history_and_the_checker_says_so() {
    let violations = partition_a_lagging_pair(true).await;
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0]
            .message
            .contains("two instances accepted writes"),
        "{}",
        violations[0].message
    );
}
