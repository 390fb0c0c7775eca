//! The deterministic simulator of the cluster: simulated hosts and disks, a nemesis, a client
//! workload with a Jepsen-style history, invariant checkers, and the seed runner behind `hasim`
//! (whose command line, like the stories it runs, is in the `scenarios` crate).
//!
//! The rooms: [`config`] (a run's configuration, and the swarm's draw of one), [`world`]
//! (hosts, disks, the coordinator pair, carrying out faults), [`nemesis`] (drawing and reading
//! fault schedules), [`operator`] (the administrator agent and the harness its verbs run
//! through), [`workload`] (clients and their history), [`invariants`] (the checkers), [`run`]
//! (one seed's run loop, its results, the pool, shrinking), [`trace`] (the log and its hash,
//! which the workload feeds too), [`layouts`] (mirror layouts under simultaneous host
//! failures).

pub mod config;
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
