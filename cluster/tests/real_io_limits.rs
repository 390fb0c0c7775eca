//! Production mode, a real primary on loopback under connections that try to make it hold
//! memory: frames declaring 60 MiB before and after a valid frame, many 1 MiB frames left
//! unfinished, half of a small frame, and more idle connections than the listener's cap. The
//! primary's resident memory stays within a stated bound above its baseline, it closes those
//! connections (at once, or at the frame deadline), and a normal request is served afterwards.
//!
//! The limits are the segment's defaults (`ServerLimits::segment()`): 750 connections, 16 KiB
//! for a first frame, 1 MiB after, 32 MiB of budget for frames in progress over 16 KiB, 10 s
//! for a frame to complete once its first byte arrived. A peer that has not authenticated is
//! held to the handshake's 256 bytes a frame, and to the deadline from its first byte.
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_limits`.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod leftovers;
mod test_secret;

use cluster::client::Client;
use cluster::io::net::{Connection, ServerLimits};
use cluster::wal::TableKind;
use cluster::wire::{SegmentRequest, SegmentResponse};

const HACLUSTER: &str = env!("CARGO_BIN_EXE_hacluster");
const PRIMARY: u16 = 2;
/// What the attack may add to the primary's resident memory: the listener's receive bound
/// (44.1 MiB with the segment's defaults, most of it the 32 MiB budget) and room for the
/// allocator. Without limits, the 60 MiB frames alone take hundreds of MiB.
const RSS_GROWTH_MAX_KIB: u64 = 64 * 1024;
/// Connections each declaring a 60 MiB frame, half of them after a valid frame.
const HUGE: usize = 8;
const HUGE_DECLARED: u32 = 60 << 20;
/// What each of them sends of it before giving up.
const HUGE_SENT: usize = 40 << 20;
/// Connections each sending most of a frame at the 1 MiB limit, after a valid frame: more
/// than the 32 MiB budget can hold at once.
const LARGE: usize = 40;
const LARGE_DECLARED: u32 = 1 << 20;
/// Idle connections opened on top of the others: more than the cap can take.
const IDLE: usize = 760;

// ---------------------------------------------------------------------------------------------
// The processes.

struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

/// Processes of a loopback cluster; dropping it kills them, and removes the directory unless
/// the test failed.
struct Local {
    dir: PathBuf,
    cluster_file: PathBuf,
    coordinator: String,
    primary: String,
    processes: Vec<Process>,
}

impl Local {
    /// `hacluster init-local`, trying other ports if some are taken. Ports stay below 32768,
    /// out of Linux's ephemeral range.
    fn init(dir: &Path) -> Local {
        let pid = std::process::id() as usize;
        for attempt in 0..20 {
            let base_port = 20_000 + ((pid % 4000) * 3 + attempt * 307 + 1500) % 12_000;
            let out = Command::new(HACLUSTER)
                .args(["init-local", "--dir"])
                .arg(dir)
                .args(["--base-port", &base_port.to_string()])
                .output()
                .expect("cannot run hacluster init-local");
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                assert!(
                    stderr.contains("is not free"),
                    "init-local failed: {stderr}"
                );
                continue;
            }
            let summary: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("init-local prints JSON");
            let cluster_file = PathBuf::from(summary["cluster_file"].as_str().unwrap());
            test_secret::share(&cluster_file);
            let file: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&cluster_file).unwrap()).unwrap();
            let primary = file["segments"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["dbid"] == PRIMARY)
                .expect("the primary's row");
            return Local {
                dir: dir.to_path_buf(),
                cluster_file,
                coordinator: summary["coordinator"].as_str().unwrap().to_string(),
                primary: format!(
                    "{}:{}",
                    primary["address"].as_str().unwrap(),
                    primary["port"]
                ),
                processes: Vec::new(),
            };
        }
        panic!("no free ports for a local cluster after 20 tries");
    }

    fn spawn(&mut self, name: &str, args: &[&str]) -> u32 {
        let log = self.dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("cannot create a log file");
        let child = Command::new(HACLUSTER)
            .args(args)
            .arg("--cluster")
            .arg(&self.cluster_file)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let pid = child.id();
        self.processes.push(Process {
            name: name.into(),
            child,
            log,
        });
        pid
    }

    /// Fails the test if a process exited.
    fn check_running(&mut self) {
        for p in &mut self.processes {
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                panic!("{} exited ({status}); its log:\n{log}", p.name);
            }
        }
    }

    fn log_of(&self, name: &str) -> String {
        let p = self.processes.iter().find(|p| p.name == name).unwrap();
        std::fs::read_to_string(&p.log).unwrap_or_default()
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        leftovers::kill_processes_inside(&self.dir);
        if std::thread::panicking() {
            eprintln!("real_io_limits: kept {} for inspection", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A field of `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process runs");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------------------------
