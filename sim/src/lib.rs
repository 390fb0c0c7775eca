//! The deterministic simulator of the cluster: simulated hosts and disks, a nemesis, a client
//! workload with a Jepsen-style history, invariant checkers, and the seed runner behind `hasim`
//! (whose command line, like the stories it runs, is in the `scenarios` crate).
//!
//! The rooms, bottom up (a room uses only rooms below it or beside it, never in a cycle;
//! `tests/rooms.rs` holds them to it): [`random`] (the seed's streams) and [`observer`] (the
//! cluster's typed facts, and the [`observer::Judge`]s that see each as it is reported);
//! [`trace`] (the log and its hash) and [`nemesis`] (the faults, and drawing and reading fault
//! schedules); [`config`] (a run's configuration, and the swarm's draw of one); [`world`]
//! (hosts, disks, where each data directory lies, the coordinator pair, carrying out faults)
//! and [`workload`] (clients and their history) and [`intruder`] (a stranger on the world's
//! network, without the cluster secret); [`invariants`] (the checkers); [`operator`]
//! (the administrator agent and the harness its verbs run through); [`run`] (one seed's run
//! loop, its results, the pool, shrinking); [`layouts`] (mirror layouts under simultaneous host
//! failures).

pub mod config;
pub mod intruder;
pub mod invariants;
pub mod layouts;
pub mod nemesis;
pub mod observer;
pub mod operator;
pub mod random;
pub mod run;
pub mod trace;
pub mod workload;
pub mod world;
