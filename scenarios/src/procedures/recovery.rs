//! The recovery and administration procedures of seeds 002 and 003, step by step: each returns
//! the `state` report (`-e` and `-m`) or the file a verb wrote after each step, named.

use cluster::admin::driver::{self, MirrorSource, RecoverOptions, RecoverOutcome};
use cluster::admin::state::View;
use cluster::model::catalog::{Mode, Role, Status};

use sim::config::RunConfig;
use sim::operator::harness::{
    all_keys, all_synchronized, assert_world_places_as, create_table, insert_retrying,
    preferred_roles, wait_catalog, AdminHarness,
};

use super::{state, Steps};

fn two_pairs() -> RunConfig {
    RunConfig {
        contents: 2,
        ..RunConfig::pair()
    }
}

/// Seed 002, "Recovering From Segment Failures": 1. a primary's host fails and its mirror is
/// promoted (roles switched, Change Tracking); 2. the host returns and `recoverseg` brings the
/// old primary back as a mirror, which resynchronizes; 3. `recoverseg -r` returns every
/// instance to its preferred role. Every acknowledged row survives.
pub async fn primary_fails_recoverseg_then_rebalance(seed: u64) -> Steps {
    let h = AdminHarness::build(&two_pairs(), seed);
    let acked = h
        .run(|mut c, hosts| async move {
            create_table(&mut c, "t").await;
            wait_catalog(&mut c, "synchronized", all_synchronized).await;
            hosts.step("failover_0_synchronized", state(&mut c).await);
            let mut acked = Vec::new();
            for k in 0..20 {
                if insert_retrying(&mut c, "t", k).await {
                    acked.push(k);
                }
            }
            acked
        })
        .await;
    h.kill_host("sdw1");
    h.run(|mut c, hosts| async move {
        wait_catalog(&mut c, "mirror promoted", |cat| {
            cat.pair(0).unwrap().primary.preferred_role == Role::Mirror
        })
        .await;
        hosts.step("failover_1_promoted", state(&mut c).await);
    })
    .await;
    h.restart_host("sdw1");
    h.run(|mut c, hosts| async move {
        for k in 20..30 {
            assert!(insert_retrying(&mut c, "t", k).await);
        }
        let out = driver::recoverseg(&mut c, &hosts, &RecoverOptions::default())
            .await
            .unwrap();
        assert!(
            matches!(&out, RecoverOutcome::Recovered(r) if r.len() == 1 && r[0].outcome.is_ok()),
            "{out:?}"
        );
        wait_catalog(&mut c, "resynchronized", all_synchronized).await;
        hosts.step("failover_2_recovered", state(&mut c).await);
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
        wait_catalog(&mut c, "rebalanced", |cat| {
            all_synchronized(cat) && preferred_roles(cat)
        })
        .await;
        hosts.step("failover_3_rebalanced", state(&mut c).await);
        let keys = all_keys(&mut c, "t", 2).await;
        for k in acked.iter().chain(&(20..30).collect::<Vec<_>>()) {
            assert!(keys.contains(k), "acknowledged key {k} lost");
        }
    })
    .await;
    h.hosts.steps()
}

