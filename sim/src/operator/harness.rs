//! The simulated world as the administration verbs' [`Hosts`]: starting and stopping instance
//! processes on simulated hosts, as the seed utilities do over ssh.

use std::sync::{Arc, Mutex};

use cluster::admin::agents::{AgentHosts, HostMap};
use cluster::admin::{HostError, Hosts};
use cluster::model::catalog::SegmentConfig;

use crate::world::World;

/// A shared handle on the world, usable from a client node's task; also collects the named
/// outputs of a scenario's steps.
#[derive(Clone)]
pub struct SimHosts {
    pub world: Arc<Mutex<World>>,
    /// The named outputs of a scenario's steps, in order.
    pub steps: Arc<Mutex<Vec<(String, String)>>>,
    /// The run's configuration, which the world consults to start an instance.
    pub cfg: Arc<crate::config::RunConfig>,
}

impl SimHosts {
    /// Records a step's output under `name`.
    pub fn step(&self, name: &str, text: impl Into<String>) {
        self.steps
            .lock()
            .unwrap()
            .push((name.to_string(), text.into()));
    }

    /// Every step recorded so far.
    pub fn steps(&self) -> Vec<(String, String)> {
        self.steps.lock().unwrap().clone()
    }
}

impl SimHosts {
    /// Shares `world` with the run's tasks and its hosts' agents.
    pub fn new(world: World, cfg: &crate::config::RunConfig) -> SimHosts {
        SimHosts {
            world: world.share(cfg),
            steps: Default::default(),
            cfg: Arc::new(cfg.clone()),
        }
    }

    /// The verbs' view of the hosts: through their agents.
    fn agents(&self) -> AgentHosts<WorldMap> {
        AgentHosts::new(WorldMap(self.world.clone()))
    }
}

/// What the verbs know of the simulated hosts: names, free addresses, where agents listen.
pub struct WorldMap(Arc<Mutex<World>>);

impl HostMap for WorldMap {
    fn hostname_of(&self, address: &str) -> Option<String> {
        self.0.lock().unwrap().hostname_of(address)
    }

    fn new_address(&self, hostname: &str, nth: usize) -> Option<String> {
        self.0.lock().unwrap().free_address(hostname, nth)
    }

    fn agent_of(&self, hostname: &str) -> Option<String> {
        let known = self.0.lock().unwrap().hosts.contains_key(hostname);
        known
            .then(|| crate::world::agents::agent_endpoint(hostname))
            .flatten()
    }
}

impl Hosts for SimHosts {
    fn hostname_of(&self, address: &str) -> Option<String> {
        self.world.lock().unwrap().hostname_of(address)
    }

    fn start_mirror(
        &self,
        row: &SegmentConfig,
        primary: &str,
    ) -> impl std::future::Future<Output = Result<(), HostError>> + Send {
        let agents = self.agents();
        let (row, primary) = (row.clone(), primary.to_string());
        async move { agents.start_mirror(&row, &primary).await }
    }

    fn new_address(&self, hostname: &str, nth: usize) -> Option<String> {
        self.world.lock().unwrap().free_address(hostname, nth)
    }

    fn stop_instance(&self, row: &SegmentConfig) -> impl std::future::Future<Output = ()> + Send {
        let agents = self.agents();
        let row = row.clone();
        async move { agents.stop_instance(&row).await }
    }
}

/// A simulated cluster driven as an administrator drives it: the world behind a lock (so verbs
/// can start instances from a client's task) and a client host to run verbs and transactions.
pub struct AdminHarness {
    pub world: Arc<Mutex<World>>,
    pub hosts: SimHosts,
    pub coordinator: String,
    node: madsim::runtime::NodeHandle,
}

impl AdminHarness {
    pub fn build(cfg: &crate::config::RunConfig, seed: u64) -> AdminHarness {
        let world = World::build(cfg, seed);
        let coordinator = world.coordinator_addr.clone();
        let hosts = SimHosts::new(world, cfg);
        let world = hosts.world.clone();
        let node = madsim::runtime::Handle::current()
            .create_node()
            .name("admin")
            .ip("10.0.1.1".parse().unwrap())
            .build();
        crate::world::credentials::enroll(&node, cluster::io::auth::PeerIdentity::Admin);
        AdminHarness {
            hosts,
            world,
            coordinator,
            node,
        }
    }

