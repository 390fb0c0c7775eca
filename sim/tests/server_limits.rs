//! A segment instance's listener holds the peers it accepts to its limits
//! (`cluster::io::net::ServerLimits`): a connection over the cap is closed at once, a first
//! frame over the first-frame limit is refused, a larger frame is held only while the
//! listener's budget can pay for it, and a frame that stalls half-way is dropped at its
//! deadline, while a well-behaved peer is served throughout. Peers that have not authenticated
//! are held to the handshake's limits (a small frame, within the deadline).

use std::sync::Arc;
use std::time::Duration;

use cluster::io::net::{Connection, NetError, Server, ServerLimits};
use cluster::io::Disk;
use cluster::model::catalog::Role;
use cluster::segment::{self, InstanceConfig};
use cluster::wire::{SegmentRequest, SegmentResponse};
use sim::world::disk::SimDisk;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{sleep, timeout, Instant};

const ADDR: &str = "10.9.0.1:6000";
const DEADLINE: Duration = Duration::from_secs(2);
/// Well under the deadline, well over a simulated round trip.
const AT_ONCE: Duration = Duration::from_millis(200);

fn limits() -> ServerLimits {
    ServerLimits {
        max_connections: 3,
        first_frame_max_bytes: 1024,
        frame_max_bytes: 8 * 1024,
        frame_budget_bytes: 12 * 1024,
        frame_deadline: DEADLINE,
    }
}

fn probe_request() -> SegmentRequest {
    SegmentRequest::Probe {
        dbid: 2,
        content: 0,
        epoch: 0,
    }
}

/// A well-behaved peer is answered.
async fn probe(conn: &mut Connection) {
    let answer = conn
        .call::<_, SegmentResponse>(&probe_request(), Duration::from_secs(1))
        .await;
    assert!(
        matches!(answer, Ok(SegmentResponse::Probe(_))),
        "a probe is answered: {answer:?}"
    );
}

/// An authenticated frame's header declaring `len` bytes (its checksum and tag are never
/// reached).
fn header(len: u32) -> Vec<u8> {
    let mut h = len.to_le_bytes().to_vec();
    h.extend_from_slice(&[0; 20]);
    h
}

/// An authenticated peer's socket, for raw bytes.
async fn authenticated() -> TcpStream {
    Connection::connect(ADDR, Duration::from_secs(1))
        .await
        .expect("the listener accepts")
        .into_stream()
}

async fn raw() -> TcpStream {
    TcpStream::connect(ADDR)
        .await
        .expect("the listener accepts")
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).await.expect("written");
    stream.flush().await.expect("flushed");
}

