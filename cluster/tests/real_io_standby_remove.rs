//! Production mode, real processes on loopback: `init-standby -r` (gpinitstandby -r). A
//! Synchronized standby, its walsender streaming, is removed: the catalog forgets it under a new
//! epoch, its process stops, the cluster file forgets it and its data directory stays;
//! commits go on without waiting for it; the mirroring view says Not Configured; a second `-r`
//! is refused; and `init-standby -s` on the same host adds a standby again, in a new
//! directory, which becomes Synchronized.
//!
//! Build and run:
//! `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_standby_remove`.

mod support;

use std::time::Duration;

use support::{until, LocalCluster};

const TABLE: &str = "t";

fn client(c: &LocalCluster, statement: &[&str]) -> Option<serde_json::Value> {
    let mut args = vec![
        "client",
        "--timeout-ms",
        "3000",
        "--coordinator",
        &c.coordinator,
    ];
    args.extend_from_slice(statement);
    let out = c.run(&args);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn standby_state(c: &LocalCluster) -> serde_json::Value {
    json(&c.ok(&["standby-state", "--coordinator", &c.coordinator]))
}

fn epoch(c: &LocalCluster) -> u64 {
    let catalog = until("the catalog", Duration::from_secs(10), || {
        client(c, &["catalog"])
    });
    catalog["epoch"].as_u64().unwrap()
}

#[test]
fn a_removed_standby_leaves_the_cluster_and_its_host_takes_a_new_one() {
    let c = LocalCluster::init("standby_remove", &[]);
    c.verb("start", &[]);
    until("the table", Duration::from_secs(30), || {
        client(&c, &["create-table", TABLE])
    });

    // Nothing to remove yet: refused, nothing changes.
    let err = c.refused(&["init-standby", "--cluster", c.file_arg(), "-r"]);
    assert!(
        err.contains("cannot use -r when the standby coordinator has not yet been configured"),
        "{err}"
    );
    // -r goes alone.
    let err = c.refused(&["init-standby", "--cluster", c.file_arg(), "-r", "-n"]);
    assert!(err.contains("cannot be used with"), "{err}");

    let port = (c.base_port + 3).to_string();
    let added = json(&c.verb(
        "init-standby",
        &["-s", "127.0.0.1", "--standby-port", &port],
    ));
    assert_eq!(added["summary_state"], "Synchronized", "{added}");
    let dbid = added["standby"]["dbid"].as_u64().unwrap();
    let old_dir = c.datadir("standby");
    let pid = c
        .pid_in(&old_dir)
        .expect("init-standby started the standby");
    for key in 0..5 {
        let (k, v) = (key.to_string(), format!("row-{key}"));
        until("insert", Duration::from_secs(10), || {
            client(&c, &["insert", TABLE, &k, &v])
        });
    }
    let before = epoch(&c);

    // Removed while Synchronized and streaming.
    let removed = json(&c.verb("init-standby", &["-r"]));
    assert_eq!(removed["removed"]["dbid"], dbid, "{removed}");
    assert_eq!(removed["summary_state"], "Not Configured", "{removed}");
    assert!(
        removed["process"]
            .as_str()
            .unwrap()
            .contains(&format!("stopped pid {pid}")),
        "{removed}"
    );
    assert!(
        removed["data_directory"]
            .as_str()
            .unwrap()
            .contains("left in place"),
        "{removed}"
    );
    assert!(!support::alive(pid), "the standby's process still runs");
    assert!(old_dir.is_dir(), "the data directory stays");
    assert!(
        c.file_json()["standby"].is_null(),
        "the cluster file still names the standby"
    );
    assert_eq!(epoch(&c), before + 1, "one change, under a new epoch");
    let state = standby_state(&c);
    assert_eq!(state["summary_state"], "Not Configured", "{state}");
    assert!(state["standby"].is_null(), "{state}");
    // Commits go on, waiting for no standby.
    for key in 5..10 {
        let (k, v) = (key.to_string(), format!("row-{key}"));
        until("insert after the removal", Duration::from_secs(10), || {
            client(&c, &["insert", TABLE, &k, &v])
        });
    }
    let err = c.refused(&["init-standby", "--cluster", c.file_arg(), "-r"]);
    assert!(
        err.contains("cannot use -r when the standby coordinator has not yet been configured"),
        "{err}"
    );

    // The same host takes a standby again: a new directory beside the old one.
    let again = json(&c.verb(
        "init-standby",
        &["-s", "127.0.0.1", "--standby-port", &port],
    ));
    assert_eq!(again["summary_state"], "Synchronized", "{again}");
    let new_dir = again["standby"]["datadir"].as_str().unwrap().to_string();
    assert_ne!(
        std::path::Path::new(&new_dir),
        old_dir,
        "the old directory is not reused"
    );
    assert!(c.pid_in(std::path::Path::new(&new_dir)).is_some());
    assert_eq!(
        c.file_json()["standby"]["datadir"].as_str(),
        Some(new_dir.as_str())
    );
    let state = standby_state(&c);
    assert_eq!(state["summary_state"], "Synchronized", "{state}");
    for key in 0..10 {
        let row = until("read back", Duration::from_secs(10), || {
            client(&c, &["get", TABLE, &key.to_string()])
        });
        assert_eq!(row["value"], format!("row-{key}"), "{row}");
    }
}
