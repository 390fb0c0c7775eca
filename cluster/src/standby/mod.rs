//! The warm standby coordinator (seed 000, "Using Master Mirroring"; gpinitstandby,
//! gpactivatestandby).
//!
//! - [`instance`] (standby host): the standby process: receives, flushes and replays the
//!   catalog's WAL, refuses client work, and on activation becomes the coordinator.
//! - [`activate`]: activation (replay, take over the catalog with a new epoch, resolve
//!   in-doubt distributed transactions).
//! - [`admin`]: the `init-standby` and `activate-standby` verbs, their checks and refusals.
//!
//! The coordinator's side of the mirroring (its sender and the state it reports) is the
//! coordinator's ([`crate::coordinator::mirroring`]). The messages (verbs, reports, the catalog
//! stream's frames) are the wire layer's ([`crate::wire::standby`]), re-exported here.

pub mod activate;
pub mod admin;
pub mod instance;

/// The catalog stream's timing and framing, defined by its sending side.
pub use crate::coordinator::mirroring::{
    backup_frames, BackupAssembly, BACKUP_CHUNK_BYTES, STANDBY_WAL_TIMEOUT,
};
/// The standby's messages, defined in the wire layer, under the role that speaks them.
pub use crate::wire::standby::{
    ActivateRefusal, Activation, CatalogStream, MirroringStatus, PassiveStatus, StandbyReply,
    StandbyRequest, SummaryState,
};

/// The message a standby answers client work with.
pub fn not_active_message(addr: &str) -> String {
    format!("the coordinator at {addr} is a warm standby: it serves no work until activate-standby promotes it")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::net::decode_frame;
    use crate::wire::ClientRequest;

    proptest::proptest! {
        #[test]
        fn no_byte_string_makes_the_standby_frames_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..96)) {
            let _ = decode_frame::<CatalogStream>(&bytes, "p");
            let _ = decode_frame::<ClientRequest>(&bytes, "p");
            let _ = decode_frame::<StandbyReply>(&bytes, "p");
        }
    }
}
