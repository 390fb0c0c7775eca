//! A client session on the coordinator. Statements are forwarded to the acting primary of the
//! content that owns the row (one connection per content the transaction touches); the commit
//! follows [`crate::protocol::dtx::plan_commit`]: one phase where one content wrote, two-phase
//! commit where several did.
//!
//! The sessions keep their connections to the contents' primaries between transactions, in
//! common ([`Idle`]), as a dispatcher caches idle segment workers: the next transaction on a
//! content, of this session or another, begins on a kept connection, unless the catalog has
//! since named another primary.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use super::{
    call_primary, content_for_key, primary_call, CallError, CatalogStore, CoordinatorConfig,
    DtxState, OnFailover,
};
use crate::io::net::Connection;
use crate::io::runtime::{self, Instant};
use crate::model::catalog::{Catalog, Content, Role, Status};
use crate::protocol::dtx::{plan_commit, CommitPlan};
use crate::wire::StandbyRequest;
use crate::wire::{
    ClientRequest, ClientResponse, DbError, Op, OpResult, SegmentRequest, SegmentResponse,
};

pub(super) struct Session {
    cfg: Arc<CoordinatorConfig>,
    store: CatalogStore,
    dtx: Arc<DtxState>,
    txn: Option<Txn>,
    /// Idle connections to primaries that carried earlier transactions, the coordinator's
    /// sessions' in common.
    idle: Arc<Idle<Connection>>,
    /// The SQL layer's state: the transaction block and the settings.
    sql: super::sql::SqlState,
    /// Where the SQL client's cancel requests arrive.
    cancel: Arc<super::sql::CancelSignal>,
    /// Hidden row keys drawn in the open transaction.
    rows_drawn: (u64, u64),
}

/// A connection that knows where it leads.
pub(crate) trait Peer {
    fn peer_addr(&self) -> &str;
}

impl Peer for Connection {
    fn peer_addr(&self) -> &str {
        self.peer()
    }
}

/// The idle connections to the contents' primaries that the coordinator's sessions share, as
/// a dispatcher caches idle segment workers for the next gang: at most `cap` per content, the
/// least recently kept going first. A new session's first transaction on a content begins on
/// one, so a client that connects for each transaction costs no new segment connection (nor
/// its handshake).
pub(crate) struct Idle<V> {
    cap: usize,
    entries: std::sync::Mutex<BTreeMap<Content, std::collections::VecDeque<V>>>,
}

impl<V: Peer> Idle<V> {
    pub(crate) fn new(cap: usize) -> Idle<V> {
        Idle {
            cap,
            entries: Default::default(),
        }
    }

    /// Keeps `value` for `content`; drops the least recently kept beyond the cap.
    fn keep(&self, content: Content, value: V) {
        let mut entries = self.entries.lock().unwrap();
        let kept = entries.entry(content).or_default();
        kept.push_back(value);
        while kept.len() > self.cap {
            kept.pop_front();
        }
    }

    /// The most recently kept connection of `content` to `addr`; those to any other address
    /// (a primary the catalog no longer names) are dropped.
    fn take(&self, content: Content, addr: &str) -> Option<V> {
        let mut entries = self.entries.lock().unwrap();
        let kept = entries.get_mut(&content)?;
        kept.retain(|v| v.peer_addr() == addr);
        kept.pop_back()
    }
}

struct Participant {
    conn: Connection,
    /// The content whose acting primary `conn` reaches.
    content: Content,
    wrote: bool,
    /// Every call so far had its answer: the connection is in step and may carry the
    /// session's next transaction. One that failed or timed out may yet deliver a late answer.
    in_step: bool,
}

impl Participant {
    fn new(conn: Connection, content: Content) -> Participant {
        Participant {
            conn,
            content,
            wrote: false,
            in_step: true,
        }
    }

    /// A call that ends, as a lost primary, once `store`'s published catalog stops naming this
    /// participant's instance as its content's acting primary (see [`OnFailover`]).
    async fn call(
        &mut self,
        store: &CatalogStore,
        on_failover: OnFailover,
        req: &SegmentRequest,
        within: Duration,
    ) -> Result<SegmentResponse, CallError> {
        let answer = call_primary(
            store,
            on_failover,
            self.content,
            &mut self.conn,
            req,
            within,
        )
        .await;
        self.in_step &= answer.is_ok();
        answer
    }
}

/// How a `Begin` went.
enum Began {
    Yes(Box<Participant>),
    /// The instance follows a later epoch than the transaction's.
    Fenced {
        dbid: u16,
        followed: u64,
    },
    /// The instance answered and refused (no longer the primary, or a newer epoch).
    Refused(String),
    /// No answer: the connection is broken.
    Broken(String),
}

struct Txn {
    xid: u64,
    participants: BTreeMap<Content, Participant>,
    /// Every statement that succeeded, with its result, to run again after a failover.
    log: Vec<Statement>,
}

