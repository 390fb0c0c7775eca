//! The standby coordinator in the simulated world: its host `smdw`, and the operator's two
//! verbs, `init-standby` (`-s smdw` or `-n`) and `activate-standby`, run from an admin node
//! exactly as the production binary runs them.
//!
//! Like a real host, `smdw` starts no standby process when it boots: `init-standby` starts it
//! (and `-n` starts it again after the host came back).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use madsim::runtime::NodeHandle;
use tracing::warn;

use cluster::client::Client;
use cluster::coordinator::CoordinatorConfig;
use cluster::io::Disk;
use cluster::model::catalog::SegmentConfig;
use cluster::standby::admin::{self, NewStandby, StandbyAdminError};
use cluster::standby::instance::{self, StandbyConfig};
use cluster::standby::{Activation, MirroringStatus};

use crate::config::RunConfig;
use crate::world::disk::{SimDisk, SubDisk};
use crate::world::{World, COORDINATOR_PORT, STANDBY_HOST};

pub const STANDBY_DATADIR: &str = "/data/standby";

fn standby_ip() -> IpAddr {
    "10.0.2.1".parse().unwrap()
}

/// What starting a standby process on its host (`smdw`, or a host prepared for a new standby)
/// needs.
#[derive(Clone)]
pub struct StandbyHost {
    pub hostname: String,
    pub addr: String,
    pub(crate) node: NodeHandle,
    pub(crate) disk: SimDisk,
    /// Where the world keeps the data directories (the standby's is recorded at launch).
    pub(crate) dirs: crate::world::dirs::DataDirs,
    pub(crate) coordinator_addr: String,
    pub(crate) coordinator: CoordinatorConfig,
}

impl StandbyHost {
    /// Where `init-standby -s` puts the standby on this host.
    pub(crate) fn new_standby(&self) -> NewStandby {
        NewStandby {
            hostname: self.hostname.clone(),
            address: self.addr.split(':').next().unwrap().into(),
            port: COORDINATOR_PORT,
            datadir: STANDBY_DATADIR.into(),
        }
    }

    /// Makes the standby's data directory anew for `row`, as `init-standby -s` does: emptied,
    /// with the standby's identity.
    pub(crate) fn make_directory(&self, row: &SegmentConfig) -> Result<(), String> {
        let dir = SubDisk::new(self.disk.clone(), &row.datadir);
        cluster::storage::wipe_instance_dir(&dir)
            .map_err(|e| format!("cannot empty {}:{}: {e}", row.hostname, row.datadir))?;
        crate::world::install_identity(
            &self.disk,
            self.coordinator.cluster_id,
            &row.datadir,
            row.dbid,
            -1,
        );
        Ok(())
    }

    /// Starts the standby process for the catalog row `row` on its host.
    pub fn launch(&self, row: &SegmentConfig) {
        let cfg = StandbyConfig {
            dbid: row.dbid,
            listen_addr: row.endpoint(),
            coordinator_addr: self.coordinator_addr.clone(),
            coordinator: self.coordinator.clone(),
        };
        let disk: Arc<dyn Disk> = Arc::new(SubDisk::new(self.disk.clone(), &row.datadir));
        self.dirs.standby(&self.hostname, &self.disk, &row.datadir);
        // The handle of the host as it is now: a restart gives the host a new life.
        let node = madsim::runtime::Handle::current()
            .get_node(self.node.id())
            .expect("the standby host exists");
        node.spawn(async move {
            if let Err(e) = instance::run(cfg, disk).await {
                warn!(error = %e, "standby stopped");
            }
        });
    }
}

impl World {
    pub(crate) fn add_standby_host(&mut self, cfg: &RunConfig) {
        let disk = self.new_disk_for(cfg, STANDBY_HOST);
        let (node, stopped) =
            self.coordinator_node(STANDBY_HOST, standby_ip(), Arc::new(Default::default()));
        self.standby = Some(StandbyHost {
            hostname: STANDBY_HOST.into(),
            addr: format!("{}:{COORDINATOR_PORT}", standby_ip()),
            node: node.clone(),
            disk: disk.clone(),
            dirs: self.dirs.clone(),
            coordinator_addr: self.coordinator_addr.clone(),
            coordinator: self.coordinator_config(cfg),
        });
        self.new_host(STANDBY_HOST, standby_ip(), disk, node, stopped);
    }

