//! The agent of a host (`hacluster agent --host NAME`), and the whole-cluster verbs that go
//! through the agents (`start`, `stop`, `restart`, `agent-status`).
//!
//! The agent is the one process of a host the verbs talk to: it starts an instance of its host
//! (`hacluster coordinator | standby | segment`, detached, logging to `DATADIR.log`), stops one
//! through its data directory's lock, makes a new mirror's data directory and records the
//! instance in the cluster file. It restarts nothing on its own. Run it under a supervisor
//! (see `cluster/dist/hacluster-agent@.service`); `start` starts the agents of this machine's
//! hosts that do not run yet, `stop` asks them to exit after their instances.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};

use cluster::admin::agents::{AgentHosts, HostMap};
use cluster::admin::driver::Hosts;
use cluster::agent::{self, AgentConfig, HostControl, HostFuture};
use cluster::model::catalog::{Dbid, SegmentConfig};
use cluster::wire::agent::{AgentReply, AgentRequest, HostError, InstanceReport, StopMode};

use super::cluster_file::{AgentEntry, ClusterFile, SegmentEntry};
use super::processes::{self, ClusterProcess};

/// The instances of one host of a cluster file, started and stopped as processes of this
/// machine.
pub struct ProcessControl {
    cluster: PathBuf,
    host: String,
    allow_bugs: bool,
    /// One change of the cluster file at a time.
    lock: Arc<Mutex<()>>,
}

impl ProcessControl {
    fn file(&self) -> Result<ClusterFile, HostError> {
        ClusterFile::load(&self.cluster).map_err(|e| HostError::Failed {
            step: format!("read {}", self.cluster.display()),
            detail: format!("{e:#}"),
        })
    }

    /// The process of instance `dbid` if the file places it on this host.
    fn process(&self, dbid: Dbid) -> Result<ClusterProcess, HostError> {
        let file = self.file()?;
        processes::cluster_processes(&file, &self.cluster, self.allow_bugs)
            .into_iter()
            .find(|p| p.dbid == dbid && p.hostname == self.host)
            .ok_or_else(|| HostError::Failed {
                step: format!("find dbid {dbid}"),
                detail: format!(
                    "the cluster file places no such instance on host {}",
                    self.host
                ),
            })
    }

    /// Makes the data directory of `row` anew, records it, and starts its empty mirror.
    fn start_mirror_now(&self, row: &SegmentConfig) -> Result<String, HostError> {
        let _one = self.lock.lock().unwrap();
        let mut file = self.file()?;
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
        record_segment(&mut file, row);
        file.store(&self.cluster)
            .map_err(failed(format!("write {}", self.cluster.display())))?;
        // The instance's data directory is made here, as a full copy makes it: the instance
        // itself never makes one.
        super::cluster_file::make_data_directory(&file, &datadir, row.dbid, row.content)
            .map_err(failed(format!("make {}", datadir.display())))?;
        let mut args: Vec<std::ffi::OsString> = vec![
            "segment".into(),
            "--cluster".into(),
            self.cluster.clone().into(),
        ];
        // A new directory waits for its copy as a mirror, whatever role the file gives it.
        args.extend([
            "--dbid".into(),
            row.dbid.to_string().into(),
            "--new-mirror".into(),
        ]);
        if self.allow_bugs {
            args.push("--allow-planted-bugs".into());
        }
        let log = processes::log_of(
            &file,
            &row.hostname,
            &format!("segment-dbid{}", row.dbid),
            &datadir,
        );
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                failed(format!("make the log directory {}", dir.display()))(e.into())
            })?;
        }
        let pid = processes::spawn_detached(&args, &log)
            .map_err(failed(format!("start dbid {}", row.dbid)))?;
        // The coordinator asks it to copy as soon as this returns.
        let within = Duration::from_secs(10);
        if !processes::wait_listening(&row.endpoint(), within) {
            return Err(HostError::NotListening {
                dbid: row.dbid,
                pid,
                endpoint: row.endpoint(),
                secs: within.as_secs(),
                log: log.display().to_string(),
            });
        }
        Ok(format!(
            "dbid {}: an empty mirror started, pid {pid}, log {}",
            row.dbid,
            log.display()
        ))
    }
}

