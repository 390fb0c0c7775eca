//! **A mirror is promoted only if it was in sync.**
//!
//! Seed 002 (fault detection) and the real prober's rule: only an in-sync mirror is promoted;
//! otherwise the content is down (double fault). Judged on WAL positions: every commit the old
//! primary acknowledged before the promotion lies within the promoted mirror's WAL (its end of
//! WAL at promotion is at or past the commit's record). A mirror's WAL is a byte-identical
//! prefix of its primary's, so the positions are comparable.

use super::Violation;
use crate::observer::Observed;
use crate::workload::history::Event;
use cluster::model::observe::Fact;

pub const NAME: &str = "promoted-in-sync";

pub fn check(facts: &[Observed]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (i, promotion) in facts.iter().enumerate() {
        let Fact::Promoted {
            content,
            dbid,
            epoch,
            end_lsn,
        } = promotion.fact
        else {
            continue;
        };
        // The furthest commit another instance of this content acknowledged before this point.
        let beyond = facts[..i]
            .iter()
            .filter_map(|o| match o.fact {
                Fact::Acknowledged {
                    content: c,
                    dbid: d,
                    lsn,
                    ..
                } if c == content && d != dbid && lsn > end_lsn => Some((o, d, lsn)),
                _ => None,
            })
            .max_by_key(|(_, _, lsn)| *lsn);
        if let Some((ack, old, lsn)) = beyond {
            violations.push(Violation {
                checker: NAME,
                message: format!(
                    "content {content}: dbid {dbid} was promoted at epoch {epoch} with its WAL ending at {end_lsn}, but dbid {old} had acknowledged a commit ending at {lsn} ({} ms): the mirror was not in sync",
                    ack.at_ms
                ),
                first_event: Event {
                    at_ms: promotion.at_ms,
                    client: 0,
                    txn: 0,
                    kind: "promote".into(),
                    detail: format!("dbid {dbid} promoted for content {content} at epoch {epoch}, end of WAL {end_lsn}"),
                },
            });
        }
    }
    violations
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

    fn promoted(at_ms: u64, dbid: u16, end_lsn: u64) -> Observed {
        Observed {
            at_ms,
            fact: Fact::Promoted {
                content: 0,
                dbid,
                epoch: 4,
                end_lsn,
            },
        }
    }

    #[test]
    fn fires_only_when_an_acknowledged_commit_lies_beyond_the_promoted_wal() {
        let in_sync = [
            ack(1, 2, 100),
            ack(2, 2, 180),
            promoted(3, 3, 180),
            ack(4, 3, 250),
        ];
        assert!(check(&in_sync).is_empty());
        let lagging = [ack(1, 2, 100), ack(2, 2, 180), promoted(3, 3, 150)];
        let v = check(&lagging);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("ending at 180"), "{}", v[0].message);
        let other_content = [
            Observed {
                at_ms: 1,
                fact: Fact::Acknowledged {
                    content: 1,
                    dbid: 4,
                    epoch: 3,
                    lsn: 900,
                },
            },
            promoted(3, 3, 150),
        ];
        assert!(check(&other_content).is_empty());
    }
}
