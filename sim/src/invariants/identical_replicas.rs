//! **After resynchronization, primary and mirror hold identical data.**
//!
//! Seed 002 (segment mirroring): resynchronization "applies the logged changes to the repaired
//! [instance]"; when it completes "the system state is Synchronized". At the end of a run, for
//! every pair the catalog shows in sync, the primary's and the mirror's data digests — taken
//! when the mirror has replayed exactly up to the primary's flushed WAL — must be equal (what
//! gpcheckmirrorseg checks).

use super::Violation;
use crate::workload::history::Event;

pub const NAME: &str = "identical-replicas";

/// One synchronized pair's checksums: `(dbid, wal position, digest)` of primary and mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairChecksums {
    pub content: i16,
    pub primary: (u16, u64, u64),
    pub mirror: (u16, u64, u64),
}

pub fn check(pairs: &[PairChecksums], at_ms: u64) -> Vec<Violation> {
    pairs
        .iter()
        .filter(|p| p.primary.1 == p.mirror.1 && p.primary.2 != p.mirror.2)
        .map(|p| Violation {
            checker: NAME,
            message: format!(
                "content {}: at WAL position {} primary dbid {} has digest {:016x} but mirror dbid {} has {:016x}",
                p.content, p.primary.1, p.primary.0, p.primary.2, p.mirror.0, p.mirror.2
            ),
            first_event: Event { at_ms, client: 0, txn: 0, kind: "checksum".into(), detail: format!("compare content {}", p.content) },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_on_different_digests_at_the_same_position_only() {
        let same = PairChecksums {
            content: 0,
            primary: (2, 500, 7),
            mirror: (3, 500, 7),
        };
        let differ = PairChecksums {
            content: 1,
            primary: (4, 500, 7),
            mirror: (5, 500, 8),
        };
        let lagging = PairChecksums {
            content: 2,
            primary: (6, 500, 7),
            mirror: (7, 400, 8),
        };
        let v = check(&[same, differ, lagging], 10);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("content 1"));
    }
}
