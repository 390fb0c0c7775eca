//! **No block reaches disk before the WAL that covers it.**
//!
//! Seed (002, segment mirroring): "the databases are still consistent because the transaction
//! log has been replicated" — consistency after a failure rests on the log: whatever a block
//! holds must be found in the log, or recovery cannot put the block right. This is the
//! write-ahead rule every WAL-based store keeps (DESIGN section 4: the buffer cache writes a
//! dirty block only once the WAL up to its page LSN is flushed).
//!
//! Exact rule: no instance's crash recovery finds a block on its disk stamped with a page LSN
//! beyond the end of its recovered WAL ([`Fact::BlockBeyondWal`]; such an instance fails
//! itself rather than serve the block). The simulated disk keeps, at a crash, some unsynced
//! block writes and drops unsynced WAL, so a block written early survives while its WAL does
//! not. Injected faults never produce it: a bit flip fails the block's checksum first.

use super::Violation;
use crate::observer::Observed;
use crate::workload::history::Event;
use cluster::model::observe::Fact;

pub const NAME: &str = "wal-before-data";

pub fn check(facts: &[Observed]) -> Vec<Violation> {
    facts
        .iter()
        .filter_map(|o| match &o.fact {
            Fact::BlockBeyondWal {
                content,
                dbid,
                file,
                block,
                page_lsn,
                wal_end,
            } => Some(Violation {
                checker: NAME,
                message: format!(
                    "content {content}: dbid {dbid} recovered its WAL to {wal_end}, but block {block} of {file} on its disk has page LSN {page_lsn}: the block was written before the WAL covering it was durable"
                ),
                first_event: Event {
                    at_ms: o.at_ms,
                    client: 0,
                    txn: 0,
                    kind: "recovery".into(),
                    detail: format!("dbid {dbid} opened its storage and failed itself"),
                },
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beyond(at_ms: u64, page_lsn: u64, wal_end: u64) -> Observed {
        Observed {
            at_ms,
            fact: Fact::BlockBeyondWal {
                content: 2,
                dbid: 7,
                file: "base/heap/16384".into(),
                block: 3,
                page_lsn,
                wal_end,
            },
        }
    }

    #[test]
    fn a_block_beyond_the_recovered_wal_is_a_violation_and_nothing_else_is() {
        let promoted = Observed {
            at_ms: 5,
            fact: Fact::Promoted {
                content: 2,
                dbid: 8,
                epoch: 3,
                end_lsn: 900,
            },
        };
        assert!(check(std::slice::from_ref(&promoted)).is_empty());
        let v = check(&[promoted, beyond(40, 1200, 1100)]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].checker, NAME);
        assert!(v[0].message.contains("page LSN 1200"), "{}", v[0].message);
        assert_eq!(v[0].first_event.at_ms, 40);
    }
}