impl ProcessControl {
    /// Makes the data directory of instance `dbid` of this host; refused if it exists.
    fn make_data_directory_now(&self, dbid: Dbid) -> Result<String, HostError> {
        let _one = self.lock.lock().unwrap();
        let file = self.file()?;
        let p = self.process(dbid)?;
        let content = file
            .data_directories()
            .into_iter()
            .find(|(_, d, _)| *d == dbid)
            .map(|(_, _, content)| content)
            .unwrap_or(-1);
        if p.datadir.exists() {
            return Err(HostError::Failed {
                step: format!("make {}", p.datadir.display()),
                detail: "it exists; init makes every data directory anew and will not reuse one"
                    .into(),
            });
        }
        super::cluster_file::make_data_directory(&file, &p.datadir, dbid, content)
            .map_err(failed(format!("make {}", p.datadir.display())))?;
        Ok(format!(
            "{}: data directory {} made",
            p.name,
            p.datadir.display()
        ))
    }

    /// Makes `row`'s data directory (absent or empty), records the standby, and starts it.
    fn start_standby_now(&self, row: &SegmentConfig) -> Result<String, HostError> {
        let _one = self.lock.lock().unwrap();
        let mut file = self.file()?;
        let datadir = PathBuf::from(&row.datadir);
        if !datadir.is_absolute() {
            return Err(HostError::Refused {
                host: self.host.clone(),
                why: format!("{} is not an absolute path", row.datadir),
            });
        }
        if std::fs::read_dir(&datadir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(HostError::Failed {
                step: format!("make {}", datadir.display()),
                detail: "it exists and is not empty; a new standby needs an empty directory".into(),
            });
        }
        if let Some(other) = file.standby.as_ref().filter(|s| s.dbid != row.dbid) {
            return Err(HostError::Refused {
                host: self.host.clone(),
                why: format!(
                    "the cluster has a standby already (dbid {} at {})",
                    other.dbid,
                    other.endpoint()
                ),
            });
        }
        file.standby = Some(super::cluster_file::StandbyEntry::from_row(
            row,
            datadir.clone(),
            None,
        ));
        file.store(&self.cluster)
            .map_err(failed(format!("write {}", self.cluster.display())))?;
        super::cluster_file::make_data_directory(&file, &datadir, row.dbid, -1)
            .map_err(failed(format!("make {}", datadir.display())))?;
        let p = processes::cluster_processes(&file, &self.cluster, self.allow_bugs)
            .into_iter()
            .find(|p| p.kind == "standby")
            .expect("the file records the standby just written");
        processes::start_one(&p).map_err(failed(format!("start {}", p.name)))
    }

    /// Replaces this host's cluster file with `text`, once it is checked to be this
    /// cluster's and to place this agent where it listens.
    fn write_config_now(&self, text: &str) -> Result<String, HostError> {
        let refused = |why: String| HostError::Refused {
            host: self.host.clone(),
            why,
        };
        let new =
            ClusterFile::parse(text, "sent by the verb").map_err(|e| refused(format!("{e:#}")))?;
        let _one = self.lock.lock().unwrap();
        let current = self.file()?;
        if new.cluster_id != current.cluster_id {
            return Err(refused(format!(
                "the file is of cluster {}, this host's of cluster {}",
                new.cluster_id, current.cluster_id
            )));
        }
        let here = current.agent_of(&self.host).map(|a| a.endpoint());
        let there = new.agent_of(&self.host).map(|a| a.endpoint());
        if here != there {
            return Err(refused(format!(
                "the file places the agent of host {} at {there:?}; it listens at {here:?}",
                self.host
            )));
        }
        if new == current {
            return Ok(format!("host {}: configuration unchanged", self.host));
        }
        new.store(&self.cluster).map_err(|e| HostError::Failed {
            step: format!("write {}", self.cluster.display()),
            detail: format!("{e:#}"),
        })?;
        Ok(format!(
            "host {}: configuration written to {}",
            self.host,
            self.cluster.display()
        ))
    }
}

