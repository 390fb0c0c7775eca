//! The coordinator pair in randomized runs: which host acts as the coordinator, the
//! coordinator-crash fault (which takes the acting coordinator's host down), fencing a lost
//! coordinator before its standby is activated, activation and a new standby on whichever
//! coordinator host is free, as the operator agent (`operator/`) carries them out; and
//! the record of every activation, judged by the standby-catalog checker.
//!
//! The coordinator hosts are `mdw` (the coordinator at start-up) and `smdw` (its standby). Each
//! keeps one address for life, so clients that hold both addresses always find the acting
//! coordinator: the coordinator and any standby on a host listen there.

use std::sync::Arc;

use tracing::info;

use cluster::io::Disk;
use cluster::model::catalog::SegmentConfig;
use cluster::standby::Activation;
use cluster::wal::WAL_PATH;

use crate::config::RunConfig;
use crate::world::disk::SubDisk;
use crate::world::standby_host::{StandbyHost, STANDBY_DATADIR};
use crate::world::{ActingCoordinator, World, COORDINATOR_PORT};

/// One activation of a standby during a run.
#[derive(Clone, Debug)]
pub struct ActivationRecord {
    /// Simulated ms since the run began.
    pub at_ms: u64,
    /// The hosts of the lost coordinator and of the activated standby.
    pub from_host: String,
    pub to_host: String,
    pub activation: Activation,
    /// The activated standby's catalog WAL, and the lost coordinator's as its disk kept it,
    /// read at the activation.
    pub standby_wal: Vec<u8>,
    pub coordinator_wal: Vec<u8>,
}

/// An activation: the coordinator at address `deposed` replaced by the one at `successor`
/// (hosts' addresses, without ports), begun at `began_ms` (the operator ran
/// `activate-standby`) and seen through at `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Succession {
    pub began_ms: u64,
    pub at_ms: u64,
    pub deposed: String,
    pub successor: String,
}

fn read_wal(disk: &dyn Disk) -> Vec<u8> {
    let len = disk.len(WAL_PATH).unwrap_or(0);
    disk.read_at(WAL_PATH, 0, len as usize).unwrap_or_default()
}

impl World {
    /// The hosts that can hold a coordinator or its standby: `mdw`, and `smdw` when the run
    /// places one.
    pub fn coordinator_hosts(&self) -> Vec<String> {
        let mut hosts = vec!["mdw".to_string()];
        hosts.extend(self.standby.as_ref().map(|s| s.hostname.clone()));
        hosts
    }

    /// The address a coordinator (or a standby) on `host` listens at.
    pub fn coordinator_addr_on(&self, host: &str) -> Option<String> {
        if host == "mdw" {
            return Some(self.coordinator_addr.clone());
        }
        self.standby
            .as_ref()
            .filter(|s| s.hostname == host)
            .map(|s| s.addr.clone())
    }

    /// The coordinator-crash fault: power loss on the acting coordinator's host.
    pub fn crash_coordinator(&mut self) {
        let host = self.acting.host.clone();
        self.kill_host(&host);
        self.coordinator_crashed.push(host);
    }

    /// The heal of [`World::crash_coordinator`]: power back on the host it took down.
    pub fn restart_crashed_coordinator(&mut self) {
        let hosts = std::mem::take(&mut self.coordinator_crashed);
        for host in if hosts.is_empty() {
            vec!["mdw".to_string()]
        } else {
            hosts
        } {
            self.restart_host(&host);
        }
    }

    /// The coordinator-pair-crash fault: power loss on every coordinator host, the standby's
    /// first, then the acting coordinator's.
    pub fn crash_coordinator_pair(&mut self) {
        let acting = self.acting.host.clone();
        let mut hosts: Vec<String> = self
            .coordinator_hosts()
            .into_iter()
            .filter(|h| *h != acting)
            .collect();
        hosts.push(acting);
        for h in &hosts {
            self.kill_host(h);
        }
        info!(hosts = ?hosts, "power lost on both coordinator hosts");
        self.pair_crashed = hosts;
    }

    /// The heal of [`World::crash_coordinator_pair`]: power back on the standby's host only;
    /// the coordinator's host stays down until every fault is healed.
    pub fn restart_standby_of_pair(&mut self) {
        let mut hosts = std::mem::take(&mut self.pair_crashed);
        hosts.pop();
        for h in hosts {
            self.restart_host(&h);
        }
    }