    /// The coordinator's own catalog row, as `init-standby` records it.
    pub fn coordinator_row(&self) -> SegmentConfig {
        crate::world::coordinator_pair::coordinator_row_at(
            "mdw",
            &self.coordinator_addr,
            "/data/coordinator",
        )
    }

    /// `init-standby -s smdw` (`resync: false`) or `init-standby -n` (`resync: true`), as an
    /// operator runs it from `node`; waits up to `within` for Synchronized.
    pub fn init_standby(
        &self,
        node: &NodeHandle,
        resync: bool,
        within: Duration,
    ) -> impl std::future::Future<Output = Result<MirroringStatus, StandbyAdminError>> {
        let host = self.standby.clone().expect("the run places a standby host");
        self.init_standby_on(node, host, resync, within)
    }

    /// `init-standby -s HOST` (`resync: false`) or `-n`, for the standby on `host`.
    pub fn init_standby_on(
        &self,
        node: &NodeHandle,
        host: StandbyHost,
        resync: bool,
        within: Duration,
    ) -> impl std::future::Future<Output = Result<MirroringStatus, StandbyAdminError>> {
        let coordinator = self.coordinator_row();
        let addrs = self.coordinator_addrs();
        let new = (!resync).then(|| host.new_standby());
        let task = node.spawn(async move {
            let mode = admin::init_mode(new, resync)?;
            let mut client = Client::new(addrs, Duration::from_secs(5));
            let launch = |row: SegmentConfig| {
                let made = if resync {
                    Ok(())
                } else {
                    host.make_directory(&row)
                };
                if made.is_ok() {
                    host.launch(&row);
                }
                async move { made }
            };
            admin::init_standby(&mut client, coordinator, mode, launch, within).await
        });
        async move { task.await.expect("init-standby task") }
    }

    /// The original coordinator's host `mdw`, repaired after `activate-standby` replaced its
    /// coordinator, made ready for a new standby (the seed's first step for a standby host):
    /// powered on without its old coordinator process, which must never run again beside the
    /// activated standby, with a standby process of its own at `10.0.0.2`, streaming from the
    /// activated standby on `smdw`. (A later `restart_host("mdw")` restarts every process of
    /// the host, the old coordinator's too: scenarios that use this do not restart `mdw`.)
    pub fn prepare_coordinator_host_for_standby(&mut self, cfg: &RunConfig) -> StandbyHost {
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let node = self
            .handle()
            .create_node()
            .name("mdw-standby")
            .ip(ip)
            .init(|| async { std::future::pending::<()>().await })
            .build();
        super::credentials::enroll(&node, cluster::io::auth::PeerIdentity::Coordinator);
        let active = self
            .standby
            .as_ref()
            .expect("a standby was activated")
            .addr
            .clone();
        let mut coordinator = self.coordinator_config(cfg);
        coordinator.listen_addr = format!("{ip}:{COORDINATOR_PORT}");
        let host = self.hosts.get_mut("mdw").expect("the coordinator's host");
        host.up = true;
        host.processes
            .push(crate::world::Process::idle(ip, node.clone()));
        StandbyHost {
            hostname: "mdw".into(),
            addr: format!("{ip}:{COORDINATOR_PORT}"),
            node,
            disk: host.disk.clone(),
            dirs: self.dirs.clone(),
            coordinator_addr: active,
            coordinator,
        }
    }

    /// `activate-standby`, run against `smdw` from `node`.
    pub fn activate_standby(
        &self,
        node: &NodeHandle,
    ) -> impl std::future::Future<Output = Result<Activation, StandbyAdminError>> {
        let addr = self.standby.as_ref().expect("standby host").addr.clone();
        let task = node
            .spawn(async move { admin::activate_standby(&addr, Duration::from_secs(30)).await });
        async move { task.await.expect("activate-standby task") }
    }

    /// The mirroring view, asked of whichever coordinator is active.
    pub fn mirroring_status(
        &self,
        node: &NodeHandle,
    ) -> impl std::future::Future<Output = Result<MirroringStatus, StandbyAdminError>> {
        let addrs = self.coordinator_addrs();
        let task = node.spawn(async move {
            admin::mirroring_status(&mut Client::new(addrs, Duration::from_secs(5))).await
        });
        async move { task.await.expect("status task") }
    }
}
