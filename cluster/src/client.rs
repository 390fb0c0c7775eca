//! The client library: transactions through the coordinator.
//!
//! A client holds a list of coordinator addresses (the coordinator and its standby) and
//! connects to whichever is active: a warm standby answers [`ClientResponse::NotActive`], and
//! the client moves on to the next address; it keeps to the one that served it last. A
//! transaction that loses its connection before commit is rolled back ([`DbError::Failed`]); one
//! that loses it while committing has an unknown outcome ([`DbError::Unknown`]); both say so. After a failed
//! connection attempt the next one waits a little longer (50 ms doubling to 2 s), so a client
//! of a coordinator that is down does not hammer it.

use std::time::Duration;

use crate::io::net::{Backoff, Connection};
use crate::model::catalog::{Catalog, Content};
use crate::wal::{Key, TableKind, Value};
use crate::wire::{
    ClientRequest, ClientResponse, DbError, Op, OpResult, PassiveStatus, StandbyReply,
    StandbyRequest,
};

pub struct Client {
    coordinators: Vec<String>,
    conn: Option<Connection>,
    /// The address tried first: the one that served last.
    active: usize,
    timeout: Duration,
    backoff: Backoff,
}

impl Client {
    pub fn new(coordinators: Vec<String>, timeout: Duration) -> Client {
        Client {
            coordinators,
            conn: None,
            active: 0,
            timeout,
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
        }
    }

