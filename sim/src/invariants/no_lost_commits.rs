//! **No acknowledged commit is ever lost.**
//!
//! Seed (002, segment mirroring): "in synchronous mode a commit is acknowledged only after the
//! mirror has flushed the commit record" — so a failover to the mirror keeps every acknowledged
//! transaction. Every transaction the client saw commit must be present, with exactly the rows
//! it wrote, in the final read of the healed cluster.

use std::collections::BTreeMap;

use cluster::wal::{Key, Value};

use super::Violation;
use crate::history::{Outcome, TxnRecord};

pub const NAME: &str = "no-lost-commits";

/// `final_rows`: every row of every table, as read from the cluster after healing.
pub fn check(txns: &[TxnRecord], final_rows: &BTreeMap<(String, Key), Value>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut acked: Vec<&TxnRecord> = txns
        .iter()
        .filter(|t| t.outcome == Some(Outcome::Ok))
        .collect();
    acked.sort_by_key(|t| (t.completed_ms, t.id));
    for txn in acked {
        let missing: Vec<Key> = txn
            .rows
            .iter()
            .filter(|(key, value)| final_rows.get(&(txn.table.clone(), *key)) != Some(value))
            .map(|(key, _)| *key)
            .collect();
        if !missing.is_empty() {
            violations.push(Violation {
                checker: NAME,
                message: format!(
                    "transaction {} of client {} was acknowledged at {} ms but rows {:?} of \"{}\" are missing or changed after failover",
                    txn.id,
                    txn.client,
                    txn.completed_ms.unwrap_or(0),
                    missing,
                    txn.table
                ),
                first_event: txn.completion_event(),
            });
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: u64, outcome: Outcome, rows: Vec<(Key, Value)>) -> TxnRecord {
        TxnRecord {
            id,
            client: 1,
            table: "t".into(),
            rows,
            invoked_ms: 0,
            completed_ms: Some(id),
            outcome: Some(outcome),
            error: None,
        }
    }

    #[test]
    fn fires_on_a_missing_or_changed_acknowledged_row_only() {
        let txns = vec![
            txn(0, Outcome::Ok, vec![(1, vec![1])]),
            txn(1, Outcome::Ok, vec![(2, vec![2])]),
            txn(2, Outcome::Unknown, vec![(3, vec![3])]),
            txn(3, Outcome::Ok, vec![(4, vec![4])]),
        ];
        let mut rows = BTreeMap::new();
        rows.insert(("t".to_string(), 1), vec![1]);
        rows.insert(("t".to_string(), 4), vec![9]);
        let v = check(&txns, &rows);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].first_event.txn, 1);
        assert_eq!(v[1].first_event.txn, 3);
    }
}
