//! The frames of a WAL stream, one sender to one receiver: a primary to its mirror, and (inside
//! the catalog stream) the coordinator to its standby.

use serde::{Deserialize, Serialize};

use crate::model::data::Lsn;

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
