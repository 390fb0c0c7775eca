//! A Jepsen-style history: every client transaction is invoked, then completes as ok, fail
//! (definitely did not happen) or unknown (may or may not have happened). Each statement is
//! recorded with what it returned, so reads can be checked against the writes around them.
//!
//! Every invocation and completion takes the next number of one sequence shared by all clients:
//! "a happened before b" is `a.seq < b.seq`, exactly, where milliseconds would tie.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use cluster::model::catalog::Content;
use cluster::wal::{Key, Value};
use cluster::wire::{Op, OpResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    Unknown,
}

/// One statement of a transaction, and what it returned.
#[derive(Clone, Debug, Serialize)]
pub struct OpRecord {
    pub op: Op,
    /// The content the statement routes to.
    pub content: Content,
    /// Set when the statement was sent.
    pub invoke_seq: Option<u64>,
    pub returned_seq: Option<u64>,
    pub returned_ms: Option<u64>,
    pub result: Option<OpResult>,
}

/// One transaction a client ran.
#[derive(Clone, Debug, Serialize)]
pub struct TxnRecord {
    pub id: u64,
    pub client: u32,
    pub ops: Vec<OpRecord>,
    pub invoked_ms: u64,
    pub invoke_seq: u64,
    pub completed_ms: Option<u64>,
    pub complete_seq: Option<u64>,
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
}

/// A row a committed transaction leaves behind: `Some(value)` put, `None` deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowWrite {
    pub table: String,
    pub key: Key,
    pub value: Option<Value>,
}

/// What a statement saw of one row: its value, or `None` for no row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowRead {
    pub table: String,
    pub key: Key,
    pub value: Option<Value>,
    pub invoke_seq: u64,
    pub returned_seq: u64,
    pub returned_ms: u64,
}

/// What a scan saw: every row of `table` on `content`.
#[derive(Clone, Debug)]
pub struct ScanRead<'a> {
    pub table: &'a str,
    pub content: Content,
    pub invoke_seq: u64,
    pub returned_seq: u64,
    pub returned_ms: u64,
    pub rows: BTreeMap<Key, &'a Value>,
}

/// An event as a person reads it in a violation report.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub at_ms: u64,
    pub client: u32,
    pub txn: u64,
    pub kind: String,
    pub detail: String,
}

#[derive(Default)]
struct Inner {
    txns: Vec<TxnRecord>,
    next_seq: u64,
    /// Every row any transaction tried to insert, in the order of invocation: what readers
    /// pick from.
    inserted: Vec<(String, Key, Content)>,
}

impl Inner {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}

#[derive(Clone, Default)]
pub struct History {
    inner: Arc<Mutex<Inner>>,
}

impl History {
    /// Records a transaction about to begin, with the statements it will run.
    pub fn invoke(&self, client: u32, ops: Vec<(Op, Content)>, now_ms: u64) -> u64 {
        let mut h = self.inner.lock().unwrap();
        let id = h.txns.len() as u64;
        let invoke_seq = h.seq();
        for (op, content) in &ops {
            if let Op::Insert { table, key, .. } = op {
                h.inserted.push((table.clone(), *key, *content));
            }
        }
        h.txns.push(TxnRecord {
            id,
            client,
            ops: ops
                .into_iter()
                .map(|(op, content)| OpRecord {
                    op,
                    content,
                    invoke_seq: None,
                    returned_seq: None,
                    returned_ms: None,
                    result: None,
                })
                .collect(),
            invoked_ms: now_ms,
            invoke_seq,
            completed_ms: None,
            complete_seq: None,
            outcome: None,
            error: None,
        });
        id
    }

    /// Statement `op` of transaction `txn` is being sent.
    pub fn op_invoked(&self, txn: u64, op: usize) {
        let mut h = self.inner.lock().unwrap();
        let seq = h.seq();
        h.txns[txn as usize].ops[op].invoke_seq = Some(seq);
    }

    /// Statement `op` of transaction `txn` returned `result`.
    pub fn op_returned(&self, txn: u64, op: usize, result: OpResult, now_ms: u64) {
        let mut h = self.inner.lock().unwrap();
        let seq = h.seq();
        let rec = &mut h.txns[txn as usize].ops[op];
        rec.returned_seq = Some(seq);
        rec.returned_ms = Some(now_ms);
        rec.result = Some(result);
    }

    pub fn complete(&self, id: u64, outcome: Outcome, error: Option<String>, now_ms: u64) {
        let mut h = self.inner.lock().unwrap();
        let seq = h.seq();
        let txn = &mut h.txns[id as usize];
        txn.outcome = Some(outcome);
        txn.error = error;
        txn.completed_ms = Some(now_ms);
        txn.complete_seq = Some(seq);
    }

    pub fn txns(&self) -> Vec<TxnRecord> {
        self.inner.lock().unwrap().txns.clone()
    }

    /// How many rows were ever inserted (or tried to be).
    pub fn inserted_count(&self) -> usize {
        self.inner.lock().unwrap().inserted.len()
    }

    /// The `i`-th row inserted: table, key, content.
    pub fn inserted(&self, i: usize) -> (String, Key, Content) {
        self.inner.lock().unwrap().inserted[i].clone()
    }
}

impl TxnRecord {
    /// The rows this transaction changes if it commits. An update or delete that found no row
    /// changes nothing.
    pub fn writes(&self) -> Vec<RowWrite> {
        self.ops
            .iter()
            .filter(|o| o.result != Some(OpResult::Count(0)))
            .filter_map(|o| match &o.op {
                Op::Insert { table, key, value } | Op::Update { table, key, value } => {
                    Some(RowWrite {
                        table: table.clone(),
                        key: *key,
                        value: Some(value.clone()),
                    })
                }
                Op::Delete { table, key } => Some(RowWrite {
                    table: table.clone(),
                    key: *key,
                    value: None,
                }),
                Op::Get { .. } | Op::Scan { .. } => None,
            })
            .collect()
    }

