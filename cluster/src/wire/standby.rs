//! The standby coordinator's messages: its verbs, its reports, and the catalog stream from the
//! coordinator.

use serde::{Deserialize, Serialize};

use super::replication::WalMessage;
use crate::model::catalog::{Dbid, SegmentConfig};
use crate::model::data::Lsn;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SummaryState {
    NotConfigured,
    Synchronized,
    NotSynchronized,
}

impl SummaryState {
    pub fn label(self) -> &'static str {
        match self {
            SummaryState::NotConfigured => "Not Configured",
            SummaryState::Synchronized => "Synchronized",
            SummaryState::NotSynchronized => "Not Synchronized",
        }
    }
}

/// One row of the mirroring view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirroringStatus {
    pub summary_state: SummaryState,
    /// The walsender's state: `backup`, `catchup`, `streaming`, or empty when not connected.
    pub detail_state: String,
    /// When the summary state last changed (unix ms); `None` before any change.
    pub log_time_ms: Option<u64>,
    pub error_message: Option<String>,
    /// The standby's catalog row.
    pub standby: Option<SegmentConfig>,
    /// The coordinator's flushed catalog WAL, and how far the standby has flushed it.
    pub coordinator_flushed_lsn: Lsn,
    pub standby_flushed_lsn: Lsn,
}

/// Standby requests, carried in [`crate::wire::ClientRequest::Standby`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum StandbyRequest {
    /// `init-standby -s`, to the coordinator: record the standby in the catalog (and the
    /// coordinator's own row, if the catalog does not have it yet).
    Register {
        coordinator: SegmentConfig,
        standby: SegmentConfig,
    },
    /// The mirroring state (to the coordinator) or the standby's own state (to a standby).
    Status,
    /// From the standby to the coordinator: the connection becomes a catalog stream
    /// ([`CatalogStream`] one way, [`crate::wire::WalFeedback`] the other). `from: None` asks
    /// for a base backup first.
    StartReplication { dbid: Dbid, from: Option<Lsn> },
    /// `activate-standby`, to the standby.
    Activate,
    /// `init-standby -r`, to the acting coordinator: remove the standby with this dbid from the
    /// catalog (its data directory and process are the caller's).
    Unregister { dbid: Dbid },
}

impl StandbyRequest {
    /// The request's name, for refusals and logs.
    pub fn name(&self) -> &'static str {
        match self {
            StandbyRequest::Register { .. } => "standby REGISTER",
            StandbyRequest::Status => "standby STATUS",
            StandbyRequest::StartReplication { .. } => "catalog START_REPLICATION",
            StandbyRequest::Activate => "standby ACTIVATE",
            StandbyRequest::Unregister { .. } => "standby UNREGISTER",
        }
    }
}

/// Answers, carried in [`crate::wire::ClientResponse::Standby`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum StandbyReply {
    Registered {
        epoch: u64,
        standby: SegmentConfig,
    },
    Status(MirroringStatus),
    /// What a standby says about itself.
    Passive(PassiveStatus),
    Activated(Activation),
    /// The standby did not activate.
    Refused {
        why: ActivateRefusal,
        message: String,
    },
    /// `init-standby -r` done: the standby's row, as it was, is gone from the catalog as of
    /// `epoch`.
    Unregistered {
        epoch: u64,
        standby: SegmentConfig,
    },
}

/// Why a standby refused to activate, for a caller that acts on the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivateRefusal {
    /// The coordinator still answers; nothing changed.
    CoordinatorAlive,
    /// Its replicated catalog names it the coordinator already: an earlier activation took
    /// over and was cut short.
    NotTheStandby,
    /// Anything else; the activation may have begun.
    Other,
}

/// A standby's own view (`gpstate -f`'s standby half).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassiveStatus {
    pub dbid: Dbid,
    pub coordinator: String,
    /// Whether its stream from the coordinator is up now.
    pub streaming: bool,
    pub flushed_lsn: Lsn,
    pub replayed_lsn: Lsn,
}

/// What activation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub dbid: Dbid,
    pub epoch: u64,
    /// The end of the replayed WAL: the coordinator's state at its last committed transaction
    /// the standby received.
    pub end_lsn: Lsn,
    /// In-doubt distributed transactions whose commit was carried out (gxid, content).
    pub committed: Vec<(u64, i16)>,
    /// Prepared transactions without a commit record, rolled back (gxid, content).
    pub aborted: Vec<(u64, i16)>,
    /// Contents whose prepared transactions could not be listed at activation (their primary
    /// did not answer); the resolver keeps trying.
    pub unreached: Vec<i16>,
}

/// Frames of the catalog stream, coordinator → standby: for a fresh standby, a base backup
/// as file chunks (a file's chunks in order, appended) ended by `BackupEnd`; then WAL.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CatalogStream {
    BackupChunk {
        path: String,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    BackupEnd {
        wal_end: Lsn,
    },
    Wal(WalMessage),
}
