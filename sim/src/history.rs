//! A Jepsen-style history: every client operation is invoked, then completes as ok, fail
//! (definitely did not happen) or unknown (may or may not have happened).

use std::sync::{Arc, Mutex};

use serde::Serialize;

use cluster::wal::{Key, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    Unknown,
}

/// One transaction a client ran: the rows it inserted.
#[derive(Clone, Debug, Serialize)]
pub struct TxnRecord {
    pub id: u64,
    pub client: u32,
    pub table: String,
    pub rows: Vec<(Key, Value)>,
    pub invoked_ms: u64,
    pub completed_ms: Option<u64>,
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
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

#[derive(Clone, Default)]
pub struct History {
    inner: Arc<Mutex<Vec<TxnRecord>>>,
}

impl History {
    pub fn invoke(&self, client: u32, table: &str, rows: Vec<(Key, Value)>, now_ms: u64) -> u64 {
        let mut txns = self.inner.lock().unwrap();
        let id = txns.len() as u64;
        txns.push(TxnRecord {
            id,
            client,
            table: table.to_string(),
            rows,
            invoked_ms: now_ms,
            completed_ms: None,
            outcome: None,
            error: None,
        });
        id
    }

    pub fn complete(&self, id: u64, outcome: Outcome, error: Option<String>, now_ms: u64) {
        let mut txns = self.inner.lock().unwrap();
        let txn = &mut txns[id as usize];
        txn.outcome = Some(outcome);
        txn.error = error;
        txn.completed_ms = Some(now_ms);
    }

    pub fn txns(&self) -> Vec<TxnRecord> {
        self.inner.lock().unwrap().clone()
    }
}

impl TxnRecord {
    /// The event that completed this transaction (for violation reports).
    pub fn completion_event(&self) -> Event {
        let kind = match self.outcome {
            Some(Outcome::Ok) => "ok",
            Some(Outcome::Fail) => "fail",
            Some(Outcome::Unknown) | None => "unknown",
        };
        let keys: Vec<String> = self.rows.iter().map(|(k, _)| k.to_string()).collect();
        Event {
            at_ms: self.completed_ms.unwrap_or(self.invoked_ms),
            client: self.client,
            txn: self.id,
            kind: kind.to_string(),
            detail: format!("insert into {} keys [{}]", self.table, keys.join(", ")),
        }
    }
}
