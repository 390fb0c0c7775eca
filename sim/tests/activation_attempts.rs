//! The operator's record of activations, which the one-acting-coordinator checker takes as
//! ground truth: an `activate-standby` whose answer never came back (the standby's host lost
//! power while the activation resolved transactions left in doubt) may already have taken
//! over and told every instance its new generation. When the operator tries again and learns
//! the standby is the coordinator, the activation began with the first attempt, not the
//! second.

use sim::config::RunConfig;
use sim::run::run_seed;

/// Standard seed 1056 (fault points armed), with the schedule its seed draws (kept below, so
/// that new fault kinds do not move it): the coordinator pair crashed at 4.2 s; the operator's
/// `activate-standby` on `smdw` at 5.3 s got no answer (the connection closed), yet the standby
/// had taken over; the retry at 11.1 s found it already activated. Were the succession recorded
/// as begun at the retry, every instance that obeyed the new generation in between would count
/// as obeying a deposed coordinator.
#[test]
fn an_activation_whose_answer_was_lost_began_with_its_first_attempt() {
    let mut cfg = RunConfig::standard();
    cfg.schedule = Some(sim::nemesis::parse_schedule(SEED_1056_SCHEDULE).expect("it parses"));
    let (result, _) = run_seed(1056, &cfg);
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

/// The schedule standard seed 1056 draws.
const SEED_1056_SCHEDULE: &str = r#"[
  {"at_ms": 1187, "episode": 1, "kind": "double-fault", "content": 2},
  {"at_ms": 3289, "episode": 1, "kind": "double-fault-heal", "content": 2},
  {"at_ms": 4166, "episode": 2, "kind": "coordinator-pair-crash"},
  {"at_ms": 4920, "episode": 3, "kind": "late-delivery", "pick": 7855662691766684642},
  {"at_ms": 9104, "episode": 2, "kind": "coordinator-pair-restart"},
  {"at_ms": 9966, "episode": 4, "kind": "connection-reset", "host": "sdw4"},
  {"at_ms": 17775, "episode": 5, "kind": "torn-write", "host": "sdw3"},
  {"at_ms": 18671, "episode": 5, "kind": "host-restart", "host": "sdw3"},
  {"at_ms": 20653, "episode": 6, "kind": "late-delivery", "pick": 3552182364392672571},
  {"at_ms": 27626, "episode": 7, "kind": "connection-reset", "host": "sdw1"},
  {"at_ms": 33177, "episode": 8, "kind": "instance-kill", "dbid": 7},
  {"at_ms": 38622, "episode": 8, "kind": "instance-restart", "dbid": 7},
  {"at_ms": 46288, "episode": 9, "kind": "instance-kill", "dbid": 13},
  {"at_ms": 51336, "episode": 9, "kind": "instance-restart", "dbid": 13}
]"#;
