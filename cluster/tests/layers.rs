//! The crate's layers (the opening doc of `src/lib.rs`, DESIGN.md section 1): every module of
//! `src` uses only modules of its own layer or lower ones, model never uses wire, and the
//! modules of one layer never use each other in a cycle.
//!
//! The scan ([`imports`], shared with the simulator's room test) reads every path in `src`
//! except `bin/`, the binary on top of everything; unit tests count like any other code.

mod imports;

use std::path::Path;

use imports::{Rules, Sources};

/// Each top-level module's layer, bottom up. A module `lib.rs` declares must be here.
const LAYERS: &[(&str, u32)] = &[
    ("io", 0),
    ("model", 1),
    ("wire", 2),
    ("wal", 3),
    ("storage", 3),
    ("protocol", 4),
    ("sql", 4),
    ("coordinator", 5),
    ("segment", 5),
    ("standby", 5),
    ("client", 5),
    ("agent", 5),
    ("admin", 6),
    ("frontdoor", 6),
];

fn note(from: &str, to: &str) -> Option<&'static str> {
    (from == "model" && to == "wire").then_some("model never uses wire")
}

#[test]
fn every_module_uses_only_its_own_layer_or_lower_ones_without_cycles() {
    let sources = Sources {
        src: Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        shown: "cluster/src",
        skip_dirs: &["bin"],
        skip_unit_tests: false,
    };
    let rules = Rules {
        ranks: LAYERS,
        word: "layer",
        note,
    };
    let failures = imports::check(&sources, &rules, "cluster/tests/layers.rs LAYERS");
    assert!(
        failures.is_empty(),
        "layer rule broken:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_scan_finds_grouped_inline_and_climbing_paths() {
    let src = "use crate::{wire::{A, B}, model::catalog};\n\
               // crate::admin in a comment\n\
               fn f() -> crate::storage::X { let s = \"crate::admin\"; let c = '\"'; }\n\
               mod tests { use super::super::protocol::fts; }\n";
    let refs = imports::references("f.rs", "client", 1, &imports::strip(src));
    let found: Vec<(usize, &str)> = refs.iter().map(|r| (r.line, r.path.as_str())).collect();
    assert_eq!(
        found,
        [
            (1, "wire"),
            (1, "model::catalog"),
            (3, "storage::X"),
            (4, "protocol::fts")
        ]
    );
}
