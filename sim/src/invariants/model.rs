//! The per-row model the checkers share: every write of every row, with its transaction's
//! outcome and window, and the one rule for which states of a row an observer may see.
//!
//! A write takes effect, if at all, somewhere between its transaction's invocation and its
//! completion; a write whose outcome is unknown may take effect at any time after its
//! invocation (a commit message can sit in a buffer for as long as the network likes), so it
//! is never known to be overwritten. A failed write never takes effect. Values are random
//! and unique per write, so a value names the write that produced it (`None`, no row, is the
//! initial state or any delete).
//!
//! **The rule.** An observation that began at sequence number `i` and ended at `r` may see:
//! - the initial state (no row), unless an acknowledged write of the row completed before `i`;
//! - the value of a write `w` that did not fail and was invoked before `r`, unless `w` was
//!   acknowledged and some other acknowledged write `w'` was invoked after `w` completed and
//!   completed itself before `i` (then `w'` definitely overwrote `w` before the observation).
//!
//! So: the latest write acknowledged before the observation began, or any write concurrent with
//! the observation, or any write whose outcome is unknown. The final read of the healed cluster
//! is an observation that begins after everything else.

use std::collections::{BTreeMap, BTreeSet};

use cluster::model::catalog::Content;
use cluster::wal::{Key, Value};

use crate::workload::history::{Outcome, TxnRecord};

/// One write of one row.
#[derive(Clone, Debug)]
pub struct WriteOf {
    /// Index of the transaction in the history.
    pub txn: usize,
    pub value: Option<Value>,
    pub outcome: Option<Outcome>,
    pub invoke_seq: u64,
    /// `None` while the transaction never completed.
    pub complete_seq: Option<u64>,
}

impl WriteOf {
    pub fn acked(&self) -> bool {
        self.outcome == Some(Outcome::Ok)
    }

    pub fn failed(&self) -> bool {
        self.outcome == Some(Outcome::Fail)
    }

    /// Acknowledged, and completed before sequence number `seq`.
    fn acked_before(&self, seq: u64) -> bool {
        self.acked() && self.complete_seq.is_some_and(|c| c < seq)
    }
}

/// Where a possible state of a row comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Initial,
    /// Index into the row's writes.
    Write(usize),
}

/// By table, then by key: a look-up by `&str` needs no owned key, and compares the table's
/// name once.
#[derive(Default)]
pub struct Model {
    rows: BTreeMap<String, BTreeMap<Key, Vec<WriteOf>>>,
    by_content: BTreeMap<String, BTreeMap<Content, BTreeSet<Key>>>,
}

impl Model {
    pub fn build(txns: &[TxnRecord]) -> Model {
        let mut model = Model::default();
        for (i, txn) in txns.iter().enumerate() {
            for op in &txn.ops {
                if let (Some(key), false) =
                    (op.op.key(), matches!(op.op, cluster::wire::Op::Get { .. }))
                {
                    table_entry(&mut model.by_content, op.op.table())
                        .entry(op.content)
                        .or_default()
                        .insert(key);
                }
            }
            for w in txn.writes() {
                table_entry(&mut model.rows, &w.table)
                    .entry(w.key)
                    .or_default()
                    .push(WriteOf {
                        txn: i,
                        value: w.value,
                        outcome: txn.outcome,
                        invoke_seq: txn.invoke_seq,
                        complete_seq: txn.complete_seq,
                    });
            }
        }
        model
    }

    /// Every row with its writes: table, key, writes, in that order.
    pub fn rows(&self) -> impl Iterator<Item = (&str, Key, &[WriteOf])> {
        self.rows.iter().flat_map(|(table, keys)| {
            keys.iter()
                .map(move |(key, w)| (table.as_str(), *key, w.as_slice()))
        })
    }

    pub fn writes(&self, table: &str, key: Key) -> &[WriteOf] {
        self.rows
            .get(table)
            .and_then(|keys| keys.get(&key))
            .map(|w| w.as_slice())
            .unwrap_or(&[])
    }

