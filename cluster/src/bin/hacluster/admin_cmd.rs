//! The administration verbs over real I/O: `recoverseg`, `add-mirrors`, `move-mirrors`,
//! `state`. They run [`cluster::admin::driver`] against the coordinator; where a verb needs a
//! new instance process (a mirror on a new host or directory), [`ProcessHosts`] records it in
//! the cluster file and starts `hacluster segment` for it, detached, logging to
//! `DATADIR.log`. The process of a moved instance is stopped through the pid file every
//! segment process writes in its data directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::Context;

use cluster::admin::driver::{self, Hosts, MirrorSource, RecoverOptions, RecoverOutcome};
use cluster::admin::state::View;
use cluster::catalog::SegmentConfig;
use cluster::client::Client;

use super::cluster_file::{ClusterFile, SegmentEntry};

/// The pid file a segment process keeps in its data directory.
pub const PID_FILE: &str = "instance.pid";

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

    fn start_mirror(&self, row: &SegmentConfig, _primary: &str) -> Result<(), String> {
        let _one = self.lock.lock().unwrap();
        let (path, mut file) = self.file()?;
        let datadir = PathBuf::from(&row.datadir);
        if datadir.exists() {
            std::fs::remove_dir_all(&datadir)
                .map_err(|e| format!("cannot wipe {}: {e}", datadir.display()))?;
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
        file.validate().map_err(|e| format!("{e:#}"))?;
        let mut text = serde_json::to_string_pretty(&file).expect("the cluster file encodes");
        text.push('\n');
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot update {}: {e}", path.display()))?;
        let log = PathBuf::from(format!("{}.log", datadir.display()));
        let out = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .arg("segment")
            .arg("--cluster")
            .arg(path)
            .args(["--dbid", &row.dbid.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start dbid {}: {e}", row.dbid))?;
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
        let pid_file = Path::new(&row.datadir).join(PID_FILE);
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            return;
        };
        if let Ok(pid) = text.trim().parse::<u32>() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
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
            cat.epoch
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
    layout: cluster::layout::Layout,
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
            cat.epoch
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
        cat.epoch,
        path.display()
    ))
}

/// `state [-e|-m|-f|-s]`.
pub async fn state(client: &mut Client, view: View) -> anyhow::Result<String> {
    driver::state(client, view)
        .await
        .map_err(anyhow::Error::msg)
}

/// Starts `hacluster ARGS --cluster FILE` detached, logging to `log`.
fn spawn_detached(cluster: &Path, args: &[String], log: &Path) -> anyhow::Result<u32> {
    let out =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    let child = Command::new(std::env::current_exe()?)
        .args(args)
        .arg("--cluster")
        .arg(cluster)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start hacluster {}", args.join(" ")))?;
    Ok(child.id())
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true)
}

/// `restart` (gpstop -r): stops every process of the cluster file (SIGTERM through the pid file
/// in its data directory, waiting up to 10 s for each to go), then starts the coordinator and
/// every segment instance again, detached. Returns one line per process.
pub fn restart(cluster: &Path) -> anyhow::Result<String> {
    let file = ClusterFile::load(cluster)?;
    let mut procs: Vec<(Vec<String>, PathBuf)> =
        vec![(vec!["coordinator".into()], file.coordinator.datadir.clone())];
    for s in &file.segments {
        procs.push((
            vec!["segment".into(), "--dbid".into(), s.dbid.to_string()],
            s.datadir.clone(),
        ));
    }
    let mut out = String::new();
    for (args, datadir) in &procs {
        let pid_file = datadir.join(PID_FILE);
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            out.push_str(&format!("{}: not running (no pid file)\n", args.join(" ")));
            continue;
        };
        let Ok(pid) = text.trim().parse::<u32>() else {
            continue;
        };
        if alive(pid) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let began = std::time::Instant::now();
            while alive(pid) && began.elapsed() < std::time::Duration::from_secs(10) {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            if alive(pid) {
                anyhow::bail!("{} (pid {pid}) did not stop within 10 s", args.join(" "));
            }
            out.push_str(&format!("{}: stopped pid {pid}\n", args.join(" ")));
        }
    }
    for (args, datadir) in &procs {
        let log = PathBuf::from(format!("{}.log", datadir.display()));
        let pid = spawn_detached(cluster, args, &log)?;
        out.push_str(&format!("{}: started pid {pid}\n", args.join(" ")));
    }
    Ok(out)
}
