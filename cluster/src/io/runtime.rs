//! The runtime shim: the one place in `cluster` that knows which world it is built for.
//!
//! Without `--cfg madsim`, `tokio` is tokio and this is the production world: real threads,
//! real time, real sockets. With it, `tokio` is madsim's deterministic executor and everything
//! here is simulated. Protocol code calls only what this module exports.

use std::future::Future;
use std::time::Duration;

#[cfg(all(madsim, feature = "real-io"))]
compile_error!(
    "the `real-io` feature builds the production binary and cannot be built for the simulator \
     (`--cfg madsim`, set in .cargo/config.toml). Clear the flag: \
     `RUSTFLAGS= cargo build --release -p cluster --features real-io`"
);

pub use tokio::task::JoinHandle;
pub use tokio::time::{sleep, timeout, Instant};

/// Spawns a task on the current runtime (the current simulated node, in the simulator).
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future)
}

/// Runs a blocking system call (an `fsync`) off the async workers. The simulator has no threads
/// and its disk never blocks, so there it runs in place.
pub async fn blocking<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    #[cfg(madsim)]
    {
        f()
    }
    #[cfg(not(madsim))]
    {
        tokio::task::spawn_blocking(f)
            .await
            .expect("blocking task panicked")
    }
}

/// Time since an arbitrary fixed point: the Unix epoch in production, the simulation's start
/// (plus madsim's seeded base) in the simulator. Used for timestamps people read (history
/// rows), never for ordering decisions; those use [`Instant`].
pub fn unix_time_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// Whether this build runs inside the simulator (for log formatting only).
pub const SIMULATED: bool = cfg!(madsim);
