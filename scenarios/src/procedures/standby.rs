//! The standby coordinator procedures of seed 000 ("Using Master Mirroring"), step by step, as
//! named scenarios: each returns the `state` report after each step (`state -f` for the
//! standby, then `-e` and `-m`), named. `scenarios/tests/standby_procedures.rs` snapshots them;
//! `hasim scenario NAME` prints them (they are listed in [`crate::procedures::SCENARIOS`]).

use std::time::Duration;

use madsim::runtime::NodeHandle;
use madsim::time::Instant;

use cluster::admin::driver;
use cluster::admin::state::View;
use cluster::client::Client;
use cluster::model::catalog::{Catalog, Role, SegmentConfig, Status};
use cluster::standby::{MirroringStatus, SummaryState};

use crate::procedures::coordinator_failover::catalog_wals;
use crate::procedures::Steps;
use sim::config::RunConfig;
use sim::invariants::standby_catalog;
use sim::operator::harness::{
    all_keys, all_synchronized, create_table, insert_all_retrying, key_pairs, wait_catalog,
    AdminHarness,
};
use sim::world::STANDBY_HOST;

/// Runs scenario `name` of this module in `rt`; `None` if it is not one of them.
pub fn run(rt: &madsim::runtime::Runtime, name: &str, seed: u64) -> Option<Steps> {
    Some(match name {
        "add_standby" => rt.block_on(add_standby(seed)),
        "coordinator_fails_standby_activated" => {
            rt.block_on(coordinator_fails_standby_activated(seed))
        }
        "stale_standby_resynchronized" => rt.block_on(stale_standby_resynchronized(seed)),
        _ => return None,
    })
}

/// Two mirrored contents on two segment hosts, a coordinator `mdw`, and a host `smdw` ready for
/// a standby (nothing runs on it until `init-standby`).
fn with_standby_host() -> RunConfig {
    RunConfig {
        contents: 2,
        standby: true,
        ..RunConfig::pair()
    }
}

/// `state -f` (the coordinator, its standby and the mirroring view), then `state -e` and
/// `state -m`, run on the admin host against whichever coordinator in `addrs` is active, once
/// every segment pair is synchronized (the standby procedures leave the segments alone; a pair
/// that briefly resynchronizes is not what these steps show).
async fn state(h: &AdminHarness, addrs: &[String]) -> String {
    let addrs = addrs.to_vec();
    h.run(move |_, _| async move {
        let mut c = Client::new(addrs, Duration::from_secs(30));
        wait_catalog(&mut c, "segments synchronized", all_synchronized).await;
        let f = driver::state(&mut c, View::Standby).await.unwrap();
        format!("$ state -f\n{f}{}", crate::procedures::state(&mut c).await)
    })
    .await
}

/// A client on its own host committing `n` transactions, each a pair of keys on both contents
/// (two phases, a distributed-commit record in the catalog), `pause` apart, through whichever
/// coordinator in `addrs` is active; returns the pairs acknowledged, each with when.
fn commits(
    h: &AdminHarness,
    addrs: Vec<String>,
    n: usize,
    pause: Duration,
) -> madsim::task::JoinHandle<Vec<([i64; 2], Instant)>> {
    let node = h.new_client_host("client-1", "10.0.1.2");
    node.spawn(async move {
        let mut c = Client::new(addrs, Duration::from_secs(10));
        let mut acked = Vec::new();
        for pair in key_pairs(0, n, 2) {
            if insert_all_retrying(&mut c, "t", &pair).await {
                acked.push((pair, Instant::now()));
            }
            madsim::time::sleep(pause).await;
        }
        acked
    })
}

/// The keys of `acked`, sorted.
fn keys_of(acked: &[([i64; 2], Instant)]) -> Vec<i64> {
    let mut keys: Vec<i64> = acked.iter().flat_map(|(pair, _)| *pair).collect();
    keys.sort();
    keys
}

