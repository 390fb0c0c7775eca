//! Swarm testing: every seed of the `swarm` scenario draws its own cluster, settings and fault
//! mix from its own random stream, some fault kinds switched off entirely, so that different
//! seeds stress different corners (Groce et al., "Swarm testing"; TigerBeetle's VOPR does the
//! same). What a seed drew is printed first in its result.

use std::time::Duration;

use rand_chacha::rand_core::Rng;
use serde::Serialize;

use cluster::coordinator::prober::ProbeSettings;
use cluster::model::layout::Layout;
use cluster::segment::ReplicationMode;

use crate::config::RunConfig;
use crate::nemesis::{FaultKind, FaultWeights};

/// The options one seed drew.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SwarmOptions {
    pub segment_hosts: usize,
    pub primaries_per_host: usize,
    pub mirrors: bool,
    /// Where mirrors go: group, spread or block (only layouts valid for the drawn cluster).
    pub layout: Layout,
    pub replication: ReplicationMode,
    pub clients: u32,
    pub cache_blocks_max: usize,
    pub probe: ProbeSettings,
    pub fault_every_mean_ms: u64,
    /// Every fault kind with its weight; 0 is switched off for this seed.
    pub fault_weights: FaultWeights,
    /// A standby coordinator on `smdw` (initialized at start-up).
    pub standby: bool,
}

impl SwarmOptions {
    /// One line for people: the cluster, the settings and the fault kinds switched on.
    pub fn summary(&self) -> String {
        let on: Vec<String> = self
            .fault_weights
            .0
            .iter()
            .filter(|(_, w)| **w > 0)
            .map(|(k, w)| format!("{k}:{w}"))
            .collect();
        format!(
            "{} hosts x {} primaries, mirrors {} ({}), standby {}, {:?} replication, {} clients, cache {} blocks, probe every {:?} timeout {:?} retries {} gap {:?}, a fault every {} ms on average: {}",
            self.segment_hosts,
            self.primaries_per_host,
            if self.mirrors { "on" } else { "off" },
            self.layout,
            if self.standby { "on" } else { "off" },
            self.replication,
            self.clients,
            self.cache_blocks_max,
            self.probe.probe_interval,
            self.probe.probe_timeout,
            self.probe.probe_retries,
            self.probe.retry_gap,
            self.fault_every_mean_ms,
            on.join(" ")
        )
    }
}

fn between(rng: &mut impl Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi - lo + 1)
}

/// Draws a seed's options from its `swarm` stream. The replication mode stays the scenario's
/// (asynchronous replication may lose acknowledged commits, so only a scenario that asks for it
/// gets it).
pub fn draw(seed: u64, base: &RunConfig) -> SwarmOptions {
    let mut rng = crate::random::stream(seed, "swarm");
    let segment_hosts = between(&mut rng, 2, 5) as usize;
    let primaries_per_host = between(&mut rng, 1, 3) as usize;
    let mirrors = between(&mut rng, 0, 9) < 8;
    let candidates: Vec<Layout> = [Layout::Group, Layout::Spread, Layout::Block { size: 2 }]
        .into_iter()
        .filter(|l| l.validate(segment_hosts, primaries_per_host).is_ok())
        .collect();
    let layout = candidates[(rng.next_u64() % candidates.len() as u64) as usize];
    let clients = between(&mut rng, 2, 10) as u32;
    let cache_blocks_max = between(&mut rng, 4, 64) as usize;
    let probe_timeout = Duration::from_millis(between(&mut rng, 500, 2000));
    let probe = ProbeSettings {
        probe_interval: Duration::from_millis(between(&mut rng, 1000, 4000)),
        probe_timeout,
        probe_retries: between(&mut rng, 1, 4) as u32,
        retry_gap: Duration::from_millis(between(&mut rng, 200, 1000)),
        starting_probes_max: between(&mut rng, 3, 10) as u32,
    };
    let fault_every_mean_ms = between(&mut rng, 3000, 10_000);
    let base_weights = FaultWeights::full();
    let mut weights = FaultWeights::only(&[]);
    for kind in FaultKind::ALL
        .into_iter()
        .filter(|k| !matches!(k, FaultKind::LateDelivery | FaultKind::CatalogBitFlip))
    {
        // A third of the kinds are off for this seed; the rest get a drawn weight.
        let on = between(&mut rng, 0, 2) > 0;
        let w = if on && possible(kind, mirrors) {
            base_weights.get(kind).max(1) * between(&mut rng, 1, 3) as u32
        } else {
            0
        };
        weights.set(kind, w);
    }
    if weights.0.values().all(|w| *w == 0) {
        weights.set(FaultKind::HostCrash, 1);
    }
    // Drawn last, so that the draws above stay what they were for every seed.
    let standby = between(&mut rng, 0, 1) == 1;
    // A kind added later is drawn after everything else, the same way.
    let late = FaultKind::LateDelivery;
    let w = if between(&mut rng, 0, 2) > 0 {
        base_weights.get(late).max(1) * between(&mut rng, 1, 3) as u32
    } else {
        0
    };
    weights.set(late, w);
    let catalog = FaultKind::CatalogBitFlip;
    let w = if between(&mut rng, 0, 2) > 0 {
        base_weights.get(catalog).max(1) * between(&mut rng, 1, 3) as u32
    } else {
        0
    };
    weights.set(catalog, w);
    SwarmOptions {
        segment_hosts,
        primaries_per_host,
        mirrors,
        layout,
        replication: base.replication,
        clients,
        cache_blocks_max,
        probe,
        fault_every_mean_ms,
        fault_weights: weights,
        standby,
    }
}