struct Statement {
    op: Op,
    content: Option<Content>,
    result: OpResult,
}

/// How a retried transaction's earlier statements went on the reconfigured segments.
enum Replay {
    Same,
    Differs(usize),
    Lost,
}

enum ExecError {
    /// The content's primary is gone (crashed, unreachable, or no longer the primary).
    Lost(String),
    /// The statement failed on its own terms, or the content is known to be down.
    Refused(DbError),
}

/// A primary refused a transaction's epoch: a later change the catalog will show in a moment
/// (the primary counts as lost, and the transaction is retried), or a later coordinator
/// generation, which deposes this coordinator.
async fn fenced(
    store: &CatalogStore,
    bugs: crate::model::bugs::PlantedBugs,
    content: Content,
    dbid: u16,
    epoch: u64,
    followed: u64,
) -> ExecError {
    let message = crate::wire::fenced_message(dbid, epoch, followed);
    if !bugs.coordinator_fence_off {
        let at = format!("dbid {dbid} (content {content})");
        if store.depose(followed, &at).await {
            return ExecError::Refused(DbError::Failed(format!(
                "content {content}: {message}; this coordinator no longer serves, connect to the acting one"
            )));
        }
    }
    ExecError::Lost(format!(
        "content {content}: cannot reach its primary: {message}"
    ))
}

/// Whether the coordinator obeys `req` from `conn`'s peer ([`crate::protocol::roles`]); a
/// refusal is logged with who asked.
fn allowed(conn: &Connection, req: &ClientRequest) -> Result<(), crate::protocol::roles::Refusal> {
    let from = conn.peer_identity();
    crate::protocol::roles::coordinator_request(req, from)
        .inspect_err(|refusal| refusal.log(conn.peer()))
}

fn failed(msg: impl Into<String>) -> ClientResponse {
    ClientResponse::Error(DbError::Failed(msg.into()))
}

impl Session {
    pub(super) fn new(
        cfg: Arc<CoordinatorConfig>,
        store: CatalogStore,
        dtx: Arc<DtxState>,
        idle: Arc<Idle<Connection>>,
    ) -> Session {
        Session {
            cfg,
            store,
            dtx,
            txn: None,
            idle,
            sql: Default::default(),
            cancel: Default::default(),
            rows_drawn: (0, 0),
        }
    }

    /// Keeps the connections of a finished transaction that are still in step for the
    /// sessions' next transactions, up to the configured number per content.
    fn keep(&mut self, participants: BTreeMap<Content, Participant>) {
        for (content, p) in participants {
            if p.in_step {
                self.idle.keep(content, p.conn);
            }
        }
    }

    pub(super) async fn serve(mut self, mut conn: Connection) {
        loop {
            let Ok(req) = conn.recv::<ClientRequest>().await else {
                self.abandon().await;
                return;
            };
            if let Err(refusal) = allowed(&conn, &req) {
                if let ClientRequest::Standby(StandbyRequest::StartReplication { .. }) = req {
                    // The requester reads a catalog stream's frames.
                    let reason = refusal.to_string();
                    let refused =
                        crate::wire::CatalogStream::Wal(crate::wire::WalMessage::Refused {
                            reason,
                        });
                    let _ = conn.send(&refused).await;
                    self.abandon().await;
                    return;
                }
                if conn
                    .send(&ClientResponse::Error(refusal.error()))
                    .await
                    .is_err()
                {
                    self.abandon().await;
                    return;
                }
                continue;
            }
            if let ClientRequest::Standby(StandbyRequest::StartReplication { dbid, from }) = req {
                self.abandon().await;
                let bugs = self.cfg.bugs;
                crate::coordinator::mirroring::sender::stream(
                    self.store.clone(),
                    conn,
                    dbid,
                    from,
                    bugs,
                )
                .await;
                return;
            }
            let resp = self.handle(req).await;
            if conn.send(&resp).await.is_err() {
                self.abandon().await;
                return;
            }
        }
    }

    async fn handle(&mut self, req: ClientRequest) -> ClientResponse {
        match req {
            ClientRequest::Sql { .. } if self.store.deposed().is_some() => {
                self.handle_request(req).await
            }
            ClientRequest::Sql { text } => {
                let results = self.sql_query(&text).await;
                ClientResponse::Sql {
                    results,
                    status: self.sql.status(),
                }
            }
            req => self.handle_request(req).await,
        }
    }

    /// Runs SQL text (the simple query protocol).
    pub(super) async fn sql_query(
        &mut self,
        text: &str,
    ) -> Vec<Result<crate::sql::Outcome, crate::sql::SqlError>> {
        let mut state = std::mem::replace(&mut self.sql, super::sql::SqlState::placeholder());
        let out = super::sql::simple_query(self, &mut state, text).await;
        self.sql = state;
        out
    }

