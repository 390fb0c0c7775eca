//! The configuration files of the administration verbs, in the formats of the seed utilities,
//! and their parsers. Every malformed line is refused with its line number and the rule it
//! breaks; a file with any bad line changes nothing. `#` starts a comment; blank lines are
//! skipped.
//!
//! - `recoverseg -i`: `failedAddress|failedPort|failedDataDirectory` (recover in place) or
//!   `failedAddress|failedPort|failedDataDirectory newAddress|newPort|newDataDirectory`.
//! - `add-mirrors -i`: `content|address|port|dataDirectory`.
//! - `move-mirrors -i`: `oldAddress|oldPort|oldDataDirectory newAddress|newPort|newDataDirectory`.

use std::collections::BTreeMap;
use std::fmt;

use crate::model::catalog::{Catalog, Content, Role, SegmentConfig, Status};

/// An instance's location as the files name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub address: String,
    pub port: u16,
    pub datadir: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}|{}", self.address, self.port, self.datadir)
    }
}

impl Location {
    pub fn of(row: &SegmentConfig) -> Location {
        Location {
            address: row.address.clone(),
            port: row.port,
            datadir: row.datadir.clone(),
        }
    }

    /// Whether `row` is the instance at this location (by address or host name).
    pub fn names(&self, row: &SegmentConfig) -> bool {
        (row.address == self.address || row.hostname == self.address)
            && row.port == self.port
            && row.datadir == self.datadir
    }
}

/// A refusal naming the line and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {rule}")]
pub struct LineError {
    pub line: usize,
    pub rule: String,
}

fn err(line: usize, rule: impl Into<String>) -> LineError {
    LineError {
        line,
        rule: rule.into(),
    }
}

/// The meaningful lines: (1-based number, text without comment, trimmed).
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.split('#').next().unwrap_or("").trim();
        (!l.is_empty()).then_some((i + 1, l))
    })
}

fn port(line: usize, s: &str) -> Result<u16, LineError> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(err(
            line,
            format!("port {s:?} is not a number in 1..=65535"),
        )),
    }
}

fn location(line: usize, group: &str, which: &str) -> Result<Location, LineError> {
    let parts: Vec<&str> = group.split('|').collect();
    if parts.len() != 3 {
        return Err(err(
            line,
            format!(
                "expected 3 parts (address|port|dataDirectory) in the {which} group but found {}",
                parts.len()
            ),
        ));
    }
    if parts[0].is_empty() {
        return Err(err(line, format!("the {which} address is empty")));
    }
    if !parts[2].starts_with('/') {
        return Err(err(
            line,
            format!(
                "the {which} data directory {:?} is not an absolute path",
                parts[2]
            ),
        ));
    }
    Ok(Location {
        address: parts[0].to_string(),
        port: port(line, parts[1])?,
        datadir: parts[2].to_string(),
    })
}

/// One line of a `recoverseg -i` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoverLine {
    pub line: usize,
    pub failed: Location,
    /// `None`: recover in place.
    pub new: Option<Location>,
}

/// Parses a `recoverseg -i` file (syntax only; see [`check_recover`]).
pub fn parse_recover(text: &str) -> Result<Vec<RecoverLine>, LineError> {
    let mut out = Vec::new();
    for (n, l) in lines(text) {
        let groups: Vec<&str> = l.split_whitespace().collect();
        let (failed, new) = match groups.as_slice() {
            [failed] => (location(n, failed, "failed")?, None),
            [failed, new] => (
                location(n, failed, "failed")?,
                Some(location(n, new, "new")?),
            ),
            other => {
                return Err(err(
                    n,
                    format!("expected 1 or 2 groups but found {}", other.len()),
                ))
            }
        };
        out.push(RecoverLine {
            line: n,
            failed,
            new,
        });
    }
    Ok(out)
}

/// An instance to recover, and where: `None` in place, else the new location and its host.
pub type RecoverTarget = (SegmentConfig, Option<(Location, String)>);

