//! The operator: what the seeds tell an administrator to do, as an agent the simulator can run
//! between faults. Seed 002: run `recoverseg` once failed hosts are back; a full copy (`-F`)
//! when incremental recovery cannot be done; `recoverseg -r` once every pair is Synchronized
//! and some instance is not in its preferred role; after a double fault (or a failed
//! unmirrored segment) restart the cluster once its hosts are back, then `recoverseg`.
//!
//! With a standby coordinator (seed 000, "Failing Over to a Standby Master"): when the acting
//! coordinator's host is down and the standby was Synchronized when last seen,
//! `activate-standby` (starting the standby first if its process is not running, as
//! gpactivatestandby `-f` does). A careful operator fences the lost coordinator first, so its
//! host boots without it; one who follows the README's way back does not: when the host
//! returns (or the cluster is restarted from its files) the old coordinator starts again, and
//! the cluster's own fence must keep it from acting. Which one acts is drawn per look
//! ([`Operator::fence_before_activation`]). Once a host for a standby is free (the failed
//! coordinator's, back up), `init-standby -s HOST` (stopping the old coordinator there first,
//! if it runs); a standby that is configured but not running (its host restarted),
//! `init-standby -n`. The coordinator rules apply at once, even
//! while faults are still being injected; the segment rules wait until every fault healed
//! ([`Operator::faults_running`]). A standby last seen Not Synchronized is never activated (it
//! may lack commits the coordinator acknowledged alone): the operator waits for the
//! coordinator's host to come back instead, as without a standby.
//!
//! [`Operator::decide`] is pure (a function of what the operator observes and remembers);
//! [`Operator::act`] observes the world, decides, and carries the action out.
//!
//! The rooms: the rules (here, [`Operator::decide`]), carrying them out (`act`), the standby
//! verbs and the operator's watch during faults ([`standby`]), and the harness the verbs run
//! through ([`harness`]: the world as the admin utilities' hosts).

mod act;
pub mod harness;
pub mod standby;

pub use act::activate;

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use cluster::model::catalog::{Catalog, Content, Dbid, Mode, SegmentConfig, Status};
use cluster::standby::{MirroringStatus, SummaryState};

/// What the operator sees when it looks.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The segment configuration (`state`), when the acting coordinator answered.
    pub catalog: Option<Catalog>,
    /// Hosts that are down (the operator can ping them).
    pub down_hosts: BTreeSet<String>,
    /// Segment instances whose process stopped itself on a host that is up (`state` shows
    /// their postmaster not running).
    pub stopped_instances: BTreeSet<Dbid>,
    /// An unmirrored content whose primary is lost (`state -e`: not operational).
    pub not_operational: Option<Content>,
    /// The coordinator and its standby, in a cluster with a standby host.
    pub coordinator: Option<CoordinatorObserved>,
}

/// What the operator sees of the coordinator and its standby.
#[derive(Clone, Debug, Default)]
pub struct CoordinatorObserved {
    /// The hosts that can hold a coordinator or a standby (`mdw`, `smdw`).
    pub hosts: Vec<String>,
    /// The acting coordinator's host.
    pub acting_host: String,
    /// The acting coordinator was fenced for an activation whose outcome is not known yet:
    /// it is lost as if its host were down.
    pub acting_fenced: bool,
    /// The acting coordinator's process stopped on a host that is up (it refused to start:
    /// its catalog is damaged): lost as if its host were down.
    pub acting_stopped: bool,
    /// The mirroring view (`state -f`), when the acting coordinator answered.
    pub mirroring: Option<MirroringStatus>,
    /// Whether a standby process answers at the known standby's address.
    pub standby_running: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `recoverseg` (`full`: `-F`).
    Recover { full: bool },
    /// `recoverseg -r`.
    Rebalance,
    /// `restart` (gpstop -r).
    Restart,
    /// `activate-standby` on the standby `standby` (its process started first when `start`:
    /// gpactivatestandby `-f`), the lost coordinator on `from` fenced first when `fence`.
    ActivateStandby {
        from: String,
        standby: Box<SegmentConfig>,
        start: bool,
        fence: bool,
    },
    /// `init-standby -s HOST`.
    InitStandby { host: String },
    /// `init-standby -n`, for the standby on `host`.
    ResyncStandby { host: String },
    /// `init-standby -r`: the standby on `host` is removed from the cluster (its data left in
    /// place), to be made anew with `-s`.
    RemoveStandby { host: String },
}

