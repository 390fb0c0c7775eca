//! The crate's layers (the opening doc of `src/lib.rs`, DESIGN.md section 1): every module of
//! `src` uses only modules of its own layer or lower ones, model never uses wire, and the
//! modules of one layer never use each other in a cycle.
//!
//! The test reads the sources, not the compiler's view: it takes the top-level modules and the
//! re-exported former paths from `src/lib.rs`, and every path in `src` (except `bin/`, the
//! binary on top of everything) that names one of them: `crate::x`, grouped
//! `crate::{x, y::z}`, and `super::` chains that climb to the crate root. Comments and string
//! literals are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module's layer, bottom up. A module `lib.rs` declares must be here.
const LAYERS: &[(&str, u32)] = &[
    ("io", 0),
    ("model", 1),
    ("wire", 2),
    ("wal", 3),
    ("storage", 3),
    ("protocol", 4),
    ("coordinator", 5),
    ("segment", 5),
    ("standby", 5),
    ("client", 5),
    ("admin", 6),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// One path in a source file that names a top-level module.
#[derive(Clone, Debug)]
struct Reference {
    file: String,
    line: usize,
    /// The module of the file.
    from: String,
    /// The path from its first segment: `wire::SegmentRequest`, `catalog::epoch::describe`.
    path: String,
}

impl Reference {
    fn target(&self) -> &str {
        self.path.split("::").next().unwrap_or("")
    }

    fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// The top-level modules `lib.rs` declares (`mod x;` or `mod x { .. }`), and the former paths
/// it re-exports (`pub use model::catalog;`, `pub use wire as proto;`) with the module each
/// leads into.
fn read_lib() -> (BTreeSet<String>, BTreeMap<String, String>) {
    let lib = fs::read_to_string(src_dir().join("lib.rs")).expect("read src/lib.rs");
    let mut modules = BTreeSet::new();
    let mut aliases = BTreeMap::new();
    for line in strip(&lib).lines() {
        if line.starts_with(char::is_whitespace) {
            continue; // inside an inline module
        }
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == ';' || c == '{')
            .filter(|w| !w.is_empty())
            .collect();
        match words.as_slice() {
            ["pub" | "pub(crate)", "mod", name, ..] | ["mod", name, ..] => {
                modules.insert(name.to_string());
            }
            ["pub", "use", path, "as", alias, ..] => {
                aliases.insert(alias.to_string(), first_segment(path));
            }
            ["pub", "use", path, ..] => {
                let last = path.rsplit("::").next().unwrap_or(path);
                aliases.insert(last.to_string(), first_segment(path));
            }
            _ => {}
        }
    }
    (modules, aliases)
}

fn first_segment(path: &str) -> String {
    let path = path.trim_start_matches("crate::");
    path.split("::").next().unwrap_or(path).to_string()
}

/// Every `.rs` file under `src`, except `lib.rs` (declarations and re-exports) and `bin/`.
fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            if path != src_dir().join("bin") {
                source_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && path != src_dir().join("lib.rs") {
            out.push(path);
        }
    }
    out.sort();
}

/// The source with comments and the contents of string and character literals blanked out
/// (line breaks kept, so line numbers stay).
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, bytes: &[u8]| {
        for &c in bytes {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        let end = if rest.starts_with(b"//") {
            i + rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            i + block_comment_len(rest)
        } else if rest.starts_with(b"\"") || rest.starts_with(b"r\"") || rest.starts_with(b"r#") {
            i + string_len(rest)
        } else if rest.starts_with(b"'") {
            i + char_literal_len(rest)
        } else {
            out.push(b[i] as char);
            i += 1;
            continue;
        };
        blank(&mut out, &b[i..end]);
        i = end;
    }
    out
}

