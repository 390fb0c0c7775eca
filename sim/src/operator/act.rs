//! The operator carrying out what it decided: it looks at the world (the `state` report, the
//! standby's mirroring status, whether the standby process answers), decides
//! ([`Operator::decide`]), runs the utility, and remembers what came of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use cluster::admin::driver::{self, RecoverOptions, RecoverOutcome};
use cluster::client::Client;
use cluster::io::Disk;
use cluster::model::catalog::{Dbid, SegmentConfig};
use cluster::standby::admin::{self as standby_admin, StandbyAdminError};
use cluster::standby::{ActivateRefusal, MirroringStatus};

use super::harness::SimHosts;
use super::standby::init_standby;
use super::{Action, CoordinatorObserved, Observed, Operator};

impl Operator {
    /// Looks at the world, decides, and carries the action out; returns it with its outcome.
    pub async fn act(
        &mut self,
        client: &mut Client,
        hosts: &SimHosts,
    ) -> Option<(Action, Result<String, String>)> {
        let obs = self.look(client, hosts).await?;
        let action = self.decide(&obs)?;
        let outcome = self.carry_out(&action, client, hosts).await;
        if let Action::ActivateStandby { .. } = &action {
            if outcome.is_ok() {
                // The activated standby is the coordinator now; the next look finds no standby.
                self.standby = None;
                self.activation_unsettled = None;
            } else {
                // No answer, or not one that says nothing changed: it may have taken over.
                self.activation_unsettled = Some(action.clone());
            }
        }
        tracing::info!(?action, ?outcome, "operator acted");
        self.log.push((action.clone(), outcome.clone()));
        Some((action, outcome))
    }

    /// What an administrator sees: which hosts are down, the `state` report when the acting
    /// coordinator answers, and (with a standby host) the coordinator pair. `None`: nothing
    /// to go by.
    async fn look(&self, client: &mut Client, hosts: &SimHosts) -> Option<Observed> {
        let (down_hosts, acting, acting_fenced, acting_stopped, coordinator_hosts) = {
            let world = hosts.world.lock().unwrap();
            let down: BTreeSet<String> = world.down_hosts().into_iter().collect();
            let acting = world.acting.host.clone();
            let fenced = world.coordinator_fenced(&acting);
            let stopped = world.coordinator_stopped(&acting);
            (down, acting, fenced, stopped, world.coordinator_hosts())
        };
        let acting_down = down_hosts.contains(&acting) || acting_fenced;
        let report = if acting_down {
            None
        } else {
            driver::state_report(client).await.ok()
        };
        let coordinator = if coordinator_hosts.len() > 1 {
            let mirroring = if acting_down {
                None
            } else {
                standby_admin::mirroring_status(client).await.ok()
            };
            let known = mirroring
                .as_ref()
                .and_then(|m| m.standby.clone())
                .or_else(|| self.standby.as_ref().map(|(row, _)| row.clone()));
            let standby_running = match known {
                Some(row) if !down_hosts.contains(&row.hostname) => {
                    standby_admin::passive_status(&row.endpoint(), Duration::from_secs(1))
                        .await
                        .is_some()
                }
                _ => false,
            };
            Some(CoordinatorObserved {
                hosts: coordinator_hosts,
                acting_host: acting,
                acting_fenced,
                acting_stopped,
                mirroring,
                standby_running,
            })
        } else {
            None
        };
        if report.is_none() && coordinator.is_none() {
            return None;
        }
        let stopped_instances = hosts
            .world
            .lock()
            .unwrap()
            .stopped_instances()
            .into_iter()
            .collect();
        Some(Observed {
            stopped_instances,
            not_operational: report.as_ref().and_then(|r| r.not_operational),
            catalog: report.map(|r| r.catalog),
            down_hosts,
            coordinator,
        })
    }

