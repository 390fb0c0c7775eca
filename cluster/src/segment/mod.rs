//! A segment instance: the primary or the mirror of one content.
//!
//! The primary serves transactions and streams its WAL to the mirror ([`walsender`]); in
//! synchronous mode it acknowledges a commit only once the mirror has flushed the commit record.
//! The mirror receives, flushes and replays WAL ([`walreceiver`]) and serves no queries until
//! the prober promotes it. An instance that meets a storage fault (a corrupt block, a failed
//! fsync) fails itself: it stops serving rather than serve bad or unacknowledged data.

mod followed;
mod peer;
mod rejoin;
pub use rejoin::StopSignal;
mod role_file;
mod session;
mod walreceiver;
mod walsender;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, info, warn, Instrument};

use crate::io::net;
use crate::io::runtime::{self, Instant, JoinHandle};
use crate::io::sync::Watch;
use crate::io::Disk;
use crate::model::bugs::PlantedBugs;
use crate::model::catalog::{epoch, Content, Dbid, Role};
use crate::model::observe::Fact;
use crate::protocol::replication::{Pair, Rules, Waiting};
use crate::storage::identity::{Expected, Identity, IdentityError};
use crate::storage::{Engine, EngineOptions, StorageError};
use crate::wal::{Lsn, Wal};
use crate::wire::{SegmentRequest, SegmentResponse};

/// How the primary waits for its mirror.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReplicationMode {
    /// A commit is acknowledged after the mirror flushed it (while synchronous waiting is on).
    #[default]
    Sync,
    /// A commit is acknowledged after the local flush; the mirror may lag.
    Async,
}

#[derive(Clone, Debug)]
pub struct InstanceConfig {
    /// The cluster the instance belongs to: its data directory's identity must name it.
    pub cluster_id: u64,
    pub dbid: Dbid,
    pub content: Content,
    /// Address to listen on, `ip:port`.
    pub listen_addr: String,
    /// The other half of the pair (`ip:port`): the primary a mirror streams from.
    pub peer_addr: Option<String>,
    /// The role of a fresh instance; a restarted one keeps the role recorded in its data.
    pub initial_role: Role,
    pub replication: ReplicationMode,
    pub mirror_down_grace_period: Duration,
    /// A replication stream with no message for this long is considered broken.
    pub wal_timeout: Duration,
    pub checkpoint_interval: Duration,
    pub cache_blocks_max: usize,
    /// What the instance's listener allows the peers it accepts.
    pub server_limits: net::ServerLimits,
    pub bugs: PlantedBugs,
    /// Read-only hooks for the simulator's checkers.
    pub observe: crate::model::observe::Observe,
    /// Raised to stop the instance (an administrator moving or removing it).
    pub stop: StopSignal,
}

impl InstanceConfig {
    pub fn new(
        dbid: Dbid,
        content: Content,
        listen_addr: impl Into<String>,
        initial_role: Role,
    ) -> InstanceConfig {
        InstanceConfig {
            cluster_id: 0,
            dbid,
            content,
            listen_addr: listen_addr.into(),
            peer_addr: None,
            initial_role,
            replication: ReplicationMode::Sync,
            mirror_down_grace_period: Duration::from_secs(30),
            wal_timeout: Duration::from_secs(10),
            checkpoint_interval: Duration::from_secs(30),
            cache_blocks_max: 256,
            server_limits: net::ServerLimits::segment(),
            bugs: PlantedBugs::none(),
            observe: Default::default(),
            stop: StopSignal::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("storage fault on dbid {dbid}: {source}")]
    Storage { dbid: Dbid, source: StorageError },
    #[error("dbid {dbid} cannot listen: {source}")]
    Listen { dbid: Dbid, source: net::NetError },
    #[error("dbid {dbid}: {reason}")]
    Failed { dbid: Dbid, reason: String },
    #[error("dbid {dbid} refuses to start: {source}")]
    Identity { dbid: Dbid, source: IdentityError },
}

/// What the primary knows of its mirror's replication stream.
#[derive(Clone, Copy, Debug)]
struct SenderState {
    /// Which stream is current, whether it is connected and whether the mirror caught up.
    pair: Pair,
    last_disconnect: Instant,
}

/// The synchronous waiting the in-sync rule ([`Pair::in_sync`]) weighs, from the primary's
/// replication mode and what its commits watch.
fn waiting(replication: ReplicationMode, sync: SyncState) -> Waiting {
    match replication {
        ReplicationMode::Async => Waiting::Never,
        ReplicationMode::Sync => Waiting::Synchronous {
            on: sync.syncrep,
            receiver_flushed: sync.mirror_flushed,
            acked_alone_upto: sync.acked_alone_upto,
        },
    }
}

/// What a commit waiting for the mirror watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SyncState {
    mirror_flushed: Lsn,
    syncrep: bool,
    /// The primary's flushed WAL when synchronous waiting last went back on: commits up to
    /// here may have been acknowledged without the mirror (Change Tracking), so the mirror is
    /// in sync again only once it has flushed this far.
    acked_alone_upto: Lsn,
}