/// How an error of `step` is reported: the host's error, naming the step.
fn failed(step: String) -> impl FnOnce(anyhow::Error) -> HostError {
    move |e| HostError::Failed {
        step,
        detail: format!("{e:#}"),
    }
}

/// Records `row` in `file`: its entry replaced, or added.
fn record_segment(file: &mut ClusterFile, row: &SegmentConfig) {
    let entry = SegmentEntry {
        dbid: row.dbid,
        content: row.content,
        role: row.preferred_role,
        hostname: row.hostname.clone(),
        address: row.address.clone(),
        port: row.port,
        datadir: PathBuf::from(&row.datadir),
    };
    match file.segments.iter_mut().find(|s| s.dbid == row.dbid) {
        Some(s) => *s = entry,
        None => file.segments.push(entry),
    }
}

/// Sends the cluster file at `path` to every host's agent, so that each host starts its
/// instances where the cluster now places them (the verbs run on the coordinator's host,
/// whose file is the one they change); a line per host. A host whose agent does not answer
/// keeps its old file: the line says so, and the next change (or `sync-config`) sends it again.
pub async fn push_config(path: &Path) -> anyhow::Result<String> {
    let file = ClusterFile::load(path)?;
    let req = AgentRequest::WriteConfig { text: file.text() };
    let mut out = String::new();
    for a in &file.agents {
        let line =
            match agent::order(&a.hostname, &a.endpoint(), &req, Duration::from_secs(10)).await {
                Ok(line) => line,
                Err(e) => format!(
                "host {}: configuration NOT written ({e}); run `hacluster sync-config` once its \
                 agent answers",
                a.hostname
            ),
            };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// Runs `work` on a thread of its own (it waits on processes and sockets).
fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HostError> + Send + 'static,
) -> HostFuture<'static, Result<T, HostError>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
            Err(HostError::Failed {
                step: "carry the request out".into(),
                detail: e.to_string(),
            })
        })
    })
}

impl HostControl for ProcessControl {
    fn instances(&self) -> HostFuture<'_, Vec<InstanceReport>> {
        let listed = self
            .file()
            .map(|file| {
                processes::cluster_processes(&file, &self.cluster, self.allow_bugs)
                    .into_iter()
                    .filter(|p| p.hostname == self.host)
                    .map(|p| InstanceReport {
                        dbid: p.dbid,
                        kind: p.kind.to_string(),
                        datadir: p.datadir.display().to_string(),
                        pid: processes::running(&p.datadir),
                        exists: p.datadir.exists(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(std::future::ready(listed))
    }

    fn start_mirror(
        &self,
        row: SegmentConfig,
        _primary: String,
    ) -> HostFuture<'_, Result<String, HostError>> {
        let me = self.clone_handle();
        blocking(move || me.start_mirror_now(&row))
    }

    fn start(&self, dbid: Dbid) -> HostFuture<'_, Result<String, HostError>> {
        let process = self.process(dbid);
        blocking(move || {
            let p = process?;
            processes::start_one(&p).map_err(|e| HostError::Failed {
                step: format!("start {}", p.name),
                detail: format!("{e:#}"),
            })
        })
    }

    fn stop(
        &self,
        dbid: Dbid,
        _address: String,
        datadir: String,
        mode: StopMode,
    ) -> HostFuture<'_, Result<String, HostError>> {
        let host = self.host.clone();
        let name = self
            .file()
            .ok()
            .and_then(|file| {
                processes::cluster_processes(&file, &self.cluster, false)
                    .into_iter()
                    .find(|p| p.dbid == dbid)
                    .map(|p| p.name)
            })
            .unwrap_or_else(|| format!("dbid {dbid}"));
        blocking(move || {
            let dir = PathBuf::from(&datadir);
            if !dir.is_absolute() {
                return Err(HostError::Refused {
                    host,
                    why: format!("{datadir} is not an absolute path"),
                });
            }
            match processes::holder(&dir) {
                None => Ok(format!("{name}: not running")),
                Some((_, what)) if processes::runs_dbid(&what, dbid) => {
                    processes::stop_one(&name, &dir, mode.into()).map_err(|e| HostError::Failed {
                        step: format!("stop {name}"),
                        detail: format!("{e:#}"),
                    })
                }
                Some((pid, what)) => Err(HostError::Refused {
                    host,
                    why: format!(
                        "{datadir} is held by pid {pid} running `{what}`, not dbid {dbid}"
                    ),
                }),
            }
        })
    }
    fn make_data_directory(&self, dbid: Dbid) -> HostFuture<'_, Result<String, HostError>> {
        let me = self.clone_handle();
        blocking(move || me.make_data_directory_now(dbid))
    }

