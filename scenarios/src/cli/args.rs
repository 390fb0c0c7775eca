//! The command line's arguments and their parsers, shared by every subcommand.

use std::path::PathBuf;

use clap::Args;

use cluster::segment::ReplicationMode;

use sim::config::RunConfig;

/// The exit code of a bad invocation or input.
pub const EXIT_USAGE: i32 = 64;

#[derive(Args, Debug)]
pub struct ShrinkArgs {
    #[arg(long)]
    pub seed: u64,
    /// Where the shrunk schedule goes (default: shrunk-seed-N.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Runs to spend at most.
    #[arg(long, default_value_t = 150)]
    pub max_runs: u32,
    /// Start from the schedule in this file (as `replay --schedule`) instead of the seed's.
    #[arg(long)]
    pub schedule: Option<PathBuf>,
    #[command(flatten)]
    pub world: World,
}

#[derive(Args, Debug, Clone)]
pub struct World {
    /// Scenario to run: standard, pair, async-pair, swarm, slow-disk, pauses, front-door,
    /// scaled-8, scaled-64 or scaled-256.
    #[arg(long, default_value = "standard", value_parser = parse_scenario)]
    pub scenario: String,
    /// Replication mode of every segment, overriding the scenario's: sync (a commit waits for
    /// the mirror's flush) or async (it does not).
    #[arg(long, value_parser = parse_replication)]
    pub replication: Option<ReplicationMode>,
    /// Let a transaction's statements route to several contents (committed by two-phase commit;
    /// the standard scenario has them on already).
    #[arg(long)]
    pub multi_content_txns: bool,
    /// Leave out the liveness phase: no operator agent recovers or rebalances once every fault
    /// healed, and convergence to the preferred roles is not required (the final read still is).
    #[arg(long)]
    pub no_operator: bool,
    /// Arm no fault points, even in a scenario that arms them (standard, swarm).
    #[arg(long)]
    pub no_fault_points: bool,
    /// Arm no intruder, even in a scenario that arms one (standard, swarm): to measure what it
    /// costs.
    #[arg(long)]
    pub no_intruder: bool,
    /// Leave out the checkers that judge the cluster's claims as the run goes (durable-claims,
    /// wal-positions, failover-policy, obeyed-epochs), to measure what they cost.
    #[arg(long)]
    pub no_continuous_checks: bool,
    /// Mirror layout, overriding the scenario's: group, spread (needs more hosts than primaries
    /// per host) or block:SIZE (the size must divide the number of segment hosts).
    #[arg(long, value_parser = str::parse::<cluster::model::layout::Layout>)]
    pub layout: Option<cluster::model::layout::Layout>,
    /// Turn on a planted bug (repeatable); `cluster::model::bugs::CATALOGUE` lists them.
    #[arg(long = "bug", value_parser = parse_bug)]
    pub bugs: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Seeds to run: `A..B` (B excluded) or a single seed.
    #[arg(long, default_value = "0..100", value_parser = parse_seeds)]
    pub seeds: SeedRange,
    /// Seeds run in parallel (default: available cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,
    /// One JSON object per seed on standard output, nothing else there.
    #[arg(long)]
    pub json: bool,
    /// Run every seed twice and compare trace hashes.
    #[arg(long)]
    pub check_determinism: bool,
    /// Run only shard K of N (K counts from 1): the seeds at offsets o of the range with
    /// o % N == K - 1. The N shards' JSON lines, concatenated and sorted, are the whole run's.
    #[arg(long, value_parser = sim::run::pool::Shard::parse)]
    pub shard: Option<sim::run::pool::Shard>,
    /// Where a failing seed's result and log are kept.
    #[arg(long, default_value = "hasim-failures")]
    pub failures_dir: PathBuf,
    #[command(flatten)]
    pub world: World,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[arg(long)]
    pub seed: u64,
    /// Write the seed's full log (level from RUST_LOG, default debug) to this file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
    /// Draw the state timeline of every instance (SVG) to this file.
    #[arg(long)]
    pub timeline: Option<PathBuf>,
    /// Write a Chrome trace-event JSON file (opens in ui.perfetto.dev) to this file.
    #[arg(long)]
    pub perfetto: Option<PathBuf>,
    /// Carry out the fault schedule in this JSON file (a result line, or an array of faults)
    /// instead of the one drawn from the seed; the workload is still the seed's.
    #[arg(long)]
    pub schedule: Option<PathBuf>,
    #[command(flatten)]
    pub world: World,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

pub fn parse_seeds(s: &str) -> Result<SeedRange, String> {
    let range = match s.split_once("..") {
        Some((a, b)) => {
            let start = a
                .trim()
                .parse::<u64>()
                .map_err(|e| format!("seed range start {a:?}: {e}"))?;
            let end = b
                .trim()
                .parse::<u64>()
                .map_err(|e| format!("seed range end {b:?}: {e}"))?;
            SeedRange { start, end }
        }
        None => {
            let seed = s
                .trim()
                .parse::<u64>()
                .map_err(|e| format!("seed {s:?}: {e} (expected N or A..B)"))?;
            SeedRange {
                start: seed,
                end: seed + 1,
            }
        }
    };
    if range.end <= range.start {
        return Err(format!(
            "seed range {s:?} is empty: the end must be greater than the start"
        ));
    }
    Ok(range)
}

pub fn parse_scenario(s: &str) -> Result<String, String> {
    RunConfig::by_name(s).map(|_| s.to_string()).ok_or_else(|| {
        format!(
            "unknown scenario {s:?}; known: {}",
            RunConfig::SCENARIOS.join(", ")
        )
    })
}

fn parse_replication(s: &str) -> Result<ReplicationMode, String> {
    match s {
        "sync" => Ok(ReplicationMode::Sync),
        "async" => Ok(ReplicationMode::Async),
        other => Err(format!(
            "unknown replication mode {other:?}; known: sync, async"
        )),
    }
}

fn parse_bug(s: &str) -> Result<String, String> {
    cluster::model::bugs::PlantedBugs::default()
        .enable(s)
        .map(|_| s.to_string())
}

impl World {
    pub fn config(&self) -> RunConfig {
        let mut cfg = RunConfig::by_name(&self.scenario).expect("validated by clap");
        if let Some(mode) = self.replication {
            cfg.replication = mode;
        }
        if self.multi_content_txns {
            cfg.workload.multi_content_txns = true;
        }
        if self.no_operator {
            cfg.operator = false;
        }
        if self.no_fault_points {
            cfg.fault_points = false;
        }
        if self.no_intruder {
            cfg.intruder = false;
        }
        if self.no_continuous_checks {
            cfg.continuous_checks = false;
        }
        if let Some(layout) = self.layout {
            cfg.layout = layout;
        }
        for bug in &self.bugs {
            cfg.bugs.enable(bug).expect("validated by clap");
        }
        cfg
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::super::Cli;
    use sim::config::RunConfig;

    #[test]
    fn the_run_help_names_every_known_scenario() {
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("run")
            .expect("a run subcommand")
            .render_long_help()
            .to_string();
        for name in RunConfig::SCENARIOS {
            assert!(help.contains(name), "`hasim run --help` omits {name}");
        }
    }
}
