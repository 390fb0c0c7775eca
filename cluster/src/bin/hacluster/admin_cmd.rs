//! The administration verbs over real I/O: `recoverseg`, `add-mirrors`, `move-mirrors`,
//! `state`. They run [`cluster::admin::driver`] against the coordinator; where a verb needs a
//! new instance process (a mirror on a new host or directory, or a full copy in place),
//! [`ProcessHosts`] makes its data directory anew, records it in the cluster file and starts
//! `hacluster segment` for it, detached, logging to `DATADIR.log`. The process of a moved
//! instance is stopped through its data directory's lock (see [`crate::processes`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use cluster::admin::driver::{
    self, HostError, Hosts, MirrorSource, RecoverOptions, RecoverOutcome,
};
use cluster::admin::state::View;
use cluster::client::Client;
use cluster::model::catalog::SegmentConfig;

use super::cluster_file::{ClusterFile, SegmentEntry};
use super::processes;

/// Hosts of a local cluster: every "host" is an address of this machine.
pub struct ProcessHosts {
    cluster_file: Option<PathBuf>,
    lock: Mutex<()>,
}

impl ProcessHosts {
    pub fn new(cluster_file: Option<PathBuf>) -> ProcessHosts {
        ProcessHosts {
            cluster_file,
            lock: Mutex::new(()),
        }
    }

    fn file(&self) -> Result<(&Path, ClusterFile), String> {
        let path = self
            .cluster_file
            .as_deref()
            .ok_or("this verb starts instance processes: name the cluster file with --cluster")?;
        let file = ClusterFile::load(path).map_err(|e| format!("{e:#}"))?;
        Ok((path, file))
    }
}

impl Hosts for ProcessHosts {
    fn hostname_of(&self, address: &str) -> Option<String> {
        // A local cluster's hosts are names for addresses of this machine.
        let file = self.file().ok().map(|(_, f)| f);
        if let Some(file) = file {
            if let Some(s) = file
                .segments
                .iter()
                .find(|s| s.address == address || s.hostname == address)
            {
                return Some(s.hostname.clone());
            }
        }
        address
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|_| address.to_string())
    }

    fn start_mirror(&self, row: &SegmentConfig, _primary: &str) -> Result<(), HostError> {
        let failed = |step: String| {
            move |e: anyhow::Error| HostError::Failed {
                step,
                detail: format!("{e:#}"),
            }
        };
        let _one = self.lock.lock().unwrap();
        let (path, mut file) = self.file().map_err(|detail| HostError::Failed {
            step: "read the cluster file".into(),
            detail,
        })?;
        let datadir = PathBuf::from(&row.datadir);
        if let Some(pid) = processes::running(&datadir) {
            return Err(HostError::InUse {
                datadir: datadir.display().to_string(),
                pid,
            });
        }
        if datadir.exists() {
            std::fs::remove_dir_all(&datadir)
                .map_err(|e| failed(format!("wipe {}", datadir.display()))(e.into()))?;
        }
        let entry = SegmentEntry {
            dbid: row.dbid,
            content: row.content,
            role: row.preferred_role,
            hostname: row.hostname.clone(),
            address: row.address.clone(),
            port: row.port,
            datadir: datadir.clone(),
        };
        match file.segments.iter_mut().find(|s| s.dbid == row.dbid) {
            Some(s) => *s = entry,
            None => file.segments.push(entry),
        }
        file.store(path)
            .map_err(failed(format!("write {}", path.display())))?;
        // The instance's data directory is made here, as a full copy makes it: the instance
        // itself never makes one.
        crate::cluster_file::make_data_directory(&file, &datadir, row.dbid, row.content)
            .map_err(failed(format!("make {}", datadir.display())))?;
        let mut args: Vec<std::ffi::OsString> =
            vec!["segment".into(), "--cluster".into(), path.into()];
        // A new directory waits for its copy as a mirror, whatever role the file gives it.
        args.extend([
            "--dbid".into(),
            row.dbid.to_string().into(),
            "--new-mirror".into(),
        ]);
        if file.allow_planted_bugs {
            args.push("--allow-planted-bugs".into());
        }
        let log = processes::log_path(&datadir);
        let pid = processes::spawn_detached(&args, &log)
            .map_err(failed(format!("start dbid {}", row.dbid)))?;
        // The coordinator asks it to copy as soon as this returns.
        let within = std::time::Duration::from_secs(10);
        if !processes::wait_listening(&row.endpoint(), within) {
            return Err(HostError::NotListening {
                dbid: row.dbid,
                pid,
                endpoint: row.endpoint(),
                secs: within.as_secs(),
                log: log.display().to_string(),
            });
        }
        Ok(())
    }

    fn new_address(&self, hostname: &str, _nth: usize) -> Option<String> {
        // Instances of a local cluster's host share its address.
        let (_, file) = self.file().ok()?;
        file.segments
            .iter()
            .find(|s| s.hostname == hostname)
            .map(|s| s.address.clone())
    }

    fn stop_instance(&self, row: &SegmentConfig) {
        let name = format!("dbid {}", row.dbid);
        if let Err(e) =
            processes::stop_one(&name, Path::new(&row.datadir), processes::StopMode::Fast)
        {
            tracing::warn!("{e:#}");
        }
    }
}

