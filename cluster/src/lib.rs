//! A Greenplum-style high-availability MPP cluster, written once against an I/O seam
//! ([`io`]) so that the same code runs in the deterministic simulator and in production.
//!
//! The modules form layers; a module uses only its own layer and the ones below (the test
//! `tests/layers.rs` checks every `crate::` path), and modules of one layer never use each other
//! in a cycle. From the bottom up:
//!
//! | layer | modules | own |
//! |---|---|---|
//! | 0 | [`io`] | the seam: runtime shim (the only `cfg(madsim)`), frames, codec, disk, sync |
//! | 1 | [`model`] | catalog rows and epochs, layouts, the data vocabulary (and SQL's: types, values, schemas), facts, planted bugs |
//! | 2 | [`wire`] | every message type, by who speaks it |
//! | 3 | [`wal`], [`storage`] | the WAL, blocks, buffer cache, tables, checkpoints, redo |
//! | 4 | [`protocol`] | pure machines: FTS decisions, distributed transactions, replication, recovery, activation |
//! | 4 | [`sql`] | the SQL subset: text into statements (sqlparser, and Greenplum's `DISTRIBUTED` tail) |
//! | 5 | [`coordinator`], [`segment`], [`standby`], [`client`], [`agent`] | roles: drivers over the seam, and a host's agent |
//! | 6 | [`admin`], `frontdoor` | the operator's side of the administration verbs; the SQL front door (PostgreSQL's wire protocol, production only) |
//!
//! The production binary, `bin/hacluster`, sits on top. Among the roles the arrows point one way
//! too: the standby (which becomes a coordinator when activated) uses the coordinator, whose
//! side of catalog mirroring lives in [`coordinator::mirroring`].

pub mod admin;
pub mod agent;
pub mod client;
pub mod coordinator;
pub mod frontdoor;
pub mod io;
pub mod model;
pub mod protocol;
pub mod segment;
pub mod sql;
pub mod standby;
pub mod storage;
pub mod wal;
pub mod wire;
