//! The simulated world: hosts as madsim nodes, each with a simulated disk the harness holds so
//! that it outlives a crash. Speaks the operator's language: `kill_host("sdw1")`,
//! `restart_host("sdw1")`.
//!
//! The rooms: the simulated disk ([`disk`]), carrying out the nemesis's faults ([`faults`]),
//! the standby coordinator's host ([`standby_host`]) and the coordinator pair in randomized
//! runs: crashes, fencing, activation ([`coordinator_pair`]).

pub mod agents;
pub mod coordinator_pair;
pub mod credentials;
pub mod damage;
pub mod dirs;
pub mod disk;
pub mod faults;
pub mod late_delivery;
mod media_faults;
pub mod standby_host;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use madsim::runtime::{Handle, NodeHandle};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracing::{info, warn};

use cluster::admin::HostError;
use cluster::coordinator::{self, CoordinatorConfig};
use cluster::io::auth::PeerIdentity;
use cluster::io::Disk;
use cluster::model::catalog::{Mode, Role, SegmentConfig, Status};
use cluster::model::observe::Observe;
use cluster::segment::{self, InstanceConfig};

use crate::config::RunConfig;
use crate::world::disk::{SimDisk, TornTail};

pub const COORDINATOR_PORT: u16 = 5432;
/// Where a coordinator host's front door listens for PostgreSQL's wire protocol.
pub const SQL_PORT: u16 = COORDINATOR_PORT + 100;
/// The standby coordinator's host, when the run has one.
pub const STANDBY_HOST: &str = "smdw";
pub const SEGMENT_PORT: u16 = 6000;

/// A coordinator's front door in the simulator: the production code, on the host's SQL port,
/// trusting the clients' network (the simulated world has no users file; passwords are the
/// production tests').
fn front_door() -> cluster::coordinator::ServicesHook {
    use cluster::frontdoor::{auth, hook, FrontDoorConfig};
    let rules = format!("host all {} 10.0.1.0/24 trust", crate::workload::wire::USER);
    let hba = auth::Hba::parse(&rules, "the simulator's rules").expect("valid rules");
    hook(
        FrontDoorConfig {
            listen_addr: format!("0.0.0.0:{SQL_PORT}"),
            users_file: Default::default(),
            hba_file: Default::default(),
            given: Some(Arc::new((auth::Users::default(), hba))),
            max_connections: 64,
            tls: None,
        },
        None,
    )
}

/// One host of the simulated cluster: its disk and the processes running on it.
pub struct Host {
    pub name: String,
    pub disk: SimDisk,
    /// Powered on. A host that is down runs no process.
    pub up: bool,
    pub processes: Vec<Process>,
}

/// One process on a host (a segment instance, or the coordinator), a simulated node of its own
/// with its own address, so that it can be killed alone.
pub struct Process {
    /// The instance's dbid; `None` for the coordinator.
    pub dbid: Option<u16>,
    pub ip: IpAddr,
    pub node: NodeHandle,
    /// Running (its host is up and it was not killed).
    pub up: bool,
    /// Set when the process's main function returned (an instance that failed itself).
    stopped: Arc<AtomicBool>,
    /// A segment instance's configuration and data directory, read each time the process
    /// starts; `None` for the coordinator, and for an instance an administrator removed (the
    /// process then runs nothing).
    pub(crate) slot: Option<InstanceSlot>,
}

/// What an instance process runs when it starts (see [`Process::slot`]).
pub type InstanceSlot = Arc<std::sync::Mutex<Option<(InstanceConfig, Arc<dyn Disk>)>>>;

/// What a coordinator host's process (`mdw`, `smdw`) runs when the host boots: the coordinator
/// (its settings and data directory), or nothing. A standby host boots with nothing
/// (`init-standby` starts the standby in the running process); a coordinator host is fenced
/// (nothing) once its standby was activated, and an activated standby's host boots as the
/// coordinator from the standby's data directory.
pub type CoordinatorBoot = Arc<std::sync::Mutex<Option<(CoordinatorConfig, Arc<dyn Disk>)>>>;

/// The acting coordinator: its host, address and data directory.
#[derive(Clone)]
pub struct ActingCoordinator {
    pub host: String,
    pub addr: String,
    pub disk: Arc<dyn Disk>,
    /// Where its data directory lies on its host's disk (`""`: the disk's root, the first
    /// coordinator's; otherwise with a trailing `/`).
    pub datadir: String,
}

