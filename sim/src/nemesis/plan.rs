//! Drawing a schedule from the seed: when faults start, of which kind, on what, for how long;
//! and which draws are kept (one fault per host or network setting at a time, the seed's share
//! of schedules that must stay available, no fault that could fail a content over onto a copy
//! another fault destroyed).

use std::collections::BTreeMap;
use std::time::Duration;

use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;

use cluster::model::catalog::SegmentConfig;

use super::{
    exposure, label, sort, Fault, FaultKind, FaultWeights, Label, Layout, ScheduledFault, Shape,
};

/// What the planner reads of a run's configuration (`RunConfig::plan_settings` fills it from
/// the fields of the same names).
#[derive(Clone, Debug)]
pub struct Settings {
    pub fault_weights: FaultWeights,
    pub fault_every_mean: Duration,
    pub fault_time: Duration,
    pub downtime_min: Duration,
    pub downtime_max: Duration,
    pub partition_max: Duration,
    /// Percent of seeds whose schedule must leave the cluster available.
    pub available_share: u32,
    /// How long the prober may take to act on a failure
    /// ([`super::exposure::detection_window`]).
    pub detection_window: Duration,
    pub mirrors: bool,
    pub standby: bool,
}

/// Draws the schedule: fault starts at exponential intervals (mean `fault_every_mean`) during
/// `fault_time`, each of a kind drawn by `fault_weights`, each healed after a drawn time (heals
/// fall within `fault_time`). A host, an instance or a network setting is hit by one fault at
/// a time; at most one partition is in force at a time.
pub fn plan(rng: &mut ChaCha8Rng, cfg: &Settings, layout: &Layout) -> Vec<ScheduledFault> {
    let kinds: Vec<(FaultKind, u32)> = FaultKind::ALL
        .into_iter()
        .map(|k| (k, cfg.fault_weights.get(k)))
        .filter(|(k, w)| *w > 0 && possible(*k, cfg))
        .collect();
    let total: u64 = kinds.iter().map(|(_, w)| *w as u64).sum();
    if total == 0 || layout.segment_hosts.is_empty() {
        return Vec::new();
    }
    let mut planner = Planner::new(rng, cfg, layout);
    let mean = cfg.fault_every_mean.as_micros() as f64;
    let mut t = Duration::ZERO;
    loop {
        // Exponential inter-arrival from a uniform draw in (0, 1].
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        t += Duration::from_micros((-(1.0 - u).ln() * mean) as u64);
        if t >= cfg.fault_time {
            break;
        }
        let kind = weighted(rng, &kinds, total);
        let duration = if kind.is_partition() || kind == FaultKind::InstancePause {
            uniform(rng, cfg.downtime_min, cfg.partition_max)
        } else {
            uniform(rng, cfg.downtime_min, cfg.downtime_max)
        };
        let (fault, resources) = draw_fault(rng, kind, layout, &planner.all_hosts);
        planner.offer(t, duration, fault, resources);
    }
    let mut faults = planner.faults;
    sort(&mut faults);
    faults
}

/// One kind, drawn by weight (`total`: the sum of the weights).
fn weighted(rng: &mut ChaCha8Rng, kinds: &[(FaultKind, u32)], total: u64) -> FaultKind {
    let mut x = rng.next_u64() % total;
    kinds
        .iter()
        .find(|(_, w)| {
            if x < *w as u64 {
                true
            } else {
                x -= *w as u64;
                false
            }
        })
        .expect("weights sum to total")
        .0
}

