//! Shrinking a failing seed's fault schedule: the workload stays the seed's, the schedule is cut
//! down greedily (delta debugging over episodes: halves, then smaller chunks, then single
//! episodes; then each remaining fault's downtime shortened), keeping only cuts after which the
//! run still fails the same way.

use serde::Serialize;

use crate::config::RunConfig;
use crate::nemesis::{self, ScheduledFault};
use crate::runner::{run_seed, SeedResult, Verdict};

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
    pub faults: Vec<ScheduledFault>,
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
    let (first, _) = run_seed(seed, cfg);
    let target = failure_of(&first)?;
    let original = first.faults.clone();
    let mut runs = 1u32;
    let mut best = original.clone();
    let mut best_result = first;
    let attempt = |candidate: &Vec<ScheduledFault>, runs: &mut u32| -> Option<SeedResult> {
        if *runs >= max_runs {
            return None;
        }
        *runs += 1;
        let mut c = cfg.clone();
        c.schedule = Some(candidate.clone());
        let (r, _) = run_seed(seed, &c);
        fails_with(&r, &target).then_some(r)
    };
    // Delta debugging over episodes: try dropping chunks of n, n = 2, 4, ... single episodes.
    let mut chunks = 2usize;
    loop {
        let eps = episodes(&best);
        if eps.is_empty() {
            break;
        }
        let size = eps.len().div_ceil(chunks.min(eps.len()));
        let mut cut = false;
        for chunk in eps.chunks(size) {
            let rest: Vec<u32> = eps.iter().copied().filter(|e| !chunk.contains(e)).collect();
            let candidate = keep(&best, &rest);
            if let Some(r) = attempt(&candidate, &mut runs) {
                best = candidate;
                best_result = r;
                cut = true;
                break;
            }
        }
        if cut {
            chunks = (chunks - 1).max(2);
        } else if size == 1 || runs >= max_runs {
            break;
        } else {
            chunks = (chunks * 2).min(eps.len());
        }
    }
    // Shorter downtimes: move each heal halfway to its fault, while the run still fails.
    for ep in episodes(&best) {
        for _ in 0..4 {
            let Some(start) = best.iter().find(|f| f.episode == ep && !f.fault.is_heal()) else {
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
            match attempt(&candidate, &mut runs) {
                Some(r) => {
                    best = candidate;
                    best_result = r;
                }
                None => break,
            }
        }
    }
    Some((
        Shrunk {
            seed,
            scenario: cfg.scenario.clone(),
            bugs: cfg.bugs.enabled(),
            checker: target,
            original_faults: original.len(),
            runs,
            faults: best,
        },
        best_result,
    ))
}

/// The command that replays a seed with a schedule file.
pub fn replay_with_schedule(seed: u64, cfg: &RunConfig, file: &str) -> String {
    format!(
        "{} --schedule {file}",
        crate::runner::replay_command(seed, cfg)
    )
}
