//! Fault points at run time: arms the points the seed drew ([`crate::nemesis::points`]) and
//! carries out their firings on the world with the nemesis's own verbs (a host crash, an
//! instance kill or pause, the coordinator's crash), each healed again after a drawn time. A
//! firing inside a node's own task cannot take its node down from there: the point hands it
//! to this supervisor, on the run's own node, and waits inside its window until it is done.
//!
//! A firing is left alone (the task goes on) when its fault would take down a copy of a
//! content whose other copy the schedule destroys (a bit flip, a lost directory, a replaced
//! disk) later in the run, or so shortly before that the prober may not have marked it down;
//! and a crash of the acting coordinator, which stops the prober, is left alone on the same
//! terms for any destroyed copy. The nemesis destroys a copy only while its partner is
//! untouched and in sync and the prober can see it ("never data"), and a point firing on top of
//! that would make a double fault that loses the content for good (or a prober that promotes
//! an empty mirror from a stale catalog), which no system survives ([`Destroys`]).
//!
//! Every fault carried out is recorded as a schedule entry of its own (episodes from
//! [`FIRST_EPISODE`]), so the availability label and the failover figures account for it,
//! and each point's firings are counted for the seed's result.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;
use tracing::info;

use cluster::io::runtime::fault_points::{self, Action, Hit};
use cluster::model::catalog::{Content, SegmentConfig};

use crate::nemesis::exposure::detection_window;
use crate::nemesis::{Fault, ScheduledFault};
use crate::operator::harness::SimHosts;
use crate::run::failover::HostEvent;
use crate::trace;
use crate::workload::now_ms;

/// Episodes of the faults fault points carry out start here, apart from the schedule's.
pub const FIRST_EPISODE: u32 = 100_000;

/// What the fault points did in a run.
#[derive(Default)]
pub struct PointLog {
    /// The faults carried out, as schedule entries.
    pub faults: Vec<ScheduledFault>,
    /// The host crashes and restarts among them.
    pub host_events: Vec<HostEvent>,
    /// Firings per point (by name).
    pub fired: BTreeMap<String, u32>,
}

/// The supervisor of a run's fault points.
pub struct Points {
    active: Arc<AtomicBool>,
    log: Arc<Mutex<PointLog>>,
    task: madsim::task::JoinHandle<()>,
}

/// What a firing's node is in the world.
enum Target {
    /// A segment instance: its host and dbid.
    Instance(String, u16),
    /// A coordinator host's process (`mdw` or `smdw`); whether it is the acting coordinator's.
    Coordinator(String, bool),
    Unknown,
}

/// The schedule's data-destroying faults, for the firings to keep clear of.
struct Destroys {
    /// When (workload ms) each destroys which copies.
    at: Vec<(u64, Vec<u16>)>,
    content_of: BTreeMap<u16, Content>,
    /// How long the prober may take to mark a destroyed copy down.
    gap_ms: u64,
}

impl Destroys {
    fn new(schedule: &[ScheduledFault], segments: &[SegmentConfig], gap: Duration) -> Destroys {
        Destroys {
            at: schedule
                .iter()
                .map(|f| (f.at_ms, f.fault.destroyed_copies(segments)))
                .filter(|(_, lost)| !lost.is_empty())
                .collect(),
            content_of: segments.iter().map(|s| (s.dbid, s.content)).collect(),
            gap_ms: gap.as_millis() as u64,
        }
    }

