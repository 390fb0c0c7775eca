//! The cluster's data model: the vocabulary every layer above speaks, as plain data with no I/O.
//!
//! - [`catalog`]: `gp_segment_configuration` rows, configuration epochs, the history log.
//! - [`layout`]: where mirrors go (group, spread, block).
//! - [`data`]: WAL positions, transaction ids, tables, keys and values.
//! - [`observe`]: the typed facts an instance reports about itself.
//! - [`bugs`]: the planted-bug switches.

pub mod bugs;
pub mod catalog;
pub mod data;
pub mod layout;
pub mod observe;
pub mod schema;
pub mod values;
