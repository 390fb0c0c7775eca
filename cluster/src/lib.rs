//! A Greenplum-style high-availability MPP cluster, written once against an I/O seam
//! ([`io`]) so that the same code runs in the deterministic simulator and in production.

pub mod admin;
pub mod bugs;
pub mod catalog;
pub mod client;
pub mod coordinator;
pub mod dtx;
pub mod fts;
pub mod io;
pub mod layout;
pub mod observe;
pub mod proto;
pub mod protocol;
pub mod segment;
pub mod standby;
pub mod storage;
pub mod sync;
pub mod wal;