impl Action {
    /// The utility as an administrator types it.
    pub fn command(&self) -> String {
        match self {
            Action::Recover { full: false } => "recoverseg".into(),
            Action::Recover { full: true } => "recoverseg -F".into(),
            Action::Rebalance => "recoverseg -r".into(),
            Action::Restart => "restart".into(),
            Action::ActivateStandby { start: false, .. } => "activate-standby".into(),
            Action::ActivateStandby { start: true, .. } => "activate-standby -f".into(),
            Action::InitStandby { host } => format!("init-standby -s {host}"),
            Action::ResyncStandby { .. } => "init-standby -n".into(),
            Action::RemoveStandby { .. } => "init-standby -r".into(),
        }
    }
}

/// The operator's memory between looks.
#[derive(Clone, Debug, Default)]
pub struct Operator {
    /// Contents seen with both halves down, waiting for their hosts.
    double_faulted: BTreeSet<Content>,
    /// `recoverseg` refused, saying only a restart of the cluster brings a content back (its
    /// acting primary stopped itself while its mirror was down: no host is down to wait for).
    restart_advised: bool,
    /// An `activate-standby` that failed without saying nothing changed (its answer lost): the
    /// standby may be the coordinator by its own catalog. While the acting coordinator does
    /// not answer, it is asked again (a standby already activated is then started as the
    /// coordinator); settled once either answers.
    activation_unsettled: Option<Action>,
    /// Instances whose incremental recovery failed: next time, a full copy.
    failed_incremental: BTreeSet<Dbid>,
    /// The host of a standby that `init-standby -n` failed to bring back (its data refused to
    /// start): next time it is removed and made anew.
    failed_resync: Option<String>,
    /// The standby as last seen in the mirroring view, and whether it was Synchronized then.
    standby: Option<(SegmentConfig, bool)>,
    /// The acting coordinator's host was seen down and nothing was activated: once it is back,
    /// its restarted coordinator streams to the standby anew, and the standby counts as
    /// Synchronized only when the coordinator says so again.
    coordinator_seen_down: bool,
    /// Faults are still being injected: only the coordinator rules apply.
    pub faults_running: bool,
    /// Fence a lost coordinator before activating its standby (the careful procedure); off,
    /// the README's way: nothing keeps the old coordinator from starting again.
    pub fence_before_activation: bool,
    /// How long `init-standby` waits for Synchronized.
    pub standby_wait: Option<Duration>,
    /// Actions taken, in order, with their outcome.
    pub log: Vec<(Action, Result<String, String>)>,
}

impl Operator {
    pub fn new() -> Operator {
        Operator::default()
    }