    /// Every key of `table` some statement routed to `content`.
    pub fn keys_on(&self, table: &str, content: Content) -> impl Iterator<Item = Key> + '_ {
        self.by_content
            .get(table)
            .and_then(|contents| contents.get(&content))
            .into_iter()
            .flatten()
            .copied()
    }

    /// The states of the row an observation from `invoke_seq` to `returned_seq` may see (the
    /// rule in the module doc).
    pub fn possible(
        &self,
        table: &str,
        key: Key,
        invoke_seq: u64,
        returned_seq: u64,
    ) -> Vec<Source> {
        possible(self.writes(table, key), invoke_seq, returned_seq)
    }
}

/// The map of `table`, made on its first use (the name is copied once per table, not per row).
fn table_entry<'m, V: Default>(maps: &'m mut BTreeMap<String, V>, table: &str) -> &'m mut V {
    if !maps.contains_key(table) {
        maps.insert(table.to_string(), V::default());
    }
    maps.get_mut(table).expect("inserted above")
}

/// The rule of the module doc, over one row's writes.
pub fn possible(writes: &[WriteOf], invoke_seq: u64, returned_seq: u64) -> Vec<Source> {
    let mut states = Vec::new();
    if !writes.iter().any(|w| w.acked_before(invoke_seq)) {
        states.push(Source::Initial);
    }
    for (i, w) in writes.iter().enumerate() {
        if w.failed() || w.invoke_seq >= returned_seq {
            continue;
        }
        let overwritten = w.acked()
            && writes.iter().any(|later| {
                later.acked_before(invoke_seq)
                    && w.complete_seq.is_some_and(|c| c < later.invoke_seq)
            });
        if !overwritten {
            states.push(Source::Write(i));
        }
    }
    states
}

/// The value of a state.
pub fn value_of(writes: &[WriteOf], source: Source) -> Option<&Value> {
    match source {
        Source::Initial => None,
        Source::Write(i) => writes[i].value.as_ref(),
    }
}

/// A row's value as a person reads it in a report: `no row`, or its length and first bytes,
/// with the transaction that wrote it when the history knows it.
pub fn show(txns: &[TxnRecord], writes: &[WriteOf], value: Option<&Value>) -> String {
    let Some(v) = value else {
        return "no row".to_string();
    };
    let head: String = v.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let text = format!("value {head}.. ({} bytes)", v.len());
    match writes.iter().find(|w| w.value.as_ref() == Some(v)) {
        Some(w) => {
            let t = &txns[w.txn];
            let outcome = match t.outcome {
                Some(Outcome::Ok) => "acknowledged",
                Some(Outcome::Fail) => "failed",
                Some(Outcome::Unknown) | None => "of unknown outcome",
            };
            format!("{text} written by transaction {} ({outcome})", t.id)
        }
        None => format!("{text} that no transaction wrote"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(value: u8, outcome: Outcome, invoke_seq: u64, complete_seq: u64) -> WriteOf {
        WriteOf {
            txn: 0,
            value: Some(vec![value]),
            outcome: Some(outcome),
            invoke_seq,
            complete_seq: Some(complete_seq),
        }
    }

    #[test]
    fn the_rule_allows_the_latest_acknowledged_concurrent_and_unknown_writes_only() {
        let writes = vec![
            w(1, Outcome::Ok, 1, 2),      // overwritten by 2 before 20
            w(2, Outcome::Ok, 3, 4),      // the latest acknowledged before 20
            w(3, Outcome::Unknown, 5, 6), // may land at any time
            w(4, Outcome::Fail, 7, 8),    // never lands
            w(5, Outcome::Ok, 19, 22),    // concurrent with a read from 20 to 21
            w(6, Outcome::Ok, 23, 24),    // invoked after the read returned
        ];
        assert_eq!(
            possible(&writes, 20, 21),
            vec![Source::Write(1), Source::Write(2), Source::Write(4)]
        );
        assert_eq!(possible(&writes, 0, 1), vec![Source::Initial]);
        assert_eq!(
            possible(&writes, u64::MAX, u64::MAX),
            vec![Source::Write(2), Source::Write(5)]
        );
    }
}
