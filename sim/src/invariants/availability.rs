//! **A run that must stay available stays available.**
//!
//! Seed (002, segment mirroring): "if a primary segment becomes unavailable, the mirror is
//! promoted and the system continues operating"; the prober detects a failed primary within its
//! probe interval, timeout and retries. So in a run whose faults never take both instances of a
//! content at once, never touch the coordinator and never split a pair (label
//! [`Label::MustStayAvailable`]), a client may find a content unavailable only within the
//! detection window after a fault that touches that content starts or heals (or while the whole
//! network is slowed by a latency spike or packet loss, and a window after).
//!
//! Exact rule: every transaction that failed or timed out with a content-unavailable error (no
//! live instance, cannot reach its primary, lost the primary, an instance or the coordinator did
//! not answer in time; "all segment databases are unavailable" names every content; an error
//! naming no content, a timeout, is excused by a window of any content the transaction's
//! statements route to) completed inside an excuse window of that content; runs
//! labelled [`Label::MayLoseAvailabilityNeverData`] are not judged.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::catalog::SegmentConfig;
use cluster::fts::prober::ProbeSettings;

use super::Violation;
use crate::history::TxnRecord;
use crate::nemesis::{exposure, Fault, Label, ScheduledFault};

pub const NAME: &str = "availability";

/// How long after a fault the prober may take to detect it and make the content available
/// again: one probe interval, a probe with all its retries, the promote request with all its
/// retries, and the time a promoted mirror or an abandoned sync wait needs (the WAL timeout and
/// the mirror-down grace period).
pub fn detection_window(
    probe: &ProbeSettings,
    wal_timeout: Duration,
    mirror_down_grace: Duration,
) -> Duration {
    let attempts = probe.probe_retries + 1;
    let one_probe = probe.probe_timeout * attempts + probe.retry_gap * probe.probe_retries;
    probe.probe_interval + one_probe * 2 + wal_timeout + mirror_down_grace
}

/// Whether an error says a content (or the coordinator, waiting on one) was unavailable.
fn is_unavailable(error: &str) -> bool {
    [
        "unavailable",
        "cannot reach its primary",
        "lost the primary",
        "did not answer",
        "connection to the coordinator lost",
    ]
    .iter()
    .any(|m| error.contains(m))
}

/// The contents an unavailability error names (`all` for "all segment databases are
/// unavailable"); `None` if it is no unavailability error or names no content.
fn named_contents(error: &str, all: &[i16]) -> Option<Vec<i16>> {
    if !is_unavailable(error) {
        return None;
    }
    if error.contains("all segment databases are unavailable") {
        return Some(all.to_vec());
    }
    let mut out = Vec::new();
    let mut rest = error;
    while let Some(i) = rest.find("content ") {
        rest = &rest[i + "content ".len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(c) = digits.parse::<i16>() {
            if all.contains(&c) && !out.contains(&c) {
                out.push(c);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `faults` in ms since the workload started at `workload_started_ms` (the history's clock).
pub fn check(
    label: Label,
    faults: &[ScheduledFault],
    segments: &[SegmentConfig],
    txns: &[TxnRecord],
    workload_started_ms: u64,
    end_ms: u64,
    window: Duration,
) -> Vec<Violation> {
    if label != Label::MustStayAvailable {
        return Vec::new();
    }
    let w = window.as_millis() as u64;
    let exp = exposure(faults, segments, end_ms);
    let mut contents: Vec<i16> = segments.iter().map(|s| s.content).collect();
    contents.dedup();
    let mut excuses: BTreeMap<i16, Vec<(u64, u64)>> = BTreeMap::new();
    for s in segments {
        for (a, b) in exp.per_dbid.get(&s.dbid).into_iter().flatten() {
            let e = excuses.entry(s.content).or_default();
            e.push((*a, a + w));
            e.push((*b, b.saturating_add(w)));
        }
    }
    // Latency and loss slow everything down for as long as they last.
    let mut heal_at: BTreeMap<u32, u64> = BTreeMap::new();
    for f in faults.iter().filter(|f| f.fault.is_heal()) {
        heal_at.insert(f.episode, f.at_ms);
    }
    for f in faults {
        if matches!(
            f.fault,
            Fault::LatencySpike { .. } | Fault::PacketLoss { .. }
        ) {
            let end = heal_at.get(&f.episode).copied().unwrap_or(end_ms);
            for c in &contents {
                excuses
                    .entry(*c)
                    .or_default()
                    .push((f.at_ms, end.saturating_add(w)));
            }
        }
    }
    let mut violations = Vec::new();
    for t in txns {
        let (Some(done), Some(err)) = (t.completed_ms, t.error.as_deref()) else {
            continue;
        };
        if t.outcome == Some(crate::history::Outcome::Ok) {
            continue;
        }
        let at = done.saturating_sub(workload_started_ms);
        let mut touched: Vec<i16> = t.ops.iter().map(|o| o.content).collect();
        touched.sort_unstable();
        touched.dedup();
        let excused = |c: &i16| {
            excuses
                .get(c)
                .is_some_and(|spans| spans.iter().any(|(a, b)| *a <= at && at <= *b))
        };
        let named = named_contents(err, &contents);
        // An error that names its contents must be excused for each of them; one that names
        // none (a timeout) for at least one of the contents the transaction went to.
        let culprit = match &named {
            Some(named) => named.iter().find(|c| !excused(c)).copied(),
            None if is_unavailable(err) && !touched.iter().any(excused) => touched.first().copied(),
            None => None,
        };
        if let Some(c) = culprit {
            violations.push(Violation {
                checker: NAME,
                message: format!(
                    "content {c} was unavailable at {at} ms of the workload in a run that must stay available, outside the {w} ms detection window after every fault touching it: {err}"
                ),
                first_event: t.completion_event(),
            });
        }
        if violations.len() >= 20 {
            break;
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_unavailable_errors_name_their_contents() {
        let all = [0, 1, 2];
        assert_eq!(
            named_contents("content 1 is unavailable: no live instance", &all),
            Some(vec![1])
        );
        assert_eq!(
            named_contents(
                "content 2: cannot reach its primary: refused; transaction rolled back",
                &all
            ),
            Some(vec![2])
        );
        assert_eq!(
            named_contents("all segment databases are unavailable", &all),
            Some(vec![0, 1, 2])
        );
        let timeout = "connection to the coordinator lost: 10.0.0.1:5432 did not answer within 7s";
        assert!(is_unavailable(timeout));
        assert_eq!(named_contents(timeout, &all), None);
        assert!(!is_unavailable("duplicate key 5 on content 1"));
    }

    #[test]
    fn the_window_covers_a_probe_cycle_with_retries() {
        let probe = crate::world::sim_probe_settings();
        let w = detection_window(&probe, Duration::from_secs(3), Duration::from_secs(3));
        assert!(w > probe.probe_interval + probe.probe_timeout * (probe.probe_retries + 1));
    }
}
