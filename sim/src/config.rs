//! A run's configuration: the cluster, its settings, the workload and the fault mix. Derived
//! from the run options alone (never from the clock), printed first in every result.

use std::time::Duration;

use serde::Serialize;

use cluster::bugs::PlantedBugs;
use cluster::fts::prober::ProbeSettings;
use cluster::segment::ReplicationMode;

#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    pub scenario: String,
    pub segment_hosts: usize,
    /// Number of contents; content `c`'s primary sits on segment host `c % segment_hosts`
    /// and its mirror on the next host.
    pub contents: usize,
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
    /// Faults are injected during this much simulated time.
    pub fault_time: Duration,
    /// Mean simulated time between two host crashes.
    pub crash_every_mean: Duration,
    /// A crashed host comes back after a time drawn from this range.
    pub downtime_min: Duration,
    pub downtime_max: Duration,
    /// After healing, the cluster must serve a full read within this bound.
    pub heal_bound: Duration,
    pub bugs: PlantedBugs,
}

impl RunConfig {
    /// One mirrored segment: coordinator `mdw`, primary on `sdw1`, mirror on `sdw2`.
    pub fn pair() -> RunConfig {
        RunConfig {
            scenario: "pair".into(),
            segment_hosts: 2,
            contents: 1,
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
            fault_time: Duration::from_secs(30),
            crash_every_mean: Duration::from_secs(6),
            downtime_min: Duration::from_millis(500),
            downtime_max: Duration::from_secs(8),
            heal_bound: Duration::from_secs(60),
            bugs: PlantedBugs::none(),
        }
    }

    pub fn by_name(name: &str) -> Option<RunConfig> {
        match name {
            "pair" => Some(RunConfig::pair()),
            _ => None,
        }
    }

    pub const SCENARIOS: &'static [&'static str] = &["pair"];
}
