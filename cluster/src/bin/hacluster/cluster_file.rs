//! `cluster.json`: where every instance of a real cluster listens and keeps its data, and the
//! timing settings they share. Every process of the cluster reads the same file; it is the
//! production counterpart of the simulator's world description.
//!
//! The segment rows are the configuration a fresh coordinator starts from. Once the
//! coordinator has run, its durable catalog is the truth (roles after a failover live there,
//! not here); the file still says where each instance listens and keeps its data. The
//! `coordinator` entry is the acting coordinator: `activate-standby` moves the standby's entry
//! there, so every later verb (`start`, `restart`, the instances' own start) uses the activated
//! standby's catalog, never the deposed coordinator's.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use cluster::coordinator::prober::ProbeSettings;
use cluster::coordinator::CoordinatorConfig;
use cluster::model::bugs::PlantedBugs;
use cluster::model::catalog::{Content, Dbid, Mode, Role, SegmentConfig, Status};
use cluster::segment::{InstanceConfig, ReplicationMode};

pub const FILE_NAME: &str = "cluster.json";

/// The whole file. Durations are integers in milliseconds; unknown fields are refused so that
/// a misspelt setting is an error, not a silent default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// The cluster's identifier (16 hex digits), chosen by `init-local` and written into every
    /// data directory's identity: an instance refuses a directory of another cluster.
    pub cluster_id: String,
    /// The acting coordinator.
    pub coordinator: CoordinatorEntry,
    /// The standby coordinator, once `init-standby -s` added one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby: Option<StandbyEntry>,
    pub segments: Vec<SegmentEntry>,
    /// Each host's agent: where it listens. The verbs act on a host through its agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentEntry>,
    pub replication: ReplicationMode,
    pub probe: ProbeEntry,
    pub mirror_down_grace_period_ms: u64,
    pub wal_timeout_ms: u64,
    pub checkpoint_interval_ms: u64,
    pub statement_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub cache_blocks_max: usize,
    /// Connections the coordinator (and an activated standby) accepts at once; more are closed
    /// at once.
    #[serde(default = "default_coordinator_connections")]
    pub coordinator_max_connections: usize,
    /// Connections each segment instance accepts at once.
    #[serde(default = "default_segment_connections")]
    pub segment_max_connections: usize,
    /// A PEM certificate (chain) for the SQL front door's TLS; with `sql_tls_key`, clients
    /// may ask for TLS (`sslmode=require`). Without them the front door speaks plain TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_tls_cert: Option<PathBuf>,
    /// The PEM private key of `sql_tls_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_tls_key: Option<PathBuf>,
    /// Planted bugs (see `cluster::model::bugs`), for testing the tests only: the processes refuse
    /// them unless started with `--allow-planted-bugs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
    /// Whether this process was started with `--allow-planted-bugs` (not part of the file).
    #[serde(skip)]
    pub allow_planted_bugs: bool,
}

fn default_coordinator_connections() -> usize {
    cluster::io::net::ServerLimits::coordinator().max_connections
}

fn default_segment_connections() -> usize {
    cluster::io::net::ServerLimits::segment().max_connections
}

/// The standby coordinator, as `init-standby -s` recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandbyEntry {
    pub dbid: Dbid,
    pub hostname: String,
    pub address: String,
    pub port: u16,
    pub datadir: PathBuf,
    /// Where SQL clients connect once the standby is activated (PostgreSQL's wire protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_port: Option<u16>,
}

impl StandbyEntry {
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    /// The entry of the standby a catalog row names; its SQL port 100 above its port unless
    /// `sql_port` names one.
    pub fn from_row(row: &SegmentConfig, datadir: PathBuf, sql_port: Option<u16>) -> StandbyEntry {
        StandbyEntry {
            dbid: row.dbid,
            hostname: row.hostname.clone(),
            address: row.address.clone(),
            port: row.port,
            datadir,
            sql_port: sql_port.or_else(|| row.port.checked_add(100)),
        }
    }
}

/// A host's agent (`hacluster agent --host HOSTNAME`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    pub hostname: String,
    pub address: String,
    pub port: u16,
    /// The host's log directory: each process the agent starts logs to a file of its own
    /// there (`coordinator.log`, `segment-dbid2.log`, ...). Without it, beside its data
    /// directory (`DATADIR.log`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dir: Option<PathBuf>,
}

