//! Seed 000 (master mirroring): a standby coordinator created while the coordinator serves,
//! kept Synchronized by WAL streaming, and activated when the coordinator fails; the refusals
//! of gpinitstandby and gpactivatestandby; planted bugs in the catalog stream. The seed's
//! procedures step by step (adding a standby, failing over, resynchronizing a stale standby
//! with `init-standby -n`) are `scenarios::procedures::standby`, snapshotted in
//! `scenarios/tests/standby_procedures.rs`.

use std::time::Duration;

use cluster::client::Client;
use cluster::model::catalog::{Role, SegmentConfig, Status};
use cluster::standby::admin::{self, StandbyAdminError};
use cluster::standby::{ActivateRefusal, StandbyRequest, SummaryState};
use scenarios::procedures::coordinator_failover;
use sim::world::{World, STANDBY_HOST};

/// Runs `f` in a fresh runtime seeded with `seed`, on a fresh thread (madsim seeds hash maps
/// per thread, as the runner does), capturing the log; on a panic, prints the standby's lines.
fn in_runtime<T, F>(seed: u64, f: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + 'static,
{
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || in_runtime_here(seed, f))
        .unwrap()
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn in_runtime_here<T, F: std::future::Future<Output = T> + 'static>(
    seed: u64,
    f: impl FnOnce() -> F,
) -> T {
    in_runtime_hashed(seed, f).0
}

/// Also returns the run's trace hash.
fn in_runtime_hashed<T, F: std::future::Future<Output = T> + 'static>(
    seed: u64,
    f: impl FnOnce() -> F,
) -> (T, u64) {
    let mut rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.set_time_limit(Duration::from_secs(600));
    sim::trace::install("info");
    sim::trace::begin_capture();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(f())));
    let (log, hash) = sim::trace::end_capture();
    match r {
        Ok(v) => (v, hash),
        Err(p) => {
            let log = String::from_utf8_lossy(&log);
            for l in log.lines().filter(|l| l.contains("standby")) {
                eprintln!("{l}");
            }
            std::panic::resume_unwind(p)
        }
    }
}

