//! Seed 000's standby coordinator procedures (see `scenarios::procedures::standby`), with the `state`
//! report (`-f`, `-e`, `-m`) snapshotted after each step. Each also runs as
//! `hasim scenario NAME`.

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
fn a_standby_added_while_clients_commit_becomes_synchronized() {
    check("add_standby");
}

#[test]
fn the_coordinator_fails_the_standby_is_activated_a_new_standby_follows_and_the_original_hosts_are_restored(
) {
    check("coordinator_fails_standby_activated");
}

#[test]
fn a_stale_standby_is_resynchronized_by_init_standby_n() {
    check("stale_standby_resynchronized");
}