/// A probe answered: the epoch it was stamped with and whether the answer said the mirror is
/// down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Answered {
    epoch: u64,
    mirror_down: bool,
}

impl Answered {
    /// Whether a SYNCREP_OFF stamped `epoch` may act, given `last`, the last probe this
    /// instance answered since it started; `stale(a, b)` is the fence's comparison (whether
    /// epoch `a` is older than `b`).
    ///
    /// The prober sends SYNCREP_OFF only on an answer saying the mirror is down, stamped no
    /// earlier than that probe. So it acts only if this instance's last answer said so, and the
    /// request is no older than that answer. Anything else is a copy delivered late or twice,
    /// decided on an answer this instance has since contradicted (the mirror came back; the
    /// catalog may already say the pair is in sync, in an epoch this instance has not yet heard
    /// of), or on an answer from before this instance started (its epoch fence starts afresh at
    /// a restart within a coordinator generation). Ignoring a genuine one costs a probe
    /// interval: the next probe finds waiting still on and the prober sends SYNCREP_OFF again.
    fn allows_syncrep_off(
        last: Option<Answered>,
        epoch: u64,
        stale: impl Fn(u64, u64) -> bool,
    ) -> bool {
        last.is_some_and(|a| a.mirror_down && !stale(epoch, a.epoch))
    }
}

struct State {
    role: Role,
    sender: SenderState,
    /// Set when the instance failed itself; every request is refused from then on.
    failed: Option<String>,
    /// The newest configuration epoch this instance follows (seen on a request or from its
    /// primary; kept on disk from one coordinator generation to the next).
    epoch: u64,
    /// The address of the last coordinator whose fenced request this instance obeyed (for the
    /// checkers).
    obeyed_from: Option<String>,
    receiver: Option<JoinHandle<()>>,
    /// A promotion is under way: a second PROMOTE arriving meanwhile (requests held up by a
    /// stall are delivered together) is ignored rather than promoting twice.
    promoting: bool,
    /// A recovery as a mirror began and its rewind is not yet durable (the role file says
    /// "recovering"): the WAL may end in records the primary never had, or be wiped, so the
    /// directory is promoted to nothing, as PostgreSQL refuses to promote a standby that has
    /// not reached its consistent recovery point.
    recovering: bool,
    /// The last probe this instance answered (see [`Answered::allows_syncrep_off`]).
    last_answer: Option<Answered>,
}

/// One running instance. Cheap to clone.
#[derive(Clone)]
pub struct Instance {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: InstanceConfig,
    disk: Arc<dyn Disk>,
    /// The data directory's identity; its system identifier is taken on at a new mirror's
    /// first copy.
    identity: Mutex<Identity>,
    /// Held while a newer coordinator generation is made durable.
    following: tokio::sync::Mutex<()>,
    engine: tokio::sync::Mutex<Engine>,
    wal: Arc<Wal>,
    state: Mutex<State>,
    sync: Watch<SyncState>,
    failure: Watch<Option<String>>,
    started: Instant,
}

