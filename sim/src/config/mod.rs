//! A run's configuration: the cluster, its settings, the workload and the fault mix. Derived
//! from the run options alone (never from the clock), printed first in every result.
//!
//! A swarm scenario draws each seed's configuration in [`swarm`].

pub mod disk_speed;
pub mod swarm;

use std::time::Duration;

use serde::Serialize;

use cluster::coordinator::prober::ProbeSettings;
use cluster::model::bugs::PlantedBugs;
use cluster::model::layout::Layout;
use cluster::segment::ReplicationMode;

use crate::nemesis::{self, FaultKind, FaultWeights};
use disk_speed::DiskSpeed;

#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    pub scenario: String,
    pub segment_hosts: usize,
    /// Number of contents. Group layout, as `gpinitsystem` lays it out: the primaries are spread
    /// evenly over the segment hosts in content order (`sdw1` holds the first ones), and every
    /// mirror of host `i`'s primaries sits on host `i + 1` (mod the number of hosts).
    pub contents: usize,
    /// Where mirrors go (group, spread or block); see `cluster::model::layout`.
    pub layout: Layout,
    pub mirrors: bool,
    pub replication: ReplicationMode,
    pub probe: ProbeSettings,
    pub mirror_down_grace_period: Duration,
    pub wal_timeout: Duration,
    pub checkpoint_interval: Duration,
    pub cache_blocks_max: usize,
    pub fsync_latency_min: Duration,
    pub fsync_latency_max: Duration,
    /// The kinds of disk each host draws one from, per seed (`disk_speed`): its fsync
    /// latency and the device time its reads and writes take. Empty: every disk has the fixed
    /// fsync latency above and reads and writes take no time.
    pub disk_speeds: Vec<DiskSpeed>,
    pub statement_timeout: Duration,
    pub clients: u32,
    pub workload: Workload,
    /// Faults are injected during this much simulated time.
    pub fault_time: Duration,
    /// Mean simulated time between the starts of two faults.
    pub fault_every_mean: Duration,
    /// Relative weights of the fault kinds (`nemesis::FaultKind`); 0 switches a kind off.
    pub fault_weights: FaultWeights,
    /// Percentage of seeds whose schedule is drawn to leave the cluster available throughout
    /// (`nemesis::Label::MustStayAvailable`); the others may take it down, never lose data.
    pub available_share: u32,
    /// A fault heals after a time drawn from this range (a partition or a paused instance: up to
    /// `partition_max`).
    pub downtime_min: Duration,
    pub downtime_max: Duration,
    pub partition_max: Duration,
    /// After healing, the cluster must converge and serve a full read within this bound.
    pub heal_bound: Duration,
    /// Once every fault healed, the operator agent recovers and rebalances, and the cluster
    /// must end Synchronized in its preferred roles (`invariants::converged`). Off: the run
    /// only waits for the prober's own rejoins before the final read.
    pub operator: bool,
    pub bugs: PlantedBugs,
    /// Arm fault points (`cluster::io::points`): per seed, a few of the protocol's own moments
    /// are drawn to crash, stall, delay or drop right there (see `nemesis::points`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fault_points: bool,
    /// Judge the cluster's claims as the run goes (`durable-claims`, `wal-positions`,
    /// `failover-policy`, `obeyed-epochs`). Off only to measure what they cost: judging only
    /// reads, so a run is the same either way, less those four checkers' verdicts.
    #[serde(skip_serializing_if = "std::clone::Clone::clone")]
    pub continuous_checks: bool,
    /// Arm the intruder (`crate::intruder`): in one seed of two, a stranger attacks every
    /// listening port during the fault phase. Off (`--no-intruder`) to measure what it costs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub intruder: bool,
    /// The driver client (PostgreSQL's wire protocol) sends a cancel request for one statement
    /// in four, after a drawn delay: it races the statement, and may land on the next one or
    /// on a COMMIT. What a cancel stopped (57014) is recorded failed, and held to it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub client_cancels: bool,
    /// The intruder (where it is armed) attacks the coordinators' SQL ports too: a driver's
    /// login as the user the clients' network is trusted as, random bytes, a huge frame.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub intruder_at_front_doors: bool,
    /// The driver client, as an application that ensures its schema, sends `CREATE TABLE IF
    /// NOT EXISTS` for every table on each connection it makes (after a failover too, with the
    /// tables full).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub client_ensures_schema: bool,
    /// Place a standby coordinator on its own host `smdw` (not started until `init-standby`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
    /// What a swarm scenario drew for the seed (set by `swarm::derive`).
    #[serde(skip)]
    pub swarm: Option<swarm::SwarmOptions>,
    /// A fault schedule to carry out instead of drawing one from the seed (`hasim replay
    /// --schedule`).
    #[serde(skip)]
    pub schedule: Option<Vec<crate::nemesis::ScheduledFault>>,
}

