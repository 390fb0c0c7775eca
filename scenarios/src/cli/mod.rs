//! The `hasim` command line: run seeds, replay one, benchmark the simulator.
//!
//! `hasim bench` is in [`bench`], `hasim hunt` in [`hunt`], `hasim points` in [`points`]; `hasim report`, `hasim layouts` and the replay's
//! timeline and Perfetto outputs in [`report`].

pub mod args;
pub mod bench;
pub mod hunt;
pub mod points;
pub mod report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, Subcommand};

use args::{ReplayArgs, RunArgs, ShrinkArgs, World, EXIT_USAGE};
use sim::config::RunConfig;
use sim::run::failover::{self, Failover};
use sim::run::{SeedResult, Verdict};

#[derive(Parser, Debug)]
#[command(
    name = "hasim",
    about = "Deterministic simulation of the HA MPP cluster",
    version
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a range of seeds; one result per seed.
    Run(RunArgs),
    /// Replay one seed exactly, optionally writing its full trace.
    Replay(ReplayArgs),
    /// Measure simulator throughput on 1 and 2 jobs.
    Bench(crate::cli::bench::BenchArgs),
    /// One measured run for `hasim bench --scaling` (a child process, so its peak memory is
    /// its own).
    #[command(hide = true)]
    BenchChild(crate::cli::bench::ChildArgs),
    /// Hunt planted bugs: run seeds in order with a bug on until a checker catches it.
    Hunt(hunt::HuntArgs),
    /// Tabulate fault points from `hasim run --json` results: per point, the seeds it fired in
    /// and its firings.
    Points(crate::cli::points::PointsArgs),
    /// Write an HTML report with charts from `hasim run --json` results.
    Report(crate::cli::report::ReportArgs),
    /// Measure mirror layouts under k simultaneous host failures (availability, load).
    Layouts(crate::cli::report::LayoutsArgs),
    /// Cut a failing seed's fault schedule down to a minimal one that still fails the same
    /// checker; write it to a file `replay --schedule` reads.
    Shrink(ShrinkArgs),
    /// Run a recovery and administration scenario of seeds 002/003, or a standby procedure of
    /// seed 000, step by step, printing the state after each step (`hasim scenario list` names
    /// them).
    Scenario {
        name: String,
        #[arg(long)]
        seed: Option<u64>,
    },
}

/// Parses arguments and runs; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    // Commands that build a world check its layout before running anything.
    let world = match &cli.command {
        Command::Scenario { .. } => None,
        Command::Run(args) => Some(&args.world),
        Command::Replay(args) => Some(&args.world),
        Command::Bench(args) => Some(&args.world),
        Command::Shrink(args) => Some(&args.world),
        Command::Report(_) | Command::Layouts(_) | Command::Points(_) => None,
        Command::BenchChild(_) | Command::Hunt(_) => None,
    };
    if let Some(cfg) = world.map(World::config) {
        if let Err(e) = cfg
            .layout
            .validate(cfg.segment_hosts, cfg.primaries_per_host())
        {
            eprintln!("error: --layout {}: {e}", cfg.layout);
            return EXIT_USAGE;
        }
    }
    match cli.command {
        Command::Run(args) => run(args),
        Command::Replay(args) => replay(args),
        Command::Bench(args) => crate::cli::bench::main(args),
        Command::BenchChild(args) => crate::cli::bench::child(args),
        Command::Hunt(args) => hunt::main(args),
        Command::Shrink(args) => shrink(args),
        Command::Report(args) => crate::cli::report::report(&args),
        Command::Points(args) => crate::cli::points::main(&args),
        Command::Layouts(args) => crate::cli::report::layouts(&args),
        Command::Scenario { name, seed } => crate::procedures::cli(&name, seed),
    }
}

fn default_jobs() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

fn keep_failure(dir: &Path, result: &mut SeedResult, log: &[u8]) {
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let log_path = dir.join(format!("seed-{}.log", result.seed));
    if std::fs::write(&log_path, log).is_ok() {
        result.log = Some(log_path.display().to_string());
    }
    let _ = std::fs::write(
        dir.join(format!("seed-{}.json", result.seed)),
        serde_json::to_string_pretty(result).unwrap_or_default(),
    );
}

