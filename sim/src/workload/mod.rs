//! The client workload. Each client runs transactions one after another and records every one,
//! statement by statement, in the history:
//! - write transactions of 1 to `statements_max` statements: inserts of new keys (no key is
//!   ever inserted twice), updates and deletes of the client's own rows whose last write it saw
//!   committed (a row whose write ended unknown is never written again: its state is not known);
//! - read-only transactions: one single-key read of a row any client inserted, or a scan of a
//!   table on one content.
//!
//! While `multi_content_txns` is off, a transaction draws one content and uses only keys that
//! hash to it, as the coordinator refuses transactions that span contents until it has
//! two-phase commit. Where only one choice is possible nothing is drawn, so the insert-only
//! workload of one content draws exactly what it always did.
//!
//! The history the clients record lives in [`history`].

pub mod history;
pub mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;

use cluster::client::Client;
use cluster::coordinator::content_for_key;
use cluster::model::catalog::Content;
use cluster::sql::{decode_row, encode_row, Datum, Outcome as SqlOutcome};
use cluster::wal::{Key, TableKind};
use cluster::wire::{DbError, Op, OpResult};

use crate::config::Workload;
use crate::workload::history::{History, Outcome};

/// The statement that makes table `name` of `kind` if it does not exist: what the run's set-up
/// sends, and what an application that ensures its schema sends when it connects.
pub fn create_table_sql(name: &str, kind: TableKind) -> String {
    let with = match kind {
        TableKind::AppendOptimized => " WITH (appendoptimized=true)",
        TableKind::Heap => "",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (k bigint PRIMARY KEY, v text){with} DISTRIBUTED BY (k)"
    )
}

pub const TABLES: &[(&str, TableKind)] = &[
    ("t_heap", TableKind::Heap),
    ("t_ao", TableKind::AppendOptimized),
];
/// The table whose rows are updated and deleted (append-optimized rows cannot be).
const HEAP: &str = "t_heap";

pub fn now_ms() -> u64 {
    madsim::time::TimeHandle::current().elapsed().as_millis() as u64
}

/// Draws an index with probability proportional to its weight; draws nothing when only one
/// weight is positive.
fn pick(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let positive: Vec<usize> = (0..weights.len()).filter(|i| weights[*i] > 0).collect();
    if positive.len() <= 1 {
        return positive.first().copied().unwrap_or(0);
    }
    let total: u64 = weights.iter().map(|w| *w as u64).sum();
    let mut x = rng.next_u64() % total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w as u64 {
            return i;
        }
        x -= *w as u64;
    }
    unreachable!("x < total")
}

fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    if n <= 1 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

/// One client's own state: its key sequence and the rows it may update or delete.
struct ClientState {
    id: u32,
    rng: ChaCha8Rng,
    workload: Workload,
    contents: usize,
    seq: i64,
    /// Heap rows whose last write this client saw committed, with their content.
    own: BTreeMap<Key, Content>,
}

enum Plan {
    Write(Vec<(Op, Content)>),
    Read(Op, Content),
}

impl ClientState {
    fn content(&mut self) -> Content {
        below(&mut self.rng, self.contents) as Content
    }

    /// A key no transaction used before, on `content`.
    fn new_key(&mut self, content: Content) -> Key {
        loop {
            self.seq += 1;
            let key = ((self.id as i64) << 40) | self.seq;
            if self.contents <= 1 || content_for_key(key, self.contents) == content {
                return key;
            }
        }
    }

    /// A row's value: the stored tuple of `(k, v)`, `v` random text, as the SQL layer stores
    /// the row the client writes (the history and the checkers see the stored bytes).
    fn value(&mut self, key: Key) -> Vec<u8> {
        let mut bytes = vec![0u8; 4 + (self.rng.next_u32() % 60) as usize];
        self.rng.fill_bytes(&mut bytes);
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        encode_row(&[Datum::Int8(key), Datum::Text(text)])
    }

    fn plan(&mut self, history: &History) -> Plan {
        let w = self.workload.clone();
        let kind = pick(
            &mut self.rng,
            &[w.insert + w.update + w.delete, w.read, w.scan],
        );
        match kind {
            1 if history.inserted_count() > 0 => {
                let (table, key, content) =
                    history.inserted(below(&mut self.rng, history.inserted_count()));
                return Plan::Read(Op::Get { table, key }, content);
            }
            2 => {
                let content = self.content();
                let table = TABLES[below(&mut self.rng, TABLES.len())].0.to_string();
                return Plan::Read(Op::Scan { table }, content);
            }
            _ => {}
        }
        Plan::Write(self.plan_write())
    }

