//! Reads a crate's sources for the paths that leave a file's top-level module, and checks them
//! against a ranking of those modules: each uses only modules of its own rank or lower ones,
//! and modules of one rank never use each other in a cycle. The cluster's layers
//! (`cluster/tests/layers.rs`) and the simulator's rooms (`sim/tests/rooms.rs`, which includes
//! this file) are both checked with it.
//!
//! It reads the sources, not the compiler's view: the top-level modules and the re-exported
//! former paths from `src/lib.rs`, and every path in `src` (except the skipped folders) that
//! names one of them: `crate::x`, grouped `crate::{x, y::z}`, and `super::` chains that climb
//! to the crate root. Comments and string literals are skipped.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Where a crate's sources are and what of them is read.
pub struct Sources {
    /// The crate's `src`.
    pub src: PathBuf,
    /// How file names are shown in failures (`cluster/src`).
    pub shown: &'static str,
    /// Folders of `src` not read (a binary on top of everything).
    pub skip_dirs: &'static [&'static str],
    /// Whether `#[cfg(test)] mod .. { .. }` blocks are left out (unit tests may then build their
    /// fixtures from any module).
    pub skip_unit_tests: bool,
}

/// The ranking the paths are checked against.
pub struct Rules {
    /// Each top-level module's rank, bottom up. A module `lib.rs` declares must be here.
    pub ranks: &'static [(&'static str, u32)],
    /// What a rank is called in failures: "layer", "room".
    pub word: &'static str,
    /// Why a use from the first module into the second is wrong, beyond the ranking, if the
    /// crate has a word for it.
    pub note: fn(&str, &str) -> Option<&'static str>,
}

impl Rules {
    pub fn rank(&self, module: &str) -> Option<u32> {
        self.ranks
            .iter()
            .find(|(m, _)| *m == module)
            .map(|&(_, r)| r)
    }
}

/// Every rule broken by the crate's sources, each naming the file and line; empty when none.
/// `file` is the test that holds `rules` (named in failures about the ranking itself).
pub fn check(sources: &Sources, rules: &Rules, file: &str) -> Vec<String> {
    let (modules, aliases) = read_lib(sources);
    let mut failures = Vec::new();
    for m in &modules {
        if rules.rank(m).is_none() {
            failures.push(format!(
                "{}/lib.rs: module `{m}` has no {} in {file}",
                sources.shown, rules.word
            ));
        }
    }
    for (m, _) in rules.ranks {
        if !modules.contains(*m) {
            failures.push(format!(
                "{file}: `{m}` is ranked, but lib.rs does not declare it"
            ));
        }
    }
    for (alias, target) in &aliases {
        if !modules.contains(target) {
            failures.push(format!(
                "{}/lib.rs: `{alias}` re-exports from `{target}`, not a module",
                sources.shown
            ));
        }
    }
    if !failures.is_empty() {
        return failures;
    }
    let (refs, strays) = collect(sources, &modules);
    failures.extend(strays);
    if refs.len() < 50 {
        failures.push(format!(
            "found only {} references: the scan is broken",
            refs.len()
        ));
    }
    let same_rank = check_downward(&refs, &aliases, &modules, rules, &mut failures);
    check_cycles(&same_rank, rules.word, &mut failures);
    failures
}

/// The source with every `#[cfg(test)]` module's body blanked out (line breaks kept). Takes
/// stripped source.
fn blank_unit_tests(src: &str) -> String {
    let mut out = src.as_bytes().to_vec();
    let mut from = 0;
    while let Some(at) = src[from..].find("#[cfg(test)]").map(|p| p + from) {
        from = at + 1;
        let after = &src[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        if !trimmed.starts_with("mod ") {
            continue;
        }
        let Some(open) = after.find('{').map(|p| p + at + "#[cfg(test)]".len()) else {
            continue;
        };
        let mut depth = 0;
        for (i, &c) in src.as_bytes().iter().enumerate().skip(open) {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            if c != b'\n' {
                out[i] = b' ';
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One path in a source file that names a top-level module.
#[derive(Clone, Debug)]
pub struct Reference {
    pub file: String,
    pub line: usize,
    /// The module of the file.
    pub from: String,
    /// The path from its first segment: `wire::SegmentRequest`, `catalog::epoch::describe`.
    pub path: String,
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
pub fn read_lib(sources: &Sources) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let lib = fs::read_to_string(sources.src.join("lib.rs")).expect("read src/lib.rs");
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

/// Every `.rs` file under `src`, except `lib.rs` (declarations and re-exports) and the
/// skipped folders.
fn source_files(sources: &Sources, dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            if !sources
                .skip_dirs
                .iter()
                .any(|d| path == sources.src.join(d))
            {
                source_files(sources, &path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && path != sources.src.join("lib.rs")
        {
            out.push(path);
        }
    }
    out.sort();
}

/// The source with comments and the contents of string and character literals blanked out
/// (line breaks kept, so line numbers stay).
pub fn strip(src: &str) -> String {
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
fn module_of(src: &Path, path: &Path) -> (String, usize) {
    let rel = path.strip_prefix(src).expect("under src");
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
pub fn references(file: &str, from: &str, depth: usize, src: &str) -> Vec<Reference> {
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
pub fn collect(sources: &Sources, modules: &BTreeSet<String>) -> (Vec<Reference>, Vec<String>) {
    let mut files = Vec::new();
    source_files(sources, &sources.src, &mut files);
    let (mut refs, mut strays) = (Vec::new(), Vec::new());
    for path in files {
        let shown = format!(
            "{}/{}",
            sources.shown,
            path.strip_prefix(&sources.src).unwrap().display()
        );
        let (module, depth) = module_of(&sources.src, &path);
        if !modules.contains(&module) {
            strays.push(format!("{shown}: belongs to no module lib.rs declares"));
            continue;
        }
        let mut text = strip(&fs::read_to_string(&path).expect("read source"));
        if sources.skip_unit_tests {
            text = blank_unit_tests(&text);
        }
        refs.extend(references(&shown, &module, depth, &text));
    }
    (refs, strays)
}

/// The module a reference leads into (a former path counts as the module it re-exports).
fn resolve<'a>(r: &'a Reference, aliases: &'a BTreeMap<String, String>) -> &'a str {
    aliases.get(r.target()).map_or(r.target(), String::as_str)
}

/// The downward rule: each reference leads to the same layer or a lower one. Returns the edges
/// between different modules of one layer, each with its first reference.
fn check_downward(
    refs: &[Reference],
    aliases: &BTreeMap<String, String>,
    modules: &BTreeSet<String>,
    rules: &Rules,
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
        let (from_layer, to_layer) = (rules.rank(&r.from).unwrap(), rules.rank(to).unwrap());
        if to_layer > from_layer {
            failures.push(format!(
                "{}: `{}` ({word} {from_layer}) uses `crate::{}`, which is `{to}` ({word} {to_layer}): a module uses only its own {word} or lower ones{}",
                r.at(),
                r.from,
                r.path,
                (rules.note)(&r.from, to).map_or(String::new(), |n| format!("; {n}")),
                word = rules.word,
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
fn check_cycles(
    edges: &BTreeMap<(String, String), Reference>,
    word: &str,
    failures: &mut Vec<String>,
) {
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
            "modules of one {word} use each other in a cycle ({}):\n{}",
            cycle.join(" -> "),
            steps.join("\n")
        ));
    }
}
