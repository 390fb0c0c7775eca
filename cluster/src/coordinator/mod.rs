//! The coordinator: the clients' only entry point. It holds the catalog (and no user data),
//! routes each statement to the acting primary of the content that owns the row, and runs the
//! prober ([`prober`]), the driver of the pure FTS rules ([`crate::protocol::fts`]), and the
//! sending side of its catalog's mirroring to the standby ([`mirroring`]). It also carries out
//! the administration verbs ([`admin`]).

pub mod admin;
mod catalog_store;
pub mod mirroring;
pub mod prober;
pub(crate) mod resolver;
mod session;
pub(crate) mod sql;
pub use sql::CancelSignal;

pub use catalog_store::{CatalogStore, CatalogStoreError};

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn, Instrument};

use crate::io::net::{self, Connection};
use crate::io::runtime;
use crate::io::Disk;
use crate::model::bugs::PlantedBugs;
use crate::model::catalog::{Content, SegmentConfig};
use crate::storage::{Engine, EngineOptions};
use crate::wire::{SegmentRequest, SegmentResponse};
use prober::{ProbeSettings, Prober};

#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// The cluster the coordinator belongs to: its data directory's identity must name it.
    pub cluster_id: u64,
    pub listen_addr: String,
    /// The segment configuration a fresh coordinator starts from.
    pub segments: Vec<SegmentConfig>,
    pub probe: ProbeSettings,
    /// How long a statement may wait on a segment before the transaction is given up.
    pub statement_timeout: Duration,
    /// How long the second phase of a two-phase commit is retried before the client is told
    /// the outcome is unknown (the resolver keeps going).
    pub dtx_phase2_retry: Duration,
    pub connect_timeout: Duration,
    /// How many idle connections to each content's primary the coordinator keeps for its
    /// sessions' next transactions, the most recently used first (default 5), as Greenplum
    /// caches up to `gp_cached_segworkers_threshold` (5) idle workers per segment. Shared by
    /// the sessions, so idle connections stay at this many per content however many sessions
    /// come and go (madsim binds every new connection by scanning its host's ports from 1:
    /// tens of thousands of idle connections on the coordinator's host would make each
    /// connect cost their number).
    pub cached_segment_connections: usize,
    pub cache_blocks_max: usize,
    /// What the coordinator's listener allows the peers it accepts (clients, the standby's
    /// stream, administrative verbs).
    pub server_limits: net::ServerLimits,
    pub bugs: PlantedBugs,
    /// Where the catalog reports what it acts on (the simulator's checkers; off in production).
    pub observe: crate::model::observe::Observe,
    /// Called with the coordinator's [`Services`] once they run (a fresh coordinator at
    /// start-up, an activated standby once it has taken over): the production binary starts
    /// its SQL front door there.
    pub on_services: Option<ServicesHook>,
}

/// What a coordinator does with its [`Services`] once they run ([`CoordinatorConfig::on_services`]).
#[derive(Clone)]
pub struct ServicesHook(pub Arc<dyn Fn(&Services) + Send + Sync>);

impl ServicesHook {
    pub fn call(&self, services: &Services) {
        (self.0)(services)
    }
}

impl std::fmt::Debug for ServicesHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServicesHook")
    }
}

impl CoordinatorConfig {
    /// What a session's calls to a primary do when the catalog replaces it.
    pub(crate) fn on_failover(&self) -> OnFailover {
        if self.bugs.no_cancel_on_failover {
            OnFailover::Wait
        } else {
            OnFailover::Cancel
        }
    }

