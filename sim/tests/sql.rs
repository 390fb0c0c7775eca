//! SQL through the whole stack (client → coordinator's SQL layer → primaries → mirrors), in
//! the simulated world: tables made and read by SQL, transactions, isolation, errors with their
//! SQLSTATEs, and the cluster's own views.

use std::time::Duration;

use cluster::client::Client;
use cluster::sql::{Datum, Outcome};
use cluster::wire::DbError;
use sim::config::RunConfig;
use sim::world::World;

/// The rows of a query, as text.
async fn rows(c: &mut Client, sql: &str) -> Vec<Vec<Option<String>>> {
    match c.sql(sql, false).await {
        Ok(Outcome::Rows { rows, .. }) => rows
            .into_iter()
            .map(|r| r.iter().map(Datum::to_text).collect())
            .collect(),
        other => panic!("{sql}: {other:?}"),
    }
}

fn text(v: &[&[&str]]) -> Vec<Vec<Option<String>>> {
    v.iter()
        .map(|r| r.iter().map(|s| Some(s.to_string())).collect())
        .collect()
}

async fn tag(c: &mut Client, sql: &str) -> String {
    match c.sql(sql, sql.eq_ignore_ascii_case("commit")).await {
        Ok(Outcome::Done { tag }) => tag,
        other => panic!("{sql}: {other:?}"),
    }
}

fn code(e: DbError) -> String {
    match e {
        DbError::Failed(m) => m[..5].to_string(),
        other => panic!("{other:?}"),
    }
}

