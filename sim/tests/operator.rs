//! The operator agent does what seed 002 tells an administrator: after a primary's host fails
//! and returns it runs `recoverseg`, and once the pair is Synchronized `recoverseg -r`; after a
//! double fault it waits for the hosts, restarts the cluster and recovers.

use std::time::Duration;

use cluster::model::catalog::Status;
use sim::config::RunConfig;
use sim::operator::harness::{
    all_synchronized, create_table, insert_retrying, preferred_roles, wait_catalog, AdminHarness,
};
use sim::operator::{Action, Operator};

/// Lets the operator look every second until `done` holds; returns what it did.
async fn operate_until(
    h: &AdminHarness,
    mut op: Operator,
    done: fn(&cluster::model::catalog::Catalog) -> bool,
) -> Vec<Action> {
    h.run(move |mut c, hosts| async move {
        for _ in 0..120 {
            op.act(&mut c, &hosts).await;
            if let Ok(cat) = c.catalog().await {
                if done(&cat) && op.act(&mut c, &hosts).await.is_none() {
                    return op.log.into_iter().map(|(a, _)| a).collect();
                }
            }
            madsim::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("the operator never got there: {:?}", op.log);
    })
    .await
}

#[madsim::test]
async fn after_a_failover_the_operator_recovers_then_rebalances() {
    let h = AdminHarness::build(&RunConfig::pair(), 31);
    h.run(|mut c, _| async move {
        create_table(&mut c, "t").await;
        wait_catalog(&mut c, "synchronized", all_synchronized).await;
    })
    .await;
    h.kill_host("sdw1");
    h.run(|mut c, _| async move {
        wait_catalog(&mut c, "promoted", |cat| {
            cat.segments[&2].status == Status::Down
        })
        .await;
        assert!(insert_retrying(&mut c, "t", 1).await);
    })
    .await;
    h.restart_host("sdw1");
    let actions = operate_until(&h, Operator::new(), |cat| {
        all_synchronized(cat) && preferred_roles(cat)
    })
    .await;
    assert_eq!(
        actions,
        vec![Action::Recover { full: false }, Action::Rebalance]
    );
}

#[madsim::test]
async fn after_a_double_fault_the_operator_restarts_and_recovers() {
    let h = AdminHarness::build(&RunConfig::pair(), 32);
    h.run(|mut c, _| async move {
        create_table(&mut c, "t").await;
        wait_catalog(&mut c, "synchronized", all_synchronized).await;
    })
    .await;
    h.kill_host("sdw2");
    h.run(|mut c, _| async move {
        wait_catalog(&mut c, "mirror down", |cat| {
            cat.segments[&3].status == Status::Down
        })
        .await;
    })
    .await;
    h.kill_host("sdw1");
    // The operator looks while both hosts are down: it waits.
    let mut op = Operator::new();
    let (op, waited) = h
        .run(move |mut c, hosts| async move {
            let r = op.act(&mut c, &hosts).await;
            (op, r)
        })
        .await;
    assert_eq!(waited, None);
    h.restart_host("sdw1");
    h.restart_host("sdw2");
    let actions = operate_until(&h, op, |cat| all_synchronized(cat) && preferred_roles(cat)).await;
    assert_eq!(actions.first(), Some(&Action::Restart), "{actions:?}");
}
