//! The intruder: a node outside the cluster (its own address, credentials with a secret of its
//! own) that, in one seed of two of the scenarios that arm it, attacks every listening port it
//! can reach at a few drawn times of the fault phase, with every request that would change
//! state if obeyed. Each attempt is one connection, in one of these modes:
//!
//! - `plain`: the request frames straight away, with no handshake;
//! - `wrong-secret`: the normal handshake, with the intruder's own secret;
//! - `replayed`: a handshake a legitimate client completed to that address (kept by the
//!   simulator's network, `cluster::io::runtime::replays::handshakes`), replayed byte for byte,
//!   then the request frames with a made-up tag;
//! - `random-bytes`: random bytes; `huge-frame`: a frame header declaring 4 GiB;
//! - `sql-login` (the SQL front doors, where the run arms it): a PostgreSQL driver's login as
//!   the user the clients' network is trusted as, then an insert of the marker row. Random
//!   bytes and a huge frame go there too; PostgreSQL answers garbage with an error, so only a
//!   login let in counts as an answer there.
//!
//! The intruder records what came back after the handshake's own answer (a stranger must never
//! get an answer to a request), and its requests carry marker values (epochs at the very top of
//! the range, a marker row) the `strangers-change-nothing` checker looks for in what the
//! cluster reports and holds. It is an agent of the run, drawn from a stream of its own: it
//! moves none of the planner's draws.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::rand_core::Rng;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use cluster::io::auth::{Keys, PeerIdentity, Secret, SECRET_BYTES};
use cluster::io::net::{self, Connection};
use cluster::io::runtime::replays;
use cluster::model::catalog::SegmentConfig;
use cluster::wire::agent::{AgentRequest, StopMode};
use cluster::wire::{AdminRequest, ClientRequest, Op, SegmentRequest, StandbyRequest, WalFeedback};

/// The intruder's host address (outside every range the world and the clients use).
pub const IP: &str = "10.0.66.6";
/// Every marker epoch is at least this (real epochs are far below).
pub const MARKER_EPOCH_FLOOR: u64 = u64::MAX - 0xffff;
/// The key of the intruder's marker row, and the start of its values.
pub const MARKER_KEY: i64 = -0x5717_a6e5;
pub const MARKER_VALUE: &[u8] = b"stranger:";

/// How one attempt talks to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Plain,
    WrongSecret,
    Replayed,
    RandomBytes,
    HugeFrame,
    SqlLogin,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::WrongSecret => "wrong-secret",
            Mode::Replayed => "replayed",
            Mode::RandomBytes => "random-bytes",
            Mode::HugeFrame => "huge-frame",
            Mode::SqlLogin => "sql-login",
        }
    }
}

/// What kind of process listens at a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    Segment,
    Coordinator,
    Standby,
    Agent,
    /// A coordinator's SQL port (PostgreSQL's wire protocol).
    FrontDoor,
}

/// One attempt, as the intruder made it.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    pub at_ms: u64,
    pub attack: &'static str,
    pub mode: Mode,
    pub target: String,
    pub kind: TargetKind,
    /// The intruder's port on that connection (how facts about it are traced back).
    #[serde(skip)]
    pub port: Option<u16>,
}

impl Attempt {
    pub fn describe(&self) -> String {
        format!(
            "attack {} in mode {} on the {:?} at {}",
            self.attack,
            self.mode.name(),
            self.kind,
            self.target
        )
        .to_lowercase()
    }
}

/// What the intruder did and what came back.
#[derive(Clone, Debug, Default)]
pub struct Log {
    pub attempts: Vec<Attempt>,
    /// Attempts (by index) that got bytes back beyond the handshake's own answer, with how many.
    pub answered: Vec<(usize, usize)>,
}

/// The seed's result's account of the intruder: attempts per mode and target kind.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub rounds: usize,
    pub attempts: BTreeMap<String, u32>,
    pub answered: u32,
}

impl Log {
    pub fn report(&self, rounds: usize) -> Report {
        let mut attempts = BTreeMap::new();
        for a in &self.attempts {
            let kind = format!("{:?}", a.kind).to_lowercase();
            *attempts
                .entry(format!("{} {kind}", a.mode.name()))
                .or_insert(0) += 1;
        }
        Report {
            rounds,
            attempts,
            answered: self.answered.len() as u32,
        }
    }
}

/// A message the intruder sends.
#[derive(Clone, Debug)]
enum Msg {
    Segment(SegmentRequest),
    Feedback(WalFeedback),
    Client(ClientRequest),
    Agent(AgentRequest),
}