    /// Runs one parsed statement with its parameters (the extended protocol's Execute).
    pub(super) async fn sql_execute(
        &mut self,
        stmt: Option<&crate::sql::Statement>,
        params: &[crate::sql::Datum],
    ) -> Result<crate::sql::Outcome, crate::sql::SqlError> {
        let Some(stmt) = stmt else {
            return Ok(crate::sql::Outcome::Empty);
        };
        let mut state = std::mem::replace(&mut self.sql, super::sql::SqlState::placeholder());
        let out = super::sql::execute(self, &mut state, stmt, params).await;
        self.sql = state;
        out
    }

    /// Parses one statement (the extended protocol's Parse); one that does not parse fails an
    /// open block, as any error in it does.
    pub(super) fn sql_parse(
        &mut self,
        text: &str,
    ) -> Result<Option<crate::sql::Statement>, crate::sql::SqlError> {
        super::sql::parse_one(text).inspect_err(|_| self.sql.fail_block())
    }

    pub(super) fn sql_describe(
        &self,
        stmt: Option<&crate::sql::Statement>,
    ) -> Result<crate::sql::Described, crate::sql::SqlError> {
        super::sql::describe(self, stmt)
    }

    pub(super) fn cancel_signal(&self) -> Arc<super::sql::CancelSignal> {
        self.cancel.clone()
    }

    pub(super) fn sql_status(&self) -> crate::sql::TxnStatus {
        self.sql.status()
    }

    /// Ends the session: an open transaction is rolled back.
    pub(super) async fn close(mut self) {
        self.abandon().await;
    }

    async fn handle_request(&mut self, req: ClientRequest) -> ClientResponse {
        if let Some(reason) = self.store.deposed() {
            // Clients move on to the next coordinator address they hold.
            self.txn = None;
            return ClientResponse::NotActive(reason);
        }
        match req {
            ClientRequest::Begin => {
                self.abandon().await;
                if let Some(content) = self.store.unmirrored_lost() {
                    return failed(format!("the system is not operational: content {content} failed and has no mirror; restart the cluster and recover it"));
                }
                let xid = self.dtx.next_xid.fetch_add(1, Ordering::Relaxed);
                self.txn = Some(Txn {
                    xid,
                    participants: BTreeMap::new(),
                    log: Vec::new(),
                });
                ClientResponse::Ok
            }
            ClientRequest::Exec { op, content } => self.exec(op, content).await,
            ClientRequest::Commit => self.commit().await,
            ClientRequest::Abort => {
                self.abandon().await;
                ClientResponse::Ok
            }
            ClientRequest::CreateTable { name, kind } => self.create_table(&name, kind, None).await,
            ClientRequest::Sql { .. } => failed("SQL is run by the session's SQL layer"),
            ClientRequest::Catalog => ClientResponse::Catalog(self.store.snapshot()),
            ClientRequest::Standby(req) => {
                crate::coordinator::mirroring::sender::handle(
                    &self.store,
                    &self.cfg.listen_addr,
                    req,
                )
                .await
            }
            ClientRequest::DistributedLog => match self.store.distributed_commits().await {
                Ok(log) => ClientResponse::DistributedLog(log.into_iter().collect()),
                Err(e) => failed(e.to_string()),
            },
            ClientRequest::Admin(req) => {
                let t = super::admin::Timeouts {
                    connect: self.cfg.connect_timeout,
                    call: self.cfg.statement_timeout,
                    bugs: self.cfg.bugs,
                };
                match Box::pin(super::admin::handle(&self.store, req, t)).await {
                    Ok(reply) => ClientResponse::Admin(reply),
                    Err(refusal) => failed(refusal.to_string()),
                }
            }
            ClientRequest::ConfigurationHistory => match self.store.history().await {
                Ok(rows) => ClientResponse::ConfigurationHistory {
                    rows,
                    epoch: self.store.epoch(),
                },
                Err(e) => failed(e.to_string()),
            },
        }
    }

    /// Rolls back the open transaction, if any, on every participant (best effort: a
    /// participant that is gone has lost the transaction anyway).
    async fn abandon(&mut self) {
        if let Some(mut txn) = self.txn.take() {
            for p in txn.participants.values_mut() {
                let _ = p
                    .call(
                        &self.store,
                        self.cfg.on_failover(),
                        &SegmentRequest::Abort,
                        self.cfg.statement_timeout,
                    )
                    .await;
            }
            self.keep(txn.participants);
        }
    }

    /// The acting primary's address for `content`, or the error a client should see.
    fn primary_of(&self, content: Content) -> Result<String, DbError> {
        self.store.read(|catalog| Session::route(catalog, content))
    }

