//! The standby coordinator's verbs: `init-standby -s HOST` / `-n` / `-r` (gpinitstandby),
//! `activate-standby` (gpactivatestandby), `standby-state` (the `gp_master_mirroring` view),
//! and `standby`, the standby process itself, which `init-standby` starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use cluster::agent;
use cluster::client::Client;
use cluster::io::{Disk, RealDisk};
use cluster::model::catalog::SegmentConfig;
use cluster::standby::admin::{self, NewStandby};
use cluster::standby::instance::{self, StandbyConfig};
use cluster::standby::MirroringStatus;
use cluster::wire::agent::AgentRequest;

use crate::cluster_file::{ClusterFile, CoordinatorEntry, StandbyEntry};
use crate::processes;

#[derive(clap::Args, Debug)]
pub struct InitStandbyArgs {
    #[arg(long)]
    pub cluster: PathBuf,
    /// Add a standby coordinator on HOST (its address, as the cluster's hosts are named).
    #[arg(short = 's', long = "standby-host", value_name = "HOST")]
    pub standby_host: Option<String>,
    /// Restart the configured standby and resynchronize it with the coordinator.
    #[arg(short = 'n', long = "resync")]
    pub resync: bool,
    /// Remove the configured standby from the cluster, as gpinitstandby -r does: it leaves the
    /// catalog, its process is stopped and the cluster file forgets it; its data directory is
    /// left in place. A damaged standby is replaced with -r, then -s HOST.
    #[arg(short = 'r', long = "remove", conflicts_with_all = ["standby_host", "resync", "standby_port", "standby_sql_port", "standby_datadir"])]
    pub remove: bool,
    /// The standby's port [default: the coordinator's].
    #[arg(long)]
    pub standby_port: Option<u16>,
    /// Where SQL clients connect once the standby is activated [default: its port + 100].
    #[arg(long)]
    pub standby_sql_port: Option<u16>,
    /// The standby's data directory, which must not exist or be empty [default: `standby`
    /// beside the cluster file, or `standby-N` where that is taken].
    #[arg(long)]
    pub standby_datadir: Option<PathBuf>,
    /// The active coordinator (repeatable) [default: the cluster file's coordinator].
    #[arg(long = "coordinator")]
    pub coordinators: Vec<String>,
    /// How long to wait for the standby to become Synchronized.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    #[command(flatten)]
    pub test: crate::TestOnly,
}

