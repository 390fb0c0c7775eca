//! The seed's coordinator failover, end to end: a cluster under a mixed workload with
//! distributed transactions gets a standby (`init-standby -s smdw`, while it serves); once the
//! standby is Synchronized the coordinator's host crashes; the operator runs
//! `activate-standby`; clients reconnect to the new coordinator; then everything is read back
//! through it and judged by the same checkers as every seed ([`sim::run`]).

use std::collections::BTreeMap;
use std::time::Duration;

use rand_chacha::rand_core::Rng;

use cluster::client::Client;
use cluster::io::net::Connection;
use cluster::io::Disk;
use cluster::model::catalog::{Catalog, Content};
use cluster::standby::{Activation, MirroringStatus};
use cluster::wal::{Key, Value, WAL_PATH};
use cluster::wire::{SegmentRequest, SegmentResponse};

use sim::config::{RunConfig, Workload};
use sim::invariants::identical_replicas::PairChecksums;
use sim::invariants::{self, Violation};
use sim::observer::Recorder;
use sim::run::{self, stream};
use sim::workload::history::{History, Outcome, TxnRecord};
use sim::workload::now_ms;
use sim::world::disk::SubDisk;
use sim::world::World;

/// Two segment hosts with two mirrored contents each, six clients on the mixed workload (most
/// write transactions span contents, so they commit in two phases), and a standby host.
pub fn config() -> RunConfig {
    RunConfig {
        scenario: "standby-failover".into(),
        segment_hosts: 2,
        contents: 4,
        clients: 6,
        workload: Workload::mixed(),
        fault_time: Duration::from_secs(16),
        standby: true,
        ..RunConfig::pair()
    }
}

#[derive(Debug)]
pub struct FailoverReport {
    pub synchronized: MirroringStatus,
    /// Simulated ms after the workload started.
    pub crashed_at_ms: u64,
    pub activation: Activation,
    /// The catalog as the new coordinator has it after the run.
    pub catalog: Catalog,
    /// Prepared transactions still on each content's primary after the run.
    pub prepared_left: BTreeMap<Content, Vec<u64>>,
    pub ok: usize,
    /// Transactions begun after the activation that committed (through the new coordinator).
    pub ok_after_activation: usize,
    pub failed: usize,
    pub unknown: usize,
    /// What clients were told when the coordinator failed under them.
    pub client_errors: Vec<String>,
    pub violations: Vec<Violation>,
}

/// Runs the failover in the current madsim runtime.
pub async fn run(cfg: RunConfig, seed: u64) -> Result<FailoverReport, String> {
    let handle = madsim::runtime::Handle::current();
    let recorder = Recorder::default();
    let mut world = World::build_observed(&cfg, stream(seed, "disk").next_u64(), recorder.hook());
    let addrs = world.coordinator_addrs();
    let standby_addr = addrs[1].clone();
    let timeout = cfg.statement_timeout + Duration::from_secs(2);
    let admin = handle
        .create_node()
        .name("admin")
        .ip("10.0.1.1".parse().unwrap())
        .build();
    sim::world::credentials::enroll(&admin, cluster::io::auth::PeerIdentity::Admin);
    admin
        .spawn(run::create_tables(addrs[0].clone(), timeout))
        .await
        .unwrap()?;

    let start_ms = now_ms();
    let history = History::default();
    let stop_at_ms = start_ms + cfg.fault_time.as_millis() as u64;
    let front_doors = world.front_door_addrs();
    let clients = run::start_clients(
        &handle,
        &cfg,
        seed,
        &addrs,
        &front_doors,
        timeout,
        stop_at_ms,
        &history,
    );

    madsim::time::sleep(Duration::from_secs(1)).await;
    let synchronized = world
        .init_standby(&admin, false, Duration::from_secs(30))
        .await
        .map_err(|e| format!("init-standby -s: {e}"))?;
    let wait = 1000 + stream(seed, "standby-crash").next_u64() % 4000;
    madsim::time::sleep(Duration::from_millis(wait)).await;
    let crashed_at_ms = now_ms() - start_ms;
    world.kill_host("mdw");
    madsim::time::sleep(Duration::from_secs(1)).await;
    let activation = world
        .activate_standby(&admin)
        .await
        .map_err(|e| format!("activate-standby: {e}"))?;
    let activated_at_ms = now_ms();
    let (standby_wal, coordinator_wal) = catalog_wals(&world);

    for c in clients {
        let _ = c.await;
    }
    let (rows, checksums, catalog, prepared_left) = read_back(
        &admin,
        standby_addr,
        timeout,
        world.contents(),
        cfg.heal_bound,
    )
    .await?;

    let txns = history.txns();
    let wals = (standby_wal, coordinator_wal);
    let violations = checks(
        &txns,
        &rows,
        &recorder,
        &checksums,
        &wals,
        &activation,
        activated_at_ms,
    );
    let mut report = FailoverReport {
        synchronized,
        crashed_at_ms,
        activation,
        catalog,
        prepared_left,
        ok: 0,
        ok_after_activation: 0,
        failed: 0,
        unknown: 0,
        client_errors: Vec::new(),
        violations,
    };
    report.count(&txns, activated_at_ms);
    Ok(report)
}

