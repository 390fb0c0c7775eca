//! The production binary carries no simulator-only code: the connection-reset registry (a fault
//! only the simulator injects) and the fault-point registry with the points' names are compiled
//! into the simulator's builds alone. Checked on the binary's own symbol table and bytes.
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_binary`.

use std::process::Command;

#[test]
fn hacluster_has_no_connection_reset_registry() {
    let out = Command::new("nm")
        .args(["-C", env!("CARGO_BIN_EXE_hacluster")])
        .output()
        .expect("nm (binutils) reads the binary's symbols");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let symbols = String::from_utf8_lossy(&out.stdout);
    // The symbol table is there to be read: the instance's code is in it.
    assert!(
        symbols.contains("cluster::segment::"),
        "no cluster symbols in the binary"
    );
    // The registry's parts, as the simulator's binary has them (its state, its connections, the
    // per-thread table and the call that resets a host); the production stub `Ends` may stay.
    let registry: Vec<&str> = symbols
        .lines()
        .filter(|s| {
            [
                "resets::State",
                "resets::Opened",
                "resets::RESETS",
                "resets::reset_host",
            ]
            .iter()
            .any(|part| s.contains(part))
        })
        .collect();
    assert!(
        registry.is_empty(),
        "reset-registry code in the production binary: {registry:?}"
    );
}

/// Fault points compile to nothing in production: no registry, and none of the points' names
/// anywhere in the binary's bytes (the simulator names them in its results).
#[test]
fn hacluster_has_no_fault_point_registry_or_point_names() {
    let out = Command::new("nm")
        .args(["-C", env!("CARGO_BIN_EXE_hacluster")])
        .output()
        .expect("nm (binutils) reads the binary's symbols");
    let symbols = String::from_utf8_lossy(&out.stdout);
    let registry: Vec<&str> = symbols
        .lines()
        .filter(|s| s.contains("fault_points::") || s.contains("points_armed"))
        .collect();
    assert!(
        registry.is_empty(),
        "fault-point registry in the production binary: {registry:?}"
    );
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_hacluster")).expect("the binary reads");
    for name in [
        "wal-written-before-fsync",
        "flush-feedback-sent",
        "fsync-before-replay",
        "catalog-written-before-announce",
        "promotion-mid-replay",
        "rewind-midway",
        "base-backup-midway",
        "activation-midway",
        "recovery-reconnected",
        "checkpoint-blocks-written",
        "WalWrittenBeforeFsync",
        "fault point fired",
    ] {
        assert!(
            !bytes.windows(name.len()).any(|w| w == name.as_bytes()),
            "the production binary names fault point text {name:?}"
        );
    }
}