    fn plan_write(&mut self) -> Vec<(Op, Content)> {
        let w = self.workload.clone();
        let mut content = self.content();
        let insert_table = TABLES[self.rng.next_u32().is_multiple_of(4) as usize].0;
        let n = 1 + self.rng.next_u32() % w.statements_max.max(1);
        let mut ops: Vec<(Op, Content)> = Vec::new();
        for _ in 0..n {
            if w.multi_content_txns && !ops.is_empty() {
                content = self.content();
            }
            let kind = pick(&mut self.rng, &[w.insert, w.update, w.delete]);
            let candidates: Vec<Key> = if kind == 0 {
                Vec::new()
            } else {
                self.own
                    .iter()
                    .filter(|(k, c)| {
                        **c == content && !ops.iter().any(|(op, _)| op.key() == Some(**k))
                    })
                    .map(|(k, _)| *k)
                    .collect()
            };
            let op = if candidates.is_empty() {
                let key = self.new_key(content);
                let value = self.value(key);
                Op::Insert {
                    table: insert_table.into(),
                    key,
                    value,
                }
            } else {
                let key = candidates[below(&mut self.rng, candidates.len())];
                if kind == 1 {
                    let value = self.value(key);
                    Op::Update {
                        table: HEAP.into(),
                        key,
                        value,
                    }
                } else {
                    Op::Delete {
                        table: HEAP.into(),
                        key,
                    }
                }
            };
            ops.push((op, content));
        }
        ops
    }

    /// What the client now knows of its own rows.
    fn learn(&mut self, ops: &[(Op, Content)], results: &[Option<OpResult>], outcome: Outcome) {
        for ((op, content), result) in ops.iter().zip(results) {
            match (op, outcome) {
                (_, Outcome::Fail) => {}
                (Op::Insert { table, key, .. }, Outcome::Ok) if table == HEAP => {
                    self.own.insert(*key, *content);
                }
                // An update that found no row, or a delete: the row is gone.
                (Op::Update { key, .. }, Outcome::Ok) if *result == Some(OpResult::Count(0)) => {
                    self.own.remove(key);
                }
                (Op::Delete { key, .. }, Outcome::Ok) => {
                    self.own.remove(key);
                }
                // Unknown: the row's state is not known any more; never write it again.
                (
                    Op::Insert { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. },
                    Outcome::Unknown,
                ) => {
                    self.own.remove(key);
                }
                _ => {}
            }
        }
    }
}

/// A statement's SQL: a row by its key, a scan of one content by Greenplum's `gp_segment_id`.
fn sql_text(op: &Op, content: Content) -> String {
    let text = |value: &[u8]| match decode_row(value).ok().as_deref() {
        Some([_, Datum::Text(v)]) => v.clone(),
        _ => unreachable!("the workload's values are (k, v) rows"),
    };
    match op {
        Op::Insert { table, key, value } => format!(
            "INSERT INTO {table} (k, v) VALUES ({key}, '{}')",
            text(value)
        ),
        Op::Update { table, key, value } => {
            format!("UPDATE {table} SET v = '{}' WHERE k = {key}", text(value))
        }
        Op::Delete { table, key } => format!("DELETE FROM {table} WHERE k = {key}"),
        Op::Get { table, key } => format!("SELECT k, v FROM {table} WHERE k = {key}"),
        Op::Scan { table } => {
            format!("SELECT k, v FROM {table} WHERE gp_segment_id = {content} ORDER BY k")
        }
    }
}

/// A statement's outcome as the history records the operation's result: rows as the stored
/// tuples they were read from.
fn op_result(op: &Op, outcome: SqlOutcome) -> Result<OpResult, DbError> {
    let count = |tag: &str| tag.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok());
    match (op, outcome) {
        (Op::Insert { .. }, SqlOutcome::Done { tag }) if tag == "INSERT 0 1" => Ok(OpResult::Done),
        (Op::Update { .. } | Op::Delete { .. }, SqlOutcome::Done { tag })
            if count(&tag).is_some() =>
        {
            Ok(OpResult::Count(count(&tag).expect("checked")))
        }
        (Op::Get { .. }, SqlOutcome::Rows { mut rows, .. }) if rows.len() <= 1 => {
            Ok(OpResult::Row(rows.pop().map(|r| encode_row(&r))))
        }
        (Op::Scan { .. }, SqlOutcome::Rows { rows, .. }) => Ok(OpResult::Rows(
            rows.iter()
                .map(|r| (r[0].as_i64().unwrap_or_default(), encode_row(r)))
                .collect(),
        )),
        (_, other) => Err(DbError::Failed(format!(
            "unexpected outcome of {}: {other:?}",
            sql_text(op, 0)
        ))),
    }
}

