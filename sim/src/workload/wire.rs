//! A client that speaks PostgreSQL's wire protocol: a real driver (`tokio-postgres`) over the
//! simulated network to the coordinator's front door, with the statements of the workload as
//! prepared statements with parameters (the extended protocol: Parse, Describe, Bind,
//! Execute), and `BEGIN`/`COMMIT` by the simple protocol. What it records in the history is
//! what the framed clients record.

use std::time::Duration;

use cluster::model::catalog::Content;
use cluster::sql::{decode_row, encode_row, Datum};
use cluster::wire::{DbError, Op, OpResult};
use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// The user the simulated front door trusts.
pub const USER: &str = "gpadmin";

/// A driver's connection to the first front door that answers, made again when lost.
pub struct WireClient {
    addrs: Vec<String>,
    timeout: Duration,
    client: Option<Client>,
    backoff: Duration,
    /// The front door the connection is to (where cancel requests go).
    connected: String,
    /// Draws when to cancel (`None`: it never does): a stream of its own, so the statements
    /// drawn are the same with or without cancels.
    cancels: Option<ChaCha8Rng>,
    /// Sends `CREATE TABLE IF NOT EXISTS` for every table on each new connection.
    ensures_schema: bool,
}

/// One statement in this many gets a cancel request, sent after a drawn delay of up to
/// [`CANCEL_WITHIN`]: it races the statement, and may land on the next one.
const CANCEL_ONE_IN: u64 = 4;
const CANCEL_WITHIN: Duration = Duration::from_millis(100);

fn row_text(value: &[u8]) -> String {
    match decode_row(value).ok().as_deref() {
        Some([_, Datum::Text(v)]) => v.clone(),
        _ => unreachable!("the workload's values are (k, v) rows"),
    }
}

impl WireClient {
    /// A client of the front doors at `addrs`; with `cancels`, the client's random stream, it
    /// cancels statements now and then (see [`Self::maybe_cancel`]).
    pub fn new(addrs: Vec<String>, timeout: Duration, cancels: Option<&ChaCha8Rng>) -> WireClient {
        let cancels = cancels.map(|rng| {
            let mut rng = rng.clone();
            rng.set_stream(1);
            rng
        });
        WireClient {
            addrs,
            timeout,
            client: None,
            backoff: Duration::ZERO,
            connected: String::new(),
            cancels,
            ensures_schema: false,
        }
    }

    /// This client ensures the schema on each connection it makes, as an application that
    /// creates its tables if they are missing whenever it connects.
    pub fn ensuring_schema(mut self, on: bool) -> WireClient {
        self.ensures_schema = on;
        self
    }

    /// Now and then, as an impatient application does, cancels the statement about to run:
    /// a cancel request on a connection of its own, after a drawn delay. The statement it
    /// stops answers 57014 and is recorded failed, and the checkers hold it to that: it
    /// changed nothing (a cancel never stops a commit already sent).
    fn maybe_cancel(&mut self, client: &Client) {
        let Some(rng) = &mut self.cancels else {
            return;
        };
        if rng.next_u64() % CANCEL_ONE_IN != 0 {
            return;
        }
        let delay = Duration::from_micros(rng.next_u64() % CANCEL_WITHIN.as_micros() as u64);
        let (token, addr) = (client.cancel_token(), self.connected.clone());
        madsim::task::spawn(async move {
            madsim::time::sleep(delay).await;
            if let Ok(stream) = tokio::net::TcpStream::connect(addr.as_str()).await {
                let _ = token.cancel_query_raw(stream, NoTls).await;
            }
        });
    }

    /// The connection, made if there is none; the caller gives it back with [`Self::finish`].
    async fn take(&mut self) -> Result<Client, DbError> {
        if self.client.is_none() {
            madsim::time::sleep(self.backoff).await;
            self.backoff =
                (self.backoff * 2).clamp(Duration::from_millis(50), Duration::from_secs(2));
            let mut last = String::from("no front door address given");
            for addr in &self.addrs {
                let attempt = async {
                    let stream = tokio::net::TcpStream::connect(addr.as_str())
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut config = tokio_postgres::Config::new();
                    config
                        .user(USER)
                        .dbname("postgres")
                        .application_name("sim-wire");
                    config
                        .connect_raw(stream, NoTls)
                        .await
                        .map_err(|e| e.to_string())
                };
                match madsim::time::timeout(self.timeout, attempt).await {
                    Ok(Ok((client, connection))) => {
                        madsim::task::spawn(async move {
                            let _ = connection.await;
                        });
                        if self.ensures_schema {
                            let schema: Vec<String> = super::TABLES
                                .iter()
                                .map(|(name, kind)| super::create_table_sql(name, *kind))
                                .collect();
                            let schema = schema.join("; ");
                            let ensure = client.batch_execute(&schema);
                            match madsim::time::timeout(self.timeout, ensure).await {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => {
                                    last = format!("{addr}: ensuring the schema: {e}");
                                    continue;
                                }
                                Err(_) => {
                                    last = format!("{addr}: ensuring the schema: no answer");
                                    continue;
                                }
                            }
                        }
                        self.client = Some(client);
                        self.backoff = Duration::ZERO;
                        self.connected = addr.clone();
                        break;
                    }
                    Ok(Err(e)) => last = format!("{addr}: {e}"),
                    Err(_) => last = format!("{addr}: no answer within {:?}", self.timeout),
                }
            }
            if self.client.is_none() {
                return Err(DbError::Failed(format!("no front door reachable: {last}")));
            }
        }
        Ok(self.client.take().expect("connected above"))
    }

