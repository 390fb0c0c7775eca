//! Runs one seed: builds the world, starts clients and the nemesis, heals, reads everything
//! back, checks the invariants. Each seed runs on a fresh thread (madsim and `HashMap` seeding
//! are per thread), so seeds are independent and can run in parallel.
//!
//! The rooms: many seeds on a pool of threads ([`pool`]), fault points carried out ([`points`]),
//! shrinking a failing schedule ([`shrink`]), failover figures ([`failover`]), what a run
//! hands `reports` ([`recording`]), and the progress bar ([`progress`]).

pub mod failover;
pub mod points;
pub mod pool;
pub mod progress;
pub mod recording;
pub mod shrink;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant as WallInstant};

use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use cluster::client::Client;
use cluster::wal::{Key, Value};

use crate::config::RunConfig;
use crate::invariants::{self, Violation};
use crate::nemesis::{self, Fault, Label, ScheduledFault};
use crate::observer::Recorder;
use crate::operator::harness::SimHosts;
use crate::operator::OperatorAction;
pub use crate::random::stream;
use crate::trace;
use crate::workload::history::{History, Outcome as TxnOutcome};
use crate::workload::{self, now_ms, TABLES};
use crate::world::World;
use failover::{Failover, HostEvent};

/// How a seed ended, by class. The exit code of `hasim` is the worst class over its seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// A safety property broke (exit 1).
    Safety,
    /// The healed cluster did not converge within the bound (exit 2).
    Liveness,
    /// The simulation crashed or panicked (exit 3).
    Crash,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Ok => 0,
            Verdict::Safety => 1,
            Verdict::Liveness => 2,
            Verdict::Crash => 3,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct EventCounts {
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    /// What a swarm scenario drew for this seed (see `crate::config::swarm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm: Option<crate::config::swarm::SwarmOptions>,
    pub verdict: Verdict,
    pub config: RunConfig,
    /// Whether the schedule must leave the cluster available, judged from the schedule.
    pub label: Label,
    /// Fault times are simulated ms since the workload started, `workload_started_ms` after
    /// the run began. A fault and its healing share an episode.
    pub faults: Vec<ScheduledFault>,
    /// Heals the runner carried out after the schedule, before the final checks (faults the
    /// schedule left in force).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub healed_at_end: Vec<Fault>,
    /// How many times each fault point fired (by name; points that never fired left out).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub points: BTreeMap<String, u32>,
    /// The faults the fault points carried out, as schedule entries (episodes from
    /// `points::FIRST_EPISODE`); the availability label counts them with the schedule's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub point_faults: Vec<ScheduledFault>,
    pub workload_started_ms: u64,
    pub events: EventCounts,
    /// Every primary a host crash took down, with its failover milestones.
    pub failovers: Vec<Failover>,
    /// What the operator agent did: with a standby coordinator, from the first fault on (it
    /// activates the standby when the coordinator is lost); otherwise once every fault had
    /// healed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operator: Vec<OperatorAction>,
    /// What the intruder did, in a seed it attacked (`crate::intruder`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intruder: Option<crate::intruder::Report>,
    pub sim_time_ms: u64,
    pub wall_time_ms: u64,
    /// Messages the simulated network carried (madsim's count: every flush of a simulated TCP
    /// stream and every connection handshake; a message held back by a partition counts at
    /// each retry).
    #[serde(default)]
    pub messages: u64,
    pub violations: Vec<Violation>,
    /// The checkers that ran over the history (none when the healed cluster never served the
    /// final read).
    pub checkers: Vec<&'static str>,
    pub trace_hash: String,
    pub replay: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl SeedResult {
    /// A passing result with nothing recorded yet.
    fn empty(seed: u64, cfg: &RunConfig) -> SeedResult {
        SeedResult {
            seed,
            swarm: cfg.swarm.clone(),
            verdict: Verdict::Ok,
            config: cfg.clone(),
            label: Label::MustStayAvailable,
            faults: Vec::new(),
            healed_at_end: Vec::new(),
            points: BTreeMap::new(),
            point_faults: Vec::new(),
            workload_started_ms: 0,
            events: EventCounts::default(),
            failovers: Vec::new(),
            operator: Vec::new(),
            intruder: None,
            sim_time_ms: 0,
            wall_time_ms: 0,
            messages: 0,
            violations: Vec::new(),
            checkers: Vec::new(),
            trace_hash: String::new(),
            replay: replay_command(seed, cfg),
            error: None,
            log: None,
        }
    }
}

/// The command that replays a seed.
pub fn replay_command(seed: u64, cfg: &RunConfig) -> String {
    let mut cmd = format!("cargo hasim replay --seed {seed}");
    if cfg.scenario != RunConfig::SCENARIOS[0] {
        cmd += &format!(" --scenario {}", cfg.scenario);
    }
    let scenario = RunConfig::by_name(&cfg.scenario);
    if scenario
        .as_ref()
        .is_some_and(|s| s.replication != cfg.replication)
    {
        cmd += match cfg.replication {
            cluster::segment::ReplicationMode::Sync => " --replication sync",
            cluster::segment::ReplicationMode::Async => " --replication async",
        };
    }
    if scenario
        .as_ref()
        .is_some_and(|s| s.workload.multi_content_txns != cfg.workload.multi_content_txns)
    {
        cmd += " --multi-content-txns";
    }
    if scenario
        .as_ref()
        .is_some_and(|s| s.operator != cfg.operator && !cfg.operator)
    {
        cmd += " --no-operator";
    }
    if scenario
        .as_ref()
        .is_some_and(|s| s.fault_points && !cfg.fault_points)
    {
        cmd += " --no-fault-points";
    }
    if scenario.is_some_and(|s| s.intruder && !cfg.intruder) {
        cmd += " --no-intruder";
    }
    for bug in cfg.bugs.enabled() {
        cmd += &format!(" --bug {bug}");
    }
    cmd
}

struct SimOutput {
    facts: Vec<crate::observer::Observed>,
    /// The intruder's log and rounds, and the checker that watched for it, in a seed it attacked.
    intruder: Option<(
        crate::intruder::Log,
        usize,
        std::sync::Arc<invariants::strangers_change_nothing::StrangersChangeNothing>,
    )>,
    checksums: Vec<invariants::identical_replicas::PairChecksums>,
    faults: Vec<ScheduledFault>,
    healed_at_end: Vec<Fault>,
    /// What the fault points did.
    point_log: points::PointLog,
    converged: Result<(), String>,
    operator_actions: Vec<OperatorAction>,
    workload_started_ms: u64,
    host_events: Vec<HostEvent>,
    segments: Vec<cluster::model::catalog::SegmentConfig>,
    cluster_events: Vec<crate::observer::ClusterEvent>,
    history: History,
    final_rows: Result<BTreeMap<(String, Key), Value>, String>,
    sim_time_ms: u64,
    messages: u64,
    /// The prober's logged catalog changes, and the history table and epoch read at the end.
    catalog_lines: Vec<crate::observer::CatalogLine>,
    configuration_history: Option<(Vec<cluster::model::catalog::HistoryRow>, u64)>,
    /// Every activation of a standby, with the catalog WALs it is judged on.
    activations: Vec<crate::world::coordinator_pair::ActivationRecord>,
    /// Every change of acting coordinator, with the hosts' addresses.
    successions: Vec<crate::world::coordinator_pair::Succession>,
    /// What the durable-claims checker found as the run went.
    durable_claims: Vec<Violation>,
    /// What the failover-policy and obeyed-epochs checkers found as the run went.
    failover_policy: Vec<Violation>,
    obeyed_epochs: Vec<Violation>,
    /// What the wal-positions checker found as the run went.
    wal_positions: Vec<Violation>,
    blocks_survive_power_loss: Vec<Violation>,
}

/// Runs one seed on a fresh thread without its log (see [`crate::trace::quietly`]): the same
/// result and trace hash as [`run_seed`], at a fraction of the cost.
pub fn run_seed_quiet(seed: u64, cfg: &RunConfig) -> SeedResult {
    trace::install("warn");
    let cfg_thread = crate::config::swarm::derive(seed, cfg);
    std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .stack_size(16 << 20)
        .spawn(move || trace::quietly(|| run_seed_here(seed, &cfg_thread, false).0))
        .expect("spawn seed thread")
        .join()
        .expect("seed thread catches its own panics")
}

/// Runs one seed on a fresh thread; returns its result and its captured log.
pub fn run_seed(seed: u64, cfg: &RunConfig) -> (SeedResult, Vec<u8>) {
    // The trace hash and the checkers fed by log lines (failover milestones, the prober's
    // catalog changes) need the subscriber; `hasim` installs it first with its own level.
    trace::install("warn");
    let cfg_thread = crate::config::swarm::derive(seed, cfg);
    std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .stack_size(16 << 20)
        .spawn(move || run_seed_here(seed, &cfg_thread, false))
        .expect("spawn seed thread")
        .join()
        .map(|(result, log, _)| (result, log))
        .expect("seed thread catches its own panics")
}

/// [`run_seed`], also returning what the run recorded (for the timeline and the Perfetto
/// trace); `None` if the simulation panicked.
pub fn run_seed_recorded(
    seed: u64,
    cfg: &RunConfig,
) -> (SeedResult, Vec<u8>, Option<reports::timeline::Recording>) {
    let cfg_thread = crate::config::swarm::derive(seed, cfg);
    std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .stack_size(16 << 20)
        .spawn(move || run_seed_here(seed, &cfg_thread, true))
        .expect("spawn seed thread")
        .join()
        .expect("seed thread catches its own panics")
}

fn run_seed_here(
    seed: u64,
    cfg: &RunConfig,
    record: bool,
) -> (SeedResult, Vec<u8>, Option<reports::timeline::Recording>) {
    let wall = WallInstant::now();
    trace::begin_capture();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut rt =
            madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        rt.set_time_limit(cfg.fault_time + cfg.heal_bound * 3 + Duration::from_secs(60));
        rt.block_on(simulate(seed, cfg.clone()))
    }));
    let (log, hash) = trace::end_capture();
    let mut result = SeedResult::empty(seed, cfg);
    result.trace_hash = format!("{hash:016x}");
    let mut recording = None;
    match outcome {
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            result.verdict = Verdict::Crash;
            result.error = Some(format!("simulation panicked: {msg}"));
        }
        Ok(out) => {
            if record {
                recording = Some(crate::run::recording::of_run(
                    seed,
                    &out.segments,
                    &out.faults,
                    out.workload_started_ms,
                    &out.host_events,
                    &out.cluster_events,
                    &out.operator_actions,
                    &out.history.txns(),
                    out.sim_time_ms,
                ));
            }
            judge(&mut result, out)
        }
    }
    result.wall_time_ms = wall.elapsed().as_millis() as u64;
    (result, log, recording)
}

