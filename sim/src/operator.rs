//! The operator: what the seeds tell an administrator to do, as an agent the simulator can run
//! between faults. Seed 002: run `recoverseg` once failed hosts are back; a full copy (`-F`)
//! when incremental recovery cannot be done; `recoverseg -r` once every pair is Synchronized
//! and some instance is not in its preferred role; after a double fault (or a failed
//! unmirrored segment) restart the cluster once its hosts are back, then `recoverseg`.
//!
//! [`Operator::decide`] is pure (a function of what the operator observes and remembers);
//! [`Operator::act`] observes the world, decides, and carries the action out.

use std::collections::{BTreeMap, BTreeSet};

use cluster::admin::driver::{self, RecoverOptions, RecoverOutcome};
use cluster::catalog::{Catalog, Content, Dbid, Mode, Status};
use cluster::client::Client;

use crate::admin::SimHosts;

/// What the operator sees when it looks.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub catalog: Catalog,
    /// Hosts that are down (the operator can ping them).
    pub down_hosts: BTreeSet<String>,
    /// An unmirrored content whose primary is lost (`state -e`: not operational).
    pub not_operational: Option<Content>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `recoverseg` (`full`: `-F`).
    Recover { full: bool },
    /// `recoverseg -r`.
    Rebalance,
    /// `restart` (gpstop -r).
    Restart,
}

impl Action {
    /// The utility as an administrator types it.
    pub fn command(&self) -> &'static str {
        match self {
            Action::Recover { full: false } => "recoverseg",
            Action::Recover { full: true } => "recoverseg -F",
            Action::Rebalance => "recoverseg -r",
            Action::Restart => "restart",
        }
    }
}

/// The operator's memory between looks.
#[derive(Clone, Debug, Default)]
pub struct Operator {
    /// Contents seen with both halves down, waiting for their hosts.
    double_faulted: BTreeSet<Content>,
    /// Instances whose incremental recovery failed: next time, a full copy.
    failed_incremental: BTreeSet<Dbid>,
    /// Actions taken, in order, with their outcome.
    pub log: Vec<(Action, Result<String, String>)>,
}

impl Operator {
    pub fn new() -> Operator {
        Operator::default()
    }

    /// The next action, if any.
    pub fn decide(&mut self, obs: &Observed) -> Option<Action> {
        let cat = &obs.catalog;
        for pair in cat.pairs() {
            let Some(mirror) = &pair.mirror else { continue };
            if mirror.status == Status::Down && obs.down_hosts.contains(&pair.primary.hostname) {
                self.double_faulted.insert(pair.content);
            }
        }
        let waiting_for_hosts = |content: &Content| {
            cat.pair(*content).is_some_and(|p| {
                let mut hosts = vec![p.primary.hostname.clone()];
                hosts.extend(p.mirror.map(|m| m.hostname));
                hosts.iter().any(|h| obs.down_hosts.contains(h))
            })
        };
        if !self.double_faulted.is_empty() {
            if self.double_faulted.iter().any(waiting_for_hosts) {
                return None;
            }
            self.double_faulted.clear();
            return Some(Action::Restart);
        }
        if let Some(content) = obs.not_operational {
            let host = cat.pair(content).map(|p| p.primary.hostname);
            if host.is_some_and(|h| !obs.down_hosts.contains(&h)) {
                return Some(Action::Restart);
            }
            return None;
        }
        let recoverable: Vec<Dbid> = cat
            .segments
            .values()
            .filter(|s| s.content >= 0 && s.status == Status::Down)
            .filter(|s| !obs.down_hosts.contains(&s.hostname))
            .map(|s| s.dbid)
            .collect();
        if !recoverable.is_empty() {
            let full = recoverable
                .iter()
                .any(|d| self.failed_incremental.contains(d));
            return Some(Action::Recover { full });
        }
        let synchronized = cat.pairs().iter().all(|p| {
            p.mirror.as_ref().is_some_and(|m| {
                m.status == Status::Up && m.mode == Mode::Synced && p.primary.mode == Mode::Synced
            })
        });
        let unbalanced = cat
            .segments
            .values()
            .any(|s| s.content >= 0 && s.role != s.preferred_role);
        if synchronized && unbalanced {
            return Some(Action::Rebalance);
        }
        None
    }

