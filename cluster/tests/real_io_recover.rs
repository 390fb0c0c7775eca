//! Production mode, real processes on loopback: the primary's process is killed and its mirror
//! promoted; the old primary's process is started again (it comes back believing it is the
//! primary); `hacluster recoverseg` rewinds it into a mirror that resynchronizes, and
//! `hacluster recoverseg -r` returns both instances to their preferred roles. Every
//! acknowledged row is there at the end, and the pair is Synchronized in its preferred roles.
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_recover`.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod leftovers;
mod test_secret;

use cluster::client::Client;
use cluster::model::catalog::{Catalog, Mode, Role, Status};
use cluster::wal::TableKind;

const HACLUSTER: &str = env!("CARGO_BIN_EXE_hacluster");
const BUDGET: Duration = Duration::from_secs(40);

struct Cluster {
    dir: PathBuf,
    file: PathBuf,
    coordinator: String,
    children: Vec<(String, Child)>,
}

impl Cluster {
    fn init(name: &str, extra: &[&str]) -> Cluster {
        let pid = std::process::id() as usize;
        let dir = std::env::temp_dir().join(format!("real_io_{name}_{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        for attempt in 0..20 {
            let base_port =
                20_000 + ((pid % 4000) * 3 + 7 + attempt * 307 + extra.len() * 40) % 12_000;
            let out = Command::new(HACLUSTER)
                .args(["init-local", "--dir"])
                .arg(&dir)
                .args(["--base-port", &base_port.to_string()])
                .args(extra)
                .output()
                .expect("cannot run hacluster init-local");
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                test_secret::share(std::path::Path::new(v["cluster_file"].as_str().unwrap()));
                return Cluster {
                    file: PathBuf::from(v["cluster_file"].as_str().unwrap()),
                    coordinator: v["coordinator"].as_str().unwrap().to_string(),
                    dir,
                    children: Vec::new(),
                };
            }
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
        let (_, child) = self
            .children
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("known process");
        child.kill().unwrap();
        child.wait().unwrap();
        self.children.retain(|(n, _)| n != name);
    }

    /// Runs a verb of `hacluster` against the coordinator; returns its standard output.
    fn verb(&self, args: &[&str]) -> String {
        let out = Command::new(HACLUSTER)
            .args(args)
            .args(["--coordinator", &self.coordinator])
            .env("HACLUSTER_SECRET", test_secret::beside(&self.file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "hacluster {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Processes started by `hacluster restart` or `move-mirrors`, through their pid files.
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.file_name().is_some_and(|n| n == "instance.pid") {
                    if let Ok(pid) = std::fs::read_to_string(&path) {
                        let pid = pid.lines().next().unwrap_or_default().trim().to_string();
                        let _ = Command::new("kill").args(["-9", &pid]).status();
                    }
                }
            }
        }
        leftovers::kill_processes_inside(&self.dir);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("real_io_recover: kept {}", self.dir.display());
        }
    }
}

async fn wait_for(c: &mut Client, began: Instant, what: &str, ready: impl Fn(&Catalog) -> bool) {
    while began.elapsed() < BUDGET {
        if let Ok(cat) = c.catalog().await {
            if ready(&cat) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn insert(c: &mut Client, key: i64, began: Instant) {
    while began.elapsed() < BUDGET {
        let r = async {
            c.begin().await?;
            c.insert("t", key, key.to_le_bytes().to_vec()).await?;
            c.commit().await
        }
        .await;
        match r {
            Ok(()) => return,
            Err(cluster::wire::DbError::Unknown(e)) => panic!("outcome unknown for {key}: {e}"),
            Err(_) => {
                let _ = c.abort().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("could not insert {key}");
}

fn synced(cat: &Catalog) -> bool {
    let p = cat.pair(0).unwrap();
    let m = p.mirror.unwrap();
    p.primary.mode == Mode::Synced && m.status == Status::Up && m.mode == Mode::Synced
}

#[test]
fn recoverseg_and_rebalance_over_real_processes() {
    let began = Instant::now();
    let mut cluster = Cluster::init("recover", &[]);
    cluster.spawn("coordinator", &["coordinator"]);
    cluster.spawn("dbid2", &["segment", "--dbid", "2"]);
    cluster.spawn("dbid3", &["segment", "--dbid", "3"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = Client::new(vec![cluster.coordinator.clone()], Duration::from_secs(5));
    rt.block_on(async {
        while c.create_table("t", TableKind::Heap).await.is_err() {
            assert!(began.elapsed() < BUDGET, "the cluster never started");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_for(&mut c, began, "the pair in sync", synced).await;
        for k in 0..50 {
            insert(&mut c, k, began).await;
        }
    });
    cluster.kill("dbid2");
    rt.block_on(async {
        wait_for(&mut c, began, "the mirror promoted", |cat| {
            cat.pair(0).unwrap().primary.dbid == 3
        })
        .await;
        for k in 50..100 {
            insert(&mut c, k, began).await;
        }
    });
    cluster.spawn("dbid2", &["segment", "--dbid", "2"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = cluster.verb(&["recoverseg"]);
    assert!(
        out.contains("dbid 2 content 0: incremental recovery from dbid 3"),
        "{out}"
    );
    rt.block_on(wait_for(&mut c, began, "resynchronized", synced));
    let out = cluster.verb(&["state", "-e"]);
    assert!(out.contains("current role p, preferred role m"), "{out}");
    let out = cluster.verb(&["recoverseg", "-r"]);
    assert!(out.contains("[0]"), "{out}");
    rt.block_on(async {
        wait_for(&mut c, began, "synchronized in preferred roles", |cat| {
            synced(cat) && cat.pair(0).unwrap().primary.dbid == 2
        })
        .await;
        insert(&mut c, 100, began).await;
        c.begin().await.unwrap();
        let keys: Vec<i64> = c
            .scan("t", 0)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        c.commit().await.unwrap();
        assert_eq!(keys, (0..=100).collect::<Vec<_>>());
        let cat = c.catalog().await.unwrap();
        assert!(cat
            .segments
            .values()
            .all(|s| s.role == s.preferred_role && s.status == Status::Up));
        assert_eq!(cat.segments[&2].role, Role::Primary);
    });
    let out = cluster.verb(&["state", "-m"]);
    assert!(out.contains("Passive, Synchronized"), "{out}");
    let out = cluster.verb(&["state"]);
    assert!(
        out.contains("Mirroring: configured") && out.contains("Contents: 1"),
        "{out}"
    );
    let out = cluster.verb(&["state", "-c"]);
    assert!(
        out.contains("preferred role") && out.contains("127.0.0.1:"),
        "{out}"
    );
    // gpstop -r: every process stops and starts again; the data is all there.
    let out = Command::new(HACLUSTER)
        .args(["restart", "--cluster"])
        .arg(&cluster.file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("started pid").count(), 3, "{text}");
    rt.block_on(async {
        let mut c = Client::new(vec![cluster.coordinator.clone()], Duration::from_secs(5));
        wait_for(&mut c, began, "synchronized after the restart", synced).await;
        insert(&mut c, 101, began).await;
        c.begin().await.unwrap();
        let n = c.scan("t", 0).await.unwrap().len();
        c.commit().await.unwrap();
        assert_eq!(n, 102);
    });
}

/// `move-mirrors` over real processes: a group-mirrored local cluster of 3 hosts (loopback
/// addresses 127.0.0.1-3) moves content 0's mirror from host2 to host3; the old mirror's
/// process is stopped, the new one copies everything and streams; the backout file moves it
/// back. Every row is there and the pair Synchronized after each move.
#[test]
fn move_mirrors_and_back_over_real_processes() {
    let began = Instant::now();
    let mut cluster = Cluster::init(
        "move",
        &[
            "--layout",
            "group",
            "--hosts",
            "3",
            "--primaries-per-host",
            "1",
        ],
    );
    cluster.spawn("coordinator", &["coordinator"]);
    for dbid in 2..=7 {
        cluster.spawn(
            &format!("dbid{dbid}"),
            &["segment", "--dbid", &dbid.to_string()],
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = Client::new(vec![cluster.coordinator.clone()], Duration::from_secs(5));
    let all_synced = |cat: &Catalog| {
        cat.pairs().iter().all(|p| {
            p.primary.mode == Mode::Synced
                && p.mirror.as_ref().is_some_and(|m| m.status == Status::Up)
        })
    };
    let mirror = rt.block_on(async {
        while c.create_table("t", TableKind::Heap).await.is_err() {
            assert!(began.elapsed() < BUDGET, "the cluster never started");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_for(&mut c, began, "every pair in sync", all_synced).await;
        for k in 0..30 {
            insert(&mut c, k, began).await;
        }
        c.catalog().await.unwrap().pair(0).unwrap().mirror.unwrap()
    });
    assert_eq!(mirror.address, "127.0.0.2");
    let new_dir = cluster.dir.join("host3").join("moved0");
    let file = cluster.dir.join("move.txt");
    std::fs::write(
        &file,
        format!(
            "{}|{}|{} 127.0.0.3|{}|{}\n",
            mirror.address,
            mirror.port,
            mirror.datadir,
            mirror.port + 50,
            new_dir.display()
        ),
    )
    .unwrap();
    let cluster_file = cluster.file.display().to_string();
    let out = cluster.verb(&[
        "move-mirrors",
        "-i",
        &file.display().to_string(),
        "--cluster",
        &cluster_file,
    ]);
    assert!(out.contains("backout file: "), "{out}");
    let backout = out
        .trim()
        .rsplit("backout file: ")
        .next()
        .unwrap()
        .to_string();
    rt.block_on(async {
        wait_for(&mut c, began, "synchronized on host3", |cat| {
            all_synced(cat) && cat.segments[&mirror.dbid].address == "127.0.0.3"
        })
        .await;
        insert(&mut c, 30, began).await;
    });
    let out = cluster.verb(&["move-mirrors", "-i", &backout, "--cluster", &cluster_file]);
    assert!(out.contains("Mirrors moved"), "{out}");
    rt.block_on(async {
        wait_for(&mut c, began, "synchronized back on host2", |cat| {
            all_synced(cat) && cat.segments[&mirror.dbid].address == "127.0.0.2"
        })
        .await;
        let mut keys = Vec::new();
        for content in 0..3 {
            c.begin().await.unwrap();
            keys.extend(
                c.scan("t", content)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(k, _)| k),
            );
            c.commit().await.unwrap();
        }
        keys.sort();
        assert_eq!(keys, (0..=30).collect::<Vec<_>>());
    });
}
