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
pub use tokio::time::Instant;
#[cfg(not(madsim))]
pub use tokio::time::{sleep, timeout};

#[cfg(madsim)]
pub use sim_time::{sleep, timeout};

/// madsim's `Sleep` puts a new timer in the simulation's timer heap every time it is polled
/// before its deadline, and a sleep inside `timeout` is polled every time the future it guards
/// is woken (a WAL position that moved but not far enough, half a frame). The heap then holds
/// timers by the hundred thousand, each popped and fired for nothing. Here a sleep sets one
/// timer, whichever task polls it, and the timer wakes the task through a relay the sleep
/// disarms when it is dropped: madsim cannot take a timer back, and the timeout of every
/// answered call would otherwise wake its task for nothing seconds later.
#[cfg(madsim)]
mod sim_time {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration;

    pub use tokio::time::error::Elapsed;

    pub struct Sleep {
        inner: tokio::time::Sleep,
        /// Stands between the simulation's timer and the task that waits: set once, it is
        /// disarmed when the sleep is dropped, so a timer that outlives its sleep (the timeout of
        /// a call that was answered) wakes nobody when it fires.
        relay: Option<Arc<Relay>>,
    }

    struct Relay {
        waiter: Mutex<Option<Waker>>,
    }

    impl Wake for Relay {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            if let Some(w) = self.waiter.lock().expect("relay poisoned").take() {
                w.wake();
            }
        }
    }

    pub fn sleep(duration: Duration) -> Sleep {
        Sleep {
            inner: tokio::time::sleep(duration),
            relay: None,
        }
    }

    impl Future for Sleep {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.inner.is_elapsed() {
                return Poll::Ready(());
            }
            match &self.relay {
                Some(relay) => {
                    let mut waiter = relay.waiter.lock().expect("relay poisoned");
                    if !waiter.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *waiter = Some(cx.waker().clone());
                    }
                }
                None => {
                    let relay = Arc::new(Relay {
                        waiter: Mutex::new(Some(cx.waker().clone())),
                    });
                    let waker = Waker::from(Arc::clone(&relay));
                    let _ = Pin::new(&mut self.inner).poll(&mut Context::from_waker(&waker));
                    self.relay = Some(relay);
                }
            }
            Poll::Pending
        }
    }

    impl Drop for Sleep {
        fn drop(&mut self) {
            if let Some(relay) = &self.relay {
                relay.waiter.lock().expect("relay poisoned").take();
            }
        }
    }

    /// `tokio::time::timeout` over [`Sleep`]: the deadline is fixed when it is called.
    pub fn timeout<F: Future>(
        duration: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Elapsed>> {
        let mut deadline = sleep(duration);
        async move {
            tokio::pin!(future);
            std::future::poll_fn(|cx| {
                if let Poll::Ready(out) = future.as_mut().poll(cx) {
                    return Poll::Ready(Ok(out));
                }
                Pin::new(&mut deadline).poll(cx).map(|()| Err(Elapsed))
            })
            .await
        }
    }
}

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

/// Connection resets, a fault only the simulator injects: in production a connection is never
/// reset by anything but the network, and no registry exists.
#[cfg(madsim)]
#[path = "resets.rs"]
pub mod resets;

#[cfg(not(madsim))]
pub mod resets {
    /// A connection's two ends: nothing to know in production.
    #[derive(Clone)]
    pub(crate) struct Ends;

    impl Ends {
        pub(crate) fn of(_stream: &tokio::net::TcpStream) -> Ends {
            Ends
        }

        pub(crate) fn wait_with(&self, _waker: &std::task::Waker) {}

        pub(crate) fn is_reset(&self) -> bool {
            false
        }
    }
}

/// Fault points, armed by the simulator alone: in production [`fault_point`] is an empty
/// inline function and no registry or point name exists in the binary.
#[cfg(madsim)]
#[path = "points_armed.rs"]
pub mod fault_points;

