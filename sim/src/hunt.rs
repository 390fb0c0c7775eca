//! `hasim hunt`: how many seeds the simulator needs to catch a planted bug.
//!
//! A hunt turns one planted bug on and runs seeds in order until a seed's checkers catch it; the
//! seeds to detection are that seed's offset from the range's start plus one (the seeds run).
//! Repeated over K disjoint seed ranges (`--ranges K`: `A..B`, then `B..2B-A`, ...), the median
//! over the ranges measures the simulator's power against that bug (DESIGN section 7). A range
//! that never catches the bug counts as "more than the range" in the median.

use std::io::Write;
use std::ops::ControlFlow;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::config::RunConfig;
use crate::run::pool::{run_seeds, SeedRun};
use crate::run::progress::Progress;
use crate::run::{SeedResult, Verdict};

/// A planted bug, the scenario it is hunted in and the checker that must catch it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PlantedBug {
    pub name: &'static str,
    pub scenario: &'static str,
    /// The checker expected to catch it (a `NAME` of `crate::invariants`).
    pub caught_by: &'static str,
    /// Seeds within which a hunt from seed 0 must catch it (the test of the catalogue).
    pub seed_budget: u64,
}

/// The planted bugs of `cluster::bugs::CATALOGUE` that random seeds catch, in its order, with
/// where they are hunted (the others are caught by scripted scenarios: `scenarios::SCRIPTED`).
pub const CATALOGUE: &[PlantedBug] = &[
    PlantedBug {
        name: "ack-before-mirror-flush",
        scenario: "pair",
        caught_by: "no-lost-commits",
        seed_budget: 500,
    },
    PlantedBug {
        name: "promote-unsynced-mirror",
        scenario: "pair",
        caught_by: "no-lost-commits",
        seed_budget: 500,
    },
    PlantedBug {
        name: "syncrep-off-without-marking-mirror-down",
        scenario: "pair",
        caught_by: "no-lost-commits",
        seed_budget: 500,
    },
    PlantedBug {
        name: "commit-without-prepare",
        scenario: "standard",
        caught_by: "aborted-stays-aborted",
        seed_budget: 200,
    },
    PlantedBug {
        name: "mirror-skips-deletes",
        scenario: "standard",
        caught_by: "identical-replicas",
        seed_budget: 100,
    },
    PlantedBug {
        name: "activation-ignores-commit-records",
        scenario: "standard",
        caught_by: "aborted-stays-aborted",
        seed_budget: 100,
    },
    PlantedBug {
        name: "standby-acks-unflushed-wal",
        scenario: "standard",
        caught_by: "standby-catalog",
        seed_budget: 100,
    },
    PlantedBug {
        name: "mirror-replays-out-of-order",
        scenario: "standard",
        caught_by: "identical-replicas",
        seed_budget: 100,
    },
    PlantedBug {
        name: "forget-configuration-history",
        scenario: "standard",
        caught_by: "configuration-history",
        seed_budget: 50,
    },
    PlantedBug {
        name: "lose-distributed-commit-record",
        scenario: "standard",
        caught_by: "aborted-stays-aborted",
        seed_budget: 100,
    },
    PlantedBug {
        name: "evict-before-wal-flush",
        scenario: "slow-disk",
        caught_by: "wal-before-data",
        seed_budget: 150,
    },
    PlantedBug {
        name: "recovery-skips-rewind",
        scenario: "standard",
        caught_by: "identical-replicas",
        seed_budget: 100,
    },
    PlantedBug {
        name: "coordinator-fence-off",
        scenario: "standard",
        caught_by: "one-acting-coordinator",
        seed_budget: 300,
    },
    PlantedBug {
        name: "skip-identity-check",
        scenario: "standard",
        caught_by: "no-lost-commits",
        seed_budget: 400,
    },
    PlantedBug {
        name: "no-cancel-on-failover",
        scenario: "pauses",
        caught_by: "availability",
        seed_budget: 60,
    },
];

/// The catalogue entry of a bug.
pub fn catalogued(name: &str) -> Option<&'static PlantedBug> {
    CATALOGUE.iter().find(|b| b.name == name)
}

#[derive(Args, Debug)]
pub struct HuntArgs {
    /// The planted bug to hunt (see `cluster::bugs::CATALOGUE`).
    #[arg(long, value_parser = parse_catalogued, required_unless_present = "all", conflicts_with = "all")]
    pub bug: Option<String>,
    /// Hunt every bug of the catalogue, each in its own scenario.
    #[arg(long)]
    pub all: bool,
    /// The first seed range, `A..B` (default: 0..the bug's seed budget).
    #[arg(long, value_parser = crate::cli::parse_seeds)]
    pub seeds: Option<crate::cli::SeedRange>,
    /// Hunt over this many disjoint ranges of the same length, one after another.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub ranges: u64,
    /// Scenario, instead of the catalogue's for the bug.
    #[arg(long, value_parser = crate::cli::parse_scenario)]
    pub scenario: Option<String>,
    /// Count any failing seed (any checker, liveness, crash) as a detection, not only the
    /// catalogue's checker for the bug.
    #[arg(long)]
    pub any_checker: bool,
    /// Seeds run in parallel (default: available cores). Results are judged in seed order, so
    /// the answer does not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,
    /// One JSON object per range and one per bug on standard output, nothing else there.
    #[arg(long)]
    pub json: bool,
}