    fn start_standby(&self, row: SegmentConfig) -> HostFuture<'_, Result<String, HostError>> {
        let me = self.clone_handle();
        blocking(move || me.start_standby_now(&row))
    }

    fn write_config(&self, text: String) -> HostFuture<'_, Result<String, HostError>> {
        let me = self.clone_handle();
        blocking(move || me.write_config_now(&text))
    }
}

impl ProcessControl {
    fn clone_handle(&self) -> ProcessControl {
        ProcessControl {
            cluster: self.cluster.clone(),
            host: self.host.clone(),
            allow_bugs: self.allow_bugs,
            lock: self.lock.clone(),
        }
    }
}

/// `hacluster agent --cluster FILE --host NAME`: serves until asked to exit or killed.
pub async fn serve(cluster: &Path, host: &str, allow_bugs: bool) -> anyhow::Result<()> {
    let mut file = ClusterFile::load(cluster)?;
    file.allow_planted_bugs = allow_bugs;
    let entry = file.agent_of(host).with_context(|| {
        format!(
            "{} names no agent for host {host} (its `agents` list: {:?})",
            cluster.display(),
            file.agents.iter().map(|a| &a.hostname).collect::<Vec<_>>()
        )
    })?;
    // One agent per host: the lock beside the cluster file says which process it is.
    let _lock = processes::DataDirLock::acquire_file(
        &agent_lock(cluster, host),
        &format!("agent --host {host}"),
        "agent lock",
    )?;
    let cfg = AgentConfig {
        host: host.to_string(),
        listen: entry.endpoint(),
        observe: Default::default(),
    };
    let control = Arc::new(ProcessControl {
        cluster: cluster.to_path_buf(),
        host: host.to_string(),
        allow_bugs,
        lock: Arc::new(Mutex::new(())),
    });
    agent::run(cfg, control)
        .await
        .with_context(|| format!("the agent of host {host} cannot serve"))
}

/// What the verbs know of the hosts from the cluster file.
pub struct FileMap {
    pub cluster: Option<PathBuf>,
}

impl FileMap {
    fn file(&self) -> Option<ClusterFile> {
        ClusterFile::load(self.cluster.as_deref()?).ok()
    }
}

impl HostMap for FileMap {
    fn hostname_of(&self, address: &str) -> Option<String> {
        // A local cluster's hosts are names for addresses of this machine.
        if let Some(file) = self.file() {
            if let Some(s) = file
                .segments
                .iter()
                .find(|s| s.address == address || s.hostname == address)
            {
                return Some(s.hostname.clone());
            }
            if let Some(a) = file
                .agents
                .iter()
                .find(|a| a.address == address || a.hostname == address)
            {
                return Some(a.hostname.clone());
            }
        }
        address
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|_| address.to_string())
    }

    fn new_address(&self, hostname: &str, _nth: usize) -> Option<String> {
        // Instances of a local cluster's host share its address.
        let file = self.file()?;
        file.segments
            .iter()
            .find(|s| s.hostname == hostname)
            .map(|s| s.address.clone())
            .or_else(|| file.agent_of(hostname).map(|a| a.address.clone()))
    }

    fn agent_of(&self, hostname: &str) -> Option<String> {
        self.file()?.agent_of(hostname).map(|a| a.endpoint())
    }
}

const HEALTH_WITHIN: Duration = Duration::from_secs(2);