/// A fault of `kind` on drawn hosts or instances, with the resources it holds while it lasts
/// (host names, and `net-partition`, `net-latency`, `net-loss`). A segment host and a segment
/// instance are drawn for every kind, used or not, so that each fault draws as many numbers.
fn draw_fault(
    rng: &mut ChaCha8Rng,
    kind: FaultKind,
    layout: &Layout,
    all_hosts: &[String],
) -> (Fault, Vec<String>) {
    let host = pick(rng, &layout.segment_hosts).clone();
    let seg = pick(rng, layout.segments).clone();
    match kind {
        FaultKind::HostCrash => (Fault::HostCrash { host: host.clone() }, vec![host]),
        FaultKind::TornWrite => (Fault::TornWrite { host: host.clone() }, vec![host]),
        FaultKind::InstanceKill => (
            Fault::InstanceKill { dbid: seg.dbid },
            vec![seg.hostname.clone()],
        ),
        FaultKind::InstancePause => (
            Fault::InstancePause { dbid: seg.dbid },
            vec![seg.hostname.clone()],
        ),
        FaultKind::DoubleFault => (
            Fault::DoubleFault {
                content: seg.content,
            },
            layout.pair_hosts(seg.content),
        ),
        FaultKind::CoordinatorCrash => (Fault::CoordinatorCrash, vec!["mdw".to_string()]),
        FaultKind::CoordinatorPairCrash => (
            Fault::CoordinatorPairCrash,
            vec!["mdw".to_string(), "standby".to_string()],
        ),
        FaultKind::IsolateHost
        | FaultKind::Halves
        | FaultKind::CoordinatorCut
        | FaultKind::OneWay
        | FaultKind::LinkClog => (draw_partition(rng, kind, layout, all_hosts), net()),
        FaultKind::ConnectionReset => (
            Fault::ConnectionReset {
                host: pick(rng, all_hosts).clone(),
            },
            Vec::new(),
        ),
        FaultKind::LatencySpike => {
            let max_ms = 50 + rng.next_u64() % 450;
            (
                Fault::LatencySpike {
                    min_ms: max_ms / 5,
                    max_ms,
                },
                vec!["net-latency".into()],
            )
        }
        FaultKind::PacketLoss => (
            Fault::PacketLoss {
                percent: 1 + (rng.next_u32() % 20),
            },
            vec!["net-loss".into()],
        ),
        FaultKind::DiskFull => (Fault::DiskFull { host: host.clone() }, vec![host]),
        FaultKind::BitFlip => (
            Fault::BitFlip {
                dbid: seg.dbid,
                pick: rng.next_u64(),
            },
            vec![seg.hostname.clone()],
        ),
        FaultKind::DiskReplaced => (Fault::DiskReplaced { host: host.clone() }, vec![host]),
        FaultKind::DatadirLost => (
            Fault::DatadirLost { dbid: seg.dbid },
            vec![seg.hostname.clone()],
        ),
        FaultKind::LateDelivery => (
            Fault::LateDelivery {
                pick: rng.next_u64(),
            },
            Vec::new(),
        ),
        FaultKind::FsyncFail
        | FaultKind::TornGarbage
        | FaultKind::WalBitFlip
        | FaultKind::ControlBitFlip
        | FaultKind::MisdirectedWrite => draw_media_fault(rng, kind, host, &seg),
        FaultKind::CatalogBitFlip => (
            Fault::CatalogBitFlip {
                standby: rng.next_u64().is_multiple_of(2),
                pick: rng.next_u64(),
            },
            vec!["mdw".to_string(), "standby".to_string()],
        ),
    }
}

/// A media fault of `kind` on `host` or on instance `seg` (see [`crate::world::disk`]).
fn draw_media_fault(
    rng: &mut ChaCha8Rng,
    kind: FaultKind,
    host: String,
    seg: &SegmentConfig,
) -> (Fault, Vec<String>) {
    let dbid = seg.dbid;
    let fault = match kind {
        FaultKind::FsyncFail => Fault::FsyncFail {
            dbid,
            tables: rng.next_u64() % 2 == 1,
        },
        FaultKind::TornGarbage => {
            return (Fault::TornGarbage { host: host.clone() }, vec![host]);
        }
        FaultKind::WalBitFlip => Fault::WalBitFlip {
            dbid,
            pick: rng.next_u64(),
        },
        FaultKind::ControlBitFlip => Fault::ControlBitFlip {
            dbid,
            pick: rng.next_u64(),
        },
        FaultKind::MisdirectedWrite => Fault::MisdirectedWrite {
            dbid,
            pick: rng.next_u64(),
        },
        other => unreachable!("{other} is not a media fault"),
    };
    (fault, vec![seg.hostname.clone()])
}