fn run_seed(seed: u64, cfg: sim::config::RunConfig) -> coordinator_failover::FailoverReport {
    in_runtime(seed, move || coordinator_failover::run(cfg, seed))
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

/// The seed's procedure: init-standby while clients run, Synchronized, the coordinator's host
/// crashes, activate-standby; every acknowledged commit is read back through the new
/// coordinator, no distributed transaction is half-done, nothing stays prepared.
#[test]
fn the_activated_standby_keeps_every_acknowledged_commit() {
    let seed = 1;
    let r = run_seed(seed, coordinator_failover::config());
    eprintln!("{r:#?}");
    assert_eq!(r.synchronized.summary_state, SummaryState::Synchronized);
    assert!(r.synchronized.log_time_ms.is_some());
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert!(
        r.prepared_left.values().all(|p| p.is_empty()),
        "{:?}",
        r.prepared_left
    );
    let me = &r.catalog.segments[&r.activation.dbid];
    assert_eq!(
        (me.content, me.role, me.status),
        (-1, Role::Primary, Status::Up)
    );
    let old = &r.catalog.segments[&1];
    assert_eq!((old.content, old.status), (-1, Status::Down));
    assert!(
        r.ok_after_activation > 0,
        "no client committed through the new coordinator"
    );
    assert!(
        r.ok > 0 && r.unknown + r.failed > 0,
        "ok {} failed {} unknown {}",
        r.ok,
        r.failed,
        r.unknown
    );
}

/// Planted bug `activation-ignores-commit-records`: the activated standby rolls back prepared
/// transactions whose commit record it holds. A distributed transaction caught in its second
/// phase by the crash is then committed on some contents and rolled back on others, which
/// the atomicity checker reports; the same seed without the bug is clean.
#[test]
fn activation_that_ignores_commit_records_is_caught() {
    let mut buggy = coordinator_failover::config();
    buggy
        .bugs
        .enable("activation-ignores-commit-records")
        .unwrap();
    let (seed, violations) = (1..=20u64)
        .find_map(|seed| {
            let r = run_seed(seed, buggy.clone());
            r.violations
                .iter()
                .any(|v| v.checker == sim::invariants::aborted_stays_aborted::NAME)
                .then_some((seed, r.violations))
        })
        .expect("no seed in 1..=20 caught the planted bug");
    eprintln!("caught at seed {seed}: {violations:#?}");
    let clean = run_seed(seed, coordinator_failover::config());
    assert!(clean.violations.is_empty(), "{:#?}", clean.violations);
}

async fn one_forget_left_unflushed(bug: bool) -> Vec<sim::invariants::Violation> {
    let mut cfg = coordinator_failover::config();
    if bug {
        cfg.bugs.enable("walsender-ships-unflushed-wal").unwrap();
    }
    let mut world = World::build(&cfg, 11);
    let admin = madsim::runtime::Handle::current()
        .create_node()
        .name("admin")
        .ip("10.0.1.1".parse().unwrap())
        .build();
    sim::world::credentials::enroll(&admin, cluster::io::auth::PeerIdentity::Admin);
    admin
        .spawn(sim::run::create_tables(
            world.coordinator_addr.clone(),
            Duration::from_secs(7),
        ))
        .await
        .unwrap()
        .unwrap();
    world
        .init_standby(&admin, false, Duration::from_secs(30))
        .await
        .unwrap();
    // One distributed transaction: its commit record is flushed (and on the standby); the
    // record's forget that follows is written but not flushed, and the host crashes before
    // any later catalog change flushes it. The crash waits 150 ms, so that the shipped record
    // has reached the standby before its host goes (the coordinator's disk is drawn per host
    // now, and its flush may take longer than 50 ms).
    commit_pairs(&admin, vec![world.coordinator_addr.clone()], 0, 1).await;
    madsim::time::sleep(Duration::from_millis(150)).await;
    world.kill_host("mdw");
    let activation = world.activate_standby(&admin).await.unwrap();
    let (standby_wal, coordinator_wal) = coordinator_failover::catalog_wals(&world);
    sim::invariants::standby_catalog::check(&standby_wal, &coordinator_wal, activation.end_lsn, 0)
}

/// Planted bug `walsender-ships-unflushed-wal`: the coordinator streams catalog WAL before it
/// is durable on its own disk. Scripted: a distributed transaction's forget record is written
/// and never flushed, then the coordinator's host crashes and loses it; the buggy sender had
/// shipped it, so the activated standby's catalog is one the coordinator never had: the
/// standby-catalog checker says so. Without the bug the same run is clean.
#[test]
fn a_walsender_shipping_unflushed_wal_is_caught() {
    let caught = in_runtime(5, || Box::pin(one_forget_left_unflushed(true)));
    assert!(
        caught
            .iter()
            .any(|v| v.checker == sim::invariants::standby_catalog::NAME
                && v.message.contains("never made durable")),
        "{caught:#?}"
    );
    let clean = in_runtime(5, || Box::pin(one_forget_left_unflushed(false)));
    assert!(clean.is_empty(), "{clean:#?}");
}

/// One catalog change (a new table) acknowledged to its client while the standby is
/// Synchronized; then power fails on the standby's host and on the coordinator's before the
/// standby flushes anything more; the standby's host comes back, the operator starts the
/// standby and activates it. Returns what the standby-catalog checker says.
async fn acknowledged_table_then_both_hosts_fail(bug: bool) -> Vec<sim::invariants::Violation> {
    let mut cfg = coordinator_failover::config();
    if bug {
        cfg.bugs.enable("standby-acks-unflushed-wal").unwrap();
    }
    let recorder = sim::observer::Recorder::default();
    let mut world = World::build_observed(&cfg, 13, recorder.hook());
    let admin = madsim::runtime::Handle::current()
        .create_node()
        .name("admin")
        .ip("10.0.1.1".parse().unwrap())
        .build();
    sim::world::credentials::enroll(&admin, cluster::io::auth::PeerIdentity::Admin);
    admin
        .spawn(sim::run::create_tables(
            world.coordinator_addr.clone(),
            Duration::from_secs(7),
        ))
        .await
        .unwrap()
        .unwrap();
    let synced = world
        .init_standby(&admin, false, Duration::from_secs(30))
        .await
        .unwrap();
    // Quiet for a while: whatever the standby received so far is flushed.
    madsim::time::sleep(Duration::from_secs(3)).await;
    let coordinator = world.coordinator_addr.clone();
    admin
        .spawn(async move {
            let mut c = Client::new(vec![coordinator], Duration::from_secs(10));
            c.create_table("t_new", cluster::wal::TableKind::Heap).await
        })
        .await
        .unwrap()
        .unwrap();
    world.kill_host(STANDBY_HOST);
    world.kill_host("mdw");
    world.restart_host(STANDBY_HOST);
    world
        .standby
        .as_ref()
        .unwrap()
        .launch(&synced.standby.unwrap());
    madsim::time::sleep(Duration::from_secs(1)).await;
    let activation = world.activate_standby(&admin).await.unwrap();
    let now = sim::workload::now_ms();
    let (standby_wal, coordinator_wal) = coordinator_failover::catalog_wals(&world);
    let mut violations = sim::invariants::standby_catalog::check(
        &standby_wal,
        &coordinator_wal,
        activation.end_lsn,
        now,
    );
    violations.extend(sim::invariants::standby_catalog::check_acknowledged(
        &recorder.facts(),
        activation.end_lsn,
        now,
    ));
    violations
}

/// Planted bug `standby-acks-unflushed-wal`: the standby's walreceiver reports catalog WAL as
/// flushed once it is only written. The coordinator acknowledges a new table on that report;
/// the standby's host loses power before the write is durable, the coordinator's host fails
/// too, and the activated standby has no such table: the standby-catalog checker says the
/// coordinator acted on catalog WAL the activated standby lacks. Without the bug the standby
/// flushed before it reported, and the same run is clean.
#[test]
fn a_standby_acknowledging_unflushed_wal_is_caught() {
    let caught = in_runtime(6, || {
        Box::pin(acknowledged_table_then_both_hosts_fail(true))
    });
    eprintln!("{caught:#?}");
    assert!(
        caught
            .iter()
            .any(|v| v.checker == sim::invariants::standby_catalog::NAME
                && v.message
                    .contains("a catalog change the cluster was told about is lost")),
        "{caught:#?}"
    );
    let clean = in_runtime(6, || {
        Box::pin(acknowledged_table_then_both_hosts_fail(false))
    });
    assert!(clean.is_empty(), "{clean:#?}");
}

/// A world with a standby host and no workload, its tables created, and an admin node.
async fn quiet_world() -> (World, madsim::runtime::NodeHandle) {
    let world = World::build(&coordinator_failover::config(), 7);
    let admin = madsim::runtime::Handle::current()
        .create_node()
        .name("admin")
        .ip("10.0.1.1".parse().unwrap())
        .build();
    sim::world::credentials::enroll(&admin, cluster::io::auth::PeerIdentity::Admin);
    admin
        .spawn(sim::run::create_tables(
            world.coordinator_addr.clone(),
            Duration::from_secs(7),
        ))
        .await
        .unwrap()
        .unwrap();
    (world, admin)
}

/// `n` transactions, each a pair of keys from `from` up on two contents (so each commits in
/// two phases), through `addrs`.
async fn commit_pairs(node: &madsim::runtime::NodeHandle, addrs: Vec<String>, from: i64, n: usize) {
    node.spawn(async move {
        let mut c = Client::new(addrs, Duration::from_secs(10));
        for [a, b] in sim::operator::harness::key_pairs(from, n, 4) {
            c.begin().await.unwrap();
            c.insert("t_heap", a, b"stale".to_vec()).await.unwrap();
            c.insert("t_heap", b, b"stale".to_vec()).await.unwrap();
            c.commit().await.unwrap();
        }
    })
    .await
    .unwrap()
}

async fn refusals() {
    let (mut world, admin) = quiet_world().await;
    let coordinator = world.coordinator_addr.clone();
    let standby = world.standby.as_ref().unwrap().addr.clone();
    let none = world.mirroring_status(&admin).await.unwrap();
    assert_eq!(none.summary_state, SummaryState::NotConfigured);
    assert_eq!((none.log_time_ms, none.error_message), (None, None));
    // -s with -n.
    let both = admin::init_mode(
        Some(admin::NewStandby {
            hostname: "smdw".into(),
            address: "10.0.2.1".into(),
            port: 5432,
            datadir: "/data/standby".into(),
        }),
        true,
    )
    .unwrap_err();
    assert_eq!(both, StandbyAdminError::BothModes);
    assert!(both
        .to_string()
        .contains("-s and -n cannot be used together"));
    // -n with no standby configured.
    let err = world
        .init_standby(&admin, true, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err, StandbyAdminError::NothingToResync);
    assert_eq!(
        world.mirroring_status(&admin).await.unwrap().summary_state,
        SummaryState::NotConfigured,
        "a refusal changes nothing"
    );
    let synced = world
        .init_standby(&admin, false, Duration::from_secs(30))
        .await
        .unwrap();
    let epoch = catalog_epoch(&admin, coordinator.clone()).await;
    // A second standby: refused by the tool, and by the coordinator itself.
    let err = world
        .init_standby(&admin, false, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StandbyAdminError::AlreadyConfigured { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("only one standby is allowed"),
        "{err}"
    );
    let row = synced.standby.clone().unwrap();
    let coordinator_row = world.coordinator_row();
    let direct = admin
        .spawn({
            let coordinator = coordinator.clone();
            async move {
                let mut c = Client::new(vec![coordinator], Duration::from_secs(5));
                c.standby(StandbyRequest::Register {
                    coordinator: coordinator_row,
                    standby: SegmentConfig { port: 5433, ..row },
                })
                .await
            }
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        direct.to_string().contains("only one standby is allowed"),
        "{direct}"
    );
    // The standby refuses client work while it is a standby.
    let refused = admin
        .spawn({
            let standby = standby.clone();
            async move {
                let mut c = Client::new(vec![standby], Duration::from_secs(5));
                c.begin().await
            }
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        refused.to_string().contains("is a warm standby"),
        "{refused}"
    );
    // Activation while the coordinator is alive and reachable.
    let err = world.activate_standby(&admin).await.unwrap_err();
    assert!(err.to_string().contains("still alive"), "{err}");
    // The reason travels typed, for the operator to act on.
    assert!(refused_as_coordinator_alive(&err), "{err:?}");
    assert_eq!(
        catalog_epoch(&admin, coordinator).await,
        epoch,
        "refusals change nothing"
    );
    assert_eq!(
        world.mirroring_status(&admin).await.unwrap().summary_state,
        SummaryState::Synchronized
    );
    // Once the coordinator is gone, activation goes ahead; a second one is refused.
    world.kill_host("mdw");
    world.activate_standby(&admin).await.unwrap();
    let again = world.activate_standby(&admin).await.unwrap_err();
    assert!(again.to_string().contains("already"), "{again}");
}

/// `init-standby -r` on a Synchronized standby whose process keeps running (the tool's caller
/// has not stopped it yet): the removal does not wait for it, its stream ends, its
/// reconnections are refused (the catalog no longer names it) and it receives nothing more;
/// commits wait for it no more; the mirroring view says Not Configured; a second removal, and
/// a removal naming another dbid, are refused.
async fn removal() {
    let (world, admin) = quiet_world().await;
    let coordinator = world.coordinator_addr.clone();
    let standby = world.standby.as_ref().unwrap().addr.clone();
    let synced = world
        .init_standby(&admin, false, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(synced.summary_state, SummaryState::Synchronized);
    let row = synced.standby.unwrap();
    commit_pairs(&admin, world.coordinator_addrs(), 0, 5).await;
    let epoch = catalog_epoch(&admin, coordinator.clone()).await;
    let began = madsim::time::Instant::now();
    let removed = remove_standby(&admin, coordinator.clone()).await.unwrap();
    assert_eq!(removed, row);
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "the removal waited for the standby it removes: {:?}",
        began.elapsed()
    );
    assert_eq!(catalog_epoch(&admin, coordinator.clone()).await, epoch + 1);
    let status = world.mirroring_status(&admin).await.unwrap();
    assert_eq!(status.summary_state, SummaryState::NotConfigured);
    assert_eq!(status.standby, None);
    // Its stream is over and stays over.
    madsim::time::sleep(Duration::from_secs(5)).await;
    let passive = |addr: String| {
        admin.spawn(async move {
            admin::passive_status(&addr, Duration::from_secs(1))
                .await
                .expect("the removed standby's process still answers")
        })
    };
    let first = passive(standby.clone()).await.unwrap();
    assert!(!first.streaming, "{first:?}");
    let began = madsim::time::Instant::now();
    commit_pairs(&admin, world.coordinator_addrs(), 100, 5).await;
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "commits waited for the removed standby: {:?}",
        began.elapsed()
    );
    madsim::time::sleep(Duration::from_secs(5)).await;
    let later = passive(standby.clone()).await.unwrap();
    assert!(!later.streaming, "{later:?}");
    assert_eq!(
        later.flushed_lsn, first.flushed_lsn,
        "the removed standby received more catalog WAL"
    );
    // Nothing left to remove; and the coordinator itself refuses a dbid it does not have.
    let err = remove_standby(&admin, coordinator.clone())
        .await
        .unwrap_err();
    assert_eq!(err, StandbyAdminError::NothingToRemove);
    let direct = admin
        .spawn({
            let coordinator = coordinator.clone();
            async move {
                let mut c = Client::new(vec![coordinator], Duration::from_secs(5));
                c.standby(StandbyRequest::Unregister { dbid: row.dbid })
                    .await
            }
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        direct
            .to_string()
            .contains("no standby coordinator is configured"),
        "{direct}"
    );
    assert_eq!(
        catalog_epoch(&admin, coordinator).await,
        epoch + 1,
        "refusals change nothing"
    );
}

#[test]
fn a_removed_standby_is_waited_for_and_streamed_to_no_more() {
    in_runtime(8, || Box::pin(removal()));
}

/// Whether an activation was refused because the old coordinator still answers, the reason
/// typed for the operator to act on.
fn refused_as_coordinator_alive(err: &StandbyAdminError) -> bool {
    matches!(
        err,
        StandbyAdminError::ActivateRefused {
            why: ActivateRefusal::CoordinatorAlive,
            ..
        }
    )
}

/// `init-standby -r` run from `node` against the coordinator at `addr`.
async fn remove_standby(
    node: &madsim::runtime::NodeHandle,
    addr: String,
) -> Result<SegmentConfig, StandbyAdminError> {
    node.spawn(async move {
        let mut c = Client::new(vec![addr], Duration::from_secs(5));
        admin::remove_standby(&mut c).await
    })
    .await
    .unwrap()
}

async fn catalog_epoch(node: &madsim::runtime::NodeHandle, addr: String) -> u64 {
    node.spawn(async move {
        let mut c = Client::new(vec![addr], Duration::from_secs(5));
        c.catalog().await.unwrap().epoch
    })
    .await
    .unwrap()
}

/// gpinitstandby's and gpactivatestandby's refusals, adapted: `-s` with `-n`; `-n` with no
/// standby; a second standby; activation while the coordinator still answers; client work
/// sent to a standby. Each is a clear error and changes nothing.
#[test]
fn the_standby_verbs_refuse_what_the_real_tools_refuse() {
    in_runtime(4, || Box::pin(refusals()));
}

/// A base backup cut short by a crash of the standby's host (fault point base-backup-midway):
/// `init-standby -s` reports the standby gone within seconds, as gpinitstandby reports its
/// failed pg_basebackup, instead of waiting out its 30 s for a standby no process runs (which
/// kept the operator from retrying within the liveness bound: standard seed 298, swarm seed
/// 499). Once the host is back, `init-standby -n` lays a new base backup over the half-made
/// directory and the standby becomes Synchronized.
async fn interrupted_base_backup() {
    use cluster::io::points::FaultPoint;
    use cluster::io::runtime::fault_points::{self, Action, Arming};
    let (mut world, admin) = quiet_world().await;
    fault_points::arm(vec![Arming {
        point: FaultPoint::BaseBackupMidway,
        action: Action::CrashHost,
        skip: 0,
        fires: 1,
    }]);
    let init = world.init_standby(&admin, false, Duration::from_secs(30));
    let hit = fault_points::next_hit().await;
    let crashed = madsim::time::Instant::now();
    world.kill_host(STANDBY_HOST);
    drop(hit);
    let err = init.await.unwrap_err();
    assert!(
        matches!(err, StandbyAdminError::StandbyGone { .. }),
        "{err}"
    );
    let waited = crashed.elapsed();
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    fault_points::disarm();
    world.restart_host(STANDBY_HOST);
    let synced = world
        .init_standby(&admin, true, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(synced.summary_state, SummaryState::Synchronized);
}

#[test]
fn init_standby_stops_waiting_for_a_standby_whose_host_crashed_mid_base_backup() {
    in_runtime(5, || Box::pin(interrupted_base_backup()));
}

/// An old coordinator that comes back while an activation is under way (the standby stalled at
/// activation-midway, after replaying its WAL, while the old coordinator's host restarted and
/// it served again): asked right before the take-over, it answers, and the activation is
/// refused and undone, the standby streaming again. Asked only before the replay, the old
/// coordinator was still down, and the take-over would roll back, on some segments, what it
/// committed meanwhile on others (standard seed 372 once showed that shape).
async fn old_coordinator_back_mid_activation() {
    use cluster::io::points::FaultPoint;
    use cluster::io::runtime::fault_points::{self, Action, Arming};
    let (mut world, admin) = quiet_world().await;
    let coordinator = world.coordinator_addr.clone();
    let synced = world
        .init_standby(&admin, false, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(synced.summary_state, SummaryState::Synchronized);
    let epoch = catalog_epoch(&admin, coordinator.clone()).await;
    world.kill_host("mdw");
    fault_points::arm(vec![Arming {
        point: FaultPoint::ActivationMidway,
        action: Action::Pause(Duration::from_secs(1)),
        skip: 0,
        fires: 1,
    }]);
    let activation = world.activate_standby(&admin);
    // The standby waits at the point until the hit is let go: meanwhile the old coordinator's
    // host comes back and its coordinator answers again.
    let hit = fault_points::next_hit().await;
    world.restart_host("mdw");
    let addr = coordinator.clone();
    let back = admin
        .spawn(async move {
            let mut c = Client::new(vec![addr], Duration::from_secs(1));
            for _ in 0..100 {
                if let Ok(catalog) = c.catalog().await {
                    return Some(catalog.epoch);
                }
                madsim::time::sleep(Duration::from_millis(100)).await;
            }
            None
        })
        .await
        .unwrap();
    assert_eq!(back, Some(epoch), "the old coordinator serves again");
    hit.carry_on();
    let err = activation.await.unwrap_err();
    assert!(refused_as_coordinator_alive(&err), "{err:?}");
    fault_points::disarm();
    assert_eq!(
        catalog_epoch(&admin, coordinator).await,
        epoch,
        "the refused activation changed no configuration"
    );
    let mut synced = false;
    for _ in 0..50 {
        if world
            .mirroring_status(&admin)
            .await
            .map(|m| m.summary_state)
            == Ok(SummaryState::Synchronized)
        {
            synced = true;
            break;
        }
        madsim::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(synced, "the standby streams again after the refusal");
}

#[test]
fn an_old_coordinator_back_during_the_activation_refuses_it() {
    in_runtime(6, || Box::pin(old_coordinator_back_mid_activation()));
}

/// The failover replays bit for bit: the same seed gives the same trace hash.
#[test]
fn the_failover_is_deterministic() {
    let hash = || {
        std::thread::spawn(|| {
            in_runtime_hashed(2, || {
                coordinator_failover::run(coordinator_failover::config(), 2)
            })
            .1
        })
        .join()
        .unwrap()
    };
    assert_eq!(hash(), hash());
}
