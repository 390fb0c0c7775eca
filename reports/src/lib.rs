//! Turns simulator results into something to look at: an HTML page with charts (failover
//! times, simulator throughput, fault and checker coverage, failing seeds, mirror layouts under
//! host failures), a state timeline of one seed, and a Perfetto trace of one seed.
//!
//! Reads the simulator's JSON result lines with its own types; the simulator calls this crate,
//! never the other way round.

pub mod charts;
pub mod layout_report;
pub mod layouts;
pub mod page;
pub mod perfetto;
pub mod results;
pub mod tables;
pub mod timeline;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// What `report` reads besides the results.
#[derive(Clone, Debug, Default)]
pub struct Extras<'a> {
    /// The output of `hasim layouts --json`.
    pub layouts: Option<&'a Path>,
    /// State timelines drawn by `hasim replay --timeline` (SVG), shown on the page.
    pub timelines: &'a [PathBuf],
    /// The cluster shapes the layout section studies, with each layout's placement.
    pub shapes: &'a [layout_report::Shape],
}

/// Reads `input` (the output of `hasim run --json`) and the extras, and writes the page into
/// `out`. Returns the page's path. Nothing is written if an input is bad.
pub fn report(input: &Path, extras: &Extras, out: &Path) -> Result<PathBuf> {
    let layouts = extras.layouts;
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let lines = results::parse_results(&text).with_context(|| format!("{}", input.display()))?;
    let sims: Option<Vec<layouts::Simulated>> = match layouts {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut de = serde_json::Deserializer::from_str(&text);
            let sims = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                anyhow::anyhow!("{}: field `{}`: {}", path.display(), e.path(), e.inner())
            })?;
            Some(sims)
        }
        None => None,
    };
    let mut timelines = Vec::new();
    for path in extras.timelines {
        let svg =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        if !svg.trim_start().starts_with("<svg") {
            anyhow::bail!(
                "{}: not an SVG file (expected `hasim replay --timeline` output)",
                path.display()
            );
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "timeline".into());
        timelines.push((name, svg));
    }
    page::write(
        &page::Input {
            lines: &lines,
            source: input.display().to_string(),
            layouts: sims.as_deref(),
            shapes: extras.shapes,
            timelines,
        },
        out,
    )
}
