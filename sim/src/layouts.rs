//! Mirror layouts under host failures, by simulation: the cluster is built with a layout, `k`
//! random segment hosts (drawn from the seed) crash at once, the real prober acts, and then the
//! catalog and the instances tell whether every content still has a live instance serving as
//! primary, and how many acting primaries each surviving host runs. Over many seeds this
//! measures what `reports::layouts` computes exactly. The shapes studied, and their
//! placements as the report reads them, come from here too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rand_chacha::rand_core::Rng;

use cluster::client::Client;
use cluster::model::catalog::{Mode, Role, Status};
use cluster::model::layout::Layout;
use cluster::model::observe::Fact;
use reports::layout_report;
use reports::layouts::{Placement, Simulated};

use crate::config::RunConfig;
use crate::observer::Recorder;
use crate::run::stream;
use crate::world::World;

/// How long the prober gets to act after the crash: enough for detection with every retry
/// (interval + (retries + 1) x timeout + retries x gap) and the promotions, with margin.
pub const SETTLE: Duration = Duration::from_secs(20);

/// How long the cluster may take to come up with every pair in sync.
pub const SYNC_BOUND: Duration = Duration::from_secs(60);

/// Probe rounds the prober gets before the cluster counts as started.
pub const WARM_UP: Duration = Duration::from_secs(10);

/// One trial's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trial {
    pub failed: Vec<String>,
    /// Every content has an instance on a live host that the catalog lists as its up primary
    /// and that is the original primary or finished its promotion.
    pub available: bool,
    /// Acting primaries per live segment host, from the catalog.
    pub acting: BTreeMap<String, usize>,
}

/// A cluster shape the report studies, and the layouts compared on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub hosts: usize,
    pub primaries_per_host: usize,
    pub layouts: Vec<Layout>,
}

/// The shapes the report studies: the mirroring document's example (8 hosts x 4 primaries,
/// blocks of 4) and the simulator's standard cluster (4 hosts x 2 primaries, blocks of 2).
pub fn standard_shapes() -> Vec<Shape> {
    vec![
        Shape {
            hosts: 8,
            primaries_per_host: 4,
            layouts: vec![Layout::Group, Layout::Spread, Layout::Block { size: 4 }],
        },
        Shape {
            hosts: 4,
            primaries_per_host: 2,
            layouts: vec![Layout::Group, Layout::Spread, Layout::Block { size: 2 }],
        },
    ]
}

impl Shape {
    /// The shape as the report reads it: every layout's placement, from the cluster's own
    /// layout code.
    pub fn placed(&self) -> anyhow::Result<layout_report::Shape> {
        let placements = self
            .layouts
            .iter()
            .map(|l| placement(*l, self.hosts, self.primaries_per_host))
            .collect::<anyhow::Result<_>>()?;
        Ok(layout_report::Shape {
            hosts: self.hosts,
            primaries_per_host: self.primaries_per_host,
            placements,
        })
    }
}

/// The standard shapes, placed: the layout section's input.
pub fn standard_shapes_placed() -> anyhow::Result<Vec<layout_report::Shape>> {
    standard_shapes().iter().map(Shape::placed).collect()
}

/// Where `layout` puts each content's primary and mirror, hosts numbered from 0.
pub fn placement(layout: Layout, hosts: usize, per_host: usize) -> anyhow::Result<Placement> {
    let placed = layout
        .place(hosts, per_host, hosts * per_host)
        .map_err(|e| anyhow::anyhow!("layout {layout}: {e}"))?;
    Ok(Placement {
        layout: layout.to_string(),
        hosts,
        primaries_per_host: per_host,
        pairs: placed
            .iter()
            .map(|p| (p.primary_host, p.mirror_host))
            .collect(),
    })
}

/// The configuration of a layout trial: the standard cluster's settings with this shape.
pub fn config(layout: Layout, hosts: usize, per_host: usize) -> RunConfig {
    RunConfig {
        scenario: "layouts".into(),
        segment_hosts: hosts,
        contents: hosts * per_host,
        layout,
        clients: 0,
        ..RunConfig::standard()
    }
}

/// A trial's outcome from the catalog after the crash of `failed`: whether every content has a
/// live, up primary that is its original primary or a finished promotion, and how many acting
/// primaries each surviving host (`hosts`) runs.
fn outcome(
    catalog: &cluster::model::catalog::Catalog,
    facts: &[crate::observer::Observed],
    failed: Vec<String>,
    hosts: &[String],
) -> Trial {
    let promoted: Vec<u16> = facts
        .iter()
        .filter_map(|o| match &o.fact {
            Fact::Promoted { dbid, .. } => Some(*dbid),
            _ => None,
        })
        .collect();
    let live = |host: &str| !failed.iter().any(|f| f == host);
    let mut acting: BTreeMap<String, usize> = hosts.iter().map(|h| (h.clone(), 0)).collect();
    let mut available = true;
    for content in catalog.contents() {
        let serving = catalog.segments.values().find(|s| {
            s.content == content
                && s.role == Role::Primary
                && s.status == Status::Up
                && live(&s.hostname)
                && (s.preferred_role == Role::Primary || promoted.contains(&s.dbid))
        });
        match serving {
            Some(s) => *acting.entry(s.hostname.clone()).or_default() += 1,
            None => available = false,
        }
    }
    Trial {
        failed,
        available,
        acting,
    }
}

