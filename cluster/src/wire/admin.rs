//! The administration verbs the coordinator carries out (`recoverseg`, `add-mirrors`,
//! `move-mirrors`, `state`) and what it reports back.

use serde::{Deserialize, Serialize};

use super::standby::{MirroringStatus, PassiveStatus};
use crate::model::catalog::{Catalog, Content, Dbid, HistoryRow, Role, SegmentConfig};
use crate::model::data::Lsn;

/// What an instance reports after a rejoin (incremental or full recovery).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejoinReport {
    /// Where this instance's WAL and the acting primary's part ways; it was cut here.
    pub divergence_lsn: Lsn,
    /// WAL bytes this instance held past the divergence point (discarded).
    pub discarded_bytes: u64,
    /// Bytes fetched from the acting primary to find the divergence point.
    pub compare_bytes: u64,
    /// The acting primary's flushed WAL when the rejoin began: the stream ships
    /// `source_flushed - divergence_lsn` bytes to catch up to it.
    pub source_flushed: Lsn,
}

impl RejoinReport {
    /// Bytes the recovery ships before the stream carries new work: comparison plus catch-up.
    pub fn bytes_shipped(&self) -> u64 {
        self.compare_bytes + self.source_flushed.saturating_sub(self.divergence_lsn)
    }
}

/// Replication positions of one instance (`state -s`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationInfo {
    pub role: Role,
    /// The instance's flushed WAL.
    pub flushed: Lsn,
    /// A primary: whether a mirror is streaming, and how far it has flushed.
    pub mirror_connected: bool,
    pub mirror_caught_up: bool,
    pub mirror_flushed: Lsn,
    /// A mirror: how far it has replayed.
    pub replay_lsn: Lsn,
    /// A mirror whose recovery (`recoverseg`) began and has not finished its rewind: it
    /// streams nothing and may not be promoted.
    #[serde(default)]
    pub recovering: bool,
}

/// How a `recoverseg` refusal ends when only a restart of the cluster can bring a content back
/// (both halves of a pair are down): an operator reading it restarts, then recovers.
pub const RESTART_THEN_RECOVER: &str = "restart the cluster (restart), then run recoverseg";

/// A mirror to place somewhere else (`recoverseg -i`, `move-mirrors`): the row's location
/// becomes the new one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relocation {
    pub dbid: Dbid,
    pub hostname: String,
    pub address: String,
    pub port: u16,
    pub datadir: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AdminRequest {
    /// `recoverseg` / `-F`: every instance marked down, or only `only`, rejoins its acting
    /// primary in place.
    Recover { full: bool, only: Option<Vec<Dbid>> },
    /// `recoverseg -r`: every content back to its preferred roles.
    Rebalance,
    /// Records mirrors now running at new locations (already started and streaming).
    Relocate { moves: Vec<Relocation>, why: String },
    /// `add-mirrors`: records new mirror rows (already started and streaming); dbids are
    /// assigned by the coordinator.
    AddMirrors { mirrors: Vec<SegmentConfig> },
    /// `state`: the catalog, each instance's replication positions, and the history.
    State,
}

impl AdminRequest {
    /// The request's name, for refusals and logs.
    pub fn name(&self) -> &'static str {
        match self {
            AdminRequest::Recover { .. } => "recoverseg",
            AdminRequest::Rebalance => "recoverseg -r",
            AdminRequest::Relocate { .. } => "a mirror relocation",
            AdminRequest::AddMirrors { .. } => "add-mirrors",
            AdminRequest::State => "state",
        }
    }
}

/// The outcome of recovering one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovered {
    pub dbid: Dbid,
    pub content: Content,
    pub source_dbid: Dbid,
    pub full: bool,
    pub outcome: Result<RejoinReport, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AdminReply {
    Recovered(Vec<Recovered>),
    Rebalanced(Vec<Content>),
    Recorded(Catalog),
    State(StateReport),
}

/// Everything `state` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReport {
    pub catalog: Catalog,
    /// Per dbid; `None` where the instance did not answer.
    pub replication: std::collections::BTreeMap<Dbid, Option<ReplicationInfo>>,
    pub history: Vec<HistoryRow>,
    /// An unmirrored content whose primary is lost: the system is not operational.
    #[serde(default)]
    pub not_operational: Option<Content>,
    /// The coordinator's mirroring view (`gpstate -f`): its standby's replication state.
    #[serde(default)]
    pub standby: Option<Box<MirroringStatus>>,
    /// What the configured standby says about itself; `None` if none is configured or it did
    /// not answer (its host is down).
    #[serde(default)]
    pub standby_passive: Option<Box<PassiveStatus>>,
}
