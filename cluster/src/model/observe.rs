//! Read-only observation hooks: facts an instance reports as it acts, for whoever watches (the
//! simulator's checkers; nothing in production). Reporting never changes what the instance does.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::model::catalog::{Content, Dbid, Mode, Role, Status};
use crate::model::data::Lsn;

/// A fact about one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// A primary acknowledged a commit (or a prepare) whose record ends at `lsn`, under the
    /// newest configuration epoch it had seen.
    Acknowledged {
        content: Content,
        dbid: Dbid,
        epoch: u64,
        lsn: Lsn,
    },
    /// A mirror became the primary under `epoch`; its WAL ends at `end_lsn`.
    Promoted {
        content: Content,
        dbid: Dbid,
        epoch: u64,
        end_lsn: Lsn,
    },
    /// An instance obeyed a fenced request (a probe, a promotion, a transaction's begin...)
    /// stamped with `epoch` from the coordinator at address `from` (its host's address), the
    /// first from there since it last obeyed another coordinator.
    Obeyed {
        content: Content,
        dbid: Dbid,
        epoch: u64,
        from: String,
    },
    /// An instance started: the configuration epoch it follows from its data directory, and
    /// whether the directory held no WAL yet (made by init or for a full copy); `primary_at`:
    /// it starts as a primary (its role file says so), with its recovered WAL ending there.
    Started {
        content: Content,
        dbid: Dbid,
        followed: u64,
        fresh: bool,
        primary_at: Option<Lsn>,
    },
    /// The coordinator committed a configuration change and acts on it: one row's history line
    /// (as `gp_configuration_history` holds it) under `epoch`; `fts` when the prober decided
    /// it, with the row's new role, status and mode.
    CatalogChanged {
        epoch: u64,
        dbid: Dbid,
        desc: String,
        fts: Option<FtsChange>,
    },
    /// A coordinator started on its recovered catalog (after a crash or a restart) and acts on
    /// it from now on: every row as it holds it, under `epoch`. A change made durable just
    /// before a crash may be in it without its [`Fact::CatalogChanged`] ever having been
    /// reported.
    CatalogRecovered {
        epoch: u64,
        rows: Vec<(Dbid, FtsChange)>,
    },
    /// The coordinator acted on its catalog WAL up to `lsn` (a configuration change, a table,
    /// a distributed-commit record) because its synchronized standby reported it flushed.
    StandbyFlushed { lsn: Lsn },
    /// Crash recovery found a block on disk stamped with a page LSN beyond the end of the
    /// recovered WAL, and the instance failed itself.
    BlockBeyondWal {
        content: Content,
        dbid: Dbid,
        file: String,
        block: u32,
        page_lsn: Lsn,
        wal_end: Lsn,
    },
    /// An instance obeyed a fenced request (any: a probe, a promotion, a transaction's begin...)
    /// stamped with `epoch`. Reported for every one, unlike [`Fact::Obeyed`]; the simulator
    /// judges it as it comes and keeps none.
    ObeyedEpoch {
        content: Content,
        dbid: Dbid,
        epoch: u64,
    },
    /// The prober decided to fail `content`'s primary `primary` over to its mirror `mirror`,
    /// under `epoch`, on the probe round `round`: that round's attempts, in order, each as the
    /// prober's transport ended it.
    FailoverDecided {
        content: Content,
        primary: Dbid,
        mirror: Dbid,
        epoch: u64,
        round: Vec<ProbeAttempt>,
    },
    /// The prober probed `content`'s primary `primary` once (a round: the first attempt and
    /// its retries), each attempt as the prober's transport ended it. Reported for every round,
    /// whatever is decided on it.
    ProbeRound {
        content: Content,
        primary: Dbid,
        round: Vec<ProbeAttempt>,
    },
    /// A mirror reported its WAL positions (its feedback to its primary, or its replication
    /// status): everything before `flushed` is durable, everything before `replayed` applied.
    WalPositions {
        content: Content,
        dbid: Dbid,
        flushed: Lsn,
        replayed: Lsn,
    },
    /// The standby coordinator reported its catalog WAL positions to the coordinator (its
    /// feedback): everything before `flushed` is durable, everything before `replayed` applied.
    StandbyWalPositions { flushed: Lsn, replayed: Lsn },
    /// A primary's walsender sent its mirror WAL up to `end` as flushed (a data message's end,
    /// or a keepalive's flushed position).
    WalShipped {
        content: Content,
        dbid: Dbid,
        end: Lsn,
    },
    /// A mirror accepted a promotion and is about to end recovery (followed by
    /// [`Fact::Promoted`] when it succeeds).
    PromotionBegun { content: Content, dbid: Dbid },
    /// A table block failed its checksum (block `block` of `file`, a path in the instance's
    /// data directory) when the instance read it, and the instance failed itself.
    BlockDamaged {
        content: Content,
        dbid: Dbid,
        file: String,
        block: u32,
    },
    /// A process (a segment instance, a coordinator, a standby coordinator) began serving the
    /// requests of a connection from `peer` (`ip:port`): `identity` is who the peer proved to
    /// be in the handshake, `None` when it was served without one. Reported once per
    /// connection, before its first request is read.
    Serving {
        server: ServerKind,
        peer: String,
        identity: Option<crate::io::auth::PeerIdentity>,
    },
}

/// Which kind of process serves a connection (see [`Fact::Serving`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Segment {
        dbid: Dbid,
    },
    Coordinator,
    Standby,
    /// A host's agent.
    Agent,
}

/// One attempt of a probe round (see [`Fact::FailoverDecided`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeAttempt {
    /// The pause between the previous attempt's end and this one's start (zero for the first).
    pub gap: Duration,
    /// How long the attempt waited, from connecting to its end.
    pub waited: Duration,
    pub end: AttemptEnd,
}

/// How a probe attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The primary's probe reply arrived.
    Answered,
    /// The instance answered that it is starting up or recovering, with how far its redo had
    /// gone.
    Starting { replay_lsn: Lsn },
    /// The instance answered, refusing the probe (a failed disk check, a fence refusal).
    Refused,
    /// The network failed the attempt (no connection, a reset, a closed connection).
    Network,
    /// No answer arrived within the time left of the probe timeout.
    TimedOut,
}

/// A row change the prober decided (see [`Fact::CatalogChanged`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FtsChange {
    pub content: Content,
    pub role: Role,
    pub status: Status,
    pub mode: Mode,
}

pub trait Observer: Send + Sync + 'static {
    fn observe(&self, fact: Fact);
}

/// An optional observer, cheap to clone, printable in configurations.
#[derive(Clone, Default)]
pub struct Observe(Option<Arc<dyn Observer>>);

impl Observe {
    pub fn new(observer: Arc<dyn Observer>) -> Observe {
        Observe(Some(observer))
    }

    pub fn report(&self, fact: Fact) {
        if let Some(o) = &self.0 {
            o.observe(fact);
        }
    }
}

impl fmt::Debug for Observe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observe(on)"
        } else {
            "Observe(off)"
        })
    }
}