/// Whether the instance closes the connection (its reads end, cleanly or with a reset) within
/// `within`; answers are read and ignored.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let until = Instant::now() + within;
    let mut buf = [0u8; 256];
    loop {
        match timeout(
            until.saturating_duration_since(Instant::now()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// An authenticated peer that has sent one valid frame (and read its answer), so it may send
/// larger ones, as raw bytes.
async fn identified() -> TcpStream {
    let mut conn = Connection::connect(ADDR, Duration::from_secs(1))
        .await
        .expect("the listener accepts");
    probe(&mut conn).await;
    conn.into_stream()
}

#[madsim::test]
async fn a_listener_refuses_over_its_limits_and_serves_a_normal_peer() {
    let handle = madsim::runtime::Handle::current();
    sim::world::credentials::begin(0, 1);
    let host = handle
        .create_node()
        .name("sdw1")
        .ip("10.9.0.1".parse().unwrap())
        .build();
    sim::world::credentials::enroll(&host, cluster::io::auth::PeerIdentity::Client);
    host.spawn(async {
        let mut cfg = InstanceConfig::new(2, 0, ADDR, Role::Primary);
        cfg.server_limits = limits();
        let disk = SimDisk::new();
        // A data directory as init makes it.
        sim::world::install_identity(&disk, cfg.cluster_id, "", cfg.dbid, cfg.content);
        let disk: Arc<dyn Disk> = Arc::new(disk);
        let stopped = segment::run(cfg, disk).await;
        panic!("the instance stopped: {stopped:?}");
    });
    let peers = handle
        .create_node()
        .name("peers")
        .ip("10.9.0.2".parse().unwrap())
        .build();
    // They probe the instance, as the coordinator does.
    sim::world::credentials::enroll(&peers, cluster::io::auth::PeerIdentity::Coordinator);
    peers
        .spawn(async {
            let mut normal = loop {
                match Connection::connect(ADDR, Duration::from_secs(1)).await {
                    Ok(conn) => break conn,
                    Err(_) => sleep(Duration::from_millis(50)).await,
                }
            };
            probe(&mut normal).await;

            // Half of a small frame, then nothing (authenticated: a handshake has a deadline
            // of its own from the connection's start).
            let mut stalled = authenticated().await;
            let mut partial = header(100);
            partial.extend_from_slice(&[7; 10]);
            send(&mut stalled, &partial).await;
            let stalled_at = Instant::now();

            // A first frame declaring 60 MiB is refused before any of it is buffered, and so
            // is a handshake frame over the handshake's limit.
            let mut oversized = raw().await;
            send(&mut oversized, &header(300)).await;
            assert!(
                closed_within(&mut oversized, AT_ONCE).await,
                "a handshake frame over its limit is refused at once"
            );
            let mut huge = authenticated().await;
            let mut start = header(60 << 20);
            start.resize(start.len() + 64 * 1024, 0);
            send(&mut huge, &start).await;
            assert!(
                closed_within(&mut huge, AT_ONCE).await,
                "a 60 MiB first frame is refused at once"
            );

            // The normal peer and the stalled one, and this one: the cap of 3.
            let mut idle = authenticated().await;
            let mut extra = raw().await;
            assert!(
                closed_within(&mut extra, AT_ONCE).await,
                "a connection over the cap is closed at once"
            );
            assert!(
                !closed_within(&mut idle, AT_ONCE).await,
                "an idle connection within the cap stays open"
            );
            probe(&mut normal).await;
            assert!(
                !closed_within(&mut stalled, DEADLINE / 2 - stalled_at.elapsed()).await,
                "a partial frame is waited for until its deadline"
            );
            assert!(
                closed_within(&mut stalled, DEADLINE).await,
                "a partial frame is dropped at its deadline"
            );
            let waited = stalled_at.elapsed();
            assert!(
                waited >= DEADLINE && waited < DEADLINE + AT_ONCE,
                "dropped {waited:?} after its first byte, with a deadline of {DEADLINE:?}"
            );
            probe(&mut normal).await;
            assert!(
                !closed_within(&mut idle, AT_ONCE).await,
                "an idle connection has no deadline"
            );

            // The stalled connection's slot is free again.
            let mut next = Connection::connect(ADDR, Duration::from_secs(1))
                .await
                .unwrap();
            probe(&mut next).await;
            drop((idle, next));
            sleep(AT_ONCE).await;

            // After a valid frame, 7,000 of the budget's 12 KiB for one frame in progress; a
            // second such frame finds too little left, and one over the frame limit is refused.
            let mut large = identified().await;
            send(&mut large, &header(7000)).await;
            send(&mut large, &[1; 100]).await;
            let large_at = Instant::now();
            let mut second = identified().await;
            send(&mut second, &header(7000)).await;
            assert!(
                closed_within(&mut second, AT_ONCE).await,
                "a frame the budget cannot hold is refused"
            );
            let mut over = identified().await;
            send(&mut over, &header(9000)).await;
            assert!(
                closed_within(&mut over, AT_ONCE).await,
                "a frame over the frame limit is refused"
            );
            assert!(
                !closed_within(&mut large, AT_ONCE).await,
                "the frame the budget holds is waited for"
            );
            assert!(
                closed_within(&mut large, DEADLINE).await,
                "and dropped at its deadline"
            );
            assert!(large_at.elapsed() >= DEADLINE);
            sleep(AT_ONCE).await;

            // Its share of the budget came back with it.
            let mut again = identified().await;
            send(&mut again, &header(7000)).await;
            assert!(
                !closed_within(&mut again, AT_ONCE).await,
                "the budget was given back"
            );
            probe(&mut normal).await;
        })
        .await
        .unwrap();
}

/// The budget through `recv` itself: a large frame holds its declared length while it arrives
/// and gives it back once consumed; a connection dropped half-way through one gives it back
/// when the reader goes, and the listener's count of open connections falls with it.
#[madsim::test]
async fn a_large_frame_holds_budget_only_while_it_arrives() {
    const SERVER: &str = "10.9.1.1:7000";
    let handle = madsim::runtime::Handle::current();
    sim::world::credentials::begin(0, 1);
    let server_node = handle
        .create_node()
        .name("server")
        .ip("10.9.1.1".parse().unwrap())
        .build();
    sim::world::credentials::enroll(&server_node, cluster::io::auth::PeerIdentity::Client);
    let client_node = handle
        .create_node()
        .name("client")
        .ip("10.9.1.2".parse().unwrap())
        .build();
    sim::world::credentials::enroll(&client_node, cluster::io::auth::PeerIdentity::Client);
    let large = vec![2u8; 5000];
    let declared = cluster::io::codec::encode(&large).len();
    let (ready, listening) = oneshot::channel::<()>();
    let served = server_node.spawn(async move {
        let mut server = Server::bind(SERVER, limits()).await.unwrap();
        ready.send(()).unwrap();
        let mut conn = server.accept().await.unwrap().authenticate().await.unwrap();
        assert_eq!(server.open_connections(), 1);
        let small: Vec<u8> = conn.recv().await.unwrap();
        assert_eq!(small, vec![1u8; 10]);
        assert_eq!(server.budget_used(), 0, "a small frame needs no budget");
        let pending = timeout(AT_ONCE, conn.recv::<Vec<u8>>()).await;
        assert!(pending.is_err(), "half a frame is not a message");
        assert_eq!(server.budget_used(), declared, "held while it arrives");
        let got: Vec<u8> = conn.recv().await.unwrap();
        assert_eq!(got.len(), 5000);
        assert_eq!(server.budget_used(), 0, "given back once consumed");
        let pending = timeout(AT_ONCE, conn.recv::<Vec<u8>>()).await;
        assert!(pending.is_err());
        assert_eq!(server.budget_used(), declared);
        let closed = conn.recv::<Vec<u8>>().await;
        assert!(
            matches!(closed, Err(NetError::Closed { .. })),
            "the peer went: {closed:?}"
        );
        drop(conn);
        assert_eq!(server.budget_used(), 0, "given back with the connection");
        assert_eq!(server.open_connections(), 0);
    });
    listening.await.unwrap();
    client_node
        .spawn(async move {
            let mut conn = Connection::connect(SERVER, Duration::from_secs(1))
                .await
                .unwrap();
            conn.send(&vec![1u8; 10]).await.unwrap();
            let large_frame = conn.encode_next(&large);
            let mut stream = conn.into_stream();
            let (first, rest) = large_frame.split_at(large_frame.len() / 2);
            send(&mut stream, first).await;
            sleep(AT_ONCE * 3).await;
            send(&mut stream, rest).await;
            send(&mut stream, first).await;
            sleep(AT_ONCE * 3).await;
        })
        .await
        .unwrap();
    served.await.unwrap();
}