    /// The next action, if any.
    pub fn decide(&mut self, obs: &Observed) -> Option<Action> {
        if let Some(c) = &obs.coordinator {
            if let Some(action) = self.decide_coordinator(c, &obs.down_hosts) {
                return action;
            }
        }
        if self.faults_running {
            return None;
        }
        let cat = obs.catalog.as_ref()?;
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
        if !self.double_faulted.is_empty() || self.restart_advised {
            if self.double_faulted.iter().any(waiting_for_hosts) {
                return None;
            }
            self.double_faulted.clear();
            self.restart_advised = false;
            return Some(Action::Restart);
        }
        if let Some(content) = obs.not_operational {
            let host = cat.pair(content).map(|p| p.primary.hostname);
            if host.is_some_and(|h| !obs.down_hosts.contains(&h)) {
                return Some(Action::Restart);
            }
            return None;
        }
        // An acting primary that stopped itself while its mirror is not in sync: the prober
        // cannot fail over, and nothing in the catalog is down for recoverseg. The cluster is
        // restarted (the instance recovers from its WAL), as for a double fault.
        let stuck = cat.pairs().iter().any(|p| {
            obs.stopped_instances.contains(&p.primary.dbid)
                && p.primary.status == Status::Up
                && p.primary.mode != Mode::Synced
        });
        if stuck {
            return Some(Action::Restart);
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

    fn forget_standby_synchronized(&mut self) {
        if let Some((_, synchronized)) = &mut self.standby {
            *synchronized = false;
        }
    }

    /// The coordinator rules: `Some(decision)` when they decide (an action, or to wait with
    /// nothing else done), `None` to go on to the segment rules.
    fn decide_coordinator(
        &mut self,
        c: &CoordinatorObserved,
        down: &BTreeSet<String>,
    ) -> Option<Option<Action>> {
        // Lost as if its host were down, too, while fenced for an activation not yet settled,
        // and when it refused to start (an activation not yet settled is asked again below).
        let coordinator_down = down.contains(&c.acting_host)
            || c.acting_fenced
            || (c.acting_stopped && self.activation_unsettled.is_none());
        if !coordinator_down && std::mem::take(&mut self.coordinator_seen_down) {
            self.forget_standby_synchronized();
        }
        if let Some(m) = &c.mirroring {
            self.standby = m
                .standby
                .clone()
                .map(|row| (row, m.summary_state == SummaryState::Synchronized));
        }
        if coordinator_down {
            self.coordinator_seen_down = true;
            // The coordinator is lost: activate a standby that was Synchronized, on a host
            // that is up; otherwise wait for the coordinator's host to come back.
            return Some(match &self.standby {
                Some((row, true)) if !down.contains(&row.hostname) => {
                    Some(Action::ActivateStandby {
                        from: c.acting_host.clone(),
                        standby: Box::new(row.clone()),
                        start: !c.standby_running,
                        fence: self.fence_before_activation,
                    })
                }
                _ => None,
            });
        }
        let Some(m) = c.mirroring.as_ref() else {
            // The coordinator's host is up, yet it does not answer: after an activation whose
            // outcome is unknown, the standby may be the coordinator (the old one, deposed,
            // exits): ask again, starting it if its process does not run.
            return match self.activation_unsettled.clone() {
                Some(Action::ActivateStandby {
                    from,
                    standby,
                    fence,
                    ..
                }) if !down.contains(&standby.hostname) => Some(Some(Action::ActivateStandby {
                    from,
                    standby,
                    start: !c.standby_running,
                    fence,
                })),
                _ => None,
            };
        };
        self.activation_unsettled = None;
        match (&m.summary_state, &m.standby) {
            (SummaryState::NotConfigured, _) => {
                let free = c
                    .hosts
                    .iter()
                    .find(|h| **h != c.acting_host && !down.contains(*h))?;
                Some(Some(Action::InitStandby { host: free.clone() }))
            }
            (SummaryState::NotSynchronized, Some(row))
                if !c.standby_running && !down.contains(&row.hostname) =>
            {
                let host = row.hostname.clone();
                Some(Some(if self.failed_resync.as_ref() == Some(&host) {
                    Action::RemoveStandby { host }
                } else {
                    Action::ResyncStandby { host }
                }))
            }
            _ => None,
        }
    }
}

/// One action of the operator agent.
#[derive(Clone, Debug, Serialize)]
pub struct OperatorAction {
    /// Simulated ms since the run began.
    pub at_ms: u64,
    /// The utility as an administrator types it (`recoverseg -r`).
    pub command: String,
    pub ok: bool,
    /// What the utility reported, or its error.
    pub outcome: String,
}

impl OperatorAction {
    pub fn new(at_ms: u64, action: &Action, outcome: Result<String, String>) -> OperatorAction {
        OperatorAction {
            at_ms,
            command: action.command(),
            ok: outcome.is_ok(),
            outcome: outcome.unwrap_or_else(|e| e).trim().replace('\n', "; "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::model::catalog::Role;

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
            catalog: Some(cat.clone()),
            down_hosts: down.iter().map(|s| s.to_string()).collect(),
            not_operational: None,
            stopped_instances: BTreeSet::new(),
            coordinator: None,
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

    /// Standard seed 250: the acting primary stopped itself (a failed fsync) while its mirror's
    /// host was down; every host came back, and `recoverseg` refused, advising a restart. The
    /// operator restarts, then recovers, instead of asking `recoverseg` again until the end.
    #[test]
    fn a_refusal_advising_a_restart_is_followed_by_a_restart() {
        let mut op = Operator::new();
        let mut cat = pair();
        cat.segments.get_mut(&3).unwrap().status = Status::Down;
        assert_eq!(
            op.decide(&obs(&cat, &[])),
            Some(Action::Recover { full: false })
        );
        op.restart_advised = true;
        assert_eq!(op.decide(&obs(&cat, &[])), Some(Action::Restart));
        assert_eq!(
            op.decide(&obs(&cat, &[])),
            Some(Action::Recover { full: false })
        );
    }

    /// Standard seed 1303: the promoted primary stopped itself (a failed fsync) while its old
    /// primary was still resynchronizing; nothing in the catalog was down, and the content
    /// served nothing until the end. The operator restarts the cluster; with its mirror in
    /// sync it leaves the failover to the prober.
    #[test]
    fn an_acting_primary_stopped_with_its_mirror_out_of_sync_is_restarted() {
        let mut op = Operator::new();
        let mut cat = pair();
        let mut seen = obs(&cat, &[]);
        seen.stopped_instances.insert(2);
        assert_eq!(op.decide(&seen), None, "in sync: the prober fails it over");
        cat.segments.get_mut(&2).unwrap().mode = Mode::NotSynced;
        cat.segments.get_mut(&3).unwrap().mode = Mode::NotSynced;
        let mut seen = obs(&cat, &[]);
        seen.stopped_instances.insert(2);
        assert_eq!(op.decide(&seen), Some(Action::Restart));
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

    fn standby_row(dbid: Dbid, host: &str) -> SegmentConfig {
        SegmentConfig {
            content: -1,
            ..row(dbid, -1, Role::Mirror, host)
        }
    }

    fn mirroring(state: SummaryState, standby: Option<SegmentConfig>) -> MirroringStatus {
        MirroringStatus {
            summary_state: state,
            detail_state: String::new(),
            log_time_ms: None,
            error_message: None,
            standby,
            coordinator_flushed_lsn: 0,
            standby_flushed_lsn: 0,
        }
    }

    /// A look at a cluster with coordinator hosts `mdw` and `smdw`: the coordinator acts on
    /// `acting`; `mirroring` is what it answered (`None`: it did not).
    fn look(
        acting: &str,
        mirroring: Option<MirroringStatus>,
        standby_running: bool,
        down: &[&str],
    ) -> Observed {
        Observed {
            catalog: mirroring.as_ref().map(|_| pair()),
            down_hosts: down.iter().map(|s| s.to_string()).collect(),
            not_operational: None,
            stopped_instances: BTreeSet::new(),
            coordinator: Some(CoordinatorObserved {
                hosts: vec!["mdw".into(), "smdw".into()],
                acting_host: acting.into(),
                acting_fenced: false,
                acting_stopped: false,
                mirroring,
                standby_running,
            }),
        }
    }

    /// Standard seed 1013: an activation took over but its answer was lost twice; the old
    /// coordinator's host came back and its coordinator exited, deposed. Its host is up and it
    /// does not answer: the unsettled activation is asked again (the standby, whose catalog
    /// names it the coordinator, is then started as one). Once a coordinator answers, settled.
    #[test]
    fn an_activation_whose_answer_was_lost_is_asked_again_while_no_coordinator_answers() {
        let mut op = Operator::new();
        let smdw = standby_row(18, "smdw");
        let attempt = Action::ActivateStandby {
            from: "mdw".into(),
            standby: Box::new(smdw.clone()),
            start: false,
            fence: false,
        };
        op.activation_unsettled = Some(attempt);
        assert_eq!(
            op.decide(&look("mdw", None, false, &[])),
            Some(Action::ActivateStandby {
                from: "mdw".into(),
                standby: Box::new(smdw.clone()),
                start: true,
                fence: false,
            })
        );
        assert_eq!(op.decide(&look("mdw", None, false, &["smdw"])), None);
        let synced = mirroring(SummaryState::Synchronized, Some(smdw));
        assert_eq!(op.decide(&look("mdw", Some(synced), true, &[])), None);
        assert_eq!(op.activation_unsettled, None);
    }

    #[test]
    fn a_lost_coordinator_is_replaced_by_its_synchronized_standby_then_a_new_standby_follows() {
        let mut op = Operator::new();
        op.faults_running = true;
        let smdw = standby_row(18, "smdw");
        let synced = mirroring(SummaryState::Synchronized, Some(smdw.clone()));
        assert_eq!(op.decide(&look("mdw", Some(synced), true, &[])), None);
        // The coordinator's host is down: the standby, Synchronized when last seen, is
        // activated (its process runs: no start).
        let lost = look("mdw", None, true, &["mdw"]);
        let activate = Action::ActivateStandby {
            from: "mdw".into(),
            standby: Box::new(smdw.clone()),
            start: false,
            fence: false,
        };
        assert_eq!(op.decide(&lost), Some(activate));
        assert_eq!(op.decide(&lost).unwrap().command(), "activate-standby");
        // Its process stopped (its host lost power too and came back): start it first.
        let stopped = look("mdw", None, false, &["mdw"]);
        assert_eq!(
            op.decide(&stopped),
            Some(Action::ActivateStandby {
                from: "mdw".into(),
                standby: Box::new(smdw.clone()),
                start: true,
                fence: false,
            })
        );
        // A careful operator fences the lost coordinator first.
        op.fence_before_activation = true;
        assert!(matches!(
            op.decide(&stopped),
            Some(Action::ActivateStandby { fence: true, .. })
        ));
        op.fence_before_activation = false;
        // Its host is down as well: nothing to activate, wait for a host.
        assert_eq!(op.decide(&look("mdw", None, false, &["mdw", "smdw"])), None);
        // Activated: the coordinator acts on smdw, no standby is configured. While mdw is
        // down there is nowhere to put one; once it is back, `init-standby -s mdw`.
        op.standby = None;
        let none = mirroring(SummaryState::NotConfigured, None);
        assert_eq!(
            op.decide(&look("smdw", Some(none.clone()), false, &["mdw"])),
            None
        );
        let init = op.decide(&look("smdw", Some(none), false, &[]));
        assert_eq!(init, Some(Action::InitStandby { host: "mdw".into() }));
        assert_eq!(init.unwrap().command(), "init-standby -s mdw");
    }

    #[test]
    fn a_standby_last_seen_not_synchronized_is_never_activated() {
        let mut op = Operator::new();
        op.faults_running = true;
        let smdw = standby_row(18, "smdw");
        let behind = mirroring(SummaryState::NotSynchronized, Some(smdw.clone()));
        // It catches up by itself while it runs: nothing to do.
        assert_eq!(op.decide(&look("mdw", Some(behind), true, &[])), None);
        // The coordinator is lost while the standby may lack what it acknowledged alone: wait
        // for the coordinator's host, as without a standby.
        assert_eq!(op.decide(&look("mdw", None, true, &["mdw"])), None);
        // Without any standby, too.
        let mut alone = Operator::new();
        let none = mirroring(SummaryState::NotConfigured, None);
        assert_eq!(
            alone.decide(&look("mdw", Some(none), false, &["smdw"])),
            None
        );
        assert_eq!(alone.decide(&look("mdw", None, false, &["mdw"])), None);
    }

    /// An operator that saw the standby on `smdw` Synchronized, during the fault phase.
    fn saw_synchronized() -> Operator {
        let mut op = Operator::new();
        op.faults_running = true;
        let synced = mirroring(SummaryState::Synchronized, Some(standby_row(18, "smdw")));
        assert_eq!(op.decide(&look("mdw", Some(synced), true, &[])), None);
        op
    }

    fn activates(action: Option<Action>) -> bool {
        matches!(action, Some(Action::ActivateStandby { .. }))
    }

    /// A standby whose host went down in the middle of its activation (the coordinator already
    /// lost, so nothing was committed without it) is activated again once its host is back.
    #[test]
    fn a_standby_lost_in_the_middle_of_its_activation_is_activated_again() {
        let mut op = saw_synchronized();
        assert!(activates(op.decide(&look("mdw", None, true, &["mdw"]))));
        assert_eq!(op.decide(&look("mdw", None, false, &["mdw", "smdw"])), None);
        assert!(matches!(
            op.decide(&look("mdw", None, false, &["mdw"])),
            Some(Action::ActivateStandby { start: true, .. })
        ));
    }

    /// A coordinator seen down and then back up restarted: it streams to its standby anew and
    /// may commit before the standby has caught up, so an older Synchronized no longer counts.
    #[test]
    fn a_coordinator_seen_down_and_back_needs_a_new_look_at_its_standby() {
        let mut op = saw_synchronized();
        // Seen down: the activation is tried (and, say, fails: the coordinator stays mdw).
        assert!(activates(op.decide(&look("mdw", None, true, &["mdw"]))));
        // Back up, not answering yet; then down again: the old look no longer counts.
        assert_eq!(op.decide(&look("mdw", None, true, &[])), None);
        assert_eq!(op.decide(&look("mdw", None, true, &["mdw"])), None);
    }

    #[test]
    fn a_configured_standby_that_does_not_run_is_resynchronized() {
        let mut op = Operator::new();
        op.faults_running = true;
        let smdw = standby_row(18, "smdw");
        let stale = mirroring(SummaryState::NotSynchronized, Some(smdw.clone()));
        assert_eq!(
            op.decide(&look("mdw", Some(stale.clone()), false, &["smdw"])),
            None,
            "its host is down"
        );
        let resync = op.decide(&look("mdw", Some(stale), false, &[]));
        assert_eq!(
            resync,
            Some(Action::ResyncStandby {
                host: "smdw".into()
            })
        );
        assert_eq!(resync.unwrap().command(), "init-standby -n");
    }

    /// A coordinator that refused to start on its damaged catalog, its host up, is lost as if
    /// its host were down: its standby, Synchronized when last seen, is activated.
    #[test]
    fn a_coordinator_that_refuses_to_start_is_replaced_by_its_synchronized_standby() {
        let mut op = saw_synchronized();
        let mut refused = look("mdw", None, true, &[]);
        assert_eq!(
            op.clone().decide(&refused),
            None,
            "not answering is not lost"
        );
        if let Some(c) = refused.coordinator.as_mut() {
            c.acting_stopped = true;
        }
        assert!(activates(op.decide(&refused)));
        // A standby last seen behind is not activated for it either.
        let mut behind = Operator::new();
        let stale = mirroring(SummaryState::NotSynchronized, Some(standby_row(18, "smdw")));
        assert_eq!(behind.decide(&look("mdw", Some(stale), true, &[])), None);
        assert_eq!(behind.decide(&refused), None);
    }

    /// A standby that `init-standby -n` could not bring back (its data refuses to start) is
    /// removed with `-r`, then made anew with `-s` on its host.
    #[test]
    fn a_standby_that_resynchronizing_cannot_bring_back_is_removed_then_made_anew() {
        let mut op = Operator::new();
        op.faults_running = true;
        let smdw = standby_row(18, "smdw");
        let stale = mirroring(SummaryState::NotSynchronized, Some(smdw));
        let resync = Action::ResyncStandby {
            host: "smdw".into(),
        };
        assert_eq!(
            op.decide(&look("mdw", Some(stale.clone()), false, &[])),
            Some(resync)
        );
        op.failed_resync = Some("smdw".into());
        let remove = op.decide(&look("mdw", Some(stale), false, &[]));
        assert_eq!(
            remove,
            Some(Action::RemoveStandby {
                host: "smdw".into()
            })
        );
        assert_eq!(remove.unwrap().command(), "init-standby -r");
        let none = mirroring(SummaryState::NotConfigured, None);
        assert_eq!(
            op.decide(&look("mdw", Some(none), false, &[])),
            Some(Action::InitStandby {
                host: "smdw".into()
            })
        );
    }

    #[test]
    fn segment_rules_wait_until_the_faults_stop() {
        let mut op = Operator::new();
        op.faults_running = true;
        let mut cat = pair();
        let r = cat.segments.get_mut(&2).unwrap();
        r.status = Status::Down;
        let synced = mirroring(SummaryState::Synchronized, Some(standby_row(18, "smdw")));
        let mut o = look("mdw", Some(synced), true, &[]);
        o.catalog = Some(cat);
        assert_eq!(op.decide(&o), None, "faults still running");
        op.faults_running = false;
        assert_eq!(op.decide(&o), Some(Action::Recover { full: false }));
    }
}
