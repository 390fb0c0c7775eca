//! `hasim report`, `hasim layouts` and replay's `--timeline` / `--perfetto`: the simulator's
//! side of the `reports` crate (which draws; this module runs and records).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use reports::layout_report::{self, K_MAX};
use reports::layouts::Simulated;
use reports::timeline::Recording;

use crate::cli::args::{self, ReplayArgs, SeedRange, EXIT_USAGE};

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
    /// A state timeline from `hasim replay --timeline` to show on the page (repeatable).
    #[arg(long)]
    pub timeline: Vec<PathBuf>,
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
    /// Run one batch of trials in this process (`LAYOUT/HOSTS/PER_HOST/K`) and print its
    /// figures; the parent runs batches in child processes.
    #[arg(long, hide = true)]
    pub batch: Option<String>,
}

/// `A..B` as every command reads it, or a count `N` of seeds from 0.
fn parse_seeds(s: &str) -> Result<SeedRange, String> {
    if s.contains("..") {
        return args::parse_seeds(s);
    }
    let n = s
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("seeds {s:?}: {e} (expected A..B or a count)"))?;
    if n == 0 {
        return Err("seeds: the count must be at least 1".into());
    }
    Ok(SeedRange { start: 0, end: n })
}

pub fn report(args: &ReportArgs) -> i32 {
    let shapes = match sim::layouts::standard_shapes_placed() {
        Ok(shapes) => shapes,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 3;
        }
    };
    let extras = reports::Extras {
        layouts: args.layouts.as_deref(),
        timelines: &args.timeline,
        shapes: &shapes,
    };
    match reports::report(&args.input, &extras, &args.out) {
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

/// Seeds per child process: every simulated world keeps a few MB after its runtime ends, so
/// trials run in batches in child processes (`--batch`) and memory stays bounded.
const SEEDS_PER_BATCH: u64 = 50;

pub fn layouts(args: &LayoutsArgs) -> i32 {
    let jobs = args.jobs.map(|j| j as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let seeds = args.seeds.start..args.seeds.end;
    if let Some(batch) = &args.batch {
        return run_batch(batch, seeds, jobs);
    }
    let ks: Vec<usize> = (1..=K_MAX).collect();
    let mut sims: Vec<Simulated> = Vec::new();
    for shape in sim::layouts::standard_shapes() {
        for layout in &shape.layouts {
            let started = std::time::Instant::now();
            let mut sim = Simulated {
                layout: layout.to_string(),
                hosts: shape.hosts,
                primaries_per_host: shape.primaries_per_host,
                survive: Vec::new(),
                max_acting_after_one: None,
            };
            for &k in &ks {
                let (mut ok, mut n) = (0, 0);
                let mut start = seeds.start;
                while start < seeds.end {
                    let end = (start + SEEDS_PER_BATCH).min(seeds.end);
                    let spec = format!("{layout}/{}/{}/{k}", shape.hosts, shape.primaries_per_host);
                    match batch_in_child(&spec, start..end, jobs) {
                        Ok(part) => {
                            for (_, s, t) in part.survive {
                                ok += s;
                                n += t;
                            }
                            if let Some(m) = part.max_acting_after_one {
                                sim.max_acting_after_one =
                                    Some(sim.max_acting_after_one.map_or(m, |x: usize| x.max(m)));
                            }
                        }
                        Err(e) => {
                            eprintln!("error: {spec}, seeds {start}..{end}: {e:#}");
                            return 3;
                        }
                    }
                    start = end;
                }
                sim.survive.push((k, ok, n));
            }
            eprintln!(
                "{} hosts x {} primaries, {layout}: {} trials in {:.1} wall s",
                shape.hosts,
                shape.primaries_per_host,
                ks.len() as u64 * (seeds.end - seeds.start),
                started.elapsed().as_secs_f64()
            );
            sims.push(sim);
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&sims).expect("figures serialize")
        );
        return 0;
    }
    print_tables(&sims)
}

/// The exact and simulated figures of every shape side by side, then the document's claims,
/// as markdown tables.
fn print_tables(sims: &[Simulated]) -> i32 {
    let mut shape_reports = Vec::new();
    let shapes = match sim::layouts::standard_shapes_placed() {
        Ok(shapes) => shapes,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 3;
        }
    };
    for shape in &shapes {
        match layout_report::shape_report(shape, sims) {
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

/// Runs one batch (`LAYOUT/HOSTS/PER_HOST/K`) here and prints its figures as JSON.
fn run_batch(spec: &str, seeds: std::ops::Range<u64>, jobs: usize) -> i32 {
    let parsed = (|| -> Result<(cluster::model::layout::Layout, usize, usize, usize), String> {
        let parts: Vec<&str> = spec.split('/').collect();
        let [layout, hosts, per_host, k] = parts[..] else {
            return Err(format!(
                "--batch {spec:?}: expected LAYOUT/HOSTS/PER_HOST/K"
            ));
        };
        let num = |name: &str, v: &str| {
            v.parse::<usize>()
                .map_err(|e| format!("--batch {spec:?}: {name} {v:?}: {e}"))
        };
        Ok((
            layout.parse()?,
            num("hosts", hosts)?,
            num("primaries per host", per_host)?,
            num("k", k)?,
        ))
    })();
    let (layout, hosts, per_host, k) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    match sim::layouts::measure(layout, hosts, per_host, &[k], seeds, jobs) {
        Ok(sim) => {
            println!(
                "{}",
                serde_json::to_string(&sim).expect("figures serialize")
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            3
        }
    }
}

fn batch_in_child(spec: &str, seeds: std::ops::Range<u64>, jobs: usize) -> Result<Simulated> {
    // This very executable, even if a rebuild has replaced the file meanwhile.
    let proc_exe = std::path::Path::new("/proc/self/exe");
    let exe = if proc_exe.exists() {
        proc_exe.to_path_buf()
    } else {
        std::env::current_exe().context("finding the hasim executable")?
    };
    let out = std::process::Command::new(exe)
        .args(["layouts", "--batch", spec, "--jobs", &jobs.to_string()])
        .arg(format!("--seeds={}..{}", seeds.start, seeds.end))
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running a batch of layout trials")?;
    if !out.status.success() {
        anyhow::bail!("the batch failed ({})", out.status);
    }
    serde_json::from_slice(&out.stdout).context("reading the batch's figures")
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