    fn route(catalog: &Catalog, content: Content) -> Result<String, DbError> {
        // The common case first: a live primary answers at once, without looking at every
        // other content (a cost that grows with the cluster on every statement).
        if let Some(pair) = catalog.pair(content) {
            if pair.primary.status != Status::Down && pair.primary.role == Role::Primary {
                return Ok(pair.primary.endpoint());
            }
        }
        if catalog.contents().iter().all(|c| {
            catalog
                .pair(*c)
                .is_none_or(|p| p.primary.status == Status::Down)
        }) {
            return Err(DbError::Failed(
                "all segment databases are unavailable".into(),
            ));
        }
        let pair = catalog
            .pair(content)
            .ok_or_else(|| DbError::Failed(format!("content {content} does not exist")))?;
        if pair.primary.status == Status::Down || pair.primary.role != Role::Primary {
            return Err(DbError::Failed(format!(
                "content {content} is unavailable: no live instance"
            )));
        }
        Ok(pair.primary.endpoint())
    }

    async fn open_participant(
        &mut self,
        content: Content,
        xid: u64,
    ) -> Result<Participant, ExecError> {
        let addr = self.primary_of(content).map_err(ExecError::Refused)?;
        let epoch = self.store.epoch();
        let lost = |e: String| {
            ExecError::Lost(format!("content {content}: cannot reach its primary: {e}"))
        };
        if let Some(conn) = self.idle.take(content, &addr) {
            // A kept connection to the acting primary, given the time a new one would have had
            // to connect: it may have broken while it sat idle (its instance restarted, the
            // link was reset or cut), and then a new connection is tried as usual.
            let (store, on_failover) = (&self.store, self.cfg.on_failover());
            let within = self.cfg.connect_timeout;
            let began = Session::begin(store, on_failover, conn, content, xid, epoch, within).await;
            match began {
                Began::Yes(p) => return Ok(*p),
                Began::Fenced { dbid, followed } => {
                    let (store, bugs) = (&self.store, self.cfg.bugs);
                    return Err(fenced(store, bugs, content, dbid, epoch, followed).await);
                }
                Began::Refused(e) => return Err(lost(e)),
                Began::Broken(_) => {}
            }
        }
        let (store, on_failover) = (&self.store, self.cfg.on_failover());
        let within = self.cfg.statement_timeout;
        let connect = self.cfg.connect_timeout;
        let conn = super::connect_primary(store, on_failover, content, &addr, connect, within)
            .await
            .map_err(|e| lost(e.to_string()))?;
        let began = Session::begin(store, on_failover, conn, content, xid, epoch, within).await;
        match began {
            Began::Yes(p) => Ok(*p),
            Began::Fenced { dbid, followed } => {
                Err(fenced(&self.store, self.cfg.bugs, content, dbid, epoch, followed).await)
            }
            Began::Refused(e) | Began::Broken(e) => Err(lost(e)),
        }
    }

    async fn begin(
        store: &CatalogStore,
        on_failover: OnFailover,
        conn: Connection,
        content: Content,
        xid: u64,
        epoch: u64,
        within: Duration,
    ) -> Began {
        let mut p = Participant::new(conn, content);
        let req = SegmentRequest::Begin { xid, epoch };
        match p.call(store, on_failover, &req, within).await {
            Ok(SegmentResponse::Ok) => Began::Yes(Box::new(p)),
            Ok(SegmentResponse::Fenced { dbid, followed, .. }) => Began::Fenced { dbid, followed },
            // Refused at begin: an instance that is no longer the primary, or a newer epoch.
            Ok(SegmentResponse::Error(e)) => Began::Refused(e.to_string()),
            Ok(other) => Began::Refused(format!("unexpected answer to begin: {other:?}")),
            // Replaced: a new connection to the same instance would be cancelled too.
            Err(e @ CallError::Replaced { .. }) => Began::Refused(e.to_string()),
            Err(e @ CallError::Net(_)) => Began::Broken(e.to_string()),
        }
    }

