//! Segment recovery and administration, modelled on the seed utilities (`gprecoverseg`,
//! `gpaddmirrors`, `gpmovemirrors`, `gpstate`, `gpstop -r`).
//!
//! This is the operator's side. The coordinator carries out every change to the configuration
//! ([`AdminRequest`], handled by [`crate::coordinator::admin`]): it checks the request against the
//! catalog, talks to the instances, and records the outcome as one catalog change with a new
//! epoch and history rows. What needs a new process on a host (a mirror on a new host or
//! directory) is started by the caller through [`Hosts`] before the coordinator records it; the
//! simulator's world and the production binary each implement it ([`driver`]). The config-file
//! formats and their parsers are in [`config`]; the `state` report in [`state`]. The requests and
//! reports are the wire layer's ([`crate::wire::admin`]), re-exported here.

pub mod agents;
pub mod config;
pub mod driver;
pub mod state;

/// The administration messages, defined in the wire layer, under the verbs that send them.
pub use crate::wire::admin::{
    AdminReply, AdminRequest, Recovered, RejoinReport, Relocation, ReplicationInfo, StateReport,
};
pub use driver::{HostError, Hosts};
