//! Fault detection (FTS): the prober's decision table as a pure function. The coordinator's
//! driver probes primaries and carries decisions out ([`crate::coordinator::prober`]).
//!
//! Decisions per content, after probing its acting primary (retries included):
//! - primary answers, mirror up and in sync, catalog agrees: nothing;
//! - primary answers and reports a state the catalog lacks (mirror back in sync): record it;
//! - primary answers, mirror gone and past the grace period: mark the mirror down, both rows mode
//!   n, then tell the primary to stop waiting for it (it keeps what the mirror lacks);
//! - primary answers but asks for a retry (mirror gone within the grace period): probe again;
//! - the answer comes from a mirror (a promotion was lost): send PROMOTE again;
//! - primary unreachable, but it is only starting up and its replay is advancing: nothing
//!   ([`restart_outcome`]: the replay LSN must move between two "starting" answers, and only
//!   so many answers in a row are tolerated);
//! - primary unreachable, mirror in sync per the catalog: record the role flip first, then PROMOTE;
//! - primary unreachable, mirror not in sync: no promotion; the content is down (double fault).

use crate::model::bugs::PlantedBugs;
use crate::model::catalog::{Mode, Pair, Role, RowChange, Status};
use crate::wire::ProbeReply;

/// The outcome of probing one primary, all retries spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    Answered(ProbeReply),
    /// The instance answered that it is starting or recovering, and its replay LSN moved since
    /// the previous probe: it is restarting, not dead.
    Restarting,
    Unreachable,
}

/// What the prober remembers of a primary's "starting" answers in a row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restart {
    /// "Starting" answers in a row; 0 once the primary answers a probe or is unreachable.
    pub answers: u32,
    /// The replay LSN of the last "starting" answer.
    pub replay_lsn: Option<crate::wal::Lsn>,
}

/// The prober's rule for a primary that answers "starting" (a postmaster in crash recovery):
/// it is restarting, not dead, while its replay LSN moved since the previous answer (the first
/// answer counts as movement) and it has not answered "starting" more than `answers_max` times
/// in a row. Otherwise it counts as unreachable, and the decision table may fail it over.
/// Returns the outcome and what to remember for the next answer.
pub fn restart_outcome(
    previous: Restart,
    replay_lsn: crate::wal::Lsn,
    answers_max: u32,
) -> (ProbeOutcome, Restart) {
    restart_outcome_with(previous, replay_lsn, answers_max, PlantedBugs::default())
}

/// [`restart_outcome`], with planted bugs.
pub fn restart_outcome_with(
    previous: Restart,
    replay_lsn: crate::wal::Lsn,
    answers_max: u32,
    bugs: PlantedBugs,
) -> (ProbeOutcome, Restart) {
    let now = Restart {
        answers: previous.answers.saturating_add(1),
        replay_lsn: Some(replay_lsn),
    };
    let advancing = if bugs.first_starting_answer_counts_as_stalled {
        previous
            .replay_lsn
            .is_some_and(|before| replay_lsn > before)
    } else {
        previous.replay_lsn.is_none_or(|before| replay_lsn > before)
    };
    let outcome = if advancing && now.answers <= answers_max {
        ProbeOutcome::Restarting
    } else {
        ProbeOutcome::Unreachable
    };
    (outcome, now)
}

/// A decision of the prober for one content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    ProbeAgain,
    /// Record the changes in the catalog (one transaction, with history rows); nothing to send.
    Record(Vec<RowChange>),
    /// Record the mirror down, then send SYNCREP_OFF to the primary.
    MarkMirrorDown(Vec<RowChange>),
    /// Record the role flip first, then send PROMOTE to the mirror.
    Promote(Vec<RowChange>),
    /// Send PROMOTE again to the instance that answered as a mirror.
    ResendPromote,
    /// Primary gone and mirror not in sync: no promotion, the content is down.
    DoubleFault,
}

fn change(dbid: crate::model::catalog::Dbid, role: Role, status: Status, mode: Mode) -> RowChange {
    RowChange {
        dbid,
        role,
        status,
        mode,
    }
}

/// Decides what to do for one content. Pure: a function of the catalog's view of the pair and
/// the probe's outcome.
pub fn decide(pair: &Pair, outcome: ProbeOutcome) -> Decision {
    decide_with(pair, outcome, PlantedBugs::none())
}