    /// Runs one statement once. A lost primary is [`ExecError::Lost`]; an error the statement
    /// itself earned (a duplicate key) is [`ExecError::Refused`] and leaves the transaction open.
    async fn exec_once(
        &mut self,
        op: &Op,
        content: Option<Content>,
    ) -> Result<OpResult, ExecError> {
        let contents = self.store.read(|c| c.contents().len());
        let xid =
            self.txn.as_ref().map(|t| t.xid).ok_or_else(|| {
                ExecError::Refused(DbError::Failed("no transaction is open".into()))
            })?;
        let target = match (content, op.key()) {
            (Some(c), _) => c,
            (None, Some(key)) => content_for_key(key, contents),
            (None, None) => {
                return Err(ExecError::Refused(DbError::Failed(
                    "a scan names its content".into(),
                )))
            }
        };
        if !self
            .txn
            .as_ref()
            .expect("open")
            .participants
            .contains_key(&target)
        {
            let p = self.open_participant(target, xid).await?;
            self.txn
                .as_mut()
                .expect("open")
                .participants
                .insert(target, p);
        }
        let writes = matches!(
            op,
            Op::Insert { .. } | Op::Update { .. } | Op::Delete { .. }
        );
        let p = self
            .txn
            .as_mut()
            .expect("open")
            .participants
            .get_mut(&target)
            .expect("opened above");
        match p
            .call(
                &self.store,
                self.cfg.on_failover(),
                &SegmentRequest::Exec { op: op.clone() },
                self.cfg.statement_timeout,
            )
            .await
        {
            Ok(SegmentResponse::Result(r)) => {
                p.wrote |= writes;
                Ok(r)
            }
            Ok(SegmentResponse::Error(e)) => Err(ExecError::Refused(e)),
            Ok(other) => Err(ExecError::Refused(DbError::Failed(format!(
                "unexpected answer: {other:?}"
            )))),
            Err(e) => Err(ExecError::Lost(format!(
                "content {target}: lost the primary: {e}"
            ))),
        }
    }

    /// Records a statement that succeeded, to run again after a failover, and answers it.
    fn logged(&mut self, op: Op, content: Option<Content>, result: OpResult) -> ClientResponse {
        let txn = self.txn.as_mut().expect("open");
        txn.log.push(Statement {
            op,
            content,
            result: result.clone(),
        });
        ClientResponse::Result(result)
    }

    async fn exec(&mut self, op: Op, content: Option<Content>) -> ClientResponse {
        match self.exec_once(&op, content).await {
            Ok(result) => self.logged(op, content, result),
            Err(ExecError::Refused(e)) => {
                if self.txn.as_ref().is_some_and(|t| t.participants.is_empty())
                    || matches!(&e, DbError::Failed(m) if m.contains("unavailable"))
                {
                    self.abandon().await;
                }
                ClientResponse::Error(e)
            }
            Err(ExecError::Lost(why)) => self.retry_after_failover(op, content, why).await,
        }
    }

    /// Runs the statements of `log` again in the open transaction: the same results, a
    /// statement (numbered from 1) that returns something else, or a primary lost again.
    async fn replay(&mut self, log: &[Statement]) -> Replay {
        for (n, stmt) in log.iter().enumerate() {
            match self.exec_once(&stmt.op, stmt.content).await {
                Ok(result) if result == stmt.result => {}
                Err(ExecError::Lost(_)) => return Replay::Lost,
                Ok(_) | Err(ExecError::Refused(_)) => return Replay::Differs(n + 1),
            }
        }
        Replay::Same
    }

    /// A primary was lost in the middle of the transaction (it failed, or the connection to it
    /// did): roll it back everywhere, and run it again on the primaries the catalog names (after
    /// a failover, once the prober reconfigured the content).
    /// The client sees the statement's result only if every earlier statement returned exactly
    /// what it returned the first time; otherwise a clear error, never a partial result.
    async fn retry_after_failover(
        &mut self,
        op: Op,
        content: Option<Content>,
        why: String,
    ) -> ClientResponse {
        let log = self
            .txn
            .as_mut()
            .map(|t| std::mem::take(&mut t.log))
            .unwrap_or_default();
        self.abandon().await;
        let rolled_back =
            |detail: String| failed(format!("{why}; transaction rolled back{detail}"));
        let deadline = Instant::now() + self.cfg.statement_timeout;
        // The primary may have failed (the prober records the catalog flip, then promotes the
        // mirror), or only the connection may have been reset: run the transaction again, on
        // whatever the catalog names as each content's primary, until it goes through or the
        // statement timeout passes.
        let mut backoff = Duration::from_millis(100);
        loop {
            runtime::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            if Instant::now() >= deadline {
                return rolled_back(String::new());
            }
            let xid = self.dtx.next_xid.fetch_add(1, Ordering::Relaxed);
            self.txn = Some(Txn {
                xid,
                participants: BTreeMap::new(),
                log: Vec::new(),
            });
            match self.replay(&log).await {
                Replay::Same => break,
                Replay::Differs(n) => {
                    self.abandon().await;
                    return rolled_back(format!(
                        "; retried on the reconfigured segments, statement {n} no longer returns \
                         what it did"
                    ));
                }
                Replay::Lost => self.abandon().await,
            }
        }
        self.txn.as_mut().expect("open").log = log;
        debug!(
            xid = self.txn.as_ref().expect("open").xid,
            "transaction retried on the reconfigured segments"
        );
        match self.exec_once(&op, content).await {
            Ok(result) => self.logged(op, content, result),
            Err(ExecError::Refused(e)) => ClientResponse::Error(e),
            Err(ExecError::Lost(again)) => {
                self.abandon().await;
                failed(format!("{again}; transaction rolled back after one retry"))
            }
        }
    }

