//! The protocols as pure machines: decisions over plain data (positions, summaries, catalog
//! rows, what has happened so far), with no sockets, files or clocks. The roles (`coordinator`,
//! `segment`, `standby`) are their drivers: they gather the inputs over the seam, ask the
//! machine, and carry out what it decides. [`roles`] says who may ask what of each role.

pub mod activation;
pub mod dtx;
pub mod fts;
pub mod recovery;
pub mod replication;
pub mod roles;