    /// Whether a fault touching `touch` at `at_ms` (workload ms) could leave a content with
    /// no intact copy: a copy of a touched content (of any content, when the fault stops the
    /// prober) is destroyed after `at_ms`, or another copy less than the prober's detection
    /// window before it. Touching the copy to be destroyed itself counts too, as the
    /// schedule's planner never destroys a copy of a content touched before: its partner is
    /// resynchronizing, not in sync, when the loss comes (standard seed 176).
    fn endangered(&self, touch: &Touch, at_ms: u64) -> bool {
        let content = |d: &u16| self.content_of.get(d).copied();
        let mut near = self
            .at
            .iter()
            .filter(|(destroyed_at, _)| destroyed_at.saturating_add(self.gap_ms) >= at_ms);
        let dbids = match touch {
            Touch::Prober => return near.next().is_some(),
            Touch::Instances(dbids) => dbids,
        };
        near.any(|(destroyed_at, lost)| {
            let before = at_ms <= *destroyed_at;
            lost.iter().any(|l| {
                dbids
                    .iter()
                    .any(|d| (before || d != l) && content(d).is_some() && content(d) == content(l))
            })
        })
    }
}

/// What a firing's fault would touch.
#[derive(Debug)]
enum Touch {
    /// These instances (none, for a delay).
    Instances(Vec<u16>),
    /// The acting coordinator, and with it the prober.
    Prober,
}

struct Ctx {
    hosts: SimHosts,
    destroys: Destroys,
    start_ms: u64,
    active: Arc<AtomicBool>,
    log: Arc<Mutex<PointLog>>,
    rng: Mutex<ChaCha8Rng>,
    episode: Mutex<u32>,
}

impl Points {
    /// Arms the points `seed` draws for `hosts`' run and starts the supervisor; `None` when
    /// the scenario arms no points. `schedule` is the run's own fault schedule, `segments`
    /// its instances.
    pub fn start(
        hosts: &SimHosts,
        seed: u64,
        start_ms: u64,
        schedule: &[ScheduledFault],
        segments: &[SegmentConfig],
    ) -> Option<Points> {
        let plan = crate::nemesis::points::plan(
            &mut crate::random::stream(seed, "fault-points"),
            hosts.cfg.fault_points,
        );
        if !hosts.cfg.fault_points {
            return None;
        }
        for a in &plan {
            info!(point = a.point.name(), action = ?a.action, skip = a.skip, fires = a.fires, "fault point armed");
        }
        fault_points::arm(plan);
        let active = Arc::new(AtomicBool::new(true));
        let log = Arc::new(Mutex::new(PointLog::default()));
        let cfg = &hosts.cfg;
        let gap = detection_window(&cfg.probe, cfg.wal_timeout, cfg.mirror_down_grace_period);
        let ctx = Arc::new(Ctx {
            hosts: hosts.clone(),
            destroys: Destroys::new(schedule, segments, gap),
            start_ms,
            active: active.clone(),
            log: log.clone(),
            rng: Mutex::new(crate::random::stream(seed, "fault-points-heal")),
            episode: Mutex::new(FIRST_EPISODE),
        });
        let task = madsim::task::spawn(async move {
            loop {
                let hit = fault_points::next_hit().await;
                if !ctx.active.load(Ordering::SeqCst) {
                    hit.carry_on();
                    continue;
                }
                madsim::task::spawn(carry_out(ctx.clone(), hit));
            }
        });
        Some(Points { active, log, task })
    }

    /// Disarms every point and stops carrying out firings (a stalled point goes on); returns
    /// what the points did. Faults they left in force are the caller's to heal.
    pub fn stop(self) -> PointLog {
        fault_points::disarm();
        self.active.store(false, Ordering::SeqCst);
        let mut log = std::mem::take(&mut *self.log.lock().unwrap());
        for (point, n) in fault_points::fired() {
            log.fired.insert(point.name().to_string(), n);
        }
        log.faults.sort_by_key(|f| f.at_ms);
        // The loop keeps letting stalled points go on until the run's nodes are released.
        drop(self.task);
        log
    }
}

impl Ctx {
    fn target(&self, hit: &Hit) -> Target {
        let world = self.hosts.world.lock().unwrap();
        for h in world.hosts.values() {
            if let Some(p) = h.processes.iter().find(|p| p.node.id() == hit.node) {
                return match p.dbid {
                    Some(dbid) => Target::Instance(h.name.clone(), dbid),
                    None => Target::Coordinator(h.name.clone(), world.acting.host == h.name),
                };
            }
        }
        Target::Unknown
    }

