//! The simulator's rooms (the opening doc of `src/lib.rs`) are ranked like the cluster's layers:
//! each room uses only rooms of its own rank or lower ones, and rooms of one rank never use
//! each other in a cycle. The scan is the cluster's (`cluster/tests/imports`); here a room's
//! unit tests may build their fixtures from any room (a planner's test starts from a whole
//! run's configuration), so `#[cfg(test)]` modules are left out.

#[path = "../../cluster/tests/imports/mod.rs"]
mod imports;

use std::path::Path;

use imports::{Rules, Sources};

/// Each room's rank, bottom up: the fault vocabulary and the planner know no run; a run's
/// configuration names faults; the world carries them out and keeps the disks; the checkers
/// read the world, the history and the facts; the operator and the run loop drive everything.
const ROOMS: &[(&str, u32)] = &[
    ("random", 0),
    ("observer", 0),
    ("trace", 1),
    ("nemesis", 1),
    ("config", 2),
    ("world", 3),
    ("workload", 3),
    // A stranger on the world's network; the checker that judges it reads its log.
    ("intruder", 3),
    ("invariants", 4),
    ("operator", 5),
    ("run", 6),
    ("layouts", 7),
];

#[test]
fn every_room_uses_only_its_own_rank_or_lower_ones_without_cycles() {
    let sources = Sources {
        src: Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        shown: "sim/src",
        skip_dirs: &[],
        skip_unit_tests: true,
    };
    let rules = Rules {
        ranks: ROOMS,
        word: "room",
        note: |_, _| None,
    };
    let failures = imports::check(&sources, &rules, "sim/tests/rooms.rs ROOMS");
    assert!(
        failures.is_empty(),
        "room rule broken:\n{}",
        failures.join("\n")
    );
}
