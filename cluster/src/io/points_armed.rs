//! The simulator's fault-point registry: which points are armed in this world, what each does
//! when it fires, how many times each fired. A point that fires with an action the world must
//! carry out (crash the host, kill or pause the process) hands a [`Hit`] to the simulator's
//! supervisor and waits right there, inside its window, until the supervisor has acted: a
//! crash or a kill drops the waiting task with its node, a pause freezes it until the node is
//! resumed. A delay sleeps in place; a drop tells the caller to skip the message it was about
//! to send. The registry is per thread, as a simulated world runs on one thread, and arming it
//! starts it afresh.
//!
//! The simulator's alone: production builds compile the no-op in `runtime.rs` instead.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

pub use crate::io::points::{FaultPoint, Pass};

/// A simulated node's identity, as the simulator's world knows its processes.
pub type NodeId = tokio::madsim::task::NodeId;

/// What an armed point does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Power loss on the host of the process that reached the point.
    CrashHost,
    /// The process that reached the point dies; its host lives on.
    KillProcess,
    /// The process freezes for this long (a stop-the-world stall), then goes on.
    Pause(Duration),
    /// The task that reached the point sleeps this long, then goes on.
    Delay(Duration),
    /// The message about to be sent is lost.
    Drop,
    /// The task stalls at the point (a disk that does not answer) and the host loses power
    /// this long afterwards, the task still waiting.
    StallThenCrash(Duration),
}

/// One armed point: what it does, and on which of its passages.
#[derive(Clone, Debug)]
pub struct Arming {
    pub point: FaultPoint,
    pub action: Action,
    /// Passages that go by before the first firing, and between firings.
    pub skip: u32,
    /// Firings at most.
    pub fires: u32,
}

/// A firing the supervisor must carry out: the point, the node that reached it, the action.
pub struct Hit {
    pub point: FaultPoint,
    pub node: NodeId,
    pub action: Action,
    gate: Arc<Gate>,
}

impl Hit {
    /// Lets the task waiting at the point go on (after a pause was applied, or when the
    /// action does not apply to that node).
    pub fn carry_on(self) {
        self.gate.open();
    }
}

