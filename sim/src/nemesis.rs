//! The nemesis: a fault schedule drawn from the seed before the run starts, then carried out
//! at its simulated times. Every fault is recorded with the time it happened.

use std::time::Duration;

use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::RunConfig;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// Power loss: every process on the host dies; unsynced writes are lost.
    HostCrash {
        host: String,
    },
    HostRestart {
        host: String,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct ScheduledFault {
    pub at_ms: u64,
    #[serde(flatten)]
    pub fault: Fault,
}

fn uniform(rng: &mut ChaCha8Rng, min: Duration, max: Duration) -> Duration {
    let span = max.saturating_sub(min).as_micros() as u64;
    min + Duration::from_micros(if span == 0 { 0 } else { rng.next_u64() % span })
}

/// Draws the schedule: host crashes at exponential-ish intervals during `fault_time`, each host
/// coming back after a drawn downtime. Crashes of different hosts may overlap (double faults);
/// a host already down is not crashed again.
pub fn plan(rng: &mut ChaCha8Rng, cfg: &RunConfig, hosts: &[String]) -> Vec<ScheduledFault> {
    let mut faults = Vec::new();
    let mut back_at: Vec<Duration> = vec![Duration::ZERO; hosts.len()];
    let mut t = Duration::ZERO;
    let mean = cfg.crash_every_mean.as_micros() as f64;
    loop {
        // Exponential inter-arrival from a uniform draw in (0, 1].
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        t += Duration::from_micros((-(1.0 - u).ln() * mean) as u64);
        if t >= cfg.fault_time {
            break;
        }
        let h = (rng.next_u64() % hosts.len() as u64) as usize;
        if back_at[h] > t {
            continue;
        }
        let downtime = uniform(rng, cfg.downtime_min, cfg.downtime_max);
        let restart = (t + downtime).min(cfg.fault_time);
        back_at[h] = restart + Duration::from_millis(1);
        faults.push(ScheduledFault {
            at_ms: t.as_millis() as u64,
            fault: Fault::HostCrash {
                host: hosts[h].clone(),
            },
        });
        faults.push(ScheduledFault {
            at_ms: restart.as_millis() as u64,
            fault: Fault::HostRestart {
                host: hosts[h].clone(),
            },
        });
    }
    faults.sort_by_key(|f| (f.at_ms, matches!(f.fault, Fault::HostCrash { .. })));
    faults
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn a_host_is_never_crashed_while_down_and_always_comes_back() {
        let cfg = RunConfig::pair();
        let hosts = vec!["sdw1".to_string(), "sdw2".to_string()];
        for seed in 0..200 {
            let faults = plan(&mut ChaCha8Rng::seed_from_u64(seed), &cfg, &hosts);
            for host in &hosts {
                let mut down = false;
                for f in &faults {
                    match &f.fault {
                        Fault::HostCrash { host: h } if h == host => {
                            assert!(!down, "seed {seed}: {host} crashed while down");
                            down = true;
                        }
                        Fault::HostRestart { host: h } if h == host => {
                            assert!(down);
                            down = false;
                        }
                        _ => {}
                    }
                }
                assert!(!down, "seed {seed}: {host} never restarted");
            }
        }
    }
}