impl Process {
    /// A running process with nothing configured in it yet (a standby's, before
    /// `init-standby` starts the standby in it).
    pub(crate) fn idle(ip: IpAddr, node: NodeHandle) -> Process {
        Process {
            dbid: None,
            ip,
            node,
            up: true,
            stopped: Arc::new(AtomicBool::new(false)),
            slot: None,
        }
    }

    /// Whether an instance is configured to run in this process.
    pub(crate) fn slot_in_use(&self) -> bool {
        self.slot
            .as_ref()
            .is_some_and(|s| s.lock().unwrap().is_some())
    }

    /// The process gave up on its own (for example an instance that found a corrupt block or
    /// could not write its disk) and waits for an operator to restart it.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

pub struct World {
    pub(crate) handle: Handle,
    pub hosts: BTreeMap<String, Host>,
    pub coordinator_addr: String,
    pub segments: Vec<SegmentConfig>,
    pub(crate) rng: ChaCha8Rng,
    observe: Observe,
    /// The standby coordinator's host, if the configuration places one.
    pub standby: Option<crate::world::standby_host::StandbyHost>,
    /// Instances paused by the nemesis.
    pub(crate) paused: std::collections::BTreeSet<u16>,
    /// What each coordinator host's process runs at boot.
    pub(crate) coordinator_boot: BTreeMap<String, CoordinatorBoot>,
    /// The acting coordinator (`mdw` until a standby is activated).
    pub acting: ActingCoordinator,
    /// The hosts the coordinator-crash fault in force took down.
    pub(crate) coordinator_crashed: Vec<String>,
    /// The hosts the coordinator-pair-crash fault in force took down, the coordinator's last.
    pub(crate) pair_crashed: Vec<String>,
    /// Every activation of a standby in this run, with the catalog WALs it is judged on.
    pub activations: Vec<crate::world::coordinator_pair::ActivationRecord>,
    /// The cluster's identifier, in every data directory's identity.
    pub cluster_id: u64,
    /// Every host's disk kind is drawn from this (`disk_speed::draw`).
    disk_seed: u64,
    /// Every change of acting coordinator (an activation the operator saw through, reported
    /// or not), for the one-acting-coordinator checker.
    pub successions: Vec<crate::world::coordinator_pair::Succession>,
    /// When the operator began the activation under way, if one is: its first attempt, when
    /// attempts whose outcome never reached the operator were repeated.
    pub activation_began_ms: Option<u64>,
    /// Where every instance's data directory lies, for the checkers that read the disks.
    pub dirs: crate::world::dirs::DataDirs,
    /// How the hosts' agents reach this world once it is shared ([`World::share`]).
    pub(crate) agent_link: agents::AgentLink,
    /// The table files faults damaged on purpose, for the block-damage checker.
    pub damage: crate::world::damage::InjectedDamage,
    /// Bits the catalog bit flip turned in a coordinator host's catalog WAL: the host, the
    /// file's path on its disk, the offset and the mask. The standby-catalog checker judges the
    /// WAL as the coordinator wrote it, these bits turned back.
    pub(crate) catalog_wal_flips: Vec<(String, String, u64, u8)>,
    /// A coordinator host lost power or had its process restarted, or a standby was activated,
    /// at some point of the run (by the schedule or at a fault point): the two copies of the
    /// catalog may differ from then on, so the catalog bit flip damages neither.
    pub(crate) coordinator_pair_touched: bool,
}

/// Writes the identity of a new data directory `datadir` (`""`: the disk's root) on `disk`.
pub fn install_identity(disk: &SimDisk, cluster_id: u64, datadir: &str, dbid: u16, content: i16) {
    let identity = cluster::storage::identity::Identity {
        cluster_id,
        dbid,
        content,
        system_id: None,
    };
    let path = format!(
        "{}/{}",
        datadir.trim_matches('/'),
        cluster::storage::identity::IDENTITY_PATH
    );
    disk.install(path.trim_start_matches('/'), &identity.encoded());
}

/// The cluster identifier of a run: a fixed mix of its disk seed, so no random draw moves.
fn cluster_id_of(disk_seed: u64) -> u64 {
    let mut z = disk_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The coordinator's address (host index 0).
fn host_ip(index: usize) -> IpAddr {
    format!("10.0.0.{}", index + 1).parse().unwrap()
}

/// The address of the `slot`-th instance (0-based) on segment host `host` (1-based): every
/// instance is a process of its own with its own address, on the host's own subnet.
fn instance_ip(host: usize, slot: usize) -> IpAddr {
    format!("10.{host}.0.{}", slot + 1).parse().unwrap()
}

impl World {
    /// Builds the cluster of the run's configuration: a coordinator host `mdw`, and segment hosts
    /// `sdw1..` in group layout (see [`RunConfig::contents`]).
    pub fn build(cfg: &RunConfig, disk_seed: u64) -> World {
        World::build_observed(cfg, disk_seed, Observe::default())
    }

    /// [`World::build`], with every instance reporting to `observe` (the checkers' hooks).
    pub fn build_observed(cfg: &RunConfig, disk_seed: u64, observe: Observe) -> World {
        let handle = Handle::current();
        let segment_hosts: Vec<String> =
            (1..=cfg.segment_hosts).map(|i| format!("sdw{i}")).collect();
        let segments = layout(cfg);
        let coordinator_addr = format!("{}:{COORDINATOR_PORT}", host_ip(0));
        credentials::begin(disk_seed, cluster_id_of(disk_seed));
        let mut world = World {
            handle,
            hosts: BTreeMap::new(),
            acting: ActingCoordinator {
                host: "mdw".into(),
                addr: coordinator_addr.clone(),
                disk: Arc::new(SimDisk::new()),
                datadir: String::new(),
            },
            coordinator_addr,
            segments,
            rng: ChaCha8Rng::seed_from_u64(disk_seed),
            observe,
            standby: None,
            paused: Default::default(),
            coordinator_boot: BTreeMap::new(),
            coordinator_crashed: Vec::new(),
            pair_crashed: Vec::new(),
            activations: Vec::new(),
            cluster_id: cluster_id_of(disk_seed),
            disk_seed,
            successions: Vec::new(),
            activation_began_ms: None,
            dirs: Default::default(),
            damage: Default::default(),
            agent_link: Default::default(),
            catalog_wal_flips: Vec::new(),
            coordinator_pair_touched: false,
        };
        late_delivery::keep_control_requests(
            cfg.fault_weights
                .get(crate::nemesis::FaultKind::LateDelivery)
                > 0,
        );
        world.add_coordinator(cfg);
        for name in &segment_hosts {
            world.add_segment_host(cfg, name);
        }
        if cfg.standby {
            world.add_standby_host(cfg);
        }
        for name in &segment_hosts {
            world.add_agent(name);
        }
        world.add_agent("mdw");
        if cfg.standby {
            world.add_agent(STANDBY_HOST);
        }
        world
    }

    pub(crate) fn new_disk_for(&self, cfg: &RunConfig, host: &str) -> SimDisk {
        self.new_disk(cfg, host)
    }

    /// A host's disk: of the kind the host drew from the scenario's kinds
    /// (`disk_speed::draw`), or with the scenario's fixed fsync latency if it lists none.
    fn new_disk(&self, cfg: &RunConfig, host: &str) -> SimDisk {
        match crate::config::disk_speed::draw(self.disk_seed, host, &cfg.disk_speeds) {
            Some(speed) => SimDisk::new().with_speed(speed),
            None => SimDisk::new().with_sync_latency(cfg.fsync_latency_min, cfg.fsync_latency_max),
        }
    }

    /// The coordinator's settings in this run.
    pub(crate) fn coordinator_config(&self, cfg: &RunConfig) -> CoordinatorConfig {
        let mut ccfg = CoordinatorConfig::new(self.coordinator_addr.clone(), self.segments.clone());
        ccfg.cluster_id = self.cluster_id;
        ccfg.probe = cfg.probe.clone();
        ccfg.statement_timeout = cfg.statement_timeout;
        ccfg.bugs = cfg.bugs;
        ccfg.observe = self.observe.clone();
        ccfg.on_services = Some(front_door());
        ccfg
    }

    /// The front doors' addresses (a coordinator host's SQL port), in the order of
    /// [`World::coordinator_addrs`].
    pub fn front_door_addrs(&self) -> Vec<String> {
        self.coordinator_addrs()
            .iter()
            .map(|a| {
                let ip = a.rsplit_once(':').map_or(a.as_str(), |(ip, _)| ip);
                format!("{ip}:{SQL_PORT}")
            })
            .collect()
    }

    /// A host whose one process is `node`; `stopped` is the flag its boot sets when what it
    /// runs stops by itself (see [`World::coordinator_node`]).
    pub(crate) fn new_host(
        &mut self,
        name: &str,
        ip: IpAddr,
        disk: SimDisk,
        node: NodeHandle,
        stopped: Arc<AtomicBool>,
    ) {
        self.hosts.insert(
            name.into(),
            Host {
                name: name.into(),
                disk,
                up: true,
                processes: vec![Process {
                    dbid: None,
                    ip,
                    node,
                    up: true,
                    stopped,
                    slot: None,
                }],
            },
        );
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Writes the identity of a new data directory `datadir` (`""`: the disk's root) on `disk`,
    /// as `init` (or a verb making a new instance) does before the instance first starts.
    pub(crate) fn install_identity(&self, disk: &SimDisk, datadir: &str, dbid: u16, content: i16) {
        install_identity(disk, self.cluster_id, datadir, dbid, content);
    }

    fn add_coordinator(&mut self, cfg: &RunConfig) {
        let disk = self.new_disk(cfg, "mdw");
        self.install_identity(&disk, "", 1, -1);
        let ccfg = self.coordinator_config(cfg);
        let node_disk: Arc<dyn Disk> = Arc::new(disk.clone());
        self.acting.disk = node_disk.clone();
        let boot: CoordinatorBoot = Arc::new(std::sync::Mutex::new(Some((ccfg, node_disk))));
        let (node, stopped) = self.coordinator_node("mdw", host_ip(0), boot);
        self.hosts.insert(
            "mdw".into(),
            Host {
                name: "mdw".into(),
                disk,
                up: true,
                processes: vec![Process {
                    dbid: None,
                    ip: host_ip(0),
                    node,
                    up: true,
                    stopped,
                    slot: None,
                }],
            },
        );
    }

    /// The process of a coordinator host: each time it starts it runs what `boot` holds then
    /// (see [`CoordinatorBoot`]).
    pub(crate) fn coordinator_node(
        &mut self,
        name: &str,
        ip: IpAddr,
        boot: CoordinatorBoot,
    ) -> (NodeHandle, Arc<AtomicBool>) {
        self.coordinator_boot.insert(name.into(), boot.clone());
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let node = self
            .handle
            .create_node()
            .name(name)
            .ip(ip)
            .init(move || {
                let (run, flag) = (boot.lock().unwrap().clone(), flag.clone());
                async move {
                    flag.store(false, Ordering::SeqCst);
                    match run {
                        Some((ccfg, disk)) => {
                            if let Err(e) = coordinator::run(ccfg, disk).await {
                                warn!(error = %e, "coordinator stopped");
                            }
                            flag.store(true, Ordering::SeqCst);
                        }
                        // Nothing to run at boot: the process counts as stopped.
                        None => flag.store(true, Ordering::SeqCst),
                    }
                    std::future::pending::<()>().await
                }
            })
            .build();
        // A coordinator host's process runs the coordinator or the standby, and changes
        // between them as the pair fails over: it is the coordinator software either way.
        credentials::enroll(&node, PeerIdentity::Coordinator);
        (node, stopped)
    }

    fn add_segment_host(&mut self, cfg: &RunConfig, name: &str) {
        let disk = self.new_disk(cfg, name);
        let mut processes = Vec::new();
        for seg in self.segments.iter().filter(|s| s.hostname == name) {
            let mut icfg = InstanceConfig::new(seg.dbid, seg.content, seg.endpoint(), seg.role);
            icfg.peer_addr = self
                .segments
                .iter()
                .find(|p| p.content == seg.content && p.dbid != seg.dbid)
                .map(|p| p.endpoint());
            self.install_identity(&disk, &seg.datadir, seg.dbid, seg.content);
            let dir_disk = self.instance_disk(&disk, seg);
            self.fill_instance(cfg, &mut icfg);
            let ip: IpAddr = seg.address.parse().expect("instance address is an IP");
            let slot: InstanceSlot = Arc::new(std::sync::Mutex::new(Some((icfg, dir_disk))));
            processes.push(self.instance_process(name, seg.dbid, ip, slot));
        }
        self.hosts.insert(
            name.into(),
            Host {
                name: name.into(),
                disk,
                up: true,
                processes,
            },
        );
    }

    /// The instance settings a run varies.
    fn fill_instance(&self, cfg: &RunConfig, icfg: &mut InstanceConfig) {
        icfg.cluster_id = self.cluster_id;
        icfg.replication = cfg.replication;
        icfg.mirror_down_grace_period = cfg.mirror_down_grace_period;
        icfg.wal_timeout = cfg.wal_timeout;
        icfg.checkpoint_interval = cfg.checkpoint_interval;
        icfg.cache_blocks_max = cfg.cache_blocks_max;
        icfg.bugs = cfg.bugs;
        icfg.observe = self.observe.clone();
    }

    /// An instance's own data directory on its host's disk.
    fn instance_disk(&self, disk: &SimDisk, seg: &SegmentConfig) -> Arc<dyn Disk> {
        self.dirs
            .segment(seg.dbid, &seg.hostname, disk, &seg.datadir);
        Arc::new(crate::world::disk::SubDisk::new(disk.clone(), &seg.datadir))
    }

    /// A process of its own for an instance: it runs whatever `slot` holds each time it starts.
    fn instance_process(&self, host: &str, dbid: u16, ip: IpAddr, slot: InstanceSlot) -> Process {
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let boot = slot.clone();
        let node = self
            .handle
            .create_node()
            .name(format!("{host}-dbid{dbid}"))
            .ip(ip)
            .init(move || {
                let (instance, flag) = (boot.lock().unwrap().clone(), flag.clone());
                async move {
                    flag.store(false, Ordering::SeqCst);
                    if let Some((icfg, disk)) = instance {
                        if let Err(e) = segment::run(icfg, disk).await {
                            warn!(error = %e, "instance stopped");
                        }
                        flag.store(true, Ordering::SeqCst);
                    }
                    // The process stays until it is killed: an instance that failed
                    // itself is restarted by an operator.
                    std::future::pending::<()>().await
                }
            })
            .build();
        credentials::enroll(&node, PeerIdentity::Segment { dbid });
        Process {
            dbid: Some(dbid),
            ip,
            node,
            up: true,
            stopped,
            slot: Some(slot),
        }
    }

    /// Adds a segment host with no instances (a spare for `recoverseg -i` or `move-mirrors`).
    /// Its name must be `sdwN`; its instances take addresses `10.N.0.x`, which this returns as
    /// the prefix `10.N.0`.
    pub fn add_spare_host(&mut self, cfg: &RunConfig, name: &str) -> String {
        let n: usize = name
            .strip_prefix("sdw")
            .and_then(|n| n.parse().ok())
            .expect("a spare host is named sdwN");
        let disk = self.new_disk(cfg, name);
        self.hosts.insert(
            name.into(),
            Host {
                name: name.into(),
                disk,
                up: true,
                processes: Vec::new(),
            },
        );
        self.add_agent(name);
        info!(host = name, "spare host added");
        format!("10.{n}.0")
    }

    /// The host name of an address: a host's name, or an instance address `10.N.0.x` (host
    /// `sdwN`), or the address of a running process.
    pub fn hostname_of(&self, address: &str) -> Option<String> {
        if self.hosts.contains_key(address) {
            return Some(address.to_string());
        }
        if let Some(h) = self
            .hosts
            .values()
            .find(|h| h.processes.iter().any(|p| p.ip.to_string() == address))
        {
            return Some(h.name.clone());
        }
        let ip: std::net::Ipv4Addr = address.parse().ok()?;
        let [a, b, c, _] = ip.octets();
        let name = format!("sdw{b}");
        (a == 10 && c == 0 && b >= 1 && self.hosts.contains_key(&name)).then_some(name)
    }

    /// The `nth` (0-based) address on `host` that no process uses, for a new instance.
    pub fn free_address(&self, host: &str, nth: usize) -> Option<String> {
        let n: usize = host.strip_prefix("sdw")?.parse().ok()?;
        let used: std::collections::BTreeSet<String> = self
            .hosts
            .values()
            .flat_map(|h| h.processes.iter().map(|p| p.ip.to_string()))
            .collect();
        (1..250)
            .map(|x| format!("10.{n}.0.{x}"))
            .filter(|a| !used.contains(a))
            .nth(nth)
    }

    /// Starts a fresh, empty mirror instance for `row` on its host (at `row.address`),
    /// streaming from `primary`; its data directory is wiped first. A process that stood at
    /// that address before (a removed instance) is reused.
    pub fn start_mirror(
        &mut self,
        cfg: &RunConfig,
        row: &SegmentConfig,
        primary: &str,
    ) -> Result<(), HostError> {
        let ip: IpAddr = row.address.parse().map_err(|_| HostError::Address {
            address: row.address.clone(),
            why: "is not an IP".into(),
        })?;
        let host = self
            .hosts
            .get(&row.hostname)
            .ok_or_else(|| HostError::UnknownHost(row.hostname.clone()))?;
        if !host.up {
            return Err(HostError::Down(row.hostname.clone()));
        }
        // The address is free, or held by this very instance, which gave up on its own (a
        // full copy wipes its directory and starts it afresh).
        let held = |h: &Host, p: &Process| {
            h.name != row.hostname
                || (p.slot_in_use() && !(p.dbid == Some(row.dbid) && p.stopped()))
        };
        if let Some(other) = self
            .hosts
            .values()
            .find(|h| h.processes.iter().any(|p| p.ip == ip && held(h, p)))
        {
            return Err(HostError::Address {
                address: ip.to_string(),
                why: format!("is in use on host {}", other.name),
            });
        }
        let mut mirror = row.clone();
        mirror.role = Role::Mirror;
        let mut icfg =
            InstanceConfig::new(mirror.dbid, mirror.content, mirror.endpoint(), Role::Mirror);
        icfg.peer_addr = Some(primary.to_string());
        self.fill_instance(cfg, &mut icfg);
        let disk = self.instance_disk(&host.disk, &mirror);
        cluster::storage::wipe_instance_dir(&*disk).map_err(|e| HostError::Failed {
            step: format!("wipe {}:{}", row.hostname, row.datadir),
            detail: e.to_string(),
        })?;
        let host_disk = host.disk.clone();
        self.install_identity(&host_disk, &row.datadir, row.dbid, row.content);
        let reuse = host.processes.iter().position(|p| p.ip == ip);
        match reuse {
            Some(i) => {
                let host = self.hosts.get_mut(&row.hostname).expect("looked up");
                let p = &mut host.processes[i];
                if let Some(slot) = &p.slot {
                    *slot.lock().unwrap() = Some((icfg, disk));
                }
                p.dbid = Some(row.dbid);
                // The process now runs this instance, and proves it is this dbid.
                credentials::enroll(&p.node, PeerIdentity::Segment { dbid: row.dbid });
                self.handle.kill(p.node.id());
                self.handle.restart(p.node.id());
                p.up = true;
            }
            None => {
                let slot: InstanceSlot = Arc::new(std::sync::Mutex::new(Some((icfg, disk))));
                let process = self.instance_process(&row.hostname, row.dbid, ip, slot);
                let host = self.hosts.get_mut(&row.hostname).expect("looked up");
                host.processes.push(process);
            }
        }
        info!(dbid = row.dbid, host = %row.hostname, address = %row.address, port = row.port, "mirror instance started");
        self.place(row);
        Ok(())
    }

    /// Records where instance `row.dbid` now runs (a recovery onto another host, a moved
    /// mirror, a mirror added): the world's placements follow the catalog's, so faults aimed
    /// at an instance or a host hit what now runs there. The roles stay those of the initial
    /// layout (its preferred roles); a new instance is added as the row gives it.
    fn place(&mut self, row: &SegmentConfig) {
        match self.segments.iter_mut().find(|s| s.dbid == row.dbid) {
            Some(s) => {
                s.hostname = row.hostname.clone();
                s.address = row.address.clone();
                s.port = row.port;
                s.datadir = row.datadir.clone();
            }
            None => self.segments.push(row.clone()),
        }
    }

    /// Stops the instance process at `row`'s address for good: it runs nothing from now on,
    /// even when its host restarts.
    pub fn stop_instance(&mut self, row: &SegmentConfig) {
        self.stop_instance_at(&row.hostname, &row.address, row.dbid)
    }

    /// [`World::stop_instance`] for the process at `address` on `host` (instance `dbid`).
    pub fn stop_instance_at(&mut self, host: &str, address: &str, dbid: u16) {
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        for p in h.processes.iter_mut() {
            if p.ip.to_string() == address {
                if let Some(slot) = &p.slot {
                    *slot.lock().unwrap() = None;
                }
                if p.up {
                    self.handle.kill(p.node.id());
                    p.up = false;
                }
            }
        }
        info!(dbid, host, address, "instance stopped");
    }

    /// `restart` (gpstop -r): every process of every host that is up stops (its host's page
    /// cache survives, as when a process exits) and starts again. Hosts that are down stay
    /// down. Returns the hosts restarted.
    pub fn restart_cluster(&mut self) -> Vec<String> {
        let mut restarted = Vec::new();
        for host in self.hosts.values_mut().filter(|h| h.up) {
            for p in host.processes.iter_mut() {
                self.handle.kill(p.node.id());
                self.handle.restart(p.node.id());
                p.up = true;
            }
            restarted.push(host.name.clone());
        }
        self.paused.clear();
        info!(hosts = ?restarted, "cluster restarted");
        restarted
    }

    /// Power loss on a host: every process on it dies, and its disk keeps what was synced,
    /// perhaps a torn tail of the last unsynced append, and about half of the unsynced block
    /// overwrites (the kernel's write-back).
    pub fn kill_host(&mut self, name: &str) {
        self.kill_host_with(name, |rng, unsynced| {
            if rng.next_u32().is_multiple_of(2) {
                TornTail::None
            } else {
                TornTail::Keep((rng.next_u64() % unsynced as u64) as usize)
            }
        });
    }

    /// Power loss on a host; `torn` draws how much of each file's unsynced tail survives.
    pub(crate) fn kill_host_with(
        &mut self,
        name: &str,
        torn: fn(&mut ChaCha8Rng, usize) -> TornTail,
    ) {
        if self.coordinator_boot.contains_key(name) {
            self.coordinator_pair_touched = true;
        }
        let host = self.hosts.get_mut(name).expect("known host");
        if !host.up {
            return;
        }
        for p in &mut host.processes {
            if p.up {
                self.handle.kill(p.node.id());
                p.up = false;
            }
        }
        for p in &host.processes {
            if let Some(dbid) = p.dbid {
                self.paused.remove(&dbid);
            }
        }
        // One generator serves both choices; the closures take turns borrowing it.
        let rng = std::cell::RefCell::new(&mut self.rng);
        host.disk.crash_with_writeback(
            |_, unsynced| torn(&mut rng.borrow_mut(), unsynced),
            // The kernel had written back about half of the dirty pages, each 4 KiB page on its
            // own, so a block overwritten in place may come back torn.
            |_, _, _| rng.borrow_mut().next_u32().is_multiple_of(2),
        );
        host.up = false;
        info!(host = name, "host crashed");
    }

    pub fn restart_host(&mut self, name: &str) {
        let host = self.hosts.get_mut(name).expect("known host");
        if host.up {
            return;
        }
        for p in &mut host.processes {
            self.handle.restart(p.node.id());
            p.up = true;
        }
        host.up = true;
        info!(host = name, "host restarted");
    }

    pub fn segment_host_names(&self) -> Vec<String> {
        self.hosts
            .keys()
            .filter(|h| h.starts_with("sdw"))
            .cloned()
            .collect()
    }

    /// Segment instances on hosts that are up whose process stopped itself (a failed fsync, a
    /// corrupt block) and waits for an operator to start it again.
    pub fn stopped_instances(&self) -> Vec<u16> {
        self.hosts
            .values()
            .filter(|h| h.up)
            .flat_map(|h| h.processes.iter())
            .filter(|p| p.stopped())
            .filter_map(|p| p.dbid)
            .collect()
    }

    pub fn down_hosts(&self) -> Vec<String> {
        self.hosts
            .values()
            .filter(|h| !h.up)
            .map(|h| h.name.clone())
            .collect()
    }

    /// Every coordinator address a client should know: the coordinator's, then the standby's.
    pub fn coordinator_addrs(&self) -> Vec<String> {
        let mut addrs = vec![self.coordinator_addr.clone()];
        addrs.extend(self.standby.as_ref().map(|s| s.addr.clone()));
        addrs
    }

    pub fn contents(&self) -> Vec<i16> {
        let mut c: Vec<i16> = self.segments.iter().map(|s| s.content).collect();
        c.dedup();
        c
    }
}

/// The cluster's instances as `gpinitsystem` lays them out: the run's mirror layout (see
/// [`Placement`]), dbids from 2 in content order, primary before mirror, every instance
/// a process with its own address on its host's subnet.
pub fn layout(cfg: &RunConfig) -> Vec<SegmentConfig> {
    let segment_hosts: Vec<String> = (1..=cfg.segment_hosts).map(|i| format!("sdw{i}")).collect();
    let mut segments = Vec::new();
    let mut slots = vec![0usize; cfg.segment_hosts];
    let mut dbid = 2;
    for content in 0..cfg.contents {
        let placement = Placement::of(cfg, content);
        let mut roles = vec![(
            Role::Primary,
            placement.primary_host,
            placement.primary_port,
        )];
        if cfg.mirrors {
            roles.push((Role::Mirror, placement.mirror_host, placement.mirror_port));
        }
        for (role, h, port) in roles {
            let slot = slots[h];
            slots[h] += 1;
            segments.push(SegmentConfig {
                dbid,
                content: content as i16,
                role,
                preferred_role: role,
                mode: if cfg.mirrors {
                    Mode::Synced
                } else {
                    Mode::NotSynced
                },
                status: Status::Up,
                hostname: segment_hosts[h].clone(),
                address: instance_ip(h + 1, slot).to_string(),
                port,
                datadir: format!(
                    "/data/{}/gpseg{content}",
                    if role == Role::Primary {
                        "primary"
                    } else {
                        "mirror"
                    }
                ),
            });
            dbid += 1;
        }
    }
    segments
}

/// Where a content's instances live, by the run's layout (`cluster::model::layout`). Host `h` (0-based)
/// holds the primaries of contents `h * per_host ..`, on ports `SEGMENT_PORT + slot`; mirrors sit
/// on ports `SEGMENT_PORT + per_host + mirror slot`, so no two instances of a host share a port
/// (as `gpinitsystem`'s separate primary and mirror port bases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub primary_host: usize,
    pub primary_port: u16,
    pub mirror_host: usize,
    pub mirror_port: u16,
}

impl Placement {
    pub fn of(cfg: &RunConfig, content: usize) -> Placement {
        let per_host = cfg.primaries_per_host();
        let primary_host = content / per_host;
        let j = content % per_host;
        let mirror_host = cfg.layout.mirror_host(cfg.segment_hosts, primary_host, j);
        // The mirror's slot: how many mirrors its host holds already, in content order.
        let mirror_slot = (0..content)
            .filter(|&c| {
                cfg.layout
                    .mirror_host(cfg.segment_hosts, c / per_host, c % per_host)
                    == mirror_host
            })
            .count();
        Placement {
            primary_host,
            primary_port: SEGMENT_PORT + j as u16,
            mirror_host,
            mirror_port: SEGMENT_PORT + (per_host + mirror_slot) as u16,
        }
    }
}

/// Runs futures concurrently to completion (a tiny `join_all`, to avoid a dependency).
pub async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futs: impl IntoIterator<Item = F>,
) {
    let handles: Vec<_> = futs.into_iter().map(|f| madsim::task::spawn(f)).collect();
    for h in handles {
        let _ = h.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_layout_is_group_mirroring_with_distinct_ports_per_host() {
        let cfg = RunConfig::standard();
        let mut ports: BTreeMap<(usize, u16), usize> = BTreeMap::new();
        for content in 0..cfg.contents {
            let p = Placement::of(&cfg, content);
            assert_eq!(
                p.primary_host,
                content / 2,
                "two primaries per host, in order"
            );
            assert_eq!(p.mirror_host, (p.primary_host + 1) % 4);
            assert_ne!(p.primary_host, p.mirror_host);
            for key in [
                (p.primary_host, p.primary_port),
                (p.mirror_host, p.mirror_port),
            ] {
                assert!(
                    ports.insert(key, content).is_none(),
                    "port {key:?} used twice"
                );
            }
        }
        assert_eq!(ports.len(), 16);
    }

    #[test]
    fn the_pair_keeps_its_primary_on_sdw1_and_its_mirror_on_sdw2() {
        let p = Placement::of(&RunConfig::pair(), 0);
        assert_eq!(
            p,
            Placement {
                primary_host: 0,
                primary_port: 6000,
                mirror_host: 1,
                mirror_port: 6001
            }
        );
    }
}
