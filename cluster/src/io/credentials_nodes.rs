//! Cluster credentials per simulated node: each node of a simulated world is a process of its
//! own, with its own identity, and a node with none installed cannot open or accept
//! connections. The registry is per thread, as a simulated world runs on one thread; a world
//! starts it afresh ([`forget_all`]) before it creates its nodes, and madsim numbers the nodes
//! of each world from the start, so nothing of an earlier world on the thread carries over.
//!
//! The simulator's alone: production builds compile the process-wide slot in `runtime.rs`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::io::auth::Credentials;

/// A simulated node's identity.
pub type NodeId = tokio::madsim::task::NodeId;

thread_local! {
    static NODES: RefCell<BTreeMap<NodeId, Arc<Credentials>>> = RefCell::default();
}

/// Installs the current node's credentials.
pub(crate) fn install(credentials: Arc<Credentials>) {
    install_on(tokio::madsim::plugin::node(), credentials);
}

/// Installs `node`'s credentials (the world does, for every node it creates); they last across
/// the node's restarts, as a secret file outlives a process.
pub fn install_on(node: NodeId, credentials: Arc<Credentials>) {
    NODES.with(|n| n.borrow_mut().insert(node, credentials));
}

/// Forgets every node's credentials: a new world begins.
pub fn forget_all() {
    NODES.with(|n| n.borrow_mut().clear());
}

pub(crate) fn current() -> Option<Arc<Credentials>> {
    let node = tokio::madsim::plugin::node();
    NODES.with(|n| n.borrow().get(&node).cloned())
}
