//! The operator's standby verbs in randomized runs: `init-standby` (`-s HOST`, or `-n` to
//! resynchronize) against the acting coordinator, and the operator watching the coordinator
//! pair while faults are injected.

use std::time::Duration;

use cluster::client::Client;
use cluster::model::catalog::SegmentConfig;
use cluster::standby::admin::{self, InitMode, StandbyAdminError};
use cluster::standby::MirroringStatus;
use cluster::wire::agent::AgentRequest;

use super::harness::SimHosts;
use super::{Operator, OperatorAction};

/// `init-standby -s HOST` (`resync: false`, the data directory wiped first, as a new standby
/// needs an empty one) or `init-standby -n` (the standby on `host`, restarted on the data it
/// kept), run against the acting coordinator; waits up to `within` for Synchronized.
pub async fn init_standby(
    hosts: &SimHosts,
    host: &str,
    resync: bool,
    within: Duration,
    timeout: Duration,
) -> Result<MirroringStatus, StandbyAdminError> {
    let (standby, coordinator, addrs) = {
        let world = hosts.world.lock().unwrap();
        let standby =
            world
                .standby_host_on(&hosts.cfg, host)
                .ok_or_else(|| StandbyAdminError::Launch {
                    host: host.into(),
                    why: "not a coordinator host of this cluster".into(),
                })?;
        (
            standby,
            world.acting_coordinator_row(),
            world.coordinator_addrs(),
        )
    };
    if !resync {
        // The host becomes a standby's: the coordinator that ran there (an old one, deposed by
        // an activation) is stopped and never started there again.
        hosts.world.lock().unwrap().retire_coordinator(host);
    }
    let mode = admin::init_mode((!resync).then(|| standby.new_standby()), resync)?;
    let mut client = Client::new(addrs, timeout);
    let fresh = matches!(mode, InitMode::Add(_));
    let agent = crate::world::agents::agent_endpoint(host);
    let host = host.to_string();
    let launch = move |row: SegmentConfig| async move {
        if !fresh {
            // -n: the standby starts again on the data it kept.
            standby.launch(&row);
            return Ok(());
        }
        // -s: the host's agent makes the data directory and starts the standby.
        let endpoint = agent.ok_or_else(|| format!("host {host} has no agent"))?;
        let req = AgentRequest::StartStandby { row };
        cluster::agent::order(&host, &endpoint, &req, timeout)
            .await
            .map(|line| tracing::info!(%host, "{line}"))
            .map_err(|e| e.to_string())
    };
    admin::init_standby(&mut client, coordinator, mode, launch, within).await
}

/// The operator while faults are injected (runs with a standby host): every 0.5 to 3 s (a
/// seeded delay: an administrator is not instant) it looks and applies its coordinator rules
/// ([`Operator::decide`]), until the fault phase ends at `stop_at_ms`. Returns the operator,
/// with what it remembers, and what it did.
pub async fn watch(
    hosts: SimHosts,
    addrs: Vec<String>,
    timeout: Duration,
    stop_at_ms: u64,
    mut rng: rand_chacha::ChaCha8Rng,
) -> (
    crate::operator::Operator,
    Vec<crate::operator::OperatorAction>,
) {
    use rand_chacha::rand_core::Rng;
    let mut operator = Operator::new();
    operator.faults_running = true;
    let mut client = Client::new(addrs, timeout);
    let mut actions = Vec::new();
    loop {
        madsim::time::sleep(Duration::from_millis(500 + rng.next_u64() % 2500)).await;
        let at_ms = crate::workload::now_ms();
        if at_ms >= stop_at_ms {
            return (operator, actions);
        }
        // Some operators fence a lost coordinator before activating its standby; others follow
        // the README and leave the old coordinator to find out it was replaced.
        operator.fence_before_activation = rng.next_u32().is_multiple_of(2);
        if let Some((action, outcome)) = operator.act(&mut client, &hosts).await {
            actions.push(OperatorAction::new(at_ms, &action, outcome));
        }
    }
}