    /// Keeps the connection unless the call lost it, and tells the call's outcome.
    fn finish<T>(
        &mut self,
        client: Client,
        result: Result<Result<T, tokio_postgres::Error>, madsim::time::error::Elapsed>,
        committing: bool,
    ) -> Result<T, DbError> {
        match result {
            Ok(Ok(v)) => {
                self.client = Some(client);
                Ok(v)
            }
            Ok(Err(e)) => {
                if e.code().is_some() && !client.is_closed() {
                    self.client = Some(client);
                }
                Err(self.error(e, committing))
            }
            Err(_) => Err(if committing {
                DbError::Unknown("no answer to COMMIT in time".into())
            } else {
                DbError::Failed("no answer in time".into())
            }),
        }
    }

    /// A driver's error as the history records it: an unknown outcome where the commit's
    /// answer was lost (or the server says it does not know), a failure otherwise.
    fn error(&mut self, e: tokio_postgres::Error, committing: bool) -> DbError {
        if let Some(code) = e.code() {
            let message = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            if *code == SqlState::TRANSACTION_RESOLUTION_UNKNOWN {
                return DbError::Unknown(message);
            }
            if *code == SqlState::ADMIN_SHUTDOWN {
                // This coordinator was deposed: the next call tries the next address.
                self.client = None;
                self.addrs.rotate_left(1);
            }
            return DbError::Failed(format!("{}: {message}", code.code()));
        }
        // The connection is gone (or timed out): what was in flight is lost with it.
        self.client = None;
        if committing {
            DbError::Unknown(format!("the connection was lost while committing: {e}"))
        } else {
            DbError::Failed(format!("the connection was lost: {e}"))
        }
    }

    async fn simple(&mut self, text: &str, committing: bool) -> Result<(), DbError> {
        let client = self.take().await?;
        let result = madsim::time::timeout(self.timeout, client.batch_execute(text)).await;
        self.finish(client, result, committing)
    }

    pub async fn begin(&mut self) -> Result<(), DbError> {
        self.simple("BEGIN", false).await
    }

    pub async fn commit(&mut self) -> Result<(), DbError> {
        // The driver reports the tag only through a simple query's messages: COMMIT of a
        // failed block answers ROLLBACK, which the workload never leaves in place (it rolls
        // back after any error), so an answer here is a commit.
        self.simple("COMMIT", true).await
    }

    pub async fn rollback(&mut self) {
        if self.client.is_some() {
            let _ = self.simple("ROLLBACK", false).await;
        }
    }

    /// One statement of the workload, with its values as parameters.
    pub async fn op(&mut self, op: &Op, content: Content) -> Result<OpResult, DbError> {
        let client = self.take().await?;
        self.maybe_cancel(&client);
        let run = async {
            match op {
                Op::Insert { table, key, value } => {
                    let text = row_text(value);
                    let sql = format!("INSERT INTO {table} (k, v) VALUES ($1, $2)");
                    client
                        .execute(sql.as_str(), &[key, &text])
                        .await
                        .map(|_| OpResult::Done)
                }
                Op::Update { table, key, value } => {
                    let text = row_text(value);
                    let sql = format!("UPDATE {table} SET v = $1 WHERE k = $2");
                    client
                        .execute(sql.as_str(), &[&text, key])
                        .await
                        .map(OpResult::Count)
                }
                Op::Delete { table, key } => {
                    let sql = format!("DELETE FROM {table} WHERE k = $1");
                    client
                        .execute(sql.as_str(), &[key])
                        .await
                        .map(OpResult::Count)
                }
                Op::Get { table, key } => {
                    let sql = format!("SELECT k, v FROM {table} WHERE k = $1");
                    let rows = client.query(sql.as_str(), &[key]).await?;
                    Ok(OpResult::Row(rows.first().map(stored)))
                }
                Op::Scan { table } => {
                    let sql =
                        format!("SELECT k, v FROM {table} WHERE gp_segment_id = $1 ORDER BY k");
                    let rows = client.query(sql.as_str(), &[&(content as i32)]).await?;
                    Ok(OpResult::Rows(
                        rows.iter()
                            .map(|r| (r.get::<_, i64>(0), stored(r)))
                            .collect(),
                    ))
                }
            }
        };
        let result = madsim::time::timeout(self.timeout, run).await;
        self.finish(client, result, false)
    }
}

/// A row read back, as the storage keeps it.
fn stored(row: &tokio_postgres::Row) -> Vec<u8> {
    encode_row(&[
        Datum::Int8(row.get::<_, i64>(0)),
        Datum::Text(row.get::<_, String>(1)),
    ])
}