/// Runs an instance until it fails. Opening the storage runs crash recovery. The returned error
/// says why the instance stopped (the process exits, or the simulated instance is gone).
pub async fn run(cfg: InstanceConfig, disk: Arc<dyn Disk>) -> Result<(), InstanceError> {
    let span = tracing::info_span!(
        "instance",
        dbid = cfg.dbid,
        content = cfg.content,
        role = tracing::field::Empty
    );
    async move {
        let dbid = cfg.dbid;
        let mut identity = check_identity(&cfg, &*disk).await?;
        let followed =
            followed::load(&*disk).map_err(|source| InstanceError::Storage { dbid, source })?;
        let mut server = net::Server::bind(&cfg.listen_addr, cfg.server_limits)
            .await
            .map_err(|source| InstanceError::Listen { dbid, source })?;
        let engine = recover_answering_starting(&cfg, disk.clone(), &mut server).await?;
        let stored = role_file::load_or_init(&*disk, cfg.initial_role)
            .await
            .map_err(|source| InstanceError::Storage { dbid, source })?;
        let role = stored.role();
        tracing::Span::current().record("role", role.code().to_string());
        if role == Role::Primary && identity.system_id.is_none() && engine.wal().flushed_lsn() == 0
        {
            // A primary with no WAL yet (made by init) starts the content's WAL history; its
            // mirror takes the identifier on at its first copy.
            identity.system_id = Some(crate::storage::identity::new_id(dbid as u64));
            identity
                .write(&*disk)
                .await
                .map_err(|source| InstanceError::Storage { dbid, source })?;
        }
        cfg.observe.report(Fact::Started {
            content: cfg.content,
            dbid,
            followed,
            fresh: engine.wal().flushed_lsn() == 0,
            primary_at: (role == Role::Primary).then(|| engine.wal().flushed_lsn()),
        });
        let instance = Instance::new(cfg, disk, engine, role, identity, followed);
        instance.inner.state.lock().unwrap().recovering = stored == role_file::Stored::Recovering;
        info!(role = ?role, flushed_lsn = instance.inner.wal.flushed_lsn(), "instance started");
        let mut tasks = vec![runtime::spawn(
            instance.clone().checkpoint_loop().in_current_span(),
        )];
        match stored {
            role_file::Stored::Role(Role::Mirror) => instance.start_receiver(),
            role_file::Stored::Recovering => warn!(
                "a recovery as a mirror was interrupted before its rewind finished: this \
                 instance does not stream until it is recovered again (recoverseg)"
            ),
            role_file::Stored::Role(Role::Primary) => {}
        }
        let server = runtime::spawn(instance.clone().accept_loop(server).in_current_span());
        tasks.push(server);
        let reason = instance.failed_or_stopped().await;
        for task in tasks {
            task.abort();
        }
        if let Some(receiver) = instance.inner.state.lock().unwrap().receiver.take() {
            receiver.abort();
        }
        warn!(%reason, "instance failed itself and stops serving");
        Err(InstanceError::Failed { dbid, reason })
    }
    .instrument(span)
    .await
}

/// Opens the storage engine (crash recovery) while answering every request on `server` with
/// "starting" and how far redo has gone, as a postmaster in recovery answers a probe: the
/// prober then leaves a primary alone while its recovery advances.
async fn recover_answering_starting(
    cfg: &InstanceConfig,
    disk: Arc<dyn Disk>,
    server: &mut net::Server,
) -> Result<Engine, InstanceError> {
    let replayed = Arc::new(AtomicU64::new(0));
    let opening = open_engine(cfg, disk, &replayed);
    tokio::pin!(opening);
    loop {
        tokio::select! {
            // In a fixed order: an unbiased select draws the order from a generator outside
            // the simulation's seed.
            biased;
            engine = &mut opening => return engine,
            accepted = server.accept() => {
                if let Ok(conn) = accepted {
                    runtime::spawn(answer_starting(conn, replayed.clone()).in_current_span());
                }
            }
        }
    }
}

/// Answers one request with "starting" and closes the connection (a postmaster in recovery
/// refuses the connection with the same news).
async fn answer_starting(pending: net::PendingConnection, replayed: Arc<AtomicU64>) {
    let Ok(mut conn) = pending.authenticate().await else {
        return;
    };
    if conn.recv::<SegmentRequest>().await.is_ok() {
        let replay_lsn = replayed.load(Ordering::Relaxed);
        let _ = conn.send(&SegmentResponse::Starting { replay_lsn }).await;
    }
}

/// Opens the storage engine (crash recovery runs here); a block found beyond the recovered WAL
/// is reported as a fact before the instance fails.
async fn open_engine(
    cfg: &InstanceConfig,
    disk: Arc<dyn Disk>,
    replayed: &AtomicU64,
) -> Result<Engine, InstanceError> {
    let dbid = cfg.dbid;
    Engine::open_reporting(
        disk,
        EngineOptions {
            cache_blocks_max: cfg.cache_blocks_max,
            replica_skips_deletes: cfg.bugs.mirror_skips_deletes,
            replica_replays_out_of_order: cfg.bugs.mirror_replays_out_of_order,
            evict_before_wal_flush: cfg.bugs.evict_before_wal_flush,
            wal_flush_covers_later_appends: cfg.bugs.wal_flush_covers_later_appends,
            retry_failed_fsync: cfg.bugs.fsync_error_retried,
            checkpoint_ignores_fsync_failure: cfg.bugs.checkpoint_ignores_fsync_failure,
            torn_page_unprotected: cfg.bugs.torn_page_unprotected,
            wal_damage_taken_for_end: cfg.bugs.wal_damage_taken_for_end,
            ..EngineOptions::default()
        },
        replayed,
    )
    .await
    .map_err(|source| {
        report_damage(cfg, &source);
        if let StorageError::BlockBeyondWal {
            file,
            block,
            page_lsn,
            wal_end,
        } = &source
        {
            cfg.observe.report(Fact::BlockBeyondWal {
                content: cfg.content,
                dbid,
                file: file.clone(),
                block: *block,
                page_lsn: *page_lsn,
                wal_end: *wal_end,
            });
        }
        InstanceError::Storage { dbid, source }
    })
}

