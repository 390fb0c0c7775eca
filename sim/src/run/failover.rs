//! Failover times: for every host crash that takes down a content's acting primary, the
//! simulated time to detection (the prober records the role flip in the catalog), to promotion
//! (the mirror logs "promoted"), and to the first commit acknowledged on that content afterwards.
//! Computed after the run from the nemesis' crash times, the cluster's logged milestones and the
//! history; nothing here runs inside the simulation.

use std::collections::BTreeMap;

use serde::Serialize;

use cluster::model::catalog::{Content, Dbid, Role, SegmentConfig};

use crate::observer::{CatalogChange, ClusterEvent};
use crate::workload::history::{Outcome, TxnRecord};

/// One primary lost to a host crash, and how long its content took to commit again. Times are
/// simulated milliseconds since the run began (the log's clock). A milestone that never came
/// (the host came back first, or the mirror was not in sync) is absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failover {
    pub content: Content,
    pub host: String,
    pub crash_ms: u64,
    /// The catalog had the content's mirror up and in sync when the primary crashed: the prober
    /// may promote it. Otherwise the content stays down until the primary's host is back.
    pub mirror_in_sync: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_commit_ms: Option<u64>,
}

impl Failover {
    /// (detection, promotion, first commit) in ms, when every milestone came.
    pub fn split_ms(&self) -> Option<(u64, u64, u64)> {
        let (d, p, c) = (self.detected_ms?, self.promoted_ms?, self.first_commit_ms?);
        Some((d - self.crash_ms, p - d, c - p))
    }
}

/// A host crash or restart the nemesis carried out, at simulated ms since the run began.
#[derive(Clone, Debug)]
pub struct HostEvent {
    pub at_ms: u64,
    pub host: String,
    pub crash: bool,
}

/// A role flip the prober recorded: `new` became content's acting primary.
#[derive(Clone, Copy, Debug)]
struct Flip {
    at_ms: u64,
    content: Content,
    old: Dbid,
    new: Dbid,
}

pub fn measure(
    segments: &[SegmentConfig],
    host_events: &[HostEvent],
    cluster_events: &[ClusterEvent],
    txns: &[TxnRecord],
) -> Vec<Failover> {
    let host_of: BTreeMap<Dbid, &str> = segments
        .iter()
        .map(|s| (s.dbid, s.hostname.as_str()))
        .collect();
    let flips = flips(segments, cluster_events);
    let mut failovers = Vec::new();
    for (i, crash) in host_events.iter().enumerate().filter(|(_, e)| e.crash) {
        let next_crash = host_events[i + 1..]
            .iter()
            .find(|e| e.crash && e.host == crash.host)
            .map_or(u64::MAX, |e| e.at_ms);
        let catalog = catalog_at(segments, cluster_events, crash.at_ms);
        for (content, primary) in acting_primaries(segments, &flips, crash.at_ms) {
            if host_of.get(&primary) != Some(&crash.host.as_str()) {
                continue;
            }
            let mirror_in_sync = catalog
                .values()
                .any(|r| r.content == content && r.role == 'm' && r.status == 'u' && r.mode == 's');
            let flip = flips.iter().find(|f| {
                f.content == content
                    && f.old == primary
                    && f.at_ms >= crash.at_ms
                    && f.at_ms < next_crash
            });
            let promoted_ms = flip.and_then(|f| {
                cluster_events.iter().find_map(|e| match e {
                    ClusterEvent::Promoted {
                        at_ms,
                        content: c,
                        dbid,
                    } if *c == content && *dbid == f.new && *at_ms >= f.at_ms => Some(*at_ms),
                    _ => None,
                })
            });
            let first_commit_ms = promoted_ms.and_then(|p| first_commit(txns, content, p));
            failovers.push(Failover {
                content,
                host: crash.host.clone(),
                crash_ms: crash.at_ms,
                mirror_in_sync,
                detected_ms: flip.map(|f| f.at_ms),
                promoted_ms,
                first_commit_ms,
            });
        }
    }
    failovers
}

/// One catalog row's role, status and mode codes.
#[derive(Clone, Copy, Debug)]
struct Row {
    content: Content,
    role: char,
    status: char,
    mode: char,
}

