//! The run's cluster secret and every node's credentials. A world draws its secret from the
//! seed, through a random stream of its own (so no other draw moves), and every node it (or a
//! scenario, a test) creates is enrolled with an identity before it opens or accepts a
//! connection: a node that was not enrolled is a stranger, refused by every listener.

use std::cell::RefCell;
use std::sync::Arc;

use cluster::io::auth::{Credentials, Keys, PeerIdentity, Secret, SECRET_BYTES};
use cluster::io::runtime::credentials;
use madsim::runtime::NodeHandle;
use rand_chacha::rand_core::Rng;

thread_local! {
    /// The current world's cluster id and keys.
    static WORLD: RefCell<Option<(u64, Keys)>> = const { RefCell::new(None) };
}

/// The secret of a world whose seed (of the disk's stream) is `seed`.
pub fn secret_of(seed: u64) -> Secret {
    let mut rng = crate::random::stream(seed, "cluster-secret");
    let mut bytes = [0; SECRET_BYTES];
    rng.fill_bytes(&mut bytes);
    Secret::from_bytes(bytes)
}

/// A new world begins: no node holds credentials, and the world's secret is drawn.
pub fn begin(seed: u64, cluster_id: u64) {
    credentials::forget_all();
    WORLD.with(|w| *w.borrow_mut() = Some((cluster_id, Keys::single(secret_of(seed)))));
}

/// The credentials of the current world for `identity`.
pub fn of(identity: PeerIdentity) -> Credentials {
    WORLD.with(|w| {
        let (cluster_id, keys) = w
            .borrow()
            .clone()
            .expect("a world began (credentials::begin) before its nodes");
        Credentials {
            cluster_id,
            identity,
            keys,
        }
    })
}

/// Enrolls `node` in the current world as `identity`.
pub fn enroll(node: &NodeHandle, identity: PeerIdentity) {
    credentials::install_on(node.id(), Arc::new(of(identity)));
}

/// A client's host for a test, `client` at `10.0.1.1` (the clients' network, which the
/// simulated front doors trust), holding a client's credentials.
pub fn client_node() -> NodeHandle {
    let node = madsim::runtime::Handle::current()
        .create_node()
        .name("client")
        .ip("10.0.1.1".parse().expect("an address"))
        .build();
    enroll(&node, PeerIdentity::Client);
    node
}