    /// Whether coordinator host `host` is fenced (boots no coordinator).
    pub fn coordinator_fenced(&self, host: &str) -> bool {
        self.coordinator_boot
            .get(host)
            .is_some_and(|b| b.lock().unwrap().is_none())
    }

    /// Whether the coordinator that coordinator host `host` boots stopped by itself (it refused
    /// to start, or gave up) on a host that is up and not fenced: what `state` shows as a
    /// coordinator not running.
    pub fn coordinator_stopped(&self, host: &str) -> bool {
        let Some(h) = self.hosts.get(host) else {
            return false;
        };
        let booted = self
            .coordinator_boot
            .get(host)
            .is_some_and(|b| b.lock().unwrap().is_some());
        h.up && booted && h.processes[0].up && h.processes[0].stopped()
    }

    /// Stops whatever runs in coordinator host `host`'s process (a standby an activation
    /// left in an unknown state); the process comes back running what the host boots.
    pub fn restart_coordinator_process(&mut self, host: &str) {
        self.coordinator_pair_touched = true;
        let h = &self.hosts[host];
        if h.up {
            let id = h.processes[0].node.id();
            self.handle.kill(id);
            self.handle.restart(id);
            info!(host, "coordinator host process restarted");
        }
    }

    /// A standby whose own catalog already names it the coordinator (an activation took over
    /// and was cut short by a crash) is started as the coordinator from its data directory,
    /// as an administrator starts a promoted standby; in-doubt transactions are resolved by
    /// its resolver, as after any coordinator restart.
    pub fn resume_as_coordinator(&mut self, cfg: &RunConfig, host: &str, at_ms: u64) {
        self.take_over_acting(cfg, host, None, at_ms);
        self.restart_coordinator_process(host);
    }

    /// Fences the coordinator on `host` before its standby is activated (as an administrator
    /// makes sure a failed coordinator cannot come back beside the new one): from now on the
    /// host boots without it. Returns what the host booted before, for [`World::unfence`].
    pub fn fence_coordinator(
        &mut self,
        host: &str,
    ) -> Option<(cluster::coordinator::CoordinatorConfig, Arc<dyn Disk>)> {
        let boot = self.coordinator_boot.get(host)?;
        let before = boot.lock().unwrap().take();
        info!(host, "coordinator fenced: the host no longer starts it");
        before
    }

    /// Stops the coordinator that coordinator host `host` runs, if any, and fences it, before the
    /// host is made a standby's: an administrator stops the old coordinator before running
    /// `init-standby -s` there.
    pub fn retire_coordinator(&mut self, host: &str) {
        // The standby's data directory there is made anew: bits flipped in it are gone.
        let dir = format!("{}/", STANDBY_DATADIR.trim_matches('/'));
        self.catalog_wal_flips
            .retain(|(h, path, ..)| h != host || !path.starts_with(&dir));
        if self.fence_coordinator(host).is_some() {
            self.restart_coordinator_process(host);
        }
    }

    /// Undoes a fence when the activation did not happen: the host boots its coordinator
    /// again, and if the host is up and the coordinator is not running, it is started.
    pub fn unfence(
        &mut self,
        host: &str,
        before: Option<(cluster::coordinator::CoordinatorConfig, Arc<dyn Disk>)>,
    ) {
        let Some(boot) = self.coordinator_boot.get(host) else {
            return;
        };
        if before.is_none() {
            return;
        }
        *boot.lock().unwrap() = before;
        // A host that booted while fenced runs no coordinator: start it.
        let h = &self.hosts[host];
        let p = &h.processes[0];
        if h.up && p.stopped() {
            self.handle.kill(p.node.id());
            self.handle.restart(p.node.id());
        }
        info!(host, "coordinator fence lifted");
    }

    /// Where a standby on coordinator host `host` runs: the host's process, the standby's
    /// data directory on its disk, streaming from the acting coordinator.
    pub fn standby_host_on(&self, cfg: &RunConfig, host: &str) -> Option<StandbyHost> {
        let addr = self.coordinator_addr_on(host)?;
        let h = self.hosts.get(host)?;
        let mut coordinator = self.coordinator_config(cfg);
        coordinator.listen_addr = addr.clone();
        Some(StandbyHost {
            hostname: host.into(),
            addr,
            node: h.processes[0].node.clone(),
            disk: h.disk.clone(),
            dirs: self.dirs.clone(),
            coordinator_addr: self.acting.addr.clone(),
            coordinator,
        })
    }

