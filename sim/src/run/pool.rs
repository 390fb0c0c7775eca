//! Runs a list of seeds on worker threads and hands their results back in seed-list order, so
//! output is the same whatever the number of jobs. The caller may stop early (a hunt stops at
//! its first failing seed); seeds already running then finish and are dropped.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use crate::config::RunConfig;
use crate::run::{run_seed, run_seed_quiet, SeedResult, Verdict};

/// One seed's run: its result, its captured log, and with `twice`, how its second run differed.
pub struct SeedRun {
    pub result: SeedResult,
    pub log: Vec<u8>,
    pub mismatch: Option<String>,
}

/// Runs `seeds` on `jobs` workers; calls `each` in list order until it breaks.
pub fn run_seeds(
    cfg: &RunConfig,
    seeds: &[u64],
    jobs: u32,
    twice: bool,
    mut each: impl FnMut(SeedRun) -> ControlFlow<()>,
) {
    let seeds: Arc<[u64]> = seeds.into();
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..jobs.max(1))
        .map(|_| {
            let (next, stop, tx, cfg, seeds) = (
                next.clone(),
                stop.clone(),
                tx.clone(),
                cfg.clone(),
                seeds.clone(),
            );
            std::thread::spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else {
                    return;
                };
                let run = run_one(seed, &cfg, twice);
                if tx.send((i, run)).is_err() {
                    return;
                }
            })
        })
        .collect();
    drop(tx);
    let mut pending = std::collections::BTreeMap::new();
    let mut expected = 0usize;
    'receive: for (i, run) in &rx {
        pending.insert(i, run);
        while let Some(run) = pending.remove(&expected) {
            expected += 1;
            if each(run).is_break() {
                stop.store(true, Ordering::Relaxed);
                break 'receive;
            }
        }
    }
    drop(rx);
    for w in workers {
        let _ = w.join();
    }
}

/// Runs a seed without its log; a failing seed, or every seed with `twice`, runs again with its
/// log, and the two runs must give the same trace hash (the log is only an observer).
fn run_one(seed: u64, cfg: &RunConfig, twice: bool) -> SeedRun {
    let quiet = run_seed_quiet(seed, cfg);
    if quiet.verdict == Verdict::Ok && !twice {
        return SeedRun {
            result: quiet,
            log: Vec::new(),
            mismatch: None,
        };
    }
    let (result, log) = run_seed(seed, cfg);
    let mismatch = (result.trace_hash != quiet.trace_hash).then(|| {
        // Where the runs part, if two logged runs part too.
        let (again, again_log) = run_seed(seed, cfg);
        let divergence = if again.trace_hash != result.trace_hash {
            format!(
                "; logged again: {}; first divergence: {}",
                again.trace_hash,
                crate::trace::first_divergence(&log, &again_log)
            )
        } else {
            "; logged again: the same as with the log".to_string()
        };
        format!(
            "trace hash {} without the log, then {} with it{divergence}",
            quiet.trace_hash, result.trace_hash
        )
    });
    SeedRun {
        result,
        log,
        mismatch,
    }
}

/// `--shard K/N`: the K-th of N disjoint slices of a seed range (K counts from 1). Seed `s` of
/// `A..B` belongs to shard `(s - A) % N + 1`, so the N shards' outputs, concatenated and sorted
/// by seed, are exactly the unsharded run's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("shard {s:?}: expected K/N, e.g. 3/8 (K counts from 1)"))?;
        let index = k
            .trim()
            .parse::<u64>()
            .map_err(|e| format!("shard {s:?}: K {k:?}: {e}"))?;
        let count = n
            .trim()
            .parse::<u64>()
            .map_err(|e| format!("shard {s:?}: N {n:?}: {e}"))?;
        if count == 0 {
            return Err(format!("shard {s:?}: N must be at least 1"));
        }
        if index == 0 || index > count {
            return Err(format!(
                "shard {s:?}: K must be between 1 and N={count} (shards count from 1)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether the seed at `offset` from the range's start is this shard's.
    pub fn owns(&self, offset: u64) -> bool {
        offset % self.count == self.index - 1
    }

    /// The seeds of `start..end` this shard runs, in order.
    pub fn seeds(&self, start: u64, end: u64) -> Vec<u64> {
        (start..end).filter(|s| self.owns(s - start)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shards_are_one_based_and_bad_ones_are_refused_with_the_rule() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        assert_eq!(Shard::parse("4/4"), Ok(Shard { index: 4, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "1", "a/2", "1/b", "-1/3", ""] {
            let err = Shard::parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(Shard::parse("0/4")
            .unwrap_err()
            .contains("between 1 and N=4"));
    }

    proptest! {
        #[test]
        fn no_shard_string_panics(s in "\\PC*") {
            let _ = Shard::parse(&s);
        }

        #[test]
        fn the_shards_of_a_range_partition_it(start in 0u64..1000, len in 1u64..500, n in 1u64..20) {
            let mut all: Vec<u64> = (1..=n)
                .flat_map(|k| Shard { index: k, count: n }.seeds(start, start + len))
                .collect();
            all.sort_unstable();
            prop_assert_eq!(all, (start..start + len).collect::<Vec<_>>());
        }
    }
}
