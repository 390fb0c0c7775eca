//! What a schedule does to the cluster, judged from the schedule alone: which instances each
//! fault touches and when ([`exposure`]), whether the run must stay available ([`label`]), and
//! how long the prober may take to notice a fault ([`detection_window`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use cluster::coordinator::prober::ProbeSettings;
use cluster::model::catalog::{Role, SegmentConfig};

use super::{Fault, ScheduledFault};

/// How long after a fault the prober may take to detect it and make the content available
/// again: one probe interval, a probe with all its retries, the promote request with all its
/// retries, and the time a promoted mirror or an abandoned sync wait needs (the WAL timeout and
/// the mirror-down grace period).
pub fn detection_window(
    probe: &ProbeSettings,
    wal_timeout: Duration,
    mirror_down_grace: Duration,
) -> Duration {
    probe.probe_interval + one_probe(probe) * 2 + wal_timeout + mirror_down_grace
}

/// One probe of an instance that never answers: every attempt times out, `retry_gap` apart.
pub fn one_probe(probe: &ProbeSettings) -> Duration {
    let attempts = probe.probe_retries + 1;
    probe.probe_timeout * attempts + probe.retry_gap * probe.probe_retries
}

/// Whether a run may lose availability, judged from its schedule alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Label {
    /// At every moment each content keeps one instance untouched by faults (and once its
    /// primary was touched, its mirror is never touched again), the coordinator stays up and
    /// reaches every host, and no partition splits a pair: clients may see a content
    /// unavailable only while the prober detects and reacts to a fault.
    MustStayAvailable,
    /// A double fault, a coordinator crash or a partition splitting a pair: the cluster may be
    /// unavailable for a while, but must never lose data.
    MayLoseAvailabilityNeverData,
}

/// The stretches of time (workload ms) during which faults touch each instance (by dbid), and
/// whether any fault touches everything (the coordinator, a split pair).
pub struct Exposure {
    pub per_dbid: BTreeMap<u16, Vec<(u64, u64)>>,
    pub whole_cluster: Vec<(u64, u64)>,
}

/// Which instances each fault touches, and when. A fault touches an instance from its start to
/// its heal (a flipped bit: to the end of the run); global network faults (latency, loss) are
/// left out, as they slow the cluster down but cut nothing.
/// (Kept whole: one arm per fault kind says what that kind touches.)
pub fn exposure(faults: &[ScheduledFault], segments: &[SegmentConfig], end_ms: u64) -> Exposure {
    let mut heal_at: BTreeMap<u32, u64> = BTreeMap::new();
    for f in faults.iter().filter(|f| f.fault.is_heal()) {
        heal_at.entry(f.episode).or_insert(f.at_ms);
    }
    let mut out = Exposure {
        per_dbid: BTreeMap::new(),
        whole_cluster: Vec::new(),
    };
    let on_host = |h: &str| -> Vec<u16> {
        segments
            .iter()
            .filter(|s| s.hostname == h)
            .map(|s| s.dbid)
            .collect()
    };
    for f in faults.iter().filter(|f| !f.fault.is_heal()) {
        let span = (f.at_ms, heal_at.get(&f.episode).copied().unwrap_or(end_ms));
        let mut touched: Vec<u16> = Vec::new();
        match &f.fault {
            Fault::HostCrash { host }
            | Fault::TornWrite { host }
            | Fault::TornGarbage { host }
            | Fault::DiskFull { host } => touched = on_host(host),
            Fault::InstanceKill { dbid } | Fault::InstancePause { dbid } => touched = vec![*dbid],
            // A copy destroyed stays gone until an operator's full recovery.
            damaged if damaged.damages().is_some() => {
                let dbid = damaged.damages().expect("damages an instance");
                out.per_dbid
                    .entry(dbid)
                    .or_default()
                    .push((f.at_ms, end_ms));
            }
            Fault::DiskReplaced { host } => {
                for d in on_host(host) {
                    out.per_dbid.entry(d).or_default().push((f.at_ms, end_ms));
                }
            }
            Fault::DoubleFault { content } => {
                touched = segments
                    .iter()
                    .filter(|s| s.content == *content)
                    .map(|s| s.dbid)
                    .collect()
            }
            Fault::CoordinatorCrash => out.whole_cluster.push(span),
            // The coordinator's host stays down to the end of the fault phase.
            Fault::CoordinatorPairCrash => out.whole_cluster.push((f.at_ms, end_ms)),
            // The coordinator refuses to start on its damaged catalog until its standby is
            // activated.
            Fault::CatalogBitFlip { standby: false, .. } => {
                out.whole_cluster.push((f.at_ms, end_ms))
            }
            // An instant: the connections it cut are found broken at once or at their next use.
            Fault::ConnectionReset { host } if host == "mdw" => {
                out.whole_cluster.push((f.at_ms, f.at_ms))
            }
            Fault::ConnectionReset { host } => {
                for d in on_host(host) {
                    out.per_dbid.entry(d).or_default().push((f.at_ms, f.at_ms));
                }
            }
            Fault::Partition { from, to, .. } => {
                if from.iter().chain(to).any(|h| h == "mdw") {
                    // The coordinator is cut from some hosts: their instances are out of reach.
                    let cut = if from.iter().any(|h| h == "mdw") {
                        to
                    } else {
                        from
                    };
                    if cut.len() >= segments_hosts(segments).len() {
                        out.whole_cluster.push(span);
                    }
                    for h in cut {
                        touched.extend(on_host(h));
                    }
                }
                // A pair with one instance on each side is split.
                for s in segments {
                    for p in segments
                        .iter()
                        .filter(|p| p.content == s.content && p.dbid != s.dbid)
                    {
                        if from.contains(&s.hostname) && to.contains(&p.hostname) {
                            touched.push(s.dbid);
                            touched.push(p.dbid);
                        }
                    }
                }
                // An isolated host's instances are cut from their peers.
                if from.len() == 1 && !to.is_empty() && from[0] != "mdw" {
                    touched.extend(on_host(&from[0]));
                }
            }
            _ => {}
        }
        touched.sort_unstable();
        touched.dedup();
        for d in touched {
            out.per_dbid.entry(d).or_default().push(span);
        }
    }
    out
}

