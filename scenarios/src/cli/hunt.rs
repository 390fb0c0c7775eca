//! `hasim hunt`: hunts planted bugs of the catalogue ([`crate::hunt`]) over seed ranges and
//! prints what each range found and, per bug, the median seeds to detection.

use std::io::Write;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::cli::args::{parse_scenario, parse_seeds, SeedRange};
use crate::hunt::{catalogued, hunt_config, hunt_range, median, Catch, PlantedBug, CATALOGUE};
use sim::config::RunConfig;
use sim::run::progress::Progress;
use sim::run::Verdict;

#[derive(Args, Debug)]
pub struct HuntArgs {
    /// The planted bug to hunt (see `cluster::model::bugs::CATALOGUE`).
    #[arg(long, value_parser = parse_catalogued, required_unless_present = "all", conflicts_with = "all")]
    pub bug: Option<String>,
    /// Hunt every bug of the catalogue, each in its own scenario.
    #[arg(long)]
    pub all: bool,
    /// The first seed range, `A..B` (default: 0..the bug's seed budget).
    #[arg(long, value_parser = parse_seeds)]
    pub seeds: Option<SeedRange>,
    /// Hunt over this many disjoint ranges of the same length, one after another.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub ranges: u64,
    /// Scenario, instead of the catalogue's for the bug.
    #[arg(long, value_parser = parse_scenario)]
    pub scenario: Option<String>,
    /// Count any failing seed (any checker, liveness, crash) as a detection, not only the
    /// catalogue's checker for the bug.
    #[arg(long)]
    pub any_checker: bool,
    /// Arm no fault points, even in a scenario that arms them (to measure what the points
    /// add).
    #[arg(long)]
    pub no_fault_points: bool,
    /// Seeds run in parallel (default: available cores). Results are judged in seed order, so
    /// the answer does not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,
    /// One JSON object per range and one per bug on standard output, nothing else there.
    #[arg(long)]
    pub json: bool,
}

fn parse_catalogued(s: &str) -> Result<String, String> {
    cluster::model::bugs::PlantedBugs::default().enable(s)?;
    catalogued(s)
        .map(|b| b.name.to_string())
        .ok_or_else(|| format!("planted bug {s:?} has no hunt in scenarios::hunt::CATALOGUE"))
}

/// What one hunt over one range found.
#[derive(Clone, Debug, Serialize)]
pub struct RangeHunt {
    pub kind: &'static str,
    pub bug: &'static str,
    pub scenario: String,
    /// `[A, B)`.
    pub range: [u64; 2],
    pub detected: bool,
    /// The first seed caught, its offset from A, and the seeds run (offset + 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    pub seeds_run: u64,
    /// The checkers that fired in the detecting seed, and its verdict.
    pub checkers: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    pub wall_s: f64,
}

/// One bug over all its ranges.
#[derive(Clone, Debug, Serialize)]
pub struct BugSummary {
    pub kind: &'static str,
    pub bug: &'static str,
    pub scenario: String,
    pub caught_by: &'static str,
    pub range_len: u64,
    pub ranges: u64,
    pub detected_in: u64,
    /// Median seeds to detection over the ranges; `None` when the median range missed it.
    pub median_seeds_to_detection: Option<f64>,
    pub min_seeds_to_detection: Option<u64>,
    pub max_seeds_to_detection: Option<u64>,
    pub command: String,
}

pub fn main(args: HuntArgs) -> i32 {
    sim::trace::install("warn");
    let bugs: Vec<&'static PlantedBug> = match &args.bug {
        Some(name) => vec![catalogued(name).expect("validated by clap")],
        None => CATALOGUE.iter().collect(),
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let mut summaries = Vec::new();
    for bug in bugs {
        summaries.push(hunt_bug(bug, &args, jobs));
    }
    if !args.json {
        println!();
        println!("| planted bug | scenario | caught by | detected in ranges | median seeds to detection | min | max |");
        println!("|---|---|---|---:|---:|---:|---:|");
        for s in &summaries {
            let show = |v: Option<u64>| v.map_or("—".to_string(), |v| v.to_string());
            println!(
                "| {} | {} | {} | {} of {} (of {} seeds each) | {} | {} | {} |",
                s.bug,
                s.scenario,
                s.caught_by,
                s.detected_in,
                s.ranges,
                s.range_len,
                s.median_seeds_to_detection
                    .map_or(format!("> {}", s.range_len), |m| format!("{m}")),
                show(s.min_seeds_to_detection),
                show(s.max_seeds_to_detection),
            );
        }
    }
    // Exit 1 when some bug escaped every range: the simulator lost power against it.
    if summaries.iter().any(|s| s.detected_in == 0) {
        1
    } else {
        0
    }
}