#[derive(Default)]
struct Gate {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Gate {
    fn open(&self) {
        let mut s = self.state.lock().expect("gate poisoned");
        s.0 = true;
        if let Some(w) = s.1.take() {
            w.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            let mut s = self.state.lock().expect("gate poisoned");
            if s.0 {
                Poll::Ready(())
            } else {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

struct Armed {
    arming: Arming,
    passed: u32,
    fired: u32,
    next_at: u32,
}

#[derive(Default)]
struct State {
    armed: BTreeMap<FaultPoint, Armed>,
    fired: BTreeMap<FaultPoint, u32>,
    hits: VecDeque<Hit>,
    supervisor: Option<Waker>,
}

thread_local! {
    static POINTS: Arc<Mutex<State>> = Arc::default();
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    POINTS.with(|p| f(&mut p.lock().expect("fault points poisoned")))
}

impl FaultPoint {
    /// The point's name, as results and tables show it.
    pub fn name(self) -> &'static str {
        match self {
            FaultPoint::WalWrittenBeforeFsync => "wal-written-before-fsync",
            FaultPoint::FlushFeedbackSent => "flush-feedback-sent",
            FaultPoint::FsyncBeforeReplay => "fsync-before-replay",
            FaultPoint::CatalogWrittenBeforeAnnounce => "catalog-written-before-announce",
            FaultPoint::PromotionMidReplay => "promotion-mid-replay",
            FaultPoint::RewindMidway => "rewind-midway",
            FaultPoint::BaseBackupMidway => "base-backup-midway",
            FaultPoint::ActivationMidway => "activation-midway",
            FaultPoint::RecoveryReconnected => "recovery-reconnected",
            FaultPoint::CheckpointBlocksWritten => "checkpoint-blocks-written",
        }
    }
}

impl std::fmt::Debug for FaultPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Arms `armings` (and nothing else) in this thread's world; the counts of firings start at
/// zero.
pub fn arm(armings: Vec<Arming>) {
    with(|s| {
        *s = State::default();
        for arming in armings {
            let next_at = arming.skip + 1;
            s.armed.insert(
                arming.point,
                Armed {
                    arming,
                    passed: 0,
                    fired: 0,
                    next_at,
                },
            );
        }
    });
}

/// Disarms every point; the counts of firings stay.
pub fn disarm() {
    with(|s| s.armed.clear());
}

/// How many times each point fired since it was armed (points that never fired left out).
pub fn fired() -> Vec<(FaultPoint, u32)> {
    with(|s| s.fired.iter().map(|(p, n)| (*p, *n)).collect())
}

/// The next firing the supervisor must carry out.
pub async fn next_hit() -> Hit {
    std::future::poll_fn(|cx| {
        with(|s| match s.hits.pop_front() {
            Some(hit) => Poll::Ready(hit),
            None => {
                s.supervisor = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    })
    .await
}

/// Whether this passage of `point` fires, and with what.
fn passage(point: FaultPoint) -> Option<Action> {
    with(|s| {
        let armed = s.armed.get_mut(&point)?;
        armed.passed += 1;
        if armed.fired >= armed.arming.fires || armed.passed < armed.next_at {
            return None;
        }
        armed.fired += 1;
        armed.next_at = armed.passed + armed.arming.skip + 1;
        let action = armed.arming.action;
        *s.fired.entry(point).or_default() += 1;
        Some(action)
    })
}

/// Marks a fault point: armed, it may crash, stall, delay or drop here (see [`Action`]).
pub async fn fault_point(point: FaultPoint) -> Pass {
    let Some(action) = passage(point) else {
        return Pass::Go;
    };
    tracing::info!(point = point.name(), ?action, "fault point fired");
    match action {
        Action::Delay(d) => {
            super::sleep(d).await;
            Pass::Go
        }
        Action::Drop if point.before_a_send() => Pass::Drop,
        Action::Drop => Pass::Go,
        _ => {
            let gate = Arc::new(Gate::default());
            let hit = Hit {
                point,
                node: tokio::madsim::plugin::node(),
                action,
                gate: gate.clone(),
            };
            let supervisor = with(|s| {
                s.hits.push_back(hit);
                s.supervisor.take()
            });
            if let Some(w) = supervisor {
                w.wake();
            }
            gate.wait().await;
            Pass::Go
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armed(point: FaultPoint, skip: u32, fires: u32) -> Arming {
        Arming {
            point,
            action: Action::Drop,
            skip,
            fires,
        }
    }

    #[test]
    fn an_armed_point_fires_after_its_skipped_passages_and_no_more_than_its_firings() {
        arm(vec![armed(FaultPoint::RewindMidway, 2, 2)]);
        let passages: Vec<bool> = (0..12)
            .map(|_| passage(FaultPoint::RewindMidway).is_some())
            .collect();
        let at: Vec<usize> = (0..12).filter(|i| passages[*i]).collect();
        assert_eq!(at, vec![2, 5]);
        assert!(passage(FaultPoint::FlushFeedbackSent).is_none());
        assert_eq!(fired(), vec![(FaultPoint::RewindMidway, 2)]);
    }

    #[test]
    fn disarmed_points_keep_their_counts_and_arming_starts_afresh() {
        arm(vec![armed(FaultPoint::ActivationMidway, 0, 1)]);
        assert!(passage(FaultPoint::ActivationMidway).is_some());
        disarm();
        assert!(passage(FaultPoint::ActivationMidway).is_none());
        assert_eq!(fired(), vec![(FaultPoint::ActivationMidway, 1)]);
        arm(Vec::new());
        assert!(fired().is_empty());
    }
}
