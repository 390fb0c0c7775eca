//! `hasim report`, `hasim layouts` and replay's `--timeline` / `--perfetto`: the simulator's
//! side of the `reports` crate (which draws; this module runs and records).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use reports::layout_report::{self, K_MAX};
use reports::layouts::Simulated;
use reports::timeline::Recording;

use crate::cli::{ReplayArgs, SeedRange, EXIT_USAGE};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Results of `hasim run --json` (one JSON object per line).
    #[arg(long)]
    pub input: PathBuf,
    /// Directory for index.html and its charts (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Simulated layout figures from `hasim layouts --json`, shown beside the exact ones.
    #[arg(long)]
    pub layouts: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct LayoutsArgs {
    /// Seeds per layout and number of failed hosts: `A..B` or a count from 0.
    #[arg(long, default_value = "0..100", value_parser = parse_seeds)]
    pub seeds: SeedRange,
    /// Trials run in parallel (default: available cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,
    /// Print the simulated figures as JSON (the input of `hasim report --layouts`).
    #[arg(long)]
    pub json: bool,
}

fn parse_seeds(s: &str) -> Result<SeedRange, String> {
    match s.split_once("..") {
        Some((a, b)) => {
            let start = a
                .parse::<u64>()
                .map_err(|e| format!("seed range start {a:?}: {e}"))?;
            let end = b
                .parse::<u64>()
                .map_err(|e| format!("seed range end {b:?}: {e}"))?;
            if end <= start {
                return Err(format!("seed range {s:?} is empty"));
            }
            Ok(SeedRange { start, end })
        }
        None => {
            let n = s
                .parse::<u64>()
                .map_err(|e| format!("seeds {s:?}: {e} (expected A..B or a count)"))?;
            if n == 0 {
                return Err("seeds: the count must be at least 1".into());
            }
            Ok(SeedRange { start: 0, end: n })
        }
    }
}

pub fn report(args: &ReportArgs) -> i32 {
    match reports::report(&args.input, args.layouts.as_deref(), &args.out) {
        Ok(page) => {
            println!("report written: {}", page.display());
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_USAGE
        }
    }
}

pub fn layouts(args: &LayoutsArgs) -> i32 {
    let jobs = args.jobs.map(|j| j as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    crate::trace::install("warn");
    let ks: Vec<usize> = (1..=K_MAX).collect();
    let seeds = args.seeds.start..args.seeds.end;
    let mut sims: Vec<Simulated> = Vec::new();
    for shape in layout_report::standard_shapes() {
        for layout in &shape.layouts {
            let started = std::time::Instant::now();
            match crate::layouts::measure(
                *layout,
                shape.hosts,
                shape.primaries_per_host,
                &ks,
                seeds.clone(),
                jobs,
            ) {
                Ok(s) => {
                    eprintln!(
                        "{} hosts x {} primaries, {layout}: {} trials in {:.1} wall s",
                        shape.hosts,
                        shape.primaries_per_host,
                        ks.len() as u64 * (seeds.end - seeds.start),
                        started.elapsed().as_secs_f64()
                    );
                    sims.push(s)
                }
                Err(e) => {
                    eprintln!("error: {layout} on {} hosts: {e}", shape.hosts);
                    return 3;
                }
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&sims).expect("figures serialize")
        );
        return 0;
    }
    let mut shape_reports = Vec::new();
    for shape in layout_report::standard_shapes() {
        match layout_report::shape_report(&shape, &sims) {
            Ok(r) => {
                println!("{}", r.table.markdown());
                shape_reports.push(r);
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                return 3;
            }
        }
    }
    println!("{}", layout_report::claims_table(&shape_reports).markdown());
    0
}

/// Writes replay's `--timeline` and `--perfetto` files.
pub fn replay_outputs(args: &ReplayArgs, recording: Option<&Recording>) -> Result<()> {
    if args.timeline.is_none() && args.perfetto.is_none() {
        return Ok(());
    }
    let rec = recording.context("the simulation panicked: nothing recorded to draw")?;
    if let Some(path) = &args.timeline {
        let svg = reports::charts::timeline(rec)?;
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("timeline written: {}", path.display());
    }
    if let Some(path) = &args.perfetto {
        let trace = reports::perfetto::trace(rec);
        std::fs::write(path, serde_json::to_vec(&trace)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("Perfetto trace written: {}", path.display());
    }
    Ok(())
}
