//! A Greenplum-style high-availability MPP cluster, written once against an I/O seam
//! ([`io`]) so that the same code runs in the deterministic simulator and in production.

pub mod io;
