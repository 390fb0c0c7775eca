//! The I/O seam: disk, network and runtime. Protocol code reaches the world only through here.

pub mod disk;
pub mod net;
pub mod runtime;

pub use disk::{Disk, DiskFuture, RealDisk};