/// Checks a parsed `recoverseg -i` file against the catalog: every failed location names a
/// segment instance marked down, none twice, and no new location is already taken or on the
/// acting primary's host. Returns the rows to recover, in file order.
pub fn check_recover(
    cat: &Catalog,
    lines: &[RecoverLine],
    hostname_of: impl Fn(&str) -> Option<String>,
) -> Result<Vec<RecoverTarget>, LineError> {
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    let mut targets: BTreeMap<Location, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for l in lines {
        let row = cat
            .segments
            .values()
            .find(|r| r.content >= 0 && l.failed.names(r))
            .ok_or_else(|| {
                err(
                    l.line,
                    format!(
                        "a segment to recover was not found in configuration: {}",
                        l.failed
                    ),
                )
            })?;
        if row.status != Status::Down {
            return Err(err(
                l.line,
                format!("dbid {} at {} is not marked down", row.dbid, l.failed),
            ));
        }
        if let Some(first) = seen.insert(row.dbid, l.line) {
            return Err(err(
                l.line,
                format!("dbid {} is listed twice (also line {first})", row.dbid),
            ));
        }
        let new = match &l.new {
            None => None,
            Some(new) => {
                let host = hostname_of(&new.address)
                    .ok_or_else(|| err(l.line, format!("unknown host {:?}", new.address)))?;
                check_new_location(cat, l.line, row, new, &host, &mut targets)?;
                Some((new.clone(), host))
            }
        };
        out.push((row.clone(), new));
    }
    Ok(out)
}

fn check_new_location(
    cat: &Catalog,
    line: usize,
    row: &SegmentConfig,
    new: &Location,
    host: &str,
    targets: &mut BTreeMap<Location, usize>,
) -> Result<(), LineError> {
    if let Some(first) = targets.insert(new.clone(), line) {
        return Err(err(
            line,
            format!("new location {new} is listed twice (also line {first})"),
        ));
    }
    if let Some(taken) = cat.segments.values().find(|r| {
        r.dbid != row.dbid && r.hostname == host && (r.port == new.port || r.datadir == new.datadir)
    }) {
        return Err(err(
            line,
            format!(
                "new location {new} clashes with dbid {} on host {host} (port or data directory in use)",
                taken.dbid
            ),
        ));
    }
    let primary_host = cat
        .pair(row.content)
        .map(|p| p.primary.hostname)
        .unwrap_or_default();
    if primary_host == host && row.role != Role::Primary {
        return Err(err(
            line,
            format!(
                "a mirror may not sit on its primary's host: content {} has its primary on {host}",
                row.content
            ),
        ));
    }
    Ok(())
}

/// `recoverseg -o`: a sample file listing every instance marked down, to recover in place (add
/// a second group to recover elsewhere).
pub fn sample_recover(cat: &Catalog) -> String {
    let mut out = String::from(
        "# recoverseg -i input: failedAddress|failedPort|failedDataDirectory \
         [newAddress|newPort|newDataDirectory]\n",
    );
    for row in cat
        .segments
        .values()
        .filter(|r| r.content >= 0 && r.status == Status::Down)
    {
        out.push_str(&format!("{}\n", Location::of(row)));
    }
    out
}

/// One line of an `add-mirrors -i` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorLine {
    pub line: usize,
    pub content: Content,
    pub location: Location,
}

/// Parses an `add-mirrors -i` file (syntax only).
pub fn parse_add_mirrors(text: &str) -> Result<Vec<MirrorLine>, LineError> {
    let mut out = Vec::new();
    for (n, l) in lines(text) {
        let parts: Vec<&str> = l.split('|').collect();
        if parts.len() != 4 {
            return Err(err(
                n,
                format!(
                    "expected 4 parts (content|address|port|dataDirectory) but found {}",
                    parts.len()
                ),
            ));
        }
        let content = match parts[0].parse::<Content>() {
            Ok(c) if c >= 0 => c,
            _ => {
                return Err(err(
                    n,
                    format!(
                        "content {:?} is not a segment content id (0 or more)",
                        parts[0]
                    ),
                ))
            }
        };
        let location = location(n, &parts[1..].join("|"), "mirror")?;
        out.push(MirrorLine {
            line: n,
            content,
            location,
        });
    }
    Ok(out)
}