/// Seed 002, double fault: 1. a mirror's host fails (its primary goes to Change Tracking);
/// 2. the primary's host fails too: the content is unavailable and `recoverseg` refuses;
/// 3. both hosts return, `restart`, then `recoverseg`: Synchronized again.
pub async fn double_fault_restart_then_recoverseg(seed: u64) -> Steps {
    let h = AdminHarness::build(&RunConfig::pair(), seed);
    h.run(|mut c, _| async move {
        create_table(&mut c, "t").await;
        wait_catalog(&mut c, "synchronized", all_synchronized).await;
        assert!(insert_retrying(&mut c, "t", 1).await);
    })
    .await;
    h.kill_host("sdw2");
    h.run(|mut c, hosts| async move {
        wait_catalog(&mut c, "mirror marked down", |cat| {
            cat.segments[&3].status == Status::Down
        })
        .await;
        assert!(insert_retrying(&mut c, "t", 2).await);
        hosts.step("double_fault_1_change_tracking", state(&mut c).await);
    })
    .await;
    h.kill_host("sdw1");
    h.run(|mut c, hosts| async move {
        madsim::time::sleep(std::time::Duration::from_secs(10)).await;
        let err = driver::recoverseg(&mut c, &hosts, &RecoverOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Primary segment is not up for content 0"),
            "{err}"
        );
        assert!(err.contains("double fault"), "{err}");
    })
    .await;
    h.restart_host("sdw1");
    h.restart_host("sdw2");
    let restarted = h.world.lock().unwrap().restart_cluster();
    assert_eq!(restarted, vec!["mdw", "sdw1", "sdw2"]);
    h.run(|mut c, hosts| async move {
        // The content is available again.
        assert!(insert_retrying(&mut c, "t", 3).await);
        let out = driver::recoverseg(&mut c, &hosts, &RecoverOptions::default()).await;
        // The returning mirror may have caught up on its own before recoverseg looked.
        if let Ok(RecoverOutcome::Recovered(r)) = &out {
            assert!(r.iter().all(|r| r.outcome.is_ok()), "{r:?}");
        } else {
            panic!("{out:?}");
        }
        let cat = wait_catalog(&mut c, "synchronized", all_synchronized).await;
        if !all_synchronized(&cat) {
            driver::recoverseg(
                &mut c,
                &hosts,
                &RecoverOptions {
                    full: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        hosts.step("double_fault_2_restarted_recovered", state(&mut c).await);
        let keys = all_keys(&mut c, "t", 1).await;
        assert_eq!(keys, vec![1, 2, 3]);
    })
    .await;
    h.hosts.steps()
}

/// Seed 002, "When a segment host is not recoverable": the mirror's host is lost for good;
/// `recoverseg -o` writes the sample; `recoverseg -i` recovers the mirror onto a spare host
/// (full copy from the acting primary); bad files are refused with the line and the rule.
pub async fn unrecoverable_host_recoverseg_onto_a_spare(seed: u64) -> Steps {
    let h = AdminHarness::build(&RunConfig::pair(), seed);
    let spare = h.add_spare_host("sdw3");
    h.run(|mut c, _| async move {
        create_table(&mut c, "t").await;
        wait_catalog(&mut c, "synchronized", all_synchronized).await;
        for k in 0..10 {
            assert!(insert_retrying(&mut c, "t", k).await);
        }
    })
    .await;
    h.kill_host("sdw2");
    h.run(move |mut c, hosts| async move {
        wait_catalog(&mut c, "mirror marked down", |cat| {
            cat.segments[&3].status == Status::Down
        })
        .await;
        let RecoverOutcome::Sample(sample) = driver::recoverseg(
            &mut c,
            &hosts,
            &RecoverOptions {
                output: true,
                ..Default::default()
            },
        )
        .await
        .unwrap() else {
            panic!("no sample")
        };
        hosts.step("spare_0_sample", sample.clone());
        let failed = sample.lines().nth(1).unwrap().to_string();
        // A bad line changes nothing.
        let bad = format!("{failed} {spare}.1|7000\n");
        let err = driver::recoverseg(
            &mut c,
            &hosts,
            &RecoverOptions {
                input: Some(bad),
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "line 1: expected 3 parts (address|port|dataDirectory) in the new group but found 2"
        );
        let onto_primary = format!("{failed} 10.1.0.9|7000|/data/mirror/gpseg0\n");
        let err = driver::recoverseg(
            &mut c,
            &hosts,
            &RecoverOptions {
                input: Some(onto_primary),
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("may not sit on its primary's host"), "{err}");
        let good = format!("{failed} {spare}.1|7000|/data/mirror/gpseg0\n");
        driver::recoverseg(
            &mut c,
            &hosts,
            &RecoverOptions {
                input: Some(good),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let cat = wait_catalog(&mut c, "synchronized on the spare", all_synchronized).await;
        assert_eq!(cat.segments[&3].hostname, "sdw3");
        assert_world_places_as(&hosts, &cat);
        hosts.step("spare_1_recovered", state(&mut c).await);
        assert_eq!(all_keys(&mut c, "t", 1).await, (0..10).collect::<Vec<_>>());
    })
    .await;
    h.hosts.steps()
}

/// Seed 003, "To add segment mirrors to an existing system": an unmirrored cluster gains
/// mirrors with `add-mirrors -p 1000` (group placement); a second run is refused.
pub async fn add_mirrors_to_an_unmirrored_cluster(seed: u64) -> Steps {
    let cfg = RunConfig {
        contents: 2,
        mirrors: false,
        ..RunConfig::pair()
    };
    let h = AdminHarness::build(&cfg, seed);
    h.run(|mut c, hosts| async move {
        create_table(&mut c, "t").await;
        for k in 0..10 {
            assert!(insert_retrying(&mut c, "t", k).await);
        }
        hosts.step("add_mirrors_0_unmirrored", state(&mut c).await);
        let Err(sample) = driver::add_mirrors(&mut c, &hosts, &MirrorSource::Sample)
            .await
            .unwrap()
        else {
            panic!("no sample")
        };
        hosts.step("add_mirrors_1_sample", sample);
        driver::add_mirrors(
            &mut c,
            &hosts,
            &MirrorSource::Offset(1000, cluster::model::layout::Layout::Group),
        )
        .await
        .unwrap()
        .unwrap();
        let cat = wait_catalog(&mut c, "mirrors synchronized", all_synchronized).await;
        assert_world_places_as(&hosts, &cat);
        assert!(cat
            .pairs()
            .iter()
            .all(|p| p.mirror.as_ref().unwrap().hostname != p.primary.hostname));
        hosts.step("add_mirrors_2_mirrored", state(&mut c).await);
        let err = driver::add_mirrors(
            &mut c,
            &hosts,
            &MirrorSource::Offset(1000, cluster::model::layout::Layout::Group),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("already configured with mirrors"), "{err}");
        assert_eq!(all_keys(&mut c, "t", 2).await, (0..10).collect::<Vec<_>>());
    })
    .await;
    h.hosts.steps()
}

/// Seed 003, "Implementing Block Mirroring": `move-mirrors -i` relocates a mirror and writes a
/// backout file; running the backout file puts it back.
pub async fn move_mirrors_and_back_out(seed: u64) -> Steps {
    let h = AdminHarness::build(&RunConfig::pair(), seed);
    let spare = h.add_spare_host("sdw3");
    h.run(move |mut c, hosts| async move {
        create_table(&mut c, "t").await;
        let cat = wait_catalog(&mut c, "synchronized", all_synchronized).await;
        let m = cat.pair(0).unwrap().mirror.unwrap();
        let file = format!(
            "{}|{}|{} {spare}.1|7000|/data/mirror/gpseg0\n",
            m.address, m.port, m.datadir
        );
        let (_, backout) = driver::move_mirrors(&mut c, &hosts, &file).await.unwrap();
        hosts.step("move_0_backout_file", backout.clone());
        let cat = wait_catalog(&mut c, "synchronized after the move", all_synchronized).await;
        assert_eq!(cat.segments[&3].hostname, "sdw3");
        assert_world_places_as(&hosts, &cat);
        assert!(insert_retrying(&mut c, "t", 1).await);
        hosts.step("move_1_moved", state(&mut c).await);
        driver::move_mirrors(&mut c, &hosts, &backout)
            .await
            .unwrap();
        let cat = wait_catalog(&mut c, "synchronized after backing out", all_synchronized).await;
        assert_eq!(cat.segments[&3].hostname, "sdw2");
        assert_world_places_as(&hosts, &cat);
        assert_eq!(cat.segments[&3].mode, Mode::Synced);
        assert_eq!(all_keys(&mut c, "t", 1).await, vec![1]);
    })
    .await;
    h.hosts.steps()
}

/// Seed 002, "If the mirror segment fails": 1. the mirror's host fails; the prober marks it down
/// and the primary goes to Change Tracking; 2. the host returns and `recoverseg` (if the mirror
/// has not already caught up on its own) resynchronizes it: Synchronized.
pub async fn mirror_fails_change_tracking_then_recovery(seed: u64) -> Steps {
    let h = AdminHarness::build(&RunConfig::pair(), seed);
    h.run(|mut c, _| async move {
        create_table(&mut c, "t").await;
        wait_catalog(&mut c, "synchronized", all_synchronized).await;
    })
    .await;
    h.kill_host("sdw2");
    h.run(|mut c, hosts| async move {
        wait_catalog(&mut c, "mirror marked down", |cat| {
            cat.segments[&3].status == Status::Down
        })
        .await;
        for k in 0..10 {
            assert!(insert_retrying(&mut c, "t", k).await);
        }
        hosts.step("mirror_fails_1_change_tracking", state(&mut c).await);
    })
    .await;
    h.restart_host("sdw2");
    h.run(|mut c, hosts| async move {
        let out = driver::recoverseg(&mut c, &hosts, &RecoverOptions::default())
            .await
            .unwrap();
        assert!(
            matches!(&out, RecoverOutcome::Recovered(r) if r.iter().all(|r| r.outcome.is_ok())),
            "{out:?}"
        );
        wait_catalog(&mut c, "synchronized", all_synchronized).await;
        hosts.step("mirror_fails_2_synchronized", state(&mut c).await);
        assert_eq!(all_keys(&mut c, "t", 1).await, (0..10).collect::<Vec<_>>());
    })
    .await;
    h.hosts.steps()
}

/// Seed 002, "With mirroring disabled, the system automatically shuts down if a segment instance
/// fails": 1. no mirrors; the host of content 1 fails: the system stops and `state -e` says
/// why; `recoverseg` refuses (nothing mirrors it); 2. the host returns and `restart`: the
/// system works again.
pub async fn mirroring_disabled_segment_fails_system_stops(seed: u64) -> Steps {
    let cfg = RunConfig {
        contents: 2,
        mirrors: false,
        ..RunConfig::pair()
    };
    let h = AdminHarness::build(&cfg, seed);
    h.run(|mut c, _| async move {
        create_table(&mut c, "t").await;
        assert!(insert_retrying(&mut c, "t", 1).await);
    })
    .await;
    h.kill_host("sdw2");
    h.run(|mut c, hosts| async move {
        for _ in 0..100 {
            let report = driver::state_report(&mut c).await.unwrap();
            if report.not_operational.is_some() {
                break;
            }
            madsim::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let e = driver::state(&mut c, View::Errors).await.unwrap();
        hosts.step("unmirrored_1_stopped", e);
        let err = driver::recoverseg(&mut c, &hosts, &RecoverOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("mirroring is not configured"), "{err}");
        let err = async {
            c.begin().await?;
            c.insert("t", 2, vec![2]).await?;
            c.commit().await
        }
        .await
        .unwrap_err()
        .to_string();
        assert!(err.to_string().contains("not operational"), "{err}");
    })
    .await;
    h.restart_host("sdw2");
    h.world.lock().unwrap().restart_cluster();
    h.run(|mut c, _| async move {
        assert!(insert_retrying(&mut c, "t", 3).await);
        let e = driver::state(&mut c, View::Errors).await.unwrap();
        assert!(!e.contains("not operational"), "{e}");
        let keys = all_keys(&mut c, "t", 2).await;
        assert!(keys.contains(&1) && keys.contains(&3), "{keys:?}");
    })
    .await;
    h.hosts.steps()
}

/// Seed 003, "To add segment mirrors to an existing system (different hosts from primaries)":
/// a mirror file with the wrong number of lines is refused with its line number; a good one
/// (`content|address|port|dataDirectory`) puts the mirrors on a host of their own.
pub async fn add_mirrors_from_a_file_onto_other_hosts(seed: u64) -> Steps {
    let cfg = RunConfig {
        contents: 2,
        mirrors: false,
        ..RunConfig::pair()
    };
    let h = AdminHarness::build(&cfg, seed);
    let spare = h.add_spare_host("sdw3");
    h.run(move |mut c, hosts| async move {
        create_table(&mut c, "t").await;
        assert!(insert_retrying(&mut c, "t", 1).await);
        let short = format!("# mirrors\n0|{spare}.1|7000|/data/mirror/gpseg0\n");
        let err = driver::add_mirrors(&mut c, &hosts, &MirrorSource::File(short))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "line 2: wrong number of mirrors specified: 1 lines for 2 contents"
        );
        let good =
            format!("0|{spare}.1|7000|/data/mirror/gpseg0\n1|{spare}.2|7001|/data/mirror/gpseg1\n");
        driver::add_mirrors(&mut c, &hosts, &MirrorSource::File(good))
            .await
            .unwrap()
            .unwrap();
        let cat = wait_catalog(&mut c, "mirrors synchronized", all_synchronized).await;
        assert_world_places_as(&hosts, &cat);
        assert!(cat
            .pairs()
            .iter()
            .all(|p| p.mirror.as_ref().unwrap().hostname == "sdw3"));
        hosts.step("add_mirrors_file_1_mirrored", state(&mut c).await);
    })
    .await;
    h.hosts.steps()
}

/// Seed 003, "Implementing Block Mirroring": a group-mirrored cluster of 4 hosts with 2
/// primaries each moves the mirrors that are not where block mirroring (blocks of 2 hosts)
/// wants them with `move-mirrors -i`; the backout file returns them to the group layout.
pub async fn move_mirrors_into_a_block_layout(seed: u64) -> Steps {
    use cluster::model::layout::Layout;
    let cfg = RunConfig {
        segment_hosts: 4,
        contents: 8,
        ..RunConfig::pair()
    };
    let h = AdminHarness::build(&cfg, seed);
    let block = Layout::Block { size: 2 }.place(4, 2, 8).unwrap();
    h.run(move |mut c, hosts| async move {
        create_table(&mut c, "t").await;
        let cat = wait_catalog(&mut c, "synchronized", all_synchronized).await;
        let mut file = String::from("# into block:2\n");
        let mut want = std::collections::BTreeMap::new();
        for p in &block {
            let m = cat.pair(p.content as i16).unwrap().mirror.unwrap();
            let host = format!("sdw{}", p.mirror_host + 1);
            want.insert(p.content as i16, host.clone());
            if m.hostname != host {
                file.push_str(&format!(
                    "{}|{}|{} 10.{}.0.{}|{}|/data/mirror_block/gpseg{}\n",
                    m.address,
                    m.port,
                    m.datadir,
                    p.mirror_host + 1,
                    20 + p.mirror_slot,
                    7100 + p.mirror_slot,
                    p.content
                ));
            }
        }
        hosts.step("block_0_move_file", file.clone());
        let (_, backout) = driver::move_mirrors(&mut c, &hosts, &file).await.unwrap();
        hosts.step("block_1_backout_file", backout.clone());
        let cat = wait_catalog(&mut c, "synchronized in block layout", all_synchronized).await;
        assert_world_places_as(&hosts, &cat);
        for pair in cat.pairs() {
            assert_eq!(pair.mirror.unwrap().hostname, want[&pair.content]);
        }
        hosts.step("block_2_moved", state(&mut c).await);
        driver::move_mirrors(&mut c, &hosts, &backout)
            .await
            .unwrap();
        let back = wait_catalog(&mut c, "synchronized after backing out", all_synchronized).await;
        assert_world_places_as(&hosts, &back);
        for pair in back.pairs() {
            let host_index = pair.primary.hostname[3..].parse::<usize>().unwrap() - 1;
            assert_eq!(
                pair.mirror.unwrap().hostname,
                format!("sdw{}", (host_index + 1) % 4 + 1),
                "group layout again"
            );
        }
        hosts.step("block_3_backed_out", state(&mut c).await);
    })
    .await;
    h.hosts.steps()
}
