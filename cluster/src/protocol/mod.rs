//! The protocols as pure machines: decisions from inputs, no sockets, files or clocks. The roles
//! drive them over the I/O seam and carry their outputs out.

pub mod dtx;
pub mod fts;
