//! Who may ask what. Every connection is authenticated, so a server knows who is at the other
//! end ([`PeerIdentity`]); yet an authenticated peer with a bug can still ask what makes no
//! sense for its role, or for the receiver's. Each server checks a request here before it obeys
//! it, and refuses it otherwise, changing nothing.
//!
//! The rules, by receiver:
//! - a segment instance takes its orders (probes, promotion, recovery, transactions, in-doubt
//!   resolution) from the coordinator alone; WAL (a stream, a summary, raw bytes) goes only to
//!   another segment instance, a stream only to the mirror it names; the operator's tools may
//!   read its checksum, replication positions and prepared list; a request naming another
//!   instance, or asking a primary to rejoin towards itself, is refused whoever sends it;
//! - the coordinator serves transactions to clients and the operator's tools, its
//!   administration verbs and standby registrations to the operator's tools alone, and its
//!   catalog stream to the standby it names;
//! - a standby activates only at the operator's word;
//! - a host's agent starts and stops processes only for the operator's tools (the coordinator
//!   may check that it answers).
//!
//! "The coordinator" is the coordinator's software: the acting coordinator, or a standby,
//! which takes that part once activated (and, while it activates, tells every instance its new
//! generation).

use crate::io::auth::PeerIdentity;
use crate::model::catalog::{Content, Dbid};
use crate::wire::agent::AgentRequest;
use crate::wire::{ClientRequest, DbError, SegmentRequest, StandbyRequest};

/// A request refused for who sent it or what it asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub request: &'static str,
    pub from: PeerIdentity,
    pub why: String,
}

impl Refusal {
    fn new(request: &'static str, from: PeerIdentity, why: impl Into<String>) -> Refusal {
        Refusal {
            request,
            from,
            why: why.into(),
        }
    }

    /// Logs the refusal with the peer's address `peer` (the log line every server writes).
    pub fn log(&self, peer: &str) {
        tracing::warn!(
            peer,
            identity = %self.from,
            request = self.request,
            why = %self.why,
            "request refused for its sender: nothing changes"
        );
    }