    async fn commit(&mut self) -> ClientResponse {
        let Some(mut txn) = self.txn.take() else {
            return failed("no transaction is open");
        };
        let wrote: BTreeMap<Content, bool> = txn
            .participants
            .iter()
            .map(|(c, p)| (*c, p.wrote))
            .collect();
        let resp = match plan_commit(&wrote) {
            CommitPlan::ReadOnly { readers } => {
                self.release(&mut txn, &readers).await;
                ClientResponse::Committed
            }
            CommitPlan::OnePhase { writer, readers } => {
                self.release(&mut txn, &readers).await;
                self.commit_one_phase(&mut txn, writer).await
            }
            CommitPlan::TwoPhase { writers, readers } => {
                self.dtx.in_flight.lock().unwrap().insert(txn.xid);
                let resp = self.commit_two_phase(&mut txn, &writers).await;
                self.dtx.in_flight.lock().unwrap().remove(&txn.xid);
                self.release(&mut txn, &readers).await;
                resp
            }
        };
        self.keep(txn.participants);
        resp
    }

    /// Ends the transaction where it only read.
    async fn release(&mut self, txn: &mut Txn, readers: &[Content]) {
        for c in readers {
            if let Some(p) = txn.participants.get_mut(c) {
                let _ = p
                    .call(
                        &self.store,
                        self.cfg.on_failover(),
                        &SegmentRequest::Commit,
                        self.cfg.statement_timeout,
                    )
                    .await;
            }
        }
    }

    async fn commit_one_phase(&mut self, txn: &mut Txn, content: Content) -> ClientResponse {
        let p = txn
            .participants
            .get_mut(&content)
            .expect("the writer is a participant");
        match p
            .call(
                &self.store,
                self.cfg.on_failover(),
                &SegmentRequest::Commit,
                self.cfg.statement_timeout,
            )
            .await
        {
            Ok(SegmentResponse::Committed { lsn }) => {
                debug!(content, lsn, xid = txn.xid, "committed");
                ClientResponse::Committed
            }
            Ok(SegmentResponse::Error(e)) => ClientResponse::Error(e),
            Ok(other) => ClientResponse::Error(DbError::Unknown(format!(
                "content {content}: unexpected answer to commit: {other:?}"
            ))),
            // The commit was sent: it may have been made durable before the connection broke,
            // or before the catalog replaced the primary (whose mirror then has it, or not).
            Err(e @ CallError::Replaced { .. }) => ClientResponse::Error(DbError::Unknown(
                format!("content {content}: lost the primary: {e}"),
            )),
            Err(e) => ClientResponse::Error(DbError::Unknown(format!("content {content}: {e}"))),
        }
    }

    async fn commit_two_phase(&mut self, txn: &mut Txn, writers: &[Content]) -> ClientResponse {
        let xid = txn.xid;
        // Phase 1: every writer prepares.
        let mut prepared = Vec::new();
        for (i, c) in writers.iter().enumerate() {
            // Planted bug: the last writer commits at once instead of preparing.
            let skip_prepare = self.cfg.bugs.commit_without_prepare && i + 1 == writers.len();
            let req = if skip_prepare {
                SegmentRequest::Commit
            } else {
                SegmentRequest::Prepare
            };
            let p = txn
                .participants
                .get_mut(c)
                .expect("writers are participants");
            // Cancelled because the catalog replaced the primary, a prepare fails as one that
            // timed out: the transaction is rolled back.
            let (store, on_failover) = (&self.store, self.cfg.on_failover());
            let answer = p
                .call(store, on_failover, &req, self.cfg.statement_timeout)
                .await;
            let reason = match answer {
                Ok(SegmentResponse::Ok | SegmentResponse::Committed { .. }) => {
                    prepared.push(*c);
                    continue;
                }
                Ok(SegmentResponse::Error(e)) => e.to_string(),
                Ok(other) => format!("unexpected answer to prepare: {other:?}"),
                Err(e) => e.to_string(),
            };
            self.abort_prepared(xid, &prepared).await;
            return failed(format!(
                "content {c} could not prepare: {reason}; transaction rolled back"
            ));
        }
        // The decision: durable on the coordinator before any writer hears "commit".
        let record = if self.cfg.bugs.lose_distributed_commit_record {
            Ok(())
        } else {
            self.store.record_distributed_commit(xid, writers).await
        };
        if let Err(e) = record {
            self.abort_prepared(xid, &prepared).await;
            return failed(format!(
                "the distributed-commit record could not be written: {e}; transaction rolled back"
            ));
        }
        // Phase 2: from here the transaction is committed; carry it out. The client hears
        // "committed" only once every writer has committed, so what it was told is visible;
        // the real system retries as long (dtx_phase2_retry_second) before giving up.
        let deadline = Instant::now() + self.cfg.dtx_phase2_retry;
        let mut pending = Vec::new();
        for c in writers {
            if !self.commit_prepared(txn, *c, deadline).await {
                pending.push(*c);
            }
        }
        if !pending.is_empty() {
            warn!(
                xid,
                ?pending,
                "commit prepared not acknowledged in time; the resolver will finish it"
            );
            return ClientResponse::Error(DbError::Unknown(format!(
                "the transaction is committed on the coordinator, but contents {pending:?} have not confirmed it yet"
            )));
        }
        if let Err(e) = self.store.forget_distributed_commit(xid).await {
            warn!(xid, error = %e, "could not forget a distributed commit; the resolver will");
        }
        ClientResponse::Committed
    }

