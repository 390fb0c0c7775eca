//! An activation asks whether the old coordinator answers right before it takes over, not
//! before it stops receiving: an old coordinator that came back while the standby replayed its
//! WAL (or stalled there) may already have committed distributed transactions the standby
//! never received, and a take-over then rolls back, on some segments, what it committed on
//! others.

use sim::config::RunConfig;
use sim::run::{run_seed, Verdict};

/// Standard seed 372 (fault points armed): the coordinator's host restarted; the operator
/// activated the standby while the old coordinator was still recovering (it did not answer);
/// the standby stalled 1.4 s at activation-midway, after replaying its WAL, while the old
/// coordinator came up and served, committing a three-content transaction on one segment
/// just before the take-over's announcement fenced the others; the standby, lacking its
/// commit record, rolled the other two back (aborted-stays-aborted: half-applied). Asked after
/// the stall, the old coordinator answers, and the activation is refused and undone.
///
/// Since the disk speeds, late deliveries and corruption faults joined the standard scenario,
/// seed 372's run no longer reaches activation-midway, and no seed of 0..500 shows the shape
/// (an activation refused after its replay): the test waits for a seed that does.
#[test]
#[ignore = "seed 372 no longer reaches activation-midway since the standard scenario's draws changed"]
fn an_old_coordinator_back_during_the_activation_refuses_it() {
    let (result, _) = run_seed(372, &RunConfig::standard());
    assert!(
        result.points.contains_key("activation-midway"),
        "the standby stalls mid-activation: {:?}",
        result.points
    );
    assert_eq!(
        result.verdict,
        Verdict::Ok,
        "{:?} {:#?}\nreplay: {}",
        result.error,
        result.violations,
        result.replay
    );
}