    /// What a firing's fault would touch: the target instance for a kill or a pause, every
    /// instance of its host for a crash, the prober for a crash of the acting coordinator (a
    /// pause of a coordinator is carried out as a delay).
    fn touched(&self, target: &Target, action: Action) -> Touch {
        let host = match (target, action) {
            (_, Action::Delay(_) | Action::Drop) | (Target::Coordinator(..), Action::Pause(_)) => {
                return Touch::Instances(Vec::new())
            }
            (Target::Instance(_, dbid), Action::KillProcess | Action::Pause(_)) => {
                return Touch::Instances(vec![*dbid])
            }
            (Target::Coordinator(_, true), _) => return Touch::Prober,
            (Target::Instance(host, _) | Target::Coordinator(host, false), _) => host,
            (Target::Unknown, _) => return Touch::Instances(Vec::new()),
        };
        let world = self.hosts.world.lock().unwrap();
        Touch::Instances(
            world
                .hosts
                .get(host)
                .map(|h| h.processes.iter().filter_map(|p| p.dbid).collect())
                .unwrap_or_default(),
        )
    }

    fn draw_ms(&self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.rng.lock().unwrap().next_u64() % (hi - lo + 1))
    }

    fn new_episode(&self) -> u32 {
        let mut e = self.episode.lock().unwrap();
        *e += 1;
        *e
    }

    /// Carries out `fault` on the world and records it (a heal always, a fault only while the
    /// points are active); false if it was not carried out.
    fn apply(&self, episode: u32, fault: Fault) -> bool {
        let heal = matches!(
            fault,
            Fault::HostRestart { .. }
                | Fault::InstanceRestart { .. }
                | Fault::InstanceResume { .. }
                | Fault::CoordinatorRestart
        );
        if !heal && !self.active.load(Ordering::SeqCst) {
            return false;
        }
        let now = now_ms();
        trace::hash_fact(&format!("point fault {fault:?} at {now}"));
        self.hosts.world.lock().unwrap().apply(&fault);
        let mut log = self.log.lock().unwrap();
        let host_event = match &fault {
            Fault::HostCrash { host } => Some((host.clone(), true)),
            Fault::HostRestart { host } => Some((host.clone(), false)),
            _ => None,
        };
        if let Some((host, crash)) = host_event {
            log.host_events.push(HostEvent {
                at_ms: now,
                host,
                crash,
            });
        }
        log.faults.push(ScheduledFault {
            at_ms: now.saturating_sub(self.start_ms),
            episode,
            fault,
        });
        true
    }

    /// A fault, then its heal after `down`.
    async fn fault_and_heal(&self, fault: Fault, heal: Fault, down: Duration) {
        let episode = self.new_episode();
        if self.apply(episode, fault) {
            madsim::time::sleep(down).await;
            self.apply(episode, heal);
        }
    }
}

