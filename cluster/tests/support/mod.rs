//! A local cluster for the real-process tests: laid out by `hacluster init-local` on free
//! loopback ports in a directory of its own, driven through the `hacluster` verbs an operator
//! types, and stopped (every process it started, whoever started it) when dropped. A failing
//! test keeps the directory and prints the tail of every log.

#![allow(dead_code)]

#[path = "../leftovers/mod.rs"]
mod leftovers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const HACLUSTER: &str = env!("CARGO_BIN_EXE_hacluster");

pub struct LocalCluster {
    pub name: String,
    pub dir: PathBuf,
    pub file: PathBuf,
    pub coordinator: String,
    /// The first of the cluster's ports (the coordinator's); the next ones are the instances'.
    pub base_port: u16,
}

impl LocalCluster {
    /// `hacluster init-local` on ports nothing listens on; `extra` are more init-local options.
    pub fn init(name: &str, extra: &[&str]) -> LocalCluster {
        let pid = std::process::id() as usize;
        let dir = std::env::temp_dir().join(format!("real_io_{name}_{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        let salt: usize = name.bytes().map(usize::from).sum();
        for attempt in 0..20 {
            let base_port = 20_000 + ((pid % 4000) * 3 + salt * 13 + attempt * 307) % 12_000;
            // Room for a standby beside the instances.
            if std::net::TcpListener::bind(("127.0.0.1", base_port as u16 + 3)).is_err() {
                continue;
            }
            let out = Command::new(HACLUSTER)
                .args(["init-local", "--dir"])
                .arg(&dir)
                .args(["--base-port", &base_port.to_string()])
                .args(extra)
                .output()
                .expect("cannot run hacluster init-local");
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                return LocalCluster {
                    name: name.to_string(),
                    file: PathBuf::from(v["cluster_file"].as_str().unwrap()),
                    coordinator: v["coordinator"].as_str().unwrap().to_string(),
                    base_port: base_port as u16,
                    dir,
                };
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("no free ports for a local cluster");
    }

    pub fn file_arg(&self) -> &str {
        self.file.to_str().unwrap()
    }

    /// The cluster's secret file (init-local writes it beside the cluster file).
    pub fn secret(&self) -> PathBuf {
        self.file.with_file_name("cluster.secret")
    }

    /// Runs `hacluster ARGS` (with the cluster's secret for verbs given only --coordinator).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(HACLUSTER)
            .args(args)
            .env("HACLUSTER_SECRET", self.secret())
            .output()
            .unwrap()
    }

    /// Runs `hacluster ARGS`, which must end by itself within `within` (a server that should
    /// refuse to start, say); one still running then is killed and the test fails.
    pub fn run_within(&self, args: &[&str], within: Duration) -> Output {
        let mut child = Command::new(HACLUSTER)
            .args(args)
            .env("HACLUSTER_SECRET", self.secret())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let began = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if began.elapsed() > within {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "hacluster {args:?} still ran after {within:?} (it should have refused): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }

    /// Runs `hacluster ARGS`, which must succeed; its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "hacluster {args:?} failed: {}{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `hacluster ARGS`, which must fail; its standard error.
    pub fn refused(&self, args: &[&str]) -> String {
        let out = self.run_within(args, Duration::from_secs(20));
        assert!(
            !out.status.success(),
            "hacluster {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `hacluster VERB --cluster FILE ARGS`.
    pub fn verb(&self, verb: &str, args: &[&str]) -> String {
        let mut all = vec![verb, "--cluster", self.file_arg()];
        all.extend_from_slice(args);
        self.ok(&all)
    }

    /// The cluster file as JSON.
    pub fn file_json(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&self.file).unwrap()).unwrap()
    }

    /// Rewrites the cluster file through `edit`.
    pub fn edit_file(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut v = self.file_json();
        edit(&mut v);
        std::fs::write(&self.file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }

    /// A data directory of the cluster by its name under the cluster's directory.
    pub fn datadir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The pid written in a data directory's lock file, if the process is alive.
    pub fn pid_in(&self, datadir: &Path) -> Option<u32> {
        let text = std::fs::read_to_string(datadir.join("instance.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }

    /// The last lines of every log under the cluster's directory.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for path in walk(&self.dir) {
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                out += &format!("\n----- {} -----\n", path.display());
                out += &lines[lines.len().saturating_sub(30)..].join("\n");
            }
        }
        out
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = Command::new(HACLUSTER)
            .args(["stop", "-M", "immediate", "--cluster"])
            .arg(&self.file)
            .output();
        // Whatever else runs on a directory of this cluster (a process started by hand, or by
        // a cluster file the test rewrote), and every host's agent: its lock file names it.
        for path in walk(&self.dir) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let agent = name.starts_with("agent-") && name.ends_with(".pid");
            if name == "instance.pid" || agent {
                if let Some(pid) = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
                {
                    if pid.parse::<u32>().is_ok_and(|p| p != std::process::id()) {
                        let _ = Command::new("kill").args(["-9", &pid]).status();
                    }
                }
            }
        }
        // Any process still running with an argument inside this cluster's directory (a
        // standby or an agent whose lock file lies elsewhere, or was removed before it stopped).
        leftovers::kill_processes_inside(&self.dir);
        if std::thread::panicking() {
            eprintln!("{}: kept {}{}", self.name, self.dir.display(), self.logs());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether process `pid` is alive (not a zombie).
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

/// Polls `f` every 100 ms until it gives a value; panics after `within`.
pub fn until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates heap table `table` once the coordinator takes it (it may still be starting), then
/// writes `keys` one transaction each, with `value`.
pub async fn table_with_rows(
    client: &mut cluster::client::Client,
    table: &str,
    keys: &[i64],
    value: &[u8],
) {
    let began = Instant::now();
    while client
        .create_table(table, cluster::wal::TableKind::Heap)
        .await
        .is_err()
    {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the table {table}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for k in keys {
        client.begin().await.unwrap();
        client.insert(table, *k, value.to_vec()).await.unwrap();
        client.commit().await.unwrap();
    }
}
