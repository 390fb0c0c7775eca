//! Production mode: every listening port of a running local cluster (the coordinator, a
//! primary, a mirror, the host's agent) refuses peers that do not prove they hold the cluster secret, before it
//! reads a request of theirs: a valid request frame sent with no handshake (among them a
//! stranger's `StartReplication { from: 0 }` to the primary and `Promote { epoch: 1000 }` to the
//! mirror), a wrong secret, a recorded handshake replayed, random bytes, a frame declaring
//! 4 GiB, a truncated frame. Each is refused and logged; afterwards the processes still serve
//! the legitimate admin client, and nothing changed: the same catalog epoch and roles, the same
//! rows.
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_auth`.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::client::Client;
use cluster::io::auth::{
    self, Challenge, ClientHandshake, Credentials, Keys, PeerIdentity, Secret,
};
use cluster::io::net::{decode_frame, encode_frame, Connection};
use cluster::model::catalog::{Catalog, Role};
use cluster::wire::agent::{AgentRequest, StopMode};
use cluster::wire::{ClientRequest, SegmentRequest};
use support::{until, LocalCluster};

const TABLE: &str = "t";

fn credentials(c: &LocalCluster) -> Credentials {
    let text = std::fs::read_to_string(c.secret()).unwrap();
    let (cluster_id, keys) = auth::parse_secret_file(&text).unwrap();
    Credentials {
        cluster_id,
        identity: PeerIdentity::Admin,
        keys,
    }
}

fn raw(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// Everything the peer sends until it closes the connection (or `None` if it does not close it
/// within 3 s).
fn until_closed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let began = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(got),
        }
        if began.elapsed() > Duration::from_secs(3) {
            return None;
        }
    }
}

/// `bytes` sent on a fresh connection are refused: it is closed with no answer at all.
fn refused_silently(addr: &str, bytes: &[u8], what: &str) {
    let mut s = raw(addr);
    let _ = s.write_all(bytes);
    let got = until_closed(&mut s);
    assert_eq!(
        got.as_deref(),
        Some(&[][..]),
        "{what} to {addr}: the connection is closed with nothing answered"
    );
}

/// A tagged frame as an authenticated connection sends it, of an encoded message.
fn tagged(key: &mut auth::FrameKey, payload: &[u8]) -> Vec<u8> {
    let tag = key.seal(payload);
    let mut f = (payload.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    f.extend_from_slice(&tag);
    f.extend_from_slice(payload);
    f
}

/// A legitimate handshake and one request, run by hand on a raw socket: what the client sent,
/// recorded. The request is answered.
fn recorded_session(addr: &str, creds: &Credentials, request: &[u8]) -> Vec<Vec<u8>> {
    let mut s = raw(addr);
    let (hs, hello) = ClientHandshake::start(Arc::new(creds.clone()));
    let hello = encode_frame(&hello);
    s.write_all(&hello).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let challenge: Challenge = loop {
        if let Some((c, _)) = decode_frame::<Challenge>(&got, addr).unwrap() {
            break c;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{addr} closed a legitimate handshake");
        got.extend_from_slice(&buf[..n]);
    };
    let (proof, mut session, _) = hs.answer(&challenge).unwrap();
    let proof = encode_frame(&proof);
    let request_frame = tagged(&mut session.send, request);
    s.write_all(&proof).unwrap();
    s.write_all(&request_frame).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0, "{addr} answers a legitimate request");
    vec![hello, proof, request_frame]
}

/// A port: its name, its address, request frames a stranger sends with no handshake, and the
/// encoded request of a legitimate session that is recorded and replayed.
type Port = (&'static str, String, Vec<Vec<u8>>, Vec<u8>);

struct Snapshot {
    epoch: u64,
    roles: Vec<(u16, Role)>,
    rows: Vec<Option<Vec<u8>>>,
}

async fn snapshot(client: &mut Client) -> Snapshot {
    let catalog: Catalog = client.catalog().await.unwrap();
    let mut rows = Vec::new();
    client.begin().await.unwrap();
    for key in 1..=3 {
        rows.push(client.get(TABLE, key).await.unwrap());
    }
    client.commit().await.unwrap();
    Snapshot {
        epoch: catalog.epoch,
        roles: catalog
            .segments
            .values()
            .map(|s| (s.dbid, s.role))
            .collect(),
        rows,
    }
}

#[test]
fn every_port_refuses_peers_without_the_secret_and_serves_the_cluster_afterwards() {
    let c = LocalCluster::init("auth", &[]);
    c.verb("start", &[]);
    let creds = credentials(&c);
    auth::install(creds.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut client = Client::new(vec![c.coordinator.clone()], Duration::from_secs(5));
    rt.block_on(support::table_with_rows(&mut client, TABLE, &[1], b"one"));
    until("the pair synchronized", Duration::from_secs(30), || {
        c.ok(&["state", "--coordinator", &c.coordinator])
            .contains("Pairs not synchronized: 0")
            .then_some(())
    });
    let before = rt.block_on(snapshot(&mut client));
    let catalog: Catalog = rt.block_on(client.catalog()).unwrap();
    let endpoint = |role: Role| {
        catalog
            .segments
            .values()
            .find(|s| s.content == 0 && s.role == role)
            .unwrap()
            .endpoint()
    };
    let (primary, mirror) = (endpoint(Role::Primary), endpoint(Role::Mirror));
    let probe_max = encode_frame(&SegmentRequest::Probe {
        dbid: 2,
        content: 0,
        epoch: u64::MAX,
    });
    let mut ports: Vec<Port> = vec![
        (
            "coordinator",
            c.coordinator.clone(),
            vec![encode_frame(&ClientRequest::Catalog)],
            cluster::io::codec::encode(&ClientRequest::Catalog),
        ),
        (
            "primary",
            primary.clone(),
            vec![
                encode_frame(&SegmentRequest::StartReplication {
                    mirror_dbid: 3,
                    from: 0,
                    system_id: None,
                }),
                probe_max.clone(),
            ],
            cluster::io::codec::encode(&SegmentRequest::ReplicationStatus),
        ),
        (
            "mirror",
            mirror.clone(),
            vec![
                encode_frame(&SegmentRequest::Promote {
                    dbid: 3,
                    epoch: 1000,
                }),
                probe_max,
            ],
            cluster::io::codec::encode(&SegmentRequest::ReplicationStatus),
        ),
    ];
    let agent = c.file_json()["agents"][0].clone();
    let agent = format!("{}:{}", agent["address"].as_str().unwrap(), agent["port"]);
    ports.push((
        "agent",
        agent,
        vec![
            encode_frame(&AgentRequest::Stop {
                dbid: 2,
                address: "127.0.0.1".into(),
                datadir: c.datadir("primary0").display().to_string(),
                mode: StopMode::Immediate,
            }),
            encode_frame(&AgentRequest::Exit),
        ],
        cluster::io::codec::encode(&AgentRequest::Health),
    ));
    let wrong = Credentials {
        keys: Keys::single(Secret::from_bytes([0x42; 32])),
        ..creds.clone()
    };
    for (name, addr, stranger_requests, legit_request) in &ports {
        // Valid request frames, with no handshake.
        for req in stranger_requests {
            refused_silently(addr, req, &format!("a request with no handshake ({name})"));
        }
        // Random bytes; a frame declaring 4 GiB; a truncated frame (then the peer goes).
        let random: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        refused_silently(addr, &random, &format!("random bytes ({name})"));
        let mut four_gib = vec![0xff; 8];
        four_gib.extend_from_slice(&[0; 64]);
        refused_silently(addr, &four_gib, &format!("a 4 GiB frame ({name})"));
        let (_, hello) = ClientHandshake::start(Arc::new(creds.clone()));
        let hello = encode_frame(&hello);
        let mut s = raw(addr);
        s.write_all(&hello[..hello.len() / 2]).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            until_closed(&mut s).as_deref(),
            Some(&[][..]),
            "a truncated handshake frame ({name})"
        );
        // A wrong secret: refused.
        auth::install(wrong.clone());
        let e = rt.block_on(Connection::connect(addr, Duration::from_secs(3)));
        assert!(e.is_err(), "a wrong secret is refused by the {name}");
        auth::install(creds.clone());
        // A recorded legitimate handshake and request, replayed: the server's fresh challenge
        // makes the recorded proof worthless; nothing but the challenge comes back.
        let recording = recorded_session(addr, &creds, legit_request);
        let mut s = raw(addr);
        for frame in &recording {
            let _ = s.write_all(frame);
        }
        let got = until_closed(&mut s).expect("the replay's connection is closed");
        let (_, used) = decode_frame::<Challenge>(&got, addr)
            .unwrap()
            .expect("a challenge");
        assert_eq!(
            used,
            got.len(),
            "the replayed request ({name}) is not answered"
        );
    }
    // Everyone still serves the legitimate admin client, and nothing changed.
    let state = c.ok(&["state", "--coordinator", &c.coordinator]);
    assert!(state.contains("Pairs not synchronized: 0"), "{state}");
    let after = rt.block_on(snapshot(&mut client));
    assert_eq!(after.epoch, before.epoch, "the catalog epoch is unchanged");
    assert_eq!(after.roles, before.roles, "no role changed");
    assert_eq!(after.rows, before.rows, "no row written");
    let logs = c.logs();
    assert!(
        logs.contains("refused before any request"),
        "refusals are logged with the peer and the reason"
    );
}
