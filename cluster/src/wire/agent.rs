//! A host's agent and whoever asks it to act on the host (the administration verbs): start,
//! stop and report the instances of that one host.

use serde::{Deserialize, Serialize};

use crate::model::catalog::{Dbid, SegmentConfig};

/// What an agent is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentRequest {
    /// Which instances the host has and whether each runs (a supervisor's health check too).
    Health,
    /// Make `row`'s data directory anew (wiping what was there), record the instance in the
    /// host's configuration, and start it as an empty mirror streaming from `primary`
    /// (`ip:port`), as a full copy or a new mirror begins.
    StartMirror { row: SegmentConfig, primary: String },
    /// Start instance `dbid` of this host from its data directory, if it does not run.
    Start { dbid: Dbid },
    /// Stop instance `dbid` of this host at `address` (its listening address) and `datadir`,
    /// if it runs there: a moved instance is stopped at its old location, which the host's
    /// configuration may no longer name.
    Stop {
        dbid: Dbid,
        address: String,
        datadir: String,
        mode: StopMode,
    },
    /// Make the data directory of instance `dbid`, which the host's configuration places on
    /// this host, as `init` does: refused if the directory exists already.
    MakeDataDirectory { dbid: Dbid },
    /// Make `row`'s data directory (absent or empty), record it as the cluster's standby
    /// coordinator in the host's configuration, and start it, as `init-standby -s` does.
    StartStandby { row: SegmentConfig },
    /// Replace the host's configuration with `text` (the cluster file a verb just changed),
    /// so that the host starts its instances where the cluster now places them. Refused
    /// unless it parses, is the same cluster, and places this host's agent where it listens.
    WriteConfig { text: String },
    /// The agent itself exits (its instances keep running); a supervisor may start it again.
    Exit,
}

impl AgentRequest {
    /// The request's name in refusals and logs.
    pub fn name(&self) -> &'static str {
        match self {
            AgentRequest::Health => "agent HEALTH",
            AgentRequest::StartMirror { .. } => "agent START_MIRROR",
            AgentRequest::Start { .. } => "agent START",
            AgentRequest::Stop { .. } => "agent STOP",
            AgentRequest::MakeDataDirectory { .. } => "agent MAKE_DATA_DIRECTORY",
            AgentRequest::StartStandby { .. } => "agent START_STANDBY",
            AgentRequest::WriteConfig { .. } => "agent WRITE_CONFIG",
            AgentRequest::Exit => "agent EXIT",
        }
    }
}

/// How an instance is stopped (gpstop's modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopMode {
    /// Asked to stop, and waited for. Every instance is crash-safe, so stopping at once is what
    /// a crash is and the next start runs recovery: smart and fast are the same here.
    Smart,
    Fast,
    /// Killed.
    Immediate,
}

impl StopMode {
    pub fn label(self) -> &'static str {
        match self {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// One instance of a host as its agent sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceReport {
    pub dbid: Dbid,
    /// What runs there: "coordinator", "standby", "segment".
    pub kind: String,
    pub datadir: String,
    /// The process that holds the data directory, if one does (`Some(0)` where processes have
    /// no number).
    pub pid: Option<u32>,
    /// Whether the data directory exists (`init` makes none over an existing one).
    #[serde(default)]
    pub exists: bool,
}

/// An agent's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentReply {
    Health {
        host: String,
        instances: Vec<InstanceReport>,
    },
    /// Done; the line says what happened ("dbid 3: started pid 812").
    Done(String),
    /// The host could not do it.
    Failed(HostError),
    /// Not a request this agent obeys (another host's instance, or a peer that may not ask
    /// it); nothing was changed.
    Refused(String),
}

/// Why a host could not start or stop an instance.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum HostError {
    /// The row names a host the cluster does not have.
    #[error("unknown host {0}")]
    UnknownHost(String),
    /// The host is down (its agent does not answer).
    #[error("host {0} is down")]
    Down(String),
    /// The row's address cannot be taken: `why` says what is wrong with it.
    #[error("address {address} {why}")]
    Address { address: String, why: String },
    /// The data directory belongs to an instance that still runs.
    #[error("{datadir} is in use by a running instance (pid {pid}); stop it first")]
    InUse { datadir: String, pid: u32 },
    /// The instance was started but did not listen in time.
    #[error("dbid {dbid} (pid {pid}) did not listen at {endpoint} within {secs} s; see {log}")]
    NotListening {
        dbid: u16,
        pid: u32,
        endpoint: String,
        secs: u64,
        log: String,
    },
    /// A step of making or starting the instance failed (`step` names it: "wipe ...",
    /// "start dbid 7", ...).
    #[error("cannot {step}: {detail}")]
    Failed { step: String, detail: String },
    /// The host's agent refused the request.
    #[error("the agent of host {host} refused: {why}")]
    Refused { host: String, why: String },
}
