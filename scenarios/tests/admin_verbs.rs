//! The recovery and administration scenarios of seeds 002 and 003 (see
//! `scenarios::procedures`), with the `state` report snapshotted after each step. Each also runs
//! as `hasim scenario NAME`.

use scenarios::procedures::{run, SCENARIOS};

fn check(name: &str) {
    let seed = SCENARIOS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .expect("a known scenario");
    for (step, text) in run(name, seed).unwrap() {
        insta::assert_snapshot!(step.as_str(), text);
    }
}

#[test]
fn primary_fails_recoverseg_then_rebalance() {
    check("primary_fails_recoverseg_then_rebalance");
}

#[test]
fn double_fault_restart_then_recoverseg() {
    check("double_fault_restart_then_recoverseg");
}

#[test]
fn unrecoverable_host_recoverseg_onto_a_spare() {
    check("unrecoverable_host_recoverseg_onto_a_spare");
}

#[test]
fn add_mirrors_to_an_unmirrored_cluster() {
    check("add_mirrors_to_an_unmirrored_cluster");
}

#[test]
fn move_mirrors_and_back_out() {
    check("move_mirrors_and_back_out");
}

#[test]
fn mirror_fails_change_tracking_then_recovery() {
    check("mirror_fails_change_tracking_then_recovery");
}

#[test]
fn mirroring_disabled_segment_fails_system_stops() {
    check("mirroring_disabled_segment_fails_system_stops");
}

#[test]
fn add_mirrors_from_a_file_onto_other_hosts() {
    check("add_mirrors_from_a_file_onto_other_hosts");
}

#[test]
fn move_mirrors_into_a_block_layout() {
    check("move_mirrors_into_a_block_layout");
}
