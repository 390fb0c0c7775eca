//! `activate-standby`: the standby becomes the coordinator.
//!
//! In order: refuse while the old coordinator still answers; stop receiving; replay every
//! whole committed transaction received and cut any torn tail (the coordinator's state at its
//! last committed transaction); take over the catalog with a new epoch (the standby's row
//! becomes the primary, the old coordinator's is marked down), so every segment follows the
//! new coordinator and refuses the old one; resolve the distributed transactions left in doubt
//! (COMMIT PREPARED where a commit record survives, ROLLBACK PREPARED for every other prepared
//! transaction); then start the prober and the resolver and serve clients. The order is the
//! activation machine's ([`crate::protocol::activation`]); this module carries out its steps,
//! the in-doubt resolution with the resolver's executor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::instance::Shared;
use super::{Activation, StandbyReply, StandbyRequest};
use crate::coordinator::resolver::{self, InDoubt, OnFenced};
use crate::coordinator::{CatalogStore, CatalogStoreError, Services};
use crate::io::net::Connection;
use crate::io::points::FaultPoint;
use crate::io::runtime;
use crate::model::catalog::{Content, Mode, Role, SegmentConfig, Status};
use crate::protocol::activation::{self as machine, Event, Next, Refusal, Step};
use crate::protocol::dtx::{resolve_in_doubt, Resolution};
use crate::storage::StorageError;
use crate::wal::Lsn;
use crate::wire::{ClientRequest, ClientResponse, SegmentRequest, SegmentResponse};

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("the coordinator at {0} is still alive and answering; activating the standby now would give the cluster two coordinators: stop it (or take its host down) first")]
    CoordinatorAlive(String),
    #[error("this standby is already activated: it is the coordinator")]
    AlreadyActive,
    #[error("this standby has no copy of the catalog yet (its base backup never arrived); it cannot become the coordinator")]
    NoCatalog,
    #[error("dbid {0} is not the standby in the replicated catalog")]
    NotTheStandby(u16),
    #[error("activation storage: {0}")]
    Storage(#[from] StorageError),
    #[error("activation catalog: {0}")]
    Catalog(#[from] CatalogStoreError),
}

impl ActivateError {
    pub fn refusal(&self) -> super::ActivateRefusal {
        match self {
            ActivateError::CoordinatorAlive(_) => super::ActivateRefusal::CoordinatorAlive,
            ActivateError::NotTheStandby(_) => super::ActivateRefusal::NotTheStandby,
            _ => super::ActivateRefusal::Other,
        }
    }
}

/// How long the old coordinator gets to answer before it counts as gone.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs activation's steps in the order [`machine::Activation`] gives them.
pub(super) async fn activate(shared: &Arc<Shared>) -> Result<Activation, ActivateError> {
    let _one = shared.activating.lock().await;
    let mut machine = machine::Activation::default();
    let mut run = Run {
        shared,
        end_lsn: 0,
        engine: None,
        store: None,
        epoch: 0,
        outcome: None,
    };
    loop {
        match machine.next() {
            Next::Run(step) => machine.record(run.step(step).await?),
            Next::Refuse(refusal) => {
                if refusal == Refusal::CoordinatorAlive {
                    // Asked right before the take-over: nothing is changed yet but the stream
                    // stopped, and it resumes.
                    shared.resume_receiving(run.engine.take()).await;
                }
                return Err(run.refusal(refusal));
            }
            Next::Activated => return Ok(run.report()),
        }
    }
}

/// What the steps so far produced, for the steps after them.
struct Run<'a> {
    shared: &'a Shared,
    /// The end of the valid WAL replayed ([`Step::ReplayToEnd`]).
    end_lsn: Lsn,
    engine: Option<crate::storage::Engine>,
    /// The catalog taken over, and its epoch ([`Step::TakeOver`]).
    store: Option<CatalogStore>,
    epoch: u64,
    outcome: Option<Resolved>,
}

