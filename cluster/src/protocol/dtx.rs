//! Distributed transactions: the decisions of two-phase commit, as pure functions. The
//! coordinator's session and its resolver do the I/O.
//!
//! A transaction that wrote on one content commits in one phase. One that wrote on several:
//! PREPARE on every writer (each durable on its primary and, in synchronous mode, its mirror);
//! then the distributed-commit record, durable on the coordinator — the moment the transaction
//! is committed; then COMMIT PREPARED on every writer, retried until each has it; then the
//! record is forgotten. A failed PREPARE aborts everything.
//!
//! In-doubt resolution (after a coordinator restart, and periodically): a prepared transaction
//! with a commit record is committed; every other prepared transaction from before the
//! coordinator started is aborted.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::catalog::Content;

pub type Gxid = u64;

/// How a transaction commits, given where it wrote and where it only read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitPlan {
    /// Nothing was written: release every participant.
    ReadOnly { readers: Vec<Content> },
    /// One content wrote: commit it in one phase; release the readers.
    OnePhase {
        writer: Content,
        readers: Vec<Content>,
    },
    /// Several contents wrote: two-phase commit over the writers; release the readers.
    TwoPhase {
        writers: Vec<Content>,
        readers: Vec<Content>,
    },
}

/// Plans the commit. `participants` maps each content the transaction touched to whether it
/// wrote there.
pub fn plan_commit(participants: &BTreeMap<Content, bool>) -> CommitPlan {
    let writers: Vec<Content> = participants
        .iter()
        .filter(|(_, w)| **w)
        .map(|(c, _)| *c)
        .collect();
    let readers: Vec<Content> = participants
        .iter()
        .filter(|(_, w)| !**w)
        .map(|(c, _)| *c)
        .collect();
    match writers.len() {
        0 => CommitPlan::ReadOnly { readers },
        1 => CommitPlan::OnePhase {
            writer: writers[0],
            readers,
        },
        _ => CommitPlan::TwoPhase { writers, readers },
    }
}

/// What the resolver must do for one in-doubt transaction on one content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resolution {
    CommitPrepared { content: Content, gxid: Gxid },
    AbortPrepared { content: Content, gxid: Gxid },
}

impl Resolution {
    /// The content and transaction it acts on.
    pub fn target(&self) -> (Content, Gxid) {
        match *self {
            Resolution::CommitPrepared { content, gxid }
            | Resolution::AbortPrepared { content, gxid } => (content, gxid),
        }
    }

    /// The request that carries it out, stamped with the coordinator's configuration `epoch`.
    pub fn request(&self, epoch: u64) -> crate::wire::SegmentRequest {
        use crate::wire::SegmentRequest;
        match *self {
            Resolution::CommitPrepared { gxid, .. } => {
                SegmentRequest::CommitPrepared { xid: gxid, epoch }
            }
            Resolution::AbortPrepared { gxid, .. } => {
                SegmentRequest::AbortPrepared { xid: gxid, epoch }
            }
        }
    }
}

/// Decides the fate of every prepared transaction found on the segments.
///
/// - `committed`: the distributed-commit records (not yet forgotten) and their writers;
/// - `prepared`: per content, the transactions its primary holds prepared;
/// - `in_flight`: transactions a live session of this coordinator is still committing (their
///   decision is not made yet, or is being carried out: leave them alone);
/// - `started_at`: the first transaction id of this coordinator's life. A prepared transaction
///   from before it, with no commit record, can never be committed by anyone: abort it.
///
/// Every writer of a committed record is sent COMMIT PREPARED (it is harmless where it already
/// happened), so a record can be forgotten once all of them answered.
pub fn resolve_in_doubt(
    committed: &BTreeMap<Gxid, Vec<Content>>,
    prepared: &BTreeMap<Content, Vec<Gxid>>,
    in_flight: &BTreeSet<Gxid>,
    started_at: Gxid,
) -> Vec<Resolution> {
    let mut out = BTreeSet::new();
    for (gxid, writers) in committed {
        if in_flight.contains(gxid) {
            continue;
        }
        for content in writers {
            out.insert(Resolution::CommitPrepared {
                content: *content,
                gxid: *gxid,
            });
        }
    }
    for (content, gxids) in prepared {
        for gxid in gxids {
            if committed.contains_key(gxid) || in_flight.contains(gxid) || *gxid >= started_at {
                continue;
            }
            out.insert(Resolution::AbortPrepared {
                content: *content,
                gxid: *gxid,
            });
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(p: &[(Content, bool)]) -> BTreeMap<Content, bool> {
        p.iter().copied().collect()
    }

    #[test]
    fn one_writer_commits_in_one_phase_and_several_in_two() {
        assert_eq!(
            plan_commit(&parts(&[])),
            CommitPlan::ReadOnly { readers: vec![] }
        );
        assert_eq!(
            plan_commit(&parts(&[(0, false), (3, false)])),
            CommitPlan::ReadOnly {
                readers: vec![0, 3]
            }
        );
        assert_eq!(
            plan_commit(&parts(&[(0, false), (3, true)])),
            CommitPlan::OnePhase {
                writer: 3,
                readers: vec![0]
            }
        );
        assert_eq!(
            plan_commit(&parts(&[(0, true), (1, false), (3, true)])),
            CommitPlan::TwoPhase {
                writers: vec![0, 3],
                readers: vec![1]
            }
        );
    }

    #[test]
    fn a_commit_record_without_forget_is_committed_everywhere() {
        let committed = BTreeMap::from([(7, vec![0, 2])]);
        let prepared = BTreeMap::from([(0, vec![7]), (2, vec![])]);
        let r = resolve_in_doubt(&committed, &prepared, &BTreeSet::new(), 100);
        assert_eq!(
            r,
            vec![
                Resolution::CommitPrepared {
                    content: 0,
                    gxid: 7
                },
                Resolution::CommitPrepared {
                    content: 2,
                    gxid: 7
                }
            ]
        );
    }

    #[test]
    fn every_other_prepared_transaction_from_before_the_restart_is_aborted() {
        let prepared = BTreeMap::from([(0, vec![5, 150]), (1, vec![6])]);
        let r = resolve_in_doubt(&BTreeMap::new(), &prepared, &BTreeSet::new(), 100);
        assert_eq!(
            r,
            vec![
                Resolution::AbortPrepared {
                    content: 0,
                    gxid: 5
                },
                Resolution::AbortPrepared {
                    content: 1,
                    gxid: 6
                }
            ],
            "150 belongs to this coordinator's life: a session may still decide it"
        );
    }

    #[test]
    fn transactions_a_session_is_still_committing_are_left_alone() {
        let committed = BTreeMap::from([(7, vec![0])]);
        let prepared = BTreeMap::from([(0, vec![7, 8])]);
        let in_flight = BTreeSet::from([7, 8]);
        assert!(resolve_in_doubt(&committed, &prepared, &in_flight, 1).is_empty());
    }
}
