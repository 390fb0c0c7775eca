//! A host's agent: the one process of a host that starts, stops and reports the host's
//! instances, on behalf of the administration verbs (the seed utilities reach hosts over ssh;
//! here every verb asks the host's agent, over an authenticated connection).
//!
//! The agent decides nothing on its own: it restarts no instance unless asked (the prober and
//! the operator decide), and it obeys only the administration verbs, and only for instances
//! of its own host. How a host starts and stops a process is [`HostControl`]'s: real processes
//! in the production binary, simulated processes in the simulator; the protocol (who may ask
//! what, one change at a time, every refusal logged with the peer) is this module's, the same
//! in both worlds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn, Instrument};

use crate::io::auth::PeerIdentity;
use crate::io::net::{self, NetError, ServerLimits};
use crate::io::runtime;
use crate::model::catalog::{Dbid, SegmentConfig};
use crate::model::observe::{Fact, Observe, ServerKind};
use crate::protocol::roles;
use crate::wire::agent::{AgentReply, AgentRequest, HostError, InstanceReport, StopMode};

/// A boxed future of a [`HostControl`] call.
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a host starts, stops and lists its instance processes.
pub trait HostControl: Send + Sync + 'static {
    /// The host's instances (those its configuration places here) and whether each runs.
    fn instances(&self) -> HostFuture<'_, Vec<InstanceReport>>;
    /// Makes `row`'s data directory anew, records the instance, and starts it as an empty
    /// mirror streaming from `primary`; the line to report.
    fn start_mirror(
        &self,
        row: SegmentConfig,
        primary: String,
    ) -> HostFuture<'_, Result<String, HostError>>;
    /// Starts instance `dbid` from its data directory if it does not run; the line to report.
    fn start(&self, dbid: Dbid) -> HostFuture<'_, Result<String, HostError>>;
    /// Stops instance `dbid` running at `address` on `datadir`, if it runs there; the line to
    /// report. Refused when something else runs there.
    fn stop(
        &self,
        dbid: Dbid,
        address: String,
        datadir: String,
        mode: StopMode,
    ) -> HostFuture<'_, Result<String, HostError>>;
    /// Makes the data directory of instance `dbid` of this host, which must not exist; the
    /// line to report.
    fn make_data_directory(&self, dbid: Dbid) -> HostFuture<'_, Result<String, HostError>> {
        Box::pin(std::future::ready(Err(
            self.cannot(format!("make the data directory of dbid {dbid}"))
        )))
    }
    /// Makes `row`'s data directory, records it as the standby coordinator and starts it; the
    /// line to report.
    fn start_standby(&self, row: SegmentConfig) -> HostFuture<'_, Result<String, HostError>> {
        Box::pin(std::future::ready(Err(
            self.cannot(format!("start standby dbid {}", row.dbid))
        )))
    }
    /// Replaces the host's configuration with `text`, once checked; the line to report.
    fn write_config(&self, text: String) -> HostFuture<'_, Result<String, HostError>> {
        let _ = text;
        Box::pin(std::future::ready(Err(
            self.cannot("write the configuration".into())
        )))
    }
    /// Why a host cannot do `step`: a host whose instances are made with it (the simulator's
    /// hosts, built with their disks and configuration) keeps the default methods.
    fn cannot(&self, step: String) -> HostError {
        HostError::Failed {
            step,
            detail: "this host's instances and configuration are made with the host".into(),
        }
    }
}

/// An agent's settings.
#[derive(Clone)]
pub struct AgentConfig {
    /// The host it serves, as the cluster's configuration names it.
    pub host: String,
    /// Where it listens (`ip:port`).
    pub listen: String,
    pub observe: Observe,
}

struct Agent {
    cfg: AgentConfig,
    control: Arc<dyn HostControl>,
    /// One change of the host at a time, in the order asked.
    changing: tokio::sync::Mutex<()>,
    /// Set when asked to exit.
    exit: crate::io::sync::Watch<bool>,
}

