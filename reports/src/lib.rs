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

/// Reads `input` (the output of `hasim run --json`) and, if given, `layouts` (the output of
/// `hasim layouts --json`), and writes the page into `out`. Returns the page's path.
pub fn report(input: &Path, layouts: Option<&Path>, out: &Path) -> Result<PathBuf> {
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
    page::write(
        &page::Input {
            lines: &lines,
            source: input.display().to_string(),
            layouts: sims.as_deref(),
        },
        out,
    )
}