/// Every key of `n` pairs, sorted.
fn all_pairs(n: usize) -> Vec<i64> {
    let mut keys: Vec<i64> = key_pairs(0, n, 2).into_iter().flatten().collect();
    keys.sort();
    keys
}

/// Waits until the mirroring view has the standby Synchronized and holding every catalog
/// record the coordinator flushed (no commit in flight).
async fn caught_up(node: &NodeHandle, h: &AdminHarness) -> MirroringStatus {
    let mut last = None;
    for _ in 0..300 {
        let status = h.world.lock().unwrap().mirroring_status(node);
        match status.await {
            Ok(s)
                if s.summary_state == SummaryState::Synchronized
                    && s.standby_flushed_lsn == s.coordinator_flushed_lsn =>
            {
                return s
            }
            other => last = Some(other),
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the standby never caught up with the coordinator; last seen: {last:?}");
}

/// Creates table `t` and waits until every segment pair is synchronized.
async fn ready(h: &AdminHarness) {
    h.run(|mut c, _| async move {
        create_table(&mut c, "t").await;
        wait_catalog(&mut c, "synchronized", all_synchronized).await;
    })
    .await;
}

/// Seed 000, "To add a standby master to an existing system": 1. a running cluster without a
/// standby (Not Configured); 2. `init-standby -s smdw` while a client commits: the base backup
/// and the WAL recorded meanwhile bring the standby to Synchronized, and its catalog WAL is the
/// coordinator's, byte for byte; every commit made meanwhile is kept.
pub async fn add_standby(seed: u64) -> Steps {
    let h = AdminHarness::build(&with_standby_host(), seed);
    let addrs = h.world.lock().unwrap().coordinator_addrs();
    ready(&h).await;
    h.hosts
        .step("add_standby_0_not_configured", state(&h, &addrs).await);
    let client = commits(&h, addrs.clone(), 40, Duration::from_millis(50));
    madsim::time::sleep(Duration::from_millis(300)).await;
    let node = h.node().clone();
    let init = h
        .world
        .lock()
        .unwrap()
        .init_standby(&node, false, Duration::from_secs(30));
    let synced = init.await.expect("init-standby -s smdw");
    assert_eq!(synced.summary_state, SummaryState::Synchronized);
    let row = synced.standby.clone().expect("the standby's row");
    assert_eq!(
        (row.hostname.as_str(), row.role),
        (STANDBY_HOST, Role::Mirror)
    );
    let acked = keys_of(&client.await.unwrap());
    assert_eq!(acked, all_pairs(40), "every commit went through");
    let status = caught_up(&node, &h).await;
    // The standby's catalog is the coordinator's: its WAL is a byte-identical prefix of the
    // coordinator's, and holds all of it.
    let (standby_wal, coordinator_wal) = catalog_wals(&h.world.lock().unwrap());
    assert_eq!(standby_wal.len() as u64, status.coordinator_flushed_lsn);
    let differs = standby_catalog::check(
        &standby_wal,
        &coordinator_wal,
        status.standby_flushed_lsn,
        0,
    );
    assert!(differs.is_empty(), "{differs:#?}");
    h.hosts
        .step("add_standby_1_synchronized", state(&h, &addrs).await);
    let keys = h
        .run(|mut c, _| async move { all_keys(&mut c, "t", 2).await })
        .await;
    assert_eq!(keys, acked);
    h.hosts.steps()
}

/// Seed 000, "Failing Over to a Standby Master", then the coordinator back on its original
/// host: 1. a Synchronized standby; clients hold the list of coordinator addresses and commit;
/// 2. the coordinator's host fails; `activate-standby` on smdw (the lost coordinator fenced
/// first, so it never comes back beside the new one): it becomes the coordinator, the old
/// coordinator's row is down, the segments follow it, and the clients go on committing through
/// it; 3. (optional, recommended) a new standby: the original coordinator's host, repaired,
/// gets one with `init-standby -s mdw`: Synchronized; 4. the original hosts restored, as an
/// administrator does it: the coordinator on smdw stopped (`stop -m`), `activate-standby` on
/// mdw, and `init-standby -s smdw`: mdw is the coordinator again and smdw its Synchronized
/// standby. Every acknowledged commit is kept.
pub async fn coordinator_fails_standby_activated(seed: u64) -> Steps {
    let cfg = with_standby_host();
    let h = AdminHarness::build(&cfg, seed);
    let addrs = h.world.lock().unwrap().coordinator_addrs();
    ready(&h).await;
    let node = h.node().clone();
    let init = h
        .world
        .lock()
        .unwrap()
        .init_standby(&node, false, Duration::from_secs(30));
    let synced = init.await.expect("init-standby -s smdw");
    caught_up(&node, &h).await;
    h.hosts
        .step("activate_0_synchronized", state(&h, &addrs).await);
    let client = commits(&h, addrs.clone(), 30, Duration::from_millis(100));
    madsim::time::sleep(Duration::from_millis(700)).await;
    h.kill_host("mdw");
    madsim::time::sleep(Duration::from_secs(1)).await;
    let standby = synced.standby.expect("the standby's row");
    let text = activate_on(&h, "mdw", standby.clone()).await;
    let activated_at = Instant::now();
    assert!(
        text.contains(&format!("dbid {} on smdw", standby.dbid)),
        "{text}"
    );
    let acked = client.await.unwrap();
    let after = acked.iter().filter(|(_, at)| *at > activated_at).count();
    assert!(
        after > 0,
        "no commit went through the new coordinator: {acked:?}"
    );
    let acked = keys_of(&acked);
    let cat = catalog_once_synchronized(&h, &addrs).await;
    let me = &cat.segments[&standby.dbid];
    assert_eq!((me.role, me.status), (Role::Primary, Status::Up));
    assert_eq!(cat.segments[&1].status, Status::Down);
    h.hosts
        .step("activate_1_activated", state(&h, &addrs).await);
    // The repaired host boots without its fenced coordinator; a new standby goes there.
    h.restart_host("mdw");
    let on_mdw = new_standby_on(&h, "mdw").await;
    h.hosts
        .step("activate_2_new_standby", state(&h, &addrs).await);
    // Back to the original hosts: stop the coordinator on smdw, activate mdw's standby, and
    // put a new standby on smdw.
    {
        let mut world = h.world.lock().unwrap();
        world.fence_coordinator("smdw");
        world.restart_coordinator_process("smdw");
    }
    let text = activate_on(&h, "smdw", on_mdw.clone()).await;
    assert!(
        text.contains(&format!("dbid {} on mdw", on_mdw.dbid)),
        "{text}"
    );
    let cat = catalog_once_synchronized(&h, &addrs).await;
    let me = &cat.segments[&on_mdw.dbid];
    assert_eq!((me.role, me.status), (Role::Primary, Status::Up));
    h.hosts.step(
        "activate_3_coordinator_back_on_mdw",
        state(&h, &addrs).await,
    );
    new_standby_on(&h, "smdw").await;
    h.hosts
        .step("activate_4_standby_back_on_smdw", state(&h, &addrs).await);
    let keys = h
        .run(move |_, _| async move {
            let mut c = Client::new(addrs, Duration::from_secs(30));
            all_keys(&mut c, "t", 2).await
        })
        .await;
    for k in &acked {
        assert!(keys.contains(k), "acknowledged key {k} lost");
    }
    h.hosts.steps()
}

/// Fences the coordinator on `from` and runs `activate-standby` on `standby`'s host, as the
/// operator agent does; returns what it reported.
async fn activate_on(h: &AdminHarness, from: &str, standby: SegmentConfig) -> String {
    let from = from.to_string();
    h.run(move |_, hosts| async move {
        sim::operator::activate(&hosts, &from, &standby, false, true)
            .await
            .expect("activate-standby")
    })
    .await
}

/// `init-standby -s HOST` against the acting coordinator; waits until the standby holds every
/// catalog record; returns its row.
async fn new_standby_on(h: &AdminHarness, host: &str) -> SegmentConfig {
    let host = host.to_string();
    let status = h
        .run(move |_, hosts| async move {
            sim::operator::standby::init_standby(
                &hosts,
                &host,
                false,
                Duration::from_secs(30),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|e| panic!("init-standby -s {host}: {e}"))
        })
        .await;
    assert_eq!(status.summary_state, SummaryState::Synchronized);
    caught_up(h.node(), h).await;
    status.standby.expect("the new standby's row")
}

/// The catalog, asked of whichever coordinator is active, once every pair is synchronized.
async fn catalog_once_synchronized(h: &AdminHarness, addrs: &[String]) -> Catalog {
    let addrs = addrs.to_vec();
    h.run(move |_, _| async move {
        let mut c = Client::new(addrs, Duration::from_secs(30));
        wait_catalog(
            &mut c,
            "segments following the coordinator",
            all_synchronized,
        )
        .await
    })
    .await
}

/// Seed 000, "Resynchronizing Standby with the Master": 1. a Synchronized standby; 2. its host
/// goes down while commits go on: Not Synchronized, with the error, and the standby lags; the
/// host comes back, but nothing restarts the standby by itself; 3. `init-standby -n` restarts
/// it and it catches up: Synchronized, holding every commit (activated, it serves them all).
pub async fn stale_standby_resynchronized(seed: u64) -> Steps {
    let h = AdminHarness::build(&with_standby_host(), seed);
    let addrs = h.world.lock().unwrap().coordinator_addrs();
    ready(&h).await;
    let node = h.node().clone();
    let init = h
        .world
        .lock()
        .unwrap()
        .init_standby(&node, false, Duration::from_secs(30));
    let synced = init.await.expect("init-standby -s smdw");
    assert_eq!(synced.summary_state, SummaryState::Synchronized);
    caught_up(&node, &h).await;
    h.hosts
        .step("stale_0_synchronized", state(&h, &addrs).await);
    h.kill_host(STANDBY_HOST);
    // Commits go on while the standby is gone (after at most the stream's timeout).
    let acked = commits(&h, addrs.clone(), 20, Duration::from_millis(50))
        .await
        .unwrap();
    let acked = keys_of(&acked);
    assert_eq!(acked, all_pairs(20));
    let status = h.world.lock().unwrap().mirroring_status(&node);
    let stale = status.await.unwrap();
    assert_eq!(stale.summary_state, SummaryState::NotSynchronized);
    assert!(stale.error_message.is_some(), "{stale:?}");
    assert!(stale.log_time_ms > synced.log_time_ms, "{stale:?}");
    assert!(stale.standby_flushed_lsn < stale.coordinator_flushed_lsn);
    h.hosts
        .step("stale_1_not_synchronized", state(&h, &addrs).await);
    // The host comes back, but nothing starts the standby on it.
    h.restart_host(STANDBY_HOST);
    madsim::time::sleep(Duration::from_secs(5)).await;
    let status = h.world.lock().unwrap().mirroring_status(&node);
    assert_eq!(
        status.await.unwrap().summary_state,
        SummaryState::NotSynchronized
    );
    let init = h
        .world
        .lock()
        .unwrap()
        .init_standby(&node, true, Duration::from_secs(30));
    let resynced = init.await.expect("init-standby -n");
    assert_eq!(resynced.summary_state, SummaryState::Synchronized);
    assert!(resynced.log_time_ms > stale.log_time_ms);
    caught_up(&node, &h).await;
    h.hosts
        .step("stale_2_resynchronized", state(&h, &addrs).await);
    // What it missed is there: activated, it serves every row.
    h.kill_host("mdw");
    let activate = h.world.lock().unwrap().activate_standby(&node);
    let activation = activate.await.expect("activate-standby");
    assert_eq!(activation.dbid, synced.standby.unwrap().dbid);
    let keys = h
        .run(|_, _| async move {
            let mut c = Client::new(addrs, Duration::from_secs(30));
            all_keys(&mut c, "t", 2).await
        })
        .await;
    assert_eq!(keys, acked);
    h.hosts.steps()
}