    pub fn new(listen_addr: impl Into<String>, segments: Vec<SegmentConfig>) -> CoordinatorConfig {
        CoordinatorConfig {
            cluster_id: 0,
            listen_addr: listen_addr.into(),
            segments,
            probe: ProbeSettings::default(),
            statement_timeout: Duration::from_secs(30),
            dtx_phase2_retry: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(2),
            cached_segment_connections: 5,
            cache_blocks_max: 64,
            server_limits: net::ServerLimits::coordinator(),
            bugs: PlantedBugs::none(),
            observe: Default::default(),
            on_services: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("coordinator cannot listen: {0}")]
    Listen(net::NetError),
    #[error("coordinator catalog: {0}")]
    Catalog(#[from] CatalogStoreError),
    #[error("coordinator storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("coordinator refuses to start: {0}")]
    Identity(#[from] crate::storage::identity::IdentityError),
    #[error("{0}")]
    Deposed(String),
}

/// Runs the coordinator until its listener fails, or it learns it was deposed.
pub async fn run(cfg: CoordinatorConfig, disk: Arc<dyn Disk>) -> Result<(), CoordinatorError> {
    let span = tracing::info_span!("coordinator", dbid = 1, content = -1);
    async move {
        use crate::storage::identity::{Expected, Identity};
        let expected = Expected {
            cluster_id: cfg.cluster_id,
            dbid: None,
            content: -1,
        };
        Identity::read_expected(&*disk, "of the coordinator", expected)?;
        let engine = Engine::open(
            disk,
            EngineOptions {
                cache_blocks_max: cfg.cache_blocks_max,
                wal_damage_taken_for_end: cfg.bugs.wal_damage_taken_for_end,
                ..EngineOptions::default()
            },
        )
        .await?;
        let store = CatalogStore::open(engine, &cfg.segments)
            .await?
            .observed(cfg.observe.clone());
        if !cfg.bugs.coordinator_fence_off {
            ask_standby_whether_replaced(&store, &cfg).await;
        }
        if let Some(reason) = store.deposed() {
            return Err(CoordinatorError::Deposed(reason));
        }
        store.report_recovered();
        if mirroring::link::configured_standby(&store.snapshot()).is_some() {
            store.standby_link().expect_standby(mirroring::STANDBY_WAL_TIMEOUT);
        }
        let mut server = net::Server::bind(&cfg.listen_addr, cfg.server_limits)
            .await
            .map_err(CoordinatorError::Listen)?;
        info!(epoch = %crate::model::catalog::epoch::describe(store.snapshot().epoch), "coordinator started");
        let hook = cfg.on_services.clone();
        let services = Services::start(cfg, store.clone(), 0);
        if let Some(hook) = hook {
            hook.call(&services);
        }
        loop {
            tokio::select! {
                accepted = server.accept() => match accepted {
                    Ok(conn) => services.serve(conn),
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        runtime::sleep(Duration::from_millis(100)).await;
                    }
                },
                reason = store.wait_deposed() => return Err(CoordinatorError::Deposed(reason)),
            }
        }
    }
    .instrument(span)
    .await
}

/// A coordinator starting again (a host reboot, a restart from the cluster file) first asks the
/// standby its catalog names whether it was activated meanwhile: if it answers as the
/// coordinator of a later generation, this one was deposed and must not serve. A standby that
/// does not answer settles nothing: the instances refuse a deposed coordinator anyway, and the
/// prober learns it from their refusals.
async fn ask_standby_whether_replaced(store: &CatalogStore, cfg: &CoordinatorConfig) {
    use crate::wire::{ClientRequest, ClientResponse};
    let standbys: Vec<SegmentConfig> = store.read(|c| {
        c.segments
            .values()
            .filter(|s| s.content == -1 && s.role == crate::model::catalog::Role::Mirror)
            .cloned()
            .collect()
    });
    for standby in standbys {
        let Ok(mut conn) = Connection::connect(&standby.endpoint(), cfg.connect_timeout).await
        else {
            continue;
        };
        if let Ok(ClientResponse::Catalog(catalog)) = conn
            .call::<_, ClientResponse>(&ClientRequest::Catalog, cfg.connect_timeout)
            .await
        {
            let at = format!(
                "the activated standby dbid {} at {}",
                standby.dbid,
                standby.endpoint()
            );
            store.depose(catalog.epoch, &at).await;
        }
    }
}

/// A running coordinator's background work (prober, in-doubt resolver) and what its client
/// sessions share. A fresh coordinator starts it at start-up; an activated standby once it has
/// taken over the catalog.
#[derive(Clone)]
pub struct Services {
    cfg: Arc<CoordinatorConfig>,
    store: CatalogStore,
    dtx: Arc<DtxState>,
    idle: Arc<session::Idle<Connection>>,
}

impl Services {
    /// Starts the prober and the resolver. Transaction ids start above `xid_floor` (an
    /// activated standby passes the highest id its predecessor may have used).
    pub fn start(cfg: CoordinatorConfig, store: CatalogStore, xid_floor: u64) -> Services {
        let prober = Prober::new(cfg.probe.clone(), store.clone(), cfg.bugs);
        runtime::spawn(prober.run().in_current_span());
        let cfg = Arc::new(cfg);
        // Transaction ids unique across sessions, and across restarts of the coordinator: they
        // start from the clock (milliseconds, shifted) at start-up and count up.
        let started_at = (runtime::unix_time_ms() << 16).max(xid_floor);
        let dtx = Arc::new(DtxState {
            next_xid: AtomicU64::new(started_at),
            started_at,
            in_flight: Default::default(),
            orphans: Default::default(),
        });
        runtime::spawn(
            resolver::run(
                store.clone(),
                dtx.clone(),
                cfg.probe.probe_interval,
                cfg.connect_timeout,
                cfg.statement_timeout,
                cfg.bugs,
            )
            .in_current_span(),
        );
        let idle = Arc::new(session::Idle::new(cfg.cached_segment_connections));
        Services {
            cfg,
            store,
            dtx,
            idle,
        }
    }

    /// Serves one client connection.
    /// Serves an accepted connection once it has authenticated.
    pub fn serve(&self, pending: net::PendingConnection) {
        let session = session::Session::new(
            self.cfg.clone(),
            self.store.clone(),
            self.dtx.clone(),
            self.idle.clone(),
        );
        let observe = self.cfg.observe.clone();
        runtime::spawn(
            async move {
                if let Ok(conn) = pending.authenticate().await {
                    observe.report(crate::model::observe::Fact::Serving {
                        server: crate::model::observe::ServerKind::Coordinator,
                        peer: conn.peer().to_string(),
                        identity: Some(conn.peer_identity()),
                    });
                    session.serve(conn).await;
                }
            }
            .in_current_span(),
        );
    }

    /// A SQL session on this coordinator, for a client of the front door (PostgreSQL's wire
    /// protocol): the same session and SQL layer a framed client's `Sql` request runs in.
    /// The planted bugs this coordinator runs with (none in production).
    pub fn bugs(&self) -> PlantedBugs {
        self.cfg.bugs
    }

    pub fn sql_connection(&self) -> SqlConnection {
        SqlConnection {
            session: session::Session::new(
                self.cfg.clone(),
                self.store.clone(),
                self.dtx.clone(),
                self.idle.clone(),
            ),
        }
    }

    /// Serves a connection that has already authenticated (the standby's, once it is active).
    pub fn serve_authenticated(&self, conn: Connection) {
        let session = session::Session::new(
            self.cfg.clone(),
            self.store.clone(),
            self.dtx.clone(),
            self.idle.clone(),
        );
        runtime::spawn(session.serve(conn).in_current_span());
    }
}

/// One SQL client's session on the coordinator ([`Services::sql_connection`]).
pub struct SqlConnection {
    session: session::Session,
}

impl SqlConnection {
    /// Runs the statements of `text` one after another (the simple query protocol): each
    /// statement's outcome, up to and including the first that fails.
    pub async fn simple_query(
        &mut self,
        text: &str,
    ) -> Vec<Result<crate::sql::Outcome, crate::sql::SqlError>> {
        self.session.sql_query(text).await
    }

    /// Parses one statement (the extended protocol's Parse); `None` for an empty text. One
    /// that does not parse fails an open transaction block.
    pub fn parse(
        &mut self,
        text: &str,
    ) -> Result<Option<crate::sql::Statement>, crate::sql::SqlError> {
        self.session.sql_parse(text)
    }

    /// A parsed statement's parameter types and result columns (Describe).
    pub fn describe(
        &self,
        stmt: Option<&crate::sql::Statement>,
    ) -> Result<crate::sql::Described, crate::sql::SqlError> {
        self.session.sql_describe(stmt)
    }

    /// Runs a parsed statement with its parameters (Bind and Execute).
    pub async fn execute(
        &mut self,
        stmt: Option<&crate::sql::Statement>,
        params: &[crate::sql::Datum],
    ) -> Result<crate::sql::Outcome, crate::sql::SqlError> {
        self.session.sql_execute(stmt, params).await
    }

    /// Where this connection's cancel requests go ([`CancelSignal::request`]).
    pub fn cancel_signal(&self) -> Arc<CancelSignal> {
        self.session.cancel_signal()
    }

    /// The transaction state `ReadyForQuery` reports.
    pub fn status(&self) -> crate::sql::TxnStatus {
        self.session.sql_status()
    }

    /// Ends the session, rolling back an open transaction.
    pub async fn close(self) {
        self.session.close().await
    }
}

/// Distributed-transaction state shared by the sessions and the resolver.
pub(crate) struct DtxState {
    pub next_xid: AtomicU64,
    /// The first transaction id of this coordinator's life.
    pub started_at: u64,
    /// Transactions a session is committing in two phases right now.
    pub in_flight: Mutex<BTreeSet<u64>>,
    /// Prepared transactions a session rolled back but could not reach to abort.
    pub orphans: Mutex<BTreeSet<(Content, u64)>>,
}

/// What a call to a content's acting primary does when the published catalog stops naming
/// that instance (the prober promoted the mirror, or the instance is marked down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnFailover {
    /// End at once, as a lost primary: a client sees the failover within the prober's
    /// detection time, not after the call's own timeout (a hung primary never answers).
    Cancel,
    /// Wait for the answer or the call's timeout.
    Wait,
}

/// Why a call to a content's primary ended without an answer.
#[derive(Debug)]
pub(crate) enum CallError {
    Net(net::NetError),
    /// The catalog replaced the instance while the call waited ([`OnFailover::Cancel`]).
    Replaced {
        peer: String,
        content: Content,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Net(e) => e.fmt(f),
            CallError::Replaced { peer, content } => write!(
                f,
                "{peer} is no longer the acting primary of content {content}; the call was cancelled"
            ),
        }
    }
}

