//! The operator's record of activations, which the one-acting-coordinator checker takes as
//! ground truth: an `activate-standby` whose answer never came back (the standby's host lost
//! power while the activation resolved transactions left in doubt) may already have taken
//! over and told every instance its new generation. When the operator tries again and learns
//! the standby is the coordinator, the activation began with the first attempt, not the
//! second.

use sim::config::RunConfig;
use sim::run::run_seed;

/// Standard seed 435 (fault points armed): the point catalog-written-before-announce crashed
/// `mdw` twice, so the standby on `smdw` was activated and a new standby made on `mdw`; then
/// both coordinator hosts lost power. The operator activated the standby on `mdw` at 46.16 s;
/// it took over and announced generation 2 at 46.18 s, and power went again before it
/// answered. The retry at 54.76 s found it already activated, and the succession was recorded
/// as begun then: every instance that obeyed generation 2 at 46.18 s counted as obeying a
/// deposed coordinator.
#[test]
fn an_activation_whose_answer_was_lost_began_with_its_first_attempt() {
    let (result, _) = run_seed(435, &RunConfig::standard());
    assert!(
        result
            .points
            .contains_key("catalog-written-before-announce"),
        "the point deposes mdw: {:?}",
        result.points
    );
    assert!(
        result
            .operator
            .iter()
            .filter(|a| a.command.starts_with("activate-standby"))
            .count()
            >= 2,
        "an activation was retried: {:#?}",
        result.operator
    );
    let wrong: Vec<_> = result
        .violations
        .iter()
        .filter(|v| v.checker == "one-acting-coordinator")
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}\nreplay: {}", result.replay);
}
