//! The client protocol: what a client (a session, the operator's tools, a standby's verbs) asks
//! the coordinator, and what it answers.

use serde::{Deserialize, Serialize};

use super::admin::{AdminReply, AdminRequest};
use super::standby::{StandbyReply, StandbyRequest};
use crate::model::catalog::{Catalog, Content, HistoryRow};
use crate::model::data::{Key, TableKind, Value};

/// One statement of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Fails if the key exists.
    Insert {
        table: String,
        key: Key,
        #[serde(with = "serde_bytes")]
        value: Value,
    },
    /// Returns the number of rows changed (0 or 1).
    Update {
        table: String,
        key: Key,
        #[serde(with = "serde_bytes")]
        value: Value,
    },
    /// Returns the number of rows removed (0 or 1).
    Delete {
        table: String,
        key: Key,
    },
    Get {
        table: String,
        key: Key,
    },
    /// Every row of the table on the transaction's content.
    Scan {
        table: String,
    },
}

impl Op {
    pub fn table(&self) -> &str {
        match self {
            Op::Insert { table, .. }
            | Op::Update { table, .. }
            | Op::Delete { table, .. }
            | Op::Get { table, .. }
            | Op::Scan { table } => table,
        }
    }

    pub fn key(&self) -> Option<Key> {
        match self {
            Op::Insert { key, .. }
            | Op::Update { key, .. }
            | Op::Delete { key, .. }
            | Op::Get { key, .. } => Some(*key),
            Op::Scan { .. } => None,
        }
    }
}

/// The result of one statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    Done,
    Count(u64),
    Row(#[serde(with = "serde_bytes")] Option<Value>),
    Rows(Vec<(Key, Value)>),
}

/// Why a request failed, as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DbError {
    /// Nothing was committed.
    #[error("{0}")]
    Failed(String),
    /// The commit may or may not have happened (the connection was lost while committing).
    #[error("commit outcome unknown: {0}")]
    Unknown(String),
    /// The request makes no sense from its sender (`from`, the identity it authenticated
    /// with) or for the receiver's role; nothing was done.
    #[error("{request} refused from {from}: {why}")]
    NotAllowed {
        request: String,
        from: String,
        why: String,
    },
}

/// Client → coordinator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ClientRequest {
    Begin,
    /// A statement on the open transaction, routed by the key's content (or, for a scan, to
    /// `content`, a single-content transaction's one content).
    Exec {
        op: Op,
        content: Option<Content>,
    },
    Commit,
    Abort,
    CreateTable {
        name: String,
        kind: TableKind,
    },
    /// The current segment configuration.
    Catalog,
    /// The distributed-commit records not yet forgotten (`gp_distributed_log`): empty once every
    /// distributed transaction has been carried out everywhere.
    DistributedLog,
    /// The configuration history (`gp_configuration_history`), oldest first, and the current
    /// configuration epoch.
    ConfigurationHistory,
    /// The standby coordinator's verbs and its catalog stream (see [`crate::standby`]).
    Standby(StandbyRequest),
    /// An administration verb (`recoverseg`, `state`, `add-mirrors`...), carried out by the
    /// coordinator (see [`crate::admin`]).
    Admin(AdminRequest),
    /// SQL text, one or more statements, run by the session's SQL layer as PostgreSQL's simple
    /// query protocol runs them: one after another, up to the first that fails.
    Sql {
        text: String,
    },
}

impl ClientRequest {
    /// The request's name, for refusals and logs.
    pub fn name(&self) -> &'static str {
        match self {
            ClientRequest::Begin => "BEGIN",
            ClientRequest::Exec { .. } => "a statement",
            ClientRequest::Commit => "COMMIT",
            ClientRequest::Abort => "ABORT",
            ClientRequest::CreateTable { .. } => "CREATE TABLE",
            ClientRequest::Catalog => "the catalog",
            ClientRequest::DistributedLog => "the distributed log",
            ClientRequest::ConfigurationHistory => "the configuration history",
            ClientRequest::Standby(req) => req.name(),
            ClientRequest::Admin(req) => req.name(),
            ClientRequest::Sql { .. } => "SQL",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ClientResponse {
    Ok,
    Result(OpResult),
    Committed,
    Catalog(Catalog),
    DistributedLog(Vec<(u64, Vec<Content>)>),
    Admin(AdminReply),
    ConfigurationHistory {
        rows: Vec<HistoryRow>,
        epoch: u64,
    },
    Error(DbError),
    Standby(StandbyReply),
    /// From a warm standby: it serves no work; the client tries another coordinator.
    NotActive(String),
    /// Each statement's outcome, up to and including the first that failed, and the session's
    /// transaction state after them.
    Sql {
        results: Vec<Result<crate::model::schema::Outcome, crate::model::schema::SqlError>>,
        status: crate::model::schema::TxnStatus,
    },
}
