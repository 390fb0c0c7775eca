//! The verbs' [`Hosts`] over the hosts' agents: a new instance is made and started by the
//! agent of its host ([`crate::agent`]), as the seed utilities do over ssh, and an instance is
//! stopped the same way. Where each host's agent listens, and which host an address belongs
//! to, is the cluster's description ([`HostMap`]): the cluster file in production, the world
//! in the simulator.

use std::time::Duration;

use crate::agent;
use crate::model::catalog::SegmentConfig;
use crate::wire::agent::{AgentRequest, StopMode};

use super::driver::{HostError, Hosts};

/// What the verbs know of the hosts without asking them.
pub trait HostMap: Send + Sync {
    /// The host name of an address, if it is a known host.
    fn hostname_of(&self, address: &str) -> Option<String>;
    /// The address a new instance on `hostname` takes (see [`Hosts::new_address`]).
    fn new_address(&self, hostname: &str, nth: usize) -> Option<String>;
    /// Where the agent of `hostname` listens (`ip:port`).
    fn agent_of(&self, hostname: &str) -> Option<String>;
}

/// [`Hosts`] through the agents of the hosts `map` describes.
pub struct AgentHosts<M> {
    pub map: M,
    /// How long an agent may take to start an instance (it waits until the instance listens).
    pub within: Duration,
}

impl<M: HostMap> AgentHosts<M> {
    pub fn new(map: M) -> AgentHosts<M> {
        AgentHosts {
            map,
            within: Duration::from_secs(30),
        }
    }

    fn agent(&self, hostname: &str) -> Result<String, HostError> {
        self.map
            .agent_of(hostname)
            .ok_or_else(|| HostError::UnknownHost(hostname.to_string()))
    }
}

impl<M: HostMap> Hosts for AgentHosts<M> {
    fn hostname_of(&self, address: &str) -> Option<String> {
        self.map.hostname_of(address)
    }

    fn start_mirror(
        &self,
        row: &SegmentConfig,
        primary: &str,
    ) -> impl std::future::Future<Output = Result<(), HostError>> + Send {
        let endpoint = self.agent(&row.hostname);
        let (row, primary, within) = (row.clone(), primary.to_string(), self.within);
        async move {
            let host = row.hostname.clone();
            let req = AgentRequest::StartMirror { row, primary };
            let line = agent::order(&host, &endpoint?, &req, within).await?;
            tracing::info!(%host, "{line}");
            Ok(())
        }
    }

    fn stop_instance(&self, row: &SegmentConfig) -> impl std::future::Future<Output = ()> + Send {
        let endpoint = self.agent(&row.hostname);
        let (host, dbid, within) = (row.hostname.clone(), row.dbid, self.within);
        let req = AgentRequest::Stop {
            dbid,
            address: row.address.clone(),
            datadir: row.datadir.clone(),
            mode: StopMode::Fast,
        };
        async move {
            let stopped = match endpoint {
                Ok(endpoint) => agent::order(&host, &endpoint, &req, within).await,
                Err(e) => Err(e),
            };
            match stopped {
                Ok(line) => tracing::info!(%host, "{line}"),
                // An instance whose host cannot be reached is not running anywhere the verb
                // can see; the catalog no longer names it, and its host's agent will not
                // start it unless asked.
                Err(e) => tracing::warn!(%host, dbid, "cannot stop the instance: {e}"),
            }
        }
    }

    fn new_address(&self, hostname: &str, nth: usize) -> Option<String> {
        self.map.new_address(hostname, nth)
    }
}
