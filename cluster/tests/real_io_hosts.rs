//! Production mode across hosts: three hosts, each a network namespace of its own with its own
//! address on a private /24 (made and removed by the test), joined by a bridge the verbs reach
//! from the machine's own namespace. Each host's agent runs inside its host, as systemd would
//! run it there; the verbs run outside and reach the hosts only over the network. The cluster
//! is laid out (`plan`), each host given its own copy of the file and secret, initialized
//! (`init`: each agent makes its host's data directories), loaded, stopped and started again
//! through the agents, one host alone and then all; a standby is added on a third host; then
//! every process of one host is killed and `recoverseg -i` moves its instances to a spare host
//! through the spare's agent, every host's copy of the file learning where they went. Needs root (network namespaces): skipped with a loud message
//! otherwise, and never in CI (`CI` set: a non-root run fails).
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_hosts`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster::client::Client;
use cluster::io::auth::{self, Credentials, PeerIdentity};
use support::{until, HACLUSTER};

/// Runs a command that must succeed.
fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test's network: a bridge in the machine's namespace holding `.254` of the /24, and a
/// namespace per host holding `.N`. Removed, with every process in it, when dropped.
struct Net {
    prefix: String,
    bridge: String,
    tag: String,
    hosts: Vec<String>,
}

impl Net {
    fn new() -> Net {
        let pid = std::process::id();
        let net = Net {
            prefix: format!("10.213.{}", 20 + pid % 200),
            bridge: format!("hacbr{}", pid % 100_000),
            tag: format!("hac{}", pid % 100_000),
            hosts: Vec::new(),
        };
        sh("ip", &["link", "add", &net.bridge, "type", "bridge"]);
        let own = format!("{}.254/24", net.prefix);
        sh("ip", &["addr", "add", &own, "dev", &net.bridge]);
        sh("ip", &["link", "set", &net.bridge, "up"]);
        net
    }

    fn ns(&self, n: usize) -> String {
        format!("{}-h{n}", self.tag)
    }

    fn address(&self, n: usize) -> String {
        format!("{}.{n}", self.prefix)
    }

    /// Host `n`: a namespace with address `.n`, its end of a veth pair on the bridge.
    fn add_host(&mut self, n: usize) {
        let ns = self.ns(n);
        sh("ip", &["netns", "add", &ns]);
        self.hosts.push(ns.clone());
        let (outer, inner) = (format!("{}v{n}", self.tag), format!("{}p{n}", self.tag));
        sh(
            "ip",
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ],
        );
        sh("ip", &["link", "set", &inner, "netns", &ns]);
        sh("ip", &["link", "set", &outer, "master", &self.bridge, "up"]);
        let addr = format!("{}/24", self.address(n));
        sh(
            "ip",
            &[
                "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", &inner,
            ],
        );
        sh(
            "ip",
            &["netns", "exec", &ns, "ip", "link", "set", &inner, "up"],
        );
        sh(
            "ip",
            &["netns", "exec", &ns, "ip", "link", "set", "lo", "up"],
        );
    }

    /// Every process running in host `n`'s namespace.
    fn pids(&self, n: usize) -> Vec<u32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.ns(n)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    fn kill_host(&self, n: usize) {
        for pid in self.pids(n) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.hosts {
            let out = Command::new("ip").args(["netns", "pids", ns]).output();
            if let Ok(out) = out {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            // The veth's end on the bridge goes with its peer, but not always at once.
            let n = ns.rsplit_once("-h").map(|(_, n)| n).unwrap_or_default();
            let outer = format!("{}v{n}", self.tag);
            let _ = Command::new("ip")
                .args(["link", "del", &outer])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// `hacluster ARGS` in the machine's namespace (where the verbs run).
fn hacluster(args: &[&str]) -> std::process::Output {
    Command::new(HACLUSTER).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = hacluster(args);
    assert!(
        out.status.success(),
        "hacluster {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The agent of host `n`, started inside its namespace as a supervisor there would.
fn start_agent(net: &Net, n: usize, file: &Path, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join(format!("agent-host{n}.log"))).unwrap();
    Command::new("ip")
        .args(["netns", "exec", &net.ns(n), HACLUSTER, "agent", "--cluster"])
        .arg(file)
        .args(["--host", &format!("host{n}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_cluster_of_three_namespaced_hosts_runs_through_its_agents_and_moves_a_lost_host() {
    if !root() || Command::new("ip").arg("-V").output().is_err() {
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(!in_ci, "CI runs this test as root with iproute2 installed");
        eprintln!(
            "\n\n*** SKIPPED real_io_hosts: network namespaces need root and iproute2 (`ip`); \
             run as root to exercise the cluster across hosts ***\n"
        );
        return;
    }
    let mut net = Net::new();
    for n in 1..=4 {
        net.add_host(n);
    }
    let dir = std::env::temp_dir().join(format!("real_io_hosts_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _cleanup = RemoveOnSuccess(dir.clone());

    // The operator lays the cluster out on the coordinator's machine: host1 to host3 hold
    // instances, host4 is a spare; each host logs to a directory of its own.
    let host = |n: usize| format!("host{n}={}", net.address(n));
    let ops = dir.join("ops");
    let out = ok(&[
        "plan",
        "--dir",
        ops.to_str().unwrap(),
        "--coordinator-host",
        &host(1),
        "--segment-host",
        &host(1),
        "--segment-host",
        &host(2),
        "--segment-host",
        &host(3),
        "--spare-host",
        &host(4),
        "--layout",
        "group",
        "--base-port",
        "7000",
        "--data-root",
        dir.join("data").to_str().unwrap(),
        "--log-root",
        dir.join("logs").to_str().unwrap(),
    ]);
    assert!(out.contains("\"agents\""), "{out}");
    let file = ops.join("cluster.json");
    let f = file.to_str().unwrap();
    let coordinator = format!("{}:7000", net.address(1));
    // Each host has its own copy of the file and the secret, as copied there by the operator;
    // its agent runs inside the host on that copy.
    let copy = |n: usize| -> PathBuf {
        let etc = dir.join(format!("host{n}-etc"));
        std::fs::create_dir_all(&etc).unwrap();
        for name in ["cluster.json", "cluster.secret"] {
            std::fs::copy(ops.join(name), etc.join(name)).unwrap();
        }
        etc.join("cluster.json")
    };
    let copies: Vec<PathBuf> = (1..=4).map(copy).collect();
    let host_file = |n: usize| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&copies[n - 1]).unwrap()).unwrap()
    };
    let logs = |n: usize| dir.join("logs").join(format!("host{n}"));
    let mut agents: Vec<Child> = (1..=4)
        .map(|n| start_agent(&net, n, &copies[n - 1], &dir))
        .collect();
    until("the agents answer", Duration::from_secs(20), || {
        hacluster(&["agent-status", "--cluster", f])
            .status
            .success()
            .then_some(())
    });

    // init: each host's agent makes its own data directories, the cluster starts, and a
    // standby coordinator is added on host3, started by host3's agent.
    let out = ok(&["init", "--cluster", f, "--standby-host", "host3"]);
    assert!(out.contains("\"Synchronized\""), "{out}");
    assert_eq!(out.matches("made").count(), 7, "{out}");
    assert_eq!(out.matches("started pid").count(), 7, "{out}");
    for n in 1..=3 {
        // The agent and the instances it started run inside their host.
        assert!(net.pids(n).len() >= 3, "host{n}: {:?}", net.pids(n));
    }
    let refused = hacluster(&["init", "--cluster", f]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("exist already"),
        "a second init makes nothing: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let mut files: Vec<String> = (1..=3)
        .flat_map(|n| std::fs::read_dir(logs(n)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "agent.log" && !name.starts_with("standby-dbid"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "coordinator.log",
            "segment-dbid2.log",
            "segment-dbid3.log",
            "segment-dbid4.log",
            "segment-dbid5.log",
            "segment-dbid6.log",
            "segment-dbid7.log"
        ],
        "a log file per process, under its host's log directory"
    );

    let text = std::fs::read_to_string(ops.join("cluster.secret")).unwrap();
    let (cluster_id, keys) = auth::parse_secret_file(&text).unwrap();
    auth::install(Credentials {
        cluster_id,
        identity: PeerIdentity::Admin,
        keys,
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows: Vec<i64> = (0..30).collect();
    let mut client = Client::new(vec![coordinator.clone()], Duration::from_secs(5));
    rt.block_on(support::table_with_rows(&mut client, "t", &rows, b"v"));
    let secret = ops.join("cluster.secret");
    let state = |flag: Option<&str>| {
        let mut args = vec!["state", "--coordinator", &coordinator];
        args.extend(flag);
        let out = Command::new(HACLUSTER)
            .args(&args)
            .env("HACLUSTER_SECRET", &secret)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Synchronized, and still so with the same configuration epoch over more than two probe
    // intervals: an instance stopped and started again within one interval reads as in sync
    // until the prober has looked at it.
    let synced = || {
        let epoch = |text: &str| text.lines().next().map(str::to_string);
        let before = state(None);
        std::thread::sleep(Duration::from_millis(2500));
        let after = state(None);
        (before.contains("Pairs not synchronized: 0")
            && after.contains("Pairs not synchronized: 0")
            && epoch(&before) == epoch(&after))
        .then_some(())
    };
    until("the pairs synchronized", Duration::from_secs(60), synced);

    // One host stopped and started again (gpstop --host), its agent left serving; then
    // restarted (gpstop -r --host).
    let out = ok(&["stop", "--cluster", f, "--host", "host2"]);
    assert_eq!(out.matches("stopped pid").count(), 2, "{out}");
    assert!(!out.contains("agent stopped"), "{out}");
    let out = ok(&["start", "--cluster", f, "--host", "host2"]);
    assert_eq!(out.matches("started pid").count(), 2, "{out}");
    until("synchronized again", Duration::from_secs(60), synced);
    let out = ok(&["restart", "--cluster", f, "--host", "host2"]);
    assert_eq!(out.matches("started pid").count(), 2, "{out}");
    until("synchronized again", Duration::from_secs(60), synced);

    // The whole cluster, its standby too, stopped and started again through the agents.
    let out = ok(&["stop", "--cluster", f, "--keep-agents"]);
    assert_eq!(out.matches("stopped pid").count(), 8, "{out}");
    let out = ok(&["start", "--cluster", f]);
    assert_eq!(out.matches("started pid").count(), 8, "{out}");
    until("synchronized again", Duration::from_secs(60), synced);

    // Every host's copy of the file learns the standby.
    for n in 1..=4 {
        assert_eq!(
            host_file(n)["standby"]["address"],
            net.address(3).as_str(),
            "host{n}'s copy records the standby"
        );
    }
    assert!(std::fs::read_dir(logs(3)).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("standby-dbid")));

    // Host2 is lost: every process in it.
    net.kill_host(2);
    until("host2's instances down", Duration::from_secs(60), || {
        state(None).contains("(4 up, 2 down)").then_some(())
    });

    // recoverseg -i moves host2's instances onto the spare host4, through host4's agent.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let lost: Vec<serde_json::Value> = v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["hostname"] == "host2")
        .cloned()
        .collect();
    let out = hacluster(&["agent-status", "--cluster", f]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a host is down: exit code 1");
    assert!(text.contains("host host2: agent DOWN"), "{text}");
    assert!(text.contains("host host4: agent up"), "{text}");
    let mut lines = String::new();
    for (i, s) in lost.iter().enumerate() {
        lines += &format!(
            "{}|{}|{} {}|{}|{}\n",
            s["address"].as_str().unwrap(),
            s["port"],
            s["datadir"].as_str().unwrap(),
            net.address(4),
            7201 + i,
            dir.join("data")
                .join("host4")
                .join(format!("moved{i}"))
                .display()
        );
    }
    let input = dir.join("recover.txt");
    std::fs::write(&input, lines).unwrap();
    let out = Command::new(HACLUSTER)
        .args(["recoverseg", "--coordinator", &coordinator, "-i"])
        .arg(&input)
        .args(["--cluster", f])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "recoverseg -i: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    until(
        "the moved instances synchronized",
        Duration::from_secs(90),
        synced,
    );
    let table = state(Some("-c"));
    assert_eq!(table.matches(&net.address(4)).count(), 2, "{table}");
    assert!(
        net.pids(4).len() >= 3,
        "host4 runs its agent and both instances"
    );
    assert_eq!(
        std::fs::read_dir(logs(4))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != "agent.log")
            .count(),
        2,
        "host4's two instances' logs"
    );
    // The operator's file and every host that answers place the moved instances on host4.
    let on_host4 = |v: &serde_json::Value| {
        v["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["hostname"] == "host4")
            .count()
    };
    let ops_file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(on_host4(&ops_file), 2);
    for n in [1, 3, 4] {
        assert_eq!(on_host4(&host_file(n)), 2, "host{n}'s copy");
    }
    rt.block_on(async {
        let mut client = Client::new(vec![coordinator.clone()], Duration::from_secs(5));
        client.begin().await.unwrap();
        for k in &rows {
            let got = client.get("t", *k).await.unwrap();
            assert_eq!(got.as_deref(), Some(&b"v"[..]), "key {k}");
        }
        client.commit().await.unwrap();
    });

    // The coordinator's host loses its coordinator; the standby on host3 is activated, and
    // every host that answers learns the new coordinator (a host's `start` never brings the
    // deposed one back).
    let lock = dir.join("data/host1/coordinator/instance.pid");
    let pid = std::fs::read_to_string(&lock).unwrap();
    let pid = pid.lines().next().unwrap().trim().to_string();
    sh("kill", &["-9", &pid]);
    let out = ok(&["activate-standby", "--cluster", f]);
    assert!(out.contains(&format!("{}:7000", net.address(3))), "{out}");
    for n in [1, 3, 4] {
        assert_eq!(
            host_file(n)["coordinator"]["hostname"],
            "host3",
            "host{n}'s copy names the activated coordinator"
        );
    }
    let activated = format!("{}:7000", net.address(3));
    rt.block_on(async {
        let mut client = Client::new(vec![activated], Duration::from_secs(5));
        client.begin().await.unwrap();
        for k in &rows {
            let got = client.get("t", *k).await.unwrap();
            assert_eq!(
                got.as_deref(),
                Some(&b"v"[..]),
                "key {k} after the activation"
            );
        }
        client.commit().await.unwrap();
    });

    // Everything stops, the agents too.
    let out = ok(&["stop", "--cluster", f]);
    assert!(out.contains("host host2: agent not running"), "{out}");
    for agent in &mut agents {
        let began = Instant::now();
        while agent.try_wait().unwrap().is_none() {
            assert!(began.elapsed() < Duration::from_secs(10), "an agent exited");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for n in [1, 2, 3, 4] {
        until("nothing runs on the host", Duration::from_secs(10), || {
            net.pids(n).is_empty().then_some(())
        });
    }
}

/// Removes the test's directory unless the test failed (its logs are kept then).
struct RemoveOnSuccess(PathBuf);

impl Drop for RemoveOnSuccess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for its logs", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
