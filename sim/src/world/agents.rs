//! Every host's agent: a process of the host of its own (address `10.N.0.250` on `sdwN`, and
//! on the coordinator hosts `mdw` and `smdw`), running the cluster's agent ([`cluster::agent`])
//! over the simulated network. The administration verbs reach the hosts through it, so their
//! requests cross partitions and die with their host; what the agent does to the host
//! ([`SimHostControl`]) is the world's starting and stopping of simulated processes, and on a
//! coordinator host making and starting a standby.

use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use cluster::agent::{self, AgentConfig, HostControl, HostFuture};
use cluster::io::auth::PeerIdentity;
use cluster::model::catalog::{Dbid, SegmentConfig};
use cluster::wire::agent::{HostError, InstanceReport, StopMode};
use tracing::warn;

use super::{credentials, Process, World};
use crate::config::RunConfig;

/// The port every agent listens on.
pub const AGENT_PORT: u16 = 7000;

/// How the agents reach the world they act on, set once the world is shared
/// ([`World::share`]); the run's configuration rides along (a new instance's settings).
pub type AgentLink = Arc<OnceLock<(Weak<Mutex<World>>, Arc<RunConfig>)>>;

/// The agent's address on host `host`: `10.N.0.250` on segment host `sdwN`, above every
/// address an instance takes ([`World::free_address`]); `10.0.0.250` on the coordinator's host
/// `mdw`, `10.0.2.250` on the standby's `smdw`.
pub fn agent_ip(host: &str) -> Option<IpAddr> {
    match host {
        "mdw" => Some(IpAddr::from([10, 0, 0, 250])),
        super::STANDBY_HOST => Some(IpAddr::from([10, 0, 2, 250])),
        _ => {
            let n: u8 = host.strip_prefix("sdw")?.parse().ok()?;
            Some(IpAddr::from([10, n, 0, 250]))
        }
    }
}

/// Where the agent of `host` listens.
pub fn agent_endpoint(host: &str) -> Option<String> {
    agent_ip(host).map(|ip| format!("{ip}:{AGENT_PORT}"))
}

impl World {
    /// Adds the agent process of host `name` (which must exist).
    pub(crate) fn add_agent(&mut self, name: &str) {
        let Some(ip) = agent_ip(name) else { return };
        let link = self.agent_link.clone();
        let observe = self.observe.clone();
        let host = name.to_string();
        let node = self
            .handle
            .create_node()
            .name(format!("{name}-agent"))
            .ip(ip)
            .init(move || {
                let control = Arc::new(SimHostControl {
                    host: host.clone(),
                    link: link.clone(),
                });
                let cfg = AgentConfig {
                    host: host.clone(),
                    listen: format!("{ip}:{AGENT_PORT}"),
                    observe: observe.clone(),
                };
                async move {
                    if let Err(e) = agent::run(cfg, control).await {
                        warn!(error = %e, "agent stopped");
                    }
                    std::future::pending::<()>().await
                }
            })
            .build();
        credentials::enroll(&node, PeerIdentity::agent(name));
        let up = self.hosts[name].up;
        if !up {
            self.handle.kill(node.id());
        }
        self.hosts
            .get_mut(name)
            .expect("the agent's host exists")
            .processes
            .push(Process {
                dbid: None,
                ip,
                node,
                up,
                stopped: Arc::new(AtomicBool::new(false)),
                slot: None,
            });
    }

    /// Shares the world with the run's tasks, and with its agents.
    pub fn share(self, cfg: &RunConfig) -> Arc<Mutex<World>> {
        let link = self.agent_link.clone();
        let world = Arc::new(Mutex::new(self));
        let _ = link.set((Arc::downgrade(&world), Arc::new(cfg.clone())));
        world
    }
}

/// A simulated host as its agent acts on it.
pub struct SimHostControl {
    host: String,
    link: AgentLink,
}

impl SimHostControl {
    fn with_world<T>(&self, f: impl FnOnce(&mut World, &RunConfig) -> T) -> Result<T, HostError> {
        let (world, cfg) = self.link.get().ok_or_else(|| HostError::Failed {
            step: format!("reach host {}", self.host),
            detail: "the world is not shared yet".into(),
        })?;
        let world = world
            .upgrade()
            .ok_or_else(|| HostError::Down(self.host.clone()))?;
        let mut world = world.lock().unwrap();
        Ok(f(&mut world, cfg))
    }

