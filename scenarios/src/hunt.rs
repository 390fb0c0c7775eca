//! The planted-bug catalogue, and hunts: how many seeds the simulator needs to catch a
//! planted bug (`hasim hunt`, in `cli/hunt.rs`, runs them).
//!
//! A hunt turns one planted bug on and runs seeds in order until a seed's checkers catch it; the
//! seeds to detection are that seed's offset from the range's start plus one (the seeds run).
//! Repeated over K disjoint seed ranges (`--ranges K`: `A..B`, then `B..2B-A`, ...), the median
//! over the ranges measures the simulator's power against that bug (DESIGN section 7). A range
//! that never catches the bug counts as "more than the range" in the median.

use std::ops::ControlFlow;

use serde::Serialize;

use sim::config::RunConfig;
use sim::run::pool::{run_seeds, SeedRun};
use sim::run::{SeedResult, Verdict};

/// A planted bug, the scenario it is hunted in and the checker that must catch it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PlantedBug {
    pub name: &'static str,
    pub scenario: &'static str,
    /// The checker expected to catch it (a `NAME` of `sim::invariants`).
    pub caught_by: &'static str,
    /// Seeds within which a hunt from seed 0 must catch it (the test of the catalogue).
    pub seed_budget: u64,
}

/// The planted bugs of `cluster::model::bugs::CATALOGUE` that random seeds catch, in its order, with
/// where they are hunted (the others are caught by scripted scenarios: [`crate::SCRIPTED`]).
pub const CATALOGUE: &[PlantedBug] = &[
    PlantedBug {
        name: "ack-before-mirror-flush",
        scenario: "pair",
        caught_by: "no-lost-commits",
        seed_budget: 500,
    },
    PlantedBug {
        name: "promote-unsynced-mirror",
        scenario: "pair",
        caught_by: "no-lost-commits",
        seed_budget: 500,
    },
    PlantedBug {
        name: "syncrep-off-without-marking-mirror-down",
        scenario: "pair",
        caught_by: "no-lost-commits",
        seed_budget: 500,
    },
    PlantedBug {
        name: "commit-without-prepare",
        scenario: "standard",
        caught_by: "aborted-stays-aborted",
        seed_budget: 200,
    },
    PlantedBug {
        name: "mirror-skips-deletes",
        scenario: "standard",
        caught_by: "identical-replicas",
        seed_budget: 100,
    },
    PlantedBug {
        name: "skip-epoch-check",
        scenario: "standard",
        caught_by: "obeyed-epochs",
        seed_budget: 100,
    },
    PlantedBug {
        name: "activation-ignores-commit-records",
        scenario: "standard",
        caught_by: "aborted-stays-aborted",
        seed_budget: 100,
    },
    PlantedBug {
        name: "standby-acks-unflushed-wal",
        scenario: "standard",
        caught_by: "standby-catalog",
        seed_budget: 100,
    },
    PlantedBug {
        name: "mirror-acks-unflushed-wal",
        scenario: "standard",
        caught_by: "durable-claims",
        seed_budget: 20,
    },
    PlantedBug {
        name: "mirror-replays-out-of-order",
        scenario: "standard",
        caught_by: "identical-replicas",
        seed_budget: 100,
    },
    PlantedBug {
        name: "forget-configuration-history",
        scenario: "standard",
        caught_by: "configuration-history",
        seed_budget: 50,
    },
    PlantedBug {
        name: "lose-distributed-commit-record",
        scenario: "standard",
        caught_by: "aborted-stays-aborted",
        seed_budget: 100,
    },
    PlantedBug {
        name: "evict-before-wal-flush",
        scenario: "slow-disk",
        caught_by: "wal-before-data",
        seed_budget: 150,
    },
    PlantedBug {
        name: "recovery-skips-rewind",
        scenario: "standard",
        caught_by: "identical-replicas",
        seed_budget: 100,
    },
    PlantedBug {
        name: "coordinator-fence-off",
        scenario: "standard",
        caught_by: "one-acting-coordinator",
        seed_budget: 300,
    },
    PlantedBug {
        name: "skip-identity-check",
        scenario: "standard",
        caught_by: "no-lost-commits",
        seed_budget: 400,
    },
    PlantedBug {
        name: "no-cancel-on-failover",
        scenario: "pauses",
        caught_by: "availability",
        seed_budget: 60,
    },
    PlantedBug {
        name: "failover-on-one-lost-probe",
        scenario: "standard",
        caught_by: "failover-policy",
        seed_budget: 20,
    },
    PlantedBug {
        name: "fence-compares-generations-only",
        scenario: "standard",
        caught_by: "obeyed-epochs",
        seed_budget: 60,
    },
    PlantedBug {
        name: "wal-flush-covers-later-appends",
        scenario: "standard",
        caught_by: "wal-positions",
        seed_budget: 20,
    },
    PlantedBug {
        name: "promotion-ends-at-last-commit",
        scenario: "standard",
        caught_by: "wal-positions",
        seed_budget: 50,
    },
    PlantedBug {
        name: "syncrep-off-skips-epoch-check",
        scenario: "standard",
        caught_by: "durable-claims",
        seed_budget: 150,
    },
    PlantedBug {
        name: "fsync-error-retried",
        scenario: "standard",
        caught_by: "durable-claims",
        seed_budget: 400,
    },
    PlantedBug {
        name: "checkpoint-ignores-fsync-failure",
        scenario: "standard",
        caught_by: "durable-claims",
        seed_budget: 400,
    },
    PlantedBug {
        name: "mirror-acks-large-write-before-fsync",
        scenario: "standard",
        caught_by: "durable-claims",
        seed_budget: 20,
    },
    PlantedBug {
        name: "promote-before-catalog-write",
        scenario: "standard",
        caught_by: "linear-history",
        seed_budget: 60,
    },
    PlantedBug {
        name: "first-starting-answer-counts-as-stalled",
        scenario: "standard",
        caught_by: "failover-policy",
        seed_budget: 100,
    },
    PlantedBug {
        name: "torn-page-unprotected",
        scenario: "standard",
        caught_by: "blocks-survive-power-loss",
        seed_budget: 200,
    },
    PlantedBug {
        name: "wal-damage-taken-for-end",
        scenario: "standard",
        caught_by: "aborted-stays-aborted",
        seed_budget: 200,
    },
    PlantedBug {
        name: "handshake-skipped-for-control",
        scenario: "standard",
        caught_by: "strangers-change-nothing",
        seed_budget: 20,
    },
    PlantedBug {
        name: "sql-commit-failure-answered-ok",
        scenario: "standard",
        caught_by: "no-lost-commits",
        seed_budget: 200,
    },
    PlantedBug {
        name: "sql-cancel-answered-after-commit",
        scenario: "front-door",
        caught_by: "aborted-stays-aborted",
        seed_budget: 200,
    },
    PlantedBug {
        name: "hba-ignores-address",
        scenario: "front-door",
        caught_by: "strangers-change-nothing",
        seed_budget: 20,
    },
];