/// Sends `req` over `conn`, a connection to `content`'s acting primary, and waits for the answer
/// up to `within`; with [`OnFailover::Cancel`], only as long as the published catalog names
/// `conn`'s peer the acting primary (checked at once, then at every change).
pub(crate) async fn call_primary(
    store: &CatalogStore,
    on_failover: OnFailover,
    content: Content,
    conn: &mut Connection,
    req: &SegmentRequest,
    within: Duration,
) -> Result<SegmentResponse, CallError> {
    if on_failover == OnFailover::Wait {
        return conn.call(req, within).await.map_err(CallError::Net);
    }
    let peer = conn.peer().to_string();
    tokio::select! {
        biased;
        answer = conn.call(req, within) => answer.map_err(CallError::Net),
        () = store.replaced(content, &peer) => Err(CallError::Replaced { peer, content }),
    }
}

/// A new connection to `addr`, `content`'s acting primary: the TCP connection within
/// `connect_timeout`, the handshake within `within` (the time the first request would have had
/// for its answer) and, with [`OnFailover::Cancel`], only as long as the published catalog names
/// `addr` the acting primary: a primary that accepts but hangs must not hold the caller past
/// the failover.
pub(crate) async fn connect_primary(
    store: &CatalogStore,
    on_failover: OnFailover,
    content: Content,
    addr: &str,
    connect_timeout: Duration,
    within: Duration,
) -> Result<Connection, CallError> {
    let connecting = Connection::connect_with(addr, connect_timeout, within);
    if on_failover == OnFailover::Wait {
        return connecting.await.map_err(CallError::Net);
    }
    tokio::select! {
        biased;
        conn = connecting => conn.map_err(CallError::Net),
        () = store.replaced(content, addr) => Err(CallError::Replaced {
            peer: addr.to_string(),
            content,
        }),
    }
}