    /// What this transaction's statements saw of single rows: a read's result, and "no row"
    /// for an update or delete that changed nothing. Scans are in [`TxnRecord::scans`]. A row
    /// the transaction itself wrote in an earlier statement is left out: it sees its own write.
    pub fn reads(&self) -> Vec<RowRead> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(i, o)| {
                !self.ops[..*i].iter().any(|p| {
                    p.op.key().is_some() && p.op.key() == o.op.key() && p.op.table() == o.op.table()
                })
            })
            .filter_map(|(_, o)| {
                let (invoke_seq, returned_seq) = (o.invoke_seq?, o.returned_seq?);
                let value = match (&o.op, o.result.as_ref()?) {
                    (Op::Get { .. }, OpResult::Row(row)) => row.clone(),
                    (Op::Update { .. } | Op::Delete { .. }, OpResult::Count(0)) => None,
                    _ => return None,
                };
                Some(RowRead {
                    table: o.op.table().to_string(),
                    key: o.op.key()?,
                    value,
                    invoke_seq,
                    returned_seq,
                    returned_ms: o.returned_ms.unwrap_or(self.invoked_ms),
                })
            })
            .collect()
    }

    /// Scans that returned, with the rows they saw.
    pub fn scans(&self) -> Vec<ScanRead<'_>> {
        self.ops
            .iter()
            .filter_map(|o| match (&o.op, o.result.as_ref()?) {
                (Op::Scan { table }, OpResult::Rows(rows)) => Some(ScanRead {
                    table,
                    content: o.content,
                    invoke_seq: o.invoke_seq?,
                    returned_seq: o.returned_seq?,
                    returned_ms: o.returned_ms.unwrap_or(self.invoked_ms),
                    rows: rows.iter().map(|(k, v)| (*k, v)).collect(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The contents this transaction's statements route to, in order, without repeats.
    pub fn contents(&self) -> Vec<Content> {
        let mut c: Vec<Content> = self.ops.iter().map(|o| o.content).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// The event that completed this transaction (for violation reports).
    pub fn completion_event(&self) -> Event {
        let kind = match self.outcome {
            Some(Outcome::Ok) => "ok",
            Some(Outcome::Fail) => "fail",
            Some(Outcome::Unknown) | None => "unknown",
        };
        Event {
            at_ms: self.completed_ms.unwrap_or(self.invoked_ms),
            client: self.client,
            txn: self.id,
            kind: kind.to_string(),
            detail: self.describe(),
        }
    }

    /// The statements, as a person reads them: `insert t_heap 17; delete t_heap 12`.
    pub fn describe(&self) -> String {
        let ops: Vec<String> = self
            .ops
            .iter()
            .map(|o| match &o.op {
                Op::Insert { table, key, .. } => format!("insert into {table} key {key}"),
                Op::Update { table, key, .. } => format!("update {table} key {key}"),
                Op::Delete { table, key } => format!("delete from {table} key {key}"),
                Op::Get { table, key } => format!("read {table} key {key}"),
                Op::Scan { table } => format!("scan {table} on content {}", o.content),
            })
            .collect();
        ops.join("; ")
    }
}

/// Builds transactions for checker unit tests.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// A finished transaction of `ops`, invoked at `invoke_seq` and completed at `complete_seq`;
    /// its statements run in between, one sequence number apart, and return `results`.
    pub fn txn(
        id: u64,
        (invoke_seq, complete_seq): (u64, u64),
        outcome: Outcome,
        ops: Vec<(Op, Option<OpResult>)>,
    ) -> TxnRecord {
        TxnRecord {
            id,
            client: 1,
            ops: ops
                .into_iter()
                .enumerate()
                .map(|(i, (op, result))| OpRecord {
                    op,
                    content: 0,
                    invoke_seq: Some(invoke_seq + 1 + 2 * i as u64),
                    returned_seq: result.as_ref().map(|_| invoke_seq + 2 + 2 * i as u64),
                    returned_ms: result.as_ref().map(|_| invoke_seq + 2 + 2 * i as u64),
                    result,
                })
                .collect(),
            invoked_ms: invoke_seq,
            invoke_seq,
            completed_ms: Some(complete_seq),
            complete_seq: Some(complete_seq),
            outcome: Some(outcome),
            error: None,
        }
    }

    pub fn insert(key: Key, value: &[u8]) -> (Op, Option<OpResult>) {
        let op = Op::Insert {
            table: "t".into(),
            key,
            value: value.to_vec(),
        };
        (op, Some(OpResult::Done))
    }

    pub fn update(key: Key, value: &[u8], count: u64) -> (Op, Option<OpResult>) {
        let op = Op::Update {
            table: "t".into(),
            key,
            value: value.to_vec(),
        };
        (op, Some(OpResult::Count(count)))
    }

    pub fn delete(key: Key, count: u64) -> (Op, Option<OpResult>) {
        let op = Op::Delete {
            table: "t".into(),
            key,
        };
        (op, Some(OpResult::Count(count)))
    }

    pub fn get(key: Key, seen: Option<&[u8]>) -> (Op, Option<OpResult>) {
        let op = Op::Get {
            table: "t".into(),
            key,
        };
        (op, Some(OpResult::Row(seen.map(|v| v.to_vec()))))
    }

    pub fn rows(rows: &[(Key, &[u8])]) -> BTreeMap<(String, Key), Value> {
        rows.iter()
            .map(|(k, v)| (("t".to_string(), *k), v.to_vec()))
            .collect()
    }
}
