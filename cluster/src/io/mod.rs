//! The I/O seam: disk, network and runtime. Protocol code reaches the world only through here.
//!
//! Besides the seam proper ([`runtime`], [`net`], [`disk`]), the bottom layer holds what every
//! layer above needs and that knows nothing of the cluster: the byte encoding ([`codec`]) and a
//! value tasks wait on that wakes them in a fixed order ([`sync`]), and the names of the fault
//! points the simulator may arm ([`points`]).

pub mod auth;
pub mod codec;
pub mod disk;
pub mod net;
pub mod points;
pub mod runtime;
pub mod sync;

pub use disk::{Disk, DiskFuture, RealDisk};