/// Reports a table block that failed its checksum, for whoever watches.
fn report_damage(cfg: &InstanceConfig, err: &StorageError) {
    if let StorageError::Corrupt { file, block } = err {
        cfg.observe.report(Fact::BlockDamaged {
            content: cfg.content,
            dbid: cfg.dbid,
            file: file.clone(),
            block: *block,
        });
    }
}

/// Reads the data directory's identity before anything is touched: a directory that is
/// missing, empty, damaged or another instance's is refused, and nothing changes.
async fn check_identity(cfg: &InstanceConfig, disk: &dyn Disk) -> Result<Identity, InstanceError> {
    let dbid = cfg.dbid;
    let expected = Expected {
        cluster_id: cfg.cluster_id,
        dbid: Some(dbid),
        content: cfg.content,
    };
    let dir = format!("of dbid {dbid}");
    match Identity::read_expected(disk, &dir, expected) {
        Ok(identity) => Ok(identity),
        Err(IdentityError::Missing { .. }) if cfg.bugs.skip_identity_check => {
            // Planted bug: make the directory anew and serve it, as if it were new.
            warn!("no identity in the data directory: starting it anew");
            let identity = Identity {
                cluster_id: cfg.cluster_id,
                dbid,
                content: cfg.content,
                system_id: None,
            };
            identity
                .write(disk)
                .await
                .map_err(|source| InstanceError::Storage { dbid, source })?;
            Ok(identity)
        }
        Err(source) => {
            warn!(error = %source, "refusing to start");
            Err(InstanceError::Identity { dbid, source })
        }
    }
}

impl Instance {
    fn new(
        cfg: InstanceConfig,
        disk: Arc<dyn Disk>,
        engine: Engine,
        role: Role,
        identity: Identity,
        followed: u64,
    ) -> Instance {
        let wal = engine.wal();
        let now = Instant::now();
        // A primary configured with a mirror starts waiting for it (synchronous_standby_names
        // = '*'); the prober turns this off once the mirror is marked down.
        let syncrep = role == Role::Primary
            && cfg.peer_addr.is_some()
            && cfg.replication == ReplicationMode::Sync;
        let sync = Watch::new(SyncState {
            mirror_flushed: 0,
            syncrep,
            acked_alone_upto: 0,
        });
        let failure = Watch::new(None);
        Instance {
            inner: Arc::new(Inner {
                cfg,
                disk,
                identity: Mutex::new(identity),
                following: tokio::sync::Mutex::new(()),
                engine: tokio::sync::Mutex::new(engine),
                wal,
                state: Mutex::new(State {
                    role,
                    sender: SenderState {
                        pair: Pair::default(),
                        last_disconnect: now,
                    },
                    failed: None,
                    epoch: followed,
                    obeyed_from: None,
                    receiver: None,
                    promoting: false,
                    recovering: false,
                    last_answer: None,
                }),
                sync,
                failure,
                started: now,
            }),
        }
    }

    pub fn dbid(&self) -> Dbid {
        self.inner.cfg.dbid
    }

    fn role(&self) -> Role {
        self.inner.state.lock().unwrap().role
    }

    /// The instance fails itself: a storage fault must never be served around.
    fn fail(&self, reason: String) {
        let mut state = self.inner.state.lock().unwrap();
        if state.failed.is_none() {
            state.failed = Some(reason.clone());
            self.inner.failure.set(Some(reason));
        }
    }

    /// Why the instance failed itself, if it did.
    pub(super) fn failure(&self) -> Option<String> {
        self.inner.state.lock().unwrap().failed.clone()
    }

    fn storage_fault(&self, err: &StorageError) -> String {
        report_damage(&self.inner.cfg, err);
        let reason = format!("storage fault: {err}");
        self.fail(reason.clone());
        reason
    }