/// A partition of the shape `kind` names, between drawn hosts (`mdw` among them).
fn draw_partition(
    rng: &mut ChaCha8Rng,
    kind: FaultKind,
    layout: &Layout,
    all_hosts: &[String],
) -> Fault {
    match kind {
        FaultKind::IsolateHost => {
            let h = pick(rng, all_hosts).clone();
            let others = all_hosts.iter().filter(|o| **o != h).cloned().collect();
            partition(Shape::IsolateHost, vec![h], others, false)
        }
        FaultKind::Halves => {
            let mut side: Vec<bool> = all_hosts
                .iter()
                .map(|_| rng.next_u32().is_multiple_of(2))
                .collect();
            // Both halves hold at least one host.
            side[0] = true;
            let last = side.len() - 1;
            if side.iter().all(|s| *s) {
                side[last] = false;
            }
            let (a, b): (Vec<_>, Vec<_>) = all_hosts.iter().zip(&side).partition(|(_, s)| **s);
            partition(
                Shape::Halves,
                a.into_iter().map(|(h, _)| h.clone()).collect(),
                b.into_iter().map(|(h, _)| h.clone()).collect(),
                false,
            )
        }
        FaultKind::CoordinatorCut => partition(
            Shape::CoordinatorCut,
            vec!["mdw".into()],
            layout.segment_hosts.clone(),
            false,
        ),
        FaultKind::OneWay | FaultKind::LinkClog => {
            let a = pick(rng, all_hosts).clone();
            let rest: Vec<String> = all_hosts.iter().filter(|o| **o != a).cloned().collect();
            let b = pick(rng, &rest).clone();
            let one_way = kind == FaultKind::OneWay;
            let shape = if one_way {
                Shape::OneWay
            } else {
                Shape::LinkClog
            };
            partition(shape, vec![a], vec![b], one_way)
        }
        other => unreachable!("{other} is not a partition"),
    }
}

/// The schedule as it grows: which resources are busy until when, and which draws are kept.
struct Planner<'a, 'l> {
    layout: &'a Layout<'l>,
    fault_time: Duration,
    /// A share of the seeds draws only schedules that must leave the cluster available.
    keep_available: bool,
    end_ms: u64,
    /// The prober's detection window.
    gap: Duration,
    /// `mdw` and every segment host.
    all_hosts: Vec<String>,
    /// When each resource is free again: hosts by name, and "net-partition", "net-latency",
    /// "net-loss".
    busy: BTreeMap<String, Duration>,
    /// The run places a standby coordinator.
    standby: bool,
    episode: u32,
    faults: Vec<ScheduledFault>,
}

impl<'a, 'l> Planner<'a, 'l> {
    fn new(rng: &mut ChaCha8Rng, cfg: &Settings, layout: &'a Layout<'l>) -> Planner<'a, 'l> {
        Planner {
            layout,
            fault_time: cfg.fault_time,
            keep_available: rng.next_u64() % 100 < cfg.available_share as u64,
            end_ms: cfg.fault_time.as_millis() as u64,
            gap: cfg.detection_window,
            all_hosts: std::iter::once("mdw".to_string())
                .chain(layout.segment_hosts.iter().cloned())
                .collect(),
            busy: BTreeMap::new(),
            standby: cfg.standby,
            episode: 0,
            faults: Vec::new(),
        }
    }

