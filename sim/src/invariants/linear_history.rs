//! **One linear WAL history per content: no two instances accept writes side by side.**
//!
//! Seed 002 (fault detection) and DESIGN section 3: "every decision is a catalog change with a
//! new configuration epoch; segments refuse work stamped with an older epoch, so a partitioned
//! old primary can never commit alongside the promoted mirror."
//!
//! Judged on the instances' own reports, in the order they happened. A content's history is a
//! line: its first primary writes it, and each promotion continues it from the promoted mirror's
//! end of WAL. An instance acknowledging a commit is consistent with the line if it is the acting
//! primary (the one most recently promoted, or the first primary before any promotion), or if
//! the commit lies within what the acting primary inherited (at or before its end of WAL at
//! promotion: a late acknowledgement of a commit both already hold). Anything else — a deposed
//! primary acknowledging a commit beyond the promoted mirror's WAL, two instances acknowledging
//! before any promotion, a second promotion stamped with an epoch no newer than the first — is
//! a fork: two histories of one content.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::observer::Observed;
use crate::workload::history::Event;
use cluster::model::catalog::{Content, Dbid};
use cluster::model::observe::Fact;
use cluster::wal::Lsn;

pub const NAME: &str = "linear-history";

/// The acting line of one content.
struct Line {
    acting: Dbid,
    /// Set once the acting primary was promoted: its epoch and end of WAL at promotion.
    promoted: Option<(u64, Lsn)>,
}

/// A promotion is durable once the mirror's role file says primary, and its report
/// ([`Fact::Promoted`]) follows: a process that dies between the two (killed while the role
/// file's directory sync was under way) starts again as the primary its promotion made it,
/// unreported. Such a start counts as that promotion, at the WAL end it recovered, only after
/// the instance reported beginning a promotion ([`Fact::PromotionBegun`]) it never reported
/// finishing: a mirror starting as a primary with no promotion begun is still a fork.
fn unreported_promotion(
    lines: &mut BTreeMap<Content, Line>,
    begun: &mut BTreeSet<Dbid>,
    content: Content,
    dbid: Dbid,
    end: Lsn,
) {
    let Some(line) = lines.get_mut(&content) else {
        return;
    };
    if line.acting != dbid && begun.remove(&dbid) {
        // Its epoch was not reported: the line keeps the last promotion's, so a later one must
        // still be newer than that.
        let epoch = line.promoted.map_or(0, |(epoch, _)| epoch);
        line.acting = dbid;
        line.promoted = Some((epoch, end));
    }
}

pub fn check(facts: &[Observed]) -> Vec<Violation> {
    let mut lines: BTreeMap<Content, Line> = BTreeMap::new();
    let mut violations = Vec::new();
    // One violation per content: the first fork is the evidence; what follows is its echo.
    let mut forked: BTreeSet<Content> = BTreeSet::new();
    // Instances with a promotion begun and not reported finished.
    let mut begun: BTreeSet<Dbid> = BTreeSet::new();
    for o in facts {
        let fork = match o.fact {
            Fact::Acknowledged {
                content,
                dbid,
                epoch,
                lsn,
            } => acknowledged(&mut lines, content, dbid, epoch, lsn)
                .map(|message| (content, "acknowledge", message)),
            Fact::Promoted {
                content,
                dbid,
                epoch,
                end_lsn,
            } => {
                begun.remove(&dbid);
                promoted(&mut lines, content, dbid, epoch, end_lsn)
                    .map(|message| (content, "promote", message))
            }
            Fact::PromotionBegun { dbid, .. } => {
                begun.insert(dbid);
                None
            }
            Fact::Started {
                content,
                dbid,
                primary_at: Some(end),
                ..
            } => {
                unreported_promotion(&mut lines, &mut begun, content, dbid, end);
                None
            }
            // Started as a mirror: a promotion begun before did not take.
            Fact::Started { dbid, .. } => {
                begun.remove(&dbid);
                None
            }
            // The coordinator's catalog, not a content's history.
            Fact::StandbyFlushed { .. }
            | Fact::BlockBeyondWal { .. }
            | Fact::Obeyed { .. }
            | Fact::CatalogChanged { .. }
            | Fact::CatalogRecovered { .. }
            | Fact::ObeyedEpoch { .. }
            | Fact::FailoverDecided { .. }
            | Fact::Serving { .. } => None,
            // Positions, judged as they are reported (wal-positions).
            Fact::WalPositions { .. }
            | Fact::StandbyWalPositions { .. }
            | Fact::WalShipped { .. }
            | Fact::ProbeRound { .. }
            | Fact::BlockDamaged { .. } => None,
        };
        if let Some((content, kind, message)) = fork {
            if forked.insert(content) {
                violations.push(Violation {
                    checker: NAME,
                    first_event: Event {
                        at_ms: o.at_ms,
                        client: 0,
                        txn: 0,
                        kind: kind.into(),
                        detail: message.clone(),
                    },
                    message,
                });
            }
        }
    }
    violations
}