fn parse_catalogued(s: &str) -> Result<String, String> {
    cluster::bugs::PlantedBugs::default().enable(s)?;
    catalogued(s)
        .map(|b| b.name.to_string())
        .ok_or_else(|| format!("planted bug {s:?} has no hunt in sim::hunt::CATALOGUE"))
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

/// What counts as catching the bug.
#[derive(Clone, Copy, Debug)]
pub enum Catch {
    /// A violation from this checker.
    Checker(&'static str),
    /// Any seed that is not ok.
    AnyFailure,
    /// A violation from this checker, or a panic whose message contains the text (an
    /// assertion of the cluster's own that debug builds check and catches the bug first).
    CheckerOrPanic(&'static str, &'static str),
}

impl Catch {
    pub fn caught(&self, r: &SeedResult) -> bool {
        match self {
            Catch::Checker(name) => r.violations.iter().any(|v| v.checker == *name),
            Catch::AnyFailure => r.verdict != Verdict::Ok,
            Catch::CheckerOrPanic(name, text) => {
                Catch::Checker(name).caught(r)
                    || (r.verdict == Verdict::Crash
                        && r.error.as_deref().is_some_and(|e| e.contains(text)))
            }
        }
    }
}

/// The configuration a bug is hunted in: its scenario (or `scenario`) with the bug on.
pub fn hunt_config(bug: &PlantedBug, scenario: Option<&str>) -> RunConfig {
    let name = scenario.unwrap_or(bug.scenario);
    let mut cfg = RunConfig::by_name(name).expect("known scenario");
    cfg.bugs.enable(bug.name).expect("catalogued bug exists");
    cfg
}

/// Runs the seeds of `start..end` in order until one is caught; returns it (and how many seeds
/// were judged). `on_seed` sees every judged seed's result.
pub fn hunt_range(
    cfg: &RunConfig,
    start: u64,
    end: u64,
    jobs: u32,
    catch: Catch,
    mut on_seed: impl FnMut(&SeedResult),
) -> (Option<SeedResult>, u64) {
    let seeds: Vec<u64> = (start..end).collect();
    let mut found = None;
    let mut judged = 0;
    run_seeds(cfg, &seeds, jobs, false, |run: SeedRun| {
        judged += 1;
        on_seed(&run.result);
        if catch.caught(&run.result) {
            found = Some(run.result);
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    (found, judged)
}

/// The median of seeds-to-detection where a miss counts as infinitely many.
pub fn median(mut values: Vec<Option<u64>>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by_key(|v| v.unwrap_or(u64::MAX));
    let n = values.len();
    let (lo, hi) = (values[(n - 1) / 2], values[n / 2]);
    Some((lo? as f64 + hi? as f64) / 2.0)
}

pub fn main(args: HuntArgs) -> i32 {
    crate::run::trace::install("warn");
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
    let cfg = hunt_config(bug, args.scenario.as_deref());
    let first = args.seeds.unwrap_or(crate::cli::SeedRange {
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
    let stdout = std::io::stdout();
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
        progress.suspend(|| {
            let mut out = stdout.lock();
            if args.json {
                let _ = writeln!(out, "{}", serde_json::to_string(&hunt).expect("serializes"));
            } else if let Some(seed) = hunt.seed {
                let _ = writeln!(
                    out,
                    "{} ({}): seeds {start}..{end}: caught at seed {seed}, {} seeds to detection, by {} [{:?}] in {:.1} s\n  replay: {}",
                    bug.name,
                    cfg.scenario,
                    judged,
                    if hunt.checkers.is_empty() { "no checker".to_string() } else { hunt.checkers.join(", ") },
                    hunt.verdict.expect("found"),
                    hunt.wall_s,
                    hunt.replay.as_deref().unwrap_or_default()
                );
            } else {
                let _ = writeln!(
                    out,
                    "{} ({}): seeds {start}..{end}: not caught in {len} seeds ({:.1} s)",
                    bug.name, cfg.scenario, hunt.wall_s
                );
            }
        });
        results.push(hunt);
    }
    progress.finish();
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
    let summary = BugSummary {
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
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary).expect("serializes"));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_counts_as_more_than_any_detection_in_the_median() {
        assert_eq!(median(vec![Some(3), Some(1), Some(9)]), Some(3.0));
        assert_eq!(median(vec![Some(3), None, Some(9), Some(1)]), Some(6.0));
        assert_eq!(median(vec![Some(3), None, None]), None);
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn every_hunted_bug_is_planted_in_catalogue_order_in_a_known_scenario() {
        let planted: Vec<&str> = cluster::bugs::CATALOGUE.iter().map(|(n, _)| *n).collect();
        let positions: Vec<usize> = CATALOGUE
            .iter()
            .map(|b| {
                assert!(RunConfig::by_name(b.scenario).is_some(), "{}", b.scenario);
                planted
                    .iter()
                    .position(|n| *n == b.name)
                    .unwrap_or_else(|| panic!("{} is not planted", b.name))
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }
}
