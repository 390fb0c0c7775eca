//! The deterministic simulator of the cluster.

pub mod disk;
