//! The standard cluster under host crashes, as a `#[madsim::test]` (seed from
//! `MADSIM_TEST_SEED`, default 0; `MADSIM_TEST_NUM` consecutive seeds).

use sim::config::RunConfig;
use sim::run::{run_in_current_runtime, Verdict};

/// DESIGN section 7, with seed 003's group mirroring: "host i's mirrors on host i + 1".
/// Sequence: 8 clients insert, update, delete, read and scan on 8 contents over 4 segment
/// hosts; hosts crash and restart for 60 simulated seconds; the prober fails primaries over to
/// their mirrors; everything heals; every read and the final state are checked against the
/// history.
#[madsim::test]
async fn the_standard_cluster_serves_the_latest_committed_values_through_host_crashes() {
    let result = run_in_current_runtime(RunConfig::standard()).await;
    assert!(
        result.events.ok > 500,
        "the workload made progress: {:?}",
        result.events
    );
    assert!(!result.faults.is_empty(), "the nemesis injected faults");
    assert_eq!(
        result.verdict,
        Verdict::Ok,
        "seed {}: {:?} {:?}\nreplay: {}",
        result.seed,
        result.violations,
        result.error,
        result.replay
    );
}
