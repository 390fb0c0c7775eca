//! The warm standby coordinator (seed 000, "Using Master Mirroring"; gpinitstandby,
//! gpactivatestandby).
//!
//! - [`link`] (coordinator side): the mirroring state the coordinator reports (Not Configured /
//!   Synchronized / Not Synchronized, with the time of the last change and the error) and the
//!   wait that keeps catalog changes off the segments until the standby has flushed them.
//! - [`walsender`] (coordinator side): a base backup of the catalog, then the WAL recorded
//!   meanwhile, then the continuous stream.
//! - [`instance`] (standby host): the standby process: receives, flushes and replays the
//!   catalog's WAL, refuses client work, and on activation becomes the coordinator.
//! - [`activate`]: activation (replay, take over the catalog with a new epoch, resolve
//!   in-doubt distributed transactions).
//! - [`admin`]: the `init-standby` and `activate-standby` verbs, their checks and refusals.

pub mod activate;
pub mod admin;
pub mod instance;
pub mod link;
pub mod walsender;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::{Dbid, SegmentConfig};
use crate::proto::WalMessage;
use crate::storage::base_backup::BaseBackup;
use crate::wal::Lsn;

pub use link::{MirroringStatus, StandbyLink, SummaryState};

/// How long either side of the catalog stream waits for the other before it counts the
/// stream as broken (a keepalive goes every third of it).
pub const STANDBY_WAL_TIMEOUT: Duration = Duration::from_secs(3);

/// Standby requests, carried in [`crate::proto::ClientRequest::Standby`].
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
    /// ([`CatalogStream`] one way, [`crate::proto::WalFeedback`] the other). `from: None` asks
    /// for a base backup first.
    StartReplication { dbid: Dbid, from: Option<Lsn> },
    /// `activate-standby`, to the standby.
    Activate,
}

/// Answers, carried in [`crate::proto::ClientResponse::Standby`].
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

/// Frames of the catalog stream, coordinator → standby.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CatalogStream {
    Backup(BaseBackup),
    Wal(WalMessage),
}

/// The message a standby answers client work with.
pub fn not_active_message(addr: &str) -> String {
    format!("the coordinator at {addr} is a warm standby: it serves no work until activate-standby promotes it")
}
