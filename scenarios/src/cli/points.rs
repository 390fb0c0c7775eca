//! `hasim points`: the fault-point table of a sweep. Reads `hasim run --json` results and
//! prints, for every fault point, how many seeds it fired in and how many times it fired in
//! all; a point that fired in no seed is marked, as its placement or its rates are wrong.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use cluster::io::points::FaultPoint;

use crate::cli::args::EXIT_USAGE;

#[derive(Args, Debug)]
pub struct PointsArgs {
    /// Results of `hasim run --json` (one JSON object per line); several files add up.
    #[arg(required = true)]
    pub input: Vec<PathBuf>,
}

/// Per point: (seeds it fired in, firings in all).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub seeds: u64,
    pub rows: BTreeMap<String, (u64, u64)>,
}

/// Adds up the `points` of every result line in `text`.
pub fn tabulate(text: &str, table: &mut Table) -> Result<(), String> {
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        table.seeds += 1;
        if let Some(points) = v.get("points").and_then(|p| p.as_object()) {
            for (name, n) in points {
                let row = table.rows.entry(name.clone()).or_default();
                row.0 += 1;
                row.1 += n.as_u64().unwrap_or(0);
            }
        }
    }
    Ok(())
}

/// The table as text, every known point on a line of its own.
pub fn render(table: &Table) -> String {
    let mut out = format!(
        "{:<34} {:>12} {:>9}\n",
        "fault point",
        format!("seeds/{}", table.seeds),
        "firings"
    );
    for point in FaultPoint::ALL {
        let (seeds, firings) = table.rows.get(point.name()).copied().unwrap_or_default();
        let never = if seeds == 0 { "  never fired" } else { "" };
        out += &format!("{:<34} {seeds:>12} {firings:>9}{never}\n", point.name());
    }
    out
}

pub fn main(args: &PointsArgs) -> i32 {
    let mut table = Table::default();
    for path in &args.input {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return EXIT_USAGE;
            }
        };
        if let Err(e) = tabulate(&text, &mut table) {
            eprintln!("error: {}: {e}", path.display());
            return EXIT_USAGE;
        }
    }
    print!("{}", render(&table));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_counts_seeds_and_firings_per_point_and_marks_points_that_never_fired() {
        let mut table = Table::default();
        let lines = r#"{"seed":0,"points":{"rewind-midway":2}}
{"seed":1}
{"seed":2,"points":{"rewind-midway":1,"flush-feedback-sent":1}}"#;
        tabulate(lines, &mut table).unwrap();
        assert_eq!(table.seeds, 3);
        assert_eq!(table.rows["rewind-midway"], (2, 3));
        let text = render(&table);
        assert!(text.contains("seeds/3"));
        assert!(text
            .lines()
            .any(|l| l.starts_with("rewind-midway") && l.ends_with(" 3")));
        assert!(text
            .lines()
            .any(|l| l.starts_with("activation-midway") && l.ends_with("never fired")));
    }
}