fn segments_hosts(segments: &[SegmentConfig]) -> Vec<&str> {
    let mut h: Vec<&str> = segments.iter().map(|s| s.hostname.as_str()).collect();
    h.sort_unstable();
    h.dedup();
    h
}

/// Labels a schedule. Two faults on the two instances of one content count as a double fault
/// unless the second starts at least `resync_gap` after the first healed (the returning
/// instance needs that long to catch up with its partner) and the first touched only the
/// mirror: a mirror rejoins by itself, but once a fault touched the primary, its mirror may
/// have been promoted, and the deposed primary stays down until an operator recovers it, so
/// the promoted mirror is the content's last instance for the rest of the run. The run's start
/// counts as every mirror's return: a mirror catches up with its primary after start-up, and
/// until the prober has recorded the pair in sync its primary cannot fail over, so a fault on a
/// preferred primary within `resync_gap` of the start may take its content down too.
pub fn label(
    faults: &[ScheduledFault],
    segments: &[SegmentConfig],
    end_ms: u64,
    resync_gap: Duration,
) -> Label {
    let exp = exposure(faults, segments, end_ms);
    if !exp.whole_cluster.is_empty() {
        return Label::MayLoseAvailabilityNeverData;
    }
    let gap = resync_gap.as_millis() as u64;
    let empty = Vec::new();
    // Without a mirror, any fault touching the primary takes its content down.
    for s in segments {
        let alone = !segments
            .iter()
            .any(|p| p.content == s.content && p.dbid != s.dbid);
        if alone && exp.per_dbid.get(&s.dbid).is_some_and(|v| !v.is_empty()) {
            return Label::MayLoseAvailabilityNeverData;
        }
    }
    for s in segments {
        for p in segments
            .iter()
            .filter(|p| p.content == s.content && p.dbid > s.dbid)
        {
            let a = exp.per_dbid.get(&s.dbid).unwrap_or(&empty);
            let b = exp.per_dbid.get(&p.dbid).unwrap_or(&empty);
            for (a0, a1) in a {
                for (b0, b1) in b {
                    if *a0 < b1.saturating_add(gap) && *b0 < a1.saturating_add(gap) {
                        return Label::MayLoseAvailabilityNeverData;
                    }
                }
            }
            // After the first fault on the preferred primary, any fault on its mirror.
            let (primary, mirror) = if s.preferred_role == Role::Primary {
                (a, b)
            } else {
                (b, a)
            };
            if let Some(first) = primary.iter().map(|(t0, _)| *t0).min() {
                // (A connection reset is an instant: new connections work at once.)
                let before_sync = primary.iter().any(|(t0, t1)| *t0 < gap && t1 > t0);
                if before_sync || mirror.iter().any(|(m0, _)| *m0 >= first) {
                    return Label::MayLoseAvailabilityNeverData;
                }
            }
        }
    }
    Label::MustStayAvailable
}