/// `recoverseg`: prints what happened; writes `-o`'s sample.
pub async fn recoverseg(
    client: &mut Client,
    hosts: &ProcessHosts,
    full: bool,
    rebalance: bool,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
) -> anyhow::Result<String> {
    let input = match &input {
        Some(p) => Some(
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        ),
        None => None,
    };
    let opts = RecoverOptions {
        full,
        rebalance,
        input,
        output: output.is_some(),
    };
    let out = driver::recoverseg(client, hosts, &opts)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(match out {
        RecoverOutcome::Recovered(r) if r.iter().any(|r| r.outcome.is_err()) => {
            anyhow::bail!("{}", driver::describe_recovered(&r).trim_end())
        }
        RecoverOutcome::Recovered(r) => driver::describe_recovered(&r),
        RecoverOutcome::Rebalanced(c) if c.is_empty() => {
            "Every instance is in its preferred role\n".into()
        }
        RecoverOutcome::Rebalanced(c) => {
            format!("Contents returned to their preferred roles: {c:?}\n")
        }
        RecoverOutcome::Relocated(cat) => format!(
            "Recorded at configuration epoch {}; the new mirrors are resynchronizing\n",
            cluster::model::catalog::epoch::describe(cat.epoch)
        ),
        RecoverOutcome::Sample(text) => {
            let path = output.expect("-o given");
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            format!("Sample recovery file written to {}\n", path.display())
        }
    })
}

/// `add-mirrors -p OFFSET | -i FILE | -o FILE`.
pub async fn add_mirrors(
    client: &mut Client,
    hosts: &ProcessHosts,
    offset: Option<u16>,
    layout: cluster::model::layout::Layout,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
) -> anyhow::Result<String> {
    let given = [offset.is_some(), input.is_some(), output.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        anyhow::bail!("Only one of -p, -i and -o may be specified");
    }
    let source = match (offset, &input, &output) {
        (_, Some(p), _) => MirrorSource::File(
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        ),
        (_, _, Some(_)) => MirrorSource::Sample,
        (Some(o), _, _) => MirrorSource::Offset(o, layout),
        (None, None, None) => MirrorSource::Offset(1000, layout),
    };
    match driver::add_mirrors(client, hosts, &source)
        .await
        .map_err(anyhow::Error::msg)?
    {
        Ok(cat) => Ok(format!(
            "Mirrors added at configuration epoch {}; they are resynchronizing\n",
            cluster::model::catalog::epoch::describe(cat.epoch)
        )),
        Err(sample) => {
            let path = output.expect("-o given");
            std::fs::write(&path, sample)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(format!(
                "Sample mirror file written to {}\n",
                path.display()
            ))
        }
    }
}

/// `move-mirrors -i FILE`: writes the backout file beside the input.
pub async fn move_mirrors(
    client: &mut Client,
    hosts: &ProcessHosts,
    input: PathBuf,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let (cat, backout) = driver::move_mirrors(client, hosts, &text)
        .await
        .map_err(anyhow::Error::msg)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let path = PathBuf::from(format!("{}_backout_{stamp}", input.display()));
    std::fs::write(&path, backout).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(format!(
        "Mirrors moved at configuration epoch {}; backout file: {}\n",
        cluster::model::catalog::epoch::describe(cat.epoch),
        path.display()
    ))
}

/// `state [-e|-m|-f|-s]`.
pub async fn state(client: &mut Client, view: View) -> anyhow::Result<String> {
    driver::state(client, view)
        .await
        .map_err(anyhow::Error::msg)
}