impl Run<'_> {
    /// Carries out `step`; says what happened.
    async fn step(&mut self, step: Step) -> Result<Event, ActivateError> {
        let shared = self.shared;
        let cfg = &shared.cfg;
        match step {
            Step::CheckNotActive => {
                return Ok(Event::Active(shared.active.lock().unwrap().is_some()))
            }
            Step::CheckCatalog => {
                return Ok(Event::HasCatalog(shared.engine.lock().await.is_some()))
            }
            Step::ProbeOldCoordinator => {
                return Ok(Event::OldCoordinatorAnswered(
                    coordinator_answers(&cfg.coordinator_addr).await,
                ))
            }
            Step::StopReceiving => shared.stop_receiver(),
            Step::ReplayToEnd => {
                let mut engine = shared
                    .engine
                    .lock()
                    .await
                    .take()
                    .ok_or(ActivateError::NoCatalog)?;
                self.end_lsn = engine.end_of_valid_wal()?;
                engine.wal().flush_to(self.end_lsn).await?;
                self.engine = Some(engine);
                runtime::fault_point(FaultPoint::ActivationMidway).await;
            }
            Step::TakeOver => {
                let engine = self.engine.take().expect("replayed to the end first");
                let store = CatalogStore::open(engine, &[])
                    .await?
                    .observed(cfg.coordinator.observe.clone());
                self.epoch = take_over(
                    &store,
                    cfg.dbid,
                    !cfg.coordinator.bugs.coordinator_fence_off,
                )
                .await?;
                info!(
                    epoch = %crate::model::catalog::epoch::describe(self.epoch),
                    end_lsn = self.end_lsn, "activated: the standby is now the coordinator"
                );
                *shared.taken_over.lock().unwrap() = Some(store.snapshot());
                self.store = Some(store);
            }
            Step::Announce => announce(self.store(), &self.coordinator_config()).await,
            Step::ResolveInDoubt => {
                self.outcome = Some(resolve(self.store(), &self.coordinator_config()).await?);
            }
            Step::Serve => {
                let store = self.store.take().expect("taken over first");
                let xid_floor = self.outcome.as_ref().expect("resolved first").xid_floor;
                let cfg = self.coordinator_config();
                let hook = cfg.on_services.clone();
                let services = Services::start(cfg, store, xid_floor);
                if let Some(hook) = hook {
                    hook.call(&services);
                }
                *shared.active.lock().unwrap() = Some(services);
            }
        }
        Ok(Event::Done(step))
    }

    fn store(&self) -> &CatalogStore {
        self.store.as_ref().expect("taken over first")
    }

    /// The coordinator this standby becomes: listening where the standby does.
    fn coordinator_config(&self) -> crate::coordinator::CoordinatorConfig {
        let mut ccfg = self.shared.cfg.coordinator.clone();
        ccfg.listen_addr = self.shared.cfg.listen_addr.clone();
        ccfg
    }

    fn refusal(&self, refusal: Refusal) -> ActivateError {
        let cfg = &self.shared.cfg;
        match refusal {
            Refusal::AlreadyActive => ActivateError::AlreadyActive,
            Refusal::NoCatalog => ActivateError::NoCatalog,
            Refusal::CoordinatorAlive => {
                warn!(coordinator = %cfg.coordinator_addr, "activation refused: the coordinator still answers");
                ActivateError::CoordinatorAlive(cfg.coordinator_addr.clone())
            }
        }
    }

    fn report(self) -> Activation {
        let outcome = self.outcome.expect("resolved first");
        Activation {
            dbid: self.shared.cfg.dbid,
            epoch: self.epoch,
            end_lsn: self.end_lsn,
            committed: outcome.committed,
            aborted: outcome.aborted,
            unreached: outcome.unreached,
        }
    }
}

/// Whether the coordinator at `addr` still answers a request.
async fn coordinator_answers(addr: &str) -> bool {
    let Ok(mut conn) = Connection::connect(addr, PROBE_TIMEOUT).await else {
        return false;
    };
    let req = ClientRequest::Standby(StandbyRequest::Status);
    matches!(
        conn.call::<_, ClientResponse>(&req, PROBE_TIMEOUT).await,
        Ok(ClientResponse::Standby(StandbyReply::Status(_)))
    )
}

/// Tells every segment instance, primaries and mirrors, the new epoch at once (a probe, which
/// each instance fences and follows, keeping the new generation on disk): from then on none of
/// them obeys the deposed coordinator, should it start again. Best effort: an instance down
/// now learns it from its primary's stream or the prober's first request when it is back.
async fn announce(store: &CatalogStore, cfg: &crate::coordinator::CoordinatorConfig) {
    let catalog = store.snapshot();
    let calls: Vec<_> = catalog
        .segments
        .values()
        .filter(|s| s.content >= 0)
        .map(|s| {
            let req = SegmentRequest::Probe {
                dbid: s.dbid,
                content: s.content,
                epoch: catalog.epoch,
            };
            let (addr, connect, call) = (s.endpoint(), cfg.connect_timeout, cfg.connect_timeout);
            crate::io::runtime::spawn(async move {
                let mut conn = Connection::connect(&addr, connect).await.ok()?;
                conn.call::<_, SegmentResponse>(&req, call).await.ok()
            })
        })
        .collect();
    let mut told = 0;
    for call in calls {
        if let Ok(Some(SegmentResponse::Probe(_))) = call.await {
            told += 1;
        }
    }
    info!(
        told,
        instances = catalog.segments.values().filter(|s| s.content >= 0).count(),
        "new coordinator generation announced"
    );
}