impl AgentEntry {
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorEntry {
    pub hostname: String,
    pub address: String,
    pub port: u16,
    pub datadir: PathBuf,
    /// Where SQL clients connect (psql, drivers: PostgreSQL's wire protocol), on `address`. A
    /// file without it (written before the front door) has no SQL port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_port: Option<u16>,
}

/// One segment instance. `role` is the role it is created with, and so its preferred role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentEntry {
    pub dbid: Dbid,
    pub content: Content,
    pub role: Role,
    pub hostname: String,
    pub address: String,
    pub port: u16,
    pub datadir: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeEntry {
    pub probe_interval_ms: u64,
    pub probe_timeout_ms: u64,
    pub probe_retries: u32,
    pub retry_gap_ms: u64,
    pub starting_probes_max: u32,
}

impl CoordinatorEntry {
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    /// `address:sql_port`, where it has one.
    pub fn sql_endpoint(&self) -> Option<String> {
        self.sql_port.map(|p| format!("{}:{p}", self.address))
    }
}

impl SegmentEntry {
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

/// What `init-local` lays out: a coordinator and one mirrored content on one machine, with
/// probe timings short enough for a test to see a failover within seconds.
pub fn local(dir: &Path, host: &str, base_port: u16) -> anyhow::Result<ClusterFile> {
    let cluster_id = format!(
        "{:016x}",
        cluster::storage::identity::new_id(u64::from(std::process::id()))
    );
    let port = |offset: u16| {
        base_port
            .checked_add(offset)
            .with_context(|| format!("--base-port {base_port} leaves no room for 3 ports"))
    };
    let segment = |dbid, role, port, name: &str| SegmentEntry {
        dbid,
        content: 0,
        role,
        hostname: host.to_string(),
        address: host.to_string(),
        port,
        datadir: dir.join(name),
    };
    Ok(ClusterFile {
        cluster_id,
        coordinator: CoordinatorEntry {
            hostname: host.to_string(),
            address: host.to_string(),
            port: base_port,
            datadir: dir.join("coordinator"),
            sql_port: None,
        },
        standby: None,
        segments: vec![
            segment(2, Role::Primary, port(1)?, "primary0"),
            segment(3, Role::Mirror, port(2)?, "mirror0"),
        ],
        agents: Vec::new(),
        replication: ReplicationMode::Sync,
        probe: ProbeEntry {
            probe_interval_ms: 1000,
            probe_timeout_ms: 1000,
            probe_retries: 2,
            retry_gap_ms: 300,
            starting_probes_max: 5,
        },
        mirror_down_grace_period_ms: 5000,
        wal_timeout_ms: 3000,
        checkpoint_interval_ms: 10_000,
        statement_timeout_ms: 10_000,
        connect_timeout_ms: 1000,
        cache_blocks_max: 256,
        coordinator_max_connections: default_coordinator_connections(),
        segment_max_connections: default_segment_connections(),
        sql_tls_cert: None,
        sql_tls_key: None,
        bugs: Vec::new(),
        allow_planted_bugs: false,
    })
}

/// The shape of a larger local cluster (`init-local --layout`): `hosts` loopback "hosts"
/// (`host1`..), `per_host` primaries on each, mirrors placed by `layout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalShape {
    pub hosts: usize,
    pub per_host: usize,
    pub layout: cluster::model::layout::Layout,
}

/// A local cluster of `shape`: host `i` (1-based name `host{i}`; on `127.0.0.1` each host gets
/// its own loopback address `127.0.0.{i}`, so the hosts are told apart by address as real ones
/// are) holds primaries on ports
/// `base + 1 + (i-1) * 2 * per_host + slot` and mirrors on the `per_host` ports after them;
/// data in `DIR/host{i}/primary{slot}` and `DIR/host{i}/mirror{slot}`. Refused (naming the
/// rule) when the layout cannot place the mirrors: spread needs more hosts than primaries per
/// host, block needs its size to divide the number of hosts.
pub fn local_with_shape(
    dir: &Path,
    host: &str,
    base_port: u16,
    shape: LocalShape,
) -> anyhow::Result<ClusterFile> {
    let hosts: Vec<HostArg> = (0..shape.hosts)
        .map(|h| HostArg {
            name: format!("host{}", h + 1),
            address: if host == "127.0.0.1" {
                format!("127.0.0.{}", h + 1)
            } else {
                host.to_string()
            },
        })
        .collect();
    let mut file = local(dir, host, base_port)?;
    file.segments = shaped_segments(dir, &hosts, base_port, shape.per_host, shape.layout)?;
    Ok(file)
}

/// The segment instances of `per_host` primaries on each of `hosts`, mirrors placed by
/// `layout`: host `i` (0-based) holds primaries on ports `base + 1 + i * 2 * per_host + slot`
/// and mirrors on the `per_host` ports after them (every port of the cluster is its own, so
/// "hosts" sharing one address work too); data in `ROOT/NAME/primary{slot}` and
/// `ROOT/NAME/mirror{slot}`.
fn shaped_segments(
    root: &Path,
    hosts: &[HostArg],
    base_port: u16,
    per_host: usize,
    layout: cluster::model::layout::Layout,
) -> anyhow::Result<Vec<SegmentEntry>> {
    let contents = hosts.len() * per_host;
    let placed = layout
        .place(hosts.len(), per_host, contents)
        .map_err(|e| anyhow::anyhow!("--layout {layout}: {e}"))?;
    let port = |h: usize, offset: usize| -> anyhow::Result<u16> {
        let p = base_port as usize + 1 + h * 2 * per_host + offset;
        u16::try_from(p)
            .with_context(|| format!("--base-port {base_port} leaves no room for port {p}"))
    };
    let mut segments = Vec::new();
    let mut dbid = 2;
    for p in placed {
        let entry =
            |dbid, role, h: usize, offset: usize, name: String| -> anyhow::Result<SegmentEntry> {
                Ok(SegmentEntry {
                    dbid,
                    content: p.content as Content,
                    role,
                    hostname: hosts[h].name.clone(),
                    address: hosts[h].address.clone(),
                    port: port(h, offset)?,
                    datadir: root.join(&hosts[h].name).join(name),
                })
            };
        segments.push(entry(
            dbid,
            Role::Primary,
            p.primary_host,
            p.primary_slot,
            format!("primary{}", p.primary_slot),
        )?);
        segments.push(entry(
            dbid + 1,
            Role::Mirror,
            p.mirror_host,
            per_host + p.mirror_slot,
            format!("mirror{}", p.mirror_slot),
        )?);
        dbid += 2;
    }
    Ok(segments)
}

/// A host of a planned cluster, `NAME=ADDRESS` on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostArg {
    pub name: String,
    pub address: String,
}

impl std::str::FromStr for HostArg {
    type Err = String;

    fn from_str(text: &str) -> Result<HostArg, String> {
        let (name, address) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: a host is NAME=ADDRESS, e.g. sdw1=10.0.0.11"))?;
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(format!(
                "`{name}`: a host name is 1 to 64 letters, digits, `-`, `_` or `.`"
            ));
        }
        if address.parse::<std::net::IpAddr>().is_err() {
            return Err(format!(
                "`{address}`: the address of host {name} must be an IP address"
            ));
        }
        Ok(HostArg {
            name: name.into(),
            address: address.into(),
        })
    }
}