impl FailoverReport {
    /// Counts the clients' transactions by outcome, and those that succeeded after the
    /// activation finished (at simulated `activated_at_ms`).
    fn count(&mut self, txns: &[TxnRecord], activated_at_ms: u64) {
        let count = |o: Outcome| txns.iter().filter(|t| t.outcome == Some(o)).count();
        self.ok = count(Outcome::Ok);
        self.ok_after_activation = txns
            .iter()
            .filter(|t| t.outcome == Some(Outcome::Ok) && t.invoked_ms > activated_at_ms)
            .count();
        self.failed = count(Outcome::Fail);
        self.unknown = count(Outcome::Unknown);
        self.client_errors = txns
            .iter()
            .filter(|t| t.outcome != Some(Outcome::Ok))
            .filter_map(|t| t.error.clone())
            .collect();
    }
}

/// Everything read back through the new coordinator at `addr`: every row, each pair's
/// checksums, the catalog and the prepared transactions left on each content's primary.
#[allow(clippy::type_complexity)]
async fn read_back(
    admin: &madsim::runtime::NodeHandle,
    addr: String,
    timeout: Duration,
    contents: Vec<i16>,
    bound: Duration,
) -> Result<
    (
        BTreeMap<(String, Key), Value>,
        Vec<PairChecksums>,
        Catalog,
        BTreeMap<Content, Vec<u64>>,
    ),
    String,
> {
    let rows = admin
        .spawn(run::read_everything(addr.clone(), timeout, contents, bound))
        .await
        .unwrap()
        .map_err(|e| format!("the new coordinator did not serve a full read: {e}"))?;
    let checksums = admin
        .spawn(run::pair_checksums(addr.clone(), timeout))
        .await
        .unwrap();
    let (catalog, prepared_left) = admin.spawn(leftovers(addr, timeout)).await.unwrap()?;
    Ok((rows, checksums, catalog, prepared_left))
}

/// The checkers over the run: the history against the rows read back, the promotions, the
/// pairs' checksums, and the activated standby's catalog (`wals`: the standby's, then the lost
/// coordinator's).
fn checks(
    txns: &[TxnRecord],
    rows: &BTreeMap<(String, Key), Value>,
    recorder: &Recorder,
    checksums: &[PairChecksums],
    wals: &(Vec<u8>, Vec<u8>),
    activation: &Activation,
    activated_at_ms: u64,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let model = invariants::model::Model::build(txns);
    violations.extend(invariants::no_lost_commits::check_with(txns, &model, rows));
    violations.extend(invariants::aborted_stays_aborted::check_with(
        txns, &model, rows,
    ));
    violations.extend(invariants::latest_value::check_with(txns, &model));
    violations.extend(invariants::promoted_in_sync::check(&recorder.facts()));
    violations.extend(invariants::identical_replicas::check(checksums, now_ms()));
    violations.extend(invariants::standby_catalog::check(
        &wals.0,
        &wals.1,
        activation.end_lsn,
        activated_at_ms,
    ));
    violations.extend(invariants::standby_catalog::check_acknowledged(
        &recorder.facts(),
        activation.end_lsn,
        activated_at_ms,
    ));
    violations
}

/// The catalog WAL of the activated standby and of the crashed coordinator, as their disks
/// hold them.
pub fn catalog_wals(world: &World) -> (Vec<u8>, Vec<u8>) {
    let read = |disk: &dyn Disk| {
        let len = disk.len(WAL_PATH).unwrap_or(0);
        disk.read_at(WAL_PATH, 0, len as usize).unwrap_or_default()
    };
    let standby_host = &world.hosts[sim::world::STANDBY_HOST];
    let standby = SubDisk::new(
        standby_host.disk.clone(),
        sim::world::standby_host::STANDBY_DATADIR,
    );
    (read(&standby), read(&world.hosts["mdw"].disk))
}

/// The new coordinator's catalog, and the prepared transactions each primary still holds.
async fn leftovers(
    coordinator: String,
    timeout: Duration,
) -> Result<(Catalog, BTreeMap<Content, Vec<u64>>), String> {
    let mut client = Client::new(vec![coordinator], timeout);
    let catalog = client.catalog().await.map_err(|e| e.to_string())?;
    let mut prepared = BTreeMap::new();
    for pair in catalog.pairs() {
        let mut conn = Connection::connect(&pair.primary.endpoint(), timeout)
            .await
            .map_err(|e| e.to_string())?;
        match conn
            .call(
                &SegmentRequest::ListPrepared {
                    epoch: catalog.epoch,
                },
                timeout,
            )
            .await
            .map_err(|e| e.to_string())?
        {
            SegmentResponse::PreparedList(gxids) => {
                prepared.insert(pair.content, gxids);
            }
            other => return Err(format!("content {}: {other:?}", pair.content)),
        }
    }
    Ok((catalog, prepared))
}