/// Kinds that need a mirror to make sense: a double fault, and a bit flip (the only copy of a
/// content, corrupt, is lost for good until restored from a backup).
fn possible(kind: FaultKind, mirrors: bool) -> bool {
    mirrors
        || !matches!(
            kind,
            FaultKind::DoubleFault
                | FaultKind::BitFlip
                | FaultKind::FsyncFail
                | FaultKind::WalBitFlip
                | FaultKind::ControlBitFlip
                | FaultKind::MisdirectedWrite
                | FaultKind::DiskReplaced
                | FaultKind::DatadirLost
        )
}

/// The run configuration of one seed of a swarm scenario; any other scenario as it is.
pub fn derive(seed: u64, base: &RunConfig) -> RunConfig {
    if !base.scenario.starts_with("swarm") {
        return base.clone();
    }
    let o = draw(seed, base);
    RunConfig {
        segment_hosts: o.segment_hosts,
        contents: o.segment_hosts * o.primaries_per_host,
        mirrors: o.mirrors,
        layout: o.layout,
        replication: o.replication,
        clients: o.clients,
        cache_blocks_max: o.cache_blocks_max,
        probe: o.probe.clone(),
        fault_every_mean: Duration::from_millis(o.fault_every_mean_ms),
        fault_weights: o.fault_weights.clone(),
        standby: o.standby,
        swarm: Some(o),
        ..base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_draw_different_options_within_bounds_and_stay_synchronous() {
        let base = RunConfig::swarm();
        let drawn: Vec<SwarmOptions> = (0..100).map(|s| draw(s, &base)).collect();
        assert_eq!(draw(7, &base), drawn[7], "same seed, same options");
        for o in &drawn {
            assert!((2..=5).contains(&o.segment_hosts));
            assert!((1..=3).contains(&o.primaries_per_host));
            assert_eq!(o.replication, ReplicationMode::Sync);
            assert!(o.probe.probe_timeout < o.probe.probe_interval * 2);
            assert!(o.fault_weights.0.values().any(|w| *w > 0));
            if !o.mirrors {
                assert_eq!(o.fault_weights.get(FaultKind::DoubleFault), 0);
            }
        }
        assert!(drawn.iter().any(|o| !o.mirrors) && drawn.iter().any(|o| o.mirrors));
        assert!(drawn.iter().any(|o| !o.standby) && drawn.iter().any(|o| o.standby));
        for o in &drawn {
            o.layout
                .validate(o.segment_hosts, o.primaries_per_host)
                .unwrap();
        }
        assert!(drawn.iter().any(|o| o.layout == Layout::Spread));
        for kind in FaultKind::ALL {
            assert!(
                drawn.iter().any(|o| o.fault_weights.get(kind) == 0)
                    && drawn.iter().any(|o| o.fault_weights.get(kind) > 0),
                "{kind} is on for some seeds and off for others"
            );
        }
    }
}