    /// Sends COMMIT PREPARED to `content` until it answers or `deadline` passes: first on the
    /// transaction's connection, then to whichever instance the catalog names as the acting
    /// primary (the promoted mirror holds the prepared transaction after a failover).
    async fn commit_prepared(
        &mut self,
        txn: &mut Txn,
        content: Content,
        deadline: Instant,
    ) -> bool {
        // Stamped with the epoch current at each attempt: the catalog may move on while the
        // second phase is retried, and an instance refuses an epoch older than it follows.
        let xid = txn.xid;
        let req = |store: &CatalogStore| SegmentRequest::CommitPrepared {
            xid,
            epoch: store.epoch(),
        };
        // The transaction's own connection only while its instance is still the acting
        // primary: a deposed primary's commit may never reach the promoted mirror, and its
        // "done" would let the distributed commit be forgotten with the content still prepared.
        let acting = self
            .store
            .read(|c| c.pair(content).map(|p| p.primary.endpoint()));
        if let Some(p) = txn.participants.get_mut(&content) {
            if acting.as_deref() == Some(p.conn.peer()) {
                let req = req(&self.store);
                let (store, on_failover) = (&self.store, self.cfg.on_failover());
                // Cancelled once the catalog names another primary: the loop below goes there.
                let answer = p
                    .call(store, on_failover, &req, self.cfg.statement_timeout)
                    .await;
                if let Ok(SegmentResponse::Ok) = answer {
                    return true;
                }
            }
        }
        // A deposed coordinator retries no more: the activated standby resolves the
        // transaction, and the client, told the outcome is unknown, is not held for the whole
        // retry period (standard seed 882: a client of the old coordinator held 60 s kept the
        // operator from starting its recovery in time).
        while Instant::now() < deadline && self.store.deposed().is_none() {
            runtime::sleep(Duration::from_millis(200)).await;
            match primary_call(
                &self.store,
                content,
                &req(&self.store),
                self.cfg.connect_timeout,
                self.cfg.statement_timeout,
                self.cfg.on_failover(),
            )
            .await
            {
                Some(SegmentResponse::Ok) => return true,
                Some(SegmentResponse::Fenced { dbid, followed, .. }) => {
                    let seen_at = format!("dbid {dbid} (content {content})");
                    if self.store.depose(followed, &seen_at).await {
                        return false;
                    }
                }
                _ => {}
            }
        }
        false
    }

    /// Rolls prepared writers back; one that cannot be reached now is left to the resolver.
    async fn abort_prepared(&mut self, xid: u64, prepared: &[Content]) {
        for c in prepared {
            let req = SegmentRequest::AbortPrepared {
                xid,
                epoch: self.store.epoch(),
            };
            if !matches!(
                primary_call(
                    &self.store,
                    *c,
                    &req,
                    self.cfg.connect_timeout,
                    self.cfg.statement_timeout,
                    self.cfg.on_failover(),
                )
                .await,
                Some(SegmentResponse::Ok)
            ) {
                self.dtx.orphans.lock().unwrap().insert((*c, xid));
            }
        }
    }

    async fn create_table(
        &mut self,
        name: &str,
        kind: crate::wal::TableKind,
        schema: Option<crate::sql::TableSchema>,
    ) -> ClientResponse {
        let def = match self.store.table(name) {
            Some(def) if def.kind == kind && def.schema.as_deref() == schema.as_ref() => def,
            Some(_) => {
                return failed(format!(
                    "table \"{name}\" already exists with another storage kind"
                ))
            }
            None => match self.store.create_table(name, kind, schema).await {
                Ok(def) => def,
                Err(e) => return failed(e.to_string()),
            },
        };
        // Every content's primary records the table in its WAL (mirrors get it by streaming),
        // all at once, as a dispatcher sends a statement to every segment of its gang: one
        // content after another would cost the cluster's size times a synchronous commit.
        if let Err((content, why)) = self
            .dispatch_to_every_primary(SegmentRequest::CreateTable { def })
            .await
        {
            return failed(format!(
                "content {content}: create table \"{name}\" failed: {why}"
            ));
        }
        ClientResponse::Ok
    }