    /// Runs the utility `action` names; its report, or why it failed.
    async fn carry_out(
        &mut self,
        action: &Action,
        client: &mut Client,
        hosts: &SimHosts,
    ) -> Result<String, String> {
        let wait = self.standby_wait.unwrap_or(Duration::from_secs(30));
        match action {
            Action::Restart => {
                let restarted = hosts.world.lock().unwrap().restart_cluster();
                // The standby process stopped with the rest: it is Not Synchronized until
                // `init-standby -n`.
                if let Some((_, synced)) = &mut self.standby {
                    *synced = false;
                }
                Ok(format!("restarted {restarted:?}"))
            }
            Action::ActivateStandby {
                from,
                standby,
                start,
                fence,
            } => activate(hosts, from, standby, *start, *fence).await,
            Action::InitStandby { host } => {
                init_standby(hosts, host, false, wait, client_timeout())
                    .await
                    .map(|s| describe_standby(&s))
                    .map_err(|e| e.to_string())
            }
            Action::ResyncStandby { host } => {
                let outcome = init_standby(hosts, host, true, wait, client_timeout())
                    .await
                    .map(|s| describe_standby(&s))
                    .map_err(|e| e.to_string());
                self.failed_resync = outcome.is_err().then(|| host.clone());
                outcome
            }
            Action::RemoveStandby { host } => {
                let outcome = standby_admin::remove_standby(client)
                    .await
                    .map(|row| format!("standby dbid {} on {host} removed", row.dbid))
                    .map_err(|e| e.to_string());
                if outcome.is_ok() {
                    self.failed_resync = None;
                }
                outcome
            }
            Action::Rebalance => {
                let opts = RecoverOptions {
                    rebalance: true,
                    ..Default::default()
                };
                driver::recoverseg(client, hosts, &opts)
                    .await
                    .map(|o| format!("{o:?}"))
                    .map_err(|e| e.to_string())
            }
            Action::Recover { full } => {
                let opts = RecoverOptions {
                    full: *full,
                    ..Default::default()
                };
                self.recover(client, hosts, &opts).await
            }
        }
    }

    /// `recoverseg` (`-F` when `opts.full`); remembers which instances incremental recovery
    /// failed for, so that the next attempt copies them in full.
    async fn recover(
        &mut self,
        client: &mut Client,
        hosts: &SimHosts,
        opts: &RecoverOptions,
    ) -> Result<String, String> {
        match driver::recoverseg(client, hosts, opts).await {
            Ok(RecoverOutcome::Recovered(results)) => {
                let failed: BTreeMap<Dbid, String> = results
                    .iter()
                    .filter_map(|r| r.outcome.clone().err().map(|e| (r.dbid, e)))
                    .collect();
                for r in &results {
                    if r.outcome.is_err() && !r.full {
                        self.failed_incremental.insert(r.dbid);
                    } else if r.outcome.is_ok() {
                        self.failed_incremental.remove(&r.dbid);
                    }
                }
                if failed.is_empty() {
                    Ok(driver::describe_recovered(&results))
                } else {
                    Err(format!("{failed:?}"))
                }
            }
            Ok(other) => Ok(format!("{other:?}")),
            Err(e) => {
                let e = e.to_string();
                // The refusal's own advice, followed as an operator reading it would.
                if e.ends_with(cluster::wire::admin::RESTART_THEN_RECOVER) {
                    self.restart_advised = true;
                }
                Err(e)
            }
        }
    }
}

/// How long the operator's own connections wait for an answer.
fn client_timeout() -> Duration {
    Duration::from_secs(7)
}

fn describe_standby(s: &MirroringStatus) -> String {
    format!(
        "standby {} {}",
        s.standby
            .as_ref()
            .map(|r| format!("dbid {} on {}", r.dbid, r.hostname))
            .unwrap_or_default(),
        s.summary_state.label()
    )
}