/// Runs the configuration inside the current madsim runtime (a `#[madsim::test]`, which takes
/// its seed from `MADSIM_TEST_SEED`) and judges it. Only the wall-clock figure and the trace hash
/// are left out: the caller owns the runtime and the log.
pub async fn run_in_current_runtime(cfg: RunConfig) -> SeedResult {
    let seed = madsim::runtime::Handle::current().seed();
    let cfg = crate::config::swarm::derive(seed, &cfg);
    // Checkers fed by log lines (the prober's catalog changes, failover milestones) need the
    // subscriber and this thread's capture, as `run_seed` sets them up.
    crate::trace::install("warn");
    crate::trace::begin_capture();
    let out = simulate(seed, cfg.clone()).await;
    let mut result = SeedResult::empty(seed, &cfg);
    judge(&mut result, out);
    result
}

fn judge(result: &mut SeedResult, out: SimOutput) {
    let txns = out.history.txns();
    for t in &txns {
        result.events.invoked += 1;
        match t.outcome {
            Some(TxnOutcome::Ok) => result.events.ok += 1,
            Some(TxnOutcome::Fail) => result.events.fail += 1,
            Some(TxnOutcome::Unknown) | None => result.events.unknown += 1,
        }
    }
    result.failovers =
        failover::measure(&out.segments, &out.host_events, &out.cluster_events, &txns);
    let availability = judge_availability(result, &out, &txns);
    match &out.final_rows {
        Err(e) => {
            result.verdict = Verdict::Liveness;
            result.error = Some(format!(
                "cluster did not serve a full read within {:?} of healing: {e}",
                result.config.heal_bound
            ));
            // A stranger obeyed is a safety violation whether or not the cluster came back.
            if let Some((log, _, judge)) = &out.intruder {
                let found = judge.check(log, &BTreeMap::new(), &out.catalog_lines);
                result
                    .checkers
                    .push(invariants::strangers_change_nothing::NAME);
                if !found.is_empty() {
                    result.violations.extend(found);
                    result.verdict = Verdict::Safety;
                }
            }
        }
        Ok(rows) => {
            run_checkers(result, &out, &txns, rows, availability);
            if !result.violations.is_empty() {
                result.verdict = Verdict::Safety;
            } else if let Err(e) = &out.converged {
                result.verdict = Verdict::Liveness;
                result.error = Some(format!(
                    "[{}] the healed cluster did not converge within {:?}: {e}",
                    invariants::converged::NAME,
                    result.config.heal_bound
                ));
            }
        }
    }
    result.faults = out.faults;
    result.healed_at_end = out.healed_at_end;
    result.points = out.point_log.fired;
    result.point_faults = out.point_log.faults;
    result.operator = out.operator_actions;
    result.intruder = out
        .intruder
        .as_ref()
        .map(|(log, rounds, _)| log.report(*rounds));
    result.workload_started_ms = out.workload_started_ms;
    result.sim_time_ms = out.sim_time_ms;
    result.messages = out.messages;
}

