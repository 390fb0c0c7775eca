//! The HTML page: `index.html` and the SVG charts it shows, written into one directory that
//! opens from disk with no network.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::charts;
use crate::layout_report::{self, ShapeReport};
use crate::layouts::Simulated;
use crate::results::SeedLine;
use crate::tables::{self, esc, Table};

/// What goes into a report.
pub struct Input<'a> {
    pub lines: &'a [SeedLine],
    /// Where the lines came from (shown on the page).
    pub source: String,
    /// The simulator's layout figures (`hasim layouts --json`), if measured.
    pub layouts: Option<&'a [Simulated]>,
    /// The shapes the layout section studies, placed.
    pub shapes: &'a [layout_report::Shape],
    /// State timelines of replayed seeds: (name, SVG).
    pub timelines: Vec<(String, String)>,
}

struct Section {
    title: &'static str,
    intro: String,
    charts: Vec<(String, String)>,
    tables: Vec<Table>,
}

/// Writes `out/index.html` and its charts; returns the page's path.
pub fn write(input: &Input, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let sections = sections(input)?;
    let mut body = String::new();
    let mut n_chart = 0;
    for s in &sections {
        body += &format!("<section>\n<h2>{}</h2>\n<p>{}</p>\n", esc(s.title), s.intro);
        for (name, svg) in &s.charts {
            n_chart += 1;
            let file = format!("{name}.svg");
            std::fs::write(out.join(&file), svg)
                .with_context(|| format!("writing {}", out.join(&file).display()))?;
            body +=
                &format!("<figure><img class=\"chart\" src=\"{file}\" alt=\"{name}\"></figure>\n");
        }
        for t in &s.tables {
            body += &t.html();
        }
        body += "</section>\n";
    }
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hasim report</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1320px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; }}
td code {{ font-size: 12px; white-space: nowrap; }}
p.note {{ color: #555; font-size: 14px; max-width: 70em; }}
img.chart {{ max-width: 100%; border: 1px solid #ddd; }}
figure {{ margin: 1em 0; }}
</style>
</head>
<body>
<h1>hasim report</h1>
<p>{n} seeds from <code>{source}</code>. Charts: {n_chart}. <span id="chart-check"></span></p>
{body}
<script>
// Marks on the page whether every chart loaded (read by the report's browser test).
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.querySelectorAll("img.chart"));
  var bad = imgs.filter(function (i) {{ return !(i.complete && i.naturalWidth > 0); }});
  var el = document.getElementById("chart-check");
  el.setAttribute("data-loaded", String(imgs.length - bad.length));
  el.setAttribute("data-total", String(imgs.length));
  el.textContent = bad.length === 0 ? "All charts loaded."
    : "Charts that did not load: " + bad.map(function (i) {{ return i.getAttribute("src"); }}).join(", ");
}});
</script>
</body>
</html>
"#,
        n = input.lines.len(),
        source = esc(&input.source),
    );
    let index = out.join("index.html");
    std::fs::write(&index, page).with_context(|| format!("writing {}", index.display()))?;
    Ok(index)
}

fn sections(input: &Input) -> Result<Vec<Section>> {
    let lines = input.lines;
    let mut out = vec![Section {
        title: "Runs",
        intro: "What was run and how it ended.".into(),
        charts: Vec::new(),
        tables: vec![tables::overview(lines)],
    }];
    out.push(failover_section(lines)?);
    out.push(throughput_section(lines)?);
    out.push(coverage_section(lines)?);

    if !input.timelines.is_empty() {
        out.push(Section {
            title: "State timelines",
            intro: "Replayed seeds (<code>hasim replay --timeline</code>): each instance's role, mode and status over simulated time, from the prober's recorded catalog changes and the host crashes and restarts.".into(),
            charts: input
                .timelines
                .iter()
                .map(|(name, svg)| (format!("timeline-{name}"), svg.clone()))
                .collect(),
            tables: Vec::new(),
        });
    }

    out.push(Section {
        title: "Failing seeds",
        intro: "Every seed that did not pass, with the one command that replays it.".into(),
        charts: Vec::new(),
        tables: vec![tables::failing(lines, 200)],
    });

    out.push(layout_section(
        input.shapes,
        input.layouts.unwrap_or(&[]),
        input.layouts.is_some(),
    )?);
    Ok(out)
}

/// Failover time split into its parts, as a distribution and a table.
fn failover_section(lines: &[SeedLine]) -> Result<Section> {
    let parts = tables::failover_parts(lines);
    let series: Vec<(String, Vec<(f64, f64)>)> = tables::FAILOVER_PARTS
        .iter()
        .zip(&parts)
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, v)| {
            let s: Vec<f64> = v.iter().map(|ms| *ms as f64 / 1000.0).collect();
            (name.to_string(), charts::cdf(&s))
        })
        .collect();
    let mut failover_charts = Vec::new();
    if !series.is_empty() {
        failover_charts.push((
            "failover".to_string(),
            charts::lines(
                "Failover time, split (distribution over failovers)",
                "simulated seconds",
                "fraction of failovers at or below",
                &series,
                Some((0.0, 1.0)),
            )?,
        ));
    }
    Ok(Section {
        title: "Failover",
        intro: "From a primary's host crash to the first commit on its content: detection (the prober records the role flip), promotion (the mirror finishes promotion) and first commit (a client's write commits on the content again).".into(),
        charts: failover_charts,
        tables: vec![tables::failover(lines)],
    })
}