    /// Looks at the world, decides, and carries the action out; returns it with its outcome.
    pub async fn act(
        &mut self,
        client: &mut Client,
        hosts: &SimHosts,
    ) -> Option<(Action, Result<String, String>)> {
        let report = driver::state_report(client).await.ok()?;
        let down_hosts: BTreeSet<String> =
            hosts.0.lock().unwrap().down_hosts().into_iter().collect();
        let obs = Observed {
            catalog: report.catalog,
            down_hosts,
            not_operational: report.not_operational,
        };
        let action = self.decide(&obs)?;
        let outcome = match &action {
            Action::Restart => {
                let restarted = hosts.0.lock().unwrap().restart_cluster();
                Ok(format!("restarted {restarted:?}"))
            }
            Action::Rebalance => {
                let opts = RecoverOptions {
                    rebalance: true,
                    ..Default::default()
                };
                driver::recoverseg(client, hosts, &opts)
                    .await
                    .map(|o| format!("{o:?}"))
            }
            Action::Recover { full } => {
                let opts = RecoverOptions {
                    full: *full,
                    ..Default::default()
                };
                match driver::recoverseg(client, hosts, &opts).await {
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
                    Err(e) => Err(e),
                }
            }
        };
        tracing::info!(?action, ?outcome, "operator acted");
        self.log.push((action.clone(), outcome.clone()));
        Some((action, outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::catalog::{Role, SegmentConfig};

    fn row(dbid: Dbid, content: Content, role: Role, host: &str) -> SegmentConfig {
        SegmentConfig {
            dbid,
            content,
            role,
            preferred_role: role,
            mode: Mode::Synced,
            status: Status::Up,
            hostname: host.into(),
            address: host.into(),
            port: 6000,
            datadir: format!("/d/{dbid}"),
        }
    }

    fn pair() -> Catalog {
        Catalog::new(vec![
            row(2, 0, Role::Primary, "sdw1"),
            row(3, 0, Role::Mirror, "sdw2"),
        ])
    }

    fn obs(cat: &Catalog, down: &[&str]) -> Observed {
        Observed {
            catalog: cat.clone(),
            down_hosts: down.iter().map(|s| s.to_string()).collect(),
            not_operational: None,
        }
    }

    #[test]
    fn recovers_once_the_host_is_back_then_rebalances_once_synchronized() {
        let mut op = Operator::new();
        let mut cat = pair();
        // Failover: dbid 3 acts as primary, dbid 2 down.
        for (dbid, role, status) in [
            (2, Role::Mirror, Status::Down),
            (3, Role::Primary, Status::Up),
        ] {
            let r = cat.segments.get_mut(&dbid).unwrap();
            r.role = role;
            r.status = status;
            r.mode = Mode::NotSynced;
        }
        assert_eq!(op.decide(&obs(&cat, &["sdw1"])), None, "host still down");
        assert_eq!(
            op.decide(&obs(&cat, &[])),
            Some(Action::Recover { full: false })
        );
        op.failed_incremental.insert(2);
        assert_eq!(
            op.decide(&obs(&cat, &[])),
            Some(Action::Recover { full: true })
        );
        for r in cat.segments.values_mut() {
            r.status = Status::Up;
            r.mode = Mode::Synced;
        }
        assert_eq!(op.decide(&obs(&cat, &[])), Some(Action::Rebalance));
        assert_eq!(op.decide(&obs(&pair(), &[])), None, "nothing to do");
    }

    #[test]
    fn a_double_fault_waits_for_its_hosts_then_restarts() {
        let mut op = Operator::new();
        let mut cat = pair();
        for r in cat.segments.values_mut() {
            r.mode = Mode::NotSynced;
        }
        cat.segments.get_mut(&3).unwrap().status = Status::Down;
        assert_eq!(op.decide(&obs(&cat, &["sdw1", "sdw2"])), None);
        assert_eq!(op.decide(&obs(&cat, &["sdw2"])), None);
        assert_eq!(op.decide(&obs(&cat, &[])), Some(Action::Restart));
        assert_eq!(
            op.decide(&obs(&cat, &[])),
            Some(Action::Recover { full: false })
        );
    }
}