/// The catalog change of activation, under the first epoch of the next coordinator generation
/// (see [`crate::model::catalog::epoch`]): the standby's row becomes the acting coordinator (content
/// -1, role p), every old coordinator row is marked down.
async fn take_over(
    store: &CatalogStore,
    dbid: u16,
    new_generation: bool,
) -> Result<u64, ActivateError> {
    let catalog = store.snapshot();
    let me = catalog
        .segments
        .get(&dbid)
        .filter(|s| s.content == -1 && s.role == Role::Mirror)
        .ok_or(ActivateError::NotTheStandby(dbid))?;
    let mut rows = vec![(
        SegmentConfig {
            role: Role::Primary,
            preferred_role: Role::Primary,
            mode: Mode::NotSynced,
            status: Status::Up,
            ..me.clone()
        },
        format!(
            "activatestandby: standby dbid {dbid} on host {} becomes the coordinator",
            me.hostname
        ),
    )];
    for old in catalog
        .segments
        .values()
        .filter(|s| s.content == -1 && s.role == Role::Primary)
    {
        rows.push((
            SegmentConfig {
                role: Role::Mirror,
                preferred_role: Role::Mirror,
                mode: Mode::NotSynced,
                status: Status::Down,
                ..old.clone()
            },
            format!(
                "activatestandby: old coordinator dbid {} on host {} marked down",
                old.dbid, old.hostname
            ),
        ));
    }
    // Planted bug `coordinator-fence-off`: the epoch count goes on in the old generation, so a
    // deposed coordinator's own changes reach epochs the instances obey.
    Ok(store.record_rows(&rows, new_generation).await?.epoch)
}

struct Resolved {
    committed: Vec<(u64, Content)>,
    aborted: Vec<(u64, Content)>,
    unreached: Vec<Content>,
    /// Above every transaction id the old coordinator used that is still visible anywhere.
    xid_floor: u64,
}

/// In-doubt resolution at activation: every prepared transaction on the segments belongs to
/// the old coordinator, so each one is committed if its commit record survived, and rolled
/// back otherwise, by the resolver's executor. What cannot be reached now is left to the
/// resolver, which keeps going.
async fn resolve(
    store: &CatalogStore,
    cfg: &crate::coordinator::CoordinatorConfig,
) -> Result<Resolved, ActivateError> {
    let timeouts = (cfg.connect_timeout, cfg.statement_timeout);
    let InDoubt {
        committed: records,
        prepared,
        unreached,
    } = resolver::in_doubt(store, timeouts.0, timeouts.1).await?;
    let xid_floor = records
        .keys()
        .chain(prepared.values().flatten())
        .max()
        .map_or(0, |g| g + 1);
    // Planted bug: decide as if no commit record had survived.
    let decided = if cfg.bugs.activation_ignores_commit_records {
        BTreeMap::new()
    } else {
        records.clone()
    };
    let actions = resolve_in_doubt(&decided, &prepared, &BTreeSet::new(), u64::MAX);
    let mut out = Resolved {
        committed: Vec::new(),
        aborted: Vec::new(),
        unreached,
        xid_floor,
    };
    let mut unfinished = BTreeSet::new();
    resolver::execute(
        store,
        actions,
        timeouts,
        OnFenced::Ignore,
        |action, done| match (*action, done) {
            (Resolution::CommitPrepared { content, gxid }, true) => {
                out.committed.push((gxid, content))
            }
            (Resolution::AbortPrepared { content, gxid }, true) => {
                out.aborted.push((gxid, content))
            }
            (_, false) => {
                unfinished.insert(action.target().1);
            }
        },
    )
    .await;
    for gxid in records.keys() {
        if !unfinished.contains(gxid) && out.unreached.is_empty() {
            store.forget_distributed_commit(*gxid).await?;
        }
    }
    info!(
        committed = out.committed.len(),
        aborted = out.aborted.len(),
        unreached = ?out.unreached,
        "in-doubt distributed transactions resolved at activation"
    );
    Ok(out)
}
