//! What the coordinator (its sessions, prober, resolver and administration) and the instances
//! of a content ask a segment instance, and what it answers.

use serde::{Deserialize, Serialize};

use super::admin::{RejoinReport, ReplicationInfo};
use super::client::{DbError, Op, OpResult};
use crate::model::catalog::{Content, Dbid};
use crate::model::data::{Lsn, TableDef, TableId};

/// What a segment instance answers to a probe (the real reply's booleans).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReply {
    pub is_mirror: bool,
    pub mirror_up: bool,
    pub in_sync: bool,
    pub syncrep_enabled: bool,
    pub request_retry: bool,
}

/// Requests to a segment instance. Those that carry `epoch` are fenced: an instance refuses one
/// stamped with an older configuration epoch than the newest it has seen.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SegmentRequest {
    /// FTS: report state. The instance also turns synchronous waiting back on if its mirror is up.
    Probe {
        dbid: Dbid,
        content: Content,
        epoch: u64,
    },
    /// FTS: stop waiting for the mirror (it was marked down).
    SyncrepOff {
        dbid: Dbid,
        epoch: u64,
    },
    /// FTS: become the primary.
    Promote {
        dbid: Dbid,
        epoch: u64,
    },
    /// Opens a transaction on this connection, under the configuration epoch the coordinator
    /// routed it with.
    Begin {
        xid: u64,
        epoch: u64,
    },
    Exec {
        op: Op,
    },
    /// One-phase commit of the open transaction.
    Commit,
    Abort,
    /// First phase: make the open transaction's writes durable as prepared, under its xid.
    Prepare,
    /// Second phase, on any connection. Harmless if already done. Fenced: only the acting
    /// coordinator decides the fate of a prepared transaction (a deposed one, started again,
    /// would find its successor's in-doubt transactions and abort them).
    CommitPrepared {
        xid: u64,
        epoch: u64,
    },
    /// Rolls a prepared transaction back, on any connection. Harmless if already done. Fenced.
    AbortPrepared {
        xid: u64,
        epoch: u64,
    },
    /// The transactions this primary holds prepared (in-doubt resolution). Fenced.
    ListPrepared {
        epoch: u64,
    },
    /// A digest of the instance's data and the WAL position it reflects (the primary's flushed
    /// LSN, the mirror's replay LSN): comparing a pair's, as gpcheckmirrorseg does.
    Checksum,
    CreateTable {
        def: TableDef,
    },
    /// A mirror asks its primary for WAL from `from`; the connection becomes a WAL stream.
    /// `system_id`: the WAL history the mirror holds (`None`: none yet, a new mirror asking
    /// from 0); the primary refuses a mirror of another history.
    StartReplication {
        mirror_dbid: Dbid,
        from: Lsn,
        system_id: Option<u64>,
    },
    /// Recovery: become a mirror of `primary` (`ip:port`). Incremental: rewind to where this
    /// instance's WAL and the primary's part ways; `full`: wipe and copy everything. Then stream.
    Rejoin {
        epoch: u64,
        primary: String,
        full: bool,
    },
    /// A checksum per chunk of the flushed WAL up to `upto` (see
    /// [`crate::storage::WAL_SUMMARY_CHUNK`]).
    WalSummary {
        upto: Lsn,
    },
    /// Raw flushed WAL bytes.
    ReadWal {
        from: Lsn,
        len: u64,
    },
    /// Replication positions, for `state -s`.
    ReplicationStatus,
    /// Drops these tables where they still exist (the catalog's dropped tables: a drop that
    /// did not reach this content before is finished by the next one).
    DropTables {
        ids: Vec<TableId>,
    },
}

impl SegmentRequest {
    /// The request's name, for refusals and logs.
    pub fn name(&self) -> &'static str {
        match self {
            SegmentRequest::Probe { .. } => "PROBE",
            SegmentRequest::SyncrepOff { .. } => "SYNCREP_OFF",
            SegmentRequest::Promote { .. } => "PROMOTE",
            SegmentRequest::Begin { .. } => "BEGIN",
            SegmentRequest::Exec { .. } => "a statement",
            SegmentRequest::Commit => "COMMIT",
            SegmentRequest::Abort => "ABORT",
            SegmentRequest::Prepare => "PREPARE",
            SegmentRequest::CommitPrepared { .. } => "COMMIT PREPARED",
            SegmentRequest::AbortPrepared { .. } => "ROLLBACK PREPARED",
            SegmentRequest::ListPrepared { .. } => "the prepared list",
            SegmentRequest::Checksum => "a checksum",
            SegmentRequest::CreateTable { .. } => "CREATE TABLE",
            SegmentRequest::StartReplication { .. } => "START_REPLICATION",
            SegmentRequest::Rejoin { .. } => "REJOIN",
            SegmentRequest::WalSummary { .. } => "a WAL summary",
            SegmentRequest::ReadWal { .. } => "a WAL read",
            SegmentRequest::ReplicationStatus => "the replication status",
            SegmentRequest::DropTables { .. } => "DROP TABLE",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SegmentResponse {
    Probe(ProbeReply),
    /// The instance is starting (crash recovery); `replay_lsn` shows its progress.
    Starting {
        replay_lsn: Lsn,
    },
    Ok,
    Result(OpResult),
    Committed {
        lsn: Lsn,
    },
    PreparedList(Vec<u64>),
    Checksum {
        lsn: Lsn,
        digest: u64,
    },
    Rejoined(RejoinReport),
    WalSummary {
        flushed: Lsn,
        crcs: Vec<u32>,
        /// The WAL history the answering instance holds.
        system_id: Option<u64>,
    },
    WalBytes(#[serde(with = "serde_bytes")] Vec<u8>),
    Replication(ReplicationInfo),
    Error(DbError),
    /// A fenced request refused: it carries configuration epoch `epoch`, older than the epoch
    /// `followed` this instance follows (a decision the catalog has since replaced, or a
    /// coordinator deposed by an activated standby; see [`crate::model::catalog::epoch`]).
    Fenced {
        dbid: Dbid,
        epoch: u64,
        followed: u64,
    },
}

/// What a [`SegmentResponse::Fenced`] says, for people.
pub fn fenced_message(dbid: Dbid, epoch: u64, followed: u64) -> String {
    use crate::model::catalog::epoch::{describe, generation};
    if generation(followed) > generation(epoch) {
        format!(
            "stale configuration epoch {}: dbid {dbid} follows epoch {} of coordinator generation {}; the coordinator that sent it was deposed by an activated standby",
            describe(epoch),
            describe(followed),
            generation(followed)
        )
    } else {
        format!(
            "stale configuration epoch {}: dbid {dbid} has seen epoch {}",
            describe(epoch),
            describe(followed)
        )
    }
}