/// The catalog rows as the prober's recorded changes left them just before `at_ms`.
fn catalog_at(
    segments: &[SegmentConfig],
    events: &[ClusterEvent],
    at_ms: u64,
) -> BTreeMap<Dbid, Row> {
    let mut rows: BTreeMap<Dbid, Row> = segments
        .iter()
        .map(|s| {
            let row = Row {
                content: s.content,
                role: s.role.code(),
                status: s.status.code(),
                mode: s.mode.code(),
            };
            (s.dbid, row)
        })
        .collect();
    for e in events {
        if let ClusterEvent::CatalogChange(c) = e {
            if c.at_ms < at_ms {
                rows.insert(
                    c.dbid,
                    Row {
                        content: c.content,
                        role: c.role,
                        status: c.status,
                        mode: c.mode,
                    },
                );
            }
        }
    }
    rows
}

/// The role flips in the prober's catalog changes: a row turned acting primary that was not.
fn flips(segments: &[SegmentConfig], events: &[ClusterEvent]) -> Vec<Flip> {
    let mut acting: BTreeMap<Content, Dbid> = initial_primaries(segments);
    let mut flips = Vec::new();
    for e in events {
        if let ClusterEvent::CatalogChange(CatalogChange {
            at_ms,
            content,
            dbid,
            role: 'p',
            status: 'u',
            ..
        }) = *e
        {
            let old = acting.insert(content, dbid);
            if let Some(old) = old.filter(|old| *old != dbid) {
                flips.push(Flip {
                    at_ms,
                    content,
                    old,
                    new: dbid,
                });
            }
        }
    }
    flips
}

fn initial_primaries(segments: &[SegmentConfig]) -> BTreeMap<Content, Dbid> {
    segments
        .iter()
        .filter(|s| s.role == Role::Primary)
        .map(|s| (s.content, s.dbid))
        .collect()
}

/// Each content's acting primary just before `at_ms`.
fn acting_primaries(
    segments: &[SegmentConfig],
    flips: &[Flip],
    at_ms: u64,
) -> Vec<(Content, Dbid)> {
    let mut acting = initial_primaries(segments);
    for f in flips.iter().filter(|f| f.at_ms < at_ms) {
        acting.insert(f.content, f.new);
    }
    acting.into_iter().collect()
}

/// The first acknowledged write transaction on `content` completed at or after `after_ms`.
fn first_commit(txns: &[TxnRecord], content: Content, after_ms: u64) -> Option<u64> {
    txns.iter()
        .filter(|t| t.outcome == Some(Outcome::Ok) && !t.writes().is_empty())
        .filter(|t| t.contents().contains(&content))
        .filter_map(|t| t.completed_ms)
        .filter(|at| *at >= after_ms)
        .min()
}

/// Median and 90th percentile (nearest rank) of each part of the split, over every failover
/// whose milestones all came.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Primaries lost with their mirror in sync that failed over and committed again.
    pub complete: usize,
    /// Primaries lost with their mirror in sync.
    pub with_mirror: usize,
    /// Primaries lost without an in-sync mirror (nothing to fail over to).
    pub without_mirror: usize,
    pub detection_ms: (u64, u64),
    pub promotion_ms: (u64, u64),
    pub first_commit_ms: (u64, u64),
    pub total_ms: (u64, u64),
}