    /// The acting coordinator's own catalog row, as `init-standby` records it if the catalog
    /// lacks it.
    pub fn acting_coordinator_row(&self) -> SegmentConfig {
        let ActingCoordinator { host, addr, .. } = &self.acting;
        let datadir = if host == "mdw" {
            "/data/coordinator"
        } else {
            STANDBY_DATADIR
        };
        coordinator_row_at(host, addr, datadir)
    }

    /// After `activate-standby` succeeded on `host`: it is the acting coordinator, and boots
    /// as the coordinator from the standby's data directory. Records the activation with the
    /// catalog WALs the standby-catalog checker reads.
    pub fn standby_activated(
        &mut self,
        cfg: &RunConfig,
        host: &str,
        activation: Activation,
        at_ms: u64,
    ) {
        self.take_over_acting(cfg, host, Some(activation), at_ms);
    }

    /// [`World::standby_activated`] for an activation whose report never reached the
    /// operator (the standby serves as the coordinator, but where activation cut its catalog
    /// WAL is unknown): the world follows it; there is nothing for the standby-catalog
    /// checker to judge.
    pub fn standby_activated_unreported(&mut self, cfg: &RunConfig, host: &str, at_ms: u64) {
        self.take_over_acting(cfg, host, None, at_ms);
    }

    /// The WAL `wal` read from coordinator `of`'s disk with every bit the catalog bit flip
    /// turned in it turned back: the WAL as the coordinator wrote it.
    fn as_written(&self, of: &ActingCoordinator, mut wal: Vec<u8>) -> Vec<u8> {
        let path = format!("{}{WAL_PATH}", of.datadir);
        for (host, flipped, offset, mask) in &self.catalog_wal_flips {
            if *host == of.host && *flipped == path {
                if let Some(byte) = wal.get_mut(*offset as usize) {
                    *byte ^= mask;
                }
            }
        }
        wal
    }

    fn take_over_acting(
        &mut self,
        cfg: &RunConfig,
        host: &str,
        activation: Option<Activation>,
        at_ms: u64,
    ) {
        let Some(addr) = self.coordinator_addr_on(host) else {
            return;
        };
        self.coordinator_pair_touched = true;
        let disk: Arc<dyn Disk> =
            Arc::new(SubDisk::new(self.hosts[host].disk.clone(), STANDBY_DATADIR));
        self.dirs.standby_gone();
        let mut ccfg = self.coordinator_config(cfg);
        ccfg.listen_addr = addr.clone();
        if let Some(boot) = self.coordinator_boot.get(host) {
            *boot.lock().unwrap() = Some((ccfg, disk.clone()));
        }
        // The host's process runs the coordinator now: the activated standby in it (a host
        // that booted nothing counted it stopped).
        if let Some(p) = self.hosts.get(host).and_then(|h| h.processes.first()) {
            p.stopped.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        let ip = |addr: &str| addr.rsplit_once(':').map_or(addr, |(ip, _)| ip).to_string();
        let succession = Succession {
            began_ms: self.activation_began_ms.take().unwrap_or(at_ms),
            at_ms,
            deposed: ip(&self.acting.addr),
            successor: ip(&addr),
        };
        if succession.deposed != succession.successor {
            self.successions.push(succession);
        }
        let before = std::mem::replace(
            &mut self.acting,
            ActingCoordinator {
                host: host.into(),
                addr,
                disk: disk.clone(),
                datadir: format!("{}/", STANDBY_DATADIR.trim_matches('/')),
            },
        );
        if let Some(activation) = activation {
            let coordinator_wal = self.as_written(&before, read_wal(&*before.disk));
            self.activations.push(ActivationRecord {
                at_ms,
                from_host: before.host,
                to_host: host.into(),
                activation,
                standby_wal: read_wal(&*disk),
                coordinator_wal,
            });
        }
        info!(host, "the activated standby is the acting coordinator");
    }
}

/// The catalog row of a coordinator on `host`, listening at `addr` (`address:port`), as
/// `init-standby` records it.
pub fn coordinator_row_at(host: &str, addr: &str, datadir: &str) -> SegmentConfig {
    SegmentConfig::coordinator(
        host.into(),
        addr.split(':').next().unwrap_or_default().into(),
        COORDINATOR_PORT,
        datadir.into(),
    )
}