/// Crashes `k` hosts drawn from `seed` at once, lets the prober act, reads the outcome.
pub fn trial(seed: u64, cfg: &RunConfig, k: usize) -> Result<Trial, String> {
    let cfg = cfg.clone();
    std::thread::Builder::new()
        .name(format!("layouts-{seed}"))
        .stack_size(16 << 20)
        .spawn(move || {
            // The trial's log is not kept (a layout trial checks the catalog, not the log).
            crate::trace::begin_capture();
            let mut rt =
                madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
            rt.set_time_limit(SETTLE * 2 + SYNC_BOUND * 2);
            let out = rt.block_on(async {
                let out = simulate(seed, cfg, k).await;
                crate::run::release_every_task(&madsim::runtime::Handle::current()).await;
                out
            });
            crate::trace::end_capture();
            out
        })
        .expect("spawn trial thread")
        .join()
        .map_err(|_| format!("seed {seed}: the simulation panicked"))?
}

async fn simulate(seed: u64, cfg: RunConfig, k: usize) -> Result<Trial, String> {
    let recorder = Recorder::default();
    let mut world = World::build_observed(&cfg, stream(seed, "disk").next_u64(), recorder.hook());
    let handle = madsim::runtime::Handle::current();
    let admin = handle
        .create_node()
        .name("admin")
        .ip("10.0.1.1".parse().unwrap())
        .build();
    crate::world::credentials::enroll(&admin, cluster::io::auth::PeerIdentity::Admin);
    let addr = world.coordinator_addr.clone();
    let read = move || {
        let addr = addr.clone();
        admin.spawn(async move {
            let mut client = Client::new(vec![addr], Duration::from_secs(5));
            let mut last = String::new();
            for _ in 0..40 {
                match client.catalog().await {
                    Ok(c) => return Ok(c),
                    Err(e) => last = e.to_string(),
                }
                madsim::time::sleep(Duration::from_millis(500)).await;
            }
            Err(format!("catalog unreadable: {last}"))
        })
    };
    // Up and mirrored: the catalog starts out saying every pair is in sync, so first let the
    // prober see the mirrors catch up from nothing (it records them not in sync meanwhile),
    // then wait for the catalog to show every instance up and every pair in sync. Only an
    // in-sync mirror may be promoted; crashing earlier would measure start-up instead.
    madsim::time::sleep(WARM_UP).await;
    let mut waited = Duration::ZERO;
    loop {
        let catalog = read().await.map_err(|e| e.to_string())??;
        if catalog
            .segments
            .values()
            .all(|s| s.status == Status::Up && s.mode == Mode::Synced)
        {
            break;
        }
        if waited >= SYNC_BOUND {
            return Err(format!(
                "the cluster was not fully in sync {SYNC_BOUND:?} after start"
            ));
        }
        madsim::time::sleep(Duration::from_secs(1)).await;
        waited += Duration::from_secs(1);
    }

    let mut hosts = world.segment_host_names();
    let mut rng = stream(seed, "layouts");
    let mut failed = Vec::new();
    for _ in 0..k.min(hosts.len()) {
        let i = (rng.next_u64() % hosts.len() as u64) as usize;
        failed.push(hosts.remove(i));
    }
    failed.sort();
    for h in &failed {
        world.kill_host(h);
    }
    madsim::time::sleep(SETTLE).await;
    let catalog = read().await.map_err(|e| e.to_string())??;

    Ok(outcome(&catalog, &recorder.facts(), failed, &hosts))
}

/// Runs `seeds` trials for each k in `ks` on `jobs` threads; returns the simulated figures.
pub fn measure(
    layout: Layout,
    hosts: usize,
    per_host: usize,
    ks: &[usize],
    seeds: std::ops::Range<u64>,
    jobs: usize,
) -> Result<Simulated, String> {
    let cfg = config(layout, hosts, per_host);
    layout
        .validate(hosts, per_host)
        .map_err(|e| format!("layout {layout}: {e}"))?;
    let work: Vec<(usize, u64)> = ks
        .iter()
        .flat_map(|&k| seeds.clone().map(move |s| (k, s)))
        .collect();
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..jobs.max(1))
        .map(|_| {
            let (work, next, tx, cfg) = (work.clone(), next.clone(), tx.clone(), cfg.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(k, seed)) = work.get(i) else {
                    return;
                };
                if tx.send((k, seed, trial(seed, &cfg, k))).is_err() {
                    return;
                }
            })
        })
        .collect();
    drop(tx);
    let mut survive: BTreeMap<usize, (u64, u64)> = ks.iter().map(|k| (*k, (0, 0))).collect();
    let mut max_acting = None;
    let mut first_error = None;
    for (k, seed, result) in rx {
        match result {
            Ok(t) => {
                let e = survive.entry(k).or_default();
                e.0 += t.available as u64;
                e.1 += 1;
                if k == 1 {
                    let m = t.acting.values().copied().max().unwrap_or(0);
                    max_acting = Some(max_acting.map_or(m, |x: usize| x.max(m)));
                }
            }
            Err(e) => {
                first_error.get_or_insert(format!("k = {k}, seed {seed}: {e}"));
            }
        }
    }
    for w in workers {
        let _ = w.join();
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(Simulated {
        layout: layout.to_string(),
        hosts,
        primaries_per_host: per_host,
        survive: survive.into_iter().map(|(k, (s, n))| (k, s, n)).collect(),
        max_acting_after_one: max_acting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `reports` reads the placed shapes as data in its own tests; that file must be what the
    /// cluster's layout code places. `SIM_WRITE_SHAPES=1` rewrites it.
    #[test]
    fn the_reports_shape_fixture_is_what_the_cluster_places() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../reports/tests/data/shapes.json"
        );
        let placed = standard_shapes_placed().unwrap();
        let want = serde_json::to_string_pretty(&placed).unwrap() + "\n";
        if std::env::var_os("SIM_WRITE_SHAPES").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let fixture = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            fixture, want,
            "rerun with SIM_WRITE_SHAPES=1 to rewrite {path}"
        );
    }
}
