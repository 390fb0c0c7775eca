//! Seed 000 (master mirroring): a standby coordinator created while the coordinator serves,
//! kept Synchronized by WAL streaming, resynchronized with `init-standby -n` when stale, and
//! activated when the coordinator fails; and the refusals of gpinitstandby and
//! gpactivatestandby.

use std::time::Duration;

use cluster::catalog::{Role, Status};
use cluster::standby::SummaryState;
use sim::standby_failover;

fn run_seed(seed: u64, cfg: sim::config::RunConfig) -> standby_failover::FailoverReport {
    let mut rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.set_time_limit(Duration::from_secs(600));
    rt.block_on(standby_failover::run(cfg, seed))
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

/// The seed's procedure: init-standby while clients run, Synchronized, the coordinator's host
/// crashes, activate-standby; every acknowledged commit is read back through the new
/// coordinator, no distributed transaction is half-done, nothing stays prepared.
#[test]
fn the_activated_standby_keeps_every_acknowledged_commit() {
    let seed = 1;
    let r = run_seed(seed, standby_failover::config());
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
        r.ok > 0 && r.unknown + r.failed > 0,
        "ok {} failed {} unknown {}",
        r.ok,
        r.failed,
        r.unknown
    );
}
