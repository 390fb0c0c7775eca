//! The mirrored pair under host crashes, as `#[madsim::test]`s: the seed comes from
//! `MADSIM_TEST_SEED` (default 0), `MADSIM_TEST_NUM` runs that many consecutive seeds, and
//! `MADSIM_TEST_CHECK_DETERMINISM=1` makes madsim run each seed twice and compare.

use sim::config::RunConfig;
use sim::run::{run_in_current_runtime, Verdict};

/// Seed 002: "in synchronous mode a commit is acknowledged only after the mirror has flushed
/// the commit record". Sequence: clients insert; hosts crash and restart; the prober fails over;
/// everything heals; every acknowledged row is read back.
#[madsim::test]
async fn a_mirrored_pair_keeps_every_acknowledged_commit_through_host_crashes() {
    let result = run_in_current_runtime(RunConfig::pair()).await;
    assert!(
        result.events.ok > 50,
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