/// One request to the acting primary of `content` as the catalog names it now, on a fresh
/// connection. `None` if it cannot be reached, does not answer in time, or (with
/// [`OnFailover::Cancel`]) stops being the acting primary first.
pub(crate) async fn primary_call(
    store: &CatalogStore,
    content: Content,
    req: &SegmentRequest,
    connect_timeout: Duration,
    call_timeout: Duration,
    on_failover: OnFailover,
) -> Option<SegmentResponse> {
    let addr = store.read(|c| c.pair(content).map(|p| p.primary.endpoint()))?;
    let mut conn = connect_primary(
        store,
        on_failover,
        content,
        &addr,
        connect_timeout,
        call_timeout,
    )
    .await
    .ok()?;
    call_primary(store, on_failover, content, &mut conn, req, call_timeout)
        .await
        .ok()
}

/// The content a key belongs to: a fixed hash of the key, modulo the number of contents.
pub fn content_for_key(key: i64, contents: usize) -> crate::model::catalog::Content {
    // splitmix64: a fixed, well-mixed hash, the same on every platform and in every run.
    let mut z = (key as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % contents.max(1) as u64) as crate::model::catalog::Content
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_spread_over_every_content() {
        let mut seen = [0usize; 8];
        for key in 0..8000 {
            seen[super::content_for_key(key, 8) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (800..1200).contains(n)), "{seen:?}");
        assert_eq!(super::content_for_key(42, 1), 0);
    }
}