fn human_line(r: &SeedResult) -> String {
    let line = format!(
        "seed {:>6} {:<8} faults {:>2}  txns {:>4} (ok {:>4} fail {:>3} unknown {:>3})  sim {:>6.1}s  wall {:>5.2}s  trace {}",
        r.seed,
        format!("{:?}", r.verdict).to_lowercase(),
        r.faults.len(),
        r.events.invoked,
        r.events.ok,
        r.events.fail,
        r.events.unknown,
        r.sim_time_ms as f64 / 1000.0,
        r.wall_time_ms as f64 / 1000.0,
        r.trace_hash
    );
    match &r.intruder {
        Some(i) => format!(
            "{line}\n  intruder: {} rounds, {} attempts ({}), {} answered",
            i.rounds,
            i.attempts.values().sum::<u32>(),
            i.attempts
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            i.answered
        ),
        None => line,
    }
}

fn explain_failure(r: &SeedResult) -> String {
    let mut out = String::new();
    if let Some(e) = &r.error {
        out += &format!("  error: {e}\n");
    }
    for v in r.violations.iter().take(5) {
        out += &format!(
            "  violation [{}]: {}\n    first offending event: {} ms, client {}, txn {}: {} ({})\n",
            v.checker,
            v.message,
            v.first_event.at_ms,
            v.first_event.client,
            v.first_event.txn,
            v.first_event.kind,
            v.first_event.detail
        );
    }
    if r.violations.len() > 5 {
        out += &format!("  ... and {} more violations\n", r.violations.len() - 5);
    }
    if let Some(log) = &r.log {
        out += &format!("  log: {log}\n");
    }
    out += &format!("  replay: {}\n", r.replay);
    out
}

/// One seed's result on standard output: its JSON line, or its human line (with the swarm's
/// draw first, and an explanation when it failed).
fn print_result(result: &SeedResult, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(result).expect("results serialize")
        );
    } else {
        if let Some(o) = &result.swarm {
            let _ = writeln!(out, "seed {:>6} swarm: {}", result.seed, o.summary());
        }
        let _ = writeln!(out, "{}", human_line(result));
        if result.verdict != Verdict::Ok {
            let _ = write!(out, "{}", explain_failure(result));
        }
    }
}

fn run(args: RunArgs) -> i32 {
    sim::trace::install("info");
    let cfg = args.world.config();
    let jobs = args.jobs.unwrap_or_else(default_jobs);
    let started = Instant::now();
    let (mut worst, mut counts, mut sim_ms, mut mismatches) = (Verdict::Ok, [0u64; 4], 0u64, 0u64);
    let mut failing = Vec::new();
    let mut failovers: Vec<Failover> = Vec::new();
    let seeds = match args.shard {
        Some(shard) => shard.seeds(args.seeds.start, args.seeds.end),
        None => (args.seeds.start..args.seeds.end).collect(),
    };
    let mut progress = sim::run::progress::Progress::new(seeds.len() as u64, args.json);
    sim::run::pool::run_seeds(
        &cfg,
        &seeds,
        jobs,
        args.check_determinism,
        |sim::run::pool::SeedRun {
             mut result,
             log,
             mismatch,
         }| {
            if let Some(m) = &mismatch {
                mismatches += 1;
                result.verdict = result.verdict.max(Verdict::Crash);
                result.error = Some(format!("nondeterminism: {m}"));
            }
            if result.verdict != Verdict::Ok {
                keep_failure(&args.failures_dir, &mut result, &log);
                failing.push(result.replay.clone());
            }
            worst = worst.max(result.verdict);
            counts[result.verdict as usize] += 1;
            sim_ms += result.sim_time_ms;
            failovers.extend(result.failovers.iter().cloned());
            progress.seed_done(result.verdict != Verdict::Ok);
            progress.suspend(|| print_result(&result, args.json));
            std::ops::ControlFlow::Continue(())
        },
    );
    progress.finish();
    let wall = started.elapsed().as_secs_f64();
    let n = seeds.len() as u64;
    eprintln!(
        "{n} seeds on {jobs} jobs: {} ok, {} safety, {} liveness, {} crash{}; {:.0} simulated s in {:.1} wall s ({:.0} simulated s per wall s, {:.1} simulations/s)",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        if args.check_determinism { format!("; determinism: {mismatches} mismatches") } else { String::new() },
        sim_ms as f64 / 1000.0,
        wall,
        sim_ms as f64 / 1000.0 / wall.max(1e-9),
        n as f64 / wall.max(1e-9)
    );
    eprintln!("{}", failover::summarize(&failovers));
    if let Some(first) = failing.first() {
        eprintln!(
            "{} failing seeds; first one replays with:\n  {first}",
            failing.len()
        );
    }
    worst.exit_code()
}