/// What `plan` lays out (gpinitsystem's configuration file): the coordinator's host, the
/// segment hosts in order, spare hosts (an agent and no instance, for `recoverseg -i`).
#[derive(Clone, Debug)]
pub struct Plan {
    pub coordinator: HostArg,
    pub segment_hosts: Vec<HostArg>,
    pub spare_hosts: Vec<HostArg>,
    pub per_host: usize,
    pub layout: cluster::model::layout::Layout,
    pub base_port: u16,
    /// Where every host keeps its data directories (`ROOT/NAME/...`).
    pub data_root: Option<PathBuf>,
    /// Where every host keeps its logs (`LOGS/NAME/...`).
    pub log_root: Option<PathBuf>,
}

/// Writes a new `DIR/cluster.json` laid out as `plan` says, and makes no data directory:
/// `init --cluster` has each host's agent make its own.
pub fn plan(dir: &Path, plan: &Plan) -> anyhow::Result<(PathBuf, ClusterFile)> {
    for spare in &plan.spare_hosts {
        if plan.segment_hosts.iter().any(|h| h.name == spare.name) {
            bail!("--spare-host {}: it is a segment host already", spare.name);
        }
    }
    let mut names = BTreeSet::new();
    let every = std::iter::once(&plan.coordinator)
        .chain(&plan.segment_hosts)
        .chain(&plan.spare_hosts);
    for h in every.clone() {
        let same = plan.coordinator.name == h.name && plan.coordinator.address == h.address;
        if !names.insert(h.name.clone()) && !same {
            bail!("host {} is named twice (a host has one address)", h.name);
        }
    }
    let dir = new_cluster_dir(dir)?;
    let root = match &plan.data_root {
        Some(root) => std::path::absolute(root)
            .with_context(|| format!("--data-root {}: cannot resolve", root.display()))?,
        None => dir.clone(),
    };
    let mut file = local(&root, &plan.coordinator.address, plan.base_port)?;
    file.coordinator.hostname = plan.coordinator.name.clone();
    file.coordinator.datadir = root.join(&plan.coordinator.name).join("coordinator");
    file.segments = shaped_segments(
        &root,
        &plan.segment_hosts,
        plan.base_port,
        plan.per_host,
        plan.layout,
    )?;
    file.place_agents()?;
    for spare in &plan.spare_hosts {
        let port = file
            .agents
            .iter()
            .map(|a| a.port)
            .max()
            .unwrap_or(plan.base_port);
        file.agents.push(AgentEntry {
            hostname: spare.name.clone(),
            address: spare.address.clone(),
            port: port
                .checked_add(1)
                .context("no port is left above the instances' for the agents")?,
            log_dir: None,
        });
    }
    file.coordinator.sql_port = Some(file.free_sql_port(plan.base_port.saturating_add(100))?);
    if let Some(logs) = &plan.log_root {
        let logs = std::path::absolute(logs)
            .with_context(|| format!("--log-root {}: cannot resolve", logs.display()))?;
        for a in &mut file.agents {
            a.log_dir = Some(logs.join(&a.hostname));
        }
    }
    file.validate()?;
    let path = dir.join(FILE_NAME);
    write_new(&path, &file)?;
    Ok((path, file))
}

/// `dir`, made if need be and absolute, where no cluster is laid out yet.
fn new_cluster_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Absolute paths: the instances may be started from any working directory.
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let path = dir.join(FILE_NAME);
    if path.exists() {
        bail!(
            "{} exists; a cluster is already laid out there",
            path.display()
        );
    }
    Ok(dir)
}