/// A primary acknowledged a commit ending at `lsn`: a fork unless it is the content's acting
/// primary, or the acting primary was promoted with its WAL reaching past `lsn` (an
/// acknowledgement from before the promotion, seen late).
fn acknowledged(
    lines: &mut BTreeMap<Content, Line>,
    content: Content,
    dbid: Dbid,
    epoch: u64,
    lsn: Lsn,
) -> Option<String> {
    let line = lines.entry(content).or_insert(Line {
        acting: dbid,
        promoted: None,
    });
    if line.acting == dbid {
        return None;
    }
    match line.promoted {
        Some((_, end)) if lsn <= end => None,
        Some((promoted_epoch, end)) => Some(format!(
            "content {content}: dbid {dbid} acknowledged a commit ending at {lsn} (its epoch {epoch}) after dbid {} was promoted at epoch {promoted_epoch} with its WAL ending at {end}: two instances accepted writes",
            line.acting
        )),
        None => Some(format!(
            "content {content}: dbids {} and {dbid} both acknowledged commits (the latter at {lsn}, epoch {epoch}) with no promotion between them",
            line.acting
        )),
    }
}

/// A mirror was promoted: it becomes the content's acting primary; a fork if its epoch is no
/// newer than the promotion before it.
fn promoted(
    lines: &mut BTreeMap<Content, Line>,
    content: Content,
    dbid: Dbid,
    epoch: u64,
    end_lsn: Lsn,
) -> Option<String> {
    let fork = match lines.get(&content) {
        Some(Line {
            promoted: Some((before, _)),
            acting,
        }) if epoch <= *before => Some(format!(
            "content {content}: dbid {dbid} was promoted at epoch {epoch}, no newer than dbid {acting}'s promotion at epoch {before}"
        )),
        _ => None,
    };
    lines.insert(
        content,
        Line {
            acting: dbid,
            promoted: Some((epoch, end_lsn)),
        },
    );
    fork
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(at_ms: u64, dbid: u16, lsn: u64) -> Observed {
        Observed {
            at_ms,
            fact: Fact::Acknowledged {
                content: 0,
                dbid,
                epoch: 3,
                lsn,
            },
        }
    }

    fn promoted(at_ms: u64, dbid: u16, epoch: u64, end_lsn: u64) -> Observed {
        Observed {
            at_ms,
            fact: Fact::Promoted {
                content: 0,
                dbid,
                epoch,
                end_lsn,
            },
        }
    }

    fn started(at_ms: u64, dbid: u16, primary_at: Option<u64>) -> Observed {
        Observed {
            at_ms,
            fact: Fact::Started {
                content: 0,
                dbid,
                followed: 3,
                fresh: false,
                primary_at,
            },
        }
    }

    /// Standard seed 1610: dbid 3's promotion made its role file say primary and the process
    /// was killed before it reported the promotion; it started again as the primary. That
    /// start is the promotion, once one was begun; without a promotion begun it is a fork.
    #[test]
    fn a_promotion_whose_report_died_with_its_process_continues_the_line_at_its_start() {
        let begun = Observed {
            at_ms: 3,
            fact: Fact::PromotionBegun {
                content: 0,
                dbid: 3,
            },
        };
        let facts = vec![
            ack(1, 2, 100),
            begun.clone(),
            started(4, 3, Some(120)),
            ack(5, 3, 150),
            ack(6, 2, 110),
        ];
        assert!(check(&facts).is_empty());
        let beyond = vec![
            ack(1, 2, 100),
            begun.clone(),
            started(4, 3, Some(120)),
            ack(6, 2, 130),
        ];
        assert!(check(&beyond)[0]
            .message
            .contains("two instances accepted writes"));
        let never_begun = vec![ack(1, 2, 100), started(4, 3, Some(120)), ack(5, 3, 150)];
        assert!(check(&never_begun)[0]
            .message
            .contains("no promotion between them"));
        let did_not_take = vec![
            ack(1, 2, 100),
            begun,
            started(4, 3, None),
            started(5, 3, Some(120)),
            ack(6, 3, 150),
        ];
        assert_eq!(check(&did_not_take).len(), 1);
    }

    #[test]
    fn failover_and_failback_form_one_line() {
        let facts = [
            ack(1, 2, 100),
            promoted(2, 3, 4, 180),
            // A late acknowledgement of a commit the promoted mirror holds.
            ack(3, 2, 180),
            ack(4, 3, 250),
            promoted(5, 2, 6, 250),
            ack(6, 2, 300),
        ];
        assert!(check(&facts).is_empty(), "{:?}", check(&facts));
    }

    #[test]
    fn a_deposed_primary_acknowledging_beyond_the_promoted_wal_is_a_fork() {
        let v = check(&[
            ack(1, 2, 100),
            promoted(2, 3, 4, 150),
            ack(3, 2, 220),
            ack(4, 2, 260),
        ]);
        assert_eq!(v.len(), 1, "one violation per content");
        assert!(v[0]
            .message
            .contains("dbid 2 acknowledged a commit ending at 220"));
        assert_eq!(v[0].first_event.at_ms, 3);
    }

    #[test]
    fn two_writers_without_a_promotion_or_two_promotions_in_one_epoch_are_forks() {
        let v = check(&[ack(1, 2, 100), ack(2, 3, 120)]);
        assert!(v[0].message.contains("no promotion between"), "{:?}", v);
        let v = check(&[promoted(1, 3, 4, 100), promoted(2, 2, 4, 100)]);
        assert!(v[0].message.contains("no newer"), "{:?}", v);
    }
}
