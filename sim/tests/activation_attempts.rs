//! The operator's record of activations, which the one-acting-coordinator checker takes as
//! ground truth: an `activate-standby` whose answer never came back (the standby's host lost
//! power while the activation resolved transactions left in doubt) may already have taken
//! over and told every instance its new generation. When the operator tries again and learns
//! the standby is the coordinator, the activation began with the first attempt, not the
//! second.

use sim::config::RunConfig;
use sim::run::run_seed;

/// Standard seed 100 (fault points armed), with the schedule its seed drew before the catalog
/// bit flip joined the fault kinds (kept below): the standby on `smdw` was activated at 24.8 s and a
/// new standby made on `mdw`; then `smdw` was lost too. The operator activated the standby on
/// `mdw` at 51.4 s; it took over and announced generation 2 at 51.47 s (instances followed it),
/// and the connection closed before it answered. The retry at 57.2 s found it already
/// activated. Were the succession recorded as begun at the retry, every instance that obeyed
/// generation 2 at 51.47 s would count as obeying a deposed coordinator.
#[test]
fn an_activation_whose_answer_was_lost_began_with_its_first_attempt() {
    let mut cfg = RunConfig::standard();
    cfg.schedule = Some(sim::nemesis::parse_schedule(SEED_100_SCHEDULE).expect("it parses"));
    let (result, _) = run_seed(100, &cfg);
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

/// The schedule standard seed 100 drew before the catalog bit flip joined the fault kinds.
const SEED_100_SCHEDULE: &str = r#"[
  {"at_ms": 1373, "episode": 1, "kind": "torn-garbage", "host": "sdw1"},
  {"at_ms": 2254, "episode": 1, "kind": "host-restart", "host": "sdw1"},
  {"at_ms": 9463, "episode": 2, "kind": "packet-loss", "percent": 1},
  {"at_ms": 13761, "episode": 2, "kind": "packet-loss-heal"},
  {"at_ms": 22783, "episode": 3, "kind": "coordinator-crash"},
  {"at_ms": 27299, "episode": 4, "kind": "partition", "shape": "isolate-host", "from": ["sdw1"], "to": ["mdw", "sdw2", "sdw3", "sdw4"], "one_way": false},
  {"at_ms": 29872, "episode": 3, "kind": "coordinator-restart"},
  {"at_ms": 33193, "episode": 5, "kind": "torn-write", "host": "sdw3"},
  {"at_ms": 36323, "episode": 4, "kind": "partition-heal", "shape": "isolate-host", "from": ["sdw1"], "to": ["mdw", "sdw2", "sdw3", "sdw4"], "one_way": false},
  {"at_ms": 40185, "episode": 6, "kind": "partition", "shape": "link-clog", "from": ["sdw1"], "to": ["sdw4"], "one_way": false},
  {"at_ms": 40209, "episode": 5, "kind": "host-restart", "host": "sdw3"},
  {"at_ms": 46753, "episode": 7, "kind": "coordinator-pair-crash"},
  {"at_ms": 48263, "episode": 7, "kind": "coordinator-pair-restart"},
  {"at_ms": 51015, "episode": 8, "kind": "coordinator-pair-crash"},
  {"at_ms": 53330, "episode": 8, "kind": "coordinator-pair-restart"},
  {"at_ms": 57474, "episode": 6, "kind": "partition-heal", "shape": "link-clog", "from": ["sdw1"], "to": ["sdw4"], "one_way": false},
  {"at_ms": 59262, "episode": 9, "kind": "coordinator-pair-crash"},
  {"at_ms": 60000, "episode": 9, "kind": "coordinator-pair-restart"}
]"#;
