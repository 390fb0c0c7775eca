//! A run's configuration: the cluster, its settings, the workload and the fault mix. Derived
//! from the run options alone (never from the clock), printed first in every result.

use std::time::Duration;

use serde::Serialize;

use cluster::bugs::PlantedBugs;
use cluster::fts::prober::ProbeSettings;
use cluster::layout::Layout;
use cluster::segment::ReplicationMode;

use crate::nemesis::FaultWeights;

#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    pub scenario: String,
    pub segment_hosts: usize,
    /// Number of contents. Group layout, as `gpinitsystem` lays it out: the primaries are spread
    /// evenly over the segment hosts in content order (`sdw1` holds the first ones), and every
    /// mirror of host `i`'s primaries sits on host `i + 1` (mod the number of hosts).
    pub contents: usize,
    /// Where mirrors go (group, spread or block); see `cluster::layout`.
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
    pub statement_timeout: Duration,
    pub clients: u32,
    pub workload: Workload,
    /// Faults are injected during this much simulated time.
    pub fault_time: Duration,
    /// Mean simulated time between the starts of two faults.
    pub fault_every_mean: Duration,
    /// Relative weights of the fault kinds (`nemesis::KINDS`); 0 switches a kind off.
    pub fault_weights: FaultWeights,
    /// Percentage of seeds whose schedule is drawn to leave the cluster available throughout
    /// (`nemesis::Label::MustStayAvailable`); the others may take it down, never lose data.
    pub available_share: u32,
    /// A fault heals after a time drawn from this range (a partition or a paused instance: up to
    /// `partition_max`).
    pub downtime_min: Duration,
    pub downtime_max: Duration,
    pub partition_max: Duration,
    /// After healing, the cluster must serve a full read within this bound.
    pub heal_bound: Duration,
    pub bugs: PlantedBugs,
    /// Place a standby coordinator on its own host `smdw` (not started until `init-standby`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
    /// What a swarm scenario drew for the seed (set by `crate::swarm::derive`).
    #[serde(skip)]
    pub swarm: Option<crate::swarm::SwarmOptions>,
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
            probe: crate::world::sim_probe_settings(),
            mirror_down_grace_period: Duration::from_secs(3),
            wal_timeout: Duration::from_secs(3),
            checkpoint_interval: Duration::from_secs(5),
            cache_blocks_max: 16,
            fsync_latency_min: Duration::from_micros(200),
            fsync_latency_max: Duration::from_millis(3),
            statement_timeout: Duration::from_secs(5),
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
            bugs: PlantedBugs::none(),
            standby: false,
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

    /// The standard cluster (DESIGN section 7): coordinator `mdw`, 4 segment hosts with 2
    /// primaries each (8 contents), group mirroring, 8 clients running the mixed workload, host
    /// crashes for 60 simulated seconds.
    pub fn standard() -> RunConfig {
        RunConfig {
            scenario: "standard".into(),
            segment_hosts: 4,
            contents: 8,
            clients: 8,
            workload: Workload::mixed(),
            fault_time: Duration::from_secs(60),
            fault_every_mean: Duration::from_secs(6),
            fault_weights: FaultWeights::full(),
            available_share: 50,
            ..RunConfig::pair()
        }
    }

    /// Swarm testing: each seed draws its own cluster (2 to 5 segment hosts, 1 to 3 primaries
    /// per host, mirrors on or off), probe settings, cache size and fault mix (see
    /// `crate::swarm`); synchronous replication, the mixed workload, 60 simulated seconds.
    pub fn swarm() -> RunConfig {
        RunConfig {
            scenario: "swarm".into(),
            ..RunConfig::standard()
        }
    }

    pub fn by_name(name: &str) -> Option<RunConfig> {
        match name {
            "standard" => Some(RunConfig::standard()),
            "swarm" => Some(RunConfig::swarm()),
            "pair" => Some(RunConfig::pair()),
            "async-pair" => Some(RunConfig::async_pair()),
            _ => None,
        }
    }

    /// Known scenarios; the first is the default.
    pub const SCENARIOS: &'static [&'static str] = &["standard", "pair", "async-pair", "swarm"];

    /// Primaries per segment host (the last host may hold fewer).
    pub fn primaries_per_host(&self) -> usize {
        self.contents.div_ceil(self.segment_hosts).max(1)
    }
}