/// [`decide`], with planted bugs (the simulator's way to prove its checkers fire).
pub fn decide_with(pair: &Pair, outcome: ProbeOutcome, bugs: PlantedBugs) -> Decision {
    let Some(mirror) = &pair.mirror else {
        return Decision::Nothing; // unmirrored contents are not probed
    };
    let primary = &pair.primary;
    match outcome {
        ProbeOutcome::Restarting => Decision::Nothing,
        ProbeOutcome::Answered(reply) if reply.is_mirror => Decision::ResendPromote,
        ProbeOutcome::Answered(reply) => {
            if reply.mirror_up && reply.in_sync {
                let wanted = [(primary, Role::Primary), (mirror, Role::Mirror)];
                if wanted
                    .iter()
                    .all(|(row, _)| row.status == Status::Up && row.mode == Mode::Synced)
                {
                    return Decision::Nothing;
                }
                return Decision::Record(
                    wanted
                        .iter()
                        .map(|(row, role)| RowChange {
                            dbid: row.dbid,
                            role: *role,
                            status: Status::Up,
                            mode: Mode::Synced,
                        })
                        .collect(),
                );
            }
            if reply.mirror_up {
                // Catching up: up but not yet in sync. The pair stays mode n.
                if mirror.status == Status::Up
                    && mirror.mode == Mode::NotSynced
                    && primary.mode == Mode::NotSynced
                {
                    return Decision::Nothing;
                }
                return Decision::Record(vec![
                    change(primary.dbid, Role::Primary, Status::Up, Mode::NotSynced),
                    change(mirror.dbid, Role::Mirror, Status::Up, Mode::NotSynced),
                ]);
            }
            if reply.request_retry {
                return Decision::ProbeAgain;
            }
            let changes = vec![
                change(primary.dbid, Role::Primary, Status::Up, Mode::NotSynced),
                change(mirror.dbid, Role::Mirror, Status::Down, Mode::NotSynced),
            ];
            if mirror.status == Status::Down && primary.mode == Mode::NotSynced {
                if reply.syncrep_enabled {
                    // The catalog already says down, but the primary still waits: tell it again.
                    return Decision::MarkMirrorDown(Vec::new());
                }
                return Decision::Nothing;
            }
            Decision::MarkMirrorDown(changes)
        }
        ProbeOutcome::Unreachable => {
            if (mirror.mode == Mode::Synced && mirror.status == Status::Up)
                || bugs.promote_unsynced_mirror
            {
                Decision::Promote(vec![
                    change(primary.dbid, Role::Mirror, Status::Down, Mode::NotSynced),
                    change(mirror.dbid, Role::Primary, Status::Up, Mode::NotSynced),
                ])
            } else {
                Decision::DoubleFault
            }
        }
    }
}

