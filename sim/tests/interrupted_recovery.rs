//! An incremental recovery (`recoverseg`) that stops before its rewind is done leaves a data
//! directory whose WAL may run past the point where the acting primary's history forked off.
//! Such a directory must wait for the next recovery, not stream from its own WAL end: a mirror
//! that did would count bytes laid after a foreign tail as flushed, be marked Synchronized, and
//! lose the primary's acknowledged commits when `recoverseg -r` promotes it.

use sim::config::RunConfig;
use sim::run::{run_seed, Verdict};

/// Standard seeds 938 and 559 (fault points armed): the old primary's recovery asks the acting
/// primary for WAL to compare just as that primary's host crashes (the point `rewind-midway`
/// of another instance on the same host); after the operator's restart the old primary came
/// back as a mirror and streamed from its own diverged WAL end, was marked Synchronized, and
/// `recoverseg -r` made it the primary without the commits acknowledged since the failover.
#[test]
fn a_recovery_cut_short_before_its_rewind_does_not_leave_a_mirror_that_streams() {
    for seed in [938, 559] {
        let (result, _) = run_seed(seed, &RunConfig::standard());
        assert!(
            result.points.contains_key("rewind-midway"),
            "seed {seed}: the recovery is cut short by a host crash at rewind-midway: {:?}",
            result.points
        );
        assert_eq!(
            result.verdict,
            Verdict::Ok,
            "seed {seed}: {:?} {:#?}\nreplay: {}",
            result.error,
            result.violations,
            result.replay
        );
    }
}
