//! Who is at the other end of a connection this instance serves, and whether it obeys what
//! that peer asks ([`crate::protocol::roles`]).

use super::Instance;
use crate::io::auth::PeerIdentity;
use crate::protocol::roles::{self, Refusal, SegmentSelf};
use crate::wire::SegmentRequest;

/// A served connection's other end.
pub(super) struct Peer {
    /// Its address (`ip:port`).
    pub addr: String,
    /// The identity it authenticated with; `None` on a plain connection the planted bug
    /// `handshake-skipped-for-control` serves, whose sender is unknown: what it asks is
    /// obeyed as if the coordinator asked it, as that bug has it.
    pub identity: Option<PeerIdentity>,
}

impl Peer {
    /// Whether a fenced request from this peer may move the epoch this instance follows: only
    /// the coordinator's may. Any other peer's is checked against it and moves nothing.
    pub fn moves_epoch(&self) -> bool {
        self.identity.is_none_or(roles::is_coordinator)
    }
}

impl Instance {
    /// Whether this instance obeys `req` from `peer`; a refusal is logged with who asked.
    pub(super) fn allowed(&self, req: &SegmentRequest, peer: &Peer) -> Result<(), Refusal> {
        let Some(from) = peer.identity else {
            return Ok(());
        };
        let me = SegmentSelf {
            dbid: self.dbid(),
            content: self.inner.cfg.content,
            endpoint: &self.inner.cfg.listen_addr,
        };
        roles::segment_request(req, from, me).inspect_err(|refusal| refusal.log(&peer.addr))
    }
}
