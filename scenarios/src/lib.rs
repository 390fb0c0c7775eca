//! The stories the simulator runs: the seed documents' administrator procedures step by step
//! ([`procedures`]), the planted-bug catalogue and its hunts ([`hunt`]), the planted bugs
//! caught by scripted scenarios ([`SCRIPTED`]), the kept regression schedules
//! ([`REGRESSIONS`]), and `hasim`, the command line ([`cli`]). The machinery they run on (the
//! world, the nemesis, the run loop, replay, shrinking) is the `sim` crate.

pub mod cli;
pub mod hunt;
pub mod procedures;

use hunt::{hunt_config, hunt_range, Catch};
use sim::config::RunConfig;
use sim::run::{run_seed_quiet, SeedResult};

pub use hunt::{catalogued, PlantedBug, CATALOGUE};

/// A planted bug whose failure needs a precise interleaving (a message held in a partitioned
/// link and delivered after a newer decision) is caught by a scripted scenario rather than by a
/// random hunt: the test named here runs it with the bug on and off.
pub struct ScriptedCatch {
    pub name: &'static str,
    pub caught_by: &'static str,
    /// `file::test` of the scripted scenario.
    pub test: &'static str,
}

pub const SCRIPTED: &[ScriptedCatch] = &[
    ScriptedCatch {
        name: "probe-without-timeout",
        caught_by: "availability",
        test: "scenarios/tests/schedules.rs::every_regression_schedule_fires_its_checker_with_the_bug_and_passes_without",
    },
    ScriptedCatch {
        name: "promote-unsynced-mirror",
        caught_by: "linear-history",
        test: "sim/tests/linear_history.rs::promoting_the_lagging_mirror_forks_the_history_and_the_checker_says_so",
    },
    ScriptedCatch {
        name: "probe-without-timeout",
        caught_by: "availability",
        test: "scenarios/tests/schedules.rs::every_regression_schedule_fires_its_checker_with_the_bug_and_passes_without",
    },
    ScriptedCatch {
        name: "activation-ignores-commit-records",
        caught_by: "aborted-stays-aborted",
        test: "scenarios/tests/standby.rs::activation_that_ignores_commit_records_is_caught",
    },
    ScriptedCatch {
        name: "walsender-ships-unflushed-wal",
        caught_by: "standby-catalog",
        test: "scenarios/tests/standby.rs::a_walsender_shipping_unflushed_wal_is_caught",
    },
    ScriptedCatch {
        name: "standby-acks-unflushed-wal",
        caught_by: "standby-catalog",
        test: "scenarios/tests/standby.rs::a_standby_acknowledging_unflushed_wal_is_caught",
    },
    ScriptedCatch {
        name: "rebalance-unsynchronized",
        caught_by: "no-lost-commits",
        test: "sim/tests/recoverseg.rs::the_no_lost_commits_check_catches_a_rebalance_before_resynchronization",
    },
];

/// A fault schedule kept as a regression scenario: with its planted bug on, replaying it on its
/// seed makes its checker fire; with the bug off the same run passes.
pub struct Regression {
    pub name: &'static str,
    pub scenario: &'static str,
    pub seed: u64,
    pub bug: &'static str,
    pub checker: &'static str,
    /// The schedule, in the JSON `hasim replay --schedule` reads.
    pub schedule: &'static str,
}

pub const REGRESSIONS: &[Regression] = &[
    Regression {
        name: "ack-before-mirror-flush-seed-3",
        scenario: "pair",
        seed: 3,
        bug: "ack-before-mirror-flush",
        checker: "no-lost-commits",
        // `hasim shrink --seed 3 --scenario pair --bug ack-before-mirror-flush`: the mirror's
        // host and then the primary's crash, overlapping.
        schedule: include_str!("../schedules/ack-before-mirror-flush-seed-3.json"),
    },
    Regression {
        name: "paused-primary",
        scenario: "pair",
        seed: 1,
        bug: "probe-without-timeout",
        checker: "availability",
        // Written by hand: the primary stalls for 28 s, once the start-up gap has passed (in a
        // 50 s fault phase); the prober must time out and fail over.
        schedule: include_str!("../schedules/paused-primary.json"),
    },
];

impl Regression {
    /// Replays the schedule on its seed, its bug on or off.
    pub fn replay(&self, bug_on: bool) -> SeedResult {
        let mut cfg = RunConfig::by_name(self.scenario).expect("known scenario");
        if bug_on {
            cfg.bugs.enable(self.bug).expect("catalogued bug");
        }
        sim::run::shrink::apply_schedule_file(&mut cfg, self.schedule)
            .unwrap_or_else(|e| panic!("regression {}: {e}", self.name));
        run_seed_quiet(self.seed, &cfg)
    }
}

/// The standard scenario carrying out a kept schedule (a file of `scenarios/schedules/`, as
/// `hasim replay --schedule` reads it) instead of the one drawn from the seed.
pub fn standard_with_schedule(schedule: &str) -> RunConfig {
    let mut cfg = RunConfig::standard();
    cfg.schedule = Some(sim::nemesis::parse_schedule(schedule).expect("a kept schedule parses"));
    // The kept stories predate the intruder; its traffic would tell them another way.
    cfg.intruder = false;
    cfg
}

/// Runs seeds from `start` with the bug on until a seed's result shows the bug's own checker
/// firing, or the budget runs out. Returns that seed's result.
pub fn hunt(bug: &PlantedBug, start: u64) -> Option<SeedResult> {
    let cfg = hunt_config(bug, None);
    hunt_range(
        &cfg,
        start,
        start + bug.seed_budget,
        1,
        Catch::Checker(bug.caught_by),
        |_| {},
    )
    .0
}

/// The configuration of a bug's hunt (its scenario with the bug on).
pub fn bug_config(bug: &PlantedBug) -> RunConfig {
    hunt_config(bug, None)
}
