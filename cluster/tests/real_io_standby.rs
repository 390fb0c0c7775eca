//! Production mode, real processes on loopback: the standby coordinator (seed 000, master
//! mirroring). Coordinator, primary and mirror run; `hacluster init-standby -s` adds a standby
//! while the coordinator serves and waits until it is Synchronized; rows are committed; the
//! coordinator is SIGKILLed; `hacluster activate-standby` promotes the standby; every
//! acknowledged row reads back through it, and a client holding both addresses moves to it.
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_standby`.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod leftovers;
mod test_secret;

use cluster::client::Client;
use cluster::wal::TableKind;

const HACLUSTER: &str = env!("CARGO_BIN_EXE_hacluster");
const TABLE: &str = "standby_test";
const ROWS: i64 = 40;

struct Cluster {
    dir: PathBuf,
    file: PathBuf,
    coordinator: String,
    children: Vec<(String, Child)>,
    /// The standby process `init-standby` started (not our child).
    standby_pid: Option<u32>,
}

impl Cluster {
    fn init() -> Cluster {
        let dir = std::env::temp_dir().join(format!("real_io_standby-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pid = std::process::id() as usize;
        for attempt in 0..20 {
            let base = 22_000 + ((pid % 3000) * 4 + attempt * 401) % 10_000;
            let out = hacluster(&[
                "init-local",
                "--dir",
                dir.to_str().unwrap(),
                "--base-port",
                &base.to_string(),
            ]);
            if out.status.success() && port_free(base as u16 + 3) {
                let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                test_secret::share(std::path::Path::new(
                    summary["cluster_file"].as_str().unwrap(),
                ));
                return Cluster {
                    file: PathBuf::from(summary["cluster_file"].as_str().unwrap()),
                    coordinator: summary["coordinator"].as_str().unwrap().to_string(),
                    dir,
                    children: Vec::new(),
                    standby_pid: None,
                };
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("no free ports for a local cluster");
    }

    fn spawn(&mut self, name: &str, args: &[&str]) {
        let log = File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(HACLUSTER)
            .args(args)
            .arg("--cluster")
            .arg(&self.file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push((name.to_string(), child));
    }

    fn kill(&mut self, name: &str) {
        let (_, child) = self.children.iter_mut().find(|(n, _)| n == name).unwrap();
        child.kill().unwrap();
        let _ = child.wait();
    }

    fn standby_addr(&self) -> String {
        let port: u16 = self
            .coordinator
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        format!("127.0.0.1:{}", port + 3)
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                out += &format!("\n----- {} -----\n", path.display());
                out += &lines[lines.len().saturating_sub(25)..].join("\n");
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = self.standby_pid {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        leftovers::kill_processes_inside(&self.dir);
        if std::thread::panicking() {
            eprintln!(
                "real_io_standby: kept {}{}",
                self.dir.display(),
                self.logs()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn hacluster(args: &[&str]) -> Output {
    Command::new(HACLUSTER).args(args).output().unwrap()
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn value(key: i64) -> Vec<u8> {
    format!("row-{key}").into_bytes()
}

async fn until<T>(what: &str, within: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_activated_standby_serves_every_acknowledged_row() {
    let mut c = Cluster::init();
    c.spawn("coordinator", &["coordinator"]);
    c.spawn("primary", &["segment", "--dbid", "2"]);
    c.spawn("mirror", &["segment", "--dbid", "3"]);
    let standby = c.standby_addr();
    let both = vec![c.coordinator.clone(), standby.clone()];
    let mut client = Client::new(both.clone(), Duration::from_secs(5));
    until("create table", Duration::from_secs(20), async || {
        client.create_table(TABLE, TableKind::Heap).await.ok()
    })
    .await;

    // -n before any standby is configured: refused, nothing changes.
    let file = c.file.to_str().unwrap().to_string();
    let out = hacluster(&["init-standby", "--cluster", &file, "-n"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("standby coordinator has not yet been configured"),
        "{err}"
    );

    let port = standby.rsplit(':').next().unwrap();
    let out = hacluster(&[
        "init-standby",
        "--cluster",
        &file,
        "-s",
        "127.0.0.1",
        "--standby-port",
        port,
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    c.standby_pid = report["standby_pid"].as_u64().map(|p| p as u32);
    assert!(
        out.status.success(),
        "init-standby failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        c.logs()
    );
    assert_eq!(report["summary_state"], "Synchronized", "{report}");
    assert!(report["log_time_ms"].is_u64(), "{report}");

    // A second standby is refused.
    let out = hacluster(&[
        "init-standby",
        "--cluster",
        &file,
        "-s",
        "127.0.0.1",
        "--standby-port",
        port,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only one standby is allowed"));

    for key in 0..ROWS {
        client.begin().await.unwrap();
        client.insert(TABLE, key, value(key)).await.unwrap();
        client.commit().await.unwrap();
    }

    // Activation is refused while the coordinator answers.
    let out = hacluster(&["activate-standby", "--cluster", &file]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("still alive"), "{err}");

    c.kill("coordinator");
    let out = hacluster(&["activate-standby", "--cluster", &file]);
    assert!(
        out.status.success(),
        "activate-standby failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        c.logs()
    );
    let activated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        activated["activated"], report["standby"]["dbid"],
        "{activated}"
    );

    // The same client, holding both addresses, moves to the new coordinator.
    let mut rows = 0;
    for key in 0..ROWS {
        let got = until(
            "read through the new coordinator",
            Duration::from_secs(15),
            async || {
                client.begin().await.ok()?;
                let v = client.get(TABLE, key).await.ok()?;
                client.commit().await.ok()?;
                Some(v)
            },
        )
        .await;
        assert_eq!(got, Some(value(key)), "key {key}");
        rows += 1;
    }
    assert_eq!(rows, ROWS);
    client.begin().await.unwrap();
    client.insert(TABLE, ROWS, value(ROWS)).await.unwrap();
    client.commit().await.unwrap();
    let catalog = client.catalog().await.unwrap();
    let old = &catalog.segments[&1];
    assert_eq!(old.status, cluster::model::catalog::Status::Down);
}
