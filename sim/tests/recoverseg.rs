//! Seed 002 (recovering from segment failures): a primary fails and its mirror is promoted; the
//! failed host returns; `recoverseg` rewinds the old primary to where the two WALs part ways and
//! it resynchronizes as a mirror; `recoverseg -r` returns both to their preferred roles. Every
//! acknowledged row survives, and the pair's data is identical.

use cluster::admin::driver::{self, RecoverOptions, RecoverOutcome};
use cluster::model::catalog::{Role, Status};
use sim::config::RunConfig;
use sim::operator::harness::{
    all_keys, all_synchronized, create_table, insert_retrying, pair_digests, preferred_roles,
    wait_catalog, AdminHarness,
};

/// Writes straight to a segment instance, as the coordinator's sessions did before the
/// failure: from a host of its own that authenticates as the coordinator (a segment takes
/// transactions from the coordinator alone).
async fn write_directly(addr: &str, epoch: u64) {
    let node = madsim::runtime::Handle::current()
        .create_node()
        .name("coordinator-stand-in")
        .ip("10.0.2.1".parse().unwrap())
        .build();
    sim::world::credentials::enroll(&node, cluster::io::auth::PeerIdentity::Coordinator);
    let addr = addr.to_string();
    node.spawn(async move { write_as_coordinator(&addr, epoch).await })
        .await
        .unwrap();
}

async fn write_as_coordinator(addr: &str, epoch: u64) {
    use cluster::io::net::Connection;
    use cluster::wire::{Op, SegmentRequest, SegmentResponse};
    let mut conn = Connection::connect(addr, std::time::Duration::from_secs(2))
        .await
        .unwrap();
    let t = std::time::Duration::from_secs(5);
    let begin = SegmentRequest::Begin {
        xid: 1 << 60,
        epoch,
    };
    assert!(matches!(
        conn.call(&begin, t).await,
        Ok(SegmentResponse::Ok)
    ));
    for key in 5000..5010 {
        let op = Op::Insert {
            table: "t".into(),
            key,
            value: vec![9],
        };
        let r = conn.call(&SegmentRequest::Exec { op }, t).await;
        assert!(matches!(r, Ok(SegmentResponse::Result(_))), "{r:?}");
    }
    let r = conn.call(&SegmentRequest::Commit, t).await;
    assert!(matches!(r, Ok(SegmentResponse::Committed { .. })), "{r:?}");
}

