//! A client session on the coordinator. A transaction runs on the content its first statement
//! routes to (single-content transactions; several contents need two-phase commit, which the
//! dispatcher refuses for now with a clear error). Statements are forwarded to the content's
//! acting primary as the catalog names it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::debug;

use super::{content_for_key, CatalogStore, CoordinatorConfig};
use crate::catalog::{Content, Role, Status};
use crate::io::net::Connection;
use crate::proto::{ClientRequest, ClientResponse, DbError, Op, SegmentRequest, SegmentResponse};

pub(super) struct Session {
    cfg: Arc<CoordinatorConfig>,
    store: CatalogStore,
    txn: Option<Txn>,
    xids: Arc<AtomicU64>,
}

struct Txn {
    xid: u64,
    /// The content and the open connection to its primary, once a statement ran.
    segment: Option<(Content, Connection)>,
}

fn failed(msg: impl Into<String>) -> ClientResponse {
    ClientResponse::Error(DbError::Failed(msg.into()))
}

impl Session {
    pub(super) fn new(
        cfg: Arc<CoordinatorConfig>,
        store: CatalogStore,
        xids: Arc<AtomicU64>,
    ) -> Session {
        Session {
            cfg,
            store,
            txn: None,
            xids,
        }
    }

    pub(super) async fn serve(mut self, mut conn: Connection) {
        loop {
            let Ok(req) = conn.recv::<ClientRequest>().await else {
                return;
            };
            let resp = self.handle(req).await;
            if conn.send(&resp).await.is_err() {
                return;
            }
        }
    }

    async fn handle(&mut self, req: ClientRequest) -> ClientResponse {
        match req {
            ClientRequest::Begin => {
                let xid = self.xids.fetch_add(1, Ordering::Relaxed);
                self.txn = Some(Txn { xid, segment: None });
                ClientResponse::Ok
            }
            ClientRequest::Exec { op, content } => self.exec(op, content).await,
            ClientRequest::Commit => self.commit().await,
            ClientRequest::Abort => {
                if let Some(Txn {
                    segment: Some((_, mut conn)),
                    ..
                }) = self.txn.take()
                {
                    let _ = conn
                        .call::<_, SegmentResponse>(
                            &SegmentRequest::Abort,
                            self.cfg.statement_timeout,
                        )
                        .await;
                }
                ClientResponse::Ok
            }
            ClientRequest::CreateTable { name, kind } => self.create_table(&name, kind).await,
            ClientRequest::Catalog => ClientResponse::Catalog(self.store.snapshot()),
        }
    }

    /// The acting primary's address for `content`, or the error a client should see.
    fn primary_of(&self, content: Content) -> Result<String, DbError> {
        let catalog = self.store.snapshot();
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

    async fn exec(&mut self, op: Op, content: Option<Content>) -> ClientResponse {
        let contents = self.store.snapshot().contents().len();
        let Some(txn) = self.txn.as_mut() else {
            return failed("no transaction is open");
        };
        let target = match (content, op.key()) {
            (Some(c), _) => c,
            (None, Some(key)) => content_for_key(key, contents),
            (None, None) => return failed("a scan names its content"),
        };
        if let Some((open, _)) = &txn.segment {
            if *open != target {
                return failed(format!("transaction touches content {open} and content {target}; multi-content transactions need two-phase commit"));
            }
        }
        if txn.segment.is_none() {
            let xid = txn.xid;
            let addr = match self.primary_of(target) {
                Ok(addr) => addr,
                Err(e) => return ClientResponse::Error(e),
            };
            let opened = async {
                let mut conn = Connection::connect(&addr, self.cfg.connect_timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                match conn
                    .call::<_, SegmentResponse>(
                        &SegmentRequest::Begin { xid },
                        self.cfg.statement_timeout,
                    )
                    .await
                {
                    Ok(SegmentResponse::Ok) => Ok(conn),
                    Ok(other) => Err(format!("unexpected answer to begin: {other:?}")),
                    Err(e) => Err(e.to_string()),
                }
            };
            match opened.await {
                Ok(conn) => self.txn.as_mut().expect("open").segment = Some((target, conn)),
                Err(e) => {
                    self.txn = None;
                    return failed(format!(
                        "content {target}: cannot reach its primary: {e}; transaction rolled back"
                    ));
                }
            }
        }
        let txn = self.txn.as_mut().expect("open");
        let (_, conn) = txn.segment.as_mut().expect("connected above");
        match conn
            .call::<_, SegmentResponse>(&SegmentRequest::Exec { op }, self.cfg.statement_timeout)
            .await
        {
            Ok(SegmentResponse::Result(r)) => ClientResponse::Result(r),
            Ok(SegmentResponse::Error(e)) => ClientResponse::Error(e),
            Ok(other) => failed(format!("unexpected answer: {other:?}")),
            Err(e) => {
                self.txn = None;
                failed(format!(
                    "content {target}: lost the primary: {e}; transaction rolled back"
                ))
            }
        }
    }

    async fn commit(&mut self) -> ClientResponse {
        let Some(txn) = self.txn.take() else {
            return failed("no transaction is open");
        };
        let Some((content, mut conn)) = txn.segment else {
            return ClientResponse::Committed;
        };
        match conn
            .call::<_, SegmentResponse>(&SegmentRequest::Commit, self.cfg.statement_timeout)
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
            // The commit was sent: it may have been made durable before the connection broke.
            Err(e) => ClientResponse::Error(DbError::Unknown(format!("content {content}: {e}"))),
        }
    }

    async fn create_table(&mut self, name: &str, kind: crate::wal::TableKind) -> ClientResponse {
        let def = match self.store.table(name) {
            Some(def) if def.kind == kind => def,
            Some(_) => {
                return failed(format!(
                    "table \"{name}\" already exists with another storage kind"
                ))
            }
            None => match self.store.create_table(name, kind).await {
                Ok(def) => def,
                Err(e) => return failed(e.to_string()),
            },
        };
        // Every content's primary records the table in its WAL (mirrors get it by streaming).
        for content in self.store.snapshot().contents() {
            let addr = match self.primary_of(content) {
                Ok(addr) => addr,
                Err(e) => return ClientResponse::Error(e),
            };
            let result = async {
                let mut conn = Connection::connect(&addr, self.cfg.connect_timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                match conn
                    .call::<_, SegmentResponse>(
                        &SegmentRequest::CreateTable { def: def.clone() },
                        self.cfg.statement_timeout,
                    )
                    .await
                {
                    Ok(SegmentResponse::Ok) => Ok(()),
                    Ok(SegmentResponse::Error(e)) => Err(e.to_string()),
                    Ok(other) => Err(format!("unexpected answer: {other:?}")),
                    Err(e) => Err(e.to_string()),
                }
            };
            if let Err(e) = result.await {
                return failed(format!(
                    "content {content}: create table \"{name}\" failed: {e}"
                ));
            }
        }
        ClientResponse::Ok
    }
}
