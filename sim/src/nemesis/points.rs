//! Which fault points a seed arms, and with what: the protocol's own moments (`cluster::io::
//! points`) where a crash, a stall, a delay or a lost message lands inside a window a few
//! milliseconds wide. Drawn from the seed's own stream (`fault-points`), so the schedule's
//! draws do not move.
//!
//! A seed arms up to three points, most seeds one or two; each fires once or twice. Points
//! passed thousands of times a run (a WAL flush, a mirror's feedback) let a drawn number of
//! passages go by first, so the firing falls anywhere in the run; the rare moments (a
//! promotion, a rewind, an activation) fire on their first passage.
//!
//! One seed in two also cuts the power in a checkpoint's window (twice) (its blocks written in
//! place, its `fsync`s not yet begun), drawn after the others so that their draws stay those
//! of the seeds before the point existed. A checkpoint's first passages are the instances'
//! first checkpoints, whose blocks all lie past the checkpointed length (redo rebuilds them
//! whole), so a drawn number of passages go by first.

use std::time::Duration;

use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;

use cluster::io::points::FaultPoint;
use cluster::io::runtime::fault_points::{Action, Arming};

/// How often a point is passed in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frequency {
    /// Thousands of times (every WAL flush, every received WAL message).
    Constant,
    /// Now and then (every reconnection, every catalog decision).
    Occasional,
    /// A few times at most (promotions, rewinds, base backups, activations).
    Rare,
    /// Every few seconds on every instance (checkpoints): tens to hundreds of times a run.
    Periodic,
}

fn frequency(point: FaultPoint) -> Frequency {
    match point {
        FaultPoint::WalWrittenBeforeFsync
        | FaultPoint::FlushFeedbackSent
        | FaultPoint::FsyncBeforeReplay => Frequency::Constant,
        FaultPoint::RecoveryReconnected | FaultPoint::CatalogWrittenBeforeAnnounce => {
            Frequency::Occasional
        }
        FaultPoint::PromotionMidReplay
        | FaultPoint::RewindMidway
        | FaultPoint::BaseBackupMidway
        | FaultPoint::ActivationMidway => Frequency::Rare,
        FaultPoint::CheckpointBlocksWritten => Frequency::Periodic,
    }
}

fn between(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi - lo + 1)
}

fn ms(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(between(rng, lo, hi))
}

/// The action one firing of `point` takes: a crash (at once, or after the task stalled), a
/// kill, a pause of the process, a delay of the task, or (before a send) a lost message.
fn action(rng: &mut ChaCha8Rng, point: FaultPoint) -> Action {
    let kinds = if point.before_a_send() { 6 } else { 5 };
    match rng.next_u64() % kinds {
        0 => Action::CrashHost,
        1 => Action::StallThenCrash(ms(rng, 2, 40)),
        2 => Action::KillProcess,
        3 => Action::Pause(ms(rng, 200, 3000)),
        4 => Action::Delay(ms(rng, 5, 300)),
        _ => Action::Drop,
    }
}

/// The points seed's `rng` arms in a run (none unless the scenario arms points: `armed`).
pub fn plan(rng: &mut ChaCha8Rng, armed: bool) -> Vec<Arming> {
    if !armed {
        return Vec::new();
    }
    let mut left: Vec<FaultPoint> = FaultPoint::ALL
        .into_iter()
        .filter(|p| *p != FaultPoint::CheckpointBlocksWritten)
        .collect();
    // 0, 1, 1, 2, 2, 3 points: most seeds one or two.
    let count = [0, 1, 1, 2, 2, 3][(rng.next_u64() % 6) as usize];
    let mut armings = Vec::new();
    for _ in 0..count {
        let point = left.remove((rng.next_u64() % left.len() as u64) as usize);
        let skip = match frequency(point) {
            Frequency::Constant => between(rng, 0, 2000) as u32,
            Frequency::Occasional => between(rng, 0, 3) as u32,
            Frequency::Periodic | Frequency::Rare => 0,
        };
        armings.push(Arming {
            point,
            action: action(rng, point),
            skip,
            fires: between(rng, 1, 2) as u32,
        });
    }
    if rng.next_u64().is_multiple_of(2) {
        armings.push(checkpoint_power_loss(rng));
    }
    armings
}

/// A power loss in a checkpoint's window, on a passage past the first checkpoints.
fn checkpoint_power_loss(rng: &mut ChaCha8Rng) -> Arming {
    let point = FaultPoint::CheckpointBlocksWritten;
    debug_assert_eq!(frequency(point), Frequency::Periodic);
    let action = if rng.next_u64().is_multiple_of(2) {
        Action::CrashHost
    } else {
        Action::StallThenCrash(ms(rng, 2, 40))
    };
    Arming {
        point,
        action,
        skip: between(rng, 8, 60) as u32,
        fires: 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;
    use crate::random::stream;

    #[test]
    fn a_scenario_without_fault_points_arms_none() {
        let cfg = RunConfig::pair();
        assert!(plan(&mut stream(1, "fault-points"), cfg.fault_points).is_empty());
    }

    #[test]
    fn every_point_is_armed_by_some_seed_and_no_seed_arms_more_than_three_besides_a_checkpoint() {
        let cfg = RunConfig::standard();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let armed = plan(&mut stream(seed, "fault-points"), cfg.fault_points);
            let protocol = armed
                .iter()
                .filter(|a| a.point != FaultPoint::CheckpointBlocksWritten)
                .count();
            assert!(protocol <= 3 && armed.len() <= protocol + 1);
            assert!(armed.iter().all(|a| (1..=2).contains(&a.fires)));
            seen.extend(armed.iter().map(|a| a.point));
        }
        assert_eq!(seen.len(), FaultPoint::ALL.len());
    }

    #[test]
    fn a_message_is_dropped_only_at_a_point_before_a_send() {
        for seed in 0..500 {
            for a in plan(
                &mut stream(seed, "fault-points"),
                RunConfig::standard().fault_points,
            ) {
                assert!(a.action != Action::Drop || a.point.before_a_send());
            }
        }
    }
}
