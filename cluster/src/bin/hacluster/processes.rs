//! The processes of a local cluster, as an operator starts and stops them (gpstart, gpstop).
//!
//! Every instance process locks its data directory before it touches anything, as
//! PostgreSQL's `postmaster.pid` does: `instance.pid` there holds an advisory lock for as long
//! as the process lives (the kernel drops it when the process dies, however it dies) and says
//! which process holds it. A second process started on the same directory is refused and
//! changes nothing; a verb that signals an instance only signals the process that holds its
//! directory's lock, never a number left in a stale file. Each process appends its log to
//! `DATADIR.log`, beside its data directory.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::cluster_file::ClusterFile;

/// The lock file a process keeps in its data directory.
pub const PID_FILE: &str = "instance.pid";

/// A data directory this process holds; released when dropped (or when the process dies).
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Locks `datadir` for this process, which runs `what`. Refused, changing nothing, when the
    /// directory does not exist or another process holds it.
    pub fn acquire(datadir: &Path, what: &str) -> anyhow::Result<DataDirLock> {
        if !datadir.is_dir() {
            bail!(
                "data directory {} does not exist (an unmounted or replaced disk?): refusing to start, nothing was changed. Data directories are made by init-local, and by a full recovery from the instance's partner (recoverseg -F)",
                datadir.display()
            );
        }
        DataDirLock::acquire_file(&datadir.join(PID_FILE), what, "data directory lock")
    }

    /// Locks the file `path` (made if missing) for this process, which runs `what`; `kind`
    /// names what it guards in a refusal.
    pub fn acquire_file(path: &Path, what: &str, kind: &str) -> anyhow::Result<DataDirLock> {
        let path = path.to_path_buf();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_pid(&mut file)
                    .map(|pid| format!("pid {pid}"))
                    .unwrap_or_else(|| "another process".into());
                bail!(
                    "{kind} {} is in use by {holder}: another process runs on it; nothing was changed",
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| write!(file, "{}\n{what}\n", std::process::id()))
            .and_then(|_| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(DataDirLock { _file: file })
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// The process running on `datadir` now: the holder of its lock, `None` if no process holds it
/// (a pid file left by a process that died names nobody).
pub fn running(datadir: &Path) -> Option<u32> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(datadir.join(PID_FILE))
        .ok()?;
    match file.try_lock() {
        // Nobody holds it; dropping the file releases our own lock at once.
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => read_pid(&mut file),
        Err(TryLockError::Error(_)) => None,
    }
}

/// The process running on `datadir` now and what it said it runs (the lock file's second
/// line: `coordinator`, `segment --dbid 2`, ...).
pub fn holder(datadir: &Path) -> Option<(u32, String)> {
    let pid = running(datadir)?;
    let text = std::fs::read_to_string(datadir.join(PID_FILE)).unwrap_or_default();
    Some((
        pid,
        text.lines().nth(1).unwrap_or_default().trim().to_string(),
    ))
}

/// Whether a lock file's `what` names instance `dbid`; dbid 1 is the acting coordinator,
/// which is an activated standby's process once a standby was activated.
pub fn runs_dbid(what: &str, dbid: cluster::model::catalog::Dbid) -> bool {
    what == format!("segment --dbid {dbid}")
        || what == format!("standby --dbid {dbid}")
        || (dbid == 1 && (what == "coordinator" || what.starts_with("standby --dbid ")))
}

/// Whether process `pid` is alive (a zombie is not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        })
        .unwrap_or(false)
}