    async fn accept_loop(self, mut server: net::Server) {
        loop {
            match server.accept().await {
                Ok(conn) => {
                    runtime::spawn(self.clone().serve(conn).in_current_span());
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    runtime::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn serve(self, pending: net::PendingConnection) {
        let served = if self.inner.cfg.bugs.handshake_skipped_for_control {
            pending
                .authenticate_or_plain(|r: &SegmentRequest| {
                    matches!(
                        r,
                        SegmentRequest::Probe { .. }
                            | SegmentRequest::SyncrepOff { .. }
                            | SegmentRequest::Promote { .. }
                            | SegmentRequest::Rejoin { .. }
                    )
                })
                .await
        } else {
            pending.authenticate().await.map(|conn| (conn, None))
        };
        let Ok((mut conn, mut first)) = served else {
            return;
        };
        let mut session = session::Session::default();
        let peer = peer::Peer {
            addr: conn.peer().to_string(),
            identity: first.is_none().then(|| conn.peer_identity()),
        };
        self.inner.cfg.observe.report(Fact::Serving {
            server: crate::model::observe::ServerKind::Segment { dbid: self.dbid() },
            peer: peer.addr.clone(),
            identity: peer.identity,
        });
        loop {
            let received = match first.take() {
                Some(req) => Ok(req),
                None => conn.recv().await,
            };
            let req: SegmentRequest = match received {
                Ok(req) => req,
                Err(e) => {
                    if !matches!(e, net::NetError::Closed { .. }) {
                        tracing::debug!(error = %e, "connection dropped");
                    }
                    return;
                }
            };
            let failed = self.inner.state.lock().unwrap().failed.clone();
            if let Some(reason) = failed {
                let _ = conn
                    .send(&SegmentResponse::Error(crate::wire::DbError::Failed(
                        reason,
                    )))
                    .await;
                return;
            }
            if let Err(refusal) = self.allowed(&req, &peer) {
                if let SegmentRequest::StartReplication { .. } = req {
                    // The requester reads a WAL stream's frames.
                    let reason = refusal.to_string();
                    let _ = conn
                        .send(&crate::wire::WalMessage::Refused { reason })
                        .await;
                    return;
                }
                if conn
                    .send(&SegmentResponse::Error(refusal.error()))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            let resp = match req {
                SegmentRequest::StartReplication {
                    mirror_dbid,
                    from,
                    system_id,
                } => {
                    self.clone()
                        .stream_wal(conn, mirror_dbid, from, system_id)
                        .await;
                    return;
                }
                SegmentRequest::Probe { epoch, .. } => match self.fence(epoch, &peer).await {
                    Ok(()) => self.probe(epoch).await,
                    Err(refusal) => refusal,
                },
                SegmentRequest::SyncrepOff { epoch, .. } => match self.fence(epoch, &peer).await {
                    Ok(()) => self.syncrep_off(epoch),
                    Err(_) if self.inner.cfg.bugs.syncrep_off_skips_epoch_check => {
                        self.syncrep_off(epoch)
                    }
                    Err(refusal) => refusal,
                },
                SegmentRequest::Checksum => match self.checksum().await {
                    Some(resp) => resp,
                    None => return,
                },
                SegmentRequest::Promote { epoch, .. } => match self.fence(epoch, &peer).await {
                    Ok(()) => self.promote().await,
                    Err(refusal) => refusal,
                },
                SegmentRequest::Rejoin {
                    epoch,
                    primary,
                    full,
                } => match self.fence(epoch, &peer).await {
                    Ok(()) => self.rejoin(primary, full).await,
                    Err(refusal) => refusal,
                },
                SegmentRequest::WalSummary { upto } => self.wal_summary(upto).await,
                SegmentRequest::ReadWal { from, len } => self.read_wal_for_rejoin(from, len).await,
                SegmentRequest::ReplicationStatus => self.replication_status().await,
                other => match session.handle(&self, other, &peer).await {
                    Some(resp) => resp,
                    None => return, // a storage fault: the instance failed itself
                },
            };
            if conn.send(&resp).await.is_err() {
                return;
            }
        }
    }

    /// Fencing by configuration epoch: work stamped with an epoch older than the newest this
    /// instance follows comes from a decision the catalog has since replaced (a late message
    /// after a partition, a session routed by an old configuration), or from a coordinator an
    /// activated standby deposed (an older generation), and is refused. A newer epoch is
    /// followed from then on, if the coordinator sent it: from anyone else (the operator's
    /// tools reading the prepared list) it is only checked.
    async fn fence(&self, epoch: u64, from: &peer::Peer) -> Result<(), SegmentResponse> {
        let refuse = |followed: u64| SegmentResponse::Fenced {
            dbid: self.dbid(),
            epoch,
            followed,
        };
        let followed = self.epoch();
        if self.stale(epoch, followed) {
            return Err(refuse(followed));
        }
        if !from.moves_epoch() {
            return Ok(());
        }
        // Following a new generation waits for the disk; a newer request may be followed
        // meanwhile, so the check is made again where the epoch is taken.
        match self.follow(epoch).await {
            Ok(before) if self.stale(epoch, before) => return Err(refuse(before)),
            Ok(_) => {}
            Err(e) => {
                return Err(SegmentResponse::Error(crate::wire::DbError::Failed(
                    self.storage_fault(&e),
                )))
            }
        }
        self.obeyed(epoch, &from.addr);
        Ok(())
    }

    /// Whether `epoch` is older than `reference` (the fence's comparison).
    fn stale(&self, epoch: u64, reference: u64) -> bool {
        let bugs = self.inner.cfg.bugs;
        let older = if bugs.fence_compares_generations_only {
            epoch::generation(epoch) < epoch::generation(reference)
        } else {
            epoch < reference
        };
        older && !bugs.skip_epoch_check
    }

    /// Follows `epoch` if it is newer than the one followed, and returns the epoch followed
    /// just before (taken with the update, so a request that lost a race to a newer one sees
    /// it). A new coordinator generation is made durable before anything acts on it: once this
    /// instance has obeyed the new coordinator, no restart lets it obey the deposed one again.
    pub(super) async fn follow(&self, epoch: u64) -> Result<u64, StorageError> {
        let new_generation = |followed: u64| epoch::generation(epoch) > epoch::generation(followed);
        if new_generation(self.epoch()) {
            let _one = self.inner.following.lock().await;
            if new_generation(self.epoch()) {
                followed::store(&*self.inner.disk, epoch).await?;
                info!(
                    epoch = %epoch::describe(epoch),
                    generation = epoch::generation(epoch),
                    "following a new coordinator generation"
                );
            }
        }
        let mut state = self.inner.state.lock().unwrap();
        let before = state.epoch;
        state.epoch = before.max(epoch);
        Ok(before)
    }

    /// Reports a fenced request obeyed (every one, with its epoch), and whether it came from
    /// another coordinator (by address) than the last.
    fn obeyed(&self, epoch: u64, from: &str) {
        self.inner.cfg.observe.report(Fact::ObeyedEpoch {
            content: self.inner.cfg.content,
            dbid: self.dbid(),
            epoch,
        });
        let host = from.rsplit_once(':').map_or(from, |(host, _)| host);
        let mut state = self.inner.state.lock().unwrap();
        if state.obeyed_from.as_deref() != Some(host) {
            state.obeyed_from = Some(host.to_string());
            drop(state);
            self.inner.cfg.observe.report(Fact::Obeyed {
                content: self.inner.cfg.content,
                dbid: self.dbid(),
                epoch,
                from: host.to_string(),
            });
        }
    }

    /// The WAL history this instance holds.
    pub(super) fn system_id(&self) -> Option<u64> {
        self.inner.identity.lock().unwrap().system_id
    }

    /// Records the WAL history this instance now holds (taken on from its primary at a first
    /// copy, or forgotten before a full one), durably.
    pub(super) async fn set_system_id(&self, system_id: Option<u64>) -> Result<(), StorageError> {
        let identity = {
            let mut identity = self.inner.identity.lock().unwrap();
            identity.system_id = system_id;
            *identity
        };
        identity.write(&*self.inner.disk).await
    }

    /// The data digest and the WAL position it reflects; `None` if a storage fault failed the
    /// instance.
    async fn checksum(&self) -> Option<SegmentResponse> {
        let mut engine = self.inner.engine.lock().await;
        let lsn = match self.role() {
            Role::Primary => self.inner.wal.flushed_lsn(),
            Role::Mirror => engine.replay_lsn(),
        };
        match engine.data_digest() {
            Ok(digest) => Some(SegmentResponse::Checksum { lsn, digest }),
            Err(e) => {
                self.storage_fault(&e);
                None
            }
        }
    }

    /// Whether the mirror holds every commit this primary acknowledged: it caught up since it
    /// connected and, in synchronous mode, synchronous waiting is on and the mirror has flushed
    /// whatever was acknowledged without it while waiting was off. (In asynchronous mode a
    /// caught-up mirror counts as in sync: that mode accepts the loss.)
    fn mirror_in_sync(&self, sender: &SenderState) -> bool {
        sender
            .pair
            .in_sync(waiting(self.inner.cfg.replication, self.inner.sync.get()))
    }

    /// The rules of segment mirroring.
    fn replication_rules(&self) -> Rules {
        Rules::segment(self.inner.cfg.wal_timeout)
    }

    /// The newest configuration epoch this instance follows.
    pub(super) fn epoch(&self) -> u64 {
        self.inner.state.lock().unwrap().epoch
    }

    /// Answers the prober. Also does what the real probe handler does on the side: checks that
    /// the disk still writes and reads, and turns synchronous waiting back on once the mirror is
    /// up again. The answer is kept: a SYNCREP_OFF must have been decided on it.
    async fn probe(&self, epoch: u64) -> SegmentResponse {
        use crate::wire::ProbeReply;
        if let Err(e) = self.disk_check().await {
            return SegmentResponse::Error(crate::wire::DbError::Failed(format!(
                "disk IO check during FTS probe failed: {e}"
            )));
        }
        let mut state = self.inner.state.lock().unwrap();
        if state.role == Role::Mirror {
            return SegmentResponse::Probe(ProbeReply {
                is_mirror: true,
                ..ProbeReply::default()
            });
        }
        let sender = state.sender;
        let mirror_up = sender.pair.connected;
        state.last_answer = Some(Answered {
            epoch,
            mirror_down: !mirror_up,
        });
        if mirror_up
            && self.inner.cfg.replication == ReplicationMode::Sync
            && !self.inner.sync.get().syncrep
        {
            let flushed = self.inner.wal.flushed_lsn();
            info!(
                flushed,
                "mirror is up again: synchronous waiting on; in sync once it has flushed this far"
            );
            self.inner.sync.modify(|s| {
                s.syncrep = true;
                s.acked_alone_upto = s.acked_alone_upto.max(flushed);
            });
        }
        let since = sender.last_disconnect.max(self.inner.started);
        let request_retry = !mirror_up
            && Instant::now().saturating_duration_since(since)
                < self.inner.cfg.mirror_down_grace_period;
        SegmentResponse::Probe(ProbeReply {
            is_mirror: false,
            mirror_up,
            in_sync: mirror_up && self.mirror_in_sync(&sender),
            syncrep_enabled: self.inner.sync.get().syncrep,
            request_retry,
        })
    }

    async fn disk_check(&self) -> std::io::Result<()> {
        const PROBE_FILE: &str = "fts_probe_file.bak";
        let disk = &self.inner.disk;
        if !disk.exists(PROBE_FILE) {
            disk.create(PROBE_FILE)?;
        }
        disk.write_at(PROBE_FILE, 0, b"fts probe")?;
        if disk.read_at(PROBE_FILE, 0, 9)? != b"fts probe" {
            return Err(std::io::Error::other(
                "probe file reads back different bytes",
            ));
        }
        Ok(())
    }

    fn syncrep_off(&self, epoch: u64) -> SegmentResponse {
        if !self.inner.sync.get().syncrep {
            return SegmentResponse::Ok;
        }
        let last_answer = self.inner.state.lock().unwrap().last_answer;
        if self.inner.cfg.bugs.syncrep_off_skips_epoch_check
            || Answered::allows_syncrep_off(last_answer, epoch, |a, b| self.stale(a, b))
        {
            info!("mirror marked down: synchronous waiting off (change tracking)");
            self.inner.sync.modify(|s| s.syncrep = false);
        } else {
            debug!(
                epoch,
                ?last_answer,
                "SYNCREP_OFF not decided on this instance's last answer (mirror down): waiting stays on"
            );
        }
        SegmentResponse::Ok
    }

    /// Waits until the mirror has flushed `lsn`, or synchronous waiting is off.
    async fn wait_for_mirror(&self, lsn: Lsn) {
        if self.inner.cfg.replication == ReplicationMode::Async {
            return;
        }
        self.inner
            .sync
            .wait_until(|s| !s.syncrep || s.mirror_flushed >= lsn)
            .await;
    }

    async fn checkpoint_loop(self) {
        loop {
            runtime::sleep(self.inner.cfg.checkpoint_interval).await;
            // A mirror's WAL must stay byte-identical to its primary's, so only a primary
            // writes checkpoint records; a mirror replays from its last checkpoint on restart.
            // Its dirty blocks reach their places only through the double-write area, so it
            // writes them back on the same beat, or its cache would grow without bound.
            let result = if self.role() == Role::Primary {
                self.inner.engine.lock().await.checkpoint().await.map(drop)
            } else {
                self.inner
                    .engine
                    .lock()
                    .await
                    .write_back_dirty()
                    .await
                    .map(drop)
            };
            if let Err(e) = result {
                self.storage_fault(&e);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLDER: fn(u64, u64) -> bool = |a, b| a < b;

    fn answer(epoch: u64, mirror_down: bool) -> Option<Answered> {
        Some(Answered { epoch, mirror_down })
    }

    /// Standard seed 474: a SYNCREP_OFF delivered again after the mirror came back (waiting went
    /// back on at a probe answered with the mirror up; the catalog may since have recorded the
    /// pair in sync, in an epoch the primary has not heard of yet), stamped with that probe's
    /// epoch, leaves waiting on; one decided on a later answer that the mirror is down acts.
    #[test]
    fn a_syncrep_off_no_later_than_the_return_of_the_mirror_leaves_waiting_on() {
        let back = answer(11, false);
        assert!(!Answered::allows_syncrep_off(back, 11, OLDER));
        assert!(!Answered::allows_syncrep_off(back, 10, OLDER));
        let down_again = answer(12, true);
        assert!(Answered::allows_syncrep_off(down_again, 12, OLDER));
        assert!(Answered::allows_syncrep_off(down_again, 13, OLDER));
    }

    /// Standard seed 393: a primary restarted by its host's crash starts with synchronous
    /// waiting on, answers a probe that its mirror is back and in sync (the catalog then says
    /// in sync, in an epoch it has not heard of), and is then handed a late copy of the
    /// SYNCREP_OFF that marked the mirror down before the crash, stamped with the epoch of that
    /// probe. Waiting was never off, so nothing went back on, yet the answer already promised
    /// the mirror: the copy must leave waiting on. A mark-down decided on a later answer acts.
    #[test]
    fn a_syncrep_off_no_later_than_a_probe_answered_with_the_mirror_up_leaves_waiting_on() {
        assert!(!Answered::allows_syncrep_off(answer(16, false), 16, OLDER));
        assert!(Answered::allows_syncrep_off(answer(17, true), 17, OLDER));
        assert!(!Answered::allows_syncrep_off(answer(17, true), 16, OLDER));
    }

    /// Standard seed 569: a primary restarted by its host's crash follows no epoch yet (within
    /// a coordinator generation the fence starts afresh), and a SYNCREP_OFF from before the
    /// crash (epoch 11; the catalog has since said the pair is in sync, at 14) is delivered
    /// late before any probe: it leaves waiting on. Once the instance has answered that its
    /// mirror is down, a SYNCREP_OFF decided on that answer acts.
    #[test]
    fn a_syncrep_off_before_any_probe_answered_since_a_restart_leaves_waiting_on() {
        assert!(!Answered::allows_syncrep_off(None, 11, OLDER));
        assert!(!Answered::allows_syncrep_off(None, 14, OLDER));
        assert!(Answered::allows_syncrep_off(answer(14, true), 14, OLDER));
        assert!(!Answered::allows_syncrep_off(answer(14, true), 11, OLDER));
    }

    /// Swarm seed 167: a mirror that caught up once, then fell behind while its primary
    /// acknowledged commits alone, is not in sync when synchronous waiting goes back on; it is
    /// once it has flushed what was acknowledged without it.
    #[test]
    fn a_mirror_is_in_sync_only_past_what_was_acknowledged_without_it() {
        let sync = |mirror_flushed, syncrep| SyncState {
            mirror_flushed,
            syncrep,
            acked_alone_upto: 41_098,
        };
        let in_sync = |caught_up, mode, s| {
            let pair = Pair {
                caught_up,
                ..Pair::default()
            };
            pair.in_sync(waiting(mode, s))
        };
        let sync_mode = ReplicationMode::Sync;
        assert!(!in_sync(true, sync_mode, sync(37_576, true)));
        assert!(
            !in_sync(true, sync_mode, sync(41_098, false)),
            "waiting still off"
        );
        assert!(in_sync(true, sync_mode, sync(41_098, true)));
        assert!(
            !in_sync(false, sync_mode, sync(50_000, true)),
            "not caught up"
        );
        assert!(
            in_sync(true, ReplicationMode::Async, sync(0, false)),
            "asynchronous mode accepts the loss"
        );
    }
}