/// What the clients run: relative weights of the kinds of work, drawn per transaction (write,
/// read, scan) and, inside a write transaction, per statement (insert, update, delete). A kind
/// with weight 0 never runs; where only one kind is possible nothing is drawn.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    /// Insert a new row (a key no transaction used before).
    pub insert: u32,
    /// Update one of the client's own rows whose last write it saw committed.
    pub update: u32,
    /// Delete one of the client's own rows whose last write it saw committed.
    pub delete: u32,
    /// A read-only transaction: one single-key read of a row any client wrote.
    pub read: u32,
    /// A read-only transaction: every row of a table on one content.
    pub scan: u32,
    /// Statements per write transaction: 1 to this many.
    pub statements_max: u32,
    /// Let one transaction's statements route to several contents (committed by two-phase
    /// commit). Off: each transaction draws one content and picks only keys that hash to it.
    pub multi_content_txns: bool,
}

impl Workload {
    /// Inserts only, 1 to 3 rows per transaction.
    pub fn inserts() -> Workload {
        Workload {
            insert: 1,
            update: 0,
            delete: 0,
            read: 0,
            scan: 0,
            statements_max: 3,
            multi_content_txns: false,
        }
    }

    /// Inserts, updates and deletes of the client's own committed rows, single-key reads and
    /// scans.
    pub fn mixed() -> Workload {
        Workload {
            insert: 40,
            update: 30,
            delete: 10,
            read: 15,
            scan: 5,
            statements_max: 3,
            multi_content_txns: true,
        }
    }
}

impl RunConfig {
    /// What the nemesis' planner reads of this configuration.
    pub fn plan_settings(&self) -> nemesis::Settings {
        nemesis::Settings {
            fault_weights: self.fault_weights.clone(),
            fault_every_mean: self.fault_every_mean,
            fault_time: self.fault_time,
            downtime_min: self.downtime_min,
            downtime_max: self.downtime_max,
            partition_max: self.partition_max,
            available_share: self.available_share,
            detection_window: nemesis::detection_window(
                &self.probe,
                self.wal_timeout,
                self.mirror_down_grace_period,
            ),
            mirrors: self.mirrors,
            standby: self.standby,
        }
    }

    /// One mirrored segment: coordinator `mdw`, primary on `sdw1`, mirror on `sdw2`; clients
    /// insert; hosts crash for 30 simulated seconds.
    pub fn pair() -> RunConfig {
        RunConfig {
            scenario: "pair".into(),
            segment_hosts: 2,
            contents: 1,
            layout: Layout::Group,
            mirrors: true,
            replication: ReplicationMode::Sync,
            probe: sim_probe_settings(),
            mirror_down_grace_period: Duration::from_secs(3),
            wal_timeout: Duration::from_secs(3),
            checkpoint_interval: Duration::from_secs(5),
            cache_blocks_max: 16,
            fsync_latency_min: Duration::from_micros(200),
            fsync_latency_max: Duration::from_millis(3),
            disk_speeds: DiskSpeed::ALL.to_vec(),
            statement_timeout: Duration::from_secs(10),
            clients: 3,
            workload: Workload::inserts(),
            fault_time: Duration::from_secs(30),
            fault_every_mean: Duration::from_secs(6),
            fault_weights: FaultWeights::host_crashes(),
            available_share: 0,
            downtime_min: Duration::from_millis(500),
            downtime_max: Duration::from_secs(8),
            partition_max: Duration::from_secs(20),
            heal_bound: Duration::from_secs(60),
            operator: true,
            bugs: PlantedBugs::none(),
            standby: false,
            fault_points: false,
            continuous_checks: true,
            intruder: false,
            client_cancels: false,
            intruder_at_front_doors: false,
            client_ensures_schema: false,
            swarm: None,
            schedule: None,
        }
    }

    /// The pair with asynchronous replication: the primary acknowledges a commit once its own
    /// WAL is flushed. Seed 004 warns that a failover may then lose acknowledged commits.
    pub fn async_pair() -> RunConfig {
        RunConfig {
            scenario: "async-pair".into(),
            replication: ReplicationMode::Async,
            ..RunConfig::pair()
        }
    }

    /// The standard cluster (DESIGN section 7): coordinator `mdw` with a standby on `smdw`
    /// (`init-standby -s smdw` at start-up), 4 segment hosts with 2 primaries each (8
    /// contents), group mirroring, 8 clients running the mixed workload, the full fault
    /// catalogue for 60 simulated seconds, and fault points armed.
    pub fn standard() -> RunConfig {
        RunConfig {
            scenario: "standard".into(),
            standby: true,
            segment_hosts: 4,
            contents: 8,
            clients: 8,
            workload: Workload::mixed(),
            fault_time: Duration::from_secs(60),
            fault_every_mean: Duration::from_secs(6),
            fault_weights: FaultWeights::full(),
            available_share: 50,
            fault_points: true,
            continuous_checks: true,
            intruder: true,
            ..RunConfig::pair()
        }
    }

    /// The standard cluster on slow disks (a busy spinning disk, every fsync 5 to 40 ms, or a
    /// throttled cloud volume, drawn per host) with a buffer cache of 1 block per instance: dirty blocks are written back under load
    /// while commits wait for their WAL flush, so the WAL-before-data rule is at work. No
    /// standby coordinator: the scenario is about the segments' disks.
    pub fn slow_disk() -> RunConfig {
        RunConfig {
            scenario: "slow-disk".into(),
            standby: false,
            clients: 32,
            cache_blocks_max: 1,
            fsync_latency_min: Duration::from_millis(5),
            fsync_latency_max: Duration::from_millis(40),
            fault_points: false,
            continuous_checks: true,
            intruder: false,
            disk_speeds: DiskSpeed::SLOW.to_vec(),
            ..RunConfig::standard()
        }
    }