/// Labels the run from its schedule and judges availability by the label (the violations are
/// listed with the other checkers' once the final read succeeded).
fn judge_availability(
    result: &mut SeedResult,
    out: &SimOutput,
    txns: &[crate::workload::history::TxnRecord],
) -> Vec<Violation> {
    let end_ms = out.sim_time_ms.saturating_sub(out.workload_started_ms);
    let cfg = &result.config;
    let window =
        nemesis::detection_window(&cfg.probe, cfg.wal_timeout, cfg.mirror_down_grace_period);
    let mut faults = out.faults.clone();
    faults.extend(out.point_log.faults.iter().cloned());
    faults.sort_by_key(|f| f.at_ms);
    let faults = &faults;
    let label = nemesis::label(faults, &out.segments, end_ms, window);
    let mut availability = invariants::availability::check(
        label,
        faults,
        &out.segments,
        txns,
        out.workload_started_ms,
        end_ms,
        window,
    );
    availability.extend(invariants::availability::check_paused_primaries(
        label,
        faults,
        &out.segments,
        txns,
        out.workload_started_ms,
        end_ms,
        &cfg.probe,
    ));
    result.label = label;
    availability
}

/// Every safety checker over what the run recorded and read back, each listed in the result.
fn run_checkers(
    result: &mut SeedResult,
    out: &SimOutput,
    txns: &[crate::workload::history::TxnRecord],
    rows: &BTreeMap<(String, Key), Value>,
    availability: Vec<Violation>,
) {
    let mut check = |name: &'static str, found: Vec<Violation>| {
        result.checkers.push(name);
        result.violations.extend(found);
    };
    use invariants::*;
    check(availability::NAME, availability);
    let model = model::Model::build(txns);
    check(
        no_lost_commits::NAME,
        no_lost_commits::check_with(txns, &model, rows),
    );
    check(
        aborted_stays_aborted::NAME,
        aborted_stays_aborted::check_with(txns, &model, rows),
    );
    check(latest_value::NAME, latest_value::check_with(txns, &model));
    check(promoted_in_sync::NAME, promoted_in_sync::check(&out.facts));
    check(linear_history::NAME, linear_history::check(&out.facts));
    check(
        one_acting_coordinator::NAME,
        one_acting_coordinator::check(&out.facts, &out.successions),
    );
    check(wal_before_data::NAME, wal_before_data::check(&out.facts));
    check(durable_claims::NAME, out.durable_claims.clone());
    check(failover_policy::NAME, out.failover_policy.clone());
    check(obeyed_epochs::NAME, out.obeyed_epochs.clone());
    check(wal_positions::NAME, out.wal_positions.clone());
    check(
        blocks_survive_power_loss::NAME,
        out.blocks_survive_power_loss.clone(),
    );
    check(
        identical_replicas::NAME,
        identical_replicas::check(&out.checksums, out.sim_time_ms),
    );
    if !out.activations.is_empty() {
        check(
            standby_catalog::NAME,
            standby_catalog::check_activations(&out.activations, &out.facts),
        );
    }
    if let Some((rows, epoch)) = &out.configuration_history {
        check(
            configuration_history::NAME,
            configuration_history::check(&out.catalog_lines, rows, *epoch),
        );
    }
    if let Some((log, _, judge)) = &out.intruder {
        check(
            strangers_change_nothing::NAME,
            judge.check(log, rows, &out.catalog_lines),
        );
    }
    if result.config.operator {
        result.checkers.push(converged::NAME);
    }
}