fn hunt_bug(bug: &'static PlantedBug, args: &HuntArgs, jobs: u32) -> BugSummary {
    let mut cfg = hunt_config(bug, args.scenario.as_deref());
    if args.no_fault_points {
        cfg.fault_points = false;
    }
    let first = args.seeds.unwrap_or(SeedRange {
        start: 0,
        end: bug.seed_budget,
    });
    let len = first.end - first.start;
    let catch = if args.any_checker {
        Catch::AnyFailure
    } else {
        Catch::Checker(bug.caught_by)
    };
    let mut progress = Progress::new(len * args.ranges, args.json);
    let mut results = Vec::new();
    for k in 0..args.ranges {
        let start = first.start + k * len;
        let end = start + len;
        let started = Instant::now();
        let (found, judged) = hunt_range(&cfg, start, end, jobs, catch, |r| {
            progress.seed_done(r.verdict != Verdict::Ok)
        });
        progress.skip(len - judged);
        let hunt = RangeHunt {
            kind: "range",
            bug: bug.name,
            scenario: cfg.scenario.clone(),
            range: [start, end],
            detected: found.is_some(),
            seed: found.as_ref().map(|r| r.seed),
            offset: found.as_ref().map(|r| r.seed - start),
            seeds_run: judged,
            checkers: found.as_ref().map_or(Vec::new(), |r| {
                let mut c: Vec<&'static str> = r.violations.iter().map(|v| v.checker).collect();
                c.sort_unstable();
                c.dedup();
                c
            }),
            verdict: found.as_ref().map(|r| r.verdict),
            replay: found.as_ref().map(|r| r.replay.clone()),
            wall_s: started.elapsed().as_secs_f64(),
        };
        progress.suspend(|| print_range(&hunt, args.json, len));
        results.push(hunt);
    }
    progress.finish();
    let summary = summarize(bug, &cfg, args, first, catch, &results);
    if args.json {
        println!("{}", serde_json::to_string(&summary).expect("serializes"));
    }
    summary
}

/// One range's line: JSON, or a sentence with the replay command.
fn print_range(hunt: &RangeHunt, json: bool, len: u64) {
    let mut out = std::io::stdout().lock();
    let [start, end] = hunt.range;
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string(hunt).expect("serializes"));
    } else if let Some(seed) = hunt.seed {
        let _ = writeln!(
            out,
            "{} ({}): seeds {start}..{end}: caught at seed {seed}, {} seeds to detection, by {} [{:?}] in {:.1} s\n  replay: {}",
            hunt.bug,
            hunt.scenario,
            hunt.seeds_run,
            if hunt.checkers.is_empty() { "no checker".to_string() } else { hunt.checkers.join(", ") },
            hunt.verdict.expect("found"),
            hunt.wall_s,
            hunt.replay.as_deref().unwrap_or_default()
        );
    } else {
        let _ = writeln!(
            out,
            "{} ({}): seeds {start}..{end}: not caught in {len} seeds ({:.1} s)",
            hunt.bug, hunt.scenario, hunt.wall_s
        );
    }
}

/// The bug over all its ranges, with the command that repeats the hunt.
fn summarize(
    bug: &'static PlantedBug,
    cfg: &RunConfig,
    args: &HuntArgs,
    first: SeedRange,
    catch: Catch,
    results: &[RangeHunt],
) -> BugSummary {
    let len = first.end - first.start;
    let counts: Vec<Option<u64>> = results
        .iter()
        .map(|r| r.detected.then_some(r.seeds_run))
        .collect();
    let mut command = format!(
        "hasim hunt --bug {} --seeds {}..{}",
        bug.name, first.start, first.end
    );
    if args.ranges > 1 {
        command += &format!(" --ranges {}", args.ranges);
    }
    if let Some(s) = &args.scenario {
        command += &format!(" --scenario {s}");
    }
    if args.any_checker {
        command += " --any-checker";
    }
    BugSummary {
        kind: "summary",
        bug: bug.name,
        scenario: cfg.scenario.clone(),
        caught_by: match catch {
            Catch::Checker(c) => c,
            Catch::AnyFailure => "any",
            Catch::CheckerOrPanic(c, _) => c,
        },
        range_len: len,
        ranges: args.ranges,
        detected_in: counts.iter().flatten().count() as u64,
        median_seeds_to_detection: median(counts.clone()),
        min_seeds_to_detection: counts.iter().flatten().min().copied(),
        max_seeds_to_detection: counts.iter().flatten().max().copied(),
        command,
    }
}