/// The catalogue entry of a bug.
pub fn catalogued(name: &str) -> Option<&'static PlantedBug> {
    CATALOGUE.iter().find(|b| b.name == name)
}

/// What counts as catching the bug.
#[derive(Clone, Copy, Debug)]
pub enum Catch {
    /// A violation from this checker.
    Checker(&'static str),
    /// Any seed that is not ok.
    AnyFailure,
    /// A violation from this checker, or a panic whose message contains the text (an
    /// assertion of the cluster's own that debug builds check and catches the bug first).
    CheckerOrPanic(&'static str, &'static str),
}

impl Catch {
    pub fn caught(&self, r: &SeedResult) -> bool {
        match self {
            Catch::Checker(name) => r.violations.iter().any(|v| v.checker == *name),
            Catch::AnyFailure => r.verdict != Verdict::Ok,
            Catch::CheckerOrPanic(name, text) => {
                Catch::Checker(name).caught(r)
                    || (r.verdict == Verdict::Crash
                        && r.error.as_deref().is_some_and(|e| e.contains(text)))
            }
        }
    }
}

/// The configuration a bug is hunted in: its scenario (or `scenario`) with the bug on.
pub fn hunt_config(bug: &PlantedBug, scenario: Option<&str>) -> RunConfig {
    let name = scenario.unwrap_or(bug.scenario);
    let mut cfg = RunConfig::by_name(name).expect("known scenario");
    cfg.bugs.enable(bug.name).expect("catalogued bug exists");
    cfg
}

/// Runs the seeds of `start..end` in order until one is caught; returns it (and how many seeds
/// were judged). `on_seed` sees every judged seed's result.
pub fn hunt_range(
    cfg: &RunConfig,
    start: u64,
    end: u64,
    jobs: u32,
    catch: Catch,
    mut on_seed: impl FnMut(&SeedResult),
) -> (Option<SeedResult>, u64) {
    let seeds: Vec<u64> = (start..end).collect();
    let mut found = None;
    let mut judged = 0;
    run_seeds(cfg, &seeds, jobs, false, |run: SeedRun| {
        judged += 1;
        on_seed(&run.result);
        if catch.caught(&run.result) {
            found = Some(run.result);
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    (found, judged)
}

/// The median of seeds-to-detection where a miss counts as infinitely many.
pub fn median(mut values: Vec<Option<u64>>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by_key(|v| v.unwrap_or(u64::MAX));
    let n = values.len();
    let (lo, hi) = (values[(n - 1) / 2], values[n / 2]);
    Some((lo? as f64 + hi? as f64) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_counts_as_more_than_any_detection_in_the_median() {
        assert_eq!(median(vec![Some(3), Some(1), Some(9)]), Some(3.0));
        assert_eq!(median(vec![Some(3), None, Some(9), Some(1)]), Some(6.0));
        assert_eq!(median(vec![Some(3), None, None]), None);
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn every_hunted_bug_is_planted_in_catalogue_order_in_a_known_scenario() {
        let planted: Vec<&str> = cluster::model::bugs::CATALOGUE
            .iter()
            .map(|(n, _)| *n)
            .collect();
        let positions: Vec<usize> = CATALOGUE
            .iter()
            .map(|b| {
                assert!(RunConfig::by_name(b.scenario).is_some(), "{}", b.scenario);
                planted
                    .iter()
                    .position(|n| *n == b.name)
                    .unwrap_or_else(|| panic!("{} is not planted", b.name))
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }
}
