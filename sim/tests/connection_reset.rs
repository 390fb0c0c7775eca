//! Connection resets (the nemesis's `connection-reset`): every established connection with an
//! end on the host fails at once, while listeners and new connections work on; a transaction
//! whose connection to its primary was reset runs again and commits.

use std::time::Duration;

use cluster::client::Client;
use cluster::io::net::{listen, Connection, NetError, PendingConnection};
use cluster::io::runtime::resets;
use sim::config::RunConfig;
use sim::nemesis::Fault;
use sim::world::World;
use tokio::sync::oneshot;

fn is_reset(e: &NetError) -> bool {
    matches!(e, NetError::Io { source, .. } if source.kind() == std::io::ErrorKind::ConnectionReset)
}

/// A reader blocked on a connection wakes with "connection reset" on both ends; the listener
/// still accepts, and a new connection carries frames.
#[madsim::test]
async fn a_reset_breaks_established_connections_only() {
    let handle = madsim::runtime::Handle::current();
    sim::world::credentials::begin(0, 1);
    let server = handle
        .create_node()
        .name("server")
        .ip("10.9.0.1".parse().unwrap())
        .build();
    sim::world::credentials::enroll(&server, cluster::io::auth::PeerIdentity::Client);
    let client = handle
        .create_node()
        .name("client")
        .ip("10.9.0.2".parse().unwrap())
        .build();
    sim::world::credentials::enroll(&client, cluster::io::auth::PeerIdentity::Client);
    let (ready, listening) = oneshot::channel::<()>();
    let served = server.spawn(async move {
        let listener = listen("10.9.0.1:7000").await.unwrap();
        ready.send(()).unwrap();
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            let (stream, peer) = listener.accept().await.unwrap();
            let mut conn = PendingConnection::new(stream, peer.to_string())
                .authenticate()
                .await
                .unwrap();
            // Echo until the connection fails.
            loop {
                match conn.recv::<u64>().await {
                    Ok(n) => conn.send(&n).await.unwrap(),
                    Err(e) => {
                        outcomes.push(is_reset(&e));
                        break;
                    }
                }
            }
        }
        outcomes
    });
    listening.await.unwrap();
    let checked = client.spawn(async move {
        let mut first = Connection::connect("10.9.0.1:7000", Duration::from_secs(1))
            .await
            .unwrap();
        let echoed: u64 = first.call(&7u64, Duration::from_secs(1)).await.unwrap();
        assert_eq!(echoed, 7);
        // The server's side is blocked reading; reset the server's host.
        resets::reset_host("10.9.0.1".parse().unwrap());
        let e = first.call::<u64, u64>(&8, Duration::from_secs(1)).await;
        assert!(
            matches!(&e, Err(e) if is_reset(e)),
            "the old connection is reset: {e:?}"
        );
        let mut second = Connection::connect("10.9.0.1:7000", Duration::from_secs(1))
            .await
            .unwrap();
        let echoed: u64 = second.call(&9u64, Duration::from_secs(1)).await.unwrap();
        assert_eq!(echoed, 9, "a new connection works");
        resets::reset_host("10.9.0.2".parse().unwrap());
        let e = second.recv::<u64>().await;
        assert!(
            matches!(&e, Err(e) if is_reset(e)),
            "a reset of the reader's own host wakes it: {e:?}"
        );
    });
    checked.await.unwrap();
    assert_eq!(
        served.await.unwrap(),
        vec![true, true],
        "the server's blocked reads both end with a reset"
    );
}

/// Runs `client` on its own node against the pair cluster (seed `seed`); when the client sends
/// on its sender, every connection of the primary's host `sdw1` is reset, and the client hears
/// on its receiver once that is done.
async fn with_a_reset_of_sdw1<F>(
    seed: u64,
    client: impl FnOnce(Client, oneshot::Sender<()>, oneshot::Receiver<()>) -> F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut world = World::build(&RunConfig::pair(), seed);
    let coordinator = world.coordinator_addr.clone();
    let node = sim::world::credentials::client_node();
    let (ready, reset_now) = oneshot::channel::<()>();
    let (was_reset, after_reset) = oneshot::channel::<()>();
    let c = Client::new(vec![coordinator], Duration::from_secs(60));
    let task = node.spawn(client(c, ready, after_reset));
    reset_now.await.unwrap();
    world.apply(&Fault::ConnectionReset {
        host: "sdw1".into(),
    });
    was_reset.send(()).unwrap();
    task.await.unwrap();
}

/// Key 1, then key 2, on content 0, with every connection of the primary's host reset in
/// between; with `commit_between`, the first is its own transaction and the reset finds the
/// session idle. No failover happens, and both rows are there exactly once.
async fn insert_across_a_reset(seed: u64, commit_between: bool) {
    with_a_reset_of_sdw1(seed, move |mut c, reset_now, after_reset| async move {
        sim::operator::harness::table_on_a_synchronized_pair(&mut c, "t").await;
        let primary = c.catalog().await.unwrap().pair(0).unwrap().primary.dbid;
        c.begin().await.unwrap();
        c.insert("t", 1, b"first".to_vec()).await.unwrap();
        if commit_between {
            c.commit().await.unwrap();
        }
        reset_now.send(()).unwrap();
        after_reset.await.unwrap();
        if commit_between {
            c.begin().await.unwrap();
        }
        c.insert("t", 2, b"second".to_vec())
            .await
            .expect("the statement after the reset goes through");
        c.commit().await.unwrap();
        assert_eq!(
            c.catalog().await.unwrap().pair(0).unwrap().primary.dbid,
            primary,
            "no failover: the primary never failed"
        );
        let rows = sim::operator::harness::scan_keys(&mut c, "t", 0).await;
        assert_eq!(rows, vec![1, 2], "both statements, once each");
    })
    .await;
}

/// A transaction has written on content 0 when every connection of the primary's host is
/// reset: its next statement finds the connection broken, the coordinator rolls the
/// transaction back and runs it again on the same primary (no failover happened), and it
/// commits with exactly its rows.
#[madsim::test]
async fn a_transaction_whose_connection_was_reset_runs_again_and_commits() {
    insert_across_a_reset(21, false).await;
}

/// A session keeps its connection to content 0's primary after a commit. Every connection of
/// the primary's host is reset while the session is idle: the next transaction finds the kept
/// connection broken, opens a new one to the same primary, and commits exactly its rows.
#[madsim::test]
async fn a_kept_connection_reset_while_idle_is_replaced_by_a_new_one() {
    insert_across_a_reset(22, true).await;
}