    fn row(world: &World, host: &str, dbid: Dbid) -> Option<SegmentConfig> {
        world
            .segments
            .iter()
            .find(|s| s.dbid == dbid && s.hostname == host)
            .cloned()
    }
}

impl HostControl for SimHostControl {
    fn instances(&self) -> HostFuture<'_, Vec<InstanceReport>> {
        let host = self.host.clone();
        let listed = self.with_world(|world, _| {
            let h = &world.hosts[&host];
            world
                .segments
                .iter()
                .filter(|s| s.hostname == host)
                .map(|s| {
                    let running = h
                        .processes
                        .iter()
                        .any(|p| p.dbid == Some(s.dbid) && p.up && p.slot_in_use() && !p.stopped());
                    InstanceReport {
                        dbid: s.dbid,
                        kind: "segment".into(),
                        datadir: s.datadir.clone(),
                        pid: running.then_some(0),
                        exists: true,
                    }
                })
                .collect()
        });
        Box::pin(std::future::ready(listed.unwrap_or_default()))
    }

    fn start_mirror(
        &self,
        row: SegmentConfig,
        primary: String,
    ) -> HostFuture<'_, Result<String, HostError>> {
        let started = self
            .with_world(|world, cfg| world.start_mirror(cfg, &row, &primary))
            .and_then(|r| r)
            .map(|()| {
                format!(
                    "dbid {}: an empty mirror started, streaming from {primary}",
                    row.dbid
                )
            });
        Box::pin(std::future::ready(started))
    }

    fn start(&self, dbid: Dbid) -> HostFuture<'_, Result<String, HostError>> {
        let host = self.host.clone();
        let started = self.with_world(|world, _| match Self::row(world, &host, dbid) {
            Some(_) => {
                world.restart_instance(dbid);
                Ok(format!("dbid {dbid}: running"))
            }
            None => Err(HostError::Failed {
                step: format!("start dbid {dbid}"),
                detail: format!("no instance of host {host}"),
            }),
        });
        Box::pin(std::future::ready(started.and_then(|r| r)))
    }

    fn start_standby(&self, row: SegmentConfig) -> HostFuture<'_, Result<String, HostError>> {
        let host = self.host.clone();
        let started = self.with_world(|world, cfg| {
            let standby = world
                .standby_host_on(cfg, &host)
                .ok_or_else(|| HostError::Refused {
                    host: host.clone(),
                    why: "not a coordinator host: no standby runs here".into(),
                })?;
            if row.endpoint() != standby.addr {
                return Err(HostError::Address {
                    address: row.endpoint(),
                    why: format!("is not this host's coordinator address {}", standby.addr),
                });
            }
            standby
                .make_directory(&row)
                .map_err(|detail| HostError::Failed {
                    step: format!("make {}:{}", host, row.datadir),
                    detail,
                })?;
            standby.launch(&row);
            Ok(format!(
                "standby dbid {}: started at {}",
                row.dbid, standby.addr
            ))
        });
        Box::pin(std::future::ready(started.and_then(|r| r)))
    }

    fn stop(
        &self,
        dbid: Dbid,
        address: String,
        datadir: String,
        mode: StopMode,
    ) -> HostFuture<'_, Result<String, HostError>> {
        let host = self.host.clone();
        let stopped = self.with_world(|world, _| {
            let h = &world.hosts[&host];
            let there = h.processes.iter().find(|p| p.ip.to_string() == address);
            match there.map(|p| p.dbid) {
                None => Ok(format!("dbid {dbid}: nothing runs at {address}")),
                Some(Some(d)) if d == dbid => {
                    world.stop_instance_at(&host, &address, dbid);
                    Ok(format!(
                        "dbid {dbid} at {address} ({datadir}): stopped ({})",
                        mode.label()
                    ))
                }
                Some(other) => Err(HostError::Refused {
                    host: host.clone(),
                    why: format!("{address} runs {other:?}, not dbid {dbid}"),
                }),
            }
        });
        Box::pin(std::future::ready(stopped.and_then(|r| r)))
    }
}