/// Checks an `add-mirrors -i` file against the catalog: one line per content, every content
/// unmirrored, no mirror on its primary's host, no location in use. Returns the new rows (dbid
/// 0: the coordinator assigns it).
pub fn check_add_mirrors(
    cat: &Catalog,
    lines: &[MirrorLine],
    hostname_of: impl Fn(&str) -> Option<String>,
) -> Result<Vec<SegmentConfig>, LineError> {
    let pairs = cat.pairs();
    if let Some(p) = pairs.iter().find(|p| p.mirror.is_some()) {
        return Err(err(
            lines.first().map(|l| l.line).unwrap_or(0),
            format!(
                "the cluster is already configured with mirrors (content {} has dbid {})",
                p.content,
                p.mirror.as_ref().map(|m| m.dbid).unwrap_or(0)
            ),
        ));
    }
    if lines.len() != pairs.len() {
        return Err(err(
            lines.last().map(|l| l.line).unwrap_or(0),
            format!(
                "wrong number of mirrors specified: {} lines for {} contents",
                lines.len(),
                pairs.len()
            ),
        ));
    }
    let mut seen: BTreeMap<Content, usize> = BTreeMap::new();
    let mut targets = BTreeMap::new();
    let mut out = Vec::new();
    for l in lines {
        let Some(pair) = pairs.iter().find(|p| p.content == l.content) else {
            return Err(err(l.line, format!("content {} does not exist", l.content)));
        };
        if let Some(first) = seen.insert(l.content, l.line) {
            return Err(err(
                l.line,
                format!("content {} is listed twice (also line {first})", l.content),
            ));
        }
        let host = hostname_of(&l.location.address)
            .ok_or_else(|| err(l.line, format!("unknown host {:?}", l.location.address)))?;
        let mut row = pair.primary.clone();
        row.dbid = 0;
        row.role = Role::Mirror;
        check_new_location(cat, l.line, &row, &l.location, &host, &mut targets)?;
        if host == pair.primary.hostname {
            return Err(err(
                l.line,
                format!(
                    "a mirror may not sit on its primary's host: content {} has its primary on {host}",
                    l.content
                ),
            ));
        }
        row.preferred_role = Role::Mirror;
        row.hostname = host;
        row.address = l.location.address.clone();
        row.port = l.location.port;
        row.datadir = l.location.datadir.clone();
        out.push(row);
    }
    Ok(out)
}

/// Renders mirror rows as an `add-mirrors -i` file (`add-mirrors -o`).
pub fn render_add_mirrors(rows: &[SegmentConfig]) -> String {
    let mut out = String::from("# add-mirrors -i input: content|address|port|dataDirectory\n");
    for r in rows {
        out.push_str(&format!("{}|{}\n", r.content, Location::of(r)));
    }
    out
}

/// One line of a `move-mirrors -i` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveLine {
    pub line: usize,
    pub old: Location,
    pub new: Location,
}

/// Parses a `move-mirrors -i` file (syntax only).
pub fn parse_move_mirrors(text: &str) -> Result<Vec<MoveLine>, LineError> {
    let mut out = Vec::new();
    for (n, l) in lines(text) {
        let groups: Vec<&str> = l.split_whitespace().collect();
        let [old, new] = groups.as_slice() else {
            return Err(err(
                n,
                format!("expected 2 groups (old new) but found {}", groups.len()),
            ));
        };
        out.push(MoveLine {
            line: n,
            old: location(n, old, "old")?,
            new: location(n, new, "new")?,
        });
    }
    Ok(out)
}

