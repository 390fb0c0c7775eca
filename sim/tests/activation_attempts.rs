//! The operator's record of activations, which the one-acting-coordinator checker takes as
//! ground truth: an `activate-standby` whose answer never came back (the standby's host lost
//! power while the activation resolved transactions left in doubt) may already have taken
//! over and told every instance its new generation. When the operator tries again and learns
//! the standby is the coordinator, the activation began with the first attempt, not the
//! second.

use sim::config::RunConfig;
use sim::run::run_seed;

/// Standard seed 100 (fault points armed): the standby on `smdw` was activated at 24.8 s and a
/// new standby made on `mdw`; then `smdw` was lost too. The operator activated the standby on
/// `mdw` at 51.4 s; it took over and announced generation 2 at 51.47 s (instances followed it),
/// and the connection closed before it answered. The retry at 57.2 s found it already
/// activated. Were the succession recorded as begun at the retry, every instance that obeyed
/// generation 2 at 51.47 s would count as obeying a deposed coordinator.
#[test]
fn an_activation_whose_answer_was_lost_began_with_its_first_attempt() {
    let (result, _) = run_seed(100, &RunConfig::standard());
    let activations: Vec<_> = result
        .operator
        .iter()
        .filter(|a| a.command.starts_with("activate-standby"))
        .collect();
    assert!(
        activations.len() >= 3
            && !activations[1].ok
            && activations[2].ok
            && activations[2].outcome.contains("already activated"),
        "the second activation's answer was lost and its retry found it done: {:#?}",
        result.operator
    );
    let wrong: Vec<_> = result
        .violations
        .iter()
        .filter(|v| v.checker == "one-acting-coordinator")
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}\nreplay: {}", result.replay);
}
