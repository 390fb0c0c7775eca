//! Connection resets: every established connection with an end on one host fails at once, as
//! when a middlebox or a flapping switch port resets them, while listeners and new connections
//! work on. Only the simulator's nemesis injects them. The registry is per thread, as a
//! simulated world runs on one thread; a connection compares against the count of resets when
//! it was opened, so what an earlier world on the thread did does not matter.
//!
//! The simulator's fault alone: production builds compile the no-op in `runtime.rs` instead.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;

use tokio::net::TcpStream;

/// One connection as the registry knows it: its ends with the resets each had seen when it
/// opened, and where its reader leaves its waker while it waits for bytes. The waker stays
/// until a reset takes it or the connection is dropped, so a reset may wake a task that has
/// since stopped reading; that task looks, finds nothing to do, and waits on.
struct Opened {
    seen: [Option<(IpAddr, u64)>; 2],
    /// Resets of every host when it opened.
    total_seen: u64,
    waker: Mutex<Option<Waker>>,
}

impl Opened {
    fn wake(&self) {
        if let Some(w) = self.waker.lock().expect("reset slot poisoned").take() {
            w.wake();
        }
    }
}

#[derive(Default)]
struct State {
    /// Resets per host.
    by_host: BTreeMap<IpAddr, u64>,
    /// The open connections (dropped ones are swept out now and then).
    open: Vec<Weak<Opened>>,
    /// Sweep `open` when it holds this many.
    sweep_at: usize,
}

/// Resets per host, and their total: a connection that opened after the last reset of any
/// host needs no look at the map.
#[derive(Default)]
struct Resets {
    state: Mutex<State>,
    total: AtomicU64,
}

type Registry = Arc<Resets>;

thread_local! {
    static RESETS: Registry = Arc::default();
}

/// Resets every established connection with an end at `ip`.
pub fn reset_host(ip: IpAddr) {
    let woken: Vec<Arc<Opened>> = RESETS.with(|r| {
        r.total.fetch_add(1, Ordering::Relaxed);
        let mut state = r.state.lock().expect("resets poisoned");
        *state.by_host.entry(ip).or_default() += 1;
        state
            .open
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| c.seen.iter().flatten().any(|(end, _)| *end == ip))
            .collect()
    });
    for connection in woken {
        connection.wake();
    }
}

/// A connection's two ends, shared by its reader and its writer.
#[derive(Clone)]
pub(crate) struct Ends {
    registry: Registry,
    opened: Arc<Opened>,
}

impl Ends {
    pub(crate) fn of(stream: &TcpStream) -> Ends {
        let registry = RESETS.with(Arc::clone);
        let ips = [stream.local_addr(), stream.peer_addr()].map(|a| a.ok().map(|a| a.ip()));
        let mut state = registry.state.lock().expect("resets poisoned");
        let opened = Arc::new(Opened {
            seen: ips.map(|ip| ip.map(|ip| (ip, state.by_host.get(&ip).copied().unwrap_or(0)))),
            total_seen: registry.total.load(Ordering::Relaxed),
            waker: Mutex::new(None),
        });
        if state.open.len() >= state.sweep_at {
            state.open.retain(|c| c.strong_count() > 0);
            state.sweep_at = (2 * state.open.len()).max(64);
        }
        state.open.push(Arc::downgrade(&opened));
        drop(state);
        Ends { registry, opened }
    }

    /// Leaves `waker` to be woken by a reset of either end (a clone only when the waiting
    /// task changes).
    pub(crate) fn wait_with(&self, waker: &Waker) {
        let mut slot = self.opened.waker.lock().expect("reset slot poisoned");
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    /// This end's host (the one that opened or accepted the connection).
    pub(crate) fn local_ip(&self) -> Option<IpAddr> {
        self.opened.seen[0].map(|(ip, _)| ip)
    }

    pub(crate) fn is_reset(&self) -> bool {
        self.registry.total.load(Ordering::Relaxed) != self.opened.total_seen && {
            let state = self.registry.state.lock().expect("resets poisoned");
            self.opened
                .seen
                .iter()
                .flatten()
                .any(|(ip, n)| state.by_host.get(ip).copied().unwrap_or(0) > *n)
        }
    }
}
