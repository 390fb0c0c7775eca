//! The SQL subset: statements parsed from text (by `sqlparser`'s PostgreSQL dialect, with
//! Greenplum's `DISTRIBUTED` tail split off first). Its vocabulary (types, values, rows,
//! schemas, outcomes and errors) is the model's ([`crate::model::schema`],
//! [`crate::model::values`]), as messages carry it.
//!
//! This module is pure: it turns text into [`Statement`]s. The coordinator carries the
//! statements out on its own operations (`coordinator::sql`), and the production front door
//! speaks PostgreSQL's wire protocol over them.

pub mod parse;

pub use crate::model::schema::{
    Column, ColumnDef, Described, Distribution, Outcome, SqlError, SqlType, TableSchema, TxnStatus,
};
pub use crate::model::values::{decode_row, encode_row, Datum};
pub use parse::{parse, BinOp, Expr, Select, SelectItem, Statement};
