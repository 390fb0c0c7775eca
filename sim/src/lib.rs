//! The deterministic simulator of the cluster: simulated hosts and disks, a nemesis, a client
//! workload with a Jepsen-style history, invariant checkers, and the seed runner behind `hasim`.

pub mod admin;
pub mod admin_scenarios;
pub mod cli;
pub mod config;
pub mod disk;
pub mod failover;
pub mod history;
pub mod inject;
pub mod invariants;
pub mod nemesis;
pub mod observer;
pub mod operator;
pub mod runner;
pub mod shrink;
pub mod standby;
pub mod standby_failover;
pub mod swarm;
pub mod trace;
pub mod workload;
pub mod world;
