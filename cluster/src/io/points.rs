//! Fault points: the protocol's own moments where a fault does the most harm, named so that
//! the simulator can make a fault land exactly there (FoundationDB's BUGGIFY, deterministic
//! and typed). Cluster code marks a moment with
//! `runtime::fault_point(FaultPoint::WalWrittenBeforeFsync).await`; in production that call
//! is an empty inline function and nothing here is named. The simulator's registry
//! (`points_armed.rs`, compiled into the simulator alone) decides per seed which points are
//! armed and what they do.

/// A named moment of the protocol where a crash, a stall or a lost message finds a window a
/// few milliseconds wide that faults drawn at random times almost never hit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultPoint {
    /// WAL bytes are written to the file and the `fsync` that makes them durable is about to
    /// start: everything past the last flush is in the page cache only.
    WalWrittenBeforeFsync,
    /// A mirror has just sent the primary its flushed position for WAL it received.
    FlushFeedbackSent,
    /// A mirror's `fsync` of received WAL returned and the replay of it has not begun.
    FsyncBeforeReplay,
    /// The prober's decision is in the catalog and the message announcing it to the instance
    /// (PROMOTE, or turning synchronous replication off) is about to be sent.
    CatalogWrittenBeforeAnnounce,
    /// A promotion flushed the mirror's WAL and is about to replay it and store its new role.
    PromotionMidReplay,
    /// A rewind cut the WAL and removed the table files; the tables are not rebuilt yet.
    RewindMidway,
    /// A base backup is laid down file by file; the control file, which says it is complete,
    /// is not yet written.
    BaseBackupMidway,
    /// An activation replayed and flushed the standby's catalog WAL and is about to take over.
    ActivationMidway,
    /// A mirror has just reconnected to its primary and asked for the WAL from its position.
    RecoveryReconnected,
    /// A checkpoint wrote its dirty blocks in place and the table files' `fsync`s are about to
    /// start: the blocks are in the page cache only, and a power loss writes back some of
    /// their 4 KiB pages and not others.
    CheckpointBlocksWritten,
}

impl FaultPoint {
    /// Every fault point, in declaration order.
    pub const ALL: [FaultPoint; 10] = [
        FaultPoint::WalWrittenBeforeFsync,
        FaultPoint::FlushFeedbackSent,
        FaultPoint::FsyncBeforeReplay,
        FaultPoint::CatalogWrittenBeforeAnnounce,
        FaultPoint::PromotionMidReplay,
        FaultPoint::RewindMidway,
        FaultPoint::BaseBackupMidway,
        FaultPoint::ActivationMidway,
        FaultPoint::RecoveryReconnected,
        FaultPoint::CheckpointBlocksWritten,
    ];

    /// Whether the point stands just before a message is sent, where the fault may be that
    /// the message is lost.
    pub fn before_a_send(self) -> bool {
        matches!(self, FaultPoint::CatalogWrittenBeforeAnnounce)
    }
}

/// What the code at a fault point does next.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Carry on.
    Go,
    /// The message about to be sent is lost: skip sending it (only at points
    /// [`FaultPoint::before_a_send`]).
    Drop,
}

impl Pass {
    pub fn dropped(self) -> bool {
        self == Pass::Drop
    }
}