impl InitStandbyArgs {
    /// `init-standby -s HOST` with every other setting at its default.
    pub fn add(cluster: PathBuf, host: String, test: crate::TestOnly) -> InitStandbyArgs {
        InitStandbyArgs {
            cluster,
            standby_host: Some(host),
            resync: false,
            remove: false,
            standby_port: None,
            standby_sql_port: None,
            standby_datadir: None,
            coordinators: Vec::new(),
            timeout_ms: 30_000,
            test,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct StandbyArgs {
    /// The cluster file; its `standby` entry is the standby this process runs.
    #[arg(long)]
    pub cluster: PathBuf,
    #[command(flatten)]
    pub test: crate::TestOnly,
}

/// `init-standby`: prints the mirroring view once Synchronized, and the standby process's pid
/// if it started one. `-s` makes the standby's data directory, records the standby in the
/// cluster file and starts it; `-n` starts the recorded one again; `-r` removes it
/// ([`remove`]).
pub async fn init_standby(args: InitStandbyArgs) -> anyhow::Result<serde_json::Value> {
    if args.remove {
        return remove(&args).await;
    }
    let file = ClusterFile::load(&args.cluster)?;
    let c = &file.coordinator;
    let new = match &args.standby_host {
        Some(host) => {
            let datadir = match &args.standby_datadir {
                Some(dir) => absolute(dir)?,
                None => free_sibling(&file, &args.cluster)?,
            };
            if std::fs::read_dir(&datadir).is_ok_and(|mut d| d.next().is_some()) {
                anyhow::bail!(
                    "--standby-datadir: {} exists and is not empty; a new standby needs an empty directory (remove it, or name another)",
                    datadir.display()
                );
            }
            // A host of the cluster file is named by its agent's entry (name or address).
            let (hostname, address) = match file
                .agents
                .iter()
                .find(|a| &a.hostname == host || &a.address == host)
            {
                Some(a) => (a.hostname.clone(), a.address.clone()),
                None => (host.clone(), host.clone()),
            };
            Some(NewStandby {
                hostname,
                address,
                port: args.standby_port.unwrap_or(c.port),
                datadir: datadir.display().to_string(),
            })
        }
        None => None,
    };
    let mode = admin::init_mode(new, args.resync)?;
    if let (true, Some(standby)) = (args.resync, &file.standby) {
        if let Some(pid) = processes::running(&standby.datadir) {
            anyhow::bail!(
                "init-standby -n: the standby dbid {} runs already (pid {pid}); stop it first",
                standby.dbid
            );
        }
    }
    let coordinator = SegmentConfig::coordinator(
        c.hostname.clone(),
        c.address.clone(),
        c.port,
        c.datadir.display().to_string(),
    );
    let addrs = if args.coordinators.is_empty() {
        vec![c.endpoint()]
    } else {
        args.coordinators.clone()
    };
    let mut client = Client::new(addrs.clone(), Duration::from_secs(10));
    let started = std::cell::Cell::new(None);
    let fresh = !args.resync;
    let allow_bugs = args.test.allow_planted_bugs;
    let cluster = args.cluster.clone();
    let through_agent = std::cell::Cell::new(false);
    let sql_port = args.standby_sql_port;
    let launch = |row: SegmentConfig| {
        let (cluster, started, through_agent) = (&cluster, &started, &through_agent);
        async move {
            // The standby's host acts through its agent when the file names one.
            let agent = ClusterFile::load(cluster)
                .ok()
                .and_then(|f| f.agent_of(&row.hostname).cloned());
            if let Some(a) = agent {
                let wake = crate::agent_cmd::ensure_agent(&a, cluster, allow_bugs).await;
                wake.map_err(|e| format!("{e:#}"))?;
                let req = if fresh {
                    AgentRequest::StartStandby { row: row.clone() }
                } else {
                    AgentRequest::Start { dbid: row.dbid }
                };
                let line = agent::order(&a.hostname, &a.endpoint(), &req, Duration::from_secs(40))
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!("{line}");
                through_agent.set(true);
                return Ok(());
            }
            let pid = start_standby(cluster, &row, fresh, sql_port, allow_bugs)
                .map_err(|e| format!("{e:#}"))?;
            started.set(Some(pid));
            Ok(())
        }
    };
    let status = admin::init_standby(
        &mut client,
        coordinator,
        mode,
        launch,
        Duration::from_millis(args.timeout_ms),
    )
    .await?;
    let mut out = status_json(&status);
    out["standby_pid"] = serde_json::json!(started.get());
    if through_agent.get() {
        // The standby's host recorded it; this file and every other host learn it too.
        if let (true, Some(row)) = (fresh, &status.standby) {
            let mut file = ClusterFile::load(&args.cluster)?;
            file.standby = Some(StandbyEntry::from_row(
                row,
                PathBuf::from(&row.datadir),
                args.standby_sql_port,
            ));
            file.store(&args.cluster)?;
        }
        out["hosts"] = serde_json::json!(crate::agent_cmd::push_config(&args.cluster)
            .await?
            .lines()
            .collect::<Vec<_>>());
    }
    Ok(out)
}

/// `init-standby -r`: removes the configured standby from the catalog, then stops its process
/// if one runs on its data directory, and removes its entry from the cluster file. The data
/// directory stays (as gpinitstandby -r leaves it); `init-standby -s` makes a new one.
async fn remove(args: &InitStandbyArgs) -> anyhow::Result<serde_json::Value> {
    let file = ClusterFile::load(&args.cluster)?;
    let addrs = if args.coordinators.is_empty() {
        vec![file.coordinator.endpoint()]
    } else {
        args.coordinators.clone()
    };
    let mut client = Client::new(addrs, Duration::from_secs(10));
    let row = admin::remove_standby(&mut client).await?;
    // The process to stop lives in the data directory the cluster file records for this
    // standby (the catalog's row names the same one when the file is current).
    let entry = file.standby.clone().filter(|s| s.dbid == row.dbid);
    let datadir = entry
        .as_ref()
        .map(|s| s.datadir.clone())
        .unwrap_or_else(|| PathBuf::from(&row.datadir));
    let name = format!("standby dbid {}", row.dbid);
    let not_stopped = || {
        format!(
            "the standby dbid {} was removed from the catalog, but its process did not stop",
            row.dbid
        )
    };
    let stopped = match file.agent_of(&row.hostname) {
        // Stopped by its host's agent, which checks that the directory's holder is this dbid.
        Some(a) => agent::order(
            &a.hostname,
            &a.endpoint(),
            &AgentRequest::Stop {
                dbid: row.dbid,
                address: row.address.clone(),
                datadir: datadir.display().to_string(),
                mode: cluster::wire::agent::StopMode::Fast,
            },
            Duration::from_secs(20),
        )
        .await
        .map_err(anyhow::Error::from)
        .with_context(not_stopped)?,
        None => processes::stop_one(&name, &datadir, processes::StopMode::Fast)
            .with_context(not_stopped)?,
    };
    let mut file = ClusterFile::load(&args.cluster)?;
    let forgotten = file.standby.as_ref().is_some_and(|s| s.dbid == row.dbid);
    if forgotten {
        file.standby = None;
        file.store(&args.cluster)?;
        if !file.agents.is_empty() {
            crate::agent_cmd::push_config(&args.cluster).await?;
        }
    }
    let status = admin::mirroring_status(&mut client).await?;
    Ok(serde_json::json!({
        "removed": {
            "dbid": row.dbid,
            "hostname": row.hostname,
            "address": row.endpoint(),
            "datadir": row.datadir,
        },
        "process": stopped.trim_end(),
        "cluster_file": if forgotten {
            format!("{}: standby entry removed", args.cluster.display())
        } else {
            format!("{}: recorded no entry for dbid {}; unchanged", args.cluster.display(), row.dbid)
        },
        "data_directory": format!(
            "{} is left in place (as gpinitstandby -r leaves it); delete it yourself when it is no longer needed. init-standby -s HOST adds a standby in a new, empty directory",
            datadir.display()
        ),
        "summary_state": status.summary_state.label(),
    }))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// `standby` beside the cluster file, or the first `standby-N` no instance of the file uses
/// (after an activation the coordinator works in the former standby's directory).
fn free_sibling(file: &ClusterFile, cluster: &Path) -> anyhow::Result<PathBuf> {
    let dir = absolute(cluster.parent().unwrap_or_else(|| Path::new(".")))?;
    let used: Vec<PathBuf> = file
        .data_directories()
        .into_iter()
        .map(|(d, _, _)| d)
        .collect();
    (0..1000)
        .map(|n| match n {
            0 => dir.join("standby"),
            n => dir.join(format!("standby-{n}")),
        })
        .find(|d| !used.contains(d) && !d.exists())
        .context("no free name for the standby's data directory; name one with --standby-datadir")
}

/// Starts the standby process for the catalog row `row`, detached, logging to
/// `DATADIR.log`; returns its pid. A new standby (`fresh`) gets its data directory made and is
/// recorded in the cluster file first; the process reads its entry there.
fn start_standby(
    cluster: &Path,
    row: &SegmentConfig,
    fresh: bool,
    sql_port: Option<u16>,
    allow_bugs: bool,
) -> anyhow::Result<u32> {
    let datadir = PathBuf::from(&row.datadir);
    if fresh {
        let mut file = ClusterFile::load(cluster)?;
        crate::cluster_file::make_data_directory(&file, &datadir, row.dbid, -1)?;
        file.standby = Some(StandbyEntry::from_row(row, datadir.clone(), sql_port));
        file.store(cluster)?;
    }
    let mut args: Vec<std::ffi::OsString> =
        vec!["standby".into(), "--cluster".into(), cluster.into()];
    if allow_bugs {
        args.push("--allow-planted-bugs".into());
    }
    processes::spawn_detached(&args, &processes::log_path(&datadir))
}

/// `standby`: the standby process of the cluster file's `standby` entry, streaming from its
/// coordinator.
pub async fn run_standby(args: StandbyArgs) -> anyhow::Result<()> {
    let mut file = ClusterFile::load(&args.cluster)?;
    file.allow_planted_bugs = args.test.allow_planted_bugs;
    let entry = file
        .standby
        .clone()
        .context("the cluster file records no standby (init-standby -s adds one)")?;
    let mut coordinator = file.coordinator_config()?;
    // Once activated, it serves SQL clients on its own SQL port.
    if let Some(port) = entry.sql_port {
        let door = crate::sql_cmd::frontdoor_config(&file, &args.cluster, &entry.address, port)?;
        coordinator.on_services = Some(cluster::frontdoor::hook(door, None));
    }
    let cfg = StandbyConfig {
        dbid: entry.dbid,
        listen_addr: entry.endpoint(),
        coordinator_addr: file.coordinator.endpoint(),
        coordinator,
    };
    let _lock =
        processes::DataDirLock::acquire(&entry.datadir, &format!("standby --dbid {}", entry.dbid))?;
    let disk: Arc<dyn Disk> = Arc::new(
        RealDisk::new(&entry.datadir)
            .with_context(|| format!("cannot open data directory {}", entry.datadir.display()))?,
    );
    tracing::info!(dbid = cfg.dbid, listen = %cfg.listen_addr, coordinator = %cfg.coordinator_addr, "starting standby coordinator");
    instance::run(cfg, disk)
        .await
        .context("standby coordinator stopped")
}

/// `activate-standby`: activates the cluster file's standby and records it as the cluster's
/// coordinator, so every later verb reads the activated standby's catalog.
pub async fn activate(cluster: &Path, timeout_ms: u64) -> anyhow::Result<serde_json::Value> {
    let mut file = ClusterFile::load(cluster)?;
    let standby = file
        .standby
        .clone()
        .context("the cluster file records no standby to activate (init-standby -s adds one)")?;
    let a = admin::activate_standby(&standby.endpoint(), Duration::from_millis(timeout_ms)).await?;
    let deposed = file.coordinator.clone();
    file.coordinator = CoordinatorEntry {
        hostname: standby.hostname.clone(),
        address: standby.address.clone(),
        port: standby.port,
        datadir: standby.datadir.clone(),
        sql_port: standby.sql_port,
    };
    file.standby = None;
    file.store(cluster)?;
    // Every host learns which coordinator is the cluster's now: a host's `start` then never
    // starts the deposed one.
    let hosts = crate::agent_cmd::push_config(cluster).await?;
    Ok(serde_json::json!({
        "hosts": hosts.lines().collect::<Vec<_>>(),
        "activated": a.dbid,
        "epoch": cluster::model::catalog::epoch::describe(a.epoch),
        "end_lsn": a.end_lsn,
        "committed_in_doubt": a.committed,
        "aborted_in_doubt": a.aborted,
        "unreached_contents": a.unreached,
        "coordinator": file.coordinator.endpoint(),
        "sql": file.coordinator.sql_endpoint(),
        "deposed": format!("{} ({}): it refuses to serve if started again; make its host a standby with init-standby -s", deposed.endpoint(), deposed.datadir.display()),
    }))
}

/// `standby-state`: the mirroring view of the active coordinator.
pub async fn state(client: &mut Client) -> anyhow::Result<serde_json::Value> {
    Ok(status_json(&admin::mirroring_status(client).await?))
}

fn status_json(s: &MirroringStatus) -> serde_json::Value {
    serde_json::json!({
        "summary_state": s.summary_state.label(),
        "detail_state": s.detail_state,
        "log_time_ms": s.log_time_ms,
        "error_message": s.error_message,
        "standby": s.standby.as_ref().map(|r| serde_json::json!({
            "dbid": r.dbid, "hostname": r.hostname, "address": r.endpoint(), "datadir": r.datadir,
        })),
        "coordinator_flushed_lsn": s.coordinator_flushed_lsn,
        "standby_flushed_lsn": s.standby_flushed_lsn,
    })
}
