//! A client whose statement is in flight when its content's acting primary hangs sees the
//! failover within the prober's detection bound: the coordinator cancels its call to the
//! replaced primary and runs the transaction again on the promoted mirror.

use std::time::Duration;

use cluster::client::Client;
use cluster::model::bugs::PlantedBugs;
use sim::config::RunConfig;
use sim::invariants::availability::paused_primary_bound;
use sim::nemesis::Fault;
use sim::world::World;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What the client saw: how its second insert and its commit went, how long after the pause
/// the commit answered, and (once done) the acting primary and content 0's rows.
struct Seen {
    insert: Result<(), String>,
    commit: Result<(), String>,
    after_pause: Duration,
    primary: u16,
    rows: Vec<i64>,
}

/// The pair (dbid 2 the primary of content 0, dbid 3 its mirror): a transaction inserts a row,
/// the client sends a second insert, and the primary is paused as it goes out.
async fn pause_mid_statement(bugs: PlantedBugs) -> Seen {
    let mut cfg = RunConfig::pair();
    cfg.bugs = bugs;
    let mut world = World::build(&cfg, 13);
    let coordinator = world.coordinator_addr.clone();
    let node = sim::world::credentials::client_node();
    let (sending, pause_now) = oneshot::channel::<()>();
    let (paused, paused_at) = oneshot::channel::<Instant>();
    let client = node.spawn(async move {
        let mut c = Client::new(vec![coordinator], Duration::from_secs(60));
        sim::operator::harness::table_on_a_synchronized_pair(&mut c, "t").await;
        c.begin().await.unwrap();
        c.insert("t", 1, b"first".to_vec()).await.unwrap();
        sending.send(()).unwrap();
        let insert = c.insert("t", 2, b"second".to_vec()).await;
        let commit = c.commit().await;
        let done = Instant::now();
        let after_pause = done - paused_at.await.unwrap();
        let primary = c.catalog().await.unwrap().pair(0).unwrap().primary.dbid;
        let rows = sim::operator::harness::scan_keys(&mut c, "t", 0).await;
        Seen {
            insert: insert.map(|_| ()).map_err(|e| e.to_string()),
            commit: commit.map_err(|e| e.to_string()),
            after_pause,
            primary,
            rows,
        }
    });
    pause_now.await.unwrap();
    world.apply(&Fault::InstancePause { dbid: 2 });
    paused.send(Instant::now()).unwrap();
    client.await.unwrap()
}

/// Seed 002 (fault detection): "the mirror is promoted and the system continues operating";
/// a client on a hung primary (a SIGSTOP) sees that within the prober's detection time, not
/// after its statement timeout. Sequence: a transaction inserts a row on content 0; as the
/// client sends a second insert, the primary dbid 2 is paused (its connections stay open, it
/// never answers); the prober finds it unreachable, records dbid 3 as the acting primary and
/// promotes it; the coordinator cancels its call to dbid 2 at once and runs the transaction
/// again on dbid 3 from its first statement; the insert and the commit answer within the
/// failover bound of the pause (8 s, under the 10 s statement timeout), and exactly the
/// transaction's rows are present.
#[madsim::test]
async fn a_statement_in_flight_on_a_hung_primary_moves_to_the_promoted_mirror_within_the_bound() {
    let seen = pause_mid_statement(PlantedBugs::none()).await;
    let cfg = RunConfig::pair();
    assert_eq!(seen.insert, Ok(()), "retried on the promoted mirror");
    assert_eq!(seen.commit, Ok(()));
    let bound = paused_primary_bound(&cfg.probe);
    assert!(
        seen.after_pause <= bound,
        "committed {:?} after the pause, past the {bound:?} bound",
        seen.after_pause
    );
    assert_eq!(seen.primary, 3, "the mirror was promoted");
    assert_eq!(seen.rows, vec![1, 2], "both statements, once each");
}

/// The same story with the planted bug `no-cancel-on-failover`. Sequence: as above, until the
/// prober promotes dbid 3; the coordinator's call to the paused dbid 2 waits out its 10 s
/// statement timeout, and the roll back's abort to it as long again, before the transaction
/// runs again on dbid 3: it still commits, but past the failover bound.
#[madsim::test]
async fn with_calls_left_waiting_the_client_sits_on_the_hung_primary_past_the_bound() {
    let mut bugs = PlantedBugs::none();
    bugs.enable("no-cancel-on-failover").unwrap();
    let seen = pause_mid_statement(bugs).await;
    let cfg = RunConfig::pair();
    assert_eq!(seen.insert, Ok(()));
    assert_eq!(seen.commit, Ok(()));
    assert!(
        seen.after_pause > paused_primary_bound(&cfg.probe)
            && seen.after_pause >= cfg.statement_timeout,
        "committed {:?} after the pause",
        seen.after_pause
    );
    assert_eq!(seen.primary, 3);
    assert_eq!(seen.rows, vec![1, 2]);
}