/// Checks a `move-mirrors -i` file against the catalog: each old location is a segment in the
/// mirror role (never the coordinator), none twice; new locations are free and off the
/// primary's host. Returns (row, new location, new host name).
pub fn check_move_mirrors(
    cat: &Catalog,
    lines: &[MoveLine],
    hostname_of: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(SegmentConfig, Location, String)>, LineError> {
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    let mut targets = BTreeMap::new();
    let mut out = Vec::new();
    for l in lines {
        let row = cat
            .segments
            .values()
            .find(|r| l.old.names(r))
            .ok_or_else(|| {
                err(
                    l.line,
                    format!("a mirror to move was not found in configuration: {}", l.old),
                )
            })?;
        if row.content < 0 {
            return Err(err(
                l.line,
                "the coordinator cannot be moved with move-mirrors",
            ));
        }
        if row.role != Role::Mirror {
            return Err(err(
                l.line,
                format!("dbid {} at {} is not in the mirror role", row.dbid, l.old),
            ));
        }
        if let Some(first) = seen.insert(row.dbid, l.line) {
            return Err(err(
                l.line,
                format!("dbid {} is listed twice (also line {first})", row.dbid),
            ));
        }
        let host = hostname_of(&l.new.address)
            .ok_or_else(|| err(l.line, format!("unknown host {:?}", l.new.address)))?;
        check_new_location(cat, l.line, row, &l.new, &host, &mut targets)?;
        out.push((row.clone(), l.new.clone(), host));
    }
    Ok(out)
}

/// The backout file of a move: the same format with old and new swapped.
pub fn render_backout(lines: &[MoveLine]) -> String {
    let mut out = String::from("# move-mirrors backout: newLocation oldLocation\n");
    for l in lines {
        out.push_str(&format!("{} {}\n", l.new, l.old));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn recover_lines_parse_in_both_forms_and_errors_name_the_line() {
        let text = "# comment\n\nsdw1|6000|/data/primary/gpseg0\n\
                    sdw1|6001|/d/x sdw5|6001|/d/y  # elsewhere\n";
        let lines = parse_recover(text).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line, 3);
        assert_eq!(lines[1].new.as_ref().unwrap().address, "sdw5");
        let e = parse_recover("a|1|/x\na|1|/x b|2|/y c|3|/z\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.rule.contains("expected 1 or 2 groups but found 3"), "{e}");
        let e = parse_recover("a|1\n").unwrap_err();
        assert!(e.to_string().starts_with("line 1: expected 3 parts"), "{e}");
        let e = parse_recover("a|99999|/x\n").unwrap_err();
        assert!(e.rule.contains("port"), "{e}");
        let e = parse_recover("a|1|relative\n").unwrap_err();
        assert!(e.rule.contains("absolute"), "{e}");
    }

    #[test]
    fn add_and_move_lines_parse() {
        let m = parse_add_mirrors("0|sdw2|7000|/data/mirror/gpseg0\n").unwrap();
        assert_eq!(m[0].content, 0);
        assert_eq!(m[0].location.port, 7000);
        let e = parse_add_mirrors("0|sdw2|7000\n").unwrap_err();
        assert!(e.rule.contains("expected 4 parts"), "{e}");
        let e = parse_add_mirrors("-3|sdw2|7000|/x\n").unwrap_err();
        assert!(e.rule.contains("content"), "{e}");
        let mv = parse_move_mirrors("a|1|/x b|2|/y\n").unwrap();
        assert_eq!(render_backout(&mv).lines().nth(1), Some("b|2|/y a|1|/x"));
        let e = parse_move_mirrors("\n\na|1|/x\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.rule.contains("expected 2 groups"), "{e}");
    }

    proptest! {
        #[test]
        fn no_input_makes_a_parser_panic(text in "\\PC{0,200}") {
            let _ = parse_recover(&text);
            let _ = parse_add_mirrors(&text);
            let _ = parse_move_mirrors(&text);
        }

        #[test]
        fn near_valid_lines_never_panic(
            parts in proptest::collection::vec("[a-z0-9/|# -]{0,12}", 0..6)
        ) {
            let text = parts.join("|");
            let _ = parse_recover(&text);
            let _ = parse_add_mirrors(&text);
            let _ = parse_move_mirrors(&text);
        }
    }
}
