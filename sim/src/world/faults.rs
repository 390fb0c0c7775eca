//! Carrying out the nemesis's faults on the simulated world, and healing them all.

use std::time::Duration;

use madsim::net::NetSim;
use madsim::task::NodeId;
use rand_chacha::rand_core::Rng;
use tracing::info;

use crate::nemesis::Fault;
use crate::world::disk::TornTail;
use crate::world::World;

/// madsim's normal per-packet latency.
const NORMAL_LATENCY: std::ops::Range<Duration> =
    Duration::from_millis(1)..Duration::from_millis(10);

impl World {
    /// Carries out one schedule entry.
    /// (Kept whole: one arm per fault kind, each the world's verb for it.)
    pub fn apply(&mut self, fault: &Fault) {
        match fault {
            Fault::HostCrash { host } => self.kill_host(host),
            Fault::TornWrite { host } => self.kill_host_torn(host),
            Fault::HostRestart { host } => self.restart_host(host),
            Fault::InstanceKill { dbid } => self.kill_instance(*dbid),
            Fault::InstanceRestart { dbid } => self.restart_instance(*dbid),
            Fault::InstancePause { dbid } => self.pause_instance(*dbid, true),
            Fault::InstanceResume { dbid } => self.pause_instance(*dbid, false),
            Fault::DoubleFault { content } => {
                for dbid in self.dbids_of(*content) {
                    self.kill_instance(dbid);
                }
            }
            Fault::DoubleFaultHeal { content } => {
                for dbid in self.dbids_of(*content) {
                    self.restart_instance(dbid);
                }
            }
            Fault::CoordinatorCrash => self.crash_coordinator(),
            Fault::CoordinatorRestart => self.restart_crashed_coordinator(),
            Fault::CoordinatorPairCrash => self.crash_coordinator_pair(),
            Fault::CoordinatorPairRestart => self.restart_standby_of_pair(),
            Fault::Partition {
                from, to, one_way, ..
            } => self.clog(from, to, *one_way, true),
            Fault::PartitionHeal {
                from, to, one_way, ..
            } => self.clog(from, to, *one_way, false),
            Fault::ConnectionReset { host } => {
                let h = &self.hosts[host];
                for ip in h.processes.iter().map(|p| p.ip) {
                    cluster::io::runtime::resets::reset_host(ip);
                }
                info!(host, "connections reset");
            }
            Fault::LatencySpike { min_ms, max_ms } => {
                let range = Duration::from_millis(*min_ms)..Duration::from_millis(*max_ms + 1);
                NetSim::current().update_config(|c| c.send_latency = range);
                info!(min_ms, max_ms, "latency spike");
            }
            Fault::LatencyHeal => {
                NetSim::current().update_config(|c| c.send_latency = NORMAL_LATENCY);
                info!("latency back to normal");
            }
            Fault::PacketLoss { percent } => {
                let rate = *percent as f64 / 100.0;
                NetSim::current().update_config(|c| c.packet_loss_rate = rate);
                info!(percent, "packet loss");
            }
            Fault::PacketLossHeal => {
                NetSim::current().update_config(|c| c.packet_loss_rate = 0.0);
                info!("packet loss over");
            }
            Fault::DiskFull { host } => {
                let disk = &self.hosts[host].disk;
                disk.set_capacity(Some(disk.used_bytes()));
                info!(host, "disk full");
            }
            Fault::DiskFullHeal { host } => {
                self.hosts[host].disk.set_capacity(None);
                info!(host, "disk space freed");
                self.restart_stopped(host);
            }
            Fault::BitFlip { dbid, pick } => self.flip_bit(*dbid, *pick),
            Fault::FsyncFail { dbid, tables } => self.fail_next_fsync(*dbid, *tables),
            Fault::TornGarbage { host } => self.kill_host_garbage(host),
            Fault::WalBitFlip { dbid, pick } => {
                self.kill_instance(*dbid);
                self.flip_wal_bit(*dbid, *pick);
            }
            Fault::ControlBitFlip { dbid, pick } => {
                self.kill_instance(*dbid);
                self.flip_control_bit(*dbid, *pick);
            }
            Fault::MisdirectedWrite { dbid, pick } => {
                self.kill_instance(*dbid);
                self.misdirect_write(*dbid, *pick);
            }
            Fault::DiskReplaced { host } => {
                self.kill_host(host);
                self.hosts[host].disk.remove_tree("");
                self.dirs.host_lost(host);
                info!(
                    host,
                    "disk replaced: the host will come back with an empty disk"
                );
            }
            Fault::DatadirLost { dbid } => {
                self.kill_instance(*dbid);
                let seg = self
                    .segments
                    .iter()
                    .find(|s| s.dbid == *dbid)
                    .expect("known dbid");
                let (host, dir) = (seg.hostname.clone(), seg.datadir.clone());
                self.hosts[&host].disk.remove_tree(&dir);
                self.dirs.lost(*dbid);
                info!(dbid, host, datadir = dir, "data directory lost");
            }
            Fault::LateDelivery { pick } => self.deliver_late(*pick),
            Fault::CatalogBitFlip { standby, pick } => self.flip_catalog_bit(*standby, *pick),
        }
    }