/// Serves the agent at `cfg.listen` until asked to exit; an error if it cannot listen.
pub async fn run(cfg: AgentConfig, control: Arc<dyn HostControl>) -> Result<(), NetError> {
    let mut server = net::Server::bind(&cfg.listen, ServerLimits::agent()).await?;
    info!(host = %cfg.host, listen = %cfg.listen, "agent listening");
    let agent = Arc::new(Agent {
        cfg,
        control,
        changing: tokio::sync::Mutex::new(()),
        exit: crate::io::sync::Watch::new(false),
    });
    loop {
        let accepted = tokio::select! {
            biased;
            accepted = server.accept() => accepted,
            _ = agent.exit.wait_until(|e| *e) => {
                info!(host = %agent.cfg.host, "agent exits, as asked");
                return Ok(());
            }
        };
        match accepted {
            Ok(pending) => {
                runtime::spawn(agent.clone().serve(pending).in_current_span());
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                runtime::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Agent {
    async fn serve(self: Arc<Self>, pending: net::PendingConnection) {
        let Ok(mut conn) = pending.authenticate().await else {
            return;
        };
        let peer = conn.peer().to_string();
        let who = conn.peer_identity();
        self.cfg.observe.report(Fact::Serving {
            server: ServerKind::Agent,
            peer: peer.clone(),
            identity: Some(who),
        });
        loop {
            let req: AgentRequest = match conn.recv().await {
                Ok(req) => req,
                Err(_) => return,
            };
            let reply = match roles::agent_request(&req, who) {
                Ok(()) => self.handle(req).await,
                Err(refusal) => {
                    refusal.log(&peer);
                    AgentReply::Refused(refusal.to_string())
                }
            };
            let exit = matches!(reply, AgentReply::Done(ref d) if d == EXITING);
            if conn.send(&reply).await.is_err() {
                return;
            }
            if exit {
                self.exit.set(true);
                return;
            }
        }
    }

    async fn handle(&self, req: AgentRequest) -> AgentReply {
        let host = &self.cfg.host;
        if let AgentRequest::Health = req {
            return AgentReply::Health {
                host: host.clone(),
                instances: self.control.instances().await,
            };
        }
        let _one = self.changing.lock().await;
        let outcome = match req {
            AgentRequest::Health => unreachable!("answered above"),
            AgentRequest::Exit => return AgentReply::Done(EXITING.into()),
            AgentRequest::StartMirror { row, primary } => {
                if &row.hostname != host {
                    return AgentReply::Refused(format!(
                        "dbid {} is placed on host {}; this is the agent of host {host}",
                        row.dbid, row.hostname
                    ));
                }
                info!(dbid = row.dbid, %primary, "agent starts an empty mirror");
                self.control.start_mirror(row, primary).await
            }
            AgentRequest::Start { dbid } => match self.owns(dbid).await {
                Some(refusal) => return refusal,
                None => self.control.start(dbid).await,
            },
            AgentRequest::Stop {
                dbid,
                address,
                datadir,
                mode,
            } => self.control.stop(dbid, address, datadir, mode).await,
            AgentRequest::MakeDataDirectory { dbid } => match self.owns(dbid).await {
                Some(refusal) => return refusal,
                None => {
                    info!(dbid, "agent makes a data directory");
                    self.control.make_data_directory(dbid).await
                }
            },
            AgentRequest::StartStandby { row } => {
                if &row.hostname != host {
                    return AgentReply::Refused(format!(
                        "the standby dbid {} is placed on host {}; this is the agent of host {host}",
                        row.dbid, row.hostname
                    ));
                }
                info!(dbid = row.dbid, "agent starts a standby coordinator");
                self.control.start_standby(row).await
            }
            AgentRequest::WriteConfig { text } => {
                info!(bytes = text.len(), "agent writes the host's configuration");
                self.control.write_config(text).await
            }
        };
        match outcome {
            Ok(line) => AgentReply::Done(line),
            Err(e) => {
                warn!(error = %e, "agent request failed");
                AgentReply::Failed(e)
            }
        }
    }

    /// `None` when `dbid` is an instance of this host; the refusal otherwise.
    async fn owns(&self, dbid: Dbid) -> Option<AgentReply> {
        let ours = self
            .control
            .instances()
            .await
            .iter()
            .any(|i| i.dbid == dbid);
        (!ours).then(|| {
            AgentReply::Refused(format!(
                "dbid {dbid} is not an instance of host {}",
                self.cfg.host
            ))
        })
    }
}

/// What an agent answers to [`AgentRequest::Exit`].
pub const EXITING: &str = "agent exiting";

/// Asks the agent at `endpoint` (the agent of `host`) for `req`, waiting up to `within`. An
/// agent that cannot be reached is reported as its host being down.
pub async fn ask(
    host: &str,
    endpoint: &str,
    req: &AgentRequest,
    within: Duration,
) -> Result<AgentReply, HostError> {
    let down = |e: NetError| HostError::Failed {
        step: format!("reach the agent of host {host} at {endpoint}"),
        detail: e.to_string(),
    };
    let mut conn = net::Connection::connect(endpoint, within.min(Duration::from_secs(5)))
        .await
        .map_err(down)?;
    let expected = PeerIdentity::agent(host);
    if conn.peer_identity() != expected {
        return Err(HostError::Failed {
            step: format!("reach the agent of host {host} at {endpoint}"),
            detail: format!(
                "{} answers there, not the host's agent",
                conn.peer_identity()
            ),
        });
    }
    conn.call(req, within).await.map_err(down)
}

/// [`ask`] for a request that changes the host: `Done`'s line, or why not.
pub async fn order(
    host: &str,
    endpoint: &str,
    req: &AgentRequest,
    within: Duration,
) -> Result<String, HostError> {
    match ask(host, endpoint, req, within).await? {
        AgentReply::Done(line) => Ok(line),
        AgentReply::Failed(e) => Err(e),
        AgentReply::Refused(why) => Err(HostError::Refused {
            host: host.to_string(),
            why,
        }),
        other => Err(HostError::Failed {
            step: format!("ask the agent of host {host}"),
            detail: format!("unexpected answer {other:?}"),
        }),
    }
}