    /// Sends `req` to every content's acting primary at once; the first content that did
    /// not answer `Ok`, and why. Nothing is sent unless every content has an acting primary.
    async fn dispatch_to_every_primary(
        &mut self,
        req: SegmentRequest,
    ) -> Result<(), (Content, String)> {
        let contents = self.store.snapshot().contents();
        for content in &contents {
            if let Err(e) = self.primary_of(*content) {
                return Err((*content, e.to_string()));
            }
        }
        let calls: Vec<_> = contents
            .into_iter()
            .map(|content| {
                let store = self.store.clone();
                let req = req.clone();
                let (connect, statement) = (self.cfg.connect_timeout, self.cfg.statement_timeout);
                let on_failover = self.cfg.on_failover();
                let call = async move {
                    primary_call(&store, content, &req, connect, statement, on_failover).await
                };
                (content, runtime::spawn(call))
            })
            .collect();
        let mut first_failure = None;
        for (content, call) in calls {
            let why = match call.await.ok().flatten() {
                Some(SegmentResponse::Ok) => continue,
                Some(SegmentResponse::Error(e)) => e.to_string(),
                other => format!("{other:?}"),
            };
            first_failure.get_or_insert((content, why));
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// Drops a table: from the catalog first (from then on no statement finds it), then the
    /// storage on every content. A content the drop does not reach keeps the storage, which
    /// nothing reads, until a later drop or a new table of the same name reaches it.
    async fn drop_table(&mut self, name: &str) -> Result<(), DbError> {
        for content in self.store.snapshot().contents() {
            self.primary_of(content)?;
        }
        let (def, ids) = self.store.drop_table(name).await.map_err(|e| match e {
            super::catalog_store::CatalogStoreError::NoTable(_) => {
                DbError::Failed(format!("relation \"{name}\" does not exist"))
            }
            other => DbError::Failed(other.to_string()),
        })?;
        if let Err((content, why)) = self
            .dispatch_to_every_primary(SegmentRequest::DropTables { ids })
            .await
        {
            warn!(
                table = name,
                id = def.id,
                content,
                why,
                "table dropped from the catalog; the content keeps its storage until a later drop reaches it"
            );
        }
        Ok(())
    }
}

impl super::sql::Backend for Session {
    async fn call(&mut self, req: ClientRequest) -> ClientResponse {
        self.handle_request(req).await
    }

    fn table(&self, name: &str) -> Option<crate::model::data::TableDef> {
        self.store.table(name)
    }

    fn contents(&self) -> usize {
        self.store.read(|c| c.contents().len())
    }

    async fn create_table(
        &mut self,
        name: &str,
        schema: crate::sql::TableSchema,
    ) -> Result<(), DbError> {
        match Session::create_table(self, name, schema.kind, Some(schema)).await {
            ClientResponse::Ok => Ok(()),
            ClientResponse::Error(e) => Err(e),
            other => Err(DbError::Failed(format!("unexpected answer: {other:?}"))),
        }
    }

    async fn drop_table(&mut self, name: &str) -> Result<(), DbError> {
        Session::drop_table(self, name).await
    }

    fn row_number(&mut self) -> u64 {
        let xid = self.txn.as_ref().map_or(0, |t| t.xid);
        if self.rows_drawn.0 != xid {
            self.rows_drawn = (xid, 0);
        }
        self.rows_drawn.1 += 1;
        (xid << 20) ^ self.rows_drawn.1
    }

    fn cancel(&self) -> Option<Arc<super::sql::CancelSignal>> {
        Some(self.cancel.clone())
    }

    fn bugs(&self) -> crate::model::bugs::PlantedBugs {
        self.cfg.bugs
    }

    fn version(&self) -> String {
        format!(
            "PostgreSQL 15.0 (hacluster {}: a Greenplum-style cluster, {} contents)",
            env!("CARGO_PKG_VERSION"),
            self.store.read(|c| c.contents().len())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Idle, Peer};

    #[test]
    fn idle_connections_stay_under_the_cap_per_content_and_lead_to_the_acting_primary() {
        struct To(&'static str, u32);
        impl Peer for To {
            fn peer_addr(&self) -> &str {
                self.0
            }
        }
        let idle = Idle::new(2);
        idle.keep(0, To("a", 1));
        idle.keep(0, To("a", 2));
        idle.keep(0, To("a", 3)); // over the cap: the first goes
        idle.keep(1, To("b", 4));
        assert_eq!(
            idle.take(0, "a").map(|t| t.1),
            Some(3),
            "the most recent first"
        );
        assert_eq!(idle.take(0, "a").map(|t| t.1), Some(2));
        assert!(idle.take(0, "a").is_none(), "each taken once");
        idle.keep(1, To("b", 5));
        // The catalog named another primary for content 1: what led to the old one goes.
        assert!(idle.take(1, "c").is_none());
        assert!(idle.take(1, "b").is_none());
    }
}
