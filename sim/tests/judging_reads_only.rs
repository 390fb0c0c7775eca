//! The checkers that judge as the run goes only read: a run with them is the run without them,
//! trace hash for trace hash. (They once read the simulated disk through the instance's own
//! read path, which costs device time and moved every later event.)

use sim::config::RunConfig;
use sim::run::run_seed;

#[test]
fn a_run_is_the_same_with_and_without_the_continuous_checks() {
    // Standard seeds 17 and 20 moved when the checkers' disk reads cost device time.
    for seed in [17, 20] {
        let with = RunConfig::standard();
        let mut without = RunConfig::standard();
        without.continuous_checks = false;
        let (judged, _) = run_seed(seed, &with);
        let (unjudged, _) = run_seed(seed, &without);
        assert_eq!(judged.trace_hash, unjudged.trace_hash, "seed {seed}");
        assert_eq!(judged.verdict, unjudged.verdict, "seed {seed}");
    }
}