/// What one client is told before it starts.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub id: u32,
    /// The coordinator's address, then the standby's if there is one.
    pub coordinators: Vec<String>,
    pub timeout: Duration,
    pub workload: Workload,
    /// Number of contents of the cluster (keys are routed by their hash modulo this).
    pub contents: usize,
    /// No transaction starts after this simulated time.
    pub stop_at_ms: u64,
    /// The front doors' addresses (the coordinator's SQL port, then the standby's): this
    /// client speaks PostgreSQL's wire protocol there instead of the cluster's frames.
    pub front_doors: Option<Vec<String>>,
    /// The wire client cancels statements now and then ([`crate::config::RunConfig::client_cancels`]).
    pub cancels: bool,
    /// The wire client ensures the schema on every connection it makes
    /// ([`crate::config::RunConfig::client_ensures_schema`]).
    pub ensures_schema: bool,
}

/// How a client reaches the coordinator's SQL layer.
enum Link {
    /// SQL text in the cluster's own authenticated frames.
    Framed(Box<Client>),
    /// PostgreSQL's wire protocol, through a real driver, to the front door.
    Wire(Box<wire::WireClient>),
}

impl Link {
    async fn begin(&mut self) -> Result<(), DbError> {
        match self {
            Link::Framed(c) => c.sql("BEGIN", false).await.map(|_| ()),
            Link::Wire(c) => c.begin().await,
        }
    }

    async fn op(&mut self, op: &Op, content: Content) -> Result<OpResult, DbError> {
        match self {
            Link::Framed(c) => op_result(op, c.sql(&sql_text(op, content), false).await?),
            Link::Wire(c) => c.op(op, content).await,
        }
    }

    async fn commit(&mut self) -> Result<(), DbError> {
        match self {
            Link::Framed(c) => match c.sql("COMMIT", true).await? {
                SqlOutcome::Done { tag } if tag == "COMMIT" => Ok(()),
                other => Err(DbError::Failed(format!("COMMIT answered {other:?}"))),
            },
            Link::Wire(c) => c.commit().await,
        }
    }

    async fn rollback(&mut self) {
        match self {
            Link::Framed(c) => {
                let _ = c.sql("ROLLBACK", false).await;
            }
            Link::Wire(c) => c.rollback().await,
        }
    }
}

pub async fn run_client(spec: ClientSpec, rng: ChaCha8Rng, history: History) {
    let mut client = match &spec.front_doors {
        Some(doors) => Link::Wire(Box::new(
            wire::WireClient::new(doors.clone(), spec.timeout, spec.cancels.then_some(&rng))
                .ensuring_schema(spec.ensures_schema),
        )),
        None => Link::Framed(Box::new(Client::new(
            spec.coordinators.clone(),
            spec.timeout,
        ))),
    };
    let id = spec.id;
    let mut state = ClientState {
        id,
        rng,
        workload: spec.workload,
        contents: spec.contents,
        seq: 0,
        own: BTreeMap::new(),
    };
    while now_ms() < spec.stop_at_ms {
        let ops = match state.plan(&history) {
            Plan::Write(ops) => ops,
            Plan::Read(op, content) => vec![(op, content)],
        };
        let txn = history.invoke(id, ops.clone(), now_ms());
        let mut results: Vec<Option<OpResult>> = vec![None; ops.len()];
        let result = async {
            client.begin().await?;
            for (i, (op, content)) in ops.iter().enumerate() {
                history.op_invoked(txn, i);
                let r = client.op(op, *content).await?;
                history.op_returned(txn, i, r.clone(), now_ms());
                results[i] = Some(r);
            }
            client.commit().await
        }
        .await;
        let (outcome, error) = match result {
            Ok(()) => (Outcome::Ok, None),
            Err(e @ (DbError::Failed(_) | DbError::NotAllowed { .. })) => {
                client.rollback().await;
                (Outcome::Fail, Some(e.to_string()))
            }
            Err(DbError::Unknown(e)) => (Outcome::Unknown, Some(e)),
        };
        history.complete(txn, outcome, error, now_ms());
        state.learn(&ops, &results, outcome);
        crate::trace::hash_fact(&format!("txn {txn} {outcome:?} at {}", now_ms()));
        // After a failure, back off as a real client would rather than spin on an unavailable
        // content.
        let think = match outcome {
            Outcome::Ok => Duration::from_millis(state.rng.next_u64() % 50),
            _ => Duration::from_millis(200 + state.rng.next_u64() % 300),
        };
        madsim::time::sleep(think).await;
    }
}
