//! Production mode, real processes on loopback: SIGKILL the primary of a synchronized pair while
//! a client writes; the prober promotes the mirror, and every commit the cluster acknowledged is
//! still there, with its value.
//!
//! Follows the FTS failover procedure: "if the prober cannot reach a primary and its mirror is
//! in sync, it records the mirror as the acting primary and promotes it; the mirror had flushed
//! every commit the primary acknowledged" (DESIGN.md section 3; section 6 for real mode).
//!
//! Sequence: init-local → start coordinator, primary (dbid 2), mirror (dbid 3) → create table →
//! pair Synced → 200 commits → 4 writers running → SIGKILL dbid 2 → dbid 3 acting primary → more
//! commits → every acknowledged row read back; no failed write visible.
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_kill`.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod leftovers;
mod test_secret;

use cluster::client::Client;
use cluster::model::catalog::{Mode, Role, Status};
use cluster::wal::{Key, TableKind, Value};
use cluster::wire::DbError;

const HACLUSTER: &str = env!("CARGO_BIN_EXE_hacluster");
const TABLE: &str = "kill_test";
const PRIMARY: u16 = 2;
const MIRROR: u16 = 3;
/// Every wait in the test ends by then, counted from the test's start.
const TEST_BUDGET: Duration = Duration::from_secs(55);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// The processes.

struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    /// Killed by the test: its exit is expected.
    killed: bool,
}

/// A cluster of `hacluster` processes in a scratch directory. Dropping it SIGKILLs every
/// process it started; the directory is removed after a pass and kept (and named) after a
/// failure.
struct LocalCluster {
    dir: PathBuf,
    cluster_file: PathBuf,
    coordinator: String,
    processes: Vec<Process>,
    began: Instant,
}

/// Why a start attempt was abandoned.
enum StartError {
    /// Another program took one of our ports between init and listen: try other ports.
    PortTaken(String),
}

impl LocalCluster {
    /// `hacluster init-local` in `dir`, trying base ports until three free ones are found.
    /// Ports stay below 32768, out of Linux's ephemeral range (outgoing connections' ports).
    fn init(dir: PathBuf, began: Instant) -> LocalCluster {
        let pid = std::process::id() as usize;
        let mut refusals = Vec::new();
        for attempt in 0..20 {
            let base_port = 20_000 + ((pid % 4000) * 3 + attempt * 303) % 12_000;
            let out = Command::new(HACLUSTER)
                .args(["init-local", "--dir"])
                .arg(&dir)
                .args(["--base-port", &base_port.to_string()])
                .output()
                .expect("cannot run hacluster init-local");
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                let summary: serde_json::Value =
                    serde_json::from_slice(&out.stdout).expect("init-local prints one JSON object");
                let coordinator = summary["coordinator"]
                    .as_str()
                    .expect("init-local names the coordinator")
                    .to_string();
                let cluster_file = PathBuf::from(
                    summary["cluster_file"]
                        .as_str()
                        .expect("init-local names its file"),
                );
                test_secret::share(&cluster_file);
                return LocalCluster {
                    dir,
                    cluster_file,
                    coordinator,
                    processes: Vec::new(),
                    began,
                };
            }
            if !stderr.contains("is not free") {
                panic!("hacluster init-local failed ({}): {stderr}", out.status);
            }
            refusals.push(stderr.trim().to_string());
        }
        panic!(
            "no free ports for a local cluster after 20 tries:\n{}",
            refusals.join("\n")
        );
    }

    fn spawn(&mut self, name: &str, args: &[&str]) {
        let log = self.dir.join(format!("{name}.log"));
        let stderr = File::create(&log).expect("cannot create a log file");
        let child = Command::new(HACLUSTER)
            .args(args)
            .arg("--cluster")
            .arg(&self.cluster_file)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("cannot share the log file"))
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.processes.push(Process {
            name: name.to_string(),
            child,
            log,
            killed: false,
        });
    }

    fn start_all(&mut self) {
        self.spawn("coordinator", &["coordinator"]);
        self.spawn("primary-dbid2", &["segment", "--dbid", "2"]);
        self.spawn("mirror-dbid3", &["segment", "--dbid", "3"]);
    }

    /// SIGKILL, as a machine losing power or the OOM killer does it.
    fn kill(&mut self, name: &str) {
        let process = self
            .processes
            .iter_mut()
            .find(|p| p.name == name)
            .expect("no such process");
        process.killed = true;
        process
            .child
            .kill()
            .unwrap_or_else(|e| panic!("cannot kill {name}: {e}"));
        let _ = process.child.wait();
    }

    /// The first process that exited without being killed: its name and exit status.
    fn exited(&mut self) -> Option<(String, String)> {
        self.processes
            .iter_mut()
            .filter(|p| !p.killed)
            .find_map(|p| match p.child.try_wait() {
                Ok(Some(status)) => Some((p.name.clone(), status.to_string())),
                Ok(None) => None,
                Err(e) => Some((p.name.clone(), format!("unknown status ({e})"))),
            })
    }

    fn log_of(&self, name: &str) -> String {
        let process = self
            .processes
            .iter()
            .find(|p| p.name == name)
            .expect("no such process");
        std::fs::read_to_string(&process.log).unwrap_or_default()
    }

    /// The last lines of every process's log.
    fn log_tails(&self) -> String {
        const LINES: usize = 40;
        let mut out = String::new();
        for p in &self.processes {
            let log =
                std::fs::read_to_string(&p.log).unwrap_or_else(|e| format!("(unreadable: {e})"));
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LINES)..];
            out.push_str(&format!(
                "\n----- {} ({}), last {} lines -----\n",
                p.name,
                p.log.display(),
                tail.len()
            ));
            out.push_str(&tail.join("\n"));
            out.push('\n');
        }
        out
    }

    /// Fails the test with `msg` and every process's log tail.
    fn fail(&self, msg: impl Display) -> ! {
        panic!(
            "{msg}\n(data and logs kept in {}){}",
            self.dir.display(),
            self.log_tails()
        );
    }

    /// Fails the test if a process died on its own.
    fn check_running(&mut self) {
        if let Some((name, status)) = self.exited() {
            self.fail(format!("{name} exited on its own ({status})"));
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        leftovers::kill_processes_inside(&self.dir);
        if std::thread::panicking() {
            eprintln!("real_io_kill: kept {} for inspection", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A wait with a deadline. `retry` after each failed attempt: it fails the test, with the last
/// error and the logs, once the deadline (or the whole test's budget) has passed, or as soon as
/// a process dies on its own.
struct Deadline {
    what: String,
    within: Duration,
    at: Instant,
}

impl Deadline {
    fn new(cluster: &LocalCluster, what: impl Into<String>, within: Duration) -> Deadline {
        let at = (Instant::now() + within).min(cluster.began + TEST_BUDGET);
        Deadline {
            what: what.into(),
            within,
            at,
        }
    }

    async fn retry(&self, cluster: &mut LocalCluster, last: impl Display) {
        cluster.check_running();
        if Instant::now() >= self.at {
            cluster.fail(format!(
                "timed out after {:?} waiting for {}; last: {last}",
                self.within, self.what
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The workload.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// The commit was acknowledged: the row must survive any single failure.
    Acked,
    /// Nothing was committed: the row must never be visible.
    Failed(String),
    /// The commit may or may not have happened.
    Unknown(String),
}

fn value_of(key: Key) -> Value {
    format!("value-{key}").into_bytes()
}

/// One insert in its own transaction.
async fn write_row(client: &mut Client, key: Key) -> Outcome {
    let result = async {
        client.begin().await?;
        client.insert(TABLE, key, value_of(key)).await?;
        client.commit().await
    }
    .await;
    match result {
        Ok(()) => Outcome::Acked,
        Err(e @ (DbError::Failed(_) | DbError::NotAllowed { .. })) => {
            let _ = client.abort().await;
            Outcome::Failed(e.to_string())
        }
        Err(DbError::Unknown(e)) => Outcome::Unknown(e),
    }
}

async fn read_row(client: &mut Client, key: Key) -> Result<Option<Value>, DbError> {
    client.begin().await?;
    let row = client.get(TABLE, key).await;
    let _ = client.abort().await;
    row
}

async fn scan_all(client: &mut Client) -> Result<BTreeMap<Key, Value>, DbError> {
    client.begin().await?;
    let rows = client.scan(TABLE, 0).await;
    let _ = client.abort().await;
    Ok(rows?.into_iter().collect())
}

/// Clients writing concurrently, each its own rows (`first + i * WRITER_KEYS ..`), one
/// transaction each, until told to stop. Several, so that some commit is in flight when the
/// primary dies.
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<(Key, Outcome)>>>,
}

const WRITER_KEYS: Key = 100_000;

impl Writers {
    fn start(coordinator: &str, count: usize, first: Key) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let tasks = (0..count as Key)
            .map(|i| {
                let mut client = Client::new(vec![coordinator.to_string()], CLIENT_TIMEOUT);
                let (stop, acked) = (stop.clone(), acked.clone());
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    let mut key = first + i * WRITER_KEYS;
                    while !stop.load(Ordering::SeqCst) {
                        let outcome = write_row(&mut client, key).await;
                        if outcome == Outcome::Acked {
                            acked.fetch_add(1, Ordering::SeqCst);
                        } else {
                            // The primary is gone or not yet replaced: do not spin.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        outcomes.push((key, outcome));
                        key += 1;
                    }
                    outcomes
                })
            })
            .collect();
        Writers { stop, acked, tasks }
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    async fn stop(self) -> Vec<(Key, Outcome)> {
        self.stop.store(true, Ordering::SeqCst);
        let mut outcomes = Vec::new();
        for task in self.tasks {
            outcomes.extend(task.await.expect("a writer task panicked"));
        }
        outcomes
    }
}

// ---------------------------------------------------------------------------------------------
// The story.

/// Starts the three processes and waits until a table can be created; other ports if one was
/// taken between init and listen.
async fn start_cluster(root: &Path, began: Instant) -> (LocalCluster, Client) {
    let mut taken = Vec::new();
    for attempt in 0..3 {
        let mut cluster = LocalCluster::init(root.join(format!("try{attempt}")), began);
        cluster.start_all();
        let mut client = Client::new(vec![cluster.coordinator.clone()], CLIENT_TIMEOUT);
        match create_table(&mut cluster, &mut client).await {
            Ok(()) => return (cluster, client),
            Err(StartError::PortTaken(who)) => taken.push(who),
        }
    }
    panic!(
        "ports taken by other programs on every attempt: {}",
        taken.join("; ")
    );
}

async fn create_table(cluster: &mut LocalCluster, client: &mut Client) -> Result<(), StartError> {
    let deadline = Deadline::new(
        cluster,
        "the cluster to accept CREATE TABLE",
        Duration::from_secs(20),
    );
    loop {
        if let Some((name, _)) = cluster.exited() {
            if cluster.log_of(&name).contains("in use") {
                return Err(StartError::PortTaken(name));
            }
        }
        match client.create_table(TABLE, TableKind::Heap).await {
            Ok(()) => return Ok(()),
            Err(e) => deadline.retry(cluster, e).await,
        }
    }
}

async fn wait_until_synced(cluster: &mut LocalCluster, client: &mut Client) {
    let deadline = Deadline::new(
        cluster,
        "the pair to be recorded in sync (mirror caught up)",
        Duration::from_secs(20),
    );
    loop {
        let last = match client.catalog().await {
            Ok(catalog) => {
                let rows = [&catalog.segments[&PRIMARY], &catalog.segments[&MIRROR]];
                if rows
                    .iter()
                    .all(|r| r.mode == Mode::Synced && r.status == Status::Up)
                {
                    return;
                }
                format!("{} / {}", rows[0], rows[1])
            }
            Err(e) => e.to_string(),
        };
        deadline.retry(cluster, last).await;
    }
}

async fn wait_until_promoted(cluster: &mut LocalCluster, client: &mut Client) {
    let deadline = Deadline::new(
        cluster,
        "dbid 3 to be the acting primary",
        Duration::from_secs(20),
    );
    loop {
        let last = match client.catalog().await {
            Ok(catalog) => {
                let (old, new) = (&catalog.segments[&PRIMARY], &catalog.segments[&MIRROR]);
                if new.role == Role::Primary && new.status == Status::Up {
                    assert_eq!(
                        (old.role, old.status),
                        (Role::Mirror, Status::Down),
                        "the killed primary after failover"
                    );
                    return;
                }
                format!("{old} / {new}")
            }
            Err(e) => e.to_string(),
        };
        deadline.retry(cluster, last).await;
    }
}

async fn wait_for_acks(cluster: &mut LocalCluster, writers: &Writers, acks: usize, what: &str) {
    let deadline = Deadline::new(cluster, what, Duration::from_secs(15));
    while writers.acked() < acks {
        deadline
            .retry(
                cluster,
                format!("{} of {acks} acknowledged", writers.acked()),
            )
            .await;
    }
}

/// Writes one row, retrying while nothing was committed; it must end acknowledged.
async fn write_until_acked(cluster: &mut LocalCluster, client: &mut Client, key: Key) {
    let deadline = Deadline::new(
        cluster,
        format!("row {key} to be committed after failover"),
        Duration::from_secs(10),
    );
    loop {
        match write_row(client, key).await {
            Outcome::Acked => return,
            Outcome::Failed(e) => deadline.retry(cluster, e).await,
            Outcome::Unknown(e) => cluster.fail(format!(
                "row {key}: commit outcome unknown with no fault running: {e}"
            )),
        }
    }
}

/// Every acknowledged row reads back with its value; no failed write is visible; nothing
/// appears that was never written.
async fn check_history(
    cluster: &mut LocalCluster,
    client: &mut Client,
    history: &BTreeMap<Key, Outcome>,
) {
    let deadline = Deadline::new(
        cluster,
        "the acknowledged rows to be readable",
        Duration::from_secs(15),
    );
    for (key, outcome) in history {
        if *outcome != Outcome::Acked {
            continue;
        }
        loop {
            match read_row(client, *key).await {
                Ok(Some(value)) if value == value_of(*key) => break,
                Ok(Some(value)) => cluster.fail(format!(
                    "acknowledged row {key} reads back {:?}, not {:?}",
                    String::from_utf8_lossy(&value),
                    String::from_utf8_lossy(&value_of(*key))
                )),
                Ok(None) => cluster.fail(format!("acknowledged row {key} is lost after failover")),
                Err(e) => {
                    deadline
                        .retry(cluster, format!("reading row {key}: {e}"))
                        .await
                }
            }
        }
    }
    let rows = loop {
        match scan_all(client).await {
            Ok(rows) => break rows,
            Err(e) => deadline.retry(cluster, format!("scanning: {e}")).await,
        }
    };
    for (key, value) in &rows {
        match history.get(key) {
            None => cluster.fail(format!("row {key} is visible but was never written")),
            Some(Outcome::Failed(e)) => cluster.fail(format!(
                "row {key} is visible although its write failed ({e})"
            )),
            Some(_) if *value != value_of(*key) => {
                cluster.fail(format!("row {key} has the wrong value"))
            }
            Some(_) => {}
        }
    }
    let acked = history.values().filter(|o| **o == Outcome::Acked).count();
    let scanned_acked = rows.keys().filter(|k| history[k] == Outcome::Acked).count();
    assert_eq!(
        scanned_acked, acked,
        "a scan misses acknowledged rows that reads found"
    );
}

#[test]
fn acknowledged_commits_survive_a_sigkilled_primary() {
    let began = Instant::now();
    let root = std::env::temp_dir().join(format!("hacluster-real-io-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let rt = tokio::runtime::Runtime::new().expect("cannot build a tokio runtime");
    rt.block_on(async {
        let (mut cluster, mut client) = start_cluster(&root, began).await;
        wait_until_synced(&mut cluster, &mut client).await;

        let mut history = BTreeMap::new();
        for key in 0..200 {
            let outcome = write_row(&mut client, key).await;
            if outcome != Outcome::Acked {
                cluster.fail(format!(
                    "row {key} not committed with every instance up: {outcome:?}"
                ));
            }
            history.insert(key, outcome);
        }

        // Kill under load: commits are in flight when the primary dies.
        let writers = Writers::start(&cluster.coordinator, 4, 1000);
        wait_for_acks(&mut cluster, &writers, 40, "the writers to get going").await;
        cluster.kill("primary-dbid2");
        wait_until_promoted(&mut cluster, &mut client).await;
        let acked_at_promotion = writers.acked();
        wait_for_acks(
            &mut cluster,
            &writers,
            acked_at_promotion + 40,
            "commits on the promoted mirror",
        )
        .await;
        let outcomes = writers.stop().await;
        for key in 900_000..900_010 {
            write_until_acked(&mut cluster, &mut client, key).await;
            history.insert(key, Outcome::Acked);
        }
        history.extend(outcomes);

        check_history(&mut cluster, &mut client, &history).await;
        cluster.check_running();
        let count = |f: fn(&Outcome) -> bool| history.values().filter(|o| f(o)).count();
        eprintln!(
            "real_io_kill: {} acknowledged, {} failed, {} unknown; {:?} in all",
            count(|o| *o == Outcome::Acked),
            count(|o| matches!(o, Outcome::Failed(_))),
            count(|o| matches!(o, Outcome::Unknown(_))),
            began.elapsed()
        );
        drop(cluster);
    });
    let _ = std::fs::remove_dir_all(&root);
}
