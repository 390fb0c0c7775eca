//! Messages on the wire between clients, the coordinator and segment instances.

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Content, Dbid};
use crate::fts::ProbeReply;
use crate::wal::{Key, Lsn, TableDef, TableKind, Value};

/// Appends the postcard encoding of `value` to `out`, without an intermediate buffer.
pub(crate) fn encode_append<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    /// A postcard output that appends to a borrowed vector, slices at once.
    struct Append<'a>(&'a mut Vec<u8>);
    impl postcard::ser_flavors::Flavor for Append<'_> {
        type Output = ();
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            self.0.extend_from_slice(data);
            Ok(())
        }
        fn try_push(&mut self, data: u8) -> postcard::Result<()> {
            self.0.push(data);
            Ok(())
        }
        fn finalize(self) -> postcard::Result<()> {
            Ok(())
        }
    }
    // Appending to a vector cannot fail; only a type that refuses to serialize could, and the
    // encoded types are plain data.
    postcard::serialize_with_flavor(value, Append(out)).expect("plain data always encodes");
}

/// One statement of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Fails if the key exists.
    Insert {
        table: String,
        key: Key,
        #[serde(with = "serde_bytes")]
        value: Value,
    },
    /// Returns the number of rows changed (0 or 1).
    Update {
        table: String,
        key: Key,
        #[serde(with = "serde_bytes")]
        value: Value,
    },
    /// Returns the number of rows removed (0 or 1).
    Delete {
        table: String,
        key: Key,
    },
    Get {
        table: String,
        key: Key,
    },
    /// Every row of the table on the transaction's content.
    Scan {
        table: String,
    },
}

impl Op {
    pub fn table(&self) -> &str {
        match self {
            Op::Insert { table, .. }
            | Op::Update { table, .. }
            | Op::Delete { table, .. }
            | Op::Get { table, .. }
            | Op::Scan { table } => table,
        }
    }

    pub fn key(&self) -> Option<Key> {
        match self {
            Op::Insert { key, .. }
            | Op::Update { key, .. }
            | Op::Delete { key, .. }
            | Op::Get { key, .. } => Some(*key),
            Op::Scan { .. } => None,
        }
    }
}

/// The result of one statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    Done,
    Count(u64),
    Row(#[serde(with = "serde_bytes")] Option<Value>),
    Rows(Vec<(Key, Value)>),
}

/// Why a request failed, as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DbError {
    /// Nothing was committed.
    #[error("{0}")]
    Failed(String),
    /// The commit may or may not have happened (the connection was lost while committing).
    #[error("commit outcome unknown: {0}")]
    Unknown(String),
}

/// Client → coordinator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ClientRequest {
    Begin,
    /// A statement on the open transaction, routed by the key's content (or, for a scan, to
    /// `content`, a single-content transaction's one content).
    Exec {
        op: Op,
        content: Option<Content>,
    },
    Commit,
    Abort,
    CreateTable {
        name: String,
        kind: TableKind,
    },
    /// The current segment configuration.
    Catalog,
    /// The distributed-commit records not yet forgotten (`gp_distributed_log`): empty once every
    /// distributed transaction has been carried out everywhere.
    DistributedLog,
    /// The configuration history (`gp_configuration_history`), oldest first, and the current
    /// configuration epoch.
    ConfigurationHistory,
    /// The standby coordinator's verbs and its catalog stream (see [`crate::standby`]).
    Standby(crate::standby::StandbyRequest),
    /// An administration verb (`recoverseg`, `state`, `add-mirrors`...), carried out by the
    /// coordinator (see [`crate::admin`]).
    Admin(crate::admin::AdminRequest),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ClientResponse {
    Ok,
    Result(OpResult),
    Committed,
    Catalog(Catalog),
    DistributedLog(Vec<(u64, Vec<Content>)>),
    Admin(crate::admin::AdminReply),
    ConfigurationHistory {
        rows: Vec<crate::catalog::HistoryRow>,
        epoch: u64,
    },
    Error(DbError),
    Standby(crate::standby::StandbyReply),
    /// From a warm standby: it serves no work; the client tries another coordinator.
    NotActive(String),
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
    Rejoined(crate::admin::RejoinReport),
    WalSummary {
        flushed: Lsn,
        crcs: Vec<u32>,
        /// The WAL history the answering instance holds.
        system_id: Option<u64>,
    },
    WalBytes(#[serde(with = "serde_bytes")] Vec<u8>),
    Replication(crate::admin::ReplicationInfo),
    Error(DbError),
    /// A fenced request refused: it carries configuration epoch `epoch`, older than the epoch
    /// `followed` this instance follows (a decision the catalog has since replaced, or a
    /// coordinator deposed by an activated standby; see [`crate::catalog::epoch`]).
    Fenced {
        dbid: Dbid,
        epoch: u64,
        followed: u64,
    },
}

/// What a [`SegmentResponse::Fenced`] says, for people.
pub fn fenced_message(dbid: Dbid, epoch: u64, followed: u64) -> String {
    use crate::catalog::epoch::{describe, generation};
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

/// Frames of a replication stream, primary → mirror.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WalMessage {
    /// The stream's first frame: the primary's WAL history (a new mirror takes it on) and the
    /// configuration epoch the primary follows (the mirror follows it too, so a deposed
    /// coordinator finds the mirror fenced as well as the primary).
    Start { system_id: u64, epoch: u64 },
    /// Raw WAL bytes starting at `start`.
    Data {
        start: Lsn,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Nothing new; the primary's flushed LSN, so the mirror knows it is caught up, and the
    /// epoch it follows.
    Keepalive { flushed: Lsn, epoch: u64 },
    /// The stream cannot continue (the mirror is ahead of the primary: it needs recovery).
    Refused { reason: String },
}

/// Frames of a replication stream, mirror → primary.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct WalFeedback {
    pub flushed: Lsn,
    pub replayed: Lsn,
}
