//! The seed documents' administrator procedures, step by step, as named scenarios: the
//! recovery and mirroring procedures of seeds 002 and 003 ([`recovery`]), seed 000's standby
//! procedures ([`standby`]), and seed 000's coordinator failover under a workload, end to end
//! ([`coordinator_failover`]). Each returns the `state` report or the file a verb wrote after
//! each step, named; the scenario tests snapshot them; `hasim scenario NAME` prints them.

pub mod coordinator_failover;
pub mod recovery;
pub mod standby;

use cluster::admin::driver;
use cluster::admin::state::View;
use cluster::client::Client;

use recovery::{
    add_mirrors_from_a_file_onto_other_hosts, add_mirrors_to_an_unmirrored_cluster,
    double_fault_restart_then_recoverseg, mirror_fails_change_tracking_then_recovery,
    mirroring_disabled_segment_fails_system_stops, move_mirrors_and_back_out,
    move_mirrors_into_a_block_layout, primary_fails_recoverseg_then_rebalance,
    unrecoverable_host_recoverseg_onto_a_spare,
};

/// Named outputs, one per step.
pub type Steps = Vec<(String, String)>;

/// `state -e` then `state -m`, as an administrator checks them.
pub(crate) async fn state(c: &mut Client) -> String {
    let e = driver::state(c, View::Errors).await.unwrap();
    let m = driver::state(c, View::Mirrors).await.unwrap();
    format!("$ state -e\n{e}$ state -m\n{m}")
}

/// Every scenario: name, the seed its snapshots were taken with.
pub const SCENARIOS: &[(&str, u64)] = &[
    ("primary_fails_recoverseg_then_rebalance", 1),
    ("double_fault_restart_then_recoverseg", 2),
    ("unrecoverable_host_recoverseg_onto_a_spare", 3),
    ("add_mirrors_to_an_unmirrored_cluster", 4),
    ("move_mirrors_and_back_out", 5),
    ("mirror_fails_change_tracking_then_recovery", 6),
    ("mirroring_disabled_segment_fails_system_stops", 7),
    ("add_mirrors_from_a_file_onto_other_hosts", 8),
    ("move_mirrors_into_a_block_layout", 9),
    // Seed 000's standby procedures (`crate::procedures::standby`).
    ("add_standby", 10),
    ("coordinator_fails_standby_activated", 11),
    ("stale_standby_resynchronized", 12),
];

/// Runs scenario `name` in a fresh simulation with `seed`.
pub fn run(name: &str, seed: u64) -> Result<Steps, String> {
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    if let Some(steps) = standby::run(&rt, name, seed) {
        return Ok(steps);
    }
    let steps = match name {
        "primary_fails_recoverseg_then_rebalance" => {
            rt.block_on(primary_fails_recoverseg_then_rebalance(seed))
        }
        "double_fault_restart_then_recoverseg" => {
            rt.block_on(double_fault_restart_then_recoverseg(seed))
        }
        "unrecoverable_host_recoverseg_onto_a_spare" => {
            rt.block_on(unrecoverable_host_recoverseg_onto_a_spare(seed))
        }
        "add_mirrors_to_an_unmirrored_cluster" => {
            rt.block_on(add_mirrors_to_an_unmirrored_cluster(seed))
        }
        "move_mirrors_and_back_out" => rt.block_on(move_mirrors_and_back_out(seed)),
        "mirror_fails_change_tracking_then_recovery" => {
            rt.block_on(mirror_fails_change_tracking_then_recovery(seed))
        }
        "mirroring_disabled_segment_fails_system_stops" => {
            rt.block_on(mirroring_disabled_segment_fails_system_stops(seed))
        }
        "add_mirrors_from_a_file_onto_other_hosts" => {
            rt.block_on(add_mirrors_from_a_file_onto_other_hosts(seed))
        }
        "move_mirrors_into_a_block_layout" => rt.block_on(move_mirrors_into_a_block_layout(seed)),
        _ => {
            let known: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown scenario {name:?}; known: {}",
                known.join(", ")
            ));
        }
    };
    Ok(steps)
}

/// `hasim scenario NAME [--seed N]`: prints each step's output; `list` names the scenarios.
pub fn cli(name: &str, seed: Option<u64>) -> i32 {
    if name == "list" {
        for (n, _) in SCENARIOS {
            println!("{n}");
        }
        return 0;
    }
    let seed = seed.or_else(|| SCENARIOS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s));
    let Some(seed) = seed else {
        let known: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "error: unknown scenario {name:?}; known: {}",
            known.join(", ")
        );
        return 64;
    };
    match std::panic::catch_unwind(|| run(name, seed)) {
        Ok(Ok(steps)) => {
            for (step, text) in steps {
                println!("== {step}\n{text}");
            }
            println!("scenario {name} (seed {seed}): ok");
            0
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            64
        }
        Err(_) => {
            eprintln!("scenario {name} (seed {seed}): FAILED");
            1
        }
    }
}