async fn recover_then_rebalance(cfg: RunConfig, seed: u64, check_acked: bool) -> (u64, u64) {
    let stray_writes = !check_acked;
    let h = AdminHarness::build(&cfg, seed);
    let acked = h
        .run(|mut c, _| async move {
            create_table(&mut c, "t").await;
            wait_catalog(&mut c, "pair in sync", all_synchronized).await;
            let mut acked = Vec::new();
            for k in 0..30 {
                if insert_retrying(&mut c, "t", k).await {
                    acked.push(k);
                }
            }
            acked
        })
        .await;
    // Writes in flight while the primary's host dies.
    let writer = h.run(|mut c, _| async move {
        let mut acked = Vec::new();
        for k in 30..300 {
            if insert_retrying(&mut c, "t", k).await {
                acked.push(k);
            }
        }
        acked
    });
    let killer = async {
        madsim::time::sleep(std::time::Duration::from_millis(400)).await;
        h.kill_host("sdw1");
    };
    let (more, ()) = futures_lite_join(writer, killer).await;
    let acked: Vec<i64> = acked.into_iter().chain(more).collect();
    h.run(|mut c, _| async move {
        wait_catalog(&mut c, "mirror promoted", |cat| {
            cat.pair(0).unwrap().primary.dbid == 3
        })
        .await;
    })
    .await;
    h.restart_host("sdw1");
    let shipped = h
        .run(move |mut c, hosts| async move {
            // The old primary is back but still marked down.
            madsim::time::sleep(std::time::Duration::from_secs(3)).await;
            if stray_writes {
                // Commits the failed primary acknowledged that its asynchronous mirror never
                // received: written straight to the old primary, as its clients did before the
                // failure. The rewind must discard them.
                let cat = c.catalog().await.unwrap();
                write_directly(&cat.segments[&2].endpoint(), cat.epoch).await;
            }
            for k in 60..80 {
                insert_retrying(&mut c, "t", k).await;
            }
            let out = driver::recoverseg(&mut c, &hosts, &RecoverOptions::default())
                .await
                .unwrap();
            let RecoverOutcome::Recovered(r) = out else {
                panic!("{out:?}")
            };
            assert_eq!(r.len(), 1, "{r:?}");
            let report = r[0].outcome.clone().unwrap();
            assert_eq!(
                report.discarded_bytes > 0,
                stray_writes,
                "only the diverged primary has WAL to discard: {report:?}"
            );
            let cat = c.catalog().await.unwrap();
            let old = &cat.segments[&2];
            assert_eq!((old.role, old.status), (Role::Mirror, Status::Up));
            wait_catalog(&mut c, "resynchronized", all_synchronized).await;
            report.bytes_shipped()
        })
        .await;
    let digests_after_recovery = h
        .run(|mut c, _| async move {
            let cat = c.catalog().await.unwrap();
            pair_digests(&cat, 0).await
        })
        .await;
    let (p, m, _) = digests_after_recovery.expect("digests at one position");
    // Writes run on while the pair is rebalanced: those in flight on the demoted primary are
    // cancelled and retried on the preferred one.
    let during = h.run(|mut c, _| async move {
        let mut acked = Vec::new();
        for k in 2000..2040 {
            if insert_retrying(&mut c, "t", k).await {
                acked.push(k);
            }
        }
        acked
    });
    let rebalance = h.run(|mut c, hosts| async move {
        madsim::time::sleep(std::time::Duration::from_millis(50)).await;
        let out = driver::recoverseg(
            &mut c,
            &hosts,
            &RecoverOptions {
                rebalance: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(
            matches!(out, RecoverOutcome::Rebalanced(ref v) if v == &vec![0]),
            "{out:?}"
        );
    });
    let (during, ()) = futures_lite_join(during, rebalance).await;
    h.run(move |mut c, _| async move {
        wait_catalog(&mut c, "synchronized in preferred roles", |cat| {
            all_synchronized(cat) && preferred_roles(cat)
        })
        .await;
        assert!(insert_retrying(&mut c, "t", 1000).await);
        let keys = all_keys(&mut c, "t", 1).await;
        if check_acked {
            for k in acked.iter().chain(&during).chain([1000].iter()) {
                assert!(keys.contains(k), "acknowledged key {k} lost; have {keys:?}");
            }
            assert!(
                during.len() >= 30,
                "writes stalled during the rebalance: {during:?}"
            );
        }
        if stray_writes {
            assert!(!keys.contains(&5000), "the rewound rows came back");
        }
    })
    .await;
    (p ^ m, shipped)
}

/// Joins two futures (a tiny `join`, to avoid a dependency).
async fn futures_lite_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    (ra.unwrap(), rb.unwrap())
}

#[madsim::test]
async fn recoverseg_then_rebalance_keeps_every_acknowledged_row() {
    let (diff, shipped) = recover_then_rebalance(RunConfig::pair(), 11, true).await;
    eprintln!("bytes shipped by incremental recovery: {shipped}");
    assert_eq!(diff, 0, "primary and mirror digests differ after recovery");
}

/// Asynchronous mirroring leaves the failed primary with commits its mirror never received, so
/// its WAL diverges from the promoted mirror's: the rewind must discard them.
#[madsim::test]
async fn a_diverged_old_primary_is_rewound_and_ends_identical() {
    let (diff, _) = recover_then_rebalance(RunConfig::async_pair(), 11, false).await;
    assert_eq!(diff, 0, "primary and mirror digests differ after recovery");
}

/// The figures of BENCHMARKS.md "Recovery: bytes shipped": a pair with `base` rows loses its
/// primary; the promoted mirror takes `changed` more rows; the old primary returns and is
/// recovered incrementally, then (for comparison) the same with a full copy. Prints one line:
/// WAL bytes written while it was down, bytes the incremental recovery shipped, bytes a full
/// copy ships.
async fn shipped_for(base: i64, changed: i64, full: bool) -> (u64, u64) {
    let h = AdminHarness::build(&RunConfig::pair(), 21);
    h.run(move |mut c, _| async move {
        create_table(&mut c, "t").await;
        wait_catalog(&mut c, "pair in sync", all_synchronized).await;
        for k in 0..base {
            insert_retrying(&mut c, "t", k).await;
        }
    })
    .await;
    h.kill_host("sdw1");
    let at_failover = h
        .run(|mut c, _| async move {
            wait_catalog(&mut c, "mirror promoted", |cat| {
                cat.pair(0).unwrap().primary.dbid == 3
            })
            .await;
            let report = driver::state_report(&mut c).await.unwrap();
            report.replication[&3].as_ref().unwrap().flushed
        })
        .await;
    h.run(move |mut c, _| async move {
        for k in base..base + changed {
            insert_retrying(&mut c, "t", k).await;
        }
    })
    .await;
    h.restart_host("sdw1");
    h.run(move |mut c, hosts| async move {
        madsim::time::sleep(std::time::Duration::from_secs(3)).await;
        let opts = RecoverOptions {
            full,
            ..Default::default()
        };
        let RecoverOutcome::Recovered(r) = driver::recoverseg(&mut c, &hosts, &opts).await.unwrap()
        else {
            panic!("not recovered")
        };
        let report = r[0].outcome.clone().unwrap();
        wait_catalog(&mut c, "resynchronized", all_synchronized).await;
        (report.source_flushed - at_failover, report.bytes_shipped())
    })
    .await
}

#[test]
#[ignore = "a benchmark: prints the figures of BENCHMARKS.md"]
fn bench_recovery_bytes_shipped() {
    for (base, changed) in [(2000, 20), (2000, 200), (2000, 2000)] {
        let run = |full| {
            madsim::runtime::Runtime::with_seed_and_config(21, madsim::Config::default())
                .block_on(shipped_for(base, changed, full))
        };
        let (written, incremental) = run(false);
        let (_, full) = run(true);
        println!(
            "base {base} rows, {changed} rows while down: written {written} B, \
             incremental shipped {incremental} B, full copy {full} B"
        );
    }
}

/// Inserts `key`, recording the transaction in `history` as the simulator's workload does.
async fn recorded_insert(
    c: &mut cluster::client::Client,
    history: &sim::workload::history::History,
    key: i64,
) {
    use cluster::wire::{DbError, Op, OpResult};
    use sim::workload::history::Outcome;
    let now = || madsim::time::Instant::now().elapsed().as_millis() as u64;
    let op = Op::Insert {
        table: "t".into(),
        key,
        value: key.to_le_bytes().to_vec(),
    };
    let id = history.invoke(0, vec![(op, 0)], now());
    history.op_invoked(id, 0);
    let r = async {
        c.begin().await?;
        c.insert("t", key, key.to_le_bytes().to_vec()).await?;
        c.commit().await
    }
    .await;
    match r {
        Ok(()) => {
            history.op_returned(id, 0, OpResult::Done, now());
            history.complete(id, Outcome::Ok, None, now());
        }
        Err(DbError::Unknown(e)) => history.complete(id, Outcome::Unknown, Some(e), now()),
        Err(e @ (DbError::Failed(_) | DbError::NotAllowed { .. })) => {
            let _ = c.abort().await;
            history.complete(id, Outcome::Fail, Some(e.to_string()), now());
        }
    }
}

/// The planted bug `rebalance-unsynchronized` lets `recoverseg -r` make the failed old primary
/// the primary again before it has the commits acknowledged while it was down: the
/// no-lost-commits checker catches the loss. Without the bug, the same rebalance is refused.
fn rebalance_before_resync(bug: bool) -> (Result<(), String>, Vec<sim::invariants::Violation>) {
    let mut cfg = RunConfig::pair();
    if bug {
        cfg.bugs.enable("rebalance-unsynchronized").unwrap();
    }
    let rt = madsim::runtime::Runtime::with_seed_and_config(41, madsim::Config::default());
    rt.block_on(async move {
        let h = AdminHarness::build(&cfg, 41);
        let history = sim::workload::history::History::default();
        let hist = history.clone();
        h.run(move |mut c, _| async move {
            create_table(&mut c, "t").await;
            wait_catalog(&mut c, "pair in sync", all_synchronized).await;
            for k in 0..10 {
                recorded_insert(&mut c, &hist, k).await;
            }
        })
        .await;
        h.kill_host("sdw1");
        let hist = history.clone();
        h.run(move |mut c, _| async move {
            wait_catalog(&mut c, "mirror promoted", |cat| {
                cat.pair(0).unwrap().primary.dbid == 3
            })
            .await;
            for k in 10..20 {
                recorded_insert(&mut c, &hist, k).await;
            }
        })
        .await;
        h.restart_host("sdw1");
        let hist = history.clone();
        let (rebalanced, rows) = h
            .run(move |mut c, hosts| async move {
                madsim::time::sleep(std::time::Duration::from_secs(3)).await;
                let opts = RecoverOptions {
                    rebalance: true,
                    ..Default::default()
                };
                let rebalanced = driver::recoverseg(&mut c, &hosts, &opts)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                if rebalanced.is_err() {
                    // The administrator does it right: recover, wait, then rebalance.
                    driver::recoverseg(&mut c, &hosts, &RecoverOptions::default())
                        .await
                        .unwrap();
                    wait_catalog(&mut c, "resynchronized", all_synchronized).await;
                    driver::recoverseg(&mut c, &hosts, &opts).await.unwrap();
                }
                wait_catalog(&mut c, "synchronized in preferred roles", |cat| {
                    all_synchronized(cat) && preferred_roles(cat)
                })
                .await;
                recorded_insert(&mut c, &hist, 100).await;
                let keys = all_keys(&mut c, "t", 1).await;
                (rebalanced, keys)
            })
            .await;
        let final_rows = rows
            .into_iter()
            .map(|k| (("t".to_string(), k), k.to_le_bytes().to_vec()))
            .collect();
        let violations = sim::invariants::no_lost_commits::check(&history.txns(), &final_rows);
        (rebalanced, violations)
    })
}

#[test]
fn the_no_lost_commits_check_catches_a_rebalance_before_resynchronization() {
    let (rebalanced, violations) = rebalance_before_resync(false);
    let refusal = rebalanced.unwrap_err();
    assert!(
        refusal.contains("rebalance refused: content 0 is not synchronized"),
        "{refusal}"
    );
    assert!(violations.is_empty(), "{violations:?}");
    let (rebalanced, violations) = rebalance_before_resync(true);
    assert_eq!(rebalanced, Ok(()));
    assert!(
        violations
            .iter()
            .any(|v| v.checker == sim::invariants::no_lost_commits::NAME),
        "the lost commits went unnoticed"
    );
}