pub fn summarize<'a>(failovers: impl IntoIterator<Item = &'a Failover>) -> Summary {
    let mut parts: [Vec<u64>; 4] = Default::default();
    let (mut with_mirror, mut without_mirror) = (0, 0);
    for f in failovers {
        if !f.mirror_in_sync {
            without_mirror += 1;
            continue;
        }
        with_mirror += 1;
        if let Some((d, p, c)) = f.split_ms() {
            for (v, x) in parts.iter_mut().zip([d, p, c, d + p + c]) {
                v.push(x);
            }
        }
    }
    let stat = |v: &mut Vec<u64>| {
        v.sort_unstable();
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        if v.is_empty() {
            (0, 0)
        } else {
            (rank(0.5), rank(0.9))
        }
    };
    let [d, p, c, t] = &mut parts;
    Summary {
        complete: d.len(),
        with_mirror,
        without_mirror,
        detection_ms: stat(d),
        promotion_ms: stat(p),
        first_commit_ms: stat(c),
        total_ms: stat(t),
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |(m, p): (u64, u64)| format!("{:.2}/{:.2}", m as f64 / 1000.0, p as f64 / 1000.0);
        write!(
            f,
            "failover: {} of {} primaries lost with an in-sync mirror committed again ({} more had none); median/p90 s: detection {}, promotion {}, first commit {}, total {}",
            self.complete,
            self.with_mirror,
            self.without_mirror,
            s(self.detection_ms),
            s(self.promotion_ms),
            s(self.first_commit_ms),
            s(self.total_ms)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::history::testing::{insert, txn};
    use cluster::model::catalog::{Mode, Status};

    fn seg(dbid: Dbid, content: Content, role: Role, host: &str) -> SegmentConfig {
        SegmentConfig {
            dbid,
            content,
            role,
            preferred_role: role,
            mode: Mode::Synced,
            status: Status::Up,
            hostname: host.into(),
            address: String::new(),
            port: 0,
            datadir: String::new(),
        }
    }

    fn change(at_ms: u64, content: Content, dbid: Dbid, role: char, status: char) -> ClusterEvent {
        ClusterEvent::CatalogChange(CatalogChange {
            at_ms,
            content,
            dbid,
            role,
            status,
            mode: 'n',
        })
    }

    #[test]
    fn splits_a_failover_into_detection_promotion_and_first_commit() {
        let segments = vec![
            seg(2, 0, Role::Primary, "sdw1"),
            seg(3, 0, Role::Mirror, "sdw2"),
            seg(4, 1, Role::Primary, "sdw2"),
            seg(5, 1, Role::Mirror, "sdw1"),
        ];
        let crash = |at_ms, host: &str| HostEvent {
            at_ms,
            host: host.into(),
            crash: true,
        };
        let events = vec![
            // Content 1's primary stays up: its mirror is only marked down.
            change(2500, 1, 4, 'p', 'u'),
            change(2500, 1, 5, 'm', 'd'),
            change(3000, 0, 2, 'm', 'd'),
            change(3000, 0, 3, 'p', 'u'),
            ClusterEvent::Promoted {
                at_ms: 3100,
                content: 0,
                dbid: 3,
            },
        ];
        let mut commit = txn(0, (1, 2), Outcome::Ok, vec![insert(1, b"a")]);
        commit.completed_ms = Some(3400);
        let mut other = txn(1, (3, 4), Outcome::Ok, vec![insert(2, b"a")]);
        other.ops[0].content = 1;
        other.completed_ms = Some(3200);
        let failovers = measure(
            &segments,
            &[crash(1000, "sdw1"), crash(5000, "sdw2")],
            &events,
            &[other, commit],
        );
        assert_eq!(
            failovers,
            vec![
                Failover {
                    content: 0,
                    host: "sdw1".into(),
                    crash_ms: 1000,
                    mirror_in_sync: true,
                    detected_ms: Some(3000),
                    promoted_ms: Some(3100),
                    first_commit_ms: Some(3400),
                },
                // sdw2 now holds both acting primaries; nothing fails over before the run ends.
                Failover {
                    content: 0,
                    host: "sdw2".into(),
                    crash_ms: 5000,
                    mirror_in_sync: false,
                    detected_ms: None,
                    promoted_ms: None,
                    first_commit_ms: None,
                },
                Failover {
                    content: 1,
                    host: "sdw2".into(),
                    crash_ms: 5000,
                    mirror_in_sync: false,
                    detected_ms: None,
                    promoted_ms: None,
                    first_commit_ms: None,
                },
            ]
        );
        let summary = summarize(&failovers);
        assert_eq!(
            (
                summary.complete,
                summary.with_mirror,
                summary.without_mirror
            ),
            (1, 1, 2)
        );
        assert_eq!(summary.total_ms, (2400, 2400));
    }
}
