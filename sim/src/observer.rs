//! The harness side of the cluster's observation hooks: records every fact with the simulated
//! time it was reported. The checkers and the failover figures read these typed facts, never
//! log text: the prober's and the utilities' committed catalog changes, promotions with their
//! end of WAL, acknowledged commits, the requests instances obeyed. Two checkers,
//! [`crate::invariants::durable_claims`] and [`crate::invariants::wal_positions`], judge each
//! fact as it is reported, while the simulated disks still are as they were then. Reported WAL
//! positions (one fact per replication message) are judged and not kept: no end-of-run reader
//! needs them, and they would grow the record with every message.

use std::sync::{Arc, Mutex, OnceLock};

use cluster::model::observe::{Fact, FtsChange, Observe, Observer};

use crate::invariants::durable_claims::DurableClaims;
use crate::invariants::wal_positions::WalPositions;

/// A fact and when it was reported (simulated milliseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub at_ms: u64,
    pub fact: Fact,
}

#[derive(Clone, Default)]
pub struct Recorder {
    facts: Arc<Mutex<Vec<Observed>>>,
    /// The checker that judges facts against the simulated disks as they arrive, once set.
    durable_claims: Arc<OnceLock<DurableClaims>>,
    /// The checker that judges reported WAL positions as they arrive, once set.
    wal_positions: Arc<OnceLock<WalPositions>>,
}

impl Observer for Recorder {
    fn observe(&self, fact: Fact) {
        let at_ms = madsim::time::TimeHandle::try_current()
            .map(|t| t.elapsed().as_millis() as u64)
            .unwrap_or(0);
        if let Some(checker) = self.durable_claims.get() {
            checker.observe(at_ms, &fact);
        }
        if let Some(checker) = self.wal_positions.get() {
            checker.observe(at_ms, &fact);
        }
        if matches!(
            fact,
            Fact::WalPositions { .. } | Fact::StandbyWalPositions { .. } | Fact::WalShipped { .. }
        ) {
            return;
        }
        self.facts.lock().unwrap().push(Observed { at_ms, fact });
    }
}

impl Recorder {
    pub fn hook(&self) -> Observe {
        Observe::new(Arc::new(self.clone()))
    }

    /// From now on, judges each fact as it arrives with `checker` (see
    /// [`crate::invariants::durable_claims`]). Set once, before the cluster runs.
    pub fn judge_durable_claims(&self, checker: DurableClaims) {
        if self.durable_claims.set(checker).is_err() {
            panic!("the durable-claims checker is set once");
        }
    }

    /// From now on, judges each reported WAL position with `checker` (see
    /// [`crate::invariants::wal_positions`]). Set once, before the cluster runs.
    pub fn judge_wal_positions(&self, checker: WalPositions) {
        if self.wal_positions.set(checker).is_err() {
            panic!("the wal-positions checker is set once");
        }
    }

    /// What the wal-positions checker found, if it judged this run.
    pub fn wal_positions(&self) -> Option<Vec<crate::invariants::Violation>> {
        self.wal_positions.get().map(WalPositions::violations)
    }

    /// What the durable-claims checker found, if it judged this run.
    pub fn durable_claims(&self) -> Option<Vec<crate::invariants::Violation>> {
        self.durable_claims.get().map(DurableClaims::violations)
    }

    /// Every fact so far, in the order reported.
    pub fn facts(&self) -> Vec<Observed> {
        self.facts.lock().unwrap().clone()
    }
}

/// A failover milestone (a prober's catalog change, a finished promotion) at simulated ms since
/// the run began: what the failover figures are computed from, and (converted at the boundary,
/// `run::recording`) what a recording's timeline draws.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    /// The prober committed a change of one catalog row.
    CatalogChange(CatalogChange),
    /// The instance reported that its promotion finished.
    Promoted { at_ms: u64, content: i16, dbid: u16 },
}

/// A change of one `gp_segment_configuration` row, as the prober committed it, with the
/// catalog's codes: role `p`/`m`, status `u`/`d`, mode `s`/`n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogChange {
    pub at_ms: u64,
    pub content: i16,
    pub dbid: u16,
    pub role: char,
    pub status: char,
    pub mode: char,
}

/// A committed configuration change of one row, with its epoch (for the configuration-history
/// checker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogLine {
    pub at_ms: u64,
    pub epoch: u64,
    pub dbid: u16,
    /// The history line itself (as `gp_configuration_history` holds it).
    pub desc: String,
}

/// The failover milestones among `facts`, in order: every catalog change the prober committed,
/// and every finished promotion.
pub fn milestones(facts: &[Observed]) -> Vec<ClusterEvent> {
    facts
        .iter()
        .filter_map(|o| match &o.fact {
            Fact::CatalogChanged {
                dbid,
                fts:
                    Some(FtsChange {
                        content,
                        role,
                        status,
                        mode,
                    }),
                ..
            } => Some(ClusterEvent::CatalogChange(CatalogChange {
                at_ms: o.at_ms,
                content: *content,
                dbid: *dbid,
                role: role.code(),
                status: status.code(),
                mode: mode.code(),
            })),
            Fact::Promoted { content, dbid, .. } => Some(ClusterEvent::Promoted {
                at_ms: o.at_ms,
                content: *content,
                dbid: *dbid,
            }),
            _ => None,
        })
        .collect()
}

/// Every committed configuration change among `facts`, in order.
pub fn catalog_lines(facts: &[Observed]) -> Vec<CatalogLine> {
    facts
        .iter()
        .filter_map(|o| match &o.fact {
            Fact::CatalogChanged {
                epoch, dbid, desc, ..
            } => Some(CatalogLine {
                at_ms: o.at_ms,
                epoch: *epoch,
                dbid: *dbid,
                desc: desc.clone(),
            }),
            _ => None,
        })
        .collect()
}
