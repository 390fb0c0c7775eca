//! Named scenarios from the seed documents and the planted-bug catalogue.
//!
//! The catalogue itself lives in `sim::hunt` (so `hasim hunt` can use it); it is re-exported
//! here with the hunt the tests run.

use sim::config::RunConfig;
use sim::hunt::{hunt_config, hunt_range, Catch};
use sim::runner::SeedResult;

pub use sim::hunt::{catalogued, PlantedBug, CATALOGUE};

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
