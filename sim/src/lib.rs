//! The deterministic simulator of the cluster: simulated hosts and disks, a nemesis, a client
//! workload with a Jepsen-style history, invariant checkers, and the seed runner behind `hasim`.

pub mod admin;
pub mod admin_scenarios;
pub mod bench;
pub mod cli;
pub mod config;
pub mod disk;
pub mod failover;
pub mod history;
pub mod hunt;
pub mod inject;
pub mod invariants;
pub mod layouts;
pub mod nemesis;
pub mod observer;
pub mod operator;
pub mod pool;
pub mod progress;
pub mod recording;
pub mod report_cli;
pub mod runner;
pub mod shrink;
pub mod standby;
pub mod standby_failover;
pub mod standby_runs;
pub mod standby_scenarios;
pub mod swarm;
pub mod trace;
pub mod workload;
pub mod world;