/// Clients live on 10.0.1.1, 10.0.1.2, ... (250 per /24, for the scaled clusters' hundreds).
/// Clients live in 10.0.1.0/24, and past 250 of them from 10.0.10.0 on: 10.0.2.1 is the
/// standby coordinator's host.
fn client_ip(i: u32) -> IpAddr {
    let block = match 1 + i / 250 {
        1 => 1,
        b => b + 8,
    };
    format!("10.0.{block}.{}", i % 250 + 1).parse().unwrap()
}

async fn simulate(seed: u64, cfg: RunConfig) -> SimOutput {
    let handle = madsim::runtime::Handle::current();
    let recorder = Recorder::default();
    let client_timeout = cfg.statement_timeout + Duration::from_secs(2);
    let intruder_plan = cfg
        .intruder
        .then(|| crate::intruder::plan(seed, cfg.fault_time))
        .flatten();
    let strangers = intruder_plan.as_ref().map(|_| {
        let judge = std::sync::Arc::new(
            invariants::strangers_change_nothing::StrangersChangeNothing::default(),
        );
        recorder.judge_with(judge.clone());
        judge
    });
    let (world, admin) = start_cluster(&handle, &cfg, seed, &recorder, client_timeout).await;
    let addrs = world.coordinator_addrs();

    let start_ms = now_ms();
    let stop_at_ms = start_ms + cfg.fault_time.as_millis() as u64;
    let history = History::default();
    let front_doors = world.front_door_addrs();
    let clients = start_clients(
        &handle,
        &cfg,
        seed,
        &addrs,
        &front_doors,
        client_timeout,
        stop_at_ms,
        &history,
    );
    let faults = schedule_of(&cfg, seed, &world);
    let with_standby = world.standby.is_some();
    let contents = world.contents();
    let segments = world.segments.clone();
    let agents: Vec<(String, String)> = world
        .hosts
        .keys()
        .filter_map(|h| crate::world::agents::agent_endpoint(h).map(|a| (h.clone(), a)))
        .collect();
    let hosts = SimHosts::new(world, &cfg);
    let watch = (cfg.operator && with_standby).then(|| (seed, addrs.clone(), stop_at_ms));
    let points = points::Points::start(&hosts, seed, start_ms, &faults, &segments);
    let intruder_log = std::sync::Arc::new(std::sync::Mutex::new(crate::intruder::Log::default()));
    let intruder = intruder_plan.map(|plan| {
        let rounds = plan.times_ms.len();
        let task = crate::intruder::start(
            &handle,
            plan,
            start_ms,
            crate::intruder::Targets {
                segments: segments.clone(),
                coordinators: addrs.clone(),
                agents,
                front_doors: if cfg.intruder_at_front_doors {
                    front_doors.clone()
                } else {
                    Vec::new()
                },
            },
            intruder_log.clone(),
        );
        (rounds, task)
    });
    let (mut host_events, operator, mut operator_actions) =
        fault_phase(&admin, &hosts, &faults, start_ms, client_timeout, watch).await;
    // Heal: everything the schedule left in force; then the clients finish their last
    // transactions.
    let mut healed_at_end = hosts.world.lock().unwrap().heal_all();
    for c in clients {
        let _ = c.await;
    }
    let intruder = match intruder {
        Some((rounds, task)) => {
            let _ = task.await;
            cluster::io::runtime::replays::keep_handshakes(false);
            let log = std::mem::take(&mut *intruder_log.lock().unwrap());
            strangers.map(|judge| (log, rounds, judge))
        }
        None => None,
    };
    // Liveness: the operator recovers and rebalances until the cluster has converged; then the
    // final read.
    let converged = if cfg.operator {
        let (verdict, actions) =
            operator_converges(&admin, &hosts, operator, &addrs, client_timeout, seed).await;
        operator_actions.extend(actions);
        verdict
    } else {
        Ok(())
    };
    // Fault points stay armed through the recovery (rewinds, base backups, reconnections are
    // theirs too); disarmed, whatever they left in force is healed before the final read.
    let point_log = points.map(points::Points::stop).unwrap_or_default();
    if !point_log.faults.is_empty() {
        healed_at_end.extend(hosts.world.lock().unwrap().heal_all());
        host_events.extend(point_log.host_events.iter().cloned());
        host_events.sort_by_key(|e| e.at_ms);
    }
    let reads = final_reads(&admin, &addrs, client_timeout, contents, cfg.heal_bound).await;
    let activations = std::mem::take(&mut hosts.world.lock().unwrap().activations);
    let successions = std::mem::take(&mut hosts.world.lock().unwrap().successions);
    let facts = recorder.facts();
    let out = SimOutput {
        cluster_events: crate::observer::milestones(&facts),
        catalog_lines: crate::observer::catalog_lines(&facts),
        facts,
        intruder,
        checksums: reads.checksums,
        faults,
        healed_at_end,
        point_log,
        converged,
        operator_actions,
        workload_started_ms: start_ms,
        host_events,
        segments,
        configuration_history: reads.configuration_history,
        activations,
        successions,
        durable_claims: judged::<invariants::durable_claims::DurableClaims>(&recorder),
        failover_policy: judged::<invariants::failover_policy::FailoverPolicy>(&recorder),
        obeyed_epochs: judged::<invariants::obeyed_epochs::ObeyedEpochs>(&recorder),
        wal_positions: judged::<invariants::wal_positions::WalPositions>(&recorder),
        blocks_survive_power_loss: judged::<
            invariants::blocks_survive_power_loss::BlocksSurvivePowerLoss,
        >(&recorder),
        history,
        final_rows: reads.rows,
        sim_time_ms: now_ms(),
        messages: madsim::net::NetSim::current().stat().msg_count,
    };
    release_every_task(&handle).await;
    out
}