fn replay(args: ReplayArgs) -> i32 {
    sim::trace::install(if args.trace.is_some() {
        "debug"
    } else {
        "info"
    });
    let mut cfg = args.world.config();
    if let Some(path) = &args.schedule {
        if let Err(e) = load_schedule(path, args.seed, &mut cfg) {
            eprintln!("schedule {}: {e}", path.display());
            return EXIT_USAGE;
        }
    }
    let (result, log, recording) = sim::run::run_seed_recorded(args.seed, &cfg);
    if let Err(e) = crate::cli::report::replay_outputs(&args, recording.as_ref()) {
        eprintln!("error: {e:#}");
        return EXIT_USAGE;
    }
    if let Some(path) = &args.trace {
        if let Err(e) = std::fs::write(path, &log) {
            eprintln!("cannot write trace {}: {e}", path.display());
            return EXIT_USAGE;
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&result).expect("results serialize")
        );
    } else {
        if let Some(o) = &result.swarm {
            println!("swarm: {}", o.summary());
        }
        println!("{}", human_line(&result));
        if result.verdict != Verdict::Ok {
            print!("{}", explain_failure(&result));
        }
        println!("  schedule label: {:?}", result.label);
        for f in &result.faults {
            println!(
                "  fault at {:>6} ms (episode {}): {:?}",
                f.at_ms, f.episode, f.fault
            );
        }
        for f in &result.healed_at_end {
            println!("  healed at the end: {f:?}");
        }
        for a in &result.operator {
            println!(
                "  operator at {:>6} ms: {} ({}: {})",
                a.at_ms,
                a.command,
                if a.ok { "done" } else { "failed" },
                a.outcome
            );
        }
    }
    result.verdict.exit_code()
}

/// Reads a schedule file, checks it against the cluster seed `seed` runs, and applies it to
/// `cfg` (its faults, and its fault phase's length when it has one); on an error `cfg` is
/// unchanged.
fn load_schedule(path: &Path, seed: u64, cfg: &mut RunConfig) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut with = cfg.clone();
    sim::run::shrink::apply_schedule_file(&mut with, &text)?;
    let schedule = with.schedule.clone().unwrap_or_default();
    let seeded = sim::config::swarm::derive(seed, &with);
    let segments = sim::world::layout(&seeded);
    let layout = sim::nemesis::Layout {
        segment_hosts: (1..=seeded.segment_hosts)
            .map(|i| format!("sdw{i}"))
            .collect(),
        segments: &segments,
    };
    sim::nemesis::validate(&schedule, &layout, seeded.fault_time)?;
    *cfg = with;
    Ok(())
}

fn shrink(args: ShrinkArgs) -> i32 {
    sim::trace::install("warn");
    let mut cfg = args.world.config();
    if let Some(path) = &args.schedule {
        if let Err(e) = load_schedule(path, args.seed, &mut cfg) {
            eprintln!("schedule {}: {e}", path.display());
            return EXIT_USAGE;
        }
    }
    let Some((shrunk, result)) = sim::run::shrink::shrink(args.seed, &cfg, args.max_runs) else {
        eprintln!("seed {} passes: nothing to shrink", args.seed);
        return EXIT_USAGE;
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("shrunk-seed-{}.json", args.seed)));
    let text = serde_json::to_string_pretty(&shrunk).expect("schedules serialize");
    if let Err(e) = std::fs::write(&out, text + "\n") {
        eprintln!("cannot write {}: {e}", out.display());
        return EXIT_USAGE;
    }
    println!(
        "seed {}: {} schedule entries cut to {} in {} runs; still fails [{}]",
        args.seed,
        shrunk.original_faults,
        shrunk.faults.len(),
        shrunk.runs,
        shrunk.checker
    );
    if shrunk.fault_time_ms < shrunk.original_fault_time_ms {
        println!(
            "fault phase (and workload) cut from {:.1} to {:.1} simulated s",
            shrunk.original_fault_time_ms as f64 / 1000.0,
            shrunk.fault_time_ms as f64 / 1000.0
        );
    }
    for f in &shrunk.faults {
        println!(
            "  fault at {:>6} ms (episode {}): {:?}",
            f.at_ms, f.episode, f.fault
        );
    }
    println!("written to {}; replay with:", out.display());
    println!(
        "  {}",
        sim::run::shrink::replay_with_schedule(args.seed, &cfg, &out.display().to_string())
    );
    result.verdict.exit_code()
}
