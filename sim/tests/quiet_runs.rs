//! A seed run without its log (as sweeps, hunts and benchmarks run every passing seed) gives
//! exactly what the same seed gives with its log: the trace hash, the verdict, the failover
//! milestones and the prober's catalog changes. The log only observes.

use sim::config::RunConfig;
use sim::run::{run_seed, run_seed_quiet};

fn same_with_and_without_the_log(seed: u64, cfg: &RunConfig) {
    let quiet = run_seed_quiet(seed, cfg);
    let (logged, log) = run_seed(seed, cfg);
    assert!(
        !log.is_empty(),
        "seed {seed}: the logged run captured no log"
    );
    assert_eq!(quiet.trace_hash, logged.trace_hash, "seed {seed}");
    assert_eq!(quiet.verdict, logged.verdict, "seed {seed}");
    assert_eq!(
        serde_json::to_value(&quiet.events).unwrap(),
        serde_json::to_value(&logged.events).unwrap(),
        "seed {seed}"
    );
    assert_eq!(
        serde_json::to_value(&quiet.failovers).unwrap(),
        serde_json::to_value(&logged.failovers).unwrap(),
        "seed {seed}: the failover milestones differ"
    );
    assert_eq!(
        serde_json::to_value(&quiet.operator).unwrap(),
        serde_json::to_value(&logged.operator).unwrap(),
        "seed {seed}"
    );
}

/// Pair seed 1 fails its primary over: the milestones (catalog flip, "promoted") are there.
#[test]
fn a_failover_reads_the_same_with_and_without_the_log() {
    let cfg = RunConfig::pair();
    let quiet = run_seed_quiet(1, &cfg);
    assert!(
        quiet.failovers.iter().any(|f| f.promoted_ms.is_some()),
        "pair seed 1 promotes a mirror: {:?}",
        quiet.failovers
    );
    same_with_and_without_the_log(1, &cfg);
}

/// Standard seed 2 logs warnings (instances that stop, a coordinator deposed): its logged run
/// has a log to compare.
#[test]
fn a_standard_seed_reads_the_same_with_and_without_the_log() {
    same_with_and_without_the_log(2, &RunConfig::standard());
}