    async fn connection(&mut self) -> Result<&mut Connection, DbError> {
        if self.conn.is_none() {
            self.backoff.wait().await;
            let mut last = String::from("no coordinator address given");
            let n = self.coordinators.len();
            for i in (0..n).map(|k| (self.active + k) % n) {
                match Connection::connect(&self.coordinators[i], self.timeout).await {
                    Ok(conn) => {
                        self.conn = Some(conn);
                        self.active = i;
                        break;
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            if self.conn.is_none() {
                self.backoff.failed();
                return Err(DbError::Failed(format!("no coordinator reachable: {last}")));
            }
            self.backoff.succeeded();
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    async fn request(
        &mut self,
        req: ClientRequest,
        committing: bool,
    ) -> Result<ClientResponse, DbError> {
        let timeout = self.timeout;
        // A warm standby answers that it is not active: try the next address, each once.
        let mut standbys = Vec::new();
        let mut tries = 0;
        loop {
            let conn = self.connection().await?;
            let answer = conn.call::<_, ClientResponse>(&req, timeout).await;
            // A warm standby answers a status request with its own passive status: it is not
            // the active coordinator either.
            let answer = match answer {
                Ok(ClientResponse::Standby(StandbyReply::Passive(p))) => {
                    Ok(ClientResponse::NotActive(format!(
                        "dbid {} is a standby following {}",
                        p.dbid, p.coordinator
                    )))
                }
                other => other,
            };
            match answer {
                Ok(ClientResponse::Error(e)) => return Err(e),
                Ok(ClientResponse::NotActive(why)) => {
                    self.conn = None;
                    tries += 1;
                    if !standbys.contains(&why) {
                        standbys.push(why);
                    }
                    if tries >= self.coordinators.len() {
                        return Err(DbError::Failed(format!(
                            "no active coordinator: {}",
                            standbys.join("; ")
                        )));
                    }
                    self.active = (self.active + 1) % self.coordinators.len();
                }
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    self.conn = None;
                    return Err(if committing {
                        DbError::Unknown(format!(
                            "the coordinator failed before the commit was acknowledged ({e}); the transaction's outcome is unknown: it is committed only if the coordinator recorded the commit before failing"
                        ))
                    } else {
                        DbError::Failed(format!(
                            "the coordinator failed before the commit was acknowledged ({e}); the transaction's outcome is: rolled back, nothing of it was committed"
                        ))
                    });
                }
            }
        }
    }

    /// A standby verb ([`StandbyRequest`]) to the active coordinator.
    pub async fn standby(&mut self, req: StandbyRequest) -> Result<StandbyReply, DbError> {
        match self.request(ClientRequest::Standby(req), false).await? {
            ClientResponse::Standby(reply) => Ok(reply),
            other => Err(DbError::Failed(format!("unexpected answer: {other:?}"))),
        }
    }

    pub async fn begin(&mut self) -> Result<(), DbError> {
        self.request(ClientRequest::Begin, false).await.map(|_| ())
    }

    pub async fn exec(&mut self, op: Op, content: Option<Content>) -> Result<OpResult, DbError> {
        match self
            .request(ClientRequest::Exec { op, content }, false)
            .await?
        {
            ClientResponse::Result(r) => Ok(r),
            other => Err(DbError::Failed(format!("unexpected answer: {other:?}"))),
        }
    }

    pub async fn insert(&mut self, table: &str, key: Key, value: Value) -> Result<(), DbError> {
        self.exec(
            Op::Insert {
                table: table.into(),
                key,
                value,
            },
            None,
        )
        .await
        .map(|_| ())
    }

    pub async fn update(&mut self, table: &str, key: Key, value: Value) -> Result<u64, DbError> {
        match self
            .exec(
                Op::Update {
                    table: table.into(),
                    key,
                    value,
                },
                None,
            )
            .await?
        {
            OpResult::Count(n) => Ok(n),
            other => Err(DbError::Failed(format!("unexpected result: {other:?}"))),
        }
    }

    pub async fn delete(&mut self, table: &str, key: Key) -> Result<u64, DbError> {
        match self
            .exec(
                Op::Delete {
                    table: table.into(),
                    key,
                },
                None,
            )
            .await?
        {
            OpResult::Count(n) => Ok(n),
            other => Err(DbError::Failed(format!("unexpected result: {other:?}"))),
        }
    }

    pub async fn get(&mut self, table: &str, key: Key) -> Result<Option<Value>, DbError> {
        match self
            .exec(
                Op::Get {
                    table: table.into(),
                    key,
                },
                None,
            )
            .await?
        {
            OpResult::Row(r) => Ok(r),
            other => Err(DbError::Failed(format!("unexpected result: {other:?}"))),
        }
    }

    pub async fn scan(
        &mut self,
        table: &str,
        content: Content,
    ) -> Result<Vec<(Key, Value)>, DbError> {
        match self
            .exec(
                Op::Scan {
                    table: table.into(),
                },
                Some(content),
            )
            .await?
        {
            OpResult::Rows(rows) => Ok(rows),
            other => Err(DbError::Failed(format!("unexpected result: {other:?}"))),
        }
    }

    /// One SQL statement (or several), run by the coordinator's SQL layer: the outcome of the
    /// last statement run. A statement that failed is an error: `08007` (the outcome of a
    /// commit is unknown) as [`DbError::Unknown`], any other as [`DbError::Failed`] with its
    /// SQLSTATE. `committing` says the text commits, so that a lost connection leaves the
    /// outcome unknown rather than rolled back.
    pub async fn sql(
        &mut self,
        text: &str,
        committing: bool,
    ) -> Result<crate::sql::Outcome, DbError> {
        let req = ClientRequest::Sql {
            text: text.to_string(),
        };
        match self.request(req, committing).await? {
            ClientResponse::Sql { results, .. } => match results.into_iter().last() {
                Some(Ok(outcome)) => Ok(outcome),
                Some(Err(e)) if e.code == "08007" => Err(DbError::Unknown(e.message)),
                Some(Err(e)) => Err(DbError::Failed(format!("{}: {}", e.code, e.message))),
                None => Err(DbError::Failed("no statement was run".into())),
            },
            other => Err(DbError::Failed(format!("unexpected answer: {other:?}"))),
        }
    }

    pub async fn commit(&mut self) -> Result<(), DbError> {
        self.request(ClientRequest::Commit, true).await.map(|_| ())
    }

    pub async fn abort(&mut self) -> Result<(), DbError> {
        self.request(ClientRequest::Abort, false).await.map(|_| ())
    }

    pub async fn create_table(&mut self, name: &str, kind: TableKind) -> Result<(), DbError> {
        self.request(
            ClientRequest::CreateTable {
                name: name.into(),
                kind,
            },
            false,
        )
        .await
        .map(|_| ())
    }

    /// Distributed transactions decided but not yet carried out everywhere.
    pub async fn distributed_log(&mut self) -> Result<Vec<(u64, Vec<Content>)>, DbError> {
        match self.request(ClientRequest::DistributedLog, false).await? {
            ClientResponse::DistributedLog(log) => Ok(log),
            other => Err(DbError::Failed(format!("unexpected answer: {other:?}"))),
        }
    }

    /// The configuration history, oldest first, and the current configuration epoch.
    pub async fn configuration_history(
        &mut self,
    ) -> Result<(Vec<crate::model::catalog::HistoryRow>, u64), DbError> {
        match self
            .request(ClientRequest::ConfigurationHistory, false)
            .await?
        {
            ClientResponse::ConfigurationHistory { rows, epoch } => Ok((rows, epoch)),
            other => Err(DbError::Failed(format!("unexpected answer: {other:?}"))),
        }
    }

    pub async fn catalog(&mut self) -> Result<Catalog, DbError> {
        match self.request(ClientRequest::Catalog, false).await? {
            ClientResponse::Catalog(c) => Ok(c),
            other => Err(DbError::Failed(format!("unexpected answer: {other:?}"))),
        }
    }

    /// Runs an administration request on the coordinator (see [`crate::admin`]).
    pub async fn admin(
        &mut self,
        req: crate::wire::AdminRequest,
    ) -> Result<crate::wire::AdminReply, DbError> {
        match self.request(ClientRequest::Admin(req), false).await? {
            ClientResponse::Admin(reply) => Ok(reply),
            other => Err(DbError::Failed(format!("unexpected answer: {other:?}"))),
        }
    }
}

/// What a standby at `addr` says about itself; `None` if nothing answers there as a standby.
pub async fn passive_status(addr: &str, within: Duration) -> Option<PassiveStatus> {
    let mut conn = Connection::connect(addr, within).await.ok()?;
    match conn
        .call::<_, ClientResponse>(&ClientRequest::Standby(StandbyRequest::Status), within)
        .await
        .ok()?
    {
        ClientResponse::Standby(StandbyReply::Passive(p)) => Some(p),
        _ => None,
    }
}
