//! `hasim bench`: the simulator's throughput (simulations per second, simulated seconds per wall
//! second and per CPU second, on 1 and 2 jobs), failover times, the transport's floor (what a
//! message costs with nothing of the cluster around it, and so the most simulated seconds per CPU
//! second the scenario's traffic allows), and with `--scaling` how the cost of one simulation
//! grows from 8 to 64 to 256 segments, with its peak memory.
//!
//! Peak memory is the peak resident set size (`VmHWM` of `/proc/self/status`, which a new
//! program starts afresh, unlike `getrusage`'s, which Linux carries across `exec` from the
//! parent) of a child process that runs the seeds of one size one at a time (`hasim
//! bench-child`), less that of a child that runs none (the process's own start-up), so each
//! size is measured in a process of its own. CPU time is `getrusage`'s user + system time.

use std::io::Write;
use std::process::Command as Process;
use std::time::Instant;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::cli::args::{self, SeedRange, World};
use sim::config::RunConfig;
use sim::run::failover::{self, Failover};
use sim::run::{SeedResult, Verdict};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Seeds per measurement.
    #[arg(long, default_value = "0..40", value_parser = args::parse_seeds)]
    pub seeds: SeedRange,
    /// Also measure 8, 64 and 256 segments (scenarios scaled-8, scaled-64, scaled-256).
    #[arg(long)]
    pub scaling: bool,
    /// Seeds per size for `--scaling`.
    #[arg(long, default_value = "0..3", value_parser = args::parse_seeds)]
    pub scaling_seeds: SeedRange,
    #[command(flatten)]
    pub world: World,
}

#[derive(Args, Debug)]
pub struct ChildArgs {
    #[arg(long, value_parser = args::parse_scenario)]
    pub scenario: String,
    /// Seeds to run, one at a time; none measures the process's start-up alone.
    #[arg(long)]
    pub seeds: Option<String>,
}

/// What a child reports on its standard output.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChildReport {
    pub seeds: u64,
    pub failing: u64,
    pub sim_s: f64,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub max_rss_kib: u64,
    pub transactions: u64,
}

/// User plus system CPU time of this process, all threads, and its peak resident set size.
pub fn usage() -> (f64, u64) {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (0.0, 0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_maxrss as u64)
}

/// This program's peak resident set size in KiB (Linux `VmHWM`; 0 where unavailable).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

pub fn child(args: ChildArgs) -> i32 {
    sim::trace::install("warn");
    let cfg = RunConfig::by_name(&args.scenario).expect("validated by clap");
    let started = Instant::now();
    let (cpu0, _) = usage();
    let mut report = ChildReport {
        seeds: 0,
        failing: 0,
        sim_s: 0.0,
        wall_s: 0.0,
        cpu_s: 0.0,
        max_rss_kib: 0,
        transactions: 0,
    };
    if let Some(seeds) = &args.seeds {
        let seeds = match args::parse_seeds(seeds) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("--seeds: {e}");
                return args::EXIT_USAGE;
            }
        };
        run_many(&cfg, seeds, 1, false, |r, _, _| {
            report.seeds += 1;
            report.failing += u64::from(r.verdict != Verdict::Ok);
            report.sim_s += r.sim_time_ms as f64 / 1000.0;
            report.transactions += r.events.invoked;
        });
    }
    let (cpu1, _) = usage();
    report.wall_s = started.elapsed().as_secs_f64();
    report.cpu_s = cpu1 - cpu0;
    report.max_rss_kib = peak_rss_kib();
    println!("{}", serde_json::to_string(&report).expect("serializes"));
    0
}

