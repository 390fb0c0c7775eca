//! Shrinking a failing seed's fault schedule, greedily, keeping only cuts after which the run
//! still fails the same way:
//! 1. delta debugging over episodes (halves, then smaller chunks, then single episodes);
//! 2. each remaining fault's downtime shortened;
//! 3. each remaining episode moved earlier (fault and heal together);
//! 4. the fault phase, and with it the workload, cut short after the last entry.
//!
//! The workload is the seed's; step 4 is how it shrinks (clients stop when the fault phase
//! ends). The schedule file carries the shortened phase as `fault_time_ms`.

use std::time::Duration;

use serde::Serialize;

use crate::config::RunConfig;
use crate::nemesis::{self, ScheduledFault};
use crate::run::{run_seed_quiet, SeedResult, Verdict};

/// How a run failed: the checker that fired first, or the verdict class when no checker did
/// (a liveness failure, a crash).
pub fn failure_of(r: &SeedResult) -> Option<String> {
    if r.verdict == Verdict::Ok {
        return None;
    }
    Some(match r.violations.first() {
        Some(v) => v.checker.to_string(),
        None => format!("{:?}", r.verdict).to_lowercase(),
    })
}

/// Whether a result fails the way `target` names.
pub fn fails_with(r: &SeedResult, target: &str) -> bool {
    r.violations.iter().any(|v| v.checker == target)
        || (r.violations.is_empty() && failure_of(r).as_deref() == Some(target))
}

/// A shrunk schedule, as written to a file (`hasim replay --schedule` reads its `faults`).
#[derive(Clone, Debug, Serialize)]
pub struct Shrunk {
    pub seed: u64,
    pub scenario: String,
    pub bugs: Vec<&'static str>,
    /// The checker (or verdict class) the original and the shrunk schedule both fail.
    pub checker: String,
    pub original_faults: usize,
    pub runs: u32,
    /// Simulated ms of the fault phase (and of the workload) in the original run and in the
    /// shrunk one; `replay --schedule` runs the file's.
    pub original_fault_time_ms: u64,
    pub fault_time_ms: u64,
    pub faults: Vec<ScheduledFault>,
}

/// Applies a schedule file (`hasim shrink` output, a result line, or an array of faults) to
/// `cfg`: its faults, and its `fault_time_ms` when it has one. Changes nothing on an error.
pub fn apply_schedule_file(cfg: &mut RunConfig, text: &str) -> Result<(), String> {
    let faults = nemesis::parse_schedule(text)?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let fault_time = match value.get("fault_time_ms") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(ms) if ms > 0 => Some(Duration::from_millis(ms)),
            _ => return Err("fault_time_ms: must be a whole number of ms above 0".into()),
        },
    };
    if let (Some(t), Some(last)) = (fault_time, faults.iter().map(|f| f.at_ms).max()) {
        if last > t.as_millis() as u64 {
            return Err(format!(
                "fault_time_ms: {} is before the last fault entry at {last} ms",
                t.as_millis()
            ));
        }
    }
    if let Some(t) = fault_time {
        cfg.fault_time = t;
    }
    cfg.schedule = Some(faults);
    Ok(())
}

/// The episodes of a schedule, in order of their first entry.
fn episodes(faults: &[ScheduledFault]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for f in faults {
        if !out.contains(&f.episode) {
            out.push(f.episode);
        }
    }
    out
}

fn keep(faults: &[ScheduledFault], episodes: &[u32]) -> Vec<ScheduledFault> {
    faults
        .iter()
        .filter(|f| episodes.contains(&f.episode))
        .cloned()
        .collect()
}

/// Shrinks the schedule seed `seed` fails with under `cfg`. `None` if the seed passes. At most
/// `max_runs` runs are spent.
pub fn shrink(seed: u64, cfg: &RunConfig, max_runs: u32) -> Option<(Shrunk, SeedResult)> {
    let first = run_seed_quiet(seed, cfg);
    let target = failure_of(&first)?;
    let original = first.faults.clone();
    let mut s = Shrinker {
        seed,
        cfg,
        max_runs,
        target,
        runs: 1,
        best: original.clone(),
        best_result: first,
        fault_time: cfg.fault_time,
    };
    s.drop_episodes();
    s.shorten_downtimes();
    s.move_episodes_earlier();
    s.shorten_fault_phase();
    Some((
        Shrunk {
            seed,
            scenario: cfg.scenario.clone(),
            bugs: cfg.bugs.enabled(),
            checker: s.target,
            original_faults: original.len(),
            runs: s.runs,
            original_fault_time_ms: cfg.fault_time.as_millis() as u64,
            fault_time_ms: s.fault_time.as_millis() as u64,
            faults: s.best,
        },
        s.best_result,
    ))
}

/// A shrink under way: the smallest schedule found that still fails with `target`, and the
/// runs spent.
struct Shrinker<'a> {
    seed: u64,
    cfg: &'a RunConfig,
    max_runs: u32,
    target: String,
    runs: u32,
    best: Vec<ScheduledFault>,
    best_result: SeedResult,
    fault_time: Duration,
}