    /// Runs `f` with a fresh client on the admin host and returns its result.
    pub async fn run<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce(cluster::client::Client, SimHosts) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let client = cluster::client::Client::new(
            vec![self.coordinator.clone()],
            std::time::Duration::from_secs(30),
        );
        let hosts = self.hosts.clone();
        self.node
            .spawn(async move { f(client, hosts).await })
            .await
            .expect("admin task panicked")
    }

    /// The admin host, where verbs run.
    pub fn node(&self) -> &madsim::runtime::NodeHandle {
        &self.node
    }

    /// A client host of its own (`10.0.1.x`), for clients that run beside the verbs.
    pub fn new_client_host(&self, name: &str, ip: &str) -> madsim::runtime::NodeHandle {
        let node = madsim::runtime::Handle::current()
            .create_node()
            .name(name)
            .ip(ip.parse().unwrap())
            .build();
        crate::world::credentials::enroll(&node, cluster::io::auth::PeerIdentity::Client);
        node
    }

    /// Adds a spare segment host `sdwN`; returns its address prefix `10.N.0`.
    pub fn add_spare_host(&self, name: &str) -> String {
        let cfg = self.hosts.cfg.clone();
        self.world.lock().unwrap().add_spare_host(&cfg, name)
    }

    pub fn kill_host(&self, name: &str) {
        self.world.lock().unwrap().kill_host(name);
    }

    pub fn restart_host(&self, name: &str) {
        self.world.lock().unwrap().restart_host(name);
    }
}