/// Carries out one firing.
async fn carry_out(ctx: Arc<Ctx>, hit: Hit) {
    let target = ctx.target(&hit);
    info!(point = hit.point.name(), action = ?hit.action, "fault point: carrying out");
    let down = ctx.draw_ms(500, 4000);
    let touched = ctx.touched(&target, hit.action);
    let at_ms = now_ms().saturating_sub(ctx.start_ms);
    if ctx.destroys.endangered(&touched, at_ms) {
        info!(
            point = hit.point.name(),
            ?touched,
            "fault point: left alone, the schedule destroys another copy nearby"
        );
        return hit.carry_on();
    }
    let (crash, heal) = match (&target, hit.action) {
        (Target::Unknown, _) => return hit.carry_on(),
        (_, Action::Delay(d)) | (Target::Coordinator(..), Action::Pause(d)) => {
            madsim::time::sleep(d).await;
            return hit.carry_on();
        }
        (Target::Instance(_, dbid), Action::Pause(d)) => {
            let episode = ctx.new_episode();
            ctx.apply(episode, Fault::InstancePause { dbid: *dbid });
            hit.carry_on();
            madsim::time::sleep(d).await;
            ctx.apply(episode, Fault::InstanceResume { dbid: *dbid });
            return;
        }
        (Target::Instance(_, dbid), Action::KillProcess) => (
            Fault::InstanceKill { dbid: *dbid },
            Fault::InstanceRestart { dbid: *dbid },
        ),
        (Target::Instance(host, _), _) | (Target::Coordinator(host, false), _) => (
            Fault::HostCrash { host: host.clone() },
            Fault::HostRestart { host: host.clone() },
        ),
        (Target::Coordinator(_, true), _) => (Fault::CoordinatorCrash, Fault::CoordinatorRestart),
    };
    if let Action::StallThenCrash(d) = hit.action {
        madsim::time::sleep(d).await;
    }
    if !ctx.active.load(Ordering::SeqCst) {
        return hit.carry_on();
    }
    // The task at the point dies with its node; the hit is dropped unopened.
    drop(hit);
    ctx.fault_and_heal(crash, heal, down).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::model::catalog::{Mode, Role, Status};

    fn seg(dbid: u16, content: Content, host: &str) -> SegmentConfig {
        SegmentConfig {
            dbid,
            content,
            role: Role::Primary,
            preferred_role: Role::Primary,
            mode: Mode::Synced,
            status: Status::Up,
            hostname: host.into(),
            address: host.into(),
            port: 6000,
            datadir: format!("/d/{dbid}"),
        }
    }

    fn ids(dbids: &[u16]) -> Touch {
        Touch::Instances(dbids.to_vec())
    }

    fn at(at_ms: u64, fault: Fault) -> ScheduledFault {
        ScheduledFault {
            at_ms,
            episode: 1,
            fault,
        }
    }

    #[test]
    fn a_firing_keeps_clear_of_a_pair_whose_other_copy_the_schedule_destroys() {
        // Content 0: dbid 2 on sdw1, dbid 3 on sdw2; content 1: dbid 4 on sdw2, dbid 5 on sdw1.
        let segments = [
            seg(2, 0, "sdw1"),
            seg(3, 0, "sdw2"),
            seg(4, 1, "sdw2"),
            seg(5, 1, "sdw1"),
        ];
        let schedule = [
            at(20_000, Fault::DatadirLost { dbid: 3 }),
            at(25_000, Fault::InstanceRestart { dbid: 3 }),
        ];
        let d = Destroys::new(&schedule, &segments, Duration::from_secs(10));
        // Before the loss (seed 330's shape) and within the detection window after it.
        assert!(d.endangered(&ids(&[2]), 5_000));
        assert!(d.endangered(&ids(&[2, 5]), 29_000));
        // Long after it, the lost copy is marked down: touching the survivor costs
        // availability only.
        assert!(!d.endangered(&ids(&[2]), 31_000));
        // Other contents are free to touch; the destroyed copy itself only once it is lost
        // (before, a crash leaves its partner resynchronizing when the loss comes).
        assert!(!d.endangered(&ids(&[4]), 5_000));
        assert!(d.endangered(&ids(&[3]), 5_000));
        assert!(!d.endangered(&ids(&[3, 4]), 21_000));
        // A crash of the acting coordinator stops the prober that must mark the lost copy
        // down (seed 283's shape): left alone before the loss and within the window after.
        assert!(d.endangered(&Touch::Prober, 5_000));
        assert!(d.endangered(&Touch::Prober, 29_000));
        assert!(!d.endangered(&Touch::Prober, 31_000));
        // A replaced disk destroys every copy on its host.
        let schedule = [at(
            20_000,
            Fault::DiskReplaced {
                host: "sdw2".into(),
            },
        )];
        let d = Destroys::new(&schedule, &segments, Duration::from_secs(10));
        assert!(d.endangered(&ids(&[5]), 1_000));
        assert!(d.endangered(&ids(&[3, 4]), 1_000));
        assert!(!d.endangered(&ids(&[3, 4]), 21_000));
    }
}