impl Shrinker<'_> {
    /// Runs `candidate` with a fault phase of `fault_time`; its result if it still fails the
    /// same way (`None` also once the runs are spent).
    fn attempt_for(
        &mut self,
        candidate: &[ScheduledFault],
        fault_time: Duration,
    ) -> Option<SeedResult> {
        if self.runs >= self.max_runs {
            return None;
        }
        self.runs += 1;
        let mut c = self.cfg.clone();
        c.schedule = Some(candidate.to_vec());
        c.fault_time = fault_time;
        let r = run_seed_quiet(self.seed, &c);
        fails_with(&r, &self.target).then_some(r)
    }

    fn attempt(&mut self, candidate: &[ScheduledFault]) -> Option<SeedResult> {
        self.attempt_for(candidate, self.cfg.fault_time)
    }

    /// Keeps `candidate` as the best schedule if the run still fails with it.
    fn keep_if_failing(&mut self, candidate: Vec<ScheduledFault>) -> bool {
        match self.attempt(&candidate) {
            Some(r) => {
                self.best = candidate;
                self.best_result = r;
                true
            }
            None => false,
        }
    }

    /// Delta debugging over episodes: try dropping chunks of n, n = 2, 4, ... single episodes.
    fn drop_episodes(&mut self) {
        let mut chunks = 2usize;
        loop {
            let eps = episodes(&self.best);
            if eps.is_empty() {
                break;
            }
            let size = eps.len().div_ceil(chunks.min(eps.len()));
            let mut cut = false;
            for chunk in eps.chunks(size) {
                let rest: Vec<u32> = eps.iter().copied().filter(|e| !chunk.contains(e)).collect();
                let candidate = keep(&self.best, &rest);
                if let Some(r) = self.attempt(&candidate) {
                    self.best = candidate;
                    self.best_result = r;
                    cut = true;
                    break;
                }
            }
            if cut {
                chunks = (chunks - 1).max(2);
            } else if size == 1 || self.runs >= self.max_runs {
                break;
            } else {
                chunks = (chunks * 2).min(eps.len());
            }
        }
    }

    /// Shorter downtimes: move each heal halfway to its fault, while the run still fails.
    fn shorten_downtimes(&mut self) {
        for ep in episodes(&self.best) {
            for _ in 0..4 {
                let best = &self.best;
                let Some(start) = best.iter().find(|f| f.episode == ep && !f.fault.is_heal())
                else {
                    break;
                };
                let Some(heal) = best
                    .iter()
                    .position(|f| f.episode == ep && f.fault.is_heal())
                else {
                    break;
                };
                let gap = best[heal].at_ms.saturating_sub(start.at_ms);
                if gap < 200 {
                    break;
                }
                let mut candidate = best.clone();
                candidate[heal].at_ms = start.at_ms + gap / 2;
                nemesis::sort(&mut candidate);
                if !self.keep_if_failing(candidate) {
                    break;
                }
            }
        }
    }

    /// Earlier episodes: move each (fault and heal together) halfway towards the start of the
    /// episode before it, while the run still fails.
    fn move_episodes_earlier(&mut self) {
        for ep in episodes(&self.best) {
            for _ in 0..4 {
                let best = &self.best;
                let Some(start) = best.iter().find(|f| f.episode == ep).map(|f| f.at_ms) else {
                    break;
                };
                let floor = best
                    .iter()
                    .filter(|f| f.episode != ep && f.at_ms <= start)
                    .map(|f| f.at_ms)
                    .max()
                    .unwrap_or(0);
                let shift = (start - floor) / 2;
                if shift < 100 {
                    break;
                }
                let mut candidate = best.clone();
                for f in candidate.iter_mut().filter(|f| f.episode == ep) {
                    f.at_ms -= shift;
                }
                nemesis::sort(&mut candidate);
                if !self.keep_if_failing(candidate) {
                    break;
                }
            }
        }
    }

    /// A shorter fault phase (and workload): halve the time left after the last entry.
    fn shorten_fault_phase(&mut self) {
        let last = self.best.iter().map(|f| f.at_ms).max().unwrap_or(0);
        for _ in 0..6 {
            let left = (self.fault_time.as_millis() as u64).saturating_sub(last);
            if left < 500 {
                break;
            }
            let candidate = Duration::from_millis(last + left / 2);
            let best = self.best.clone();
            match self.attempt_for(&best, candidate) {
                Some(r) => {
                    self.fault_time = candidate;
                    self.best_result = r;
                }
                None => break,
            }
        }
    }
}

/// The command that replays a seed with a schedule file.
pub fn replay_with_schedule(seed: u64, cfg: &RunConfig, file: &str) -> String {
    format!(
        "{} --schedule {file}",
        crate::run::replay_command(seed, cfg)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"fault_time_ms": 9000, "faults": [
        {"at_ms": 1000, "episode": 0, "kind": "host-crash", "host": "sdw1"},
        {"at_ms": 4000, "episode": 0, "kind": "host-restart", "host": "sdw1"}]}"#;

    #[test]
    fn a_schedule_file_sets_the_faults_and_the_fault_phase() {
        let mut cfg = RunConfig::pair();
        apply_schedule_file(&mut cfg, FILE).unwrap();
        assert_eq!(cfg.fault_time, Duration::from_secs(9));
        assert_eq!(cfg.schedule.as_ref().map(Vec::len), Some(2));
        // Without the field, the fault phase stays the configuration's.
        let mut cfg = RunConfig::pair();
        let before = cfg.fault_time;
        apply_schedule_file(&mut cfg, &FILE.replace(r#""fault_time_ms": 9000, "#, "")).unwrap();
        assert_eq!(cfg.fault_time, before);
    }

    #[test]
    fn a_bad_fault_phase_names_the_field_and_changes_nothing() {
        for (bad, says) in [
            ("0", "above 0"),
            ("-3", "whole number"),
            ("\"9s\"", "whole number"),
            ("3000", "before the last fault entry at 4000 ms"),
        ] {
            let mut cfg = RunConfig::pair();
            let before = cfg.fault_time;
            let text = FILE.replace("9000", bad);
            let e = apply_schedule_file(&mut cfg, &text).unwrap_err();
            assert!(
                e.starts_with("fault_time_ms: ") && e.contains(says),
                "{bad}: {e}"
            );
            assert_eq!(cfg.fault_time, before);
            assert!(cfg.schedule.is_none());
        }
    }
}
