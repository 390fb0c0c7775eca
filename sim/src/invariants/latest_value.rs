//! **A read returns the latest committed value.**
//!
//! Seed (002, segment mirroring): "If a primary segment becomes unavailable, database queries
//! fail over to the mirror segment" and "the databases are still consistent because the
//! transaction log has been replicated. If a mirror takes over for a failed primary, the
//! transactions in its log are applied to the database tables." — so a query after a failover
//! reads what was committed, never an older state (DESIGN section 4, checker 7: "reads return
//! the latest committed value").
//!
//! Exact rule (see [`super::model`]): a statement that reads a row — a single-key read, a scan
//! (for every row of its table on its content, present or absent), or an update or delete that
//! found no row — invoked at `i` and returned at `r` must see either the value of the latest
//! write of that row acknowledged before `i` (no row if none was), or the value of a write
//! whose transaction was concurrent with the read (invoked before `r`, not acknowledged before
//! `i`), or the value of a write whose outcome is unknown. A failed transaction's value, an
//! overwritten value, or a row that vanished after an acknowledged insert is a violation. A
//! row the reading transaction wrote itself is not checked.

use cluster::wal::{Key, Value};

use super::model::{show, value_of, Model};
use super::Violation;
use crate::workload::history::{Event, TxnRecord};

pub const NAME: &str = "latest-value";

/// Rows a scan may list before the report stops naming them.
const SCAN_ROWS_SHOWN: usize = 3;

pub fn check(txns: &[TxnRecord]) -> Vec<Violation> {
    check_with(txns, &Model::build(txns))
}

/// [`check`] on a model of `txns` already built (the runner builds one for three checkers).
pub fn check_with(txns: &[TxnRecord], model: &Model) -> Vec<Violation> {
    let mut violations = Vec::new();
    for txn in txns {
        for read in txn.reads() {
            if let Some(why) = judge(
                txns,
                model,
                &read.table,
                read.key,
                read.value.as_ref(),
                (read.invoke_seq, read.returned_seq),
            ) {
                violations.push(Violation {
                    checker: NAME,
                    message: format!(
                        "transaction {} of client {} read key {} of \"{}\": {why}",
                        txn.id, txn.client, read.key, read.table
                    ),
                    first_event: read_event(
                        txn,
                        read.returned_ms,
                        format!("read {} key {}", read.table, read.key),
                    ),
                });
            }
        }
        for scan in txn.scans() {
            let mut keys: Vec<Key> = model.keys_on(scan.table, scan.content).collect();
            keys.extend(scan.rows.keys().copied());
            keys.sort_unstable();
            keys.dedup();
            let bad: Vec<(Key, String)> = keys
                .into_iter()
                .filter_map(|key| {
                    let seen = scan.rows.get(&key).copied();
                    judge(
                        txns,
                        model,
                        scan.table,
                        key,
                        seen,
                        (scan.invoke_seq, scan.returned_seq),
                    )
                    .map(|why| (key, why))
                })
                .collect();
            if bad.is_empty() {
                continue;
            }
            let shown: Vec<String> = bad
                .iter()
                .take(SCAN_ROWS_SHOWN)
                .map(|(key, why)| format!("key {key}: {why}"))
                .collect();
            violations.push(Violation {
                checker: NAME,
                message: format!(
                    "transaction {} of client {} scanned \"{}\" on content {} and {} rows are wrong; {}{}",
                    txn.id,
                    txn.client,
                    scan.table,
                    scan.content,
                    bad.len(),
                    shown.join("; "),
                    if bad.len() > SCAN_ROWS_SHOWN { "; ..." } else { "" }
                ),
                first_event: read_event(
                    txn,
                    scan.returned_ms,
                    format!("scan {} on content {}", scan.table, scan.content),
                ),
            });
        }
    }
    violations
}

/// Why `seen` is not a state the row may be in for this observation, or `None` if it is.
fn judge(
    txns: &[TxnRecord],
    model: &Model,
    table: &str,
    key: Key,
    seen: Option<&Value>,
    (invoke_seq, returned_seq): (u64, u64),
) -> Option<String> {
    let writes = model.writes(table, key);
    let states = model.possible(table, key, invoke_seq, returned_seq);
    if states.iter().any(|s| value_of(writes, *s) == seen) {
        return None;
    }
    let expected: Vec<String> = states
        .iter()
        .map(|s| show(txns, writes, value_of(writes, *s)))
        .collect();
    Some(format!(
        "saw {}, expected {}",
        show(txns, writes, seen),
        expected.join(" or ")
    ))
}

fn read_event(txn: &TxnRecord, at_ms: u64, detail: String) -> Event {
    Event {
        at_ms,
        client: txn.client,
        txn: txn.id,
        kind: "read".into(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::history::testing::{delete, get, insert, txn, update};
    use crate::workload::history::Outcome;
    use cluster::wire::{Op, OpResult};

    #[test]
    fn fires_on_stale_failed_and_vanished_reads_only() {
        let txns = vec![
            txn(0, (1, 4), Outcome::Ok, vec![insert(1, b"a")]),
            txn(1, (5, 8), Outcome::Ok, vec![update(1, b"b", 1)]),
            // Stale: the update to "b" was acknowledged before this read began.
            txn(2, (10, 13), Outcome::Ok, vec![get(1, Some(b"a"))]),
            // Fine: the latest acknowledged value.
            txn(3, (14, 17), Outcome::Ok, vec![get(1, Some(b"b"))]),
            txn(4, (20, 23), Outcome::Fail, vec![update(1, b"c", 1)]),
            // A failed transaction's value.
            txn(5, (30, 33), Outcome::Ok, vec![get(1, Some(b"c"))]),
            // The row vanished: an update that finds no row, and a scan that misses it.
            txn(6, (40, 43), Outcome::Ok, vec![update(1, b"d", 0)]),
            txn(
                7,
                (50, 53),
                Outcome::Ok,
                vec![(Op::Scan { table: "t".into() }, Some(OpResult::Rows(vec![])))],
            ),
            // Fine: a delete of unknown outcome may or may not have happened.
            txn(8, (60, 63), Outcome::Unknown, vec![delete(1, 1)]),
            txn(9, (70, 73), Outcome::Ok, vec![get(1, None)]),
            txn(10, (74, 77), Outcome::Ok, vec![get(1, Some(b"b"))]),
            // A key nobody wrote.
            txn(11, (80, 83), Outcome::Ok, vec![get(2, Some(b"x"))]),
        ];
        let v = check(&txns);
        assert_eq!(
            v.iter().map(|v| v.first_event.txn).collect::<Vec<_>>(),
            vec![2, 5, 6, 7, 11],
            "{v:#?}"
        );
        assert!(
            v[0].message
                .contains("expected value 62.. (1 bytes) written by transaction 1 (acknowledged)"),
            "{}",
            v[0].message
        );
    }
}
