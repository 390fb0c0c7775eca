//! The front door under random and mutated protocol messages, over the simulated network: each
//! garbage connection is answered or closed and nothing else changes; a real driver connects
//! and runs SQL afterwards. A panic anywhere in the coordinator fails the run.

use std::time::Duration;

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::config::RunConfig;
use sim::world::World;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Connections tried, each with its own bytes.
const CONNECTIONS: u32 = 1500;

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A well-formed session: startup, a simple query, an extended query, a sync, terminate.
fn valid_session() -> Vec<u8> {
    let mut startup = Vec::new();
    startup.extend_from_slice(&196_608u32.to_be_bytes());
    startup.extend_from_slice(b"user\0gpadmin\0database\0postgres\0\0");
    let mut out = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&startup);
    out.extend(message(
        b'Q',
        b"SELECT count(*) FROM gp_segment_configuration\0",
    ));
    out.extend(message(b'P', b"s1\0SELECT $1\0\0\0"));
    out.extend(message(b'B', b"\0s1\0\0\0\0\x01\0\0\0\x0242\0\0"));
    out.extend(message(b'D', b"P\0"));
    out.extend(message(b'E', b"\0\0\0\0\0"));
    out.extend(message(b'S', b""));
    out.extend(message(b'X', b""));
    out
}

fn mutate(rng: &mut ChaCha8Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.next_u32() % 6 {
        if bytes.is_empty() {
            break;
        }
        let i = (rng.next_u32() as usize) % bytes.len();
        match rng.next_u32() % 4 {
            0 => bytes[i] = rng.next_u32() as u8,
            1 => {
                bytes.remove(i);
            }
            2 => bytes.insert(i, rng.next_u32() as u8),
            _ => bytes.truncate(i),
        }
    }
    bytes
}

fn garbage(rng: &mut ChaCha8Rng, i: u32) -> Vec<u8> {
    match i % 4 {
        0 => {
            let mut b = vec![0u8; (rng.next_u32() % 300) as usize];
            rng.fill_bytes(&mut b);
            b
        }
        1 | 2 => mutate(rng, valid_session()),
        _ => {
            // A valid startup, then messages of random types and bodies (some claiming huge
            // lengths).
            let mut b = valid_session();
            b.truncate(b.len() - 5);
            for _ in 0..rng.next_u32() % 8 {
                let tag = b"QPBDESHCFXdcf!\0"[(rng.next_u32() % 15) as usize];
                let mut body = vec![0u8; (rng.next_u32() % 40) as usize];
                rng.fill_bytes(&mut body);
                let mut m = message(tag, &body);
                if rng.next_u32().is_multiple_of(5) {
                    m[1..5].copy_from_slice(&rng.next_u32().to_be_bytes());
                }
                b.extend(m);
            }
            b
        }
    }
}

/// A driver's connection to the front door at `addr` as the trusted user, its connection
/// task spawned; `None` if it is not let in.
async fn connect(addr: String) -> Option<tokio_postgres::Client> {
    let stream = tokio::net::TcpStream::connect(addr.as_str()).await.ok()?;
    let mut config = tokio_postgres::Config::new();
    config.user("gpadmin").dbname("postgres");
    let (client, connection) = config
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .ok()?;
    madsim::task::spawn(async move {
        let _ = connection.await;
    });
    Some(client)
}

#[madsim::test]
async fn random_and_mutated_protocol_messages_close_only_their_connection() {
    let world = World::build(&RunConfig::pair(), 1);
    let addr = world.front_door_addrs()[0].clone();
    let node = sim::world::credentials::client_node();
    node.spawn(async move {
        let query = |addr: String| async move {
            let client = connect(addr).await?;
            let messages = client
                .simple_query("SELECT count(*) FROM gp_segment_configuration")
                .await
                .ok()?;
            messages.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
        };
        let mut ready = false;
        for _ in 0..100 {
            if query(addr.clone()).await.is_some() {
                ready = true;
                break;
            }
            madsim::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(ready, "the front door never answered");
        let mut rng = ChaCha8Rng::seed_from_u64(19);
        let mut answered = 0u32;
        for i in 0..CONNECTIONS {
            let bytes = garbage(&mut rng, i);
            let mut s = tokio::net::TcpStream::connect(addr.as_str()).await.unwrap();
            let _ = s.write_all(&bytes).await;
            let _ = s.flush().await;
            let mut got = Vec::new();
            let read = madsim::time::timeout(Duration::from_secs(1), async {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            })
            .await;
            let _ = read;
            answered += u32::from(!got.is_empty());
        }
        assert!(answered > CONNECTIONS / 4, "only {answered} answered");
        // The front door still serves a real driver, with the session's SQL intact.
        assert_eq!(
            query(addr.clone()).await.as_deref(),
            Some("2"),
            "the pair's two rows"
        );
    })
    .await
    .unwrap();
}

/// Cancel requests over the simulated network: one with the connection's key stops its
/// `pg_sleep` with 57014 and the connection goes on; one with another connection's key (a
/// connection running no statement) changes nothing.
#[madsim::test]
async fn a_cancel_request_stops_only_the_statement_its_key_names() {
    let world = World::build(&RunConfig::pair(), 2);
    let addr = world.front_door_addrs()[0].clone();
    let node = sim::world::credentials::client_node();
    node.spawn(async move {
        let mut client = None;
        for _ in 0..100 {
            client = connect(addr.clone()).await;
            if client.is_some() {
                break;
            }
            madsim::time::sleep(Duration::from_millis(200)).await;
        }
        let client = client.expect("the front door answers");
        let cancel = |token: tokio_postgres::CancelToken, addr: String| async move {
            madsim::time::sleep(Duration::from_secs(1)).await;
            let stream = tokio::net::TcpStream::connect(addr.as_str()).await.unwrap();
            token
                .cancel_query_raw(stream, tokio_postgres::NoTls)
                .await
                .unwrap();
        };
        // Another connection's key: the sleep runs to its end.
        let other = connect(addr.clone()).await.unwrap();
        let began = madsim::time::Instant::now();
        madsim::task::spawn(cancel(other.cancel_token(), addr.clone()));
        client.simple_query("SELECT pg_sleep(3)").await.unwrap();
        assert!(began.elapsed() >= Duration::from_secs(3));
        // Its own key: cancelled after a second of the hour.
        let began = madsim::time::Instant::now();
        madsim::task::spawn(cancel(client.cancel_token(), addr.clone()));
        let e = client
            .simple_query("SELECT pg_sleep(3600)")
            .await
            .expect_err("cancelled");
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "{e:?}"
        );
        assert!(began.elapsed() < Duration::from_secs(60));
        let rows = client.simple_query("SELECT 7").await.unwrap();
        assert!(rows.iter().any(|m| matches!(m,
            tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("7"))));
    })
    .await
    .unwrap();
}
