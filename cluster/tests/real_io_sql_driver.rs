//! The SQL front door through a driver (tokio-postgres): the extended query protocol with
//! prepared statements and typed parameters (sent in binary, as the driver sends them), typed
//! results read back in binary, a transaction committed and one rolled back through the
//! driver, errors with their SQLSTATE as the driver reports it (`e.code()`), and SCRAM
//! authentication failures (28P01).
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_sql_driver`.

mod support;

use std::time::{Duration, Instant};

use support::LocalCluster;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

async fn connect(port: u16, user: &str, password: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .password(password)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(10))
        .connect(NoTls)
        .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn insert_on(client: &Client) -> tokio_postgres::Statement {
    client
        .prepare("INSERT INTO accounts (id, owner, active, n) VALUES ($1, $2, $3, $4)")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_prepares_binds_and_reads_typed_values_in_transactions() {
    let c = LocalCluster::init("sqldriver", &[]);
    c.verb("start", &[]);
    let port = c.file_json()["coordinator"]["sql_port"].as_u64().unwrap() as u16;
    let password = std::fs::read_to_string(c.dir.join("sql.password")).unwrap();
    let password = password.trim().to_string();

    // The coordinator may still be starting.
    let began = Instant::now();
    let client = loop {
        match connect(port, "gpadmin", &password).await {
            Ok(client) => break client,
            Err(e) if began.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no connection: {e}{}", c.logs()),
        }
    };
    let mut client = client;
    client
        .batch_execute(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, owner text, active boolean, n integer) \
             DISTRIBUTED BY (id)",
        )
        .await
        .unwrap();

    // Prepared statements: the parameter types come from the table.
    let insert = client
        .prepare("INSERT INTO accounts (id, owner, active, n) VALUES ($1, $2, $3, $4)")
        .await
        .unwrap();
    assert_eq!(
        insert.params(),
        &[Type::INT8, Type::TEXT, Type::BOOL, Type::INT4]
    );
    for (id, owner, active) in [(1i64, "ann", true), (2, "bob", false), (3, "cy", true)] {
        let n = client
            .execute(&insert, &[&id, &owner, &active, &(id as i32 * 10)])
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    let by_id = client
        .prepare("SELECT id, owner, active, n FROM accounts WHERE id = $1")
        .await
        .unwrap();
    let cols: Vec<Type> = by_id.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(cols, [Type::INT8, Type::TEXT, Type::BOOL, Type::INT4]);
    let row = client.query_one(&by_id, &[&2i64]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);
    assert_eq!(row.get::<_, String>(1), "bob");
    assert!(!row.get::<_, bool>(2));
    assert_eq!(row.get::<_, i32>(3), 20);
    assert!(client.query_opt(&by_id, &[&99i64]).await.unwrap().is_none());

    // A transaction through the driver, and one rolled back.
    let tx = client.transaction().await.unwrap();
    tx.execute(&insert, &[&4i64, &"dee", &true, &40i32])
        .await
        .unwrap();
    tx.execute(&insert, &[&5i64, &"eve", &false, &50i32])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute(&insert, &[&6i64, &"fay", &true, &60i32])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let owners: Vec<String> = client
        .query("SELECT owner FROM accounts ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, ["ann", "bob", "cy", "dee", "eve"]);

    // A portal read a few rows at a time (Execute with a row limit, PortalSuspended).
    let scan = client
        .prepare("SELECT id FROM accounts WHERE id > $1 ORDER BY id")
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    let portal = tx.bind(&scan, &[&0i64]).await.unwrap();
    let mut batches = Vec::new();
    loop {
        let rows = tx.query_portal(&portal, 2).await.unwrap();
        if rows.is_empty() {
            break;
        }
        batches.push(rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>());
    }
    tx.commit().await.unwrap();
    assert_eq!(batches, [vec![1, 2], vec![3, 4], vec![5]]);

    // Errors as the driver sees them; the connection stays usable.
    let dup = client
        .execute(&insert, &[&1i64, &"again", &true, &1i32])
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Some(&SqlState::UNIQUE_VIOLATION), "{dup:?}");
    let syntax = client.prepare("SELEC 1").await.unwrap_err();
    assert_eq!(syntax.code(), Some(&SqlState::SYNTAX_ERROR), "{syntax:?}");
    let missing = client.prepare("SELECT * FROM nowhere").await.unwrap_err();
    assert_eq!(
        missing.code(),
        Some(&SqlState::UNDEFINED_TABLE),
        "{missing:?}"
    );
    // An error inside a transaction block fails the block until its end.
    let tx = client.transaction().await.unwrap();
    let e = tx
        .execute(&insert, &[&2i64, &"again", &true, &1i32])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let e = tx.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        "{e:?}"
    );
    tx.rollback().await.unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 5);

    // A text-format simple query still answers in text.
    let rows = client
        .simple_query("SELECT owner FROM accounts WHERE id = 3")
        .await
        .unwrap();
    let owner = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(owner.as_deref(), Some("cy"));

    // A client that leaves in the middle of a transaction has it rolled back.
    let leaving = connect(port, "gpadmin", &password).await.unwrap();
    leaving.batch_execute("BEGIN").await.unwrap();
    leaving
        .execute(&insert_on(&leaving).await, &[&7i64, &"gone", &true, &70i32])
        .await
        .unwrap();
    drop(leaving);
    let began = Instant::now();
    loop {
        // The row never shows, and its key is free once the session is closed.
        assert!(client.query_opt(&by_id, &[&7i64]).await.unwrap().is_none());
        match client
            .execute(&insert, &[&7i64, &"kept", &false, &71i32])
            .await
        {
            Ok(1) => break,
            Ok(n) => panic!("inserted {n} rows"),
            Err(e) if began.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("key 7 still held after the client left: {e:?}"),
        }
    }
    let row = client.query_one(&by_id, &[&7i64]).await.unwrap();
    assert_eq!(row.get::<_, String>(1), "kept");

    // A message above the front door's limit (4 MiB) ends its own connection, no other.
    let greedy = connect(port, "gpadmin", &password).await.unwrap();
    let big = "x".repeat(5 << 20);
    let e = greedy
        .execute(&insert_on(&greedy).await, &[&8i64, &big, &true, &80i32])
        .await
        .expect_err("an oversized message is refused");
    // The driver sees the FATAL 08P01 the front door sends before closing, or the close.
    assert!(
        e.is_closed() || e.code().is_none_or(|c| c == &SqlState::PROTOCOL_VIOLATION),
        "{e:?}"
    );
    assert!(greedy.is_closed() || greedy.batch_execute("SELECT 1").await.is_err());
    let count: i64 = client
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 6);

    // A cancel request stops the running statement with 57014; the session goes on, and the
    // block the statement was in is failed, as PostgreSQL fails it.
    let sleeper = connect(port, "gpadmin", &password).await.unwrap();
    let token = sleeper.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(NoTls).await
    });
    sleeper.batch_execute("BEGIN").await.unwrap();
    let slept = sleeper.simple_query("SELECT pg_sleep(600)").await;
    canceller
        .await
        .unwrap()
        .expect("the cancel request is sent");
    let e = slept.expect_err("cancelled, not slept through");
    assert_eq!(e.code(), Some(&SqlState::QUERY_CANCELED), "{e:?}");
    let after = sleeper
        .batch_execute("SELECT 1")
        .await
        .expect_err("the block failed");
    assert_eq!(after.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    sleeper.batch_execute("ROLLBACK").await.unwrap();
    let one: i32 = sleeper.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    // A cancel request between statements is ignored: the next statement runs.
    sleeper.cancel_token().cancel_query(NoTls).await.unwrap();
    let one: i32 = sleeper.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);

    // Authentication failures carry 28P01.
    let wrong = connect(port, "gpadmin", "wrong")
        .await
        .expect_err("refused");
    assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD), "{wrong:?}");
    let nobody = connect(port, "nobody", &password)
        .await
        .expect_err("refused");
    assert_eq!(
        nobody.code(),
        Some(&SqlState::INVALID_PASSWORD),
        "{nobody:?}"
    );
}
