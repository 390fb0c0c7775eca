//! **A transaction reported as failed left no trace, and none is half-applied.**
//!
//! Seed (002, fault detection): transactions in flight when a segment fails "roll back"; the
//! client sees success or a clear error, never a partial result. A failed transaction's rows must
//! be absent; an unknown one's rows all present or all absent.

use std::collections::BTreeMap;

use cluster::wal::{Key, Value};

use super::Violation;
use crate::history::{Outcome, TxnRecord};

pub const NAME: &str = "aborted-stays-aborted";

pub fn check(txns: &[TxnRecord], final_rows: &BTreeMap<(String, Key), Value>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for txn in txns {
        let present = txn
            .rows
            .iter()
            .filter(|(key, value)| final_rows.get(&(txn.table.clone(), *key)) == Some(value))
            .count();
        let message = match txn.outcome {
            Some(Outcome::Fail) if present > 0 => format!(
                "transaction {} of client {} failed ({}) but {present} of its rows are present",
                txn.id,
                txn.client,
                txn.error.clone().unwrap_or_default()
            ),
            Some(Outcome::Unknown) | None if present > 0 && present < txn.rows.len() => {
                format!(
                    "transaction {} of client {} is half-applied: {present} of {} rows present",
                    txn.id,
                    txn.client,
                    txn.rows.len()
                )
            }
            _ => continue,
        };
        violations.push(Violation {
            checker: NAME,
            message,
            first_event: txn.completion_event(),
        });
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_on_a_present_failed_transaction_and_a_half_applied_unknown_one() {
        let mk = |id, outcome, rows: Vec<(Key, Value)>| TxnRecord {
            id,
            client: 0,
            table: "t".into(),
            rows,
            invoked_ms: 0,
            completed_ms: Some(1),
            outcome: Some(outcome),
            error: None,
        };
        let txns = vec![
            mk(0, Outcome::Fail, vec![(1, vec![1])]),
            mk(1, Outcome::Unknown, vec![(2, vec![2]), (3, vec![3])]),
            mk(2, Outcome::Unknown, vec![(4, vec![4])]),
            mk(3, Outcome::Fail, vec![(5, vec![5])]),
        ];
        let mut rows = BTreeMap::new();
        rows.insert(("t".to_string(), 1), vec![1]);
        rows.insert(("t".to_string(), 2), vec![2]);
        rows.insert(("t".to_string(), 4), vec![4]);
        let v = check(&txns, &rows);
        assert_eq!(
            v.iter().map(|v| v.first_event.txn).collect::<Vec<_>>(),
            vec![0, 1]
        );
    }
}