#[madsim::test]
async fn tables_rows_transactions_errors_and_views_through_sql() {
    let cfg = RunConfig {
        contents: 2,
        ..RunConfig::pair()
    };
    let world = World::build(&cfg, 3);
    let coordinator = world.coordinator_addr.clone();
    let node = sim::world::credentials::client_node();
    node.spawn(async move {
        let mut a = Client::new(vec![coordinator.clone()], Duration::from_secs(10));
        let mut b = Client::new(vec![coordinator], Duration::from_secs(10));
        let create = "CREATE TABLE IF NOT EXISTS t (id bigint PRIMARY KEY, v text, n int) DISTRIBUTED BY (id)";
        for _ in 0..200 {
            let ready = a.sql(create, false).await.is_ok()
                && rows(&mut a, "SELECT count(*) FROM gp_segment_configuration WHERE mode = 's' AND status = 'u'").await
                    == text(&[&["4"]]);
            if ready {
                break;
            }
            madsim::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(tag(&mut a, "INSERT INTO t VALUES (1, 'one', 10), (2, 'two', 20), (3, 'three', 30)").await, "INSERT 0 3");
        assert_eq!(rows(&mut a, "SELECT v FROM t WHERE id = 2").await, text(&[&["two"]]));
        assert_eq!(
            rows(&mut a, "SELECT id, v FROM t ORDER BY n DESC LIMIT 2").await,
            text(&[&["3", "three"], &["2", "two"]])
        );
        assert_eq!(rows(&mut a, "SELECT count(*), sum(n), max(v) FROM t").await, text(&[&["3", "60", "two"]]));
        // Isolation: b does not see a's uncommitted rows; a sees its own.
        tag(&mut a, "BEGIN").await;
        tag(&mut a, "INSERT INTO t VALUES (4, 'four', 40)").await;
        tag(&mut a, "UPDATE t SET n = 11 WHERE id = 1").await;
        assert_eq!(rows(&mut a, "SELECT count(*) FROM t").await, text(&[&["4"]]));
        assert_eq!(rows(&mut b, "SELECT count(*) FROM t").await, text(&[&["3"]]));
        assert_eq!(tag(&mut a, "COMMIT").await, "COMMIT");
        assert_eq!(rows(&mut b, "SELECT n FROM t WHERE id = 1").await, text(&[&["11"]]));
        // A failed statement fails the block; COMMIT then rolls it back.
        tag(&mut a, "BEGIN").await;
        tag(&mut a, "DELETE FROM t WHERE id = 4").await;
        assert_eq!(code(a.sql("INSERT INTO t VALUES (1, 'dup', 0)", false).await.unwrap_err()), "23505");
        assert_eq!(code(a.sql("SELECT 1", false).await.unwrap_err()), "25P02");
        assert_eq!(tag(&mut a, "COMMIT").await, "ROLLBACK");
        assert_eq!(rows(&mut a, "SELECT count(*) FROM t").await, text(&[&["4"]]));
        assert_eq!(code(a.sql("INSERT INTO t VALUES ('x', 'bad', 0)", false).await.unwrap_err()), "22P02");
        assert_eq!(code(a.sql("SELECT * FROM missing", false).await.unwrap_err()), "42P01");
        assert_eq!(code(a.sql("SELEC 1", false).await.unwrap_err()), "42601");
        // Append-optimized rows are not updated.
        tag(&mut a, "CREATE TABLE log (id bigint, at timestamp) WITH (appendoptimized=true) DISTRIBUTED RANDOMLY").await;
        tag(&mut a, "INSERT INTO log VALUES (1, '2026-01-01 10:00:00'), (2, NULL)").await;
        assert_eq!(code(a.sql("UPDATE log SET at = NULL WHERE id = 1", false).await.unwrap_err()), "0A000");
        assert_eq!(rows(&mut a, "SELECT count(*), max(at) FROM log").await, text(&[&["2", "2026-01-01 10:00:00"]]));
        // The views: the configuration, and replication per pair with its positions.
        let config = rows(&mut a, "SELECT dbid, content, role FROM gp_segment_configuration ORDER BY dbid").await;
        assert_eq!(config.len(), 4, "two pairs: {config:?}");
        let repl = rows(&mut a, "SELECT gp_segment_id, state, sync_state, sent_lsn = flush_lsn FROM gp_stat_replication ORDER BY 1").await;
        assert_eq!(repl, text(&[&["0", "streaming", "sync", "t"], &["1", "streaming", "sync", "t"]]));
        let history = rows(&mut a, "SELECT count(*) FROM gp_configuration_history").await;
        assert!(history[0][0].is_some());
    })
    .await
    .unwrap();
}

/// A dropped table stays dropped on the mirror promoted after it: its rows do not come back,
/// and a table of the same name made afterwards is a new, empty one.
#[madsim::test]
async fn a_dropped_table_stays_dropped_across_a_failover() {
    let mut cfg = RunConfig::pair();
    cfg.statement_timeout = Duration::from_secs(20);
    let mut world = World::build(&cfg, 5);
    let coordinator = world.coordinator_addr.clone();
    let node = sim::world::credentials::client_node();
    let (dropped, crash_now) = tokio::sync::oneshot::channel::<()>();
    let (crashed, after_crash) = tokio::sync::oneshot::channel::<()>();
    let client = node.spawn(async move {
        let mut c = Client::new(vec![coordinator], Duration::from_secs(60));
        let create = "CREATE TABLE IF NOT EXISTS t (id bigint PRIMARY KEY, v text)";
        for _ in 0..200 {
            let ready = c.sql(create, false).await.is_ok()
                && rows(&mut c, "SELECT count(*) FROM gp_segment_configuration WHERE mode = 's' AND status = 'u'").await
                    == text(&[&["2"]]);
            if ready {
                break;
            }
            madsim::time::sleep(Duration::from_millis(250)).await;
        }
        tag(&mut c, "INSERT INTO t VALUES (1, 'old'), (2, 'old')").await;
        assert_eq!(tag(&mut c, "DROP TABLE t").await, "DROP TABLE");
        assert_eq!(code(c.sql("SELECT * FROM t", false).await.unwrap_err()), "42P01");
        dropped.send(()).unwrap();
        after_crash.await.unwrap();
        // The mirror (dbid 3) becomes the primary; then the table is made again.
        let mut promoted = false;
        for _ in 0..200 {
            if c.catalog().await.is_ok_and(|cat| cat.pair(0).unwrap().primary.dbid == 3) {
                promoted = true;
                break;
            }
            madsim::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(promoted, "the mirror was promoted");
        assert_eq!(code(c.sql("SELECT * FROM t", false).await.unwrap_err()), "42P01");
        assert_eq!(tag(&mut c, "CREATE TABLE t (id bigint PRIMARY KEY, v text)").await, "CREATE TABLE");
        assert_eq!(rows(&mut c, "SELECT count(*) FROM t").await, text(&[&["0"]]));
        tag(&mut c, "INSERT INTO t VALUES (1, 'new')").await;
        assert_eq!(rows(&mut c, "SELECT id, v FROM t").await, text(&[&["1", "new"]]));
    });
    crash_now.await.unwrap();
    world.kill_host("sdw1");
    crashed.send(()).unwrap();
    client.await.unwrap();
}