    /// Heals everything still in force: every host and instance runs, every link is clear, the
    /// network is normal again, every disk has room. Returns the heals it carried out.
    pub fn heal_all(&mut self) -> Vec<Fault> {
        let mut done = Vec::new();
        let net = NetSim::current();
        net.update_config(|c| {
            c.packet_loss_rate = 0.0;
            c.send_latency = NORMAL_LATENCY;
        });
        let names: Vec<String> = self.hosts.keys().cloned().collect();
        let ids = self.all_nodes();
        for a in &ids {
            for b in &ids {
                if a != b {
                    net.unclog_link(*a, *b);
                }
            }
        }
        for name in names {
            if !self.hosts[&name].up {
                self.restart_host(&name);
                done.push(if name == "mdw" {
                    Fault::CoordinatorRestart
                } else {
                    Fault::HostRestart { host: name.clone() }
                });
            }
            self.hosts[&name].disk.set_capacity(None);
            let down: Vec<u16> = self.hosts[&name]
                .processes
                .iter()
                .filter(|p| !p.up)
                .filter_map(|p| p.dbid)
                .collect();
            for dbid in down {
                self.restart_instance(dbid);
                done.push(Fault::InstanceRestart { dbid });
            }
            let paused: Vec<u16> = self.paused.iter().copied().collect();
            for dbid in paused {
                self.pause_instance(dbid, false);
                done.push(Fault::InstanceResume { dbid });
            }
        }
        done
    }

    fn all_nodes(&self) -> Vec<NodeId> {
        self.hosts
            .values()
            .flat_map(|h| h.processes.iter().map(|p| p.node.id()))
            .collect()
    }

    fn dbids_of(&self, content: i16) -> Vec<u16> {
        self.segments
            .iter()
            .filter(|s| s.content == content)
            .map(|s| s.dbid)
            .collect()
    }

    fn host_of(&self, dbid: u16) -> String {
        self.segments
            .iter()
            .find(|s| s.dbid == dbid)
            .map(|s| s.hostname.clone())
            .expect("known dbid")
    }

    /// Power loss with a torn write: every file with an unsynced tail keeps part of it.
    pub fn kill_host_torn(&mut self, name: &str) {
        self.kill_host_with(name, |rng, unsynced| {
            TornTail::Keep((rng.next_u64() % unsynced.max(1) as u64) as usize)
        });
        info!(
            host = name,
            "power lost in the middle of writes: tails torn"
        );
    }

    /// Kills one instance's process; its host and the host's disk (page cache included) live on.
    pub fn kill_instance(&mut self, dbid: u16) {
        let host = self.host_of(dbid);
        let h = self.hosts.get_mut(&host).expect("known host");
        if !h.up {
            return;
        }
        let p = h
            .processes
            .iter_mut()
            .find(|p| p.dbid == Some(dbid))
            .expect("instance on its host");
        if p.up {
            self.handle.kill(p.node.id());
            p.up = false;
            self.paused.remove(&dbid);
            info!(host, dbid, "instance killed");
        }
    }