    /// The standard cluster where hung instances are the commonest fault: `instance-pause`
    /// weighs as much as every other kind together, and most seeds draw schedules that must
    /// leave the cluster available, so that a paused acting primary is judged against the
    /// availability checker's failover bound (clients must see the failover, not their
    /// statement timeout).
    pub fn pauses() -> RunConfig {
        let mut fault_weights = FaultWeights::full();
        let others: u32 = (fault_weights.0.iter())
            .filter(|(kind, _)| **kind != FaultKind::InstancePause)
            .map(|(_, w)| *w)
            .sum();
        fault_weights.set(FaultKind::InstancePause, others);
        RunConfig {
            scenario: "pauses".into(),
            fault_weights,
            available_share: 80,
            fault_points: false,
            continuous_checks: true,
            intruder: false,
            ..RunConfig::standard()
        }
    }

    /// The standard cluster with the SQL front door under attack from both sides: the driver
    /// client cancels statements as an impatient application does (see
    /// [`RunConfig::client_cancels`]) and ensures its schema on every connection
    /// ([`RunConfig::client_ensures_schema`]), and the intruder, where armed, tries the SQL ports too
    /// ([`RunConfig::intruder_at_front_doors`]).
    pub fn front_door() -> RunConfig {
        RunConfig {
            scenario: "front-door".into(),
            client_cancels: true,
            intruder_at_front_doors: true,
            client_ensures_schema: true,
            ..RunConfig::standard()
        }
    }

    /// Swarm testing: each seed draws its own cluster (2 to 5 segment hosts, 1 to 3 primaries
    /// per host, mirrors on or off, a standby coordinator or not), probe settings, cache size
    /// and fault mix (see
    /// `swarm`); synchronous replication, the mixed workload, 60 simulated seconds.
    pub fn swarm() -> RunConfig {
        RunConfig {
            scenario: "swarm".into(),
            ..RunConfig::standard()
        }
    }

    /// Sizes of the scaled clusters, in segments (contents).
    pub const SCALED: &'static [usize] = &[8, 64, 256];

    /// The standard cluster grown to `segments` contents for `hasim bench --scaling`: 4 × 2,
    /// 16 × 4 or 32 × 8 hosts × primaries, group mirroring, one client per content, 20 simulated
    /// seconds of faults (shorter than the standard's 60, so the largest stays affordable), and
    /// the standard's fault rate per host (so more hosts see more faults in all).
    pub fn scaled(segments: usize) -> RunConfig {
        let (hosts, _per_host) = match segments {
            8 => (4, 2),
            64 => (16, 4),
            256 => (32, 8),
            other => panic!("no scaled cluster of {other} segments"),
        };
        let standard = RunConfig::standard();
        let per_host_crash_every = standard.fault_every_mean * standard.segment_hosts as u32;
        RunConfig {
            scenario: format!("scaled-{segments}"),
            segment_hosts: hosts,
            contents: segments,
            clients: segments as u32,
            fault_time: Duration::from_secs(20),
            fault_every_mean: per_host_crash_every / hosts as u32,
            fault_points: false,
            continuous_checks: true,
            intruder: false,
            ..standard
        }
    }

    pub fn by_name(name: &str) -> Option<RunConfig> {
        match name {
            "scaled-8" => Some(RunConfig::scaled(8)),
            "scaled-64" => Some(RunConfig::scaled(64)),
            "scaled-256" => Some(RunConfig::scaled(256)),
            "standard" => Some(RunConfig::standard()),
            "slow-disk" => Some(RunConfig::slow_disk()),
            "pauses" => Some(RunConfig::pauses()),
            "front-door" => Some(RunConfig::front_door()),
            "swarm" => Some(RunConfig::swarm()),
            "pair" => Some(RunConfig::pair()),
            "async-pair" => Some(RunConfig::async_pair()),
            _ => None,
        }
    }

    /// Known scenarios; the first is the default.
    pub const SCENARIOS: &'static [&'static str] = &[
        "standard",
        "pair",
        "async-pair",
        "swarm",
        "slow-disk",
        "pauses",
        "front-door",
        "scaled-8",
        "scaled-64",
        "scaled-256",
    ];

    /// Primaries per segment host (the last host may hold fewer).
    pub fn primaries_per_host(&self) -> usize {
        self.contents.div_ceil(self.segment_hosts).max(1)
    }
}

/// Settings the world is built with that a run's configuration does not vary (yet).
pub fn sim_probe_settings() -> ProbeSettings {
    ProbeSettings {
        probe_interval: Duration::from_secs(2),
        probe_timeout: Duration::from_secs(1),
        probe_retries: 2,
        retry_gap: Duration::from_millis(500),
        starting_probes_max: 5,
    }
}