/// Waits (polling the catalog every 100 ms, up to 60 simulated seconds) until `ready` holds.
pub async fn wait_catalog(
    c: &mut cluster::client::Client,
    what: &str,
    ready: impl Fn(&cluster::model::catalog::Catalog) -> bool,
) -> cluster::model::catalog::Catalog {
    for _ in 0..600 {
        if let Ok(cat) = c.catalog().await {
            if ready(&cat) {
                return cat;
            }
        }
        madsim::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Every pair with a mirror is up and synchronized.
/// Panics unless the world places every instance of the catalog where the catalog says (host,
/// address, port, directory), as fault injection relies on it.
pub fn assert_world_places_as(hosts: &SimHosts, cat: &cluster::model::catalog::Catalog) {
    let world = hosts.world.lock().unwrap();
    for row in cat.segments.values() {
        let placed = world
            .segments
            .iter()
            .find(|s| s.dbid == row.dbid)
            .unwrap_or_else(|| panic!("the world has no instance dbid {}", row.dbid));
        assert_eq!(
            (
                &placed.hostname,
                &placed.address,
                placed.port,
                &placed.datadir
            ),
            (&row.hostname, &row.address, row.port, &row.datadir),
            "dbid {}: the world places it elsewhere than the catalog",
            row.dbid
        );
    }
}

pub fn all_synchronized(cat: &cluster::model::catalog::Catalog) -> bool {
    use cluster::model::catalog::{Mode, Status};
    cat.pairs().iter().all(|p| {
        p.mirror.as_ref().is_some_and(|m| {
            m.status == Status::Up && m.mode == Mode::Synced && p.primary.mode == Mode::Synced
        })
    })
}

/// Every instance is in its preferred role.
pub fn preferred_roles(cat: &cluster::model::catalog::Catalog) -> bool {
    cat.segments
        .values()
        .filter(|s| s.content >= 0)
        .all(|s| s.role == s.preferred_role)
}

/// Inserts `key` in its own transaction, retrying (a failover in between) up to 100 times;
/// returns whether it was acknowledged.
pub async fn insert_retrying(c: &mut cluster::client::Client, table: &str, key: i64) -> bool {
    insert_all_retrying(c, table, &[key]).await
}

/// The first key from `from` on `content` (of `contents`).
pub fn key_on(content: i16, from: i64, contents: i16) -> i64 {
    (from..)
        .find(|k| cluster::coordinator::content_for_key(*k, contents as usize) == content)
        .expect("every content owns keys")
}

/// `n` pairs of keys from `from` up, each pair on contents 0 and 1 (of `contents`): written
/// together, a pair commits in two phases, with a distributed-commit record in the catalog.
pub fn key_pairs(from: i64, n: usize, contents: i16) -> Vec<[i64; 2]> {
    let mut next = from;
    (0..n)
        .map(|_| {
            let a = key_on(0, next, contents);
            let b = key_on(1, next, contents);
            next = a.max(b) + 1;
            [a, b]
        })
        .collect()
}

/// Inserts `keys` in one transaction, retrying as [`insert_retrying`] does; returns whether it
/// was acknowledged.
pub async fn insert_all_retrying(
    c: &mut cluster::client::Client,
    table: &str,
    keys: &[i64],
) -> bool {
    for _ in 0..100 {
        let r = async {
            c.begin().await?;
            for key in keys {
                c.insert(table, *key, key.to_le_bytes().to_vec()).await?;
            }
            c.commit().await
        }
        .await;
        match r {
            Ok(()) => return true,
            Err(cluster::wire::DbError::Unknown(_)) => return false,
            Err(_) => {
                let _ = c.abort().await;
                madsim::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    false
}

/// Creates `table`, retrying while the cluster starts.
pub async fn create_table(c: &mut cluster::client::Client, table: &str) {
    for _ in 0..100 {
        if c.create_table(table, cluster::wal::TableKind::Heap)
            .await
            .is_ok()
        {
            return;
        }
        madsim::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("could not create table {table}");
}

/// Creates heap `table` and waits until content 0's pair is Synchronized: the start of a test
/// that then faults the pair.
pub async fn table_on_a_synchronized_pair(c: &mut cluster::client::Client, table: &str) {
    for _ in 0..200 {
        let created = c
            .create_table(table, cluster::wal::TableKind::Heap)
            .await
            .is_ok();
        let synced = c.catalog().await.is_ok_and(|cat| {
            cat.pair(0).unwrap().primary.mode == cluster::model::catalog::Mode::Synced
        });
        if created && synced {
            return;
        }
        madsim::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("table {table} never stood on a synchronized pair");
}

/// The keys a new transaction's scan of `table` on `content` returns (the transaction stays
/// open).
pub async fn scan_keys(c: &mut cluster::client::Client, table: &str, content: i16) -> Vec<i64> {
    c.begin().await.unwrap();
    c.scan(table, content)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// Every row of `table` on every content, sorted by key.
pub async fn all_keys(c: &mut cluster::client::Client, table: &str, contents: i16) -> Vec<i64> {
    let mut keys = Vec::new();
    for content in 0..contents {
        for _ in 0..100 {
            let r = async {
                c.begin().await?;
                let rows = c.scan(table, content).await?;
                c.commit().await?;
                Ok::<_, cluster::wire::DbError>(rows)
            }
            .await;
            match r {
                Ok(rows) => {
                    keys.extend(rows.into_iter().map(|(k, _)| k));
                    break;
                }
                Err(_) => {
                    let _ = c.abort().await;
                    madsim::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    }
    keys.sort();
    keys
}

/// The data digests of a content's two instances, taken once the mirror has replayed exactly
/// to the primary's flushed WAL: `(primary digest, mirror digest, lsn)`.
pub async fn pair_digests(
    cat: &cluster::model::catalog::Catalog,
    content: i16,
) -> Option<(u64, u64, u64)> {
    use cluster::io::net::Connection;
    use cluster::wire::{SegmentRequest, SegmentResponse};
    let pair = cat.pair(content)?;
    let mirror = pair.mirror?;
    for _ in 0..100 {
        let mut got = Vec::new();
        for row in [&pair.primary, &mirror] {
            let mut conn = Connection::connect(&row.endpoint(), std::time::Duration::from_secs(2))
                .await
                .ok()?;
            match conn
                .call(&SegmentRequest::Checksum, std::time::Duration::from_secs(5))
                .await
            {
                Ok(SegmentResponse::Checksum { lsn, digest }) => got.push((lsn, digest)),
                _ => return None,
            }
        }
        if got[0].0 == got[1].0 {
            return Some((got[0].1, got[1].1, got[0].0));
        }
        madsim::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}
