//! Pure protocol machines: decisions over plain data (positions, summaries, what happened so
//! far), with no I/O. The roles (`segment`, `standby`, `coordinator`) are their drivers: they
//! gather the inputs over the seam, ask the machine, and carry out what it decides.

pub mod activation;
pub mod recovery;
pub mod replication;