impl Msg {
    fn plain_frame(&self) -> Vec<u8> {
        match self {
            Msg::Segment(m) => net::encode_frame(m),
            Msg::Feedback(m) => net::encode_frame(m),
            Msg::Client(m) => net::encode_frame(m),
            Msg::Agent(m) => net::encode_frame(m),
        }
    }

    /// The frame with a made-up tag (an authenticated connection's header).
    fn tagged_frame(&self) -> Vec<u8> {
        let mut frame = self.plain_frame();
        frame.splice(8..8, [0x5a; 16]);
        frame
    }

    async fn send(&self, conn: &mut Connection) -> Result<(), net::NetError> {
        match self {
            Msg::Segment(m) => conn.send(m).await,
            Msg::Feedback(m) => conn.send(m).await,
            Msg::Client(m) => conn.send(m).await,
            Msg::Agent(m) => conn.send(m).await,
        }
    }
}

/// A target: where, what listens, and the attacks on it.
struct Target {
    addr: String,
    kind: TargetKind,
    attacks: Vec<(&'static str, Vec<Msg>)>,
}

/// The marker epoch of attack `n` in `mode`.
fn marker_epoch(n: u64, mode: Mode) -> u64 {
    u64::MAX - 1 - (n * 8 + mode as u64)
}

fn marker_row(mode: Mode, target: &str) -> Op {
    let mut value = MARKER_VALUE.to_vec();
    value.extend_from_slice(format!("{}:{target}", mode.name()).as_bytes());
    Op::Insert {
        table: "t_heap".into(),
        key: MARKER_KEY,
        value,
    }
}

fn segment_attacks(s: &SegmentConfig, mode: Mode) -> Vec<(&'static str, Vec<Msg>)> {
    let addr = format!("{}:{}", s.address, s.port);
    let seg = |m| Msg::Segment(m);
    vec![
        (
            "promote",
            vec![seg(SegmentRequest::Promote {
                dbid: s.dbid,
                epoch: marker_epoch(0, mode),
            })],
        ),
        (
            "syncrep-off",
            vec![seg(SegmentRequest::SyncrepOff {
                dbid: s.dbid,
                epoch: marker_epoch(1, mode),
            })],
        ),
        (
            "probe",
            vec![seg(SegmentRequest::Probe {
                dbid: s.dbid,
                content: s.content,
                epoch: u64::MAX,
            })],
        ),
        (
            "rejoin",
            vec![seg(SegmentRequest::Rejoin {
                epoch: marker_epoch(2, mode),
                primary: addr.clone(),
                full: true,
            })],
        ),
        (
            "start-replication",
            vec![
                seg(SegmentRequest::StartReplication {
                    mirror_dbid: s.dbid,
                    from: 0,
                    system_id: None,
                }),
                Msg::Feedback(WalFeedback {
                    flushed: u64::MAX,
                    replayed: u64::MAX,
                }),
            ],
        ),
        (
            "write",
            vec![
                seg(SegmentRequest::Begin {
                    xid: u64::MAX - 1,
                    epoch: marker_epoch(3, mode),
                }),
                seg(SegmentRequest::Exec {
                    op: marker_row(mode, &addr),
                }),
                seg(SegmentRequest::Commit),
            ],
        ),
    ]
}

/// The attacks on the agent of a host whose instances are `here`: stop one, wipe one's data
/// directory by starting an empty mirror (or a standby) over it, make one's data directory,
/// rewrite the host's configuration, and stop the agent.
fn agent_attacks(here: &[SegmentConfig], mode: Mode) -> Vec<(&'static str, Vec<Msg>)> {
    let agent = |m| Msg::Agent(m);
    let mut attacks = vec![("agent-exit", vec![agent(AgentRequest::Exit)])];
    if let Some(s) = here.get((mode as usize) % here.len().max(1)) {
        attacks.push((
            "agent-stop",
            vec![agent(AgentRequest::Stop {
                dbid: s.dbid,
                address: s.address.clone(),
                datadir: s.datadir.clone(),
                mode: StopMode::Immediate,
            })],
        ));
        attacks.push((
            "agent-start-mirror",
            vec![agent(AgentRequest::StartMirror {
                row: s.clone(),
                primary: format!("{IP}:7777"),
            })],
        ));
        attacks.push((
            "agent-make-data-directory",
            vec![agent(AgentRequest::MakeDataDirectory { dbid: s.dbid })],
        ));
        let mut standby = s.clone();
        standby.content = -1;
        attacks.push((
            "agent-start-standby",
            vec![agent(AgentRequest::StartStandby { row: standby })],
        ));
    }
    // A configuration placing the host's instances elsewhere.
    attacks.push((
        "agent-write-config",
        vec![agent(AgentRequest::WriteConfig {
            text: format!("{{\"coordinator\": \"{IP}:7777\"}}"),
        })],
    ));
    attacks
}

fn coordinator_attacks(
    addr: &str,
    mode: Mode,
    segments: &[SegmentConfig],
) -> Vec<(&'static str, Vec<Msg>)> {
    let client = |m| Msg::Client(m);
    let mut stranger = segments[0].clone();
    stranger.hostname = "intruder".into();
    stranger.address = IP.into();
    stranger.port = 7777;
    let dbid = segments.iter().map(|s| s.dbid).max().unwrap_or(1) + 1;
    vec![
        (
            "recover",
            vec![client(ClientRequest::Admin(AdminRequest::Recover {
                full: true,
                only: None,
            }))],
        ),
        (
            "rebalance",
            vec![client(ClientRequest::Admin(AdminRequest::Rebalance))],
        ),
        (
            "relocate",
            vec![client(ClientRequest::Admin(AdminRequest::Relocate {
                moves: vec![cluster::wire::admin::Relocation {
                    dbid: segments[0].dbid,
                    hostname: "intruder".into(),
                    address: IP.into(),
                    port: 7777,
                    datadir: "/intruder".into(),
                }],
                why: "intruder".into(),
            }))],
        ),
        (
            "add-mirrors",
            vec![client(ClientRequest::Admin(AdminRequest::AddMirrors {
                mirrors: vec![SegmentConfig {
                    dbid,
                    ..stranger.clone()
                }],
            }))],
        ),
        (
            "write",
            vec![
                client(ClientRequest::Begin),
                client(ClientRequest::Exec {
                    op: marker_row(mode, addr),
                    content: None,
                }),
                client(ClientRequest::Commit),
            ],
        ),
        (
            "register",
            vec![client(ClientRequest::Standby(StandbyRequest::Register {
                coordinator: SegmentConfig {
                    dbid: 1,
                    content: -1,
                    ..stranger.clone()
                },
                standby: SegmentConfig {
                    dbid,
                    content: -1,
                    ..stranger
                },
            }))],
        ),
        (
            "start-replication",
            vec![
                client(ClientRequest::Standby(StandbyRequest::StartReplication {
                    dbid,
                    from: Some(0),
                })),
                Msg::Feedback(WalFeedback {
                    flushed: u64::MAX,
                    replayed: u64::MAX,
                }),
            ],
        ),
        (
            "activate",
            vec![client(ClientRequest::Standby(StandbyRequest::Activate))],
        ),
        (
            "unregister",
            vec![client(ClientRequest::Standby(StandbyRequest::Unregister {
                dbid,
            }))],
        ),
    ]
}

/// The intruder's plan for a seed: `None` when it stays out of this seed.
pub struct Plan {
    pub times_ms: Vec<u64>,
    rng: rand_chacha::ChaCha8Rng,
    secret: Secret,
}

/// Draws whether the intruder attacks in this seed (one seed of two) and when (two to four
/// times during the fault phase).
pub fn plan(seed: u64, fault_time: Duration) -> Option<Plan> {
    let mut rng = crate::random::stream(seed, "intruder");
    if rng.next_u32() % 2 == 1 {
        return None;
    }
    let rounds = 2 + (rng.next_u32() % 3) as usize;
    let span = fault_time.as_millis().max(1) as u64;
    let mut times_ms: Vec<u64> = (0..rounds).map(|_| rng.next_u64() % span).collect();
    times_ms.sort_unstable();
    let mut bytes = [0; SECRET_BYTES];
    rng.fill_bytes(&mut bytes);
    Some(Plan {
        times_ms,
        rng,
        secret: Secret::from_bytes(bytes),
    })
}

/// Creates the intruder's node, with credentials of its own making (the cluster's id, another
/// secret), and starts its attacks; `start_ms` is when the fault phase began.
pub fn start(
    handle: &madsim::runtime::Handle,
    plan: Plan,
    start_ms: u64,
    targets: Targets,
    log: Arc<Mutex<Log>>,
) -> madsim::task::JoinHandle<()> {
    let node = handle
        .create_node()
        .name("intruder")
        .ip(IP.parse::<IpAddr>().unwrap())
        .build();
    let mut own = crate::world::credentials::of(PeerIdentity::Coordinator);
    own.keys = Keys::single(plan.secret.clone());
    cluster::io::runtime::credentials::install_on(node.id(), Arc::new(own));
    replays::keep_handshakes(true);
    node.spawn(attack(plan, start_ms, targets, log))
}

/// What the intruder attacks.
pub struct Targets {
    pub segments: Vec<SegmentConfig>,
    /// The coordinator's address, then the standby's.
    pub coordinators: Vec<String>,
    /// (host, address) of every agent.
    pub agents: Vec<(String, String)>,
    /// The SQL ports (empty where the run does not arm them).
    pub front_doors: Vec<String>,
}

async fn attack(mut plan: Plan, start_ms: u64, targets: Targets, log: Arc<Mutex<Log>>) {
    let Targets {
        segments,
        coordinators,
        agents,
        front_doors,
    } = targets;
    for at in plan.times_ms.clone() {
        let now = crate::workload::now_ms();
        if start_ms + at > now {
            madsim::time::sleep(Duration::from_millis(start_ms + at - now)).await;
        }
        let mut targets = Vec::new();
        for s in &segments {
            targets.push((
                format!("{}:{}", s.address, s.port),
                TargetKind::Segment,
                None,
            ));
        }
        for (i, c) in coordinators.iter().enumerate() {
            let kind = if i == 0 {
                TargetKind::Coordinator
            } else {
                TargetKind::Standby
            };
            targets.push((c.clone(), kind, None));
        }
        for (host, addr) in &agents {
            targets.push((addr.clone(), TargetKind::Agent, Some(host)));
        }
        for (addr, kind, host) in targets {
            let draw = plan.rng.next_u32();
            let mode = [Mode::Plain, Mode::WrongSecret, Mode::Replayed][(draw % 3) as usize];
            let attacks = match (kind, host) {
                (TargetKind::Segment, _) => {
                    let s = segments
                        .iter()
                        .find(|s| format!("{}:{}", s.address, s.port) == addr)
                        .expect("a segment target is an instance");
                    segment_attacks(s, mode)
                }
                (TargetKind::Agent, Some(host)) => {
                    let here: Vec<SegmentConfig> = segments
                        .iter()
                        .filter(|s| &s.hostname == host)
                        .cloned()
                        .collect();
                    agent_attacks(&here, mode)
                }
                _ => coordinator_attacks(&addr, mode, &segments),
            };
            let target = Target {
                addr,
                kind,
                attacks,
            };
            for (name, msgs) in &target.attacks {
                // Each request kind in the target's mode, or (one time in four) another.
                let mode = match plan.rng.next_u32() % 4 {
                    0 => [Mode::Plain, Mode::WrongSecret, Mode::Replayed]
                        [(plan.rng.next_u32() % 3) as usize],
                    _ => mode,
                };
                one(&target, name, msgs, mode, &mut plan.rng, &log).await;
            }
            one(
                &target,
                "random-bytes",
                &[],
                Mode::RandomBytes,
                &mut plan.rng,
                &log,
            )
            .await;
            one(
                &target,
                "huge-frame",
                &[],
                Mode::HugeFrame,
                &mut plan.rng,
                &log,
            )
            .await;
        }
        // The SQL ports last, so that the attacks above draw as they do without them.
        for addr in &front_doors {
            let target = Target {
                addr: addr.clone(),
                kind: TargetKind::FrontDoor,
                attacks: Vec::new(),
            };
            for (attack, mode) in [
                ("login", Mode::SqlLogin),
                ("random-bytes", Mode::RandomBytes),
                ("huge-frame", Mode::HugeFrame),
            ] {
                one(&target, attack, &[], mode, &mut plan.rng, &log).await;
            }
        }
    }
}

/// A driver's login to a front door as the user the clients' network is trusted as; let in,
/// it inserts the marker row. Whether it was let in.
async fn sql_login(addr: &str, port: &mut Option<u16>) -> bool {
    let Ok(Ok(stream)) =
        madsim::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
    else {
        return false;
    };
    *port = stream.local_addr().ok().map(|a| a.port());
    let mut config = tokio_postgres::Config::new();
    config.user(crate::workload::wire::USER).dbname("postgres");
    let login = config.connect_raw(stream, tokio_postgres::NoTls);
    let Ok(Ok((client, connection))) = madsim::time::timeout(LISTEN_FOR, login).await else {
        return false;
    };
    madsim::task::spawn(async move {
        let _ = connection.await;
    });
    let marker = format!(
        "INSERT INTO t_heap (k, v) VALUES ({MARKER_KEY}, '{}sql:{addr}')",
        String::from_utf8_lossy(MARKER_VALUE)
    );
    let _ = madsim::time::timeout(LISTEN_FOR, client.batch_execute(&marker)).await;
    true
}

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const LISTEN_FOR: Duration = Duration::from_secs(1);

/// One attempt: one connection to the target, in `mode`.
async fn one(
    target: &Target,
    attack: &'static str,
    msgs: &[Msg],
    mode: Mode,
    rng: &mut rand_chacha::ChaCha8Rng,
    log: &Arc<Mutex<Log>>,
) {
    let mut attempt = Attempt {
        at_ms: crate::workload::now_ms(),
        attack,
        mode,
        target: target.addr.clone(),
        kind: target.kind,
        port: None,
    };
    // PostgreSQL answers a malformed startup with an error: only a login counts there.
    let allowed_extra = if target.kind == TargetKind::FrontDoor {
        usize::MAX
    } else {
        0
    };
    let answered = match mode {
        Mode::SqlLogin => usize::from(sql_login(&target.addr, &mut attempt.port).await),
        Mode::WrongSecret => {
            match Connection::connect(&target.addr, CONNECT_TIMEOUT).await {
                // The handshake refused the intruder's secret: what must happen.
                Err(_) => 0,
                Ok(mut conn) => {
                    // Accepted with a wrong secret: every frame back counts.
                    let mut got = 1;
                    for m in msgs {
                        let _ = m.send(&mut conn).await;
                    }
                    while let Ok(Ok(_)) = madsim::time::timeout(
                        LISTEN_FOR,
                        conn.reader.recv::<serde::de::IgnoredAny>(),
                    )
                    .await
                    {
                        got += 1;
                    }
                    got
                }
            }
        }
        _ => {
            let (bytes, allowed): (Vec<u8>, usize) = match mode {
                Mode::Plain => (msgs.iter().flat_map(Msg::plain_frame).collect(), 0),
                Mode::Replayed => {
                    let kept = replays::handshakes();
                    let transcript = kept
                        .iter()
                        .find(|t| t.to == target.addr)
                        .or_else(|| kept.first());
                    match transcript {
                        // The server's challenge is the handshake's own answer.
                        Some(t) => {
                            let mut bytes = t.hello.clone();
                            bytes.extend_from_slice(&t.proof);
                            bytes.extend(msgs.iter().flat_map(Msg::tagged_frame));
                            (bytes, 1)
                        }
                        None => {
                            attempt.mode = Mode::Plain;
                            (msgs.iter().flat_map(Msg::plain_frame).collect(), 0)
                        }
                    }
                }
                Mode::RandomBytes => {
                    let mut bytes = vec![0; 16 + (rng.next_u32() % 112) as usize];
                    rng.fill_bytes(&mut bytes);
                    (bytes, 0)
                }
                _ => {
                    let mut bytes = vec![0xff; 4];
                    bytes.extend_from_slice(&[0; 4]);
                    bytes.extend_from_slice(&[0x42; 64]);
                    (bytes, 0)
                }
            };
            raw(
                &target.addr,
                &bytes,
                allowed.saturating_add(allowed_extra),
                &mut attempt.port,
            )
            .await
        }
    };
    let mut log = log.lock().unwrap();
    let index = log.attempts.len();
    log.attempts.push(attempt);
    if answered > 0 {
        log.answered.push((index, answered));
    }
}

/// Sends `bytes` on a new connection to `addr` and counts the frames that come back past the
/// first `allowed` ones (bytes of a partial frame count as one).
async fn raw(addr: &str, bytes: &[u8], allowed: usize, port: &mut Option<u16>) -> usize {
    let Ok(Ok(mut stream)) =
        madsim::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
    else {
        return 0;
    };
    *port = stream.local_addr().ok().map(|a| a.port());
    if stream.write_all(bytes).await.is_err() || stream.flush().await.is_err() {
        return 0;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match madsim::time::timeout(LISTEN_FOR, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    // Count whole frames by their headers (plain or tagged: the length comes first either way;
    // the handshake's challenge is plain).
    let (mut frames, mut at) = (0usize, 0usize);
    while at < got.len() {
        frames += 1;
        let Some(len) = got.get(at..at + 4) else {
            break;
        };
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        at += 8 + len + if frames > 1 { 16 } else { 0 };
    }
    frames.saturating_sub(allowed)
}