#[cfg(madsim)]
pub use fault_points::fault_point;

/// Marks a fault point (see [`crate::io::points`]): nothing happens in production.
#[cfg(not(madsim))]
#[inline(always)]
pub async fn fault_point(_point: crate::io::points::FaultPoint) -> crate::io::points::Pass {
    crate::io::points::Pass::Go
}

/// Late and repeated requests, a fault only the simulator injects: in production nothing keeps
/// a copy of a request once it is sent.
#[cfg(madsim)]
#[path = "replays.rs"]
pub mod replays;

#[cfg(not(madsim))]
pub mod replays {
    /// A request just sent: nothing to keep in production.
    pub(crate) fn offer(_ends: &super::resets::Ends, _to: &str, _message: &[u8]) {}

    /// A client handshake just completed: nothing to keep in production.
    pub(crate) fn offer_handshake<H, P>(
        _ends: &super::resets::Ends,
        _to: &str,
        _hello: &H,
        _proof: &P,
    ) {
    }
}

/// Fills `buf` with random bytes: the OS's random source in production (nonces and secrets
/// must be unpredictable), madsim's generator in the simulator (drawn from the seed, so a run
/// replays).
pub fn random_bytes(buf: &mut [u8]) {
    #[cfg(madsim)]
    {
        use tokio::madsim::rand::RngCore;
        tokio::madsim::rand::thread_rng().fill_bytes(buf);
    }
    #[cfg(not(madsim))]
    {
        getrandom::getrandom(buf).expect("the operating system's random source failed");
    }
}

/// Where a process's cluster credentials live (see [`crate::io::auth`]): one slot per simulated
/// node in the simulator, installed by the simulator's world for each node it creates.
#[cfg(madsim)]
#[path = "credentials_nodes.rs"]
pub mod credentials;

/// Where a process's cluster credentials live (see [`crate::io::auth`]): one slot for the
/// process, installed at start-up.
#[cfg(not(madsim))]
pub mod credentials {
    use std::sync::{Arc, RwLock};

    use crate::io::auth::Credentials;

    static INSTALLED: RwLock<Option<Arc<Credentials>>> = RwLock::new(None);

    /// Installs the process's credentials (a later call replaces them: a test process may act
    /// as several clusters' clients in turn).
    pub(crate) fn install(credentials: Arc<Credentials>) {
        *INSTALLED.write().expect("credentials poisoned") = Some(credentials);
    }

    pub(crate) fn current() -> Option<Arc<Credentials>> {
        INSTALLED.read().expect("credentials poisoned").clone()
    }
}

/// Whether this build runs inside the simulator (for log formatting only).
pub const SIMULATED: bool = cfg!(madsim);

/// The most frames a simulated world may send without its clock moving. Simulated sends take
/// no time, so a task that sends in a loop whose exit never comes (a walsender re-sending an
/// empty chunk forever) would fill memory with frames while the clock stands still and the
/// seed never ends. Far above anything a cluster sends in one instant (a catch-up ships a few
/// hundred chunks; every disk read and fsync moves the clock).
pub const FRAMES_PER_INSTANT_MAX: u64 = 200_000;

/// Counts a frame sent (see [`FRAMES_PER_INSTANT_MAX`]); in the simulator, past the bound the
/// seed fails with a panic naming the runaway, which its result reports like any other crash.
/// Nothing in production.
#[inline]
pub fn frame_sent() {
    #[cfg(madsim)]
    {
        use std::cell::Cell;
        thread_local! {
            static AT_INSTANT: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
        }
        let now = Instant::now();
        AT_INSTANT.with(|c| {
            let count = match c.get() {
                Some((at, n)) if at == now => n + 1,
                _ => 1,
            };
            c.set(Some((now, count)));
            assert!(
                count <= FRAMES_PER_INSTANT_MAX,
                "runaway: {count} frames sent without the simulated clock moving (a loop that \
                 sends and never waits)"
            );
        });
    }
}