// Peers.

/// An authenticated frame's header (length, checksum, tag) declaring `len` bytes; sent before
/// the handshake, it is a handshake frame's header followed by bytes.
fn header(len: u32) -> [u8; 24] {
    let mut h = [0; 24];
    h[..4].copy_from_slice(&len.to_le_bytes());
    h
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect: {e}"));
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// A connection that has authenticated, sent one valid frame and read its answer; its socket,
/// for raw bytes from then on.
fn identified(addr: &str) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let mut conn = Connection::connect(addr, Duration::from_secs(5))
            .await
            .expect("the primary accepts an authenticated peer");
        let answer = conn
            .call::<_, SegmentResponse>(&SegmentRequest::ReplicationStatus, Duration::from_secs(5))
            .await;
        assert!(answer.is_ok(), "a valid request is answered: {answer:?}");
        conn.into_stream().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Writes `header` and then `len` bytes from a thread, ignoring errors (the instance may close
/// the connection at any point).
fn flood(stream: &TcpStream, header: [u8; 24], len: usize) -> JoinHandle<()> {
    let mut stream = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        if stream.write_all(&header).is_err() {
            return;
        }
        let chunk = vec![0x5a; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            if stream.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
    })
}

/// Whether the instance has closed the connection: a read ends (0 bytes or an error) within
/// `within`. Answers to valid frames are skipped.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let until = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Whether the instance has closed the connection already (a read that would block: no).
fn closed_now(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let closed = match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

// ---------------------------------------------------------------------------------------------
// The story.

#[test]
fn a_primary_under_hostile_connections_stays_bounded_and_serves() {
    let began = Instant::now();
    let limits = ServerLimits::segment();
    let root =
        std::env::temp_dir().join(format!("hacluster-real-io-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut cluster = Local::init(&root);
    let pid = cluster.spawn("primary-dbid2", &["segment", "--dbid", "2"]);
    let primary = cluster.primary.clone();

    // The primary alone: it answers, and its memory settles.
    let ready = Instant::now();
    loop {
        cluster.check_running();
        if TcpStream::connect(&primary).is_ok() {
            drop(identified(&primary));
            break;
        }
        assert!(
            ready.elapsed() < Duration::from_secs(10),
            "the primary never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let baseline = status_kib(pid, "VmRSS");

    // Half of a small frame, then nothing: dropped at the deadline.
    let mut stalled = connect(&primary);
    let mut partial = header(100).to_vec();
    partial.extend_from_slice(&[1; 10]);
    stalled.write_all(&partial).unwrap();
    let stalled_at = Instant::now();

    // 60 MiB frames, before and after a valid frame: refused once their header is in.
    let mut huge: Vec<TcpStream> = (0..HUGE)
        .map(|i| {
            if i % 2 == 0 {
                connect(&primary)
            } else {
                identified(&primary)
            }
        })
        .collect();
    let mut writers: Vec<JoinHandle<()>> = huge
        .iter()
        .map(|s| flood(s, header(HUGE_DECLARED), HUGE_SENT))
        .collect();
    // Frames at the 1 MiB limit, all but the last KiB sent: the budget holds 32 of them and
    // refuses the rest; those it holds are dropped at the deadline.
    let mut large: Vec<TcpStream> = (0..LARGE).map(|_| identified(&primary)).collect();
    writers.extend(
        large
            .iter()
            .map(|s| flood(s, header(LARGE_DECLARED), LARGE_DECLARED as usize - 1024)),
    );
    for w in writers {
        w.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    cluster.check_running();
    let peak = status_kib(pid, "VmHWM");
    let now = status_kib(pid, "VmRSS");
    eprintln!(
        "real_io_limits: primary VmRSS {baseline} KiB before, {now} KiB after, VmHWM {peak} KiB"
    );
    assert!(
        peak <= baseline + RSS_GROWTH_MAX_KIB,
        "the primary's resident memory peaked at {peak} KiB, over its baseline of {baseline} KiB \
         plus {RSS_GROWTH_MAX_KIB} KiB"
    );
    for (i, s) in huge.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(2)),
            "the connection declaring a 60 MiB frame (#{i}) is closed at once"
        );
    }
    let held: Vec<bool> = large.iter().map(|s| !closed_now(s)).collect();
    let held_count = held.iter().filter(|h| **h).count();
    let budget_frames = limits.frame_budget_bytes / LARGE_DECLARED as usize;
    eprintln!("real_io_limits: {held_count} of {LARGE} unfinished 1 MiB frames held");
    assert!(
        held_count > 0 && held_count <= budget_frames,
        "{held_count} of {LARGE} unfinished 1 MiB frames held; the budget holds {budget_frames}"
    );

    // Idle connections beyond the cap are closed at once; those within it stay open.
    let others_open = 1 + held_count;
    assert!(
        others_open + IDLE > limits.max_connections,
        "the test opens more connections than the cap"
    );
    let idle: Vec<TcpStream> = (0..IDLE).map(|_| connect(&primary)).collect();
    let opened = Instant::now();
    // Connections still in the listen queue look open until the instance takes them.
    let mut idle_open;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        idle_open = idle.iter().filter(|s| !closed_now(s)).count();
        if others_open + idle_open <= limits.max_connections
            || opened.elapsed() > Duration::from_secs(2)
        {
            break;
        }
    }
    assert_eq!(
        others_open + idle_open,
        limits.max_connections,
        "connections open to the primary {:?} after {IDLE} more were opened, with a cap of {}",
        opened.elapsed(),
        limits.max_connections
    );
    drop(idle);

    // The deadline: the partial frames go 10 s after their first byte, not before.
    assert!(
        !closed_now(&stalled),
        "half a frame is waited for until the deadline"
    );
    let deadline = limits.frame_deadline;
    assert!(
        closed_within(&mut stalled, deadline + Duration::from_secs(5)),
        "half a frame is dropped at the deadline"
    );
    let waited = stalled_at.elapsed();
    assert!(
        waited >= deadline - Duration::from_millis(200),
        "half a frame dropped after {waited:?}, before the deadline of {deadline:?}"
    );
    for (s, _) in large.iter_mut().zip(&held).filter(|(_, h)| **h) {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "an unfinished 1 MiB frame is dropped at the deadline"
        );
    }
    cluster.check_running();

    // Normal requests: a frame to the primary, and a table created through the coordinator.
    cluster.spawn("mirror-dbid3", &["segment", "--dbid", "3"]);
    cluster.spawn("coordinator", &["coordinator"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut conn = Connection::connect(&primary, Duration::from_secs(2))
            .await
            .expect("the primary accepts");
        let answer = conn
            .call::<_, SegmentResponse>(&SegmentRequest::ReplicationStatus, Duration::from_secs(2))
            .await;
        assert!(
            matches!(answer, Ok(SegmentResponse::Replication(_))),
            "the primary answers: {answer:?}"
        );
        let mut client = Client::new(vec![cluster.coordinator.clone()], Duration::from_secs(5));
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            cluster.check_running();
            match client.create_table("after_attack", TableKind::Heap).await {
                Ok(()) => break,
                Err(e) if Instant::now() < until => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("create-table after the attack: {e}"),
            }
        }
    });
    let log = cluster.log_of("primary-dbid2");
    assert!(
        log.contains(&format!(
            "at its cap of {} connections",
            limits.max_connections
        )),
        "the primary says it refused connections at its cap:\n{log}"
    );
    eprintln!("real_io_limits: {:?} in all", began.elapsed());
    drop(cluster);
    let _ = std::fs::remove_dir_all(&root);
}