/// The fault phase: the schedule carried out on `hosts`; meanwhile, when `watch` is given (a
/// run with a standby: its seed, the coordinator addresses, when faults stop), the operator
/// watches the coordinator pair. Returns the host crashes and restarts, and the operator with
/// what it remembers and what it did.
async fn fault_phase(
    admin: &madsim::runtime::NodeHandle,
    hosts: &SimHosts,
    faults: &[ScheduledFault],
    start_ms: u64,
    client_timeout: Duration,
    watch: Option<(u64, Vec<String>, u64)>,
) -> (
    Vec<HostEvent>,
    crate::operator::Operator,
    Vec<OperatorAction>,
) {
    let watch = watch.map(|(seed, addrs, stop_at_ms)| {
        admin.spawn(crate::operator::standby::watch(
            hosts.clone(),
            addrs,
            client_timeout,
            stop_at_ms,
            stream(seed, "operator-watch"),
        ))
    });
    let host_events = run_schedule(hosts, faults, start_ms).await;
    let (operator, actions) = match watch {
        Some(w) => w.await.expect("watch task"),
        None => (crate::operator::Operator::new(), Vec::new()),
    };
    (host_events, operator, actions)
}

/// What the continuous checker of type `J` found, if it judged this run.
fn judged<J: crate::observer::Judge + invariants::Judged>(recorder: &Recorder) -> Vec<Violation> {
    recorder
        .judge::<J>()
        .map(|j| j.violations())
        .unwrap_or_default()
}

