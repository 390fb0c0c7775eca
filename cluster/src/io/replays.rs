//! Late and repeated requests: the simulator's nemesis keeps copies of some requests as they
//! are sent ([`Connection::call`](super::net::Connection::call)) and delivers them again later,
//! after the configuration moved on, as a network that held a segment back (or a
//! retransmission nobody deduplicated) would. What is kept is a request's encoded message, not
//! its frame: a frame's tag belongs to its connection, so a copy is delivered as a late but
//! legitimate sender would, on an authenticated connection of its own. What is kept is chosen
//! by a filter the simulator installs, which knows the message types; this layer sees only
//! bytes. The registry is per
//! thread, as a simulated world runs on one thread; [`reset`] starts a world's afresh.
//!
//! The simulator's fault alone: production builds compile the no-op in `runtime.rs` instead.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::rc::Rc;

use super::resets::Ends;

/// Frames kept per class; older ones are dropped.
const KEPT_PER_CLASS: usize = 16;

/// Says whether to keep a request (its encoded message) sent to an address, and in which
/// class: `None` skips it.
pub type Filter = Rc<dyn Fn(&str, &[u8]) -> Option<u8>>;

/// A request as it was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// The sender's address (its host), if known.
    pub from: Option<IpAddr>,
    /// The address it was sent to, `ip:port`.
    pub to: String,
    /// The request's encoded message (a frame's payload).
    pub message: Vec<u8>,
    /// How many frames were kept before this one (in any class): orders them by age.
    pub seq: u64,
}

#[derive(Default)]
struct Registry {
    filter: Option<Filter>,
    kept: BTreeMap<u8, VecDeque<Captured>>,
    seq: u64,
    /// Whether client handshakes are kept, and the newest one to each address.
    keep_handshakes: bool,
    handshakes: BTreeMap<String, Transcript>,
}

/// What a client sent in a handshake that succeeded, as bytes on the wire: its hello and its
/// proof, each a whole plain frame (the simulator's intruder replays them; the server's fresh
/// nonce must make them worthless).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    pub from: Option<IpAddr>,
    pub to: String,
    pub hello: Vec<u8>,
    pub proof: Vec<u8>,
}

/// Keeps (or stops keeping) the client handshakes that succeed from now on.
pub fn keep_handshakes(on: bool) {
    REPLAYS.with(|r| {
        let mut r = r.borrow_mut();
        r.keep_handshakes = on;
        r.handshakes.clear();
    });
}

/// The newest client handshake kept to each address.
pub fn handshakes() -> Vec<Transcript> {
    REPLAYS.with(|r| r.borrow().handshakes.values().cloned().collect())
}

/// Offers a client handshake that just succeeded.
pub(crate) fn offer_handshake<H: serde::Serialize, P: serde::Serialize>(
    ends: &Ends,
    to: &str,
    hello: &H,
    proof: &P,
) {
    REPLAYS.with(|r| {
        let mut r = r.borrow_mut();
        if !r.keep_handshakes {
            return;
        }
        r.handshakes.insert(
            to.to_string(),
            Transcript {
                from: ends.local_ip(),
                to: to.to_string(),
                hello: crate::io::net::encode_frame(hello),
                proof: crate::io::net::encode_frame(proof),
            },
        );
    });
}

thread_local! {
    static REPLAYS: RefCell<Registry> = RefCell::default();
}

/// Starts afresh: nothing kept, and `filter` (or nothing, when `None`) decides what is.
pub fn reset(filter: Option<Filter>) {
    REPLAYS.with(|r| {
        *r.borrow_mut() = Registry {
            filter,
            ..Registry::default()
        }
    });
}

/// Every kept frame, oldest first.
pub fn captured() -> Vec<Captured> {
    REPLAYS.with(|r| {
        let mut all: Vec<Captured> = r.borrow().kept.values().flatten().cloned().collect();
        all.sort_by_key(|c| c.seq);
        all
    })
}

/// Offers a request just sent (its encoded message) on a connection with `ends` to `to`.
pub(crate) fn offer(ends: &Ends, to: &str, message: &[u8]) {
    REPLAYS.with(|r| {
        let mut r = r.borrow_mut();
        let Some(filter) = r.filter.clone() else {
            return;
        };
        let Some(class) = filter(to, message) else {
            return;
        };
        r.seq += 1;
        let seq = r.seq;
        let kept = r.kept.entry(class).or_default();
        if kept.len() == KEPT_PER_CLASS {
            kept.pop_front();
        }
        kept.push_back(Captured {
            from: ends.local_ip(),
            to: to.to_string(),
            message: message.to_vec(),
            seq,
        });
    });
}