/// Simulated seconds per wall second, seed by seed.
fn throughput_section(lines: &[SeedLine]) -> Result<Section> {
    let points: Vec<(f64, f64)> = lines
        .iter()
        .map(|l| {
            (
                l.seed as f64,
                l.sim_time_ms as f64 / (l.wall_time_ms.max(1)) as f64,
            )
        })
        .collect();
    Ok(Section {
        title: "Simulator throughput",
        intro: "Simulated seconds per wall second for each seed (wall time of that seed on one core; machine-dependent, so it is shown and never asserted).".into(),
        charts: vec![(
            "throughput".into(),
            charts::scatter(
                "Simulator throughput per seed",
                "seed",
                "simulated s per wall s",
                &points,
            )?,
        )],
        tables: Vec::new(),
    })
}

/// Faults injected, checkers run and planted bugs caught.
fn coverage_section(lines: &[SeedLine]) -> Result<Section> {
    let (faults, checkers) = tables::coverage(lines);
    let bar_items = |t: &Table, col: usize| -> Vec<(String, f64)> {
        t.rows
            .iter()
            .map(|r| (r[0].clone(), r[col].parse().unwrap_or(0.0)))
            .collect()
    };
    let mut coverage_charts = vec![
        (
            "faults".to_string(),
            charts::bars("Faults injected", "count", &bar_items(&faults, 1))?,
        ),
        (
            "checkers".to_string(),
            charts::bars(
                "Seeds each checker ran on",
                "seeds",
                &bar_items(&checkers, 1),
            )?,
        ),
    ];
    let bugs = tables::bugs(lines);
    if !bugs.rows.is_empty() {
        let items: Vec<(String, f64)> = bugs
            .rows
            .iter()
            .map(|r| {
                let n = r[3]
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0.0);
                (r[0].clone(), n)
            })
            .collect();
        coverage_charts.push((
            "bugs".to_string(),
            charts::bars(
                "Seeds until each planted bug was first caught (0: not caught)",
                "seeds",
                &items,
            )?,
        ));
    }
    Ok(Section {
        title: "Fault and checker coverage",
        intro: "Which faults the nemesis injected, which checkers ran, and which planted bugs the checkers caught.".into(),
        charts: coverage_charts,
        tables: vec![faults, checkers, bugs],
    })
}

fn layout_section(
    shapes: &[layout_report::Shape],
    sims: &[Simulated],
    measured: bool,
) -> Result<Section> {
    let reports: Vec<ShapeReport> = shapes
        .iter()
        .map(|s| layout_report::shape_report(s, sims))
        .collect::<Result<_>>()?;
    let mut charts = Vec::new();
    for r in &reports {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        let mut marks: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for e in &r.exact {
            let pts = (1..=e.survive.len())
                .filter_map(|k| Some((k as f64, e.availability(k)?)))
                .collect();
            series.push((format!("{} (exact)", e.layout), pts));
            let sim = sims.iter().find(|s| {
                s.layout == e.layout
                    && s.hosts == e.hosts
                    && s.primaries_per_host == e.primaries_per_host
            });
            let pts = sim.map_or_else(Vec::new, |s| {
                s.survive
                    .iter()
                    .map(|(k, ok, n)| (*k as f64, *ok as f64 / (*n).max(1) as f64))
                    .collect()
            });
            marks.push((format!("{} (simulated)", e.layout), pts));
        }
        if sims.is_empty() {
            marks.clear();
        }
        charts.push((
            format!("layouts-{}x{}", r.shape.hosts, r.shape.primaries_per_host),
            charts::lines_and_marks(
                &format!(
                    "P(cluster available) when k hosts fail: {} hosts x {} primaries",
                    r.shape.hosts, r.shape.primaries_per_host
                ),
                "hosts failed at once (k)",
                "P(every content keeps a live instance)",
                &series,
                &marks,
                Some((0.0, 1.05)),
                true,
            )?,
        ));
    }
    let agreement = if measured {
        let all = reports.iter().filter_map(|r| r.simulation_agrees);
        let (n, ok) = all.fold((0, 0), |(n, ok), a| (n + 1, ok + a as usize));
        format!("The simulated figures agree with the exact ones for {ok} of {n} shapes measured.")
    } else {
        "No simulated figures were given (run <code>hasim layouts --json &gt; layouts.json</code> and pass <code>--layouts layouts.json</code>); the exact figures stand alone.".into()
    };
    let mut tables: Vec<Table> = reports.iter().map(|r| r.table.clone()).collect();
    tables.push(layout_report::claims_table(&reports));
    Ok(Section {
        title: "Mirror layouts: availability and load under host failures",
        intro: format!(
            "Group, spread and block mirroring (placements from the cluster's own layout code), each content's primary and mirror on different hosts. {agreement}"
        ),
        charts,
        tables,
    })
}
