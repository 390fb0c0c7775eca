//! **No acknowledged commit is ever lost.**
//!
//! Seed (002, segment mirroring): "in synchronous mode a commit is acknowledged only after the
//! mirror has flushed the commit record" — so a failover to the mirror keeps every acknowledged
//! transaction.
//!
//! Exact rule, per row (see [`super::model`]): the final read of the healed cluster must show
//! the value of the last acknowledged write of the row (an insert's or update's value; no row
//! after a delete), unless a write that may have replaced it — one whose outcome is unknown, or
//! one concurrent with it — shows instead. A row whose acknowledged write is missing, holds an
//! older value, or holds a value no possible write left is a lost commit.

use std::collections::BTreeMap;

use cluster::wal::{Key, Value};

use super::model::{possible, show, value_of, Model, Source};
use super::Violation;
use crate::workload::history::TxnRecord;

pub const NAME: &str = "no-lost-commits";

/// `final_rows`: every row of every table, as read from the cluster after healing.
pub fn check(txns: &[TxnRecord], final_rows: &BTreeMap<(String, Key), Value>) -> Vec<Violation> {
    check_with(txns, &Model::build(txns), final_rows)
}

/// [`check`] on a model of `txns` already built (the runner builds one for three checkers).
pub fn check_with(
    txns: &[TxnRecord],
    model: &Model,
    final_rows: &BTreeMap<(String, Key), Value>,
) -> Vec<Violation> {
    // Lost rows, grouped by the acknowledged transaction whose write is gone.
    let mut lost: BTreeMap<usize, Vec<(Key, String)>> = BTreeMap::new();
    for (table, key, writes) in model.rows() {
        let seen = final_rows.get(&(table.to_string(), key));
        let states = possible(writes, u64::MAX, u64::MAX);
        if states.iter().any(|s| value_of(writes, *s) == seen) {
            continue;
        }
        // The latest acknowledged write (the rule admits several only if they overlap).
        let latest = states
            .iter()
            .filter_map(|s| match s {
                Source::Write(i) if writes[*i].acked() => Some(&writes[*i]),
                _ => None,
            })
            .max_by_key(|w| w.complete_seq);
        if let Some(w) = latest {
            lost.entry(w.txn).or_default().push((
                key,
                format!(
                    "key {key} of \"{table}\" holds {}",
                    show(txns, writes, seen)
                ),
            ));
        }
    }
    let mut violations: Vec<Violation> = lost
        .into_iter()
        .map(|(i, rows)| {
            let txn = &txns[i];
            let keys: Vec<Key> = rows.iter().map(|(k, _)| *k).collect();
            let first = &rows[0].1;
            Violation {
                checker: NAME,
                message: format!(
                    "transaction {} of client {} was acknowledged at {} ms but its writes of keys {keys:?} are missing or changed after failover ({first})",
                    txn.id,
                    txn.client,
                    txn.completed_ms.unwrap_or(0),
                ),
                first_event: txn.completion_event(),
            }
        })
        .collect();
    violations.sort_by_key(|v| (v.first_event.at_ms, v.first_event.txn));
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::history::testing::{delete, insert, rows, txn, update};
    use crate::workload::history::Outcome;

    #[test]
    fn fires_on_a_missing_or_changed_acknowledged_row_only() {
        let txns = vec![
            txn(0, (0, 1), Outcome::Ok, vec![insert(1, &[1])]),
            txn(1, (2, 3), Outcome::Ok, vec![insert(2, &[2])]),
            txn(2, (4, 5), Outcome::Unknown, vec![insert(3, &[3])]),
            txn(3, (6, 7), Outcome::Ok, vec![insert(4, &[4])]),
        ];
        let v = check(&txns, &rows(&[(1, &[1]), (4, &[9])]));
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].first_event.txn, 1);
        assert_eq!(v[1].first_event.txn, 3);
    }

    #[test]
    fn fires_when_an_acknowledged_update_or_delete_is_undone() {
        let txns = vec![
            txn(
                0,
                (0, 3),
                Outcome::Ok,
                vec![insert(1, b"a"), insert(2, b"a")],
            ),
            txn(
                1,
                (4, 7),
                Outcome::Ok,
                vec![insert(3, b"a"), insert(4, b"a")],
            ),
            // Lost: key 1 still holds "a" after this update was acknowledged.
            txn(2, (8, 10), Outcome::Ok, vec![update(1, b"b", 1)]),
            // Lost: key 2 is back after this delete was acknowledged.
            txn(3, (11, 13), Outcome::Ok, vec![delete(2, 1)]),
            // Not lost: an update of unknown outcome may have overwritten key 3 afterwards.
            txn(4, (14, 16), Outcome::Ok, vec![update(3, b"b", 1)]),
            txn(5, (17, 19), Outcome::Unknown, vec![update(3, b"c", 1)]),
            // Not lost: a failed update is not a commit, and key 4 keeps "a".
            txn(6, (20, 22), Outcome::Fail, vec![update(4, b"b", 1)]),
        ];
        let final_rows = rows(&[(1, b"a"), (2, b"a"), (3, b"c"), (4, b"a")]);
        let v = check(&txns, &final_rows);
        assert_eq!(
            v.iter().map(|v| v.first_event.txn).collect::<Vec<_>>(),
            vec![2, 3],
            "{v:#?}"
        );
        assert!(
            v[0].message.contains("written by transaction 0"),
            "{}",
            v[0].message
        );
    }
}
