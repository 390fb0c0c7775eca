//! The harness side of the cluster's observation hooks: records every fact with the simulated
//! time it was reported. The checkers and the failover figures read these typed facts, never
//! log text: the prober's and the utilities' committed catalog changes, promotions with their
//! end of WAL, acknowledged commits, the requests instances obeyed. Continuous checkers (the
//! [`Judge`]s, in `invariants`: durable claims and reported WAL positions against the
//! simulated disks, the prober's failover decisions, the epochs of the requests instances obey) see each fact as it is
//! reported, while the simulated disks still are as they were then. Facts reported once per
//! request or replication message (obeyed epochs, WAL positions, WAL shipped) are judged and
//! not kept: no end-of-run reader needs them, and they would grow the record with every
//! message.

use std::any::Any;
use std::sync::{Arc, Mutex};

use cluster::model::observe::{Fact, FtsChange, Observe, Observer};

/// A fact and when it was reported (simulated milliseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub at_ms: u64,
    pub fact: Fact,
}

/// A checker that judges each fact the moment it is reported. It only reads: judging never
/// changes what the cluster does.
pub trait Judge: Any + Send + Sync {
    fn judge(&self, at_ms: u64, fact: &Fact);
}

#[derive(Clone, Default)]
pub struct Recorder {
    facts: Arc<Mutex<Vec<Observed>>>,
    /// The checkers that judge facts as they arrive, in the order they were added.
    judges: Arc<Mutex<Vec<Arc<dyn Judge>>>>,
}

impl Observer for Recorder {
    fn observe(&self, fact: Fact) {
        let at_ms = madsim::time::TimeHandle::try_current()
            .map(|t| t.elapsed().as_millis() as u64)
            .unwrap_or(0);
        for judge in self.judges.lock().unwrap().iter() {
            judge.judge(at_ms, &fact);
        }
        if matches!(
            fact,
            Fact::ObeyedEpoch { .. }
                | Fact::WalPositions { .. }
                | Fact::StandbyWalPositions { .. }
                | Fact::WalShipped { .. }
                | Fact::Serving { .. }
        ) {
            return; // one per request or message: judged, not kept
        }
        self.facts.lock().unwrap().push(Observed { at_ms, fact });
    }
}

impl Recorder {
    pub fn hook(&self) -> Observe {
        Observe::new(Arc::new(self.clone()))
    }

    /// From now on, `judge` sees each fact as it arrives. Add judges before the cluster runs.
    pub fn judge_with(&self, judge: Arc<dyn Judge>) {
        self.judges.lock().unwrap().push(judge);
    }

    /// The judge of type `J`, if one was added: what it found is read from it.
    pub fn judge<J: Judge>(&self) -> Option<Arc<J>> {
        let judges = self.judges.lock().unwrap();
        judges.iter().find_map(|j| {
            let any: Arc<dyn Any + Send + Sync> = j.clone();
            any.downcast::<J>().ok()
        })
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