/// Whether the agent of `host` answers at `endpoint`; the instances it reports.
async fn health(host: &str, endpoint: &str) -> Result<Vec<InstanceReport>, HostError> {
    match agent::ask(host, endpoint, &AgentRequest::Health, HEALTH_WITHIN).await? {
        AgentReply::Health { instances, .. } => Ok(instances),
        other => Err(HostError::Failed {
            step: format!("check the agent of host {host}"),
            detail: format!("unexpected answer {other:?}"),
        }),
    }
}

/// Whether `address` is one of this machine's (something can listen on it here).
fn local_address(address: &str) -> bool {
    std::net::TcpListener::bind((address, 0)).is_ok()
}

/// Makes sure every host's agent answers, starting those of this machine that do not; a line
/// each.
pub async fn ensure_agents(
    file: &ClusterFile,
    path: &Path,
    allow_bugs: bool,
) -> anyhow::Result<String> {
    let mut out = String::new();
    for a in &file.agents {
        match ensure_agent(a, path, allow_bugs).await {
            Ok(line) => out.push_str(&format!("{line}\n")),
            Err(e) => bail!("{out}{e:#}"),
        }
    }
    Ok(out)
}

/// Makes sure the agent `a` answers, starting it if it does not and its address is this
/// machine's; the line to report.
pub async fn ensure_agent(a: &AgentEntry, path: &Path, allow_bugs: bool) -> anyhow::Result<String> {
    let endpoint = a.endpoint();
    if health(&a.hostname, &endpoint).await.is_ok() {
        return Ok(format!("host {}: agent running at {endpoint}", a.hostname));
    }
    if !local_address(&a.address) {
        bail!(
            "host {}: its agent does not answer at {endpoint}, and that address is not this \
             machine's: start it there (hacluster agent --cluster FILE --host {}, or its \
             systemd unit)",
            a.hostname,
            a.hostname
        );
    }
    let mut args: Vec<std::ffi::OsString> = vec![
        "agent".into(),
        "--cluster".into(),
        path.into(),
        "--host".into(),
        a.hostname.clone().into(),
    ];
    if allow_bugs {
        args.push("--allow-planted-bugs".into());
    }
    let log = agent_log(path, &a.hostname);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the log directory {}", dir.display()))?;
    }
    let pid = processes::spawn_detached(&args, &log)?;
    let began = std::time::Instant::now();
    while health(&a.hostname, &endpoint).await.is_err() {
        if !processes::alive(pid) || began.elapsed() > Duration::from_secs(15) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            bail!(
                "host {}: the agent (pid {pid}) does not answer at {endpoint}; the end of {}:\n{}",
                a.hostname,
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(format!(
        "host {}: agent started (pid {pid}) at {endpoint}, log {}",
        a.hostname,
        log.display()
    ))
}

/// The verbs' hosts on this machine: through their agents ([`AgentHosts`]), an agent of this
/// machine that does not answer started first (a verb needs only the agents of the hosts it
/// acts on).
pub struct LocalAgents {
    pub cluster: Option<PathBuf>,
    inner: AgentHosts<FileMap>,
}

impl LocalAgents {
    pub fn new(cluster: Option<PathBuf>) -> LocalAgents {
        LocalAgents {
            inner: AgentHosts::new(FileMap {
                cluster: cluster.clone(),
            }),
            cluster,
        }
    }

    /// Starts the agent of `host` if it is this machine's and does not answer.
    async fn wake(cluster: Option<PathBuf>, host: String) {
        let Some(path) = cluster else { return };
        let Ok(file) = ClusterFile::load(&path) else {
            return;
        };
        if let Some(a) = file.agent_of(&host) {
            match ensure_agent(a, &path, false).await {
                Ok(line) => tracing::info!("{line}"),
                Err(e) => tracing::warn!("{e:#}"),
            }
        }
    }
}

impl Hosts for LocalAgents {
    fn hostname_of(&self, address: &str) -> Option<String> {
        self.inner.hostname_of(address)
    }

    fn start_mirror(
        &self,
        row: &SegmentConfig,
        primary: &str,
    ) -> impl std::future::Future<Output = Result<(), HostError>> + Send {
        let cluster = self.cluster.clone();
        let wake = Self::wake(cluster.clone(), row.hostname.clone());
        let start = self.inner.start_mirror(row, primary);
        let row = row.clone();
        async move {
            wake.await;
            start.await?;
            // The verb's own file records the new instance too, and every host learns it.
            if let Some(path) = cluster {
                let recorded = ClusterFile::load(&path).and_then(|mut file| {
                    record_segment(&mut file, &row);
                    file.store(&path)
                });
                match recorded {
                    Ok(()) => match push_config(&path).await {
                        Ok(lines) => tracing::info!("{}", lines.trim_end()),
                        Err(e) => tracing::warn!("{e:#}"),
                    },
                    Err(e) => tracing::warn!("dbid {} started, not recorded: {e:#}", row.dbid),
                }
            }
            Ok(())
        }
    }

    fn stop_instance(&self, row: &SegmentConfig) -> impl std::future::Future<Output = ()> + Send {
        let wake = Self::wake(self.cluster.clone(), row.hostname.clone());
        let stop = self.inner.stop_instance(row);
        async move {
            wake.await;
            stop.await
        }
    }

    fn new_address(&self, hostname: &str, nth: usize) -> Option<String> {
        self.inner.new_address(hostname, nth)
    }
}

/// The lock file the agent of `host` holds while it runs: beside the cluster file.
pub fn agent_lock(cluster: &Path, host: &str) -> PathBuf {
    let dir = cluster.parent().unwrap_or(Path::new("."));
    dir.join(format!("agent-{host}.pid"))
}

/// Where the agent of `host` logs when `start` starts it: its host's log directory, or beside
/// the cluster file.
pub fn agent_log(cluster: &Path, host: &str) -> PathBuf {
    let configured = ClusterFile::load(cluster)
        .ok()
        .and_then(|f| f.agent_of(host).and_then(|a| a.log_dir.clone()));
    match configured {
        Some(dir) => dir.join("agent.log"),
        None => cluster
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("agent-{host}.log")),
    }
}