fn block_comment_len(rest: &[u8]) -> usize {
    let (mut depth, mut j) = (0usize, 0);
    while j < rest.len() {
        if rest[j..].starts_with(b"/*") {
            depth += 1;
            j += 2;
        } else if rest[j..].starts_with(b"*/") {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    rest.len()
}

/// A string literal's length: `"..."` with escapes, or a raw `r#"..."#`.
fn string_len(rest: &[u8]) -> usize {
    if rest[0] == b'r' {
        let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
        if rest.get(1 + hashes) != Some(&b'"') {
            return 1; // an identifier starting with r, not a raw string
        }
        let close: Vec<u8> = std::iter::once(b'"')
            .chain(std::iter::repeat_n(b'#', hashes))
            .collect();
        let body = 2 + hashes;
        return rest[body..]
            .windows(close.len())
            .position(|w| w == close.as_slice())
            .map_or(rest.len(), |p| body + p + close.len());
    }
    let mut j = 1;
    while j < rest.len() {
        match rest[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    rest.len()
}

/// A character literal's length (`'a'`, `'\n'`, `'"'`), or 1 for a lifetime's quote.
fn char_literal_len(rest: &[u8]) -> usize {
    if rest.get(1) == Some(&b'\\') {
        return rest[2..]
            .iter()
            .position(|&c| c == b'\'')
            .map_or(1, |p| p + 3);
    }
    let ch_len = std::str::from_utf8(&rest[1..rest.len().min(5)])
        .ok()
        .or_else(|| std::str::from_utf8(&rest[1..rest.len().min(2)]).ok())
        .and_then(|s| s.chars().next())
        .map_or(1, char::len_utf8);
    if rest.get(1 + ch_len) == Some(&b'\'') {
        2 + ch_len
    } else {
        1
    }
}

/// The module a file belongs to and how deep it sits: `client.rs` is `client` at depth 1,
/// `coordinator/mod.rs` `coordinator` at 1, `coordinator/catalog_store/standby.rs` at 3.
fn module_of(path: &Path) -> (String, usize) {
    let rel = path.strip_prefix(src_dir()).expect("under src");
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let depth = parts.len() - usize::from(parts.last().is_some_and(|p| p == "mod"));
    (parts[0].clone(), depth)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The identifier path starting at `at` (`wire::admin::AdminRequest`), stopping at anything
/// else; a group `{` ends it.
fn path_at(s: &[u8], at: usize) -> String {
    let mut j = at;
    while j < s.len() && (is_ident(s[j]) || (s[j] == b':' && s.get(j + 1) == Some(&b':'))) {
        j += if s[j] == b':' { 2 } else { 1 };
    }
    String::from_utf8_lossy(&s[at..j])
        .trim_end_matches("::")
        .to_string()
}

/// The paths inside a group `{a, b::c, d::{e, f}}` starting at `open` (the `{`): the first
/// path of each item at the group's own level.
fn group_items(s: &[u8], open: usize) -> Vec<(usize, String)> {
    let (mut depth, mut j, mut items) = (0, open, Vec::new());
    let mut item_start = true;
    while j < s.len() {
        match s[j] {
            b'{' => {
                depth += 1;
                item_start = depth == 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => item_start = true,
            c if item_start && depth == 1 && is_ident(c) => {
                items.push((j, path_at(s, j)));
                item_start = false;
            }
            _ => {}
        }
        j += 1;
    }
    items
}

/// Every path in `src` (already stripped) that leaves its file's module for the crate root:
/// `crate::..`, its groups, and `super::` chains at least as long as the module's depth.
fn references(file: &str, from: &str, depth: usize, src: &str) -> Vec<Reference> {
    let s = src.as_bytes();
    let line_of = |at: usize| src[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut push = |at: usize, path: String| {
        if path.is_empty() || path == "self" {
            return;
        }
        let (file, from) = (file.to_string(), from.to_string());
        found.push(Reference {
            file,
            line: line_of(at),
            from,
            path,
        });
    };
    // Open braces, each true if it opens an inline `mod x {`, which makes `super::` one longer.
    let mut braces: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let word_start = i == 0 || !is_ident(s[i - 1]);
        let (steps, rest) = climb(s, i);
        let inline_mods = braces.iter().filter(|&&m| m).count();
        if word_start
            && (s[i..].starts_with(b"crate::") || steps > 0 && steps >= depth + inline_mods)
        {
            let root_path = if steps > 0 { rest } else { i + "crate::".len() };
            if s.get(root_path) == Some(&b'{') {
                for (at, path) in group_items(s, root_path) {
                    push(at, path);
                }
            } else {
                push(root_path, path_at(s, root_path));
            }
            i = root_path.max(i + 1);
            continue;
        }
        match s[i] {
            b'{' => braces.push(opens_inline_mod(s, i)),
            b'}' => {
                braces.pop();
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// How many `super::` segments start at `i`, and where the path goes on after them.
fn climb(s: &[u8], mut i: usize) -> (usize, usize) {
    let mut steps = 0;
    while s[i..].starts_with(b"super::") {
        steps += 1;
        i += "super::".len();
    }
    (steps, i)
}

/// Whether the `{` at `open` follows `mod name`.
fn opens_inline_mod(s: &[u8], open: usize) -> bool {
    let before = String::from_utf8_lossy(&s[..open]);
    let words: Vec<&str> = before.split_whitespace().rev().take(2).collect();
    words.len() == 2 && words[1] == "mod" && words[0].bytes().all(is_ident)
}

/// Every reference in the crate's sources, and files that belong to no declared module.
fn collect(modules: &BTreeSet<String>) -> (Vec<Reference>, Vec<String>) {
    let mut files = Vec::new();
    source_files(&src_dir(), &mut files);
    let (mut refs, mut strays) = (Vec::new(), Vec::new());
    for path in files {
        let shown = format!(
            "cluster/src/{}",
            path.strip_prefix(src_dir()).unwrap().display()
        );
        let (module, depth) = module_of(&path);
        if !modules.contains(&module) {
            strays.push(format!("{shown}: belongs to no module lib.rs declares"));
            continue;
        }
        let text = strip(&fs::read_to_string(&path).expect("read source"));
        refs.extend(references(&shown, &module, depth, &text));
    }
    (refs, strays)
}

/// The module a reference leads into (a former path counts as the module it re-exports).
fn resolve<'a>(r: &'a Reference, aliases: &'a BTreeMap<String, String>) -> &'a str {
    aliases.get(r.target()).map_or(r.target(), String::as_str)
}

fn layer_of(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, l)| l)
}

/// The downward rule: each reference leads to the same layer or a lower one. Returns the edges
/// between different modules of one layer, each with its first reference.
fn check_downward(
    refs: &[Reference],
    aliases: &BTreeMap<String, String>,
    modules: &BTreeSet<String>,
    failures: &mut Vec<String>,
) -> BTreeMap<(String, String), Reference> {
    let mut same_layer = BTreeMap::new();
    for r in refs {
        let to = resolve(r, aliases);
        if !modules.contains(to) {
            failures.push(format!(
                "{}: `crate::{}` names `{to}`, which lib.rs neither declares as a module nor re-exports",
                r.at(),
                r.path
            ));
            continue;
        }
        let (from_layer, to_layer) = (layer_of(&r.from).unwrap(), layer_of(to).unwrap());
        if to_layer > from_layer {
            failures.push(format!(
                "{}: `{}` (layer {from_layer}) uses `crate::{}`, which is `{to}` (layer {to_layer}): a module uses only its own layer or lower ones{}",
                r.at(),
                r.from,
                r.path,
                if r.from == "model" && to == "wire" { "; model never uses wire" } else { "" }
            ));
        } else if to_layer == from_layer && to != r.from {
            same_layer
                .entry((r.from.clone(), to.to_string()))
                .or_insert_with(|| r.clone());
        }
    }
    same_layer
}

/// The cycles among modules of one layer, each shown with a reference for every edge.
fn check_cycles(edges: &BTreeMap<(String, String), Reference>, failures: &mut Vec<String>) {
    let reaches = |start: &str, goal: &str| -> Option<Vec<String>> {
        // Depth-first search for a path start -> .. -> goal, as the list of modules on it.
        let mut stack = vec![vec![start.to_string()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap().clone();
            if last == goal && path.len() > 1 {
                return Some(path);
            }
            if !seen.insert(last.clone()) {
                continue;
            }
            for (_, to) in edges.keys().filter(|(from, _)| *from == last) {
                let mut next = path.clone();
                next.push(to.clone());
                stack.push(next);
            }
        }
        None
    };
    let mut reported = BTreeSet::new();
    for (from, _) in edges.keys() {
        let Some(cycle) = reaches(from, from) else {
            continue;
        };
        let members: BTreeSet<_> = cycle.iter().cloned().collect();
        if !reported.insert(members) {
            continue;
        }
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                let r = &edges[&(w[0].clone(), w[1].clone())];
                format!("  {} -> {} at {}: `crate::{}`", w[0], w[1], r.at(), r.path)
            })
            .collect();
        failures.push(format!(
            "modules of one layer use each other in a cycle ({}):\n{}",
            cycle.join(" -> "),
            steps.join("\n")
        ));
    }
}

#[test]
fn every_module_uses_only_its_own_layer_or_lower_ones_without_cycles() {
    let (modules, aliases) = read_lib();
    let mut failures = Vec::new();
    for m in &modules {
        if layer_of(m).is_none() {
            failures.push(format!(
                "cluster/src/lib.rs: module `{m}` has no layer in tests/layers.rs LAYERS"
            ));
        }
    }
    for (m, _) in LAYERS {
        if !modules.contains(*m) {
            failures.push(format!(
                "tests/layers.rs: LAYERS names `{m}`, which lib.rs does not declare"
            ));
        }
    }
    for (alias, target) in &aliases {
        if !modules.contains(target) {
            failures.push(format!(
                "cluster/src/lib.rs: `{alias}` re-exports from `{target}`, not a module"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (refs, strays) = collect(&modules);
    failures.extend(strays);
    assert!(
        refs.len() > 100,
        "found only {} references: the scan is broken",
        refs.len()
    );
    let same_layer = check_downward(&refs, &aliases, &modules, &mut failures);
    check_cycles(&same_layer, &mut failures);
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
    let refs = references("f.rs", "client", 1, &strip(src));
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