/// Registers the checkers that judge each fact the moment it is reported.
fn judge_as_the_run_goes(cfg: &RunConfig, world: &World, recorder: &Recorder) {
    recorder.judge_with(std::sync::Arc::new(
        invariants::durable_claims::DurableClaims::new(
            world.dirs.clone(),
            invariants::durable_claims::Catalog::initial(&world.segments),
            cfg.replication == cluster::segment::ReplicationMode::Sync,
        ),
    ));
    recorder.judge_with(std::sync::Arc::new(
        invariants::failover_policy::FailoverPolicy::new(cfg.probe.clone()),
    ));
    recorder.judge_with(std::sync::Arc::new(
        invariants::obeyed_epochs::ObeyedEpochs::default(),
    ));
    recorder.judge_with(std::sync::Arc::new(
        invariants::wal_positions::WalPositions::new(world.dirs.clone()),
    ));
    recorder.judge_with(std::sync::Arc::new(
        invariants::blocks_survive_power_loss::BlocksSurvivePowerLoss::new(world.damage.clone()),
    ));
}

/// Builds the world and the admin host, creates the tables, and adds the standby coordinator
/// when the run places one, as an administrator adds one to a running cluster.
async fn start_cluster(
    handle: &madsim::runtime::Handle,
    cfg: &RunConfig,
    seed: u64,
    recorder: &Recorder,
    client_timeout: Duration,
) -> (World, madsim::runtime::NodeHandle) {
    let world = World::build_observed(cfg, stream(seed, "disk").into_seed_u64(), recorder.hook());
    if cfg.continuous_checks {
        judge_as_the_run_goes(cfg, &world, recorder);
    }
    let coordinator = world.coordinator_addr.clone();
    let admin = handle.create_node().name("admin").ip(client_ip(0)).build();
    crate::world::credentials::enroll(&admin, cluster::io::auth::PeerIdentity::Admin);
    let setup = admin.spawn(async move { create_tables(coordinator, client_timeout).await });
    if let Err(e) = setup.await.expect("setup task") {
        panic!("cluster never came up: {e}");
    }
    if world.standby.is_some() {
        let init = world.init_standby(&admin, false, Duration::from_secs(30));
        if let Err(e) = init.await {
            panic!("init-standby -s {}: {e}", crate::world::STANDBY_HOST);
        }
    }
    (world, admin)
}

/// Starts the clients, each on a host of its own (`10.0.1.2` on) with its own random stream,
/// until `stop_at_ms`. The seed procedures start theirs this way too. Where there are several,
/// the first speaks PostgreSQL's wire protocol through a real driver to the front doors
/// (`front_doors`), the others the cluster's own frames.
#[allow(clippy::too_many_arguments)]
pub fn start_clients(
    handle: &madsim::runtime::Handle,
    cfg: &RunConfig,
    seed: u64,
    addrs: &[String],
    front_doors: &[String],
    timeout: Duration,
    stop_at_ms: u64,
    history: &History,
) -> Vec<madsim::task::JoinHandle<()>> {
    let mut clients = Vec::new();
    for c in 1..=cfg.clients {
        let node = handle
            .create_node()
            .name(format!("client-{c}"))
            .ip(client_ip(c))
            .build();
        crate::world::credentials::enroll(&node, cluster::io::auth::PeerIdentity::Client);
        let spec = workload::ClientSpec {
            id: c,
            coordinators: addrs.to_vec(),
            timeout,
            workload: cfg.workload.clone(),
            contents: cfg.contents,
            stop_at_ms,
            front_doors: (c == 1 && cfg.clients > 1).then(|| front_doors.to_vec()),
            cancels: cfg.client_cancels,
            ensures_schema: cfg.client_ensures_schema,
        };
        let rng = stream(seed, &format!("client-{c}"));
        clients.push(node.spawn(workload::run_client(spec, rng, history.clone())));
    }
    clients
}

/// The run's fault schedule: the one it was given, or drawn from the seed's nemesis stream.
fn schedule_of(cfg: &RunConfig, seed: u64, world: &World) -> Vec<ScheduledFault> {
    match &cfg.schedule {
        Some(schedule) => schedule.clone(),
        None => {
            let layout = nemesis::Layout {
                segment_hosts: world.segment_host_names(),
                segments: &world.segments,
            };
            nemesis::plan(&mut stream(seed, "nemesis"), &cfg.plan_settings(), &layout)
        }
    }
}

/// What the run reads back once it healed: every row, and when that succeeded, each pair's
/// checksums and the configuration history.
struct FinalReads {
    rows: Result<BTreeMap<(String, Key), Value>, String>,
    checksums: Vec<invariants::identical_replicas::PairChecksums>,
    configuration_history: Option<(Vec<cluster::model::catalog::HistoryRow>, u64)>,
}

async fn final_reads(
    admin: &madsim::runtime::NodeHandle,
    addrs: &[String],
    timeout: Duration,
    contents: Vec<i16>,
    bound: Duration,
) -> FinalReads {
    let read = admin.spawn(read_everything_at(addrs.to_vec(), timeout, contents, bound));
    let rows = read.await.expect("read task");
    let checksums = if rows.is_ok() {
        admin
            .spawn(pair_checksums_at(addrs.to_vec(), timeout))
            .await
            .expect("checksum task")
    } else {
        Vec::new()
    };
    let configuration_history = if rows.is_ok() {
        let addrs = addrs.to_vec();
        admin
            .spawn(async move {
                Client::new(addrs, timeout)
                    .configuration_history()
                    .await
                    .ok()
            })
            .await
            .expect("history task")
    } else {
        None
    };
    FinalReads {
        rows,
        checksums,
        configuration_history,
    }
}

