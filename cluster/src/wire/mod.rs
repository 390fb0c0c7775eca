//! Every message on the wire, by who speaks it. Plain data over the model; the roles send and
//! answer them, [`crate::io::net`] frames them.
//!
//! - [`client`]: a client and the coordinator (transactions, the catalog, and the envelopes of
//!   the standby's and the administration's messages).
//! - [`segment`]: the coordinator and a segment instance (probes, transactions, fencing,
//!   recovery), and instances of one content between themselves.
//! - [`replication`]: the frames of a WAL stream.
//! - [`standby`]: the standby coordinator's verbs, reports and catalog stream.
//! - [`admin`]: the administration verbs and their reports.
//! - [`agent`]: a host's agent and the verbs that act on its host.
//!
//! Every message type is re-exported here, so `crate::wire::SegmentRequest` names it whoever
//! speaks it.

pub mod admin;
pub mod agent;
pub mod client;
pub mod replication;
pub mod segment;
pub mod standby;

pub use admin::*;
pub use client::*;
pub use replication::*;
pub use segment::*;
pub use standby::*;
