//! Production mode: a peer that holds the cluster secret but asks what its identity may not ask
//! is refused, and nothing changes. A running local cluster (coordinator, primary, mirror, and
//! a standby) is sent, over authenticated connections: segment orders (PROMOTE, SYNCREP_OFF, a
//! PROBE at the top epoch, a full REJOIN, BEGIN, COMMIT PREPARED) from a client, the operator's
//! tools and a segment of another dbid; a REJOIN naming the instance itself, from the
//! coordinator; a WAL stream and a WAL feedback at the top LSN from a segment that is not the
//! mirror; the coordinator's administration verbs, standby registration and catalog stream from
//! a client; and ACTIVATE to the standby from a client. Each is refused with who asked;
//! afterwards the instances answer the coordinator's probe at the catalog's epoch (none adopted
//! an epoch), the roles, the catalog epoch and the rows are unchanged, and the standby is still
//! a standby.
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_roles`.

mod support;

use std::time::Duration;

use cluster::client::Client;
use cluster::io::auth::{self, Credentials, PeerIdentity};
use cluster::io::net::Connection;
use cluster::model::catalog::{Catalog, Role, SegmentConfig};
use cluster::wire::{
    AdminRequest, CatalogStream, ClientRequest, ClientResponse, DbError, SegmentRequest,
    SegmentResponse, StandbyReply, StandbyRequest, WalFeedback, WalMessage,
};
use support::{until, LocalCluster};

const TABLE: &str = "t";
const T: Duration = Duration::from_secs(5);

/// This process's credentials from now on: the cluster's secret, as `identity`.
fn act_as(c: &LocalCluster, identity: PeerIdentity) {
    let text = std::fs::read_to_string(c.secret()).unwrap();
    let (cluster_id, keys) = auth::parse_secret_file(&text).unwrap();
    auth::install(Credentials {
        cluster_id,
        identity,
        keys,
    });
}

fn not_allowed(e: &DbError) -> bool {
    matches!(e, DbError::NotAllowed { .. })
}

async fn to_segment(addr: &str, req: &SegmentRequest) -> SegmentResponse {
    let mut conn = Connection::connect(addr, T).await.unwrap();
    conn.call(req, T).await.unwrap()
}

async fn to_coordinator(addr: &str, req: &ClientRequest) -> ClientResponse {
    let mut conn = Connection::connect(addr, T).await.unwrap();
    conn.call(req, T).await.unwrap()
}

/// The orders only the coordinator gives `row`, with marker epochs far above any real one.
fn orders(row: &SegmentConfig) -> Vec<SegmentRequest> {
    vec![
        SegmentRequest::Promote {
            dbid: row.dbid,
            epoch: u64::MAX - 1,
        },
        SegmentRequest::SyncrepOff {
            dbid: row.dbid,
            epoch: u64::MAX - 1,
        },
        SegmentRequest::Probe {
            dbid: row.dbid,
            content: row.content,
            epoch: u64::MAX,
        },
        SegmentRequest::Rejoin {
            epoch: u64::MAX - 1,
            primary: row.endpoint(),
            full: true,
        },
        SegmentRequest::Begin {
            xid: u64::MAX - 1,
            epoch: u64::MAX - 1,
        },
        SegmentRequest::CommitPrepared {
            xid: 1,
            epoch: u64::MAX - 1,
        },
    ]
}

/// A WAL stream asked of `primary` for `mirror_dbid`, then feedback claiming every LSN flushed:
/// the stream is refused, and the feedback finds the connection closed or is ignored.
async fn stream_refused(primary: &str, mirror_dbid: u16) {
    let mut conn = Connection::connect(primary, T).await.unwrap();
    conn.send(&SegmentRequest::StartReplication {
        mirror_dbid,
        from: 0,
        system_id: None,
    })
    .await
    .unwrap();
    let first = tokio::time::timeout(T, conn.recv::<WalMessage>())
        .await
        .expect("an answer");
    match first {
        Ok(WalMessage::Refused { reason }) => {
            assert!(reason.contains("refused from"), "{reason}")
        }
        other => panic!("the stream for dbid {mirror_dbid} is refused: {other:?}"),
    }
    let _ = conn
        .send(&WalFeedback {
            flushed: u64::MAX,
            replayed: u64::MAX,
        })
        .await;
}

async fn rows(client: &mut Client) -> Vec<Option<Vec<u8>>> {
    client.begin().await.unwrap();
    let mut rows = Vec::new();
    for key in 1..=3 {
        rows.push(client.get(TABLE, key).await.unwrap());
    }
    client.commit().await.unwrap();
    rows
}

fn roles(catalog: &Catalog) -> Vec<(u16, Role)> {
    catalog
        .segments
        .values()
        .map(|s| (s.dbid, s.role))
        .collect()
}

#[test]
fn authenticated_peers_asking_what_their_identity_may_not_are_refused_and_change_nothing() {
    let c = LocalCluster::init("roles", &[]);
    c.verb("start", &[]);
    act_as(&c, PeerIdentity::Admin);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut client = Client::new(vec![c.coordinator.clone()], T);
    rt.block_on(support::table_with_rows(&mut client, TABLE, &[1], b"one"));
    until("the pair synchronized", Duration::from_secs(30), || {
        c.ok(&["state", "--coordinator", &c.coordinator])
            .contains("Pairs not synchronized: 0")
            .then_some(())
    });
    let standby = format!("127.0.0.1:{}", c.base_port + 3);
    let port = (c.base_port + 3).to_string();
    c.verb(
        "init-standby",
        &["-s", "127.0.0.1", "--standby-port", &port],
    );
    let before: Catalog = rt.block_on(client.catalog()).unwrap();
    let rows_before = rt.block_on(rows(&mut client));
    let row = |role: Role| {
        before
            .segments
            .values()
            .find(|s| s.content == 0 && s.role == role)
            .unwrap()
            .clone()
    };
    let (primary, mirror) = (row(Role::Primary), row(Role::Mirror));
    let stranger_dbid = before.segments.keys().max().unwrap() + 10;

    // Segment orders from whoever is not the coordinator.
    for identity in [
        PeerIdentity::Client,
        PeerIdentity::Admin,
        PeerIdentity::Segment {
            dbid: stranger_dbid,
        },
        PeerIdentity::Segment { dbid: mirror.dbid },
    ] {
        act_as(&c, identity);
        for target in [&primary, &mirror] {
            for req in orders(target) {
                let answer = rt.block_on(to_segment(&target.endpoint(), &req));
                assert!(
                    matches!(&answer, SegmentResponse::Error(e) if not_allowed(e)),
                    "{req:?} from {identity} to dbid {}: {answer:?}",
                    target.dbid
                );
            }
        }
    }
    // A primary never rejoins towards itself, whoever asks; nor does a mirror.
    act_as(&c, PeerIdentity::Coordinator);
    for target in [&primary, &mirror] {
        let req = SegmentRequest::Rejoin {
            epoch: before.epoch,
            primary: target.endpoint(),
            full: true,
        };
        let answer = rt.block_on(to_segment(&target.endpoint(), &req));
        match &answer {
            SegmentResponse::Error(DbError::NotAllowed { why, .. }) => {
                assert!(why.contains("never rejoins towards itself"), "{why}")
            }
            other => panic!("a rejoin of dbid {} towards itself: {other:?}", target.dbid),
        }
    }
    // A WAL stream (and feedback at the top LSN) for anyone but the mirror it names. (A
    // segment naming its own dbid is served: the primary does not know the catalog, and a new
    // mirror of add-mirrors has a dbid it never saw.)
    for (identity, asks_for) in [
        (
            PeerIdentity::Segment {
                dbid: stranger_dbid,
            },
            mirror.dbid,
        ),
        (PeerIdentity::Segment { dbid: mirror.dbid }, stranger_dbid),
        (PeerIdentity::Segment { dbid: primary.dbid }, primary.dbid),
        (PeerIdentity::Client, mirror.dbid),
        (PeerIdentity::Admin, mirror.dbid),
        (PeerIdentity::Coordinator, mirror.dbid),
    ] {
        act_as(&c, identity);
        rt.block_on(stream_refused(&primary.endpoint(), asks_for));
    }

    // The coordinator's administration verbs, standby registration and catalog stream, from a
    // client.
    act_as(&c, PeerIdentity::Client);
    let mut stranger = mirror.clone();
    stranger.dbid = stranger_dbid;
    stranger.port = 1;
    let verbs = vec![
        ClientRequest::Admin(AdminRequest::Recover {
            full: true,
            only: None,
        }),
        ClientRequest::Admin(AdminRequest::Rebalance),
        ClientRequest::Admin(AdminRequest::AddMirrors {
            mirrors: vec![stranger.clone()],
        }),
        ClientRequest::Admin(AdminRequest::Relocate {
            moves: vec![cluster::wire::Relocation {
                dbid: mirror.dbid,
                hostname: "elsewhere".into(),
                address: "127.0.0.1".into(),
                port: 1,
                datadir: "/nowhere".into(),
            }],
            why: "a client's bug".into(),
        }),
        ClientRequest::Standby(StandbyRequest::Register {
            coordinator: stranger.clone(),
            standby: stranger.clone(),
        }),
        ClientRequest::Standby(StandbyRequest::Unregister {
            dbid: stranger_dbid,
        }),
    ];
    for req in &verbs {
        let answer = rt.block_on(to_coordinator(&c.coordinator, req));
        assert!(
            matches!(&answer, ClientResponse::Error(e) if not_allowed(e)),
            "{req:?} from a client: {answer:?}"
        );
    }
    let streamed = rt.block_on(async {
        let mut conn = Connection::connect(&c.coordinator, T).await.unwrap();
        let start = ClientRequest::Standby(StandbyRequest::StartReplication {
            dbid: stranger_dbid,
            from: Some(0),
        });
        conn.send(&start).await.unwrap();
        let first = conn.recv::<CatalogStream>().await;
        let _ = conn
            .send(&WalFeedback {
                flushed: u64::MAX,
                replayed: u64::MAX,
            })
            .await;
        first
    });
    assert!(
        matches!(
            &streamed,
            Ok(CatalogStream::Wal(WalMessage::Refused { .. }))
        ),
        "a client's catalog stream: {streamed:?}"
    );

    // ACTIVATE to the standby from anyone but the operator's tools.
    for identity in [
        PeerIdentity::Client,
        PeerIdentity::Segment { dbid: primary.dbid },
        PeerIdentity::Coordinator,
    ] {
        act_as(&c, identity);
        let req = ClientRequest::Standby(StandbyRequest::Activate);
        let answer = rt.block_on(to_coordinator(&standby, &req));
        assert!(
            matches!(&answer, ClientResponse::Error(e) if not_allowed(e)),
            "ACTIVATE from {identity}: {answer:?}"
        );
    }

    // Nothing changed. The instances answer the coordinator's probe at the catalog's epoch: had
    // either adopted a marker epoch, it would refuse it as stale.
    act_as(&c, PeerIdentity::Admin);
    let after: Catalog = rt.block_on(client.catalog()).unwrap();
    assert_eq!(after.epoch, before.epoch, "the catalog epoch is unchanged");
    assert_eq!(roles(&after), roles(&before), "no role changed");
    assert_eq!(
        rt.block_on(rows(&mut client)),
        rows_before,
        "no row written"
    );
    act_as(&c, PeerIdentity::Coordinator);
    for (target, is_mirror) in [(&primary, false), (&mirror, true)] {
        let probe = SegmentRequest::Probe {
            dbid: target.dbid,
            content: target.content,
            epoch: after.epoch,
        };
        match rt.block_on(to_segment(&target.endpoint(), &probe)) {
            SegmentResponse::Probe(reply) => {
                assert_eq!(reply.is_mirror, is_mirror, "dbid {}", target.dbid);
                if !is_mirror {
                    assert!(reply.mirror_up && reply.syncrep_enabled, "{reply:?}");
                }
            }
            other => panic!("the coordinator's probe of dbid {}: {other:?}", target.dbid),
        }
    }
    act_as(&c, PeerIdentity::Admin);
    match rt.block_on(to_segment(
        &primary.endpoint(),
        &SegmentRequest::ReplicationStatus,
    )) {
        SegmentResponse::Replication(info) => {
            assert_eq!(info.role, Role::Primary);
            assert!(
                info.mirror_flushed <= info.flushed,
                "no feedback past the primary's WAL was taken: {info:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let status = ClientRequest::Standby(StandbyRequest::Status);
    let answer = rt.block_on(to_coordinator(&standby, &status));
    assert!(
        matches!(answer, ClientResponse::Standby(StandbyReply::Passive(_))),
        "the standby is still a standby: {answer:?}"
    );
    let state = c.ok(&["state", "--coordinator", &c.coordinator]);
    assert!(state.contains("Pairs not synchronized: 0"), "{state}");
    let logs = c.logs();
    assert!(
        logs.contains("request refused for its sender"),
        "refusals are logged with the peer and its identity"
    );
}
