//! **A transaction reported as failed left no trace, and none is half-applied.**
//!
//! Seed (002, fault detection): transactions in flight when a segment fails "roll back"; the
//! client sees success or a clear error, never a partial result.
//!
//! Exact rule: in the final read of the healed cluster, no row holds a value a failed
//! transaction wrote (values are unique per write, so such a value can only come from that
//! transaction). A transaction of unknown outcome took effect on all of its rows or on none:
//! counting only the rows where the final read can tell — no later write of the row may have
//! replaced it, and its value differs from every other state the row may be in (see
//! [`super::model`]) — it is present on all of them or absent from all of them.

use std::collections::BTreeMap;

use cluster::wal::{Key, Value};

use super::model::{possible, value_of, Model, Source};
use super::Violation;
use crate::workload::history::{Outcome, TxnRecord};

pub const NAME: &str = "aborted-stays-aborted";

pub fn check(txns: &[TxnRecord], final_rows: &BTreeMap<(String, Key), Value>) -> Vec<Violation> {
    check_with(txns, &Model::build(txns), final_rows)
}

/// [`check`] on a model of `txns` already built (the runner builds one for three checkers).
pub fn check_with(
    txns: &[TxnRecord],
    model: &Model,
    final_rows: &BTreeMap<(String, Key), Value>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (i, txn) in txns.iter().enumerate() {
        let (mut present, mut absent) = (0usize, 0usize);
        for w in txn.writes() {
            let seen = final_rows.get(&(w.table.clone(), w.key));
            let is_present = seen == w.value.as_ref();
            if txn.outcome == Some(Outcome::Fail) {
                present += usize::from(w.value.is_some() && is_present);
                continue;
            }
            if txn.outcome == Some(Outcome::Ok) {
                continue;
            }
            let writes = model.writes(&w.table, w.key);
            let replaced_later = writes
                .iter()
                .any(|o| o.txn != i && !o.failed() && o.invoke_seq > txn.invoke_seq);
            let ambiguous = possible(writes, u64::MAX, u64::MAX)
                .into_iter()
                .filter(|s| !matches!(s, Source::Write(j) if writes[*j].txn == i))
                .any(|s| value_of(writes, s) == w.value.as_ref());
            if replaced_later || ambiguous {
                continue;
            }
            if is_present {
                present += 1;
            } else {
                absent += 1;
            }
        }
        let message = match txn.outcome {
            Some(Outcome::Fail) if present > 0 => format!(
                "transaction {} of client {} failed ({}) but {present} of its rows are present",
                txn.id,
                txn.client,
                txn.error.clone().unwrap_or_default()
            ),
            Some(Outcome::Unknown) | None if present > 0 && absent > 0 => format!(
                "transaction {} of client {} is half-applied: {present} of {} rows present",
                txn.id,
                txn.client,
                present + absent
            ),
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
    use crate::workload::history::testing::{delete, insert, rows, txn, update};

    #[test]
    fn fires_on_a_present_failed_transaction_and_a_half_applied_unknown_one() {
        let txns = vec![
            txn(0, (0, 2), Outcome::Fail, vec![insert(1, &[1])]),
            txn(
                1,
                (3, 6),
                Outcome::Unknown,
                vec![insert(2, &[2]), insert(3, &[3])],
            ),
            txn(2, (7, 9), Outcome::Unknown, vec![insert(4, &[4])]),
            txn(3, (10, 12), Outcome::Fail, vec![insert(5, &[5])]),
        ];
        let v = check(&txns, &rows(&[(1, &[1]), (2, &[2]), (4, &[4])]));
        assert_eq!(
            v.iter().map(|v| v.first_event.txn).collect::<Vec<_>>(),
            vec![0, 1]
        );
    }

    #[test]
    fn fires_on_a_failed_update_and_a_half_applied_update_and_delete() {
        let txns = vec![
            txn(
                0,
                (0, 5),
                Outcome::Ok,
                vec![insert(1, b"a"), insert(2, b"a"), insert(3, b"a")],
            ),
            // Failed, yet key 1 holds its value.
            txn(1, (6, 8), Outcome::Fail, vec![update(1, b"b", 1)]),
            // Unknown: the update of key 2 landed, the delete of key 3 did not.
            txn(
                2,
                (9, 12),
                Outcome::Unknown,
                vec![update(2, b"c", 1), delete(3, 1)],
            ),
        ];
        let v = check(&txns, &rows(&[(1, b"b"), (2, b"c"), (3, b"a")]));
        assert_eq!(
            v.iter().map(|v| v.first_event.txn).collect::<Vec<_>>(),
            vec![1, 2],
            "{v:#?}"
        );
        // All or nothing is fine.
        let v = check(&txns, &rows(&[(1, b"a"), (2, b"a"), (3, b"a")]));
        assert!(v.is_empty(), "{v:#?}");
        let v = check(&txns, &rows(&[(1, b"a"), (2, b"c")]));
        assert!(v.is_empty(), "{v:#?}");
    }
}
