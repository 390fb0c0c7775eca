//! The standby coordinator process: a walreceiver for the coordinator's catalog, and a
//! listener that refuses client work until `activate-standby` turns it into the coordinator.
//!
//! A fresh standby asks for a base backup, lays it down, opens its storage on it (recovery
//! replays to the backup's end) and then receives the WAL recorded meanwhile and from then on:
//! write, flush, report, replay — the segment mirror's discipline, for the catalog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn, Instrument};

use super::{
    not_active_message, BackupAssembly, CatalogStream, PassiveStatus, StandbyReply, StandbyRequest,
    STANDBY_WAL_TIMEOUT,
};
use crate::coordinator::{CoordinatorConfig, Services};
use crate::io::net::{self, Backoff, Connection, NetError};
use crate::io::runtime::{self, timeout, JoinHandle};
use crate::io::Disk;
use crate::model::catalog::Dbid;
use crate::storage::{base_backup, Engine, EngineOptions, StorageError};
use crate::wal::Lsn;
use crate::wire::{ClientRequest, ClientResponse, DbError, WalFeedback, WalMessage};

#[derive(Clone, Debug)]
pub struct StandbyConfig {
    pub dbid: Dbid,
    /// Where the standby listens (and, once activated, serves as the coordinator).
    pub listen_addr: String,
    /// The coordinator it streams from.
    pub coordinator_addr: String,
    /// The coordinator it becomes; `listen_addr` is overridden by the standby's own. Its
    /// `server_limits` hold the standby's listener too: the connections it accepts become the
    /// coordinator's sessions on activation.
    pub coordinator: CoordinatorConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum StandbyError {
    #[error("standby cannot listen: {0}")]
    Listen(NetError),
    #[error("standby storage: {0}")]
    Storage(#[from] StorageError),
    #[error("standby refuses to start: {0}")]
    Identity(#[from] crate::storage::identity::IdentityError),
}

enum StreamEnd {
    Net(NetError),
    Refused(String),
    Storage(StorageError),
}

pub(super) struct Shared {
    pub cfg: StandbyConfig,
    disk: Arc<dyn Disk>,
    pub engine: tokio::sync::Mutex<Option<Engine>>,
    streaming: AtomicBool,
    receiver: Mutex<Option<JoinHandle<()>>>,
    pub active: Mutex<Option<Services>>,
    /// The catalog as this standby took it over, from the moment an activation has done so
    /// until it serves as the coordinator: a deposed coordinator starting again asks for the
    /// catalog, and must learn of the new generation while the activation still resolves
    /// in-doubt transactions (standard seed 1748: 20 s during which the old coordinator,
    /// answered "not active", promoted and committed on instances the announcement missed).
    pub taken_over: Mutex<Option<crate::model::catalog::Catalog>>,
    /// Held while an activation runs, so two cannot.
    pub activating: tokio::sync::Mutex<()>,
}

/// Runs the standby until its listener fails; after activation, the coordinator.
pub async fn run(cfg: StandbyConfig, disk: Arc<dyn Disk>) -> Result<(), StandbyError> {
    let span = tracing::info_span!("standby", dbid = cfg.dbid, content = -1);
    async move {
        use crate::storage::identity::{Expected, Identity};
        let expected = Expected {
            cluster_id: cfg.coordinator.cluster_id,
            dbid: Some(cfg.dbid),
            content: -1,
        };
        Identity::read_expected(&*disk, "of the standby", expected)?;
        let mut server = net::Server::bind(&cfg.listen_addr, cfg.coordinator.server_limits)
            .await
            .map_err(StandbyError::Listen)?;
        let engine = if base_backup::present(&*disk) {
            Some(open_engine(&cfg, disk.clone()).await?)
        } else {
            None
        };
        info!(coordinator = %cfg.coordinator_addr, restored = engine.is_some(), "standby started");
        let shared = Arc::new(Shared {
            cfg,
            disk,
            engine: tokio::sync::Mutex::new(engine),
            streaming: AtomicBool::new(false),
            receiver: Mutex::new(None),
            active: Mutex::new(None),
            taken_over: Mutex::new(None),
            activating: tokio::sync::Mutex::new(()),
        });
        let task = runtime::spawn(shared.clone().receive_loop().in_current_span());
        *shared.receiver.lock().unwrap() = Some(task);
        loop {
            match server.accept().await {
                Ok(conn) => {
                    let shared = shared.clone();
                    runtime::spawn(shared.serve(conn).in_current_span());
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    runtime::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    .instrument(span)
    .await
}

async fn open_engine(cfg: &StandbyConfig, disk: Arc<dyn Disk>) -> Result<Engine, StorageError> {
    Engine::open(
        disk,
        EngineOptions {
            cache_blocks_max: cfg.coordinator.cache_blocks_max,
            wal_damage_taken_for_end: cfg.coordinator.bugs.wal_damage_taken_for_end,
            ..EngineOptions::default()
        },
    )
    .await
}

impl Shared {
    /// One client connection: standby verbs are answered, other work refused, until the
    /// standby is activated; from then on the connection is a coordinator session.
    async fn serve(self: Arc<Self>, pending: net::PendingConnection) {
        let Ok(mut conn) = pending.authenticate().await else {
            return;
        };
        self.cfg
            .coordinator
            .observe
            .report(crate::model::observe::Fact::Serving {
                server: crate::model::observe::ServerKind::Standby,
                peer: conn.peer().to_string(),
                identity: Some(conn.peer_identity()),
            });
        loop {
            let services = self.active.lock().unwrap().clone();
            if let Some(services) = services {
                services.serve_authenticated(conn);
                return;
            }
            let Ok(req) = conn.recv::<ClientRequest>().await else {
                return;
            };
            let from = conn.peer_identity();
            if let Err(refusal) = crate::protocol::roles::passive_standby_request(&req, from) {
                refusal.log(conn.peer());
                if conn
                    .send(&ClientResponse::Error(refusal.error()))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            let resp = match req {
                ClientRequest::Standby(StandbyRequest::Status) => {
                    ClientResponse::Standby(StandbyReply::Passive(self.passive_status().await))
                }
                ClientRequest::Standby(StandbyRequest::Activate) => {
                    match super::activate::activate(&self).await {
                        Ok(done) => ClientResponse::Standby(StandbyReply::Activated(done)),
                        Err(e) => ClientResponse::Standby(StandbyReply::Refused {
                            why: e.refusal(),
                            message: e.to_string(),
                        }),
                    }
                }
                ClientRequest::Catalog if self.taken_over.lock().unwrap().is_some() => {
                    let catalog = self.taken_over.lock().unwrap().clone();
                    ClientResponse::Catalog(catalog.expect("checked above"))
                }
                ClientRequest::Standby(_) => ClientResponse::Error(DbError::Failed(format!(
                    "{}; init-standby runs against the active coordinator",
                    not_active_message(&self.cfg.listen_addr)
                ))),
                _ => ClientResponse::NotActive(not_active_message(&self.cfg.listen_addr)),
            };
            if conn.send(&resp).await.is_err() {
                return;
            }
        }
    }

    async fn passive_status(&self) -> PassiveStatus {
        let engine = self.engine.lock().await;
        let (flushed_lsn, replayed_lsn) = match engine.as_ref() {
            Some(e) => (e.wal().flushed_lsn(), e.replay_lsn()),
            None => (0, 0),
        };
        PassiveStatus {
            dbid: self.cfg.dbid,
            coordinator: self.cfg.coordinator_addr.clone(),
            streaming: self.streaming.load(Ordering::Relaxed),
            flushed_lsn,
            replayed_lsn,
        }
    }

    /// Receives the catalog stream again after an activation that stopped it was refused
    /// (the old coordinator answers again): the engine it replayed goes back, and the stream
    /// resumes from its end.
    pub(super) async fn resume_receiving(self: &Arc<Self>, engine: Option<Engine>) {
        if let Some(mut engine) = engine {
            engine.receive_again();
            *self.engine.lock().await = Some(engine);
        }
        let mut receiver = self.receiver.lock().unwrap();
        if receiver.is_none() {
            *receiver = Some(runtime::spawn(
                self.clone().receive_loop().in_current_span(),
            ));
        }
    }

    /// Stops receiving (activation): the stream task ends at its next await.
    pub(super) fn stop_receiver(&self) {
        if let Some(task) = self.receiver.lock().unwrap().take() {
            task.abort();
        }
        self.streaming.store(false, Ordering::Relaxed);
    }

    async fn receive_loop(self: Arc<Self>) {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            backoff.wait().await;
            let end = self.receive_stream().await;
            self.streaming.store(false, Ordering::Relaxed);
            match end {
                StreamEnd::Storage(e) => {
                    warn!(error = %e, "standby storage failed; it receives no more");
                    return;
                }
                StreamEnd::Refused(reason) => {
                    warn!(%reason, "coordinator refused the standby's replication");
                    backoff.failed();
                    runtime::sleep(Duration::from_secs(2)).await;
                }
                StreamEnd::Net(e) => {
                    tracing::debug!(error = %e, "catalog stream ended");
                    backoff.failed();
                }
            }
        }
    }

    async fn receive_stream(&self) -> StreamEnd {
        let addr = self.cfg.coordinator_addr.clone();
        let mut conn = match Connection::connect(&addr, STANDBY_WAL_TIMEOUT).await {
            Ok(conn) => conn,
            Err(e) => return StreamEnd::Net(e),
        };
        // The catalog, and the epoch it carries, come only from the coordinator's software.
        let server = conn.peer_identity();
        if !crate::protocol::roles::is_coordinator(server) {
            return StreamEnd::Refused(format!(
                "{addr} answers as {server}, not as the coordinator: no catalog is taken from it"
            ));
        }
        let from = self
            .engine
            .lock()
            .await
            .as_ref()
            .map(|e| e.wal().flushed_lsn());
        let req = ClientRequest::Standby(StandbyRequest::StartReplication {
            dbid: self.cfg.dbid,
            from,
        });
        if let Err(e) = conn.send(&req).await {
            return StreamEnd::Net(e);
        }
        info!(coordinator = %addr, ?from, "streaming the catalog from the coordinator");
        let mut backup = BackupAssembly::default();
        loop {
            let give_up_after = crate::coordinator::mirroring::link::rules().give_up_after();
            let msg: CatalogStream = match timeout(give_up_after, conn.recv()).await {
                Ok(Ok(msg)) => msg,
                Ok(Err(e)) => return StreamEnd::Net(e),
                Err(_) => {
                    return StreamEnd::Net(NetError::Timeout {
                        peer: addr,
                        after: give_up_after,
                    })
                }
            };
            let restored = self.engine.lock().await.is_some();
            let out_of_order = match &msg {
                CatalogStream::BackupChunk { .. } | CatalogStream::BackupEnd { .. } => restored,
                CatalogStream::Wal(WalMessage::Refused { .. }) => false,
                CatalogStream::Wal(_) => !restored,
            };
            if out_of_order {
                return StreamEnd::Refused(
                    "the coordinator's stream does not start with exactly one base backup for a fresh standby".into(),
                );
            }
            let feedback = match msg {
                CatalogStream::BackupChunk { path, bytes } => {
                    // Acknowledged once the whole backup is down.
                    backup.chunk(path, bytes);
                    continue;
                }
                CatalogStream::BackupEnd { wal_end } => {
                    self.restore(std::mem::take(&mut backup).finish(wal_end))
                        .await
                }
                CatalogStream::Wal(WalMessage::Data { start, bytes }) => {
                    self.write_received(start, &bytes).await
                }
                CatalogStream::Wal(WalMessage::Keepalive { .. }) => self.position().await,
                CatalogStream::Wal(WalMessage::Refused { reason }) => {
                    return StreamEnd::Refused(reason)
                }
                // A segment stream's opening, never sent on the catalog's.
                CatalogStream::Wal(WalMessage::Start { .. }) => {
                    return StreamEnd::Refused(
                        "a segment WAL stream's start frame on the catalog stream".into(),
                    )
                }
            };
            let feedback = match feedback {
                Ok(f) => f,
                Err(e) => return StreamEnd::Storage(e),
            };
            self.streaming.store(true, Ordering::Relaxed);
            self.cfg
                .coordinator
                .observe
                .report(crate::model::observe::Fact::StandbyWalPositions {
                    flushed: feedback.flushed,
                    replayed: feedback.replayed,
                });
            if let Err(e) = conn.send(&feedback).await {
                return StreamEnd::Net(e);
            }
        }
    }

    /// Lays a base backup down and opens the storage on it.
    async fn restore(&self, backup: base_backup::BaseBackup) -> Result<WalFeedback, StorageError> {
        let mut engine = self.engine.lock().await;
        base_backup::restore(&*self.disk, &backup).await?;
        let opened = open_engine(&self.cfg, self.disk.clone()).await?;
        info!(
            wal_end = backup.wal_end,
            "base backup restored; catching up"
        );
        *engine = Some(opened);
        drop(engine);
        self.position().await
    }

    async fn position(&self) -> Result<WalFeedback, StorageError> {
        if self.cfg.coordinator.bugs.standby_acks_unflushed_wal {
            // The bug's receiver flushes what it already reported only when the stream is idle.
            let wal = self.wal().await;
            wal.flush_to(wal.end_lsn()).await?;
            let mut engine = self.engine.lock().await;
            let engine = engine
                .as_mut()
                .expect("checked by the caller: storage is open");
            engine.replay()?;
        }
        let engine = self.engine.lock().await;
        let engine = engine
            .as_ref()
            .expect("checked by the caller: storage is open");
        Ok(WalFeedback {
            flushed: engine.wal().flushed_lsn(),
            replayed: engine.replay_lsn(),
        })
    }

    async fn replay_lsn(&self) -> Lsn {
        let engine = self.engine.lock().await;
        engine
            .as_ref()
            .expect("checked by the caller: storage is open")
            .replay_lsn()
    }

    async fn wal(&self) -> Arc<crate::wal::Wal> {
        let engine = self.engine.lock().await;
        engine
            .as_ref()
            .expect("checked by the caller: storage is open")
            .wal()
    }

    /// Write, flush, then report: the coordinator's commits wait on the flushed position we
    /// send, so it never runs ahead of what is durable here. Then replay.
    async fn write_received(&self, start: Lsn, bytes: &[u8]) -> Result<WalFeedback, StorageError> {
        let end = start + bytes.len() as Lsn;
        let wal = {
            let mut engine = self.engine.lock().await;
            let engine = engine
                .as_mut()
                .expect("checked by the caller: storage is open");
            engine.receive_wal(start, bytes)?;
            engine.wal()
        };
        if self.cfg.coordinator.bugs.standby_acks_unflushed_wal {
            // Planted bug: report as flushed what is only written.
            let replayed = self.replay_lsn().await;
            return Ok(WalFeedback {
                flushed: end,
                replayed,
            });
        }
        let flushed = wal.flush_to(end).await?;
        let replayed = {
            let mut engine = self.engine.lock().await;
            let engine = engine
                .as_mut()
                .expect("checked by the caller: storage is open");
            engine.replay()?
        };
        Ok(WalFeedback { flushed, replayed })
    }
}
