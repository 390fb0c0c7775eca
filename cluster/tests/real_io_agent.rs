//! Production mode: the hosts' agents. A local cluster of three loopback "hosts" (and the
//! coordinator's) is started, loaded, stopped and started again through its agents; each
//! agent obeys only the administration verbs, and only for instances of its own host; a
//! whole host's processes are killed (its agent too), and `recoverseg -i` moves its instances
//! to a spare host through that host's agent, which the verb starts.
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_agent`.

mod support;

use std::time::{Duration, Instant};

use cluster::client::Client;
use cluster::io::auth::{self, Credentials, PeerIdentity};
use cluster::io::net::Connection;
use cluster::model::catalog::{Mode, Role, SegmentConfig, Status};
use cluster::wire::agent::{AgentReply, AgentRequest, StopMode};
use support::{alive, until, LocalCluster};

fn credentials(c: &LocalCluster, identity: PeerIdentity) -> Credentials {
    let text = std::fs::read_to_string(c.secret()).unwrap();
    let (cluster_id, keys) = auth::parse_secret_file(&text).unwrap();
    Credentials {
        cluster_id,
        identity,
        keys,
    }
}

/// The agents of the cluster file: (host, endpoint).
fn agents(c: &LocalCluster) -> Vec<(String, String)> {
    c.file_json()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["hostname"].as_str().unwrap().to_string(),
                format!("{}:{}", a["address"].as_str().unwrap(), a["port"]),
            )
        })
        .collect()
}

/// The segment entries of the cluster file on `host`.
fn segments_on(c: &LocalCluster, host: &str) -> Vec<serde_json::Value> {
    c.file_json()["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["hostname"] == host)
        .cloned()
        .collect()
}

fn pid_of_lock(path: &std::path::Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    alive(pid).then_some(pid)
}

/// Asks the agent at `endpoint` for `req` as `identity`.
fn ask(
    rt: &tokio::runtime::Runtime,
    c: &LocalCluster,
    identity: PeerIdentity,
    endpoint: &str,
    req: &AgentRequest,
) -> AgentReply {
    auth::install(credentials(c, identity));
    rt.block_on(async {
        let mut conn = Connection::connect(endpoint, Duration::from_secs(3))
            .await
            .unwrap();
        conn.call(req, Duration::from_secs(20)).await.unwrap()
    })
}

#[test]
fn three_hosts_run_through_their_agents_and_a_lost_host_moves_to_a_spare() {
    let c = LocalCluster::init("agents", &["--layout", "group", "--hosts", "3"]);
    let hosts: Vec<String> = agents(&c).into_iter().map(|(h, _)| h).collect();
    assert_eq!(
        hosts,
        ["127.0.0.1", "host1", "host2", "host3"],
        "one agent a host"
    );
    let out = c.verb("start", &[]);
    assert_eq!(out.matches("agent started").count(), 4, "{out}");
    assert_eq!(out.matches("started pid").count(), 7, "{out}");
    let status = c.verb("agent-status", &[]);
    assert_eq!(status.matches("agent up").count(), 4, "{status}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin = credentials(&c, PeerIdentity::Admin);
    auth::install(admin.clone());
    let mut client = Client::new(vec![c.coordinator.clone()], Duration::from_secs(5));
    let keys: Vec<i64> = (0..30).collect();
    rt.block_on(support::table_with_rows(&mut client, "t", &keys, b"v"));
    let synced = || {
        c.ok(&["state", "--coordinator", &c.coordinator])
            .contains("Pairs not synchronized: 0")
            .then_some(())
    };
    until("the pairs synchronized", Duration::from_secs(60), synced);

    // Who may ask an agent what: a client, a segment, a standby are refused; an agent acts
    // only for instances of its own host.
    let all = agents(&c);
    let (_, host1) = all.iter().find(|(h, _)| h == "host1").unwrap().clone();
    let on_host1 = segments_on(&c, "host1");
    let victim = &on_host1[0];
    let stop = AgentRequest::Stop {
        dbid: victim["dbid"].as_u64().unwrap() as u16,
        address: victim["address"].as_str().unwrap().into(),
        datadir: victim["datadir"].as_str().unwrap().into(),
        mode: StopMode::Immediate,
    };
    let victim_dir = std::path::PathBuf::from(victim["datadir"].as_str().unwrap());
    let victim_pid = c.pid_in(&victim_dir).expect("the instance runs");
    for who in [
        PeerIdentity::Client,
        PeerIdentity::Segment { dbid: 2 },
        PeerIdentity::Standby { dbid: 9 },
    ] {
        for req in [&stop, &AgentRequest::Exit] {
            let reply = ask(&rt, &c, who, &host1, req);
            assert!(
                matches!(reply, AgentReply::Refused(_)),
                "{who} asking {req:?}: {reply:?}"
            );
        }
    }
    let on_host2 = segments_on(&c, "host2");
    let row: SegmentConfig = {
        let s = &on_host2[0];
        SegmentConfig {
            dbid: s["dbid"].as_u64().unwrap() as u16,
            content: s["content"].as_i64().unwrap() as i16,
            role: Role::Mirror,
            preferred_role: Role::Mirror,
            mode: Mode::NotSynced,
            status: Status::Up,
            hostname: "host2".into(),
            address: s["address"].as_str().unwrap().into(),
            port: s["port"].as_u64().unwrap() as u16,
            datadir: s["datadir"].as_str().unwrap().into(),
        }
    };
    let reply = ask(
        &rt,
        &c,
        PeerIdentity::Admin,
        &host1,
        &AgentRequest::StartMirror {
            row,
            primary: "127.0.0.1:1".into(),
        },
    );
    assert!(
        matches!(&reply, AgentReply::Refused(why) if why.contains("host2")),
        "the agent of host1 wipes nothing of host2: {reply:?}"
    );
    assert_eq!(
        c.pid_in(&victim_dir),
        Some(victim_pid),
        "nothing was stopped"
    );
    auth::install(admin.clone());
    until("still synchronized", Duration::from_secs(30), synced);

    // Stopped and started again through the agents, the agents staying up.
    let out = c.verb("stop", &["--keep-agents"]);
    assert_eq!(out.matches("stopped pid").count(), 7, "{out}");
    assert!(!out.contains("agent stopped"), "{out}");
    let out = c.verb("start", &[]);
    assert_eq!(out.matches("agent running").count(), 4, "{out}");
    assert_eq!(out.matches("started pid").count(), 7, "{out}");
    until("synchronized again", Duration::from_secs(60), synced);

    // Host2 is lost: every process of it, its agent too.
    let agent2 = c.dir.join("agent-host2.pid");
    let mut lost = vec![pid_of_lock(&agent2).expect("host2's agent runs")];
    for s in &on_host2 {
        let dir = std::path::PathBuf::from(s["datadir"].as_str().unwrap());
        lost.push(c.pid_in(&dir).expect("host2's instance runs"));
    }
    for pid in &lost {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let out = c.run(&["agent-status", "--cluster", c.file_arg()]);
    assert!(!out.status.success(), "a host's agent is down");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("host host2: agent DOWN"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let state = c.ok(&[
        "state",
        "--coordinator",
        &c.coordinator,
        "--cluster",
        c.file_arg(),
    ]);
    assert!(state.contains("Agents:"), "{state}");
    assert!(state.contains("host host2: agent DOWN"), "{state}");
    assert_eq!(state.matches("agent up").count(), 3, "{state}");
    until(
        "both of host2's instances down",
        Duration::from_secs(60),
        || {
            c.ok(&["state", "--coordinator", &c.coordinator])
                .contains("(4 up, 2 down)")
                .then_some(())
        },
    );

    // A spare host, host4, gets an agent entry; recoverseg -i moves host2's instances there.
    let spare_port = c.file_json()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["port"].as_u64().unwrap())
        .max()
        .unwrap()
        + 1;
    c.edit_file(|v| {
        v["agents"].as_array_mut().unwrap().push(serde_json::json!({
            "hostname": "host4", "address": "127.0.0.4", "port": spare_port,
        }))
    });
    let mut lines = String::new();
    for (i, s) in on_host2.iter().enumerate() {
        lines += &format!(
            "{}|{}|{} 127.0.0.4|{}|{}\n",
            s["address"].as_str().unwrap(),
            s["port"],
            s["datadir"].as_str().unwrap(),
            spare_port + 1 + i as u64,
            c.dir.join("host4").join(format!("moved{i}")).display()
        );
    }
    let input = c.dir.join("recover.txt");
    std::fs::write(&input, lines).unwrap();
    let out = c.ok(&[
        "recoverseg",
        "--coordinator",
        &c.coordinator,
        "-i",
        input.to_str().unwrap(),
        "--cluster",
        c.file_arg(),
    ]);
    assert!(out.contains("resynchronizing"), "{out}");
    until(
        "the moved instances synchronized",
        Duration::from_secs(90),
        synced,
    );
    assert!(
        pid_of_lock(&c.dir.join("agent-host4.pid")).is_some(),
        "the verb started the spare's agent"
    );
    assert_eq!(
        segments_on(&c, "host4").len(),
        2,
        "the file places them on host4"
    );
    assert!(
        segments_on(&c, "host2").is_empty(),
        "and no longer on host2"
    );
    // Every acknowledged row is there (a new session: the coordinator restarted since).
    auth::install(admin);
    let mut client = Client::new(vec![c.coordinator.clone()], Duration::from_secs(5));
    rt.block_on(async {
        let began = Instant::now();
        let rows = loop {
            let read = async {
                client.begin().await?;
                let mut rows = Vec::new();
                for k in &keys {
                    rows.push(client.get("t", *k).await?);
                }
                client.commit().await?;
                Ok::<_, cluster::wire::DbError>(rows)
            };
            match read.await {
                Ok(rows) => break rows,
                Err(e) if began.elapsed() < Duration::from_secs(30) => {
                    eprintln!("reading the rows: {e}; again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("reading the rows: {e}"),
            }
        };
        for (k, got) in keys.iter().zip(rows) {
            assert_eq!(got.as_deref(), Some(&b"v"[..]), "key {k}");
        }
    });

    // Everything stops, the agents too; nothing is left running. (Host2's address is this
    // machine's, so the verb started its agent again to stop whatever ran at the old places:
    // nothing did.)
    let out = c.verb("stop", &[]);
    assert_eq!(out.matches("agent stopped").count(), 5, "{out}");
    for h in ["127.0.0.1", "host1", "host2", "host3", "host4"] {
        let lock = c.dir.join(format!("agent-{h}.pid"));
        until("the agent exited", Duration::from_secs(10), || {
            pid_of_lock(&lock).is_none().then_some(())
        });
    }
}