/// Whether a decision may still be recorded, given `recoveries` (how often recoverseg began or
/// ended a recovery of the content: `then` when the decision's probe round began, `now`) and
/// the instances being recovered now. A recovery cuts or wipes an instance's WAL, so a probe
/// answered before it began or ended no longer describes the instance; and an instance under
/// recovery is in sync only once the recovery has recorded it. Marking it down stays allowed,
/// so that its primary stops waiting for it. `Err` says why not.
pub fn recordable(
    changes: &[RowChange],
    recoveries_then: u64,
    recoveries_now: u64,
    recovering: &std::collections::BTreeSet<crate::model::catalog::Dbid>,
) -> Result<(), String> {
    if recoveries_then != recoveries_now {
        return Err("recoverseg began or ended a recovery since the decision".into());
    }
    match changes
        .iter()
        .find(|c| recovering.contains(&c.dbid) && c.mode == Mode::Synced)
    {
        Some(c) => Err(format!(
            "dbid {} is being recovered: it is in sync once the recovery is done",
            c.dbid
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::tests::{row, synced_pair};
    use crate::model::catalog::Catalog;

    fn pair(cat: &Catalog) -> Pair {
        cat.pair(0).unwrap()
    }

    fn reply(mirror_up: bool, in_sync: bool, syncrep: bool, retry: bool) -> ProbeOutcome {
        ProbeOutcome::Answered(ProbeReply {
            is_mirror: false,
            mirror_up,
            in_sync,
            syncrep_enabled: syncrep,
            request_retry: retry,
        })
    }

    fn after(cat: &Catalog, decision: &Decision) -> Catalog {
        let mut cat = cat.clone();
        let changes = match decision {
            Decision::Record(c) | Decision::MarkMirrorDown(c) | Decision::Promote(c) => c.clone(),
            _ => Vec::new(),
        };
        cat.apply(&changes).unwrap();
        cat.check().unwrap();
        cat
    }

    #[test]
    fn primary_up_and_mirror_in_sync_changes_nothing() {
        assert_eq!(
            decide(&pair(&synced_pair()), reply(true, true, true, false)),
            Decision::Nothing
        );
    }

    #[test]
    fn mirror_gone_within_the_grace_period_is_probed_again() {
        assert_eq!(
            decide(&pair(&synced_pair()), reply(false, false, true, true)),
            Decision::ProbeAgain
        );
    }

    #[test]
    fn mirror_gone_past_the_grace_period_is_marked_down_with_both_rows_mode_n() {
        let cat = synced_pair();
        let d = decide(&pair(&cat), reply(false, false, true, false));
        assert!(matches!(d, Decision::MarkMirrorDown(ref c) if c.len() == 2));
        let cat = after(&cat, &d);
        let p = pair(&cat);
        assert_eq!(
            (p.primary.mode, p.primary.status),
            (Mode::NotSynced, Status::Up)
        );
        let m = p.mirror.unwrap();
        assert_eq!(
            (m.mode, m.status, m.role),
            (Mode::NotSynced, Status::Down, Role::Mirror)
        );
    }

    #[test]
    fn a_primary_still_waiting_for_a_mirror_already_marked_down_is_told_again() {
        let cat = after(
            &synced_pair(),
            &decide(&pair(&synced_pair()), reply(false, false, true, false)),
        );
        assert_eq!(
            decide(&pair(&cat), reply(false, false, true, false)),
            Decision::MarkMirrorDown(Vec::new())
        );
        assert_eq!(
            decide(&pair(&cat), reply(false, false, false, false)),
            Decision::Nothing
        );
    }

    #[test]
    fn a_mirror_back_and_catching_up_is_recorded_up_not_in_sync_then_in_sync() {
        let down = after(
            &synced_pair(),
            &decide(&pair(&synced_pair()), reply(false, false, true, false)),
        );
        let d = decide(&pair(&down), reply(true, false, true, false));
        let catching_up = after(&down, &d);
        let m = pair(&catching_up).mirror.unwrap();
        assert_eq!((m.status, m.mode), (Status::Up, Mode::NotSynced));
        assert_eq!(
            decide(&pair(&catching_up), reply(true, false, true, false)),
            Decision::Nothing
        );
        let synced = after(
            &catching_up,
            &decide(&pair(&catching_up), reply(true, true, true, false)),
        );
        assert_eq!(synced.segments, synced_pair().segments);
    }

    #[test]
    fn primary_unreachable_and_mirror_in_sync_flips_roles_before_promoting() {
        let cat = synced_pair();
        let d = decide(&pair(&cat), ProbeOutcome::Unreachable);
        let Decision::Promote(changes) = &d else {
            panic!("expected promote, got {d:?}")
        };
        assert!(changes.contains(&RowChange {
            dbid: 3,
            role: Role::Primary,
            status: Status::Up,
            mode: Mode::NotSynced
        }));
        assert!(changes.contains(&RowChange {
            dbid: 2,
            role: Role::Mirror,
            status: Status::Down,
            mode: Mode::NotSynced
        }));
        let cat = after(&cat, &d);
        assert_eq!(pair(&cat).primary.dbid, 3);
        assert_eq!(
            cat.segments[&3].preferred_role,
            Role::Mirror,
            "FTS never changes preferred_role"
        );
    }

    #[test]
    fn primary_unreachable_and_mirror_not_in_sync_is_a_double_fault() {
        let cat = Catalog::new(vec![
            row(2, 0, Role::Primary, Mode::NotSynced, Status::Up),
            row(3, 0, Role::Mirror, Mode::NotSynced, Status::Up),
        ]);
        assert_eq!(
            decide(&pair(&cat), ProbeOutcome::Unreachable),
            Decision::DoubleFault
        );
        let cat = Catalog::new(vec![
            row(2, 0, Role::Primary, Mode::NotSynced, Status::Up),
            row(3, 0, Role::Mirror, Mode::NotSynced, Status::Down),
        ]);
        assert_eq!(
            decide(&pair(&cat), ProbeOutcome::Unreachable),
            Decision::DoubleFault
        );
    }

    #[test]
    fn the_planted_bug_promotes_a_mirror_that_was_not_in_sync() {
        let cat = Catalog::new(vec![
            row(2, 0, Role::Primary, Mode::NotSynced, Status::Up),
            row(3, 0, Role::Mirror, Mode::NotSynced, Status::Down),
        ]);
        let bugs = PlantedBugs {
            promote_unsynced_mirror: true,
            ..PlantedBugs::none()
        };
        assert!(matches!(
            decide_with(&pair(&cat), ProbeOutcome::Unreachable, bugs),
            Decision::Promote(_)
        ));
        assert_eq!(
            decide(&pair(&cat), ProbeOutcome::Unreachable),
            Decision::DoubleFault
        );
    }

    #[test]
    fn a_primary_that_is_only_restarting_is_not_failed_over() {
        assert_eq!(
            decide(&pair(&synced_pair()), ProbeOutcome::Restarting),
            Decision::Nothing
        );
    }

    #[test]
    fn a_starting_primary_whose_replay_advances_is_left_alone_within_the_limit() {
        let (first, after_one) = restart_outcome(Restart::default(), 100, 3);
        assert_eq!(
            first,
            ProbeOutcome::Restarting,
            "the first answer counts as progress"
        );
        let (second, after_two) = restart_outcome(after_one, 250, 3);
        assert_eq!(second, ProbeOutcome::Restarting);
        let (third, after_three) = restart_outcome(after_two, 400, 3);
        assert_eq!(third, ProbeOutcome::Restarting);
        assert_eq!(after_three.answers, 3);
        let (fourth, _) = restart_outcome(after_three, 900, 3);
        assert_eq!(
            fourth,
            ProbeOutcome::Unreachable,
            "past the limit it counts as unreachable, progress or not"
        );
    }

    #[test]
    fn with_the_planted_bug_a_first_starting_answer_counts_as_unreachable() {
        let bugs = PlantedBugs {
            first_starting_answer_counts_as_stalled: true,
            ..PlantedBugs::default()
        };
        let (first, _) = restart_outcome_with(Restart::default(), 100, 3, bugs);
        assert_eq!(first, ProbeOutcome::Unreachable);
    }

    #[test]
    fn a_starting_primary_whose_replay_stands_still_counts_as_unreachable() {
        let (_, after_one) = restart_outcome(Restart::default(), 100, 10);
        let (stuck, _) = restart_outcome(after_one, 100, 10);
        assert_eq!(stuck, ProbeOutcome::Unreachable);
        assert!(matches!(
            decide(&pair(&synced_pair()), stuck),
            Decision::Promote(_)
        ));
    }

    #[test]
    fn an_answer_from_a_mirror_means_the_promotion_was_lost_and_is_resent() {
        let reply = ProbeOutcome::Answered(ProbeReply {
            is_mirror: true,
            ..ProbeReply::default()
        });
        assert_eq!(
            decide(&pair(&synced_pair()), reply),
            Decision::ResendPromote
        );
    }

    #[test]
    fn unmirrored_contents_are_left_alone() {
        let cat = Catalog::new(vec![row(2, 0, Role::Primary, Mode::NotSynced, Status::Up)]);
        assert_eq!(
            decide(&pair(&cat), ProbeOutcome::Unreachable),
            Decision::Nothing
        );
    }

    /// Standard seeds 13 and 311 of this rule's first sweep: a decision on a probe answered
    /// before a full copy wiped the mirror must not record the wiped mirror in sync.
    #[test]
    fn a_decision_from_before_a_recovery_began_or_ended_is_not_recorded() {
        let back_in_sync = [
            change(2, Role::Primary, Status::Up, Mode::Synced),
            change(3, Role::Mirror, Status::Up, Mode::Synced),
        ];
        let none = Default::default();
        assert!(recordable(&back_in_sync, 4, 4, &none).is_ok());
        assert!(recordable(&back_in_sync, 4, 5, &none).is_err());
        let mut recovering = std::collections::BTreeSet::new();
        recovering.insert(3);
        let refused = recordable(&back_in_sync, 5, 5, &recovering).unwrap_err();
        assert!(refused.contains("dbid 3 is being recovered"), "{refused}");
        let down = [
            change(2, Role::Primary, Status::Up, Mode::NotSynced),
            change(3, Role::Mirror, Status::Down, Mode::NotSynced),
        ];
        assert!(recordable(&down, 5, 5, &recovering).is_ok());
    }
}