/// Writes `file` at `path`, which must not exist: two concurrent inits cannot both win.
fn write_new(path: &Path, file: &ClusterFile) -> anyhow::Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    out.write_all(file.text().as_bytes())
        .and_then(|_| out.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a new `DIR/cluster.json` for a loopback cluster (one mirrored content, or `shape`);
/// refuses to overwrite one, or to lay out a cluster on ports something already listens on.
pub fn init_local(
    dir: &Path,
    host: &str,
    base_port: u16,
    sql_port: Option<u16>,
    shape: Option<LocalShape>,
) -> anyhow::Result<(PathBuf, ClusterFile)> {
    let dir = new_cluster_dir(dir)?;
    let path = dir.join(FILE_NAME);
    let mut file = match shape {
        None => local(&dir, host, base_port)?,
        Some(shape) => local_with_shape(&dir, host, base_port, shape)?,
    };
    file.place_agents()?;
    file.coordinator.sql_port = Some(match sql_port {
        Some(p) => p,
        None => base_port.checked_add(100).with_context(|| {
            format!(
                "--base-port {base_port} leaves no room for the SQL port (+100); give --sql-port"
            )
        })?,
    });
    file.validate()?;
    file.check_ports_free()?;
    for (datadir, _, _) in file.data_directories() {
        if datadir.exists() {
            bail!(
                "{} exists; init makes every data directory anew and will not reuse one",
                datadir.display()
            );
        }
    }
    write_new(&path, &file)?;
    for (datadir, dbid, content) in file.data_directories() {
        make_data_directory(&file, &datadir, dbid, content)?;
    }
    Ok((path, file))
}

/// Makes an instance's data directory: created, with the identity that names it, both
/// durable. Only `init`, a full recovery and the verbs placing a new instance make one; an
/// instance never makes its own.
pub fn make_data_directory(
    file: &ClusterFile,
    datadir: &Path,
    dbid: Dbid,
    content: Content,
) -> anyhow::Result<()> {
    use cluster::storage::identity::{Identity, IDENTITY_PATH};
    let identity = Identity {
        cluster_id: file.cluster_id()?,
        dbid,
        content,
        system_id: None,
    };
    let make = || -> std::io::Result<()> {
        std::fs::create_dir_all(datadir)?;
        let path = datadir.join(IDENTITY_PATH);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        out.write_all(&identity.encoded())?;
        out.sync_all()?;
        std::fs::File::open(datadir)?.sync_all()?;
        if let Some(parent) = datadir.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    };
    make().with_context(|| format!("cannot make data directory {}", datadir.display()))
}

impl ClusterFile {
    /// Reads and checks a cluster file. A syntax or type error quotes the offending line, so
    /// the field at fault is named even where serde's message names only a type.
    pub fn load(path: &Path) -> anyhow::Result<ClusterFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read cluster file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The cluster file `text` (read from `origin`), checked.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<ClusterFile> {
        let file: ClusterFile = serde_json::from_str(text).map_err(|e| {
            let near = text
                .lines()
                .nth(e.line().saturating_sub(1))
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(|line| format!(" (near `{line}`)"))
                .unwrap_or_default();
            anyhow::anyhow!("cluster file {origin}: {e}{near}")
        })?;
        file.validate()
            .with_context(|| format!("cluster file {origin}"))?;
        Ok(file)
    }

    /// The rules a cluster file must follow; each error names the field at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut endpoints = BTreeSet::from([self.coordinator.endpoint()]);
        let mut datadirs = BTreeSet::from([self.coordinator.datadir.clone()]);
        self.check_segments(&mut endpoints, &mut datadirs)?;
        if self.coordinator.port == 0 {
            bail!("coordinator.port: 0 is not a port");
        }
        self.check_contents()?;
        self.cluster_id()?;
        self.check_standby(&mut endpoints, &mut datadirs)?;
        self.check_agents(&mut endpoints)?;
        self.check_sql_ports(&endpoints)?;
        self.check_datadirs_absolute()?;
        self.check_settings()?;
        self.named_bugs()?;
        Ok(())
    }

    /// Each segment entry on its own, and no dbid, address or data directory used twice.
    fn check_segments(
        &self,
        endpoints: &mut BTreeSet<String>,
        datadirs: &mut BTreeSet<PathBuf>,
    ) -> anyhow::Result<()> {
        if self.segments.is_empty() {
            bail!("segments: at least one segment is required");
        }
        let mut dbids = BTreeSet::new();
        for (i, seg) in self.segments.iter().enumerate() {
            if seg.dbid <= 1 {
                bail!("segments[{i}].dbid: {} is reserved (dbid 1 is the coordinator); segments start at 2", seg.dbid);
            }
            if seg.content < 0 {
                bail!(
                    "segments[{i}].content: {} is the coordinator's content; segments are 0..N-1",
                    seg.content
                );
            }
            if seg.port == 0 {
                bail!("segments[{i}].port: 0 is not a port");
            }
            if !dbids.insert(seg.dbid) {
                bail!("segments[{i}].dbid: dbid {} appears twice", seg.dbid);
            }
            if !endpoints.insert(seg.endpoint()) {
                bail!(
                    "segments[{i}].port: {} is already used by another instance",
                    seg.endpoint()
                );
            }
            if !datadirs.insert(seg.datadir.clone()) {
                bail!(
                    "segments[{i}].datadir: {} is already used by another instance",
                    seg.datadir.display()
                );
            }
        }
        Ok(())
    }

    /// Contents 0..N-1 without gaps, each with one primary and at most one mirror.
    fn check_contents(&self) -> anyhow::Result<()> {
        let contents: BTreeSet<Content> = self.segments.iter().map(|s| s.content).collect();
        for (n, content) in contents.iter().enumerate() {
            if *content as usize != n {
                bail!("segments: contents must be 0..N-1 without gaps; content {n} is missing");
            }
            let rows: Vec<&SegmentEntry> = self
                .segments
                .iter()
                .filter(|s| s.content == *content)
                .collect();
            let primaries = rows.iter().filter(|s| s.role == Role::Primary).count();
            let mirrors = rows.iter().filter(|s| s.role == Role::Mirror).count();
            if primaries != 1 || mirrors > 1 {
                bail!("segments: content {content} has {primaries} primaries and {mirrors} mirrors; it needs one primary and at most one mirror");
            }
        }
        Ok(())
    }

    /// The standby entry, if any: its own dbid, address and data directory.
    fn check_standby(
        &self,
        endpoints: &mut BTreeSet<String>,
        datadirs: &mut BTreeSet<PathBuf>,
    ) -> anyhow::Result<()> {
        let Some(standby) = &self.standby else {
            return Ok(());
        };
        if standby.dbid <= 1 || self.segments.iter().any(|s| s.dbid == standby.dbid) {
            bail!(
                "standby.dbid: {} is the coordinator's or a segment's",
                standby.dbid
            );
        }
        if standby.port == 0 {
            bail!("standby.port: 0 is not a port");
        }
        if !endpoints.insert(standby.endpoint()) {
            bail!(
                "standby.port: {} is already used by another instance",
                standby.endpoint()
            );
        }
        if !datadirs.insert(standby.datadir.clone()) {
            bail!(
                "standby.datadir: {} is already used by another instance",
                standby.datadir.display()
            );
        }
        Ok(())
    }

    /// Each agent entry: one per host, on a port of its own.
    fn check_agents(&self, endpoints: &mut BTreeSet<String>) -> anyhow::Result<()> {
        let mut hosts = BTreeSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            if agent.hostname.is_empty() {
                bail!("agents[{i}].hostname: empty");
            }
            if !hosts.insert(&agent.hostname) {
                bail!(
                    "agents[{i}].hostname: host {} has two agents; a host has one",
                    agent.hostname
                );
            }
            if agent.port == 0 {
                bail!("agents[{i}].port: 0 is not a port");
            }
            if agent.log_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
                bail!("agents[{i}].log_dir: must be an absolute path");
            }
            if !endpoints.insert(agent.endpoint()) {
                bail!(
                    "agents[{i}].port: {} is already used by an instance or another agent",
                    agent.endpoint()
                );
            }
        }
        Ok(())
    }

    /// The SQL ports: each on a port no other process of its host (its address) uses, and TLS
    /// named whole or not at all.
    fn check_sql_ports(&self, endpoints: &BTreeSet<String>) -> anyhow::Result<()> {
        let mut sql = BTreeSet::new();
        let ports = std::iter::once((
            "coordinator.sql_port",
            &self.coordinator.address,
            self.coordinator.sql_port,
        ))
        .chain(
            self.standby
                .iter()
                .map(|s| ("standby.sql_port", &s.address, s.sql_port)),
        );
        for (field, address, port) in ports {
            let Some(port) = port else { continue };
            if port == 0 {
                bail!("{field}: 0 is not a port");
            }
            let endpoint = format!("{address}:{port}");
            if endpoints.contains(&endpoint) || !sql.insert(endpoint.clone()) {
                bail!("{field}: {endpoint} is already used by another process of the same host");
            }
        }
        if self.sql_tls_cert.is_some() != self.sql_tls_key.is_some() {
            bail!("sql_tls_cert and sql_tls_key: name both (TLS for SQL clients) or neither");
        }
        Ok(())
    }

    /// `wanted`, or the first port above it that no process on the coordinator's address uses.
    pub fn free_sql_port(&self, wanted: u16) -> anyhow::Result<u16> {
        let address = &self.coordinator.address;
        let used: BTreeSet<u16> =
            std::iter::once((&self.coordinator.address, self.coordinator.port))
                .chain(self.standby.iter().map(|s| (&s.address, s.port)))
                .chain(self.segments.iter().map(|s| (&s.address, s.port)))
                .chain(self.agents.iter().map(|a| (&a.address, a.port)))
                .filter(|(a, _)| *a == address)
                .map(|(_, p)| p)
                .collect();
        (wanted..=u16::MAX)
            .find(|p| !used.contains(p))
            .context("no port is left for the SQL front door")
    }

    /// The agent of host `hostname`, if the file names one.
    pub fn agent_of(&self, hostname: &str) -> Option<&AgentEntry> {
        self.agents.iter().find(|a| a.hostname == hostname)
    }

    /// Every host the file places an instance on, the coordinator's first, each once.
    pub fn hostnames(&self) -> Vec<String> {
        let mut names = vec![self.coordinator.hostname.clone()];
        names.extend(self.standby.iter().map(|s| s.hostname.clone()));
        names.extend(self.segments.iter().map(|s| s.hostname.clone()));
        let mut seen = BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }

    /// Gives every host an agent, at the address of the host's first instance, on the ports
    /// from two above the highest one the file uses (the one between is left for a standby).
    pub fn place_agents(&mut self) -> anyhow::Result<()> {
        let highest = std::iter::once(self.coordinator.port)
            .chain(self.standby.iter().map(|s| s.port))
            .chain(self.segments.iter().map(|s| s.port))
            .chain(self.agents.iter().map(|a| a.port))
            .max()
            .unwrap_or(0);
        let mut next = highest.saturating_add(1);
        for host in self.hostnames() {
            if self.agent_of(&host).is_some() {
                continue;
            }
            let address = if self.coordinator.hostname == host {
                self.coordinator.address.clone()
            } else {
                self.standby
                    .iter()
                    .filter(|s| s.hostname == host)
                    .map(|s| s.address.clone())
                    .chain(
                        self.segments
                            .iter()
                            .filter(|s| s.hostname == host)
                            .map(|s| s.address.clone()),
                    )
                    .next()
                    .expect("a host of the file has an instance")
            };
            next = next
                .checked_add(1)
                .context("no port is left above the instances' for the agents")?;
            self.agents.push(AgentEntry {
                hostname: host,
                address,
                port: next,
                log_dir: None,
            });
        }
        Ok(())
    }

    /// Data directories are absolute: instances may start from any working directory.
    fn check_datadirs_absolute(&self) -> anyhow::Result<()> {
        for (field, path) in std::iter::once(("coordinator.datadir", &self.coordinator.datadir))
            .chain(self.standby.iter().map(|s| ("standby.datadir", &s.datadir)))
            .chain(
                self.segments
                    .iter()
                    .map(|s| ("segments[].datadir", &s.datadir)),
            )
        {
            if path.is_relative() {
                bail!(
                    "{field}: {} is relative; data directories are absolute paths (instances may start from any working directory)",
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// The timing and size settings, each in its range, and the rules between them; an error
    /// names the field and the rule.
    fn check_settings(&self) -> anyhow::Result<()> {
        const HOUR_MS: u64 = 3_600_000;
        const DAY_MS: u64 = 24 * HOUR_MS;
        let probe = &self.probe;
        // One line per setting: field, value, least, most, unit.
        #[rustfmt::skip]
        let ranges: [(&str, u64, u64, u64, &str); 13] = [
            ("probe.probe_interval_ms", probe.probe_interval_ms, 100, HOUR_MS, "ms"),
            ("probe.probe_timeout_ms", probe.probe_timeout_ms, 10, HOUR_MS, "ms"),
            ("probe.probe_retries", probe.probe_retries.into(), 0, 100, "retries"),
            ("probe.retry_gap_ms", probe.retry_gap_ms, 10, HOUR_MS, "ms"),
            ("probe.starting_probes_max", probe.starting_probes_max.into(), 1, 1000, "probes"),
            ("mirror_down_grace_period_ms", self.mirror_down_grace_period_ms, 0, HOUR_MS, "ms"),
            ("wal_timeout_ms", self.wal_timeout_ms, 100, HOUR_MS, "ms"),
            ("checkpoint_interval_ms", self.checkpoint_interval_ms, 100, DAY_MS, "ms"),
            ("statement_timeout_ms", self.statement_timeout_ms, 100, DAY_MS, "ms"),
            ("connect_timeout_ms", self.connect_timeout_ms, 10, HOUR_MS, "ms"),
            ("cache_blocks_max", self.cache_blocks_max as u64, 1, 1 << 20, "blocks of 8 KiB"),
            ("coordinator_max_connections", self.coordinator_max_connections as u64, 8, 100_000, "connections"),
            ("segment_max_connections", self.segment_max_connections as u64, 8, 100_000, "connections"),
        ];
        for (field, value, min, max, unit) in ranges {
            if value < min || value > max {
                bail!("{field}: {value} is out of range: it must be {min} to {max} {unit}");
            }
        }
        let order = |rule: &str, holds: bool| {
            if !holds {
                bail!("{rule}");
            }
            Ok(())
        };
        order(
            &format!(
                "probe.probe_timeout_ms: {} exceeds probe.probe_interval_ms ({}); a probe must end within its interval",
                probe.probe_timeout_ms, probe.probe_interval_ms
            ),
            probe.probe_timeout_ms <= probe.probe_interval_ms,
        )?;
        order(
            &format!(
                "probe.retry_gap_ms: {} is not shorter than probe.probe_interval_ms ({}); retries happen within one probe cycle",
                probe.retry_gap_ms, probe.probe_interval_ms
            ),
            probe.retry_gap_ms < probe.probe_interval_ms,
        )?;
        order(
            &format!(
                "connect_timeout_ms: {} is not shorter than statement_timeout_ms ({}); a statement's connect happens within it",
                self.connect_timeout_ms, self.statement_timeout_ms
            ),
            self.connect_timeout_ms < self.statement_timeout_ms,
        )?;
        Ok(())
    }

    /// The cluster identifier as a number.
    pub fn cluster_id(&self) -> anyhow::Result<u64> {
        if self.cluster_id.len() != 16 {
            bail!("cluster_id: {:?} is not 16 hex digits", self.cluster_id);
        }
        u64::from_str_radix(&self.cluster_id, 16)
            .map_err(|_| anyhow::anyhow!("cluster_id: {:?} is not 16 hex digits", self.cluster_id))
    }

    /// Every data directory of the file: the coordinator's (dbid 1, content -1), the standby's
    /// and every segment instance's, with dbid and content.
    pub fn data_directories(&self) -> Vec<(PathBuf, Dbid, Content)> {
        let mut dirs = vec![(self.coordinator.datadir.clone(), 1, -1)];
        dirs.extend(self.standby.iter().map(|s| (s.datadir.clone(), s.dbid, -1)));
        dirs.extend(
            self.segments
                .iter()
                .map(|s| (s.datadir.clone(), s.dbid, s.content)),
        );
        dirs
    }

    /// The file's text, as stored.
    pub fn text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("the cluster file encodes");
        text.push('\n');
        text
    }

    /// Writes the file back durably (a verb recorded a change), replacing it atomically.
    pub fn store(&self, path: &Path) -> anyhow::Result<()> {
        self.validate()?;
        let text = self.text();
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut out = std::fs::File::create(&tmp)?;
            out.write_all(text.as_bytes())?;
            out.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().with_context(|| format!("cannot update {}", path.display()))
    }

    /// Fails if any instance's port is taken right now (another cluster, another program).
    pub fn check_ports_free(&self) -> anyhow::Result<()> {
        let coordinator = std::iter::once(("coordinator".to_string(), self.coordinator.endpoint()));
        let segments = self
            .segments
            .iter()
            .map(|s| (format!("dbid {}", s.dbid), s.endpoint()));
        let agents = self
            .agents
            .iter()
            .map(|a| (format!("the agent of host {}", a.hostname), a.endpoint()));
        let sql = self
            .coordinator
            .sql_endpoint()
            .map(|e| ("the SQL front door".to_string(), e));
        for (who, endpoint) in coordinator.chain(segments).chain(agents).chain(sql) {
            TcpListener::bind(&endpoint)
                .with_context(|| format!("{endpoint} ({who}) is not free"))?;
        }
        Ok(())
    }

    fn named_bugs(&self) -> anyhow::Result<PlantedBugs> {
        let mut bugs = PlantedBugs::none();
        for (i, name) in self.bugs.iter().enumerate() {
            bugs.enable(name)
                .map_err(|e| anyhow::anyhow!("bugs[{i}]: {e}"))?;
        }
        Ok(bugs)
    }

    /// The planted bugs a process runs with: none, unless it was started with the test-only
    /// `--allow-planted-bugs`.
    fn planted_bugs(&self) -> anyhow::Result<PlantedBugs> {
        let bugs = self.named_bugs()?;
        if !self.bugs.is_empty() && !self.allow_planted_bugs {
            bail!(
                "bugs: {:?} are planted bugs, deliberate defects for testing the simulator's checkers; a production process refuses them (remove the field, or start with --allow-planted-bugs in a test)",
                self.bugs
            );
        }
        Ok(bugs)
    }

    pub fn segment(&self, dbid: Dbid) -> anyhow::Result<&SegmentEntry> {
        self.segments
            .iter()
            .find(|s| s.dbid == dbid)
            .with_context(|| {
                let known: Vec<String> = self.segments.iter().map(|s| s.dbid.to_string()).collect();
                format!(
                    "no segment with dbid {dbid} in the cluster file (dbids: {})",
                    known.join(", ")
                )
            })
    }

    /// The initial `gp_segment_configuration` rows.
    ///
    /// A pair starts not in sync: its mirror has not streamed yet, and may not even be running.
    /// The prober records the pair in sync once the primary reports its mirror caught up; until
    /// then losing the primary is a double fault, never a promotion of a mirror that may lack
    /// acknowledged commits.
    pub fn catalog_rows(&self) -> Vec<SegmentConfig> {
        self.segments
            .iter()
            .map(|s| SegmentConfig {
                dbid: s.dbid,
                content: s.content,
                role: s.role,
                preferred_role: s.role,
                mode: Mode::NotSynced,
                status: Status::Up,
                hostname: s.hostname.clone(),
                address: s.address.clone(),
                port: s.port,
                datadir: s.datadir.display().to_string(),
            })
            .collect()
    }

    pub fn coordinator_config(&self) -> anyhow::Result<CoordinatorConfig> {
        let mut cfg = CoordinatorConfig::new(self.coordinator.endpoint(), self.catalog_rows());
        cfg.probe = ProbeSettings {
            probe_interval: ms(self.probe.probe_interval_ms),
            probe_timeout: ms(self.probe.probe_timeout_ms),
            probe_retries: self.probe.probe_retries,
            retry_gap: ms(self.probe.retry_gap_ms),
            starting_probes_max: self.probe.starting_probes_max,
        };
        cfg.statement_timeout = ms(self.statement_timeout_ms);
        cfg.connect_timeout = ms(self.connect_timeout_ms);
        cfg.cluster_id = self.cluster_id()?;
        cfg.server_limits.max_connections = self.coordinator_max_connections;
        cfg.bugs = self.planted_bugs()?;
        Ok(cfg)
    }

    /// The configuration of instance `dbid`: its peer is the other instance of its content.
    pub fn instance_config(&self, dbid: Dbid) -> anyhow::Result<(InstanceConfig, PathBuf)> {
        let seg = self.segment(dbid)?;
        let mut cfg = InstanceConfig::new(seg.dbid, seg.content, seg.endpoint(), seg.role);
        cfg.peer_addr = self
            .segments
            .iter()
            .find(|p| p.content == seg.content && p.dbid != seg.dbid)
            .map(SegmentEntry::endpoint);
        cfg.replication = self.replication;
        cfg.mirror_down_grace_period = ms(self.mirror_down_grace_period_ms);
        cfg.wal_timeout = ms(self.wal_timeout_ms);
        cfg.checkpoint_interval = ms(self.checkpoint_interval_ms);
        cfg.cache_blocks_max = self.cache_blocks_max;
        cfg.cluster_id = self.cluster_id()?;
        cfg.server_limits.max_connections = self.segment_max_connections;
        cfg.bugs = self.planted_bugs()?;
        Ok((cfg, seg.datadir.clone()))
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hacluster-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_local_layout_round_trips_and_validates() {
        let file = local(Path::new("/d"), "127.0.0.1", 7000).unwrap();
        file.validate().unwrap();
        let text = serde_json::to_string_pretty(&file).unwrap();
        assert_eq!(serde_json::from_str::<ClusterFile>(&text).unwrap(), file);
        let (mirror, _) = file.instance_config(3).unwrap();
        assert_eq!(mirror.peer_addr.as_deref(), Some("127.0.0.1:7001"));
        assert_eq!(mirror.initial_role, Role::Mirror);
        assert!(file
            .instance_config(9)
            .unwrap_err()
            .to_string()
            .contains("dbid 9"));
    }

    #[test]
    fn a_bad_file_names_the_field_at_fault() {
        let dir = scratch("bad");
        std::fs::create_dir_all(&dir).unwrap();
        let good = serde_json::to_string_pretty(&local(&dir, "127.0.0.1", 7000).unwrap()).unwrap();
        let path = dir.join(FILE_NAME);
        let cases = [
            (
                good.replace("\"wal_timeout_ms\": 3000", "\"wal_timeout_ms\": \"3s\""),
                "wal_timeout_ms",
            ),
            (good.replace("probe_retries", "probe_retry"), "probe_retry"),
            (
                good.replace("\"wal_timeout_ms\": 3000,", ""),
                "wal_timeout_ms",
            ),
            (
                good.replace("\"dbid\": 3", "\"dbid\": 2"),
                "segments[1].dbid",
            ),
            (
                good.replace("\"probe_interval_ms\": 1000", "\"probe_interval_ms\": 0"),
                "probe.probe_interval_ms",
            ),
        ];
        for (text, field) in cases {
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", ClusterFile::load(&path).unwrap_err());
            assert!(err.contains(field), "error does not name {field}: {err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sql_ports_are_optional_in_old_files_and_must_not_share_a_hosts_port() {
        let mut file = local(Path::new("/d"), "127.0.0.1", 7000).unwrap();
        // A file written before the front door has no SQL port, and still parses.
        let old = file.text();
        assert!(!old.contains("sql_port"), "{old}");
        assert_eq!(
            ClusterFile::parse(&old, "old")
                .unwrap()
                .coordinator
                .sql_port,
            None
        );
        file.coordinator.sql_port = Some(7100);
        file.validate().unwrap();
        assert_eq!(ClusterFile::parse(&file.text(), "new").unwrap(), file);
        file.coordinator.sql_port = Some(7001);
        let err = format!("{:#}", file.validate().unwrap_err());
        assert!(
            err.contains("coordinator.sql_port") && err.contains("127.0.0.1:7001"),
            "{err}"
        );
        file.coordinator.sql_port = Some(7100);
        let row = SegmentConfig::coordinator(
            "127.0.0.1".into(),
            "127.0.0.1".into(),
            7003,
            "/d/standby".into(),
        );
        let mut standby = StandbyEntry::from_row(&row, "/d/standby".into(), None);
        standby.dbid = 4;
        assert_eq!(standby.sql_port, Some(7103), "the standby's port + 100");
        standby.sql_port = Some(7100);
        file.standby = Some(standby);
        let err = format!("{:#}", file.validate().unwrap_err());
        assert!(err.contains("standby.sql_port"), "{err}");
        file.standby.as_mut().unwrap().sql_port = Some(7103);
        file.validate().unwrap();
        file.sql_tls_cert = Some("/d/cert.pem".into());
        let err = format!("{:#}", file.validate().unwrap_err());
        assert!(err.contains("sql_tls_cert and sql_tls_key"), "{err}");
    }

    #[test]
    fn init_refuses_an_existing_cluster_file() {
        let dir = scratch("twice");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE_NAME), "{}").unwrap();
        let err = init_local(&dir, "127.0.0.1", 7000, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exists"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.join(FILE_NAME)).unwrap(), "{}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_plan_places_instances_agents_and_spares_on_named_hosts_and_makes_no_directory() {
        use cluster::model::layout::Layout;
        let host = |text: &str| text.parse::<HostArg>().unwrap();
        let dir = scratch("plan");
        let plan_of = |layout| Plan {
            coordinator: host("mdw=10.0.0.1"),
            segment_hosts: vec![
                host("sdw1=10.0.0.11"),
                host("sdw2=10.0.0.12"),
                host("sdw3=10.0.0.13"),
            ],
            spare_hosts: vec![host("sdw4=10.0.0.14")],
            per_host: 2,
            layout,
            base_port: 6000,
            data_root: Some(dir.join("data")),
            log_root: Some("/var/log/hacluster".into()),
        };
        let (path, file) = plan(&dir, &plan_of(Layout::Spread)).unwrap();
        assert_eq!(ClusterFile::load(&path).unwrap(), file);
        assert_eq!(file.coordinator.endpoint(), "10.0.0.1:6000");
        assert_eq!(
            file.coordinator.sql_endpoint().as_deref(),
            Some("10.0.0.1:6100")
        );
        let data = dir.join("data");
        assert_eq!(file.coordinator.datadir, data.join("mdw/coordinator"));
        assert_eq!(file.segments.len(), 12);
        for s in &file.segments {
            let n = &s.hostname[3..];
            assert_eq!(s.address, format!("10.0.0.1{n}"), "{s:?}");
            assert!(s.datadir.starts_with(data.join(&s.hostname)), "{s:?}");
        }
        for content in 0..6 {
            let pair: Vec<&SegmentEntry> = file
                .segments
                .iter()
                .filter(|s| s.content == content)
                .collect();
            assert_ne!(pair[0].hostname, pair[1].hostname, "content {content}");
        }
        let agents: Vec<(&str, String)> = file
            .agents
            .iter()
            .map(|a| (a.hostname.as_str(), a.address.clone()))
            .collect();
        assert_eq!(
            agents,
            [
                ("mdw", "10.0.0.1".into()),
                ("sdw1", "10.0.0.11".into()),
                ("sdw2", "10.0.0.12".into()),
                ("sdw3", "10.0.0.13".into()),
                ("sdw4", "10.0.0.14".into()),
            ]
        );
        assert!(file
            .agents
            .iter()
            .all(|a| a.log_dir == Some(PathBuf::from("/var/log/hacluster").join(&a.hostname))));
        assert!(!data.exists(), "a plan makes no data directory");
        // A second plan in the same place, and bad hosts, are refused by name.
        let again = plan(&dir, &plan_of(Layout::Group)).unwrap_err();
        assert!(
            format!("{again:#}").contains("already laid out"),
            "{again:#}"
        );
        for (text, says) in [
            ("sdw1", "NAME=ADDRESS"),
            ("=10.0.0.1", "a host name"),
            ("sdw1=somewhere", "must be an IP address"),
            ("sd w1=10.0.0.1", "a host name"),
        ] {
            let err = text.parse::<HostArg>().unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        let mut twice = plan_of(Layout::Group);
        twice.spare_hosts = vec![host("sdw1=10.0.0.11")];
        let err = plan(&scratch("plan-twice"), &twice).unwrap_err();
        assert!(
            format!("{err:#}").contains("segment host already"),
            "{err:#}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn layouts_place_mirrors_off_their_primarys_host_and_bad_shapes_are_refused() {
        use cluster::model::layout::Layout;
        let shape = |hosts, per_host, layout| LocalShape {
            hosts,
            per_host,
            layout,
        };
        for layout in [Layout::Group, Layout::Spread, Layout::Block { size: 2 }] {
            let file =
                local_with_shape(Path::new("/d"), "127.0.0.1", 7000, shape(4, 2, layout)).unwrap();
            file.validate().unwrap();
            assert_eq!(file.segments.len(), 16);
            for p in file.segments.iter().filter(|s| s.role == Role::Primary) {
                let m = file
                    .segments
                    .iter()
                    .find(|m| m.content == p.content && m.role == Role::Mirror)
                    .unwrap();
                assert_ne!(p.hostname, m.hostname, "{layout}: content {}", p.content);
            }
        }
        let err = local_with_shape(
            Path::new("/d"),
            "127.0.0.1",
            7000,
            shape(2, 2, Layout::Spread),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("spread mirroring needs more hosts"), "{err}");
        let err = local_with_shape(
            Path::new("/d"),
            "127.0.0.1",
            7000,
            shape(4, 1, Layout::Block { size: 3 }),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("does not divide"), "{err}");
    }
}