    /// The refusal as the requester reads it.
    pub fn error(&self) -> DbError {
        DbError::NotAllowed {
            request: self.request.to_string(),
            from: self.from.to_string(),
            why: self.why.clone(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error().fmt(f)
    }
}

/// Whether a host's agent may obey `req` from `from`. Which instances are its host's is the
/// agent's to check.
pub fn agent_request(req: &AgentRequest, from: PeerIdentity) -> Result<(), Refusal> {
    match (from, req) {
        (PeerIdentity::Admin, _) => Ok(()),
        (PeerIdentity::Coordinator, AgentRequest::Health) => Ok(()),
        _ => Err(Refusal::new(
            req.name(),
            from,
            "a host's agent acts for the operator's tools alone",
        )),
    }
}

/// Whether `id` is the coordinator's software (the acting coordinator, or a standby).
pub fn is_coordinator(id: PeerIdentity) -> bool {
    matches!(id, PeerIdentity::Coordinator | PeerIdentity::Standby { .. })
}

/// What a segment instance knows of itself.
#[derive(Clone, Copy, Debug)]
pub struct SegmentSelf<'a> {
    pub dbid: Dbid,
    pub content: Content,
    /// The address it listens at (`ip:port`), as the catalog names it.
    pub endpoint: &'a str,
}

/// Whether segment instance `me` may obey `req` from `from`.
pub fn segment_request(
    req: &SegmentRequest,
    from: PeerIdentity,
    me: SegmentSelf<'_>,
) -> Result<(), Refusal> {
    let name = req.name();
    let refuse = |why: String| Err(Refusal::new(name, from, why));
    let only_coordinator = || {
        if is_coordinator(from) {
            Ok(())
        } else {
            refuse("only the coordinator sends it".into())
        }
    };
    let names_me = |dbid: Dbid| {
        if dbid == me.dbid {
            Ok(())
        } else {
            refuse(format!(
                "it names dbid {dbid}, and this is dbid {}",
                me.dbid
            ))
        }
    };
    match req {
        SegmentRequest::Probe { dbid, content, .. } => {
            only_coordinator()?;
            names_me(*dbid)?;
            if *content != me.content {
                return refuse(format!(
                    "it names content {content}, and dbid {} holds content {}",
                    me.dbid, me.content
                ));
            }
            Ok(())
        }
        SegmentRequest::SyncrepOff { dbid, .. } | SegmentRequest::Promote { dbid, .. } => {
            only_coordinator()?;
            names_me(*dbid)
        }
        SegmentRequest::Rejoin { primary, .. } => {
            only_coordinator()?;
            if primary == me.endpoint {
                return refuse(format!(
                    "it names this instance ({primary}) as the primary to follow: an instance \
                     never rejoins towards itself"
                ));
            }
            Ok(())
        }
        SegmentRequest::Begin { .. }
        | SegmentRequest::Exec { .. }
        | SegmentRequest::Commit
        | SegmentRequest::Abort
        | SegmentRequest::Prepare
        | SegmentRequest::CommitPrepared { .. }
        | SegmentRequest::AbortPrepared { .. }
        | SegmentRequest::CreateTable { .. }
        | SegmentRequest::DropTables { .. } => only_coordinator(),
        // Reads for the operator's tools too (`state -s`, comparing a pair's data, listing
        // what is left prepared); they move no epoch for anyone but the coordinator.
        SegmentRequest::ListPrepared { .. }
        | SegmentRequest::Checksum
        | SegmentRequest::ReplicationStatus => {
            if is_coordinator(from) || from == PeerIdentity::Admin {
                Ok(())
            } else {
                refuse("only the coordinator and the operator's tools read it".into())
            }
        }
        // A recovering instance compares its WAL with its primary's.
        SegmentRequest::WalSummary { .. } | SegmentRequest::ReadWal { .. } => match from {
            PeerIdentity::Segment { dbid } if dbid != me.dbid => Ok(()),
            _ => refuse("only another segment instance (a recovering one) reads this WAL".into()),
        },
        SegmentRequest::StartReplication { mirror_dbid, .. } => match from {
            PeerIdentity::Segment { dbid } if dbid == *mirror_dbid && dbid != me.dbid => Ok(()),
            PeerIdentity::Segment { dbid } if dbid == me.dbid => {
                refuse(format!("dbid {dbid} never streams from itself"))
            }
            _ => refuse(format!(
                "only the mirror it names (segment dbid {mirror_dbid}) streams this WAL"
            )),
        },
    }
}

/// Whether the coordinator (or an activated standby serving as one) may obey `req` from `from`.
pub fn coordinator_request(req: &ClientRequest, from: PeerIdentity) -> Result<(), Refusal> {
    let name = req.name();
    let refuse = |why: String| Err(Refusal::new(name, from, why));
    let admin = from == PeerIdentity::Admin;
    match req {
        ClientRequest::Begin
        | ClientRequest::Exec { .. }
        | ClientRequest::Commit
        | ClientRequest::Abort
        | ClientRequest::Sql { .. }
        | ClientRequest::CreateTable { .. } => match from {
            PeerIdentity::Client | PeerIdentity::Admin => Ok(()),
            _ => refuse("only a client or the operator's tools run transactions".into()),
        },
        ClientRequest::Catalog
        | ClientRequest::DistributedLog
        | ClientRequest::ConfigurationHistory => not_from_a_segment(name, from),
        ClientRequest::Admin(_) if admin => Ok(()),
        ClientRequest::Admin(_) => refuse("only the operator's tools send it".into()),
        ClientRequest::Standby(req) => standby_verb_to_coordinator(req, from),
    }
}

fn not_from_a_segment(name: &'static str, from: PeerIdentity) -> Result<(), Refusal> {
    match from {
        PeerIdentity::Segment { .. } => Err(Refusal::new(
            name,
            from,
            "a segment instance has no business with the coordinator",
        )),
        _ => Ok(()),
    }
}

fn standby_verb_to_coordinator(req: &StandbyRequest, from: PeerIdentity) -> Result<(), Refusal> {
    let name = req.name();
    let refuse = |why: String| Err(Refusal::new(name, from, why));
    match req {
        StandbyRequest::Register { .. }
        | StandbyRequest::Unregister { .. }
        | StandbyRequest::Activate => {
            if from == PeerIdentity::Admin {
                Ok(())
            } else {
                refuse("only the operator's tools (init-standby, activate-standby) send it".into())
            }
        }
        StandbyRequest::Status => {
            if is_coordinator(from) || from == PeerIdentity::Admin {
                Ok(())
            } else {
                refuse("only the coordinator's software and the operator's tools read it".into())
            }
        }
        // The standby process: its own identity, or the coordinator's software's on a host
        // that runs the coordinator and the standby in turn.
        StandbyRequest::StartReplication { dbid, .. } => match from {
            PeerIdentity::Standby { dbid: d } if d == *dbid => Ok(()),
            PeerIdentity::Coordinator => Ok(()),
            _ => refuse(format!(
                "only the standby it names (dbid {dbid}) streams the catalog"
            )),
        },
    }
}

/// Whether a standby that is not (yet) active may obey `req` from `from`. What it does not
/// serve while passive it answers as before (not active), which changes nothing.
pub fn passive_standby_request(req: &ClientRequest, from: PeerIdentity) -> Result<(), Refusal> {
    let name = req.name();
    match req {
        ClientRequest::Standby(StandbyRequest::Activate) if from == PeerIdentity::Admin => Ok(()),
        ClientRequest::Standby(StandbyRequest::Activate) => Err(Refusal::new(
            name,
            from,
            "only the operator's tools (activate-standby) activate a standby",
        )),
        ClientRequest::Standby(StandbyRequest::Status) => {
            if is_coordinator(from) || from == PeerIdentity::Admin {
                Ok(())
            } else {
                Err(Refusal::new(
                    name,
                    from,
                    "only the coordinator's software and the operator's tools read it",
                ))
            }
        }
        ClientRequest::Catalog => not_from_a_segment(name, from),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::AdminRequest;

    const ME: SegmentSelf<'static> = SegmentSelf {
        dbid: 2,
        content: 0,
        endpoint: "10.1.0.2:6000",
    };

    fn probe(epoch: u64) -> SegmentRequest {
        SegmentRequest::Probe {
            dbid: 2,
            content: 0,
            epoch,
        }
    }

    #[test]
    fn only_the_coordinator_gives_a_segment_orders() {
        let orders = [
            probe(u64::MAX),
            SegmentRequest::SyncrepOff { dbid: 2, epoch: 9 },
            SegmentRequest::Promote { dbid: 2, epoch: 9 },
            SegmentRequest::Rejoin {
                epoch: 9,
                primary: "10.1.0.3:6000".into(),
                full: true,
            },
            SegmentRequest::Begin { xid: 1, epoch: 9 },
            SegmentRequest::Commit,
            SegmentRequest::CommitPrepared { xid: 1, epoch: 9 },
            SegmentRequest::AbortPrepared { xid: 1, epoch: 9 },
        ];
        for req in &orders {
            for from in [PeerIdentity::Coordinator, PeerIdentity::Standby { dbid: 9 }] {
                assert_eq!(segment_request(req, from, ME), Ok(()), "{req:?}");
            }
            for from in [
                PeerIdentity::Client,
                PeerIdentity::Admin,
                PeerIdentity::Segment { dbid: 3 },
            ] {
                let refusal = segment_request(req, from, ME).unwrap_err();
                assert!(refusal.why.contains("only the coordinator"), "{refusal}");
            }
        }
    }

    #[test]
    fn a_primary_never_rejoins_towards_itself() {
        let req = SegmentRequest::Rejoin {
            epoch: 9,
            primary: ME.endpoint.into(),
            full: true,
        };
        let refusal = segment_request(&req, PeerIdentity::Coordinator, ME).unwrap_err();
        assert!(
            refusal.why.contains("never rejoins towards itself"),
            "{refusal}"
        );
    }

    #[test]
    fn an_order_naming_another_instance_is_refused() {
        let other = SegmentRequest::Promote { dbid: 3, epoch: 9 };
        assert!(segment_request(&other, PeerIdentity::Coordinator, ME).is_err());
        let other_content = SegmentRequest::Probe {
            dbid: 2,
            content: 1,
            epoch: 9,
        };
        assert!(segment_request(&other_content, PeerIdentity::Coordinator, ME).is_err());
    }

    #[test]
    fn only_the_named_mirror_streams_wal() {
        let start = |mirror_dbid| SegmentRequest::StartReplication {
            mirror_dbid,
            from: 0,
            system_id: None,
        };
        let seg = |dbid| PeerIdentity::Segment { dbid };
        assert_eq!(segment_request(&start(5), seg(5), ME), Ok(()));
        assert!(segment_request(&start(5), seg(4), ME).is_err());
        assert!(segment_request(&start(2), seg(2), ME).is_err(), "itself");
        for from in [
            PeerIdentity::Coordinator,
            PeerIdentity::Admin,
            PeerIdentity::Client,
        ] {
            assert!(segment_request(&start(5), from, ME).is_err());
        }
        let read = SegmentRequest::ReadWal { from: 0, len: 8 };
        assert_eq!(segment_request(&read, seg(5), ME), Ok(()));
        assert!(segment_request(&read, PeerIdentity::Client, ME).is_err());
    }

    #[test]
    fn the_operators_tools_read_a_segment_but_give_no_orders() {
        for req in [
            SegmentRequest::Checksum,
            SegmentRequest::ReplicationStatus,
            SegmentRequest::ListPrepared { epoch: 9 },
        ] {
            assert_eq!(segment_request(&req, PeerIdentity::Admin, ME), Ok(()));
            assert!(segment_request(&req, PeerIdentity::Client, ME).is_err());
        }
    }

    #[test]
    fn administration_and_registration_only_from_the_operators_tools() {
        let verbs = [
            ClientRequest::Admin(AdminRequest::Rebalance),
            ClientRequest::Admin(AdminRequest::State),
            ClientRequest::Standby(StandbyRequest::Unregister { dbid: 9 }),
        ];
        for req in &verbs {
            assert_eq!(coordinator_request(req, PeerIdentity::Admin), Ok(()));
            for from in [
                PeerIdentity::Client,
                PeerIdentity::Coordinator,
                PeerIdentity::Segment { dbid: 2 },
            ] {
                assert!(coordinator_request(req, from).is_err(), "{req:?} {from}");
            }
        }
    }

    #[test]
    fn transactions_only_from_a_client_or_the_operators_tools() {
        let transaction = [
            ClientRequest::Begin,
            ClientRequest::Commit,
            ClientRequest::Abort,
            ClientRequest::CreateTable {
                name: "t".into(),
                kind: crate::model::data::TableKind::Heap,
            },
        ];
        for req in &transaction {
            for from in [PeerIdentity::Client, PeerIdentity::Admin] {
                assert_eq!(coordinator_request(req, from), Ok(()), "{req:?} {from}");
            }
            for from in [
                PeerIdentity::Coordinator,
                PeerIdentity::Segment { dbid: 2 },
                PeerIdentity::Standby { dbid: 9 },
                PeerIdentity::agent("sdw1"),
            ] {
                assert!(coordinator_request(req, from).is_err(), "{req:?} {from}");
            }
        }
    }

    #[test]
    fn only_the_named_standby_streams_the_catalog() {
        let start = ClientRequest::Standby(StandbyRequest::StartReplication {
            dbid: 9,
            from: None,
        });
        assert_eq!(
            coordinator_request(&start, PeerIdentity::Standby { dbid: 9 }),
            Ok(())
        );
        assert!(coordinator_request(&start, PeerIdentity::Standby { dbid: 8 }).is_err());
        assert!(coordinator_request(&start, PeerIdentity::Client).is_err());
        assert!(coordinator_request(&start, PeerIdentity::Admin).is_err());
    }

    #[test]
    fn a_standby_activates_only_at_the_operators_word() {
        let activate = ClientRequest::Standby(StandbyRequest::Activate);
        assert_eq!(
            passive_standby_request(&activate, PeerIdentity::Admin),
            Ok(())
        );
        for from in [
            PeerIdentity::Client,
            PeerIdentity::Coordinator,
            PeerIdentity::Segment { dbid: 2 },
        ] {
            assert!(passive_standby_request(&activate, from).is_err());
        }
    }

    #[test]
    fn an_agent_acts_for_the_operators_tools_alone() {
        let stop = AgentRequest::Stop {
            dbid: 2,
            address: "10.1.0.1".into(),
            datadir: "/data/primary0".into(),
            mode: crate::wire::agent::StopMode::Immediate,
        };
        let others = [
            AgentRequest::MakeDataDirectory { dbid: 2 },
            AgentRequest::WriteConfig { text: "{}".into() },
        ];
        for req in [&stop, &AgentRequest::Exit, &AgentRequest::Health]
            .into_iter()
            .chain(&others)
        {
            assert_eq!(agent_request(req, PeerIdentity::Admin), Ok(()));
            for from in [
                PeerIdentity::Client,
                PeerIdentity::Segment { dbid: 2 },
                PeerIdentity::Standby { dbid: 4 },
                PeerIdentity::agent("sdw2"),
            ] {
                assert!(agent_request(req, from).is_err(), "{req:?} from {from}");
            }
        }
        assert_eq!(
            agent_request(&AgentRequest::Health, PeerIdentity::Coordinator),
            Ok(())
        );
        assert!(agent_request(&stop, PeerIdentity::Coordinator).is_err());
    }
}