/// Fences the lost coordinator on `from` if asked, starts the standby if asked, and activates
/// it; on success the world's acting coordinator moves to the standby's host. Only a refusal
/// because the old coordinator answers again lifts the fence; after any other failure the
/// activation may have begun, so the fence stays and the next look tries again (a standby
/// whose catalog already names it the coordinator is started as the coordinator).
pub async fn activate(
    hosts: &SimHosts,
    from: &str,
    standby: &SegmentConfig,
    start: bool,
    fence: bool,
) -> Result<String, String> {
    // An earlier attempt whose outcome never reached the operator may have taken over
    // already (and told the instances): the activation under way began with it.
    hosts
        .world
        .lock()
        .unwrap()
        .activation_began_ms
        .get_or_insert(crate::workload::now_ms());
    let fenced = if fence {
        hosts.world.lock().unwrap().fence_coordinator(from)
    } else {
        None
    };
    if start {
        let world = hosts.world.lock().unwrap();
        match world.standby_host_on(&hosts.cfg, &standby.hostname) {
            Some(h) => h.launch(standby),
            None => {
                drop(world);
                hosts.world.lock().unwrap().unfence(from, fenced);
                return Err(format!("{} is not a coordinator host", standby.hostname));
            }
        }
    }
    // As gpactivatestandby waits for the promotion (`pg_ctl promote -t 600`): activation
    // resolves every in-doubt transaction, and unreachable primaries cost their timeouts.
    let addr = standby.endpoint();
    match standby_admin::activate_standby(&addr, Duration::from_secs(300)).await {
        Ok(a) => {
            let at_ms = crate::workload::now_ms();
            let text = format!(
                "dbid {} on {} is the coordinator at epoch {} (catalog WAL {}; in doubt: {} committed, {} aborted, {} contents unreached; the lost coordinator {})",
                a.dbid,
                standby.hostname,
                cluster::model::catalog::epoch::describe(a.epoch),
                a.end_lsn,
                a.committed.len(),
                a.aborted.len(),
                a.unreached.len(),
                if fence { "fenced first" } else { "left unfenced" }
            );
            hosts
                .world
                .lock()
                .unwrap()
                .standby_activated(&hosts.cfg, &standby.hostname, a, at_ms);
            Ok(text)
        }
        Err(e) => after_failed_activation(hosts, from, standby, fenced, e).await,
    }
}

/// What an `activate-standby` that failed with `e` left behind: the standby may serve as the
/// coordinator anyway (the answer was lost), may have refused because the old coordinator is
/// back (the fence is lifted), or may already be the coordinator by its own catalog.
async fn after_failed_activation(
    hosts: &SimHosts,
    from: &str,
    standby: &SegmentConfig,
    fenced: Option<(cluster::coordinator::CoordinatorConfig, Arc<dyn Disk>)>,
    e: StandbyAdminError,
) -> Result<String, String> {
    // No answer is not a refusal: if the standby serves as the coordinator now, the
    // activation went through and the fence stays.
    let mut probe = Client::new(vec![standby.endpoint()], client_timeout());
    if probe.catalog().await.is_ok() {
        let at_ms = crate::workload::now_ms();
        hosts.world.lock().unwrap().standby_activated_unreported(
            &hosts.cfg,
            &standby.hostname,
            at_ms,
        );
        return Ok(format!(
            "dbid {} on {} is the coordinator (activate-standby itself reported: {e})",
            standby.dbid, standby.hostname
        ));
    }
    let refusal = match &e {
        StandbyAdminError::ActivateRefused { why, .. } => *why,
        _ => ActivateRefusal::Other,
    };
    let why = e.to_string();
    let mut world = hosts.world.lock().unwrap();
    if refusal == ActivateRefusal::CoordinatorAlive {
        // Refused before anything changed: the old coordinator is back, and no activation
        // is under way.
        world.unfence(from, fenced);
        world.activation_began_ms = None;
    } else if refusal == ActivateRefusal::NotTheStandby {
        // Its own catalog names it the coordinator: an earlier activation took over
        // and was cut short. Start it as the coordinator; the fence stays.
        let at_ms = crate::workload::now_ms();
        world.resume_as_coordinator(&hosts.cfg, &standby.hostname, at_ms);
        return Ok(format!(
            "dbid {} on {} was already activated; started as the coordinator",
            standby.dbid, standby.hostname
        ));
    } else {
        // Unknown: the activation may have begun. The fence stays, and the standby's
        // process starts afresh from its disk for the next attempt.
        world.restart_coordinator_process(&standby.hostname);
    }
    Err(why)
}