    /// Keeps `fault`, starting at `t` and healed `duration` later, unless one of its resources
    /// is busy or the schedule would break one of the rules above.
    fn offer(&mut self, t: Duration, duration: Duration, fault: Fault, resources: Vec<String>) {
        let free = |r: &String| self.busy.get(r).is_none_or(|b| *b <= t);
        if !resources.iter().all(free)
            || !self.may_destroy(&fault, t)
            || !self.may_damage_catalog(&fault, t)
        {
            return;
        }
        let mut heal_at = (t + duration).min(self.fault_time);
        let fault_kind = fault.kind();
        let mut candidate = self.faults.clone();
        if let Some(heal) = fault.heal() {
            candidate.push(ScheduledFault {
                at_ms: heal_at.as_millis() as u64,
                episode: self.episode + 1,
                fault: heal,
            });
        }
        candidate.push(ScheduledFault {
            at_ms: t.as_millis() as u64,
            episode: self.episode + 1,
            fault,
        });
        let segments = self.layout.segments;
        if self.keep_available
            && label(&candidate, segments, self.end_ms, self.gap) != Label::MustStayAvailable
        {
            return;
        }
        if endangers_a_lost_copy(&candidate, segments, self.end_ms, self.gap) {
            return;
        }
        self.episode += 1;
        self.faults = candidate;
        if matches!(fault_kind, Some(FaultKind::CatalogBitFlip)) {
            // Nothing else touches the coordinator pair until its damaged copy is replaced.
            heal_at = self.fault_time;
        }
        for r in resources {
            self.busy.insert(r, heal_at + Duration::from_millis(1));
        }
    }

    /// Faults that destroy one copy of a content's data: only where the other copy is surely
    /// in sync and ready to take over (no fault touched the pair yet, and the start-up gap
    /// passed), or they would lose the content for good, which no system survives.
    fn may_destroy(&self, fault: &Fault, t: Duration) -> bool {
        let segments = self.layout.segments;
        let destroys = fault.destroyed_copies(segments);
        if destroys
            .iter()
            .any(|dbid| touched_before(&self.faults, segments, *dbid, t))
        {
            return false;
        }
        matches!(fault, Fault::BitFlip { .. }) || destroys.is_empty() || t >= self.gap
    }

    /// A catalog bit flip damages one of the two copies of the catalog: only in a run with a
    /// standby, after the start-up gap, and while the other copy is surely in sync (nothing
    /// touched the coordinator pair or the link between them yet), or the cluster would lose
    /// its catalog for good. The operator then replaces the damaged copy from the other one.
    fn may_damage_catalog(&self, fault: &Fault, t: Duration) -> bool {
        let Fault::CatalogBitFlip { .. } = fault else {
            return true;
        };
        self.standby
            && t >= self.gap
            && !self
                .faults
                .iter()
                .any(|f| touches_coordinator_pair(&f.fault))
    }
}

/// Whether `fault` touches the coordinator pair or the standby's stream from the coordinator:
/// a crash of either, or lost, slowed or reset connections of the coordinator. (Partitions
/// never cut the coordinator from its standby: the standby's host is on no side of one.)
fn touches_coordinator_pair(fault: &Fault) -> bool {
    match fault {
        Fault::CoordinatorCrash
        | Fault::CoordinatorPairCrash
        | Fault::CatalogBitFlip { .. }
        | Fault::LatencySpike { .. }
        | Fault::PacketLoss { .. } => true,
        Fault::ConnectionReset { host } => host == "mdw",
        _ => false,
    }
}