/// Drops every task of the world. madsim keeps a task that is still pending when its runtime is
/// dropped (the task holds its own waker), and with it everything the task holds: disks, WAL
/// buffers, connections; about 4.7 MB a world, which one process running thousands of seeds
/// cannot afford. Killing a node wakes its tasks, and the executor drops them on its next turn.
pub(crate) async fn release_every_task(handle: &madsim::runtime::Handle) {
    for name in handle.metrics().num_tasks_by_node().keys() {
        handle.kill(name.as_str());
    }
    madsim::time::sleep(Duration::from_millis(1)).await;
    debug_assert_eq!(
        handle.metrics().num_tasks(),
        0,
        "tasks outlived their killed nodes: {}",
        handle.metrics().num_tasks_by_node_by_spawn()
    );
}

/// Carries out the schedule at its times; returns the host crashes and restarts among it.
async fn run_schedule(
    world: &crate::operator::harness::SimHosts,
    faults: &[ScheduledFault],
    start_ms: u64,
) -> Vec<HostEvent> {
    let mut host_events = Vec::new();
    for f in faults {
        let at = start_ms + f.at_ms;
        let now = now_ms();
        if at > now {
            madsim::time::sleep(Duration::from_millis(at - now)).await;
        }
        trace::hash_fact(&format!("fault {:?} at {}", f.fault, now_ms()));
        world.world.lock().unwrap().apply(&f.fault);
        let host_event = match &f.fault {
            Fault::HostCrash { host } | Fault::TornWrite { host } | Fault::TornGarbage { host } => {
                Some((host, true))
            }
            Fault::HostRestart { host } => Some((host, false)),
            _ => None,
        };
        if let Some((host, crash)) = host_event {
            host_events.push(HostEvent {
                at_ms: now_ms(),
                host: host.clone(),
                crash,
            });
        }
    }
    host_events
}

/// The liveness phase on the admin node: the operator recovers and rebalances until the
/// cluster has converged, within the run's heal bound.
async fn operator_converges(
    admin: &madsim::runtime::NodeHandle,
    hosts: &SimHosts,
    operator: crate::operator::Operator,
    addrs: &[String],
    client_timeout: Duration,
    seed: u64,
) -> (Result<(), String>, Vec<OperatorAction>) {
    let bound = hosts.cfg.heal_bound;
    let converging = converge(
        hosts.clone(),
        operator,
        addrs.to_vec(),
        client_timeout,
        bound,
        stream(seed, "operator"),
    );
    admin.spawn(converging).await.expect("converge task")
}

