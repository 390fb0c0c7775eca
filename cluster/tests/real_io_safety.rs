//! Production mode, real processes on loopback: the ways an operator could lose data or split
//! the cluster, each tried as an operator would, with the verbs the README gives.
//!
//! - After `activate-standby`, the old coordinator started again (as a reboot of its host
//!   would, from a stale copy of the cluster file) refuses to serve and says why; the cluster
//!   file names the activated standby, and `restart` brings the activated catalog back.
//! - A primary whose data directory came back empty (a replaced or unmounted disk) refuses to
//!   start and changes nothing; its mirror takes over; incremental recovery says to copy in
//!   full; `recoverseg -F` makes the directory anew from the mirror; nothing is lost.
//! - A second process on a data directory is refused; `stop` signals only the process that
//!   holds a directory, never a pid left in a stale file; logs are appended; the standby
//!   starts and stops with the cluster.
//! - Absurd settings and planted bugs in the cluster file are refused, naming the field and
//!   the rule.
//! - A client whose statement sits on a hung (SIGSTOPped) primary sees the failover within the
//!   prober's detection bound, not after its statement timeout.
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_safety`.

mod support;

use std::time::Duration;

use support::{alive, until, LocalCluster};

const TABLE: &str = "t";

fn client(
    c: &LocalCluster,
    coordinators: &[&str],
    statement: &[&str],
) -> Option<serde_json::Value> {
    let mut args = vec!["client", "--timeout-ms", "3000"];
    for addr in coordinators {
        args.extend(["--coordinator", addr]);
    }
    args.extend_from_slice(statement);
    let out = c.run(&args);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn insert(c: &LocalCluster, coordinators: &[&str], key: i64) {
    let (k, v) = (key.to_string(), format!("row-{key}"));
    until(&format!("insert {key}"), Duration::from_secs(30), || {
        client(c, coordinators, &["insert", TABLE, &k, &v])
    });
}

fn get(c: &LocalCluster, coordinators: &[&str], key: i64) -> Option<String> {
    let k = key.to_string();
    let row = until(&format!("read {key}"), Duration::from_secs(30), || {
        client(c, coordinators, &["get", TABLE, &k])
    });
    row["value"].as_str().map(str::to_string)
}

/// The catalog as the coordinator at `addr` answers it.
fn catalog(c: &LocalCluster, addr: &str) -> Option<serde_json::Value> {
    client(c, &[addr], &["catalog"])
}

/// `(role, mode, status)` of `dbid` in a catalog.
fn row(cat: &serde_json::Value, dbid: u16) -> (String, String, String) {
    let r = &cat["segments"][dbid.to_string()];
    let s = |f: &str| r[f].as_str().unwrap_or_default().to_string();
    (s("role"), s("mode"), s("status"))
}

fn synced(cat: &serde_json::Value, primary: u16, mirror: u16) -> bool {
    row(cat, primary) == ("Primary".into(), "Synced".into(), "Up".into())
        && row(cat, mirror) == ("Mirror".into(), "Synced".into(), "Up".into())
}

fn started(c: &LocalCluster) {
    c.verb("start", &[]);
    let addr = c.coordinator.clone();
    until("the table", Duration::from_secs(30), || {
        client(c, &[&addr], &["create-table", TABLE])
    });
}

/// Finding: after `activate-standby`, `restart` or a reboot of the old coordinator's host
/// brought it back Active beside the activated standby, and content 0 ended with two
/// primaries holding different acknowledged writes.
#[test]
fn an_old_coordinator_started_after_an_activation_refuses_to_serve() {
    let c = LocalCluster::init("safety_activation", &[]);
    started(&c);
    let old = c.coordinator.clone();
    let standby_port = (c.base_port + 3).to_string();
    c.verb(
        "init-standby",
        &["-s", "127.0.0.1", "--standby-port", &standby_port],
    );
    let standby = format!("127.0.0.1:{standby_port}");
    for key in 0..10 {
        insert(&c, &[&old], key);
    }
    let stale_file = c.dir.join("cluster.json.before-activation");
    std::fs::copy(&c.file, &stale_file).unwrap();

    let old_dir = c.datadir("coordinator");
    let pid = c.pid_in(&old_dir).expect("the coordinator runs");
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    until("the coordinator gone", Duration::from_secs(10), || {
        (!alive(pid)).then_some(())
    });
    let activated: serde_json::Value =
        serde_json::from_str(&c.verb("activate-standby", &[])).unwrap();
    assert_eq!(activated["coordinator"], standby.as_str(), "{activated}");
    // Every later verb reads the activated standby from the cluster file.
    let file = c.file_json();
    assert_eq!(
        file["coordinator"]["port"].as_u64(),
        Some(c.base_port as u64 + 3),
        "{file}"
    );
    assert!(file["standby"].is_null(), "{file}");
    for key in 10..20 {
        insert(&c, &[&standby], key);
    }

    // The old coordinator starts again from a stale copy of the file, as its host's boot would.
    let stale = stale_file.to_str().unwrap();
    let out = c.run_within(
        &["coordinator", "--cluster", stale],
        Duration::from_secs(20),
    );
    assert!(!out.status.success(), "the deposed coordinator served");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("was deposed") && err.contains("init-standby -s"),
        "{err}"
    );
    // It says so again at once, and changed nothing: one primary for content 0, the writes of
    // both coordinators' clients readable.
    let again = c.run_within(
        &["coordinator", "--cluster", stale],
        Duration::from_secs(20),
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("was deposed"));
    let cat = catalog(&c, &standby).expect("the activated standby answers");
    assert_eq!(row(&cat, 2).0, "Primary", "{cat}");
    assert_eq!(row(&cat, 3).0, "Mirror", "{cat}");
    // Clients holding both addresses find the acting coordinator.
    insert(&c, &[&old, &standby], 20);

    // The README's way back: restart from the cluster file uses the activated catalog.
    c.verb("restart", &[]);
    assert_eq!(
        c.pid_in(&old_dir),
        None,
        "restart started the deposed coordinator"
    );
    for key in 0..=20 {
        assert_eq!(
            get(&c, &[&standby], key),
            Some(format!("row-{key}")),
            "key {key}"
        );
    }
    let cat = until(
        "the pair in sync after the restart",
        Duration::from_secs(30),
        || catalog(&c, &standby).filter(|cat| synced(cat, 2, 3)),
    );
    assert_eq!(cat["segments"]["1"]["status"], "Down", "{cat}");
}

/// Finding: a primary restarted on a missing data directory created it and served empty; its
/// good mirror was marked down, and the routine `recoverseg` rewound the mirror to nothing.
#[test]
fn a_primary_on_an_empty_data_directory_refuses_to_start_and_a_full_copy_brings_it_back() {
    let c = LocalCluster::init("safety_empty_disk", &[]);
    started(&c);
    let addr = c.coordinator.clone();
    for key in 0..20 {
        insert(&c, &[&addr], key);
    }
    until("the pair in sync", Duration::from_secs(30), || {
        catalog(&c, &addr).filter(|cat| synced(cat, 2, 3))
    });

    // The primary's host comes back with a new, empty disk mounted where its data was.
    let primary_dir = c.datadir("primary0");
    let pid = c.pid_in(&primary_dir).expect("the primary runs");
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    until("the primary gone", Duration::from_secs(10), || {
        (!alive(pid)).then_some(())
    });
    std::fs::rename(&primary_dir, c.datadir("primary0.old-disk")).unwrap();
    std::fs::create_dir(&primary_dir).unwrap();
    let out = c.run_within(
        &["segment", "--cluster", c.file_arg(), "--dbid", "2"],
        Duration::from_secs(20),
    );
    assert!(!out.status.success(), "an empty directory was served");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no identity file") && err.contains("recoverseg -F"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&primary_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.iter().all(|n| n == "instance.pid"),
        "a refusal made files: {left:?}"
    );
    // The same with no directory at all.
    std::fs::remove_dir_all(&primary_dir).unwrap();
    let err = c.refused(&["segment", "--cluster", c.file_arg(), "--dbid", "2"]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!primary_dir.exists(), "a refusal made the directory");

    // The mirror takes over with every acknowledged row.
    until("the failover", Duration::from_secs(30), || {
        catalog(&c, &addr).filter(|cat| row(cat, 3).0 == "Primary")
    });
    for key in 0..20 {
        assert_eq!(
            get(&c, &[&addr], key),
            Some(format!("row-{key}")),
            "key {key}"
        );
    }
    insert(&c, &[&addr], 20);
    // Incremental recovery cannot bring back a directory that is gone, and says what will.
    let out = c.run(&["recoverseg", "--coordinator", &addr]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dbid 2") && err.contains("recoverseg -F"),
        "{err}"
    );
    // A full copy makes the directory anew from the acting primary.
    c.ok(&[
        "recoverseg",
        "-F",
        "--coordinator",
        &addr,
        "--cluster",
        c.file_arg(),
    ]);
    until(
        "the pair in sync after the full copy",
        Duration::from_secs(40),
        || catalog(&c, &addr).filter(|cat| synced(cat, 3, 2)),
    );
    c.ok(&["recoverseg", "-r", "--coordinator", &addr]);
    until("the preferred roles", Duration::from_secs(40), || {
        catalog(&c, &addr).filter(|cat| synced(cat, 2, 3))
    });
    for key in 0..=20 {
        assert_eq!(
            get(&c, &[&addr], key),
            Some(format!("row-{key}")),
            "key {key}"
        );
    }
}

/// Finding: a second `segment --dbid 2` overwrote the first one's pid file before failing;
/// `restart` killed whatever pid that file held, truncated the logs and left the standby out.
#[test]
fn one_process_per_data_directory_and_stop_signals_only_that_process() {
    let c = LocalCluster::init("safety_processes", &[]);
    started(&c);
    let primary_dir = c.datadir("primary0");
    let pid = c.pid_in(&primary_dir).expect("the primary runs");
    let err = c.refused(&["segment", "--cluster", c.file_arg(), "--dbid", "2"]);
    assert!(err.contains(&format!("in use by pid {pid}")), "{err}");
    assert_eq!(
        c.pid_in(&primary_dir),
        Some(pid),
        "the refused process changed the lock file"
    );

    // The standby is part of the cluster's start and stop.
    let standby_port = (c.base_port + 3).to_string();
    c.verb(
        "init-standby",
        &["-s", "127.0.0.1", "--standby-port", &standby_port],
    );
    let standby_dir = c.datadir("standby");
    assert!(c.pid_in(&standby_dir).is_some(), "init-standby started it");
    let stopped = c.verb("stop", &[]);
    assert!(stopped.contains("standby dbid 4: stopped"), "{stopped}");
    for dir in ["coordinator", "primary0", "mirror0", "standby"] {
        assert_eq!(c.pid_in(&c.datadir(dir)), None, "{dir} still runs");
    }

    // A stale lock file naming a live process that is not the instance: never signalled.
    let mut bystander = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .unwrap();
    std::fs::write(
        primary_dir.join("instance.pid"),
        format!("{}\nsegment\n", bystander.id()),
    )
    .unwrap();
    let out = c.verb("stop", &[]);
    assert!(out.contains("segment dbid 2: not running"), "{out}");
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "stop killed a bystander"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();

    // Started again: every process, the standby too; the logs keep the first run's lines.
    let out = c.verb("start", &[]);
    assert!(out.contains("standby dbid 4: started"), "{out}");
    let addr = c.coordinator.clone();
    until("the coordinator back", Duration::from_secs(30), || {
        catalog(&c, &addr)
    });
    let log = std::fs::read_to_string(c.dir.join("primary0.log")).unwrap();
    assert_eq!(log.matches("starting segment instance").count(), 2, "{log}");
}

/// Finding: a SIGSTOPped primary was replaced by the prober in about 4 s, but clients stayed
/// blocked on it until their 10 s statement timeout.
#[test]
fn a_client_on_a_hung_primary_moves_on_with_the_failover() {
    let c = LocalCluster::init("safety_hung_primary", &[]);
    started(&c);
    let addr = c.coordinator.clone();
    for key in 0..5 {
        insert(&c, &[&addr], key);
    }
    until("the pair in sync", Duration::from_secs(30), || {
        catalog(&c, &addr).filter(|cat| synced(cat, 2, 3))
    });
    let file = c.file_json();
    let probe = &file["probe"];
    let ms = |v: &serde_json::Value| v.as_u64().unwrap();
    let attempts = ms(&probe["probe_retries"]) + 1;
    // The prober notices within an interval and a probe with all its attempts; the promotion
    // and the moved transaction take well under a second more on loopback.
    let detection = ms(&probe["probe_interval_ms"])
        + attempts * ms(&probe["probe_timeout_ms"])
        + (attempts - 1) * ms(&probe["retry_gap_ms"]);
    let statement_timeout = ms(&file["statement_timeout_ms"]);
    let bound = Duration::from_millis(detection + 2_000);
    assert!(
        bound < Duration::from_millis(statement_timeout),
        "the test needs a detection bound under the statement timeout"
    );

    let pid = c.pid_in(&c.datadir("primary0")).expect("the primary runs");
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
    };
    assert!(signal("-STOP").success());
    let began = std::time::Instant::now();
    let out = c.run(&[
        "client",
        "--timeout-ms",
        "30000",
        "--coordinator",
        &addr,
        "insert",
        TABLE,
        "100",
        "row-100",
    ]);
    let took = began.elapsed();
    signal("-CONT");
    assert!(
        out.status.success(),
        "the insert failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took < bound,
        "the client waited {took:?} on the hung primary; the failover bound is {bound:?} (statement timeout {statement_timeout} ms)"
    );
    let cat = catalog(&c, &addr).unwrap();
    assert_eq!(row(&cat, 3).0, "Primary", "{cat}");
    assert_eq!(get(&c, &[&addr], 100), Some("row-100".into()));
}

/// A change to a cluster file.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

/// Finding: `cluster.json` accepted zero and inverted timings and planted bugs.
#[test]
fn absurd_settings_and_planted_bugs_are_refused_naming_the_field() {
    let c = LocalCluster::init("safety_settings", &[]);
    let good = c.file_json();
    let cases: [(&str, Edit, &str); 4] = [
        (
            "probe.probe_timeout_ms",
            Box::new(|v| v["probe"]["probe_timeout_ms"] = 5000.into()),
            "exceeds probe.probe_interval_ms",
        ),
        (
            "probe.probe_interval_ms",
            Box::new(|v| v["probe"]["probe_interval_ms"] = 0.into()),
            "out of range",
        ),
        (
            "connect_timeout_ms",
            Box::new(|v| v["connect_timeout_ms"] = 60_000.into()),
            "not shorter than statement_timeout_ms",
        ),
        (
            "cluster_id",
            Box::new(|v| v["cluster_id"] = "xyz".into()),
            "16 hex digits",
        ),
    ];
    for (field, edit, rule) in cases {
        c.edit_file(|v| {
            *v = good.clone();
            edit(v);
        });
        let err = c.refused(&["start", "--cluster", c.file_arg()]);
        assert!(err.contains(field) && err.contains(rule), "{field}: {err}");
        for dir in ["coordinator", "primary0", "mirror0"] {
            assert_eq!(c.pid_in(&c.datadir(dir)), None, "{field}: {dir} started");
        }
    }

    c.edit_file(|v| {
        *v = good.clone();
        v["bugs"] = serde_json::json!(["ack-before-mirror-flush"]);
    });
    let err = c.refused(&["coordinator", "--cluster", c.file_arg()]);
    assert!(
        err.contains("planted bugs") && err.contains("--allow-planted-bugs"),
        "{err}"
    );
    // The test-only flag lets a test run them.
    c.ok(&["start", "--cluster", c.file_arg(), "--allow-planted-bugs"]);
    let addr = c.coordinator.clone();
    until(
        "the coordinator with planted bugs",
        Duration::from_secs(30),
        || catalog(&c, &addr),
    );
}
