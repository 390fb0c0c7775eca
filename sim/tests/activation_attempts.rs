//! The operator's record of activations, which the one-acting-coordinator checker takes as
//! ground truth: an `activate-standby` whose answer never came back (the standby's host lost
//! power while the activation resolved transactions left in doubt) may already have taken
//! over and told every instance its new generation. When the operator tries again and learns
//! the standby is the coordinator, the activation began with the first attempt, not the
//! second.

use sim::config::RunConfig;
use sim::run::run_seed;

/// Standard seed 1387 (fault points armed), with the schedule its seed draws (kept below, so
/// that new fault kinds do not move it): the coordinator pair crashed at 16.8 s and mdw was cut
/// from every segment host; the operator's `activate-standby` on `smdw` at 17.7 s got no
/// answer (the standby closed the connection), yet the standby had taken over; the retry at
/// 22.7 s found it already activated. Were the succession recorded as begun at the retry, every
/// instance that obeyed the new generation in between would count as obeying a deposed
/// coordinator.
#[test]
fn an_activation_whose_answer_was_lost_began_with_its_first_attempt() {
    let mut cfg = RunConfig::standard();
    cfg.schedule = Some(sim::nemesis::parse_schedule(SEED_1387_SCHEDULE).expect("it parses"));
    let (result, _) = run_seed(1387, &cfg);
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

/// The schedule standard seed 1387 draws.
const SEED_1387_SCHEDULE: &str = r#"[
  {"at_ms": 11311, "episode": 1, "kind": "host-crash", "host": "sdw1"},
  {"at_ms": 12279, "episode": 2, "kind": "host-crash", "host": "sdw4"},
  {"at_ms": 12493, "episode": 1, "kind": "host-restart", "host": "sdw1"},
  {"at_ms": 16757, "episode": 3, "kind": "coordinator-pair-crash"},
  {"at_ms": 18061, "episode": 4, "kind": "partition", "shape": "coordinator-cut", "from": ["mdw"], "to": ["sdw1", "sdw2", "sdw3", "sdw4"], "one_way": false},
  {"at_ms": 18376, "episode": 3, "kind": "coordinator-pair-restart"},
  {"at_ms": 18846, "episode": 2, "kind": "host-restart", "host": "sdw4"},
  {"at_ms": 24421, "episode": 4, "kind": "partition-heal", "shape": "coordinator-cut", "from": ["mdw"], "to": ["sdw1", "sdw2", "sdw3", "sdw4"], "one_way": false},
  {"at_ms": 25977, "episode": 5, "kind": "partition", "shape": "link-clog", "from": ["sdw4"], "to": ["sdw1"], "one_way": false},
  {"at_ms": 28624, "episode": 5, "kind": "partition-heal", "shape": "link-clog", "from": ["sdw4"], "to": ["sdw1"], "one_way": false},
  {"at_ms": 29176, "episode": 6, "kind": "host-crash", "host": "sdw4"},
  {"at_ms": 33691, "episode": 6, "kind": "host-restart", "host": "sdw4"},
  {"at_ms": 37902, "episode": 7, "kind": "late-delivery", "pick": 950088684380835933},
  {"at_ms": 41008, "episode": 8, "kind": "instance-pause", "dbid": 10},
  {"at_ms": 50094, "episode": 9, "kind": "latency-spike", "min_ms": 38, "max_ms": 191},
  {"at_ms": 52569, "episode": 9, "kind": "latency-heal"},
  {"at_ms": 54561, "episode": 10, "kind": "host-crash", "host": "sdw2"},
  {"at_ms": 54573, "episode": 8, "kind": "instance-resume", "dbid": 10},
  {"at_ms": 60000, "episode": 10, "kind": "host-restart", "host": "sdw2"}
]"#;