/// Lets the operator agent act, each time after a seeded delay of 0.5 to 3 s (an administrator
/// is not instant), until the cluster meets [`invariants::converged::requirement`] (and, with
/// a standby host, [`invariants::converged::coordinator_requirement`]), up to `bound`; returns
/// the verdict and what the operator did.
async fn converge(
    hosts: crate::operator::harness::SimHosts,
    mut operator: crate::operator::Operator,
    addrs: Vec<String>,
    timeout: Duration,
    bound: Duration,
    mut rng: ChaCha8Rng,
) -> (Result<(), String>, Vec<OperatorAction>) {
    use rand_chacha::rand_core::Rng;
    let deadline = now_ms() + bound.as_millis() as u64;
    let with_standby = addrs.len() > 1;
    let mut client = Client::new(addrs, timeout);
    operator.faults_running = false;
    let mut actions = Vec::new();
    loop {
        let last = match client.catalog().await {
            Ok(catalog) => match invariants::converged::requirement(&catalog) {
                Ok(()) if !with_standby => return (Ok(()), actions),
                Ok(()) => {
                    let status = cluster::standby::admin::mirroring_status(&mut client).await;
                    match invariants::converged::coordinator_requirement(&catalog, status) {
                        Ok(()) => return (Ok(()), actions),
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            },
            Err(e) => e.to_string(),
        };
        if now_ms() >= deadline {
            return (Err(last), actions);
        }
        madsim::time::sleep(Duration::from_millis(500 + rng.next_u64() % 2500)).await;
        let at_ms = now_ms();
        let left = Duration::from_millis(deadline.saturating_sub(at_ms).max(1));
        match madsim::time::timeout(left, operator.act(&mut client, &hosts)).await {
            Ok(Some((action, outcome))) => {
                actions.push(OperatorAction::new(at_ms, &action, outcome))
            }
            Ok(None) => {}
            Err(_) => {
                return (
                    Err(format!(
                        "the operator's last action outlasted the bound ({last})"
                    )),
                    actions,
                )
            }
        }
    }
}

/// For every pair the catalog shows in sync, the primary's and the mirror's checksums, taken
/// once the mirror has replayed up to the primary's flushed WAL (the cluster is idle by now;
/// pairs that do not get there within a few seconds are left out).
pub async fn pair_checksums(
    coordinator: String,
    timeout: Duration,
) -> Vec<invariants::identical_replicas::PairChecksums> {
    pair_checksums_at(vec![coordinator], timeout).await
}

/// [`pair_checksums`], through whichever of the coordinator addresses `addrs` is active.
pub async fn pair_checksums_at(
    addrs: Vec<String>,
    timeout: Duration,
) -> Vec<invariants::identical_replicas::PairChecksums> {
    use cluster::io::net::Connection;
    use cluster::model::catalog::Mode;
    use cluster::wire::{SegmentRequest, SegmentResponse};
    async fn checksum(addr: &str) -> Option<(u64, u64)> {
        let mut conn = Connection::connect(addr, Duration::from_secs(1))
            .await
            .ok()?;
        match conn
            .call(&SegmentRequest::Checksum, Duration::from_secs(5))
            .await
            .ok()?
        {
            SegmentResponse::Checksum { lsn, digest } => Some((lsn, digest)),
            _ => None,
        }
    }
    let mut client = Client::new(addrs, timeout);
    let Ok(catalog) = client.catalog().await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pair in catalog.pairs() {
        let Some(mirror) = pair.mirror.filter(|m| m.mode == Mode::Synced) else {
            continue;
        };
        for _ in 0..50 {
            let (Some(p), Some(m)) = (
                checksum(&pair.primary.endpoint()).await,
                checksum(&mirror.endpoint()).await,
            ) else {
                break;
            };
            if p.0 == m.0 {
                out.push(invariants::identical_replicas::PairChecksums {
                    content: pair.content,
                    primary: (pair.primary.dbid, p.0, p.1),
                    mirror: (mirror.dbid, m.0, m.1),
                });
                break;
            }
            madsim::time::sleep(Duration::from_millis(100)).await;
        }
    }
    out
}

trait IntoSeed {
    fn into_seed_u64(self) -> u64;
}

impl IntoSeed for ChaCha8Rng {
    fn into_seed_u64(mut self) -> u64 {
        rand_chacha::rand_core::Rng::next_u64(&mut self)
    }
}

pub async fn create_tables(coordinator: String, timeout: Duration) -> Result<(), String> {
    let mut client = Client::new(vec![coordinator], timeout);
    let mut last = String::new();
    for _ in 0..60 {
        let mut ok = true;
        for (name, kind) in TABLES {
            let sql = workload::create_table_sql(name, *kind);
            if let Err(e) = client.sql(&sql, false).await {
                last = e.to_string();
                ok = false;
                break;
            }
        }
        if ok {
            return Ok(());
        }
        madsim::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last)
}

/// Reads every row of every table on every content, retrying until `bound` passes.
pub async fn read_everything(
    coordinator: String,
    timeout: Duration,
    contents: Vec<i16>,
    bound: Duration,
) -> Result<BTreeMap<(String, Key), Value>, String> {
    read_everything_at(vec![coordinator], timeout, contents, bound).await
}

/// [`read_everything`], through whichever of the coordinator addresses `addrs` is active.
pub async fn read_everything_at(
    addrs: Vec<String>,
    timeout: Duration,
    contents: Vec<i16>,
    bound: Duration,
) -> Result<BTreeMap<(String, Key), Value>, String> {
    let deadline = now_ms() + bound.as_millis() as u64;
    let mut client = Client::new(addrs, timeout);
    let mut last = String::new();
    // Converged first: every distributed transaction decided before the heal is carried out on
    // every content (a read earlier could see one in the middle of its second phase).
    loop {
        match client.distributed_log().await {
            Ok(log) if log.is_empty() => break,
            Ok(log) => last = format!("{} distributed transactions still in doubt", log.len()),
            Err(e) => last = e.to_string(),
        }
        if now_ms() >= deadline {
            return Err(last);
        }
        madsim::time::sleep(Duration::from_millis(500)).await;
    }
    while now_ms() < deadline {
        let attempt = async {
            let mut rows = BTreeMap::new();
            for (table, _) in TABLES {
                for content in &contents {
                    client.begin().await?;
                    match client.scan(table, *content).await {
                        Ok(found) => {
                            for (key, value) in found {
                                rows.insert((table.to_string(), key), value);
                            }
                            client.commit().await?;
                        }
                        // The content answers but no longer knows a table whose creation the
                        // cluster acknowledged (an instance that started anew on an empty
                        // directory): every row it held is gone, which no-lost-commits then
                        // judges, rather than a read that never succeeds.
                        Err(cluster::wire::DbError::Failed(e))
                            if e.contains(&format!("relation \"{table}\" does not exist")) =>
                        {
                            tracing::warn!(table, content, "the final read finds the table gone");
                            client.abort().await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok::<_, cluster::wire::DbError>(rows)
        };
        match attempt.await {
            Ok(rows) => return Ok(rows),
            Err(e) => last = e.to_string(),
        }
        madsim::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last)
}