/// Waits up to `within` until something accepts connections at `endpoint` (`ip:port`).
pub fn wait_listening(endpoint: &str, within: Duration) -> bool {
    let began = Instant::now();
    while began.elapsed() < within {
        if std::net::TcpStream::connect(endpoint).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Where the process named `stem` (`coordinator`, `segment-dbid2`, ...) on `datadir` of host
/// `hostname` logs: in the host's log directory if the file gives it one, else beside its data
/// directory.
pub fn log_of(file: &ClusterFile, hostname: &str, stem: &str, datadir: &Path) -> PathBuf {
    match file.agent_of(hostname).and_then(|a| a.log_dir.as_ref()) {
        Some(dir) => dir.join(format!("{stem}.log")),
        None => log_path(datadir),
    }
}

/// Where the process of `datadir` logs when its host has no log directory.
pub fn log_path(datadir: &Path) -> PathBuf {
    let mut name = datadir.as_os_str().to_owned();
    name.push(".log");
    PathBuf::from(name)
}

/// Starts `hacluster ARGS` detached from this process (its own process group, so a ctrl-c
/// aimed at the caller does not reach it), appending to `log`; returns its pid.
pub fn spawn_detached(args: &[OsString], log: &Path) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open the log {}", log.display()))?;
    let err = out.try_clone()?;
    let mut child = Command::new(std::env::current_exe().context("cannot find hacluster")?)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start hacluster {:?}", args))?;
    let pid = child.id();
    // Reaped when it exits, so that a long-lived starter (a host's agent) keeps no zombies.
    std::thread::spawn(move || child.wait());
    Ok(pid)
}

/// One process of a cluster: what it is, how it is started, where its data is.
pub struct ClusterProcess {
    pub name: String,
    pub dbid: cluster::model::catalog::Dbid,
    /// What runs: "coordinator", "standby" or "segment".
    pub kind: &'static str,
    /// The host it runs on, as the file names it.
    pub hostname: String,
    pub args: Vec<OsString>,
    pub datadir: PathBuf,
    /// Where it listens once started.
    pub endpoint: String,
    /// Where it logs.
    pub log: PathBuf,
}

/// Every process of the cluster file: the acting coordinator, the standby (if the file has
/// one) and every segment instance.
pub fn cluster_processes(file: &ClusterFile, path: &Path, allow_bugs: bool) -> Vec<ClusterProcess> {
    let with = |verb: &str, extra: &[String]| {
        let mut args: Vec<OsString> = vec![verb.into(), "--cluster".into(), path.into()];
        args.extend(extra.iter().map(OsString::from));
        if allow_bugs {
            args.push("--allow-planted-bugs".into());
        }
        args
    };
    let mut procs = vec![ClusterProcess {
        name: "coordinator".into(),
        dbid: 1,
        kind: "coordinator",
        hostname: file.coordinator.hostname.clone(),
        args: with("coordinator", &[]),
        datadir: file.coordinator.datadir.clone(),
        endpoint: file.coordinator.endpoint(),
        log: log_of(
            file,
            &file.coordinator.hostname,
            "coordinator",
            &file.coordinator.datadir,
        ),
    }];
    if let Some(standby) = &file.standby {
        procs.push(ClusterProcess {
            name: format!("standby dbid {}", standby.dbid),
            dbid: standby.dbid,
            kind: "standby",
            hostname: standby.hostname.clone(),
            args: with("standby", &[]),
            datadir: standby.datadir.clone(),
            endpoint: standby.endpoint(),
            log: log_of(
                file,
                &standby.hostname,
                &format!("standby-dbid{}", standby.dbid),
                &standby.datadir,
            ),
        });
    }
    for s in &file.segments {
        procs.push(ClusterProcess {
            name: format!("segment dbid {}", s.dbid),
            dbid: s.dbid,
            kind: "segment",
            hostname: s.hostname.clone(),
            args: with("segment", &["--dbid".into(), s.dbid.to_string()]),
            datadir: s.datadir.clone(),
            endpoint: s.endpoint(),
            log: log_of(
                file,
                &s.hostname,
                &format!("segment-dbid{}", s.dbid),
                &s.datadir,
            ),
        });
    }
    procs
}

/// How `stop` ends the processes (gpstop's modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StopMode {
    /// SIGTERM, then wait: every instance is crash-safe, so leaving at once is what a crash
    /// is, and the next start runs recovery; `fast` and `smart` are the same here.
    Fast,
    Smart,
    /// SIGKILL.
    Immediate,
}

impl From<StopMode> for cluster::wire::agent::StopMode {
    fn from(mode: StopMode) -> Self {
        match mode {
            StopMode::Fast => cluster::wire::agent::StopMode::Fast,
            StopMode::Smart => cluster::wire::agent::StopMode::Smart,
            StopMode::Immediate => cluster::wire::agent::StopMode::Immediate,
        }
    }
}

impl From<cluster::wire::agent::StopMode> for StopMode {
    fn from(mode: cluster::wire::agent::StopMode) -> Self {
        match mode {
            cluster::wire::agent::StopMode::Fast => StopMode::Fast,
            cluster::wire::agent::StopMode::Smart => StopMode::Smart,
            cluster::wire::agent::StopMode::Immediate => StopMode::Immediate,
        }
    }
}

/// Starts `p` unless it runs, and waits until it listens (as gpstart waits for its
/// instances); its line. A process that exits instead (a refused data directory, a port in
/// use) fails, quoting the end of its log.
pub fn start_one(p: &ClusterProcess) -> anyhow::Result<String> {
    if let Some(pid) = running(&p.datadir) {
        return Ok(format!("{}: already running (pid {pid})", p.name));
    }
    let log = p.log.clone();
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the log directory {}", dir.display()))?;
    }
    let pid = spawn_detached(&p.args, &log)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(&p.endpoint).is_ok() {
            return Ok(format!(
                "{}: started pid {pid}, log {}",
                p.name,
                log.display()
            ));
        }
        if !alive(pid) || Instant::now() > deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "{} (pid {pid}) {} at {}; the end of {}:\n{}",
                p.name,
                if alive(pid) {
                    "does not listen"
                } else {
                    "exited instead of listening"
                },
                p.endpoint,
                log.display(),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the process running on `datadir`, if one does; its line.
pub fn stop_one(name: &str, datadir: &Path, mode: StopMode) -> anyhow::Result<String> {
    let Some(pid) = running(datadir) else {
        return Ok(format!("{name}: not running"));
    };
    let signal = match mode {
        StopMode::Fast | StopMode::Smart => "-TERM",
        StopMode::Immediate => "-KILL",
    };
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
    let began = Instant::now();
    // Gone once its lock is released and the process has exited (it releases the lock first,
    // then winds its runtime down).
    while running(datadir) == Some(pid) || alive(pid) {
        if began.elapsed() > Duration::from_secs(10) {
            bail!("{name} (pid {pid}) did not stop within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(format!("{name}: stopped pid {pid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_directory_refuses_a_second_process_and_names_the_first() {
        let dir = std::env::temp_dir().join(format!("hacluster-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let missing = DataDirLock::acquire(&dir, "segment")
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("does not exist"), "{missing}");
        assert!(!dir.exists(), "a refusal makes nothing");
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(running(&dir), None);
        let lock = DataDirLock::acquire(&dir, "segment --dbid 2").unwrap();
        assert_eq!(running(&dir), Some(std::process::id()));
        let second = DataDirLock::acquire(&dir, "segment --dbid 2")
            .err()
            .unwrap()
            .to_string();
        assert!(
            second.contains(&format!("pid {}", std::process::id())),
            "{second}"
        );
        drop(lock);
        assert_eq!(running(&dir), None, "a released lock names nobody");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
