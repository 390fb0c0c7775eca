//! A table's schema: typed columns, the primary key and the placement of its rows. The SQL
//! layer reads and writes rows by it; the catalog keeps it with the table's definition.

use serde::{Deserialize, Serialize};

use super::data::TableKind;
use super::values::Datum;

/// A column's type. The names are PostgreSQL's, and so are the type ids a client sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SqlType {
    Int4,
    Int8,
    Text,
    Bool,
    /// `timestamp` (without time zone): microseconds since 2000-01-01 00:00:00, as PostgreSQL.
    Timestamp,
}

impl SqlType {
    /// The type's name as PostgreSQL prints it.
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Int4 => "integer",
            SqlType::Int8 => "bigint",
            SqlType::Text => "text",
            SqlType::Bool => "boolean",
            SqlType::Timestamp => "timestamp without time zone",
        }
    }

    /// PostgreSQL's type id (`pg_type.oid`).
    pub fn oid(self) -> u32 {
        match self {
            SqlType::Int4 => 23,
            SqlType::Int8 => 20,
            SqlType::Text => 25,
            SqlType::Bool => 16,
            SqlType::Timestamp => 1114,
        }
    }

    /// The type of a PostgreSQL type id, where it is one of ours.
    pub fn from_oid(oid: u32) -> Option<SqlType> {
        [
            SqlType::Int4,
            SqlType::Int8,
            SqlType::Text,
            SqlType::Bool,
            SqlType::Timestamp,
        ]
        .into_iter()
        .find(|t| t.oid() == oid)
    }
}

/// A result column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
}

/// A table's columns, key and placement, kept in the catalog with its definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub columns: Vec<ColumnDef>,
    /// The primary key's column: an integer column, whose value is the row's storage key.
    /// Without one, each row gets a hidden key of its own.
    pub primary_key: Option<usize>,
    pub distribution: Distribution,
    pub kind: TableKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    pub not_null: bool,
}

/// How a table's rows are placed on the contents (Greenplum's `DISTRIBUTED` clause).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distribution {
    /// By the hash of one column's value.
    By(usize),
    /// Each row on a content drawn for it.
    Randomly,
    /// Every row on every content.
    Replicated,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The result columns of `SELECT *`.
    pub fn result_columns(&self) -> Vec<Column> {
        self.columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                ty: c.ty,
            })
            .collect()
    }

    /// The clause that recreates the placement, as `pg_get_table_distributedby` prints it.
    pub fn distributed_clause(&self) -> String {
        match self.distribution {
            Distribution::By(c) => format!("DISTRIBUTED BY ({})", self.columns[c].name),
            Distribution::Randomly => "DISTRIBUTED RANDOMLY".to_string(),
            Distribution::Replicated => "DISTRIBUTED REPLICATED".to_string(),
        }
    }
}

/// A statement's failure as a client sees it: PostgreSQL's SQLSTATE and a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// The SQLSTATE, five characters (`42601` a syntax error, `23505` a duplicate key...).
    pub code: String,
    pub message: String,
}

impl SqlError {
    pub fn new(code: &str, message: impl Into<String>) -> SqlError {
        SqlError {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// `0A000`: a statement or clause outside the subset.
    pub fn unsupported(what: impl std::fmt::Display) -> SqlError {
        SqlError::new("0A000", format!("{what} is not supported"))
    }
}

/// What a statement returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A command: its tag (`CREATE TABLE`, `INSERT 0 3`, `BEGIN`...).
    Done { tag: String },
    /// Rows, with their columns and tag (`SELECT 2`).
    Rows {
        columns: Vec<Column>,
        rows: Vec<Vec<Datum>>,
        tag: String,
    },
    /// The text held no statement.
    Empty,
}

/// The session's transaction state, as `ReadyForQuery` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnStatus {
    /// No transaction block is open (`I`).
    Idle,
    /// In a transaction block (`T`).
    InBlock,
    /// In a failed transaction block: statements are refused until its end (`E`).
    Failed,
}

/// What a statement takes and returns, before it runs (the extended protocol's Describe).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    /// The type of each parameter `$1`, `$2`... in order.
    pub params: Vec<SqlType>,
    /// The result's columns; empty for a statement that returns no rows.
    pub columns: Vec<Column>,
}