/// Whether a fault of `faults` could make the prober fail a content over onto a copy another
/// fault destroyed (a bit flip, a lost directory, a replaced disk), before the prober can have
/// marked that copy down: a fault touching the content's other instance, or the whole cluster,
/// or slowing the whole network, within `gap` after the copy was destroyed. The prober would
/// then promote a mirror that holds nothing (as the real prober does on a stale catalog) and
/// the content is lost to a double fault no operator procedure undoes.
fn endangers_a_lost_copy(
    faults: &[ScheduledFault],
    segments: &[SegmentConfig],
    end_ms: u64,
    gap: Duration,
) -> bool {
    let gap = gap.as_millis() as u64;
    let mut heal_at: BTreeMap<u32, u64> = BTreeMap::new();
    for f in faults.iter().filter(|f| f.fault.is_heal()) {
        heal_at.entry(f.episode).or_insert(f.at_ms);
    }
    let overlaps = |(a, b): (u64, u64), (c, d): (u64, u64)| a <= d && c <= b;
    for d in faults.iter().filter(|f| !f.fault.is_heal()) {
        let lost = d.fault.destroyed_copies(segments);
        if lost.is_empty() {
            continue;
        }
        let window = (d.at_ms, d.at_ms.saturating_add(gap));
        let partners: Vec<u16> = lost
            .iter()
            .flat_map(|dbid| {
                let content = segments.iter().find(|s| s.dbid == *dbid).map(|s| s.content);
                segments
                    .iter()
                    .filter(move |s| Some(s.content) == content && s.dbid != *dbid)
                    .map(|s| s.dbid)
            })
            .filter(|p| !lost.contains(p))
            .collect();
        for f in faults
            .iter()
            .filter(|f| !f.fault.is_heal() && f.episode != d.episode)
        {
            let span = (f.at_ms, heal_at.get(&f.episode).copied().unwrap_or(end_ms));
            if matches!(
                f.fault,
                Fault::LatencySpike { .. } | Fault::PacketLoss { .. }
            ) {
                if overlaps(span, window) {
                    return true;
                }
                continue;
            }
            let exp = exposure(std::slice::from_ref(f), segments, end_ms);
            if exp.whole_cluster.iter().any(|s| overlaps(*s, window)) {
                return true;
            }
            if partners.iter().any(|p| {
                exp.per_dbid
                    .get(p)
                    .is_some_and(|spans| spans.iter().any(|s| overlaps(*s, window)))
            }) {
                return true;
            }
        }
    }
    false
}

/// Whether any fault in `faults` touched the content of `dbid` before `t`. Lost or slowed
/// packets everywhere touch every content: enough probes go unanswered for the prober to fail
/// any pair over, and the old primary then waits for a recovery (standard seed 1356: a pair
/// failed over under 20% packet loss lost its new primary's directory 2 s later).
fn touched_before(
    faults: &[ScheduledFault],
    segments: &[SegmentConfig],
    dbid: u16,
    t: Duration,
) -> bool {
    let Some(content) = segments.iter().find(|s| s.dbid == dbid).map(|s| s.content) else {
        return true;
    };
    let t = t.as_millis() as u64;
    if faults.iter().any(|f| {
        f.at_ms <= t
            && matches!(
                f.fault,
                Fault::LatencySpike { .. } | Fault::PacketLoss { .. }
            )
    }) {
        return true;
    }
    let exp = exposure(faults, segments, u64::MAX);
    !exp.whole_cluster.is_empty()
        || segments.iter().filter(|s| s.content == content).any(|s| {
            exp.per_dbid
                .get(&s.dbid)
                .is_some_and(|spans| spans.iter().any(|(a, _)| *a <= t))
        })
}

fn net() -> Vec<String> {
    vec!["net-partition".into()]
}

fn partition(shape: Shape, from: Vec<String>, to: Vec<String>, one_way: bool) -> Fault {
    Fault::Partition {
        shape,
        from,
        to,
        one_way,
    }
}

/// Whether a kind of fault can happen in this cluster at all.
fn possible(kind: FaultKind, cfg: &Settings) -> bool {
    match kind {
        FaultKind::DoubleFault | FaultKind::DiskReplaced | FaultKind::DatadirLost => cfg.mirrors,
        FaultKind::CoordinatorPairCrash | FaultKind::CatalogBitFlip => cfg.standby,
        _ => true,
    }
}

fn uniform(rng: &mut ChaCha8Rng, min: Duration, max: Duration) -> Duration {
    let span = max.saturating_sub(min).as_micros() as u64;
    min + Duration::from_micros(if span == 0 { 0 } else { rng.next_u64() % span })
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, from: &'a [T]) -> &'a T {
    &from[(rng.next_u64() % from.len() as u64) as usize]
}