fn run_child(scenario: &str, seeds: Option<SeedRange>) -> Result<ChildReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find hasim itself: {e}"))?;
    let mut cmd = Process::new(exe);
    cmd.args(["bench-child", "--scenario", scenario]);
    if let Some(s) = seeds {
        cmd.args(["--seeds", &format!("{}..{}", s.start, s.end)]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run bench-child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bench-child {scenario} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bench-child output: {e}"))
}

fn scaling(seeds: SeedRange) -> Result<(), String> {
    let idle = run_child("scaled-8", None)?;
    if idle.max_rss_kib == 0 {
        return Err("no peak memory figure on this system (/proc/self/status VmHWM)".into());
    }
    println!();
    println!(
        "scaling: scenarios scaled-N (N segments = N primaries with N mirrors; one client per content; {} s of faults, fault rate per host as in standard), seeds {}..{} one at a time in a child process each size; process start-up {} MiB",
        RunConfig::scaled(8).fault_time.as_secs(),
        seeds.start,
        seeds.end,
        idle.max_rss_kib / 1024
    );
    println!(
        "| segments | hosts × primaries | instances | seeds | failing (not ok) | simulated s | CPU s | CPU s per simulation | simulated s per CPU s | transactions per CPU s | peak memory per simulation MiB |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in RunConfig::SCALED {
        let cfg = RunConfig::scaled(*n);
        let r = run_child(&cfg.scenario, Some(seeds))?;
        println!(
            "| {n} | {} × {} | {} | {} | {} | {:.0} | {:.1} | {:.2} | {:.0} | {:.0} | {:.0} |",
            cfg.segment_hosts,
            cfg.primaries_per_host(),
            2 * cfg.contents + 1,
            r.seeds,
            r.failing,
            r.sim_s,
            r.cpu_s,
            r.cpu_s / r.seeds.max(1) as f64,
            r.sim_s / r.cpu_s.max(1e-9),
            r.transactions as f64 / r.cpu_s.max(1e-9),
            r.max_rss_kib.saturating_sub(idle.max_rss_kib) as f64 / 1024.0,
        );
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

/// The failover milestones of the one-job row, as a table of medians and 90th percentiles.
fn print_failovers(failovers: &[Failover]) {
    let summary = failover::summarize(failovers);
    println!();
    println!(
        "failover: {} of {} primaries lost to a host crash with their mirror in sync failed over and committed again ({} more had no in-sync mirror)",
        summary.complete, summary.with_mirror, summary.without_mirror
    );
    println!();
    println!("| simulated s from | median | p90 |");
    println!("|---|---:|---:|");
    for (part, (median, p90)) in [
        ("crash to catalog flip (detection)", summary.detection_ms),
        ("flip to \"promoted\" (promotion)", summary.promotion_ms),
        ("promoted to first commit", summary.first_commit_ms),
        ("crash to first commit (total)", summary.total_ms),
    ] {
        println!(
            "| {part} | {:.2} | {:.2} |",
            median as f64 / 1000.0,
            p90 as f64 / 1000.0
        );
    }
}

/// The transport floor: what the bare transports cost per message, set against `traffic` (the
/// messages and simulated seconds of the one-job row).
fn print_floor(traffic: (u64, f64)) {
    let per_sim_s = traffic.0 as f64 / traffic.1.max(1e-9);
    println!();
    println!(
        "transport floor: {FLOOR_CLIENTS} client nodes calling one server node back to back for {} simulated s, nothing else running; the last column is the most simulated s per CPU s a scenario carrying the {per_sim_s:.0} messages per simulated s measured above could reach were this its only cost",
        FLOOR_TIME.as_secs()
    );
    println!(
        "| transport | messages | CPU s | CPU µs per message | ceiling: simulated s per CPU s |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, transport) in [
        ("madsim's TCP alone (write, flush, read)", Transport::Raw),
        (
            "the cluster's connection (checksummed frames, call timeout, reset check)",
            Transport::Framed,
        ),
    ] {
        let (messages, cpu) = floor(transport, FLOOR_TIME);
        let per_message = cpu / (messages as f64).max(1.0);
        println!(
            "| {name} | {messages} | {cpu:.2} | {:.2} | {:.0} |",
            per_message * 1e6,
            1.0 / (per_message * per_sim_s).max(1e-12)
        );
        let _ = std::io::stdout().flush();
    }
}

pub fn main(args: BenchArgs) -> i32 {
    sim::trace::install("warn");
    let cfg = args.world.config();
    let n = args.seeds.end - args.seeds.start;
    println!(
        "scenario {}: {n} seeds per row, release build recommended; CPU s is this process's user + system time",
        cfg.scenario
    );
    println!("| jobs | seeds | wall s | CPU s | simulations/s | simulated s per wall s | simulated s per CPU s | messages per simulated s | CPU µs per message |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut worst = Verdict::Ok;
    let mut failovers: Vec<Failover> = Vec::new();
    // Messages and simulated seconds of the one-job row: the traffic the floor is set against.
    let mut traffic = (0u64, 0f64);
    for jobs in [1u32, 2] {
        let started = Instant::now();
        let (cpu0, _) = usage();
        let mut sim_ms = 0u64;
        let mut messages = 0u64;
        run_many(&cfg, args.seeds, jobs, false, |r, _, _| {
            sim_ms += r.sim_time_ms;
            messages += r.messages;
            worst = worst.max(r.verdict);
            if jobs == 1 {
                failovers.extend(r.failovers);
            }
        });
        let wall = started.elapsed().as_secs_f64();
        let cpu = usage().0 - cpu0;
        let sim_s = sim_ms as f64 / 1000.0;
        if jobs == 1 {
            traffic = (messages, sim_s);
        }
        println!(
            "| {jobs} | {n} | {wall:.2} | {cpu:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.1} |",
            n as f64 / wall,
            sim_s / wall,
            sim_s / cpu.max(1e-9),
            messages as f64 / sim_s.max(1e-9),
            cpu * 1e6 / (messages as f64).max(1.0)
        );
        let _ = std::io::stdout().flush();
    }
    print_failovers(&failovers);
    if args.scaling {
        if let Err(e) = scaling(args.scaling_seeds) {
            eprintln!("{e}");
            return 3;
        }
    }
    print_floor(traffic);
    worst.exit_code()
}

const FLOOR_CLIENTS: u32 = 8;
/// Where the floor's server listens.
const SERVER: &str = "10.99.0.1:5000";
const FLOOR_TIME: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    /// madsim's simulated TCP with no framing: a 64-byte write and flush, a 16-byte answer.
    Raw,
    /// `cluster::io::net::Connection::call`: the frames, checksums, timeouts and reset checks
    /// every message of the cluster goes through.
    Framed,
}

#[derive(Serialize, Deserialize)]
enum FloorMessage {
    Request {
        id: u64,
        /// A byte string, encoded as one slice as the cluster's row values are.
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    Answer {
        id: u64,
    },
}

/// Runs the transport floor in a world of its own, on a fresh thread under the quiet subscriber
/// the seed runs use: the messages carried and the CPU seconds they took.
fn floor(transport: Transport, time: std::time::Duration) -> (u64, f64) {
    std::thread::Builder::new()
        .name("floor".into())
        .spawn(move || {
            sim::trace::quietly(|| {
                let cpu0 = usage_thread();
                let rt =
                    madsim::runtime::Runtime::with_seed_and_config(0, madsim::Config::default());
                let messages = rt.block_on(floor_world(transport, time));
                drop(rt);
                (messages, usage_thread() - cpu0)
            })
        })
        .expect("spawn floor thread")
        .join()
        .expect("floor world panicked")
}

/// The floor's server side of one connection: answers every message.
async fn floor_serve(stream: tokio::net::TcpStream, transport: Transport) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    match transport {
        Transport::Raw => {
            let mut stream = stream;
            let mut buf = [0u8; 64];
            while stream.read_exact(&mut buf).await.is_ok() {
                if stream.write_all(&buf[..16]).await.is_err() || stream.flush().await.is_err() {
                    break;
                }
            }
        }
        Transport::Framed => {
            let pending = cluster::io::net::PendingConnection::new(stream, "client".into());
            let Ok(mut conn) = pending.authenticate().await else {
                return;
            };
            while let Ok(FloorMessage::Request { id, .. }) = conn.recv().await {
                if conn.send(&FloorMessage::Answer { id }).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// One floor client: calls the server back to back for `time`.
async fn floor_calls(transport: Transport, time: std::time::Duration) {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let end = tokio::time::Instant::now() + time;
    match transport {
        Transport::Raw => {
            let mut stream = tokio::net::TcpStream::connect(SERVER)
                .await
                .expect("floor connect");
            let mut buf = [7u8; 64];
            while tokio::time::Instant::now() < end {
                stream.write_all(&buf).await.expect("floor write");
                stream.flush().await.expect("floor flush");
                stream.read_exact(&mut buf[..16]).await.expect("floor read");
            }
        }
        Transport::Framed => {
            let mut conn = cluster::io::net::Connection::connect(SERVER, Duration::from_secs(2))
                .await
                .expect("floor connect");
            let mut id = 0;
            while tokio::time::Instant::now() < end {
                let request = FloorMessage::Request {
                    id,
                    body: vec![1; 40],
                };
                let _: FloorMessage = conn
                    .call(&request, Duration::from_secs(5))
                    .await
                    .expect("floor call");
                id += 1;
            }
        }
    }
}

async fn floor_world(transport: Transport, time: std::time::Duration) -> u64 {
    use std::time::Duration;

    let handle = madsim::runtime::Handle::current();
    sim::world::credentials::begin(0, 1);
    let server = handle
        .create_node()
        .name("floor-server")
        .ip("10.99.0.1".parse().expect("ip"))
        .build();
    sim::world::credentials::enroll(&server, cluster::io::auth::PeerIdentity::Coordinator);
    server.spawn(async move {
        let listener = cluster::io::net::listen(SERVER)
            .await
            .expect("floor listener");
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(floor_serve(stream, transport));
        }
    });
    madsim::time::sleep(Duration::from_millis(10)).await;
    let clients: Vec<_> = (0..FLOOR_CLIENTS)
        .map(|i| {
            let node = handle
                .create_node()
                .name(format!("floor-client-{i}"))
                .ip(format!("10.99.1.{}", i + 1).parse().expect("ip"))
                .build();
            sim::world::credentials::enroll(&node, cluster::io::auth::PeerIdentity::Client);
            node.spawn(floor_calls(transport, time))
        })
        .collect();
    for client in clients {
        client.await.expect("floor client");
    }
    // The server's tasks would outlive the world otherwise (see the runner).
    handle.kill(server.id());
    madsim::net::NetSim::current().stat().msg_count
}

/// User plus system CPU time of the calling thread.
fn usage_thread() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if rc != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// Runs seeds on `jobs` workers; calls `each` in seed order.
fn run_many(
    cfg: &RunConfig,
    seeds: SeedRange,
    jobs: u32,
    twice: bool,
    mut each: impl FnMut(SeedResult, Vec<u8>, Option<String>),
) {
    let list: Vec<u64> = (seeds.start..seeds.end).collect();
    sim::run::pool::run_seeds(cfg, &list, jobs, twice, |run| {
        each(run.result, run.log, run.mismatch);
        std::ops::ControlFlow::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both transports carry the same traffic (a call is a request and an answer, back to back
    /// on every client), so their costs per message compare like with like.
    #[test]
    fn the_floor_carries_the_same_calls_on_both_transports() {
        let time = std::time::Duration::from_secs(20);
        let (raw, raw_cpu) = floor(Transport::Raw, time);
        let (framed, framed_cpu) = floor(Transport::Framed, time);
        // 8 clients, a round trip of two 1-10 ms hops: some 1,450 messages per simulated second.
        assert!(raw > 20 * 1_000, "{raw} messages");
        let ratio = framed as f64 / raw as f64;
        assert!((0.95..1.05).contains(&ratio), "{framed} against {raw}");
        assert!(raw_cpu > 0.0 && framed_cpu > 0.0);
    }
}