    pub fn restart_instance(&mut self, dbid: u16) {
        let host = self.host_of(dbid);
        let h = self.hosts.get_mut(&host).expect("known host");
        if !h.up {
            return;
        }
        let p = h
            .processes
            .iter_mut()
            .find(|p| p.dbid == Some(dbid))
            .expect("instance on its host");
        if !p.up {
            self.handle.restart(p.node.id());
            p.up = true;
            info!(host, dbid, "instance restarted");
        }
    }

    fn pause_instance(&mut self, dbid: u16, pause: bool) {
        let host = self.host_of(dbid);
        let h = &self.hosts[&host];
        let p = h
            .processes
            .iter()
            .find(|p| p.dbid == Some(dbid))
            .expect("instance on its host");
        if pause {
            if h.up && p.up && self.paused.insert(dbid) {
                self.handle.pause(p.node.id());
                info!(host, dbid, "instance paused");
            }
        } else if self.paused.remove(&dbid) {
            self.handle.resume(p.node.id());
            info!(host, dbid, "instance resumed");
        }
    }

    /// Restarts every process on `host` that stopped by itself (as an operator does once the
    /// cause is gone).
    fn restart_stopped(&mut self, host: &str) {
        let h = &self.hosts[host];
        if !h.up {
            return;
        }
        let stopped: Vec<NodeId> = h
            .processes
            .iter()
            .filter(|p| p.up && p.stopped())
            .map(|p| p.node.id())
            .collect();
        for id in stopped {
            self.handle.kill(id);
            self.handle.restart(id);
            info!(host, "stopped process restarted");
        }
    }

    /// Clogs (or clears) every link from a process of `from` to a process of `to`, and back
    /// unless `one_way`.
    fn clog(&mut self, from: &[String], to: &[String], one_way: bool, on: bool) {
        let nodes = |hosts: &[String]| -> Vec<NodeId> {
            hosts
                .iter()
                .filter_map(|h| self.hosts.get(h))
                .flat_map(|h| h.processes.iter().map(|p| p.node.id()))
                .collect()
        };
        let (a, b) = (nodes(from), nodes(to));
        let net = NetSim::current();
        for x in &a {
            for y in &b {
                if on {
                    net.clog_link(*x, *y);
                    if !one_way {
                        net.clog_link(*y, *x);
                    }
                } else {
                    net.unclog_link(*x, *y);
                    net.unclog_link(*y, *x);
                }
            }
        }
        info!(
            from = from.join(","),
            to = to.join(","),
            one_way,
            "{}",
            if on { "partition" } else { "partition healed" }
        );
    }

    /// Flips one bit in a durable block of one of the instance's table files (`pick` chooses
    /// the file and the byte); nothing happens if the instance has no table data on disk yet.
    fn flip_bit(&mut self, dbid: u16, pick: u64) {
        let seg = self
            .segments
            .iter()
            .find(|s| s.dbid == dbid)
            .expect("known dbid")
            .clone();
        let disk = &self.hosts[&seg.hostname].disk;
        let prefix = format!("{}/base/", seg.datadir.trim_start_matches('/'));
        let files: Vec<(String, u64)> = disk
            .durable_files()
            .into_iter()
            .filter(|(n, len)| n.starts_with(&prefix) && *len > 0)
            .collect();
        if files.is_empty() {
            info!(dbid, "bit flip: no table data on disk yet");
            return;
        }
        let (file, len) = &files[(pick % files.len() as u64) as usize];
        let offset = (pick >> 16) % len;
        let bit = 1u8 << ((pick >> 8) % 8);
        disk.corrupt(file, offset, bit);
        let datadir = seg.datadir.trim_matches('/');
        let rel = file
            .strip_prefix(datadir)
            .unwrap_or(file)
            .trim_start_matches('/');
        self.damage.note(seg.content, rel);
        info!(dbid, file = file.as_str(), offset, "bit flipped on disk");
    }
}
