//! The standby coordinator's verbs: `init-standby -s HOST` / `-n` (gpinitstandby),
//! `activate-standby` (gpactivatestandby), `standby-state` (the `gp_master_mirroring` view),
//! and `standby`, the standby process itself, which `init-standby` starts.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use cluster::catalog::{Dbid, SegmentConfig};
use cluster::client::Client;
use cluster::io::{Disk, RealDisk};
use cluster::standby::admin::{self, NewStandby};
use cluster::standby::instance::{self, StandbyConfig};
use cluster::standby::MirroringStatus;

use crate::cluster_file::ClusterFile;

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
    /// The standby's port [default: the coordinator's].
    #[arg(long)]
    pub standby_port: Option<u16>,
    /// The standby's data directory [default: `standby` beside the cluster file].
    #[arg(long)]
    pub standby_datadir: Option<PathBuf>,
    /// The active coordinator (repeatable) [default: the cluster file's coordinator].
    #[arg(long = "coordinator")]
    pub coordinators: Vec<String>,
    /// How long to wait for the standby to become Synchronized.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
}

#[derive(clap::Args, Debug)]
pub struct StandbyArgs {
    #[arg(long)]
    pub cluster: PathBuf,
    #[arg(long)]
    pub dbid: Dbid,
    /// `ip:port` to listen on.
    #[arg(long)]
    pub listen: String,
    #[arg(long)]
    pub datadir: PathBuf,
    /// The coordinator to stream the catalog from.
    #[arg(long)]
    pub coordinator_addr: String,
}

/// `init-standby`: prints the mirroring view once Synchronized, and the standby process's pid
/// if it started one.
pub async fn init_standby(args: InitStandbyArgs) -> anyhow::Result<serde_json::Value> {
    let file = ClusterFile::load(&args.cluster)?;
    let c = &file.coordinator;
    let new = args.standby_host.as_ref().map(|host| NewStandby {
        hostname: host.clone(),
        address: host.clone(),
        port: args.standby_port.unwrap_or(c.port),
        datadir: args
            .standby_datadir
            .clone()
            .unwrap_or_else(|| sibling(&args.cluster, "standby"))
            .display()
            .to_string(),
    });
    let mode = admin::init_mode(new, args.resync)?;
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
    let mut started = None;
    let launch = |row: SegmentConfig| {
        let result = start_standby(&args.cluster, &row, &addrs[0]);
        if let Ok(pid) = &result {
            started = Some(*pid);
        }
        async move { result.map(|_| ()).map_err(|e| format!("{e:#}")) }
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
    out["standby_pid"] = serde_json::json!(started);
    Ok(out)
}

fn sibling(cluster_file: &Path, name: &str) -> PathBuf {
    cluster_file
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(name)
}

/// Starts `hacluster standby` for the catalog row `row`, detached, its log beside its data
/// directory; returns its pid.
fn start_standby(cluster: &Path, row: &SegmentConfig, coordinator: &str) -> anyhow::Result<u32> {
    let datadir = PathBuf::from(&row.datadir);
    std::fs::create_dir_all(&datadir).with_context(|| {
        format!(
            "cannot create the standby's data directory {}",
            datadir.display()
        )
    })?;
    let log_path = datadir.with_extension("log");
    let log = File::create(&log_path)
        .with_context(|| format!("cannot create the standby's log {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the hacluster executable")?;
    let child = Command::new(exe)
        .arg("standby")
        .arg("--cluster")
        .arg(cluster)
        .args(["--dbid", &row.dbid.to_string()])
        .args(["--listen", &row.endpoint()])
        .arg("--datadir")
        .arg(&datadir)
        .args(["--coordinator-addr", coordinator])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start the standby process")?;
    Ok(child.id())
}

/// `standby`: the standby process.
pub async fn run_standby(args: StandbyArgs) -> anyhow::Result<()> {
    let file = ClusterFile::load(&args.cluster)?;
    let cfg = StandbyConfig {
        dbid: args.dbid,
        listen_addr: args.listen,
        coordinator_addr: args.coordinator_addr,
        coordinator: file.coordinator_config()?,
    };
    let disk: Arc<dyn Disk> = Arc::new(
        RealDisk::new(&args.datadir)
            .with_context(|| format!("cannot open data directory {}", args.datadir.display()))?,
    );
    tracing::info!(dbid = cfg.dbid, listen = %cfg.listen_addr, coordinator = %cfg.coordinator_addr, "starting standby coordinator");
    instance::run(cfg, disk)
        .await
        .context("standby coordinator stopped")
}

/// `activate-standby`.
pub async fn activate(standby: &str, timeout_ms: u64) -> anyhow::Result<serde_json::Value> {
    let a = admin::activate_standby(standby, Duration::from_millis(timeout_ms)).await?;
    Ok(serde_json::json!({
        "activated": a.dbid,
        "epoch": a.epoch,
        "end_lsn": a.end_lsn,
        "committed_in_doubt": a.committed,
        "aborted_in_doubt": a.aborted,
        "unreached_contents": a.unreached,
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
