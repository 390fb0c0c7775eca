//! The report's figures as tables: computed from the result lines alone, rendered as HTML for
//! the page and as Markdown for people reading a terminal (and for snapshot tests).

use std::collections::BTreeMap;

use crate::results::{SeedLine, Verdict};

#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub title: String,
    /// What the table shows, one sentence.
    pub note: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(title: &str, note: &str, columns: &[&str]) -> Table {
        Table {
            title: title.into(),
            note: note.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("### {}\n\n{}\n\n", self.title, self.note);
        s += &format!("| {} |\n", self.columns.join(" | "));
        s += &format!("|{}\n", "---|".repeat(self.columns.len()));
        for r in &self.rows {
            s += &format!("| {} |\n", r.join(" | ").replace('\n', " "));
        }
        if self.rows.is_empty() {
            s += "(none)\n";
        }
        s
    }

    pub fn html(&self) -> String {
        let mut s = format!(
            "<h3>{}</h3>\n<p class=\"note\">{}</p>\n<table>\n<tr>",
            esc(&self.title),
            esc(&self.note)
        );
        for c in &self.columns {
            s += &format!("<th>{}</th>", esc(c));
        }
        s += "</tr>\n";
        for r in &self.rows {
            s += "<tr>";
            for cell in r {
                if ["cargo run", "cargo hasim ", "hasim "]
                    .iter()
                    .any(|p| cell.starts_with(p))
                {
                    s += &format!("<td><code>{}</code></td>", esc(cell));
                } else {
                    s += &format!("<td>{}</td>", esc(cell));
                }
            }
            s += "</tr>\n";
        }
        if self.rows.is_empty() {
            s += &format!(
                "<tr><td colspan=\"{}\">(none)</td></tr>\n",
                self.columns.len()
            );
        }
        s + "</table>\n"
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Nearest-rank quantile of sorted values.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or("-".into(), |v| format!("{:.2}", v as f64 / 1000.0))
}

pub fn overview(lines: &[SeedLine]) -> Table {
    let mut t = Table::new(
        "Runs",
        "Seeds by scenario and verdict. Simulated and wall time are summed over seeds; wall time is per seed on one core, so simulations/s is per core.",
        &["scenario", "planted bugs", "seeds", "ok", "safety", "liveness", "crash", "transactions", "simulated s", "wall s (sum)", "simulated s per wall s", "simulations/s per core"],
    );
    let mut groups: BTreeMap<(String, String), Vec<&SeedLine>> = BTreeMap::new();
    for l in lines {
        let bugs = l.config.bugs_on().join(", ");
        groups
            .entry((
                l.config.scenario.clone(),
                if bugs.is_empty() { "none".into() } else { bugs },
            ))
            .or_default()
            .push(l);
    }
    for ((scenario, bugs), ls) in groups {
        let count = |v: Verdict| ls.iter().filter(|l| l.verdict == v).count().to_string();
        let sim: u64 = ls.iter().map(|l| l.sim_time_ms).sum();
        let wall: u64 = ls.iter().map(|l| l.wall_time_ms).sum::<u64>().max(1);
        t.rows.push(vec![
            scenario,
            bugs,
            ls.len().to_string(),
            count(Verdict::Ok),
            count(Verdict::Safety),
            count(Verdict::Liveness),
            count(Verdict::Crash),
            ls.iter().map(|l| l.events.invoked).sum::<u64>().to_string(),
            format!("{:.0}", sim as f64 / 1000.0),
            format!("{:.1}", wall as f64 / 1000.0),
            format!("{:.0}", sim as f64 / wall as f64),
            format!("{:.2}", ls.len() as f64 / (wall as f64 / 1000.0)),
        ]);
    }
    t
}

/// Failover parts in ms: detection, promotion, first commit, total; over failovers whose
/// milestones all came.
pub fn failover_parts(lines: &[SeedLine]) -> [Vec<u64>; 4] {
    let mut parts: [Vec<u64>; 4] = Default::default();
    for f in lines.iter().flat_map(|l| &l.failovers) {
        if let Some((d, p, c)) = f.split_ms() {
            for (v, x) in parts.iter_mut().zip([d, p, c, d + p + c]) {
                v.push(x);
            }
        }
    }
    for v in &mut parts {
        v.sort_unstable();
    }
    parts
}

pub const FAILOVER_PARTS: [&str; 4] = [
    "detection (crash to catalog flip)",
    "promotion (flip to promoted)",
    "first commit (promoted to first commit)",
    "total (crash to first commit)",
];

pub fn failover(lines: &[SeedLine]) -> Table {
    let all: Vec<_> = lines.iter().flat_map(|l| &l.failovers).collect();
    let with_mirror = all.iter().filter(|f| f.mirror_in_sync).count();
    let parts = failover_parts(lines);
    let mut t = Table::new(
        "Failover time",
        &format!(
            "Primaries lost to a host crash: {} in all, {} with an in-sync mirror, of which {} failed over and committed again; {} had no in-sync mirror (double faults: nothing to fail over to). Simulated seconds.",
            all.len(), with_mirror, parts[0].len(), all.len() - with_mirror
        ),
        &["part", "failovers", "p50", "p90", "p99", "max"],
    );
    for (name, v) in FAILOVER_PARTS.iter().zip(&parts) {
        t.rows.push(vec![
            name.to_string(),
            v.len().to_string(),
            secs(quantile(v, 0.5)),
            secs(quantile(v, 0.9)),
            secs(quantile(v, 0.99)),
            secs(v.last().copied()),
        ]);
    }
    t
}

pub fn coverage(lines: &[SeedLine]) -> (Table, Table) {
    let mut faults = Table::new(
        "Faults injected",
        "How often each kind of fault was injected, and in how many seeds.",
        &["fault", "injected", "seeds"],
    );
    let mut kinds: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for l in lines {
        let mut seen = std::collections::BTreeSet::new();
        for f in &l.faults {
            let e = kinds.entry(f.kind.as_str()).or_default();
            e.0 += 1;
            if seen.insert(f.kind.as_str()) {
                e.1 += 1;
            }
        }
    }
    for (k, (n, s)) in kinds {
        faults
            .rows
            .push(vec![k.into(), n.to_string(), s.to_string()]);
    }
    let mut checkers = Table::new(
        "Checkers",
        "In how many seeds each checker ran over the history, and in how many it found a violation. A seed whose cluster never served the final read runs none (liveness).",
        &["checker", "seeds run", "seeds violated", "violations"],
    );
    let mut runs: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let unknown = lines.iter().filter(|l| l.checkers.is_none()).count();
    for l in lines {
        for c in l.checkers.iter().flatten() {
            runs.entry(c.as_str()).or_default().0 += 1;
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &l.violations {
            let e = runs.entry(v.checker.as_str()).or_default();
            e.2 += 1;
            if seen.insert(v.checker.as_str()) {
                e.1 += 1;
            }
        }
    }
    for (c, (run, seeds, n)) in runs {
        checkers.rows.push(vec![
            c.into(),
            run.to_string(),
            seeds.to_string(),
            n.to_string(),
        ]);
    }
    if unknown > 0 {
        checkers.note +=
            &format!(" {unknown} result lines do not say which checkers ran (an older simulator).");
    }
    (faults, checkers)
}

/// Per planted bug: seeds run with it, seeds that failed, and after how many of its seeds (in
/// the file's order) the first failure came.
pub fn bugs(lines: &[SeedLine]) -> Table {
    let mut t = Table::new(
        "Planted bugs",
        "Runs with a planted bug switched on (hasim --bug): how many of its seeds failed, how many seeds it took to catch it first, and which checkers caught it.",
        &["planted bug", "seeds", "caught in", "first caught after", "first failing seed", "caught by"],
    );
    let mut by_bug: BTreeMap<String, Vec<&SeedLine>> = BTreeMap::new();
    for l in lines {
        for b in l.config.bugs_on() {
            by_bug.entry(b).or_default().push(l);
        }
    }
    for (bug, ls) in by_bug {
        let failing: Vec<_> = ls.iter().filter(|l| l.verdict != Verdict::Ok).collect();
        let first = ls.iter().position(|l| l.verdict != Verdict::Ok);
        let mut by: Vec<String> = failing
            .iter()
            .flat_map(|l| l.violations.iter().map(|v| v.checker.clone()))
            .collect();
        by.sort();
        by.dedup();
        if failing.iter().any(|l| l.violations.is_empty()) {
            by.push("(liveness or crash)".into());
        }
        t.rows.push(vec![
            bug,
            ls.len().to_string(),
            failing.len().to_string(),
            first.map_or("not caught".into(), |i| match i + 1 {
                1 => "1 seed".into(),
                n => format!("{n} seeds"),
            }),
            first.map_or("-".into(), |i| ls[i].seed.to_string()),
            if by.is_empty() {
                "-".into()
            } else {
                by.join(", ")
            },
        ]);
    }
    t
}

pub fn failing(lines: &[SeedLine], max: usize) -> Table {
    let bad: Vec<_> = lines.iter().filter(|l| l.verdict != Verdict::Ok).collect();
    let mut t = Table::new(
        "Failing seeds",
        &format!(
            "{} failing seeds{}; each replays, bit for bit, with its command.",
            bad.len(),
            if bad.len() > max {
                format!(" (the first {max} shown)")
            } else {
                String::new()
            }
        ),
        &["seed", "verdict", "planted bugs", "what failed", "replay"],
    );
    for l in bad.into_iter().take(max) {
        let what = match (l.violations.first(), &l.error) {
            (Some(v), _) => {
                let more = l.violations.len() - 1;
                let mut m: String = v.message.chars().take(160).collect();
                if m.len() < v.message.len() {
                    m += "...";
                }
                format!(
                    "[{}] {m}{}",
                    v.checker,
                    if more > 0 {
                        format!(" (+{more} more)")
                    } else {
                        String::new()
                    }
                )
            }
            (None, Some(e)) => e.chars().take(200).collect(),
            (None, None) => "-".into(),
        };
        let bugs = l.config.bugs_on().join(", ");
        t.rows.push(vec![
            l.seed.to_string(),
            l.verdict.name().into(),
            if bugs.is_empty() { "-".into() } else { bugs },
            what,
            l.replay.clone(),
        ]);
    }
    t
}

pub fn all(lines: &[SeedLine]) -> Vec<Table> {
    let (faults, checkers) = coverage(lines);
    vec![
        overview(lines),
        failover(lines),
        faults,
        checkers,
        bugs(lines),
        failing(lines, 200),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::parse_results;
    use crate::results::tests::line;

    pub(crate) fn sample() -> Vec<SeedLine> {
        let mut text = String::new();
        for seed in 0..6 {
            text += &line(seed, "ok", None);
            text.push('\n');
        }
        for (seed, verdict) in [(0, "ok"), (1, "ok"), (2, "safety"), (3, "safety")] {
            text += &line(seed, verdict, Some("promote_unsynced_mirror"));
            text.push('\n');
        }
        text += &line(4, "ok", Some("mirror_skips_deletes"));
        parse_results(&text).unwrap()
    }

    #[test]
    fn the_report_tables() {
        let md: Vec<String> = all(&sample()).iter().map(Table::markdown).collect();
        insta::assert_snapshot!(md.join("\n"));
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(quantile(&v, 0.5), Some(5));
        assert_eq!(quantile(&v, 0.9), Some(9));
        assert_eq!(quantile(&v, 0.99), Some(10));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn html_tables_escape_text() {
        let mut t = Table::new("a<b", "n", &["x"]);
        t.rows.push(vec!["<script>".into()]);
        assert!(t.html().contains("&lt;script&gt;") && !t.html().contains("<script>"));
    }
}