/// Which hosts a verb acts on: all, or one (`--host`).
pub enum Only {
    All,
    Host(String),
}

impl Only {
    /// `host`, which must be one of `file`'s hosts.
    pub fn new(file: &ClusterFile, host: Option<String>) -> anyhow::Result<Only> {
        let Some(host) = host else {
            return Ok(Only::All);
        };
        if !file.hostnames().contains(&host) && file.agent_of(&host).is_none() {
            bail!(
                "--host {host}: the cluster file has no such host (its hosts: {})",
                file.hostnames().join(", ")
            );
        }
        Ok(Only::Host(host))
    }

    fn admits(&self, host: &str) -> bool {
        match self {
            Only::All => true,
            Only::Host(only) => only == host,
        }
    }
}

/// `init --cluster FILE` (gpinitsystem -c): every host's agent answers (those of this machine
/// started) and gets the file; if no data directory of the file exists yet, each agent makes
/// its host's, and the cluster starts through the agents.
pub async fn init(path: &Path, allow_bugs: bool) -> anyhow::Result<String> {
    let file = ClusterFile::load(path)?;
    let mut out = ensure_agents(&file, path, allow_bugs).await?;
    out.push_str(&push_config(path).await?);
    if out.contains("NOT written") {
        bail!("{out}init needs every host's agent to hold this cluster file; nothing was made");
    }
    let processes = processes::cluster_processes(&file, path, allow_bugs);
    let homeless: Vec<&str> = processes
        .iter()
        .filter(|p| file.agent_of(&p.hostname).is_none())
        .map(|p| p.name.as_str())
        .collect();
    if !homeless.is_empty() {
        bail!(
            "{out}the cluster file names no agent for the hosts of {}; nothing was made",
            homeless.join(", ")
        );
    }
    // Every data directory checked before any is made: an init over an existing cluster
    // changes nothing.
    let mut existing = Vec::new();
    for a in &file.agents {
        for i in health(&a.hostname, &a.endpoint()).await? {
            if i.exists {
                existing.push(format!(
                    "{} (dbid {} on host {})",
                    i.datadir, i.dbid, a.hostname
                ));
            }
        }
    }
    if !existing.is_empty() {
        bail!(
            "{out}these data directories exist already: {}; init makes every one anew and \
             will not reuse one, so nothing was made",
            existing.join(", ")
        );
    }
    for p in &processes {
        let a = file.agent_of(&p.hostname).expect("checked above");
        let line = agent::order(
            &p.hostname,
            &a.endpoint(),
            &AgentRequest::MakeDataDirectory { dbid: p.dbid },
            Duration::from_secs(20),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{out}{}: {e}", p.name))?;
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&start(&file, path, &Only::All, allow_bugs).await?);
    Ok(out)
}

/// `start` (gpstart): every host's agent, then every instance through its host's agent, the
/// coordinator first. An instance of a host the file names no agent for is started here.
/// With `--host`, only that host's agent and instances.
pub async fn start(
    file: &ClusterFile,
    path: &Path,
    only: &Only,
    allow_bugs: bool,
) -> anyhow::Result<String> {
    let mut out = String::new();
    for a in file.agents.iter().filter(|a| only.admits(&a.hostname)) {
        match ensure_agent(a, path, allow_bugs).await {
            Ok(line) => out.push_str(&format!("{line}\n")),
            Err(e) => bail!("{out}{e:#}"),
        }
    }
    for p in processes::cluster_processes(file, path, allow_bugs)
        .into_iter()
        .filter(|p| only.admits(&p.hostname))
    {
        let line = match file.agent_of(&p.hostname) {
            Some(a) => agent::order(
                &p.hostname,
                &a.endpoint(),
                &AgentRequest::Start { dbid: p.dbid },
                Duration::from_secs(40),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{out}{}: {e}", p.name))?,
            None => {
                let line = tokio::task::spawn_blocking(move || processes::start_one(&p)).await??;
                format!("{line} (no agent for its host in the cluster file: started here)")
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// `stop` (gpstop): every instance through its host's agent, the coordinator first, then the
/// agents themselves unless `keep_agents`. An instance whose agent does not answer is stopped
/// here if it runs on this machine.
pub async fn stop(
    file: &ClusterFile,
    path: &Path,
    mode: processes::StopMode,
    only: &Only,
    keep_agents: bool,
) -> anyhow::Result<String> {
    let mut out = String::new();
    for p in processes::cluster_processes(file, path, false)
        .into_iter()
        .filter(|p| only.admits(&p.hostname))
    {
        let through_agent = match file.agent_of(&p.hostname) {
            Some(a) => Some(
                agent::order(
                    &p.hostname,
                    &a.endpoint(),
                    &AgentRequest::Stop {
                        dbid: p.dbid,
                        address: p
                            .endpoint
                            .rsplit_once(':')
                            .map(|(a, _)| a)
                            .unwrap_or_default()
                            .to_string(),
                        datadir: p.datadir.display().to_string(),
                        mode: mode.into(),
                    },
                    Duration::from_secs(20),
                )
                .await,
            ),
            None => None,
        };
        let line = match through_agent {
            Some(Ok(line)) => line,
            Some(Err(e @ HostError::Refused { .. })) => bail!("{out}{}: {e}", p.name),
            other => {
                let why = match other {
                    Some(Err(e)) => format!("its agent: {e}"),
                    _ => "no agent for its host in the cluster file".into(),
                };
                let (name, datadir) = (p.name.clone(), p.datadir.clone());
                let line =
                    tokio::task::spawn_blocking(move || processes::stop_one(&name, &datadir, mode))
                        .await??;
                format!("{line} (here; {why})")
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    // One host's stop leaves its agent serving: the host is back with `start --host`.
    if !keep_agents && matches!(only, Only::All) {
        for a in &file.agents {
            let endpoint = a.endpoint();
            let line = match agent::order(
                &a.hostname,
                &endpoint,
                &AgentRequest::Exit,
                Duration::from_secs(5),
            )
            .await
            {
                Ok(_) => {
                    // Gone once nothing listens at its address any more.
                    let began = std::time::Instant::now();
                    while std::net::TcpStream::connect(&endpoint).is_ok()
                        && began.elapsed() < Duration::from_secs(10)
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    format!("host {}: agent stopped", a.hostname)
                }
                Err(e) => format!("host {}: agent not running ({e})", a.hostname),
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// `agent-status`: each host's agent up or down, with its instances; fails if one is down.
pub async fn status(file: &ClusterFile) -> anyhow::Result<(String, bool)> {
    let mut out = String::new();
    let mut all_up = true;
    if file.agents.is_empty() {
        out.push_str("the cluster file names no agents\n");
    }
    for a in &file.agents {
        match health(&a.hostname, &a.endpoint()).await {
            Ok(instances) => {
                let running = instances.iter().filter(|i| i.pid.is_some()).count();
                out.push_str(&format!(
                    "host {}: agent up at {}; {running} of {} instances running\n",
                    a.hostname,
                    a.endpoint(),
                    instances.len()
                ));
                for i in instances {
                    out.push_str(&format!(
                        "  {} dbid {}: {} ({})\n",
                        i.kind,
                        i.dbid,
                        match i.pid {
                            Some(pid) => format!("running, pid {pid}"),
                            None => "not running".into(),
                        },
                        i.datadir
                    ));
                }
            }
            Err(e) => {
                all_up = false;
                out.push_str(&format!(
                    "host {}: agent DOWN at {} ({e})\n",
                    a.hostname,
                    a.endpoint()
                ));
            }
        }
    }
    Ok((out, all_up))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host's copy of a local cluster's file, and the agent of its first host acting on it.
    fn host_copy(name: &str) -> (PathBuf, ClusterFile, ProcessControl) {
        let dir =
            std::env::temp_dir().join(format!("hacluster-agent-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut file = super::super::cluster_file::local(&dir, "127.0.0.1", 7400).unwrap();
        file.place_agents().unwrap();
        let path = dir.join("cluster.json");
        file.store(&path).unwrap();
        let control = ProcessControl {
            cluster: path.clone(),
            host: file.agents[0].hostname.clone(),
            allow_bugs: false,
            lock: Arc::new(Mutex::new(())),
        };
        (dir, file, control)
    }

    #[test]
    fn a_host_takes_a_new_configuration_only_of_its_own_cluster_placing_it_where_it_listens() {
        let (dir, file, control) = host_copy("config");
        let path = dir.join("cluster.json");
        let refused = |text: String, says: &str| {
            let before = std::fs::read_to_string(&path).unwrap();
            match control.write_config_now(&text) {
                Err(HostError::Refused { why, .. }) => assert!(why.contains(says), "{why}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                before,
                "nothing changed"
            );
        };
        refused("{ not json".into(), "cluster file sent by the verb");
        let mut other = file.clone();
        other.cluster_id = "00000000000000aa".into();
        refused(other.text(), "of cluster 00000000000000aa");
        let mut moved = file.clone();
        moved.agents[0].port += 1;
        refused(moved.text(), "listens at");
        // Unchanged, then a real change (a segment's port), which is stored.
        let same = control.write_config_now(&file.text()).unwrap();
        assert!(same.contains("unchanged"), "{same}");
        let mut changed = file.clone();
        changed.segments[1].port = 7490;
        let written = control.write_config_now(&changed.text()).unwrap();
        assert!(written.contains("written"), "{written}");
        assert_eq!(ClusterFile::load(&path).unwrap(), changed);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_data_directory_is_made_once_and_only_for_an_instance_of_the_host() {
        let (dir, file, control) = host_copy("mkdir");
        let made = control.make_data_directory_now(2).unwrap();
        assert!(made.contains("made"), "{made}");
        assert!(file.segments[0]
            .datadir
            .join(cluster::storage::identity::IDENTITY_PATH)
            .exists());
        match control.make_data_directory_now(2) {
            Err(HostError::Failed { detail, .. }) => assert!(detail.contains("exists"), "{detail}"),
            other => panic!("{other:?}"),
        }
        match control.make_data_directory_now(42) {
            Err(HostError::Failed { detail, .. }) => {
                assert!(detail.contains("no such instance"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
