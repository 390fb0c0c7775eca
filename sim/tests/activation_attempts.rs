//! The operator's record of activations, which the one-acting-coordinator checker takes as
//! ground truth: an `activate-standby` whose answer never came back (the standby's host lost
//! power while the activation resolved transactions left in doubt) may already have taken
//! over and told every instance its new generation. When the operator tries again and learns
//! the standby is the coordinator, the activation began with the first attempt, not the
//! second.

use sim::config::RunConfig;
use sim::run::run_seed;

/// Standard seed 160 (fault points armed): the operator activated the standby on `smdw` at
/// 33.1 s and the connection closed before it answered; the retry at 42.4 s found it already
/// activated. Were the succession recorded as begun at the retry, every instance that obeyed
/// the new generation before it would count as obeying a deposed coordinator.
#[test]
fn an_activation_whose_answer_was_lost_began_with_its_first_attempt() {
    let (result, _) = run_seed(160, &RunConfig::standard());
    let activations: Vec<_> = result
        .operator
        .iter()
        .filter(|a| a.command.starts_with("activate-standby"))
        .collect();
    assert!(
        activations
            .windows(2)
            .any(|w| !w[0].ok && w[1].ok && w[1].outcome.contains("already activated")),
        "an activation's answer was lost and its retry found it done: {:#?}",
        result.operator
    );
    let wrong: Vec<_> = result
        .violations
        .iter()
        .filter(|v| v.checker == "one-acting-coordinator")
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}\nreplay: {}", result.replay);
}
