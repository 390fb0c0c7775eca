//! One client connection: TLS negotiation, startup and authentication, then the simple and
//! extended query protocols over one [`SqlConnection`], closed (rolling back an open
//! transaction) however the client leaves.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use pgwire::api::auth::sasl::scram::{ScramSecret, ScramServerAuth};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider,
};
use pgwire::api::{ClientInfo, DefaultClient, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Parse, ParseComplete,
    PortalSuspended, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ErrorResponse, GssEncResponse, ReadyForQuery, SslResponse,
    TransactionStatus,
};
use pgwire::messages::startup::{Authentication, PasswordMessageFamily, SecretKey, Startup};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage, SslNegotiationMetaMessage};
use pgwire::tokio::server::PgWireMessageServerCodec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use super::auth::{Hba, Method, Users, Verifier};
use super::guard::Guarded;
use super::values::{self, TEXT};
use super::{FrontDoorConfig, MAX_MESSAGE, STARTUP_TIMEOUT};
use crate::coordinator::{CancelSignal, Services, SqlConnection};
use crate::io::runtime;
use crate::model::bugs::PlantedBugs;
use crate::sql::{Column, Datum, Outcome, SqlError, SqlType, Statement, TxnStatus};

/// Prepared statements or portals one connection may hold at once.
const MAX_NAMED: usize = 10_000;

/// The bytes of statement text and bound parameters one connection may hold at once.
const MAX_HELD_BYTES: usize = 32 << 20;

/// The client's stream: plain TCP (real or simulated), or TLS over it (production).
enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "real-io")]
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "real-io")]
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "real-io")]
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "real-io")]
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "real-io")]
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

type Socket = Framed<Guarded<Stream>, PgWireMessageServerCodec<String>>;

/// The backend keys of the connections being served, for cancel requests.
#[derive(Default)]
pub struct CancelKeys {
    keys: Mutex<HashMap<i32, (i32, Arc<CancelSignal>)>>,
}

impl CancelKeys {
    /// A fresh (pid, secret) pair, registered for the connection whose statements `signal`
    /// cancels.
    fn register(&self, signal: Arc<CancelSignal>) -> (i32, i32) {
        let mut keys = self.keys.lock().unwrap();
        loop {
            let mut b = [0u8; 8];
            runtime::random_bytes(&mut b);
            let pid = i32::from_be_bytes(b[..4].try_into().unwrap()) & 0x7fff_ffff;
            let secret = i32::from_be_bytes(b[4..].try_into().unwrap());
            if pid != 0 && !keys.contains_key(&pid) {
                keys.insert(pid, (secret, signal));
                return (pid, secret);
            }
        }
    }

    fn remove(&self, pid: i32) {
        self.keys.lock().unwrap().remove(&pid);
    }

    /// A cancel request: with the right key, the connection's running statement stops at its
    /// next step (see [`CancelSignal`]); nothing is answered on the request's connection.
    fn cancel(&self, pid: i32, secret: &SecretKey) {
        let known = self.keys.lock().unwrap().get(&pid).cloned();
        match (known, secret) {
            // A connection that sent no startup decodes the key as bytes, not as a number.
            (Some((s, signal)), given) if SecretKey::I32(s).eq_value(given) => {
                let taken = signal.request();
                info!(
                    pid,
                    taken, "SQL front door: cancel request (taken: a statement was running)"
                )
            }
            _ => debug!(
                pid,
                "SQL front door: cancel request with an unknown key ignored"
            ),
        }
    }
}

/// Serves one accepted client until it leaves; `slot` is its place under the connection
/// limit (`None`: the front door is full, and the client is told so after its startup).
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    cfg: Arc<FrontDoorConfig>,
    services: Services,
    cancels: Arc<CancelKeys>,
    slot: Option<OwnedSemaphorePermit>,
) {
    let conn = services.sql_connection();
    let signal = conn.cancel_signal();
    let bugs = services.bugs();
    let started = runtime::timeout(
        STARTUP_TIMEOUT,
        startup(stream, peer, &cfg, &cancels, signal, bugs, slot.is_some()),
    )
    .await;
    let (mut socket, pid) = match started {
        Ok(Ok(Some(ready))) => ready,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "SQL front door: connection ended during startup");
            return;
        }
        Err(_) => {
            debug!(%peer, "SQL front door: startup timed out");
            return;
        }
    };
    let mut session = Session {
        conn,
        statements: HashMap::new(),
        portals: HashMap::new(),
        skip_to_sync: false,
    };
    let _key = Registered { cancels, pid };
    session.run(&mut socket, peer).await;
    session.conn.close().await;
    drop(slot);
}

/// A connection's cancel key, removed when the connection ends, however it ends.
struct Registered {
    cancels: Arc<CancelKeys>,
    pid: i32,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.cancels.remove(self.pid);
    }
}

fn fatal(code: &str, message: String) -> PgWireBackendMessage {
    PgWireBackendMessage::ErrorResponse(ErrorResponse::from(ErrorInfo::new(
        "FATAL".to_string(),
        code.to_string(),
        message,
    )))
}

fn error(e: &SqlError) -> PgWireBackendMessage {
    PgWireBackendMessage::ErrorResponse(ErrorResponse::from(ErrorInfo::new(
        "ERROR".to_string(),
        e.code.clone(),
        e.message.clone(),
    )))
}

/// Refuses the client with a FATAL error; the connection then ends.
async fn refuse(socket: &mut Socket, code: &str, message: String) -> Result<(), PgWireError> {
    socket.send(fatal(code, message)).await?;
    Ok(())
}

/// TLS negotiation, the startup message and authentication. `Some` once the client is
/// authenticated and told the server is ready; `None` for a cancel request, a refusal, or a
/// client that left.
async fn startup(
    stream: TcpStream,
    peer: SocketAddr,
    cfg: &FrontDoorConfig,
    cancels: &CancelKeys,
    signal: Arc<CancelSignal>,
    bugs: PlantedBugs,
    has_slot: bool,
) -> Result<Option<(Socket, i32)>, PgWireError> {
    let mut socket: Socket = Framed::new(
        Guarded::new(Stream::Plain(stream), MAX_MESSAGE),
        PgWireMessageServerCodec::new(DefaultClient::new(peer, false)),
    );
    socket.set_state(PgWireConnectionState::AwaitingSslRequest);
    #[cfg_attr(not(feature = "real-io"), allow(unused_mut))]
    let mut tls = false;
    for _ in 0..3 {
        let Some(msg) = socket.next().await else {
            return Ok(None);
        };
        match msg? {
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::PostgresSsl(_)) => {
                let Some(acceptor) = &cfg.tls else {
                    socket
                        .send(PgWireBackendMessage::SslResponse(SslResponse::Refuse))
                        .await?;
                    continue;
                };
                #[cfg(not(feature = "real-io"))]
                match *acceptor {}
                #[cfg(feature = "real-io")]
                {
                    socket
                        .send(PgWireBackendMessage::SslResponse(SslResponse::Accept))
                        .await?;
                    let parts = socket.into_parts();
                    if !parts.read_buf.is_empty() {
                        // Bytes sent before the handshake would be taken as encrypted ones.
                        return Ok(None);
                    }
                    let Stream::Plain(tcp) = parts.io.into_inner() else {
                        return Ok(None);
                    };
                    let encrypted = acceptor.accept(tcp).await?;
                    socket = Framed::new(
                        Guarded::new(Stream::Tls(Box::new(encrypted)), MAX_MESSAGE),
                        PgWireMessageServerCodec::new(DefaultClient::new(peer, true)),
                    );
                    socket.set_state(PgWireConnectionState::AwaitingStartup);
                    tls = true;
                    break;
                }
            }
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::PostgresGss(_)) => {
                socket
                    .send(PgWireBackendMessage::GssEncResponse(GssEncResponse::Refuse))
                    .await?;
            }
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::None) => {
                socket.set_state(PgWireConnectionState::AwaitingStartup);
                break;
            }
            _ => return Ok(None),
        }
    }
    if !matches!(socket.state(), PgWireConnectionState::AwaitingStartup) {
        return Ok(None);
    }
    let startup = match socket.next().await {
        Some(Ok(PgWireFrontendMessage::Startup(s))) => s,
        Some(Ok(PgWireFrontendMessage::CancelRequest(c))) => {
            cancels.cancel(c.pid, &c.secret_key);
            return Ok(None);
        }
        Some(Err(e)) => return Err(e),
        _ => return Ok(None),
    };
    protocol_negotiation(&mut socket, &startup).await?;
    save_startup_parameters_to_metadata(&mut socket, &startup);
    socket.set_state(PgWireConnectionState::AuthenticationInProgress);
    if !has_slot {
        refuse(
            &mut socket,
            "53300",
            "sorry, too many clients already".into(),
        )
        .await?;
        return Ok(None);
    }
    if !authenticate(&mut socket, cfg, peer, tls, &startup, bugs).await? {
        return Ok(None);
    }
    let (pid, secret) = cancels.register(signal);
    socket.set_pid_and_secret_key(pid, SecretKey::I32(secret));
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = "15.0 (hacluster)".to_string();
    parameters.search_path = "\"$user\", public".to_string();
    parameters.date_style = "ISO, MDY".to_string();
    parameters.time_zone = "UTC".to_string();
    if let Err(e) = finish_authentication(&mut socket, &parameters).await {
        cancels.remove(pid);
        return Err(e);
    }
    Ok(Some((socket, pid)))
}

/// Checks the client against the host rules and its user's verifier; `false` once it was
/// refused (and told why).
async fn authenticate(
    socket: &mut Socket,
    cfg: &FrontDoorConfig,
    peer: SocketAddr,
    tls: bool,
    startup: &Startup,
    bugs: PlantedBugs,
) -> Result<bool, PgWireError> {
    let Some(user) = startup.parameters.get("user").cloned() else {
        refuse(
            socket,
            "28000",
            "no PostgreSQL user name specified in startup packet".into(),
        )
        .await?;
        return Ok(false);
    };
    let database = startup
        .parameters
        .get("database")
        .cloned()
        .unwrap_or_else(|| user.clone());
    let files = match &cfg.given {
        Some(given) => Ok(given.as_ref().clone()),
        None => Users::load(&cfg.users_file).and_then(|u| Ok((u, Hba::load(&cfg.hba_file)?))),
    };
    let (users, hba) = match files {
        Ok(files) => files,
        Err(e) => {
            warn!(error = %e, "SQL front door: the users or rules file cannot be read; refusing clients");
            refuse(
                socket,
                "28000",
                "the server's authentication configuration cannot be read".into(),
            )
            .await?;
            return Ok(false);
        }
    };
    let host = peer.ip().to_string();
    let Some(rule) = hba.find_with(peer.ip(), tls, &user, &database, bugs) else {
        info!(%peer, user, database, "SQL front door: no rule for the connection");
        refuse(
            socket,
            "28000",
            format!("no pg_hba.conf entry for host \"{host}\", user \"{user}\", database \"{database}\""),
        )
        .await?;
        return Ok(false);
    };
    let failed = format!("password authentication failed for user \"{user}\"");
    let verifier = users.users.get(&user);
    let ok = match (rule.method, verifier) {
        (Method::Reject, _) => {
            refuse(
                socket,
                "28000",
                format!("pg_hba.conf rejects connection for host \"{host}\", user \"{user}\", database \"{database}\""),
            )
            .await?;
            return Ok(false);
        }
        (Method::Trust, _) => true,
        (Method::Md5, Some(Verifier::Md5 { hash })) => md5_exchange(socket, hash).await?,
        (Method::Md5, None) => {
            // An unknown user: the exchange runs, and fails as a wrong password does.
            let _ = md5_exchange(socket, &[0; 16]).await?;
            false
        }
        (Method::ScramSha256 | Method::Md5, Some(v @ Verifier::Scram { .. })) => {
            scram_exchange(socket, v).await?
        }
        (Method::ScramSha256, _) => {
            // An unknown user, or one with only an md5 verifier: the exchange runs against a
            // verifier of a random password, and fails as a wrong password does.
            let mut noise = [0u8; 18];
            runtime::random_bytes(&mut noise);
            let mock = Verifier::scram(&super::auth::hex(&noise));
            let _ = scram_exchange(socket, &mock).await?;
            false
        }
    };
    if !ok {
        info!(%peer, user, "SQL front door: password authentication failed");
        refuse(socket, "28P01", failed).await?;
    }
    Ok(ok)
}

/// The client's next authentication message; `None` if it left or sent anything else.
async fn password_message(
    socket: &mut Socket,
) -> Result<Option<PasswordMessageFamily>, PgWireError> {
    match socket.next().await {
        Some(Ok(PgWireFrontendMessage::PasswordMessageFamily(p))) => Ok(Some(p)),
        Some(Err(e)) => Err(e),
        _ => Ok(None),
    }
}

/// SCRAM-SHA-256 against the stored verifier (never a password): `true` if the client proved
/// it knows the password.
async fn scram_exchange(socket: &mut Socket, verifier: &Verifier) -> Result<bool, PgWireError> {
    let Verifier::Scram {
        iterations,
        salt,
        stored_key,
        server_key,
    } = verifier
    else {
        return Ok(false);
    };
    socket
        .send(PgWireBackendMessage::Authentication(Authentication::SASL(
            vec!["SCRAM-SHA-256".to_string()],
        )))
        .await?;
    let Some(first) = password_message(socket).await? else {
        return Ok(false);
    };
    let first = first.into_sasl_initial_response()?;
    if first.auth_method != "SCRAM-SHA-256" {
        refuse(
            socket,
            "08P01",
            "client selected an invalid SASL authentication mechanism".into(),
        )
        .await?;
        return Ok(false);
    }
    let secret = ScramSecret::Verifier {
        salt: salt.clone(),
        iterations: *iterations,
        stored_key: stored_key.clone(),
        server_key: server_key.clone(),
    };
    let data = first.data.unwrap_or_default();
    let (server_first, waiting) =
        match ScramServerAuth::new().on_client_first_message_with_secret(&data, secret) {
            Ok(next) => next,
            Err(_) => return Ok(false),
        };
    socket
        .send(PgWireBackendMessage::Authentication(
            Authentication::SASLContinue(Bytes::from(server_first)),
        ))
        .await?;
    let Some(last) = password_message(socket).await? else {
        return Ok(false);
    };
    let last = last.into_sasl_response()?;
    match waiting.on_client_final_message(&last.data) {
        Ok(server_final) => {
            socket
                .send(PgWireBackendMessage::Authentication(
                    Authentication::SASLFinal(Bytes::from(server_final)),
                ))
                .await?;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

/// PostgreSQL's md5 exchange against the stored `md5(password || user)`.
async fn md5_exchange(socket: &mut Socket, hash: &[u8; 16]) -> Result<bool, PgWireError> {
    let mut salt = [0u8; 4];
    runtime::random_bytes(&mut salt);
    socket
        .send(PgWireBackendMessage::Authentication(
            Authentication::MD5Password(salt.to_vec()),
        ))
        .await?;
    let Some(answer) = password_message(socket).await? else {
        return Ok(false);
    };
    let answer = answer.into_password()?;
    let mut input = super::auth::hex(hash).into_bytes();
    input.extend_from_slice(&salt);
    let expected = format!("md5{}", super::auth::hex(&md5::compute(&input).0));
    use subtle::ConstantTimeEq;
    Ok(bool::from(
        answer.password.as_bytes().ct_eq(expected.as_bytes()),
    ))
}

/// A prepared statement: what Parse made of the text, and what Describe tells of it.
struct Prepared {
    stmt: Option<Statement>,
    /// The text's length, counted against [`MAX_HELD_BYTES`].
    size: usize,
    params: Vec<SqlType>,
    columns: Vec<Column>,
}

/// A bound statement, and the rows of its run not yet sent (an Execute with a row limit).
struct Portal {
    stmt: Option<Statement>,
    /// The statement's and the parameters' bytes, counted against [`MAX_HELD_BYTES`].
    size: usize,
    params: Vec<Datum>,
    formats: Vec<i16>,
    columns: Vec<Column>,
    pending: Option<(VecDeque<Vec<Datum>>, String)>,
    /// The tag of the finished run (an Execute after it answers it again).
    finished: Option<String>,
}

/// Why a message could not be carried out.
enum Fail {
    /// The statement's error: an ErrorResponse, and the connection goes on.
    Sql(SqlError),
    /// The connection is broken or must end.
    Gone,
}

impl From<SqlError> for Fail {
    fn from(e: SqlError) -> Fail {
        Fail::Sql(e)
    }
}

impl From<io::Error> for Fail {
    fn from(_: io::Error) -> Fail {
        Fail::Gone
    }
}

struct Session {
    conn: SqlConnection,
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, Portal>,
    /// After an error in the extended protocol, messages are discarded until a Sync.
    skip_to_sync: bool,
}

fn status(s: TxnStatus) -> TransactionStatus {
    match s {
        TxnStatus::Idle => TransactionStatus::Idle,
        TxnStatus::InBlock => TransactionStatus::Transaction,
        TxnStatus::Failed => TransactionStatus::Error,
    }
}

fn tag(t: &str) -> PgWireBackendMessage {
    PgWireBackendMessage::CommandComplete(CommandComplete::new(t.to_string()))
}

impl Session {
    /// What the connection's statements and portals hold.
    fn held_bytes(&self) -> usize {
        self.statements.values().map(|p| p.size).sum::<usize>()
            + self.portals.values().map(|p| p.size).sum::<usize>()
    }

    async fn run(&mut self, socket: &mut Socket, peer: SocketAddr) {
        loop {
            let msg = match socket.next().await {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => {
                    // A malformed or oversized message: the connection ends.
                    info!(%peer, error = %e, "SQL front door: closing a connection");
                    let _ = socket
                        .send(fatal("08P01", format!("invalid message: {e}")))
                        .await;
                    return;
                }
                None => return,
            };
            let extended = msg.is_extended_query();
            if self.skip_to_sync && !matches!(msg, PgWireFrontendMessage::Sync(_)) {
                if matches!(msg, PgWireFrontendMessage::Terminate(_)) {
                    return;
                }
                continue;
            }
            let result = match msg {
                PgWireFrontendMessage::Query(q) => self.simple(socket, &q.query).await,
                PgWireFrontendMessage::Parse(p) => self.parse(socket, p).await,
                PgWireFrontendMessage::Bind(b) => self.bind(socket, b).await,
                PgWireFrontendMessage::Describe(d) => self.describe(socket, d).await,
                PgWireFrontendMessage::Execute(e) => self.execute(socket, e).await,
                PgWireFrontendMessage::Close(c) => self.close(socket, c).await,
                PgWireFrontendMessage::Sync(_) => self.sync(socket).await,
                PgWireFrontendMessage::Flush(_) => socket.flush().await.map_err(Fail::from),
                PgWireFrontendMessage::Terminate(_) => return,
                // Copy messages outside a copy are ignored, as PostgreSQL does.
                PgWireFrontendMessage::CopyData(_)
                | PgWireFrontendMessage::CopyDone(_)
                | PgWireFrontendMessage::CopyFail(_) => Ok(()),
                other => {
                    let name = format!("{other:?}");
                    let name = name.split(['(', ' ']).next().unwrap_or("").to_string();
                    let _ = socket
                        .send(fatal("08P01", format!("unexpected message {name}")))
                        .await;
                    return;
                }
            };
            match result {
                Ok(()) => {}
                Err(Fail::Gone) => return,
                Err(Fail::Sql(e)) => {
                    if socket.send(error(&e)).await.is_err() {
                        return;
                    }
                    if extended {
                        self.skip_to_sync = true;
                    }
                }
            }
        }
    }

    async fn ready(&mut self, socket: &mut Socket) -> Result<(), Fail> {
        let s = status(self.conn.status());
        socket.set_transaction_status(s);
        socket
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(s)))
            .await?;
        Ok(())
    }

    /// The simple query protocol: each statement's outcome, then ReadyForQuery.
    async fn simple(&mut self, socket: &mut Socket, text: &str) -> Result<(), Fail> {
        self.portals.remove("");
        for result in self.conn.simple_query(text).await {
            match result {
                Ok(Outcome::Rows {
                    columns,
                    rows,
                    tag: t,
                }) => {
                    socket
                        .feed(PgWireBackendMessage::RowDescription(
                            values::row_description(&columns, &[]),
                        ))
                        .await?;
                    for row in &rows {
                        socket
                            .feed(PgWireBackendMessage::DataRow(values::data_row(row, &[])))
                            .await?;
                    }
                    socket.feed(tag(&t)).await?;
                }
                Ok(Outcome::Done { tag: t }) => socket.feed(tag(&t)).await?,
                Ok(Outcome::Empty) => {
                    socket
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?
                }
                Err(e) => socket.feed(error(&e)).await?,
            }
        }
        self.ready(socket).await
    }

    async fn parse(&mut self, socket: &mut Socket, p: Parse) -> Result<(), Fail> {
        let name = p.name.unwrap_or_default();
        if !name.is_empty() && self.statements.contains_key(&name) {
            return Err(SqlError::new(
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            )
            .into());
        }
        if self.statements.len() >= MAX_NAMED && !self.statements.contains_key(&name) {
            return Err(SqlError::new("54000", "too many prepared statements").into());
        }
        let stmt = self.conn.parse(&p.query)?;
        let described = self.conn.describe(stmt.as_ref())?;
        let count = described.params.len().max(p.type_oids.len());
        let mut params = Vec::with_capacity(count);
        for i in 0..count {
            let ty = match p.type_oids.get(i).copied().unwrap_or(0) {
                0 => described.params.get(i).copied().unwrap_or(SqlType::Text),
                oid => SqlType::from_oid(oid).ok_or_else(|| {
                    SqlError::new("0A000", format!("parameter type {oid} is not supported"))
                })?,
            };
            params.push(ty);
        }
        let size = p.query.len();
        let replaced = self.statements.get(&name).map_or(0, |p| p.size);
        if self.held_bytes() - replaced + size > MAX_HELD_BYTES {
            return Err(SqlError::new(
                "54000",
                "the connection holds too many prepared statements and portals; close some",
            )
            .into());
        }
        self.statements.insert(
            name,
            Prepared {
                stmt,
                size,
                params,
                columns: described.columns,
            },
        );
        socket
            .send(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn bind(&mut self, socket: &mut Socket, b: Bind) -> Result<(), Fail> {
        let stmt_name = b.statement_name.unwrap_or_default();
        let portal_name = b.portal_name.unwrap_or_default();
        let Some(prepared) = self.statements.get(&stmt_name) else {
            return Err(SqlError::new(
                "26000",
                format!("prepared statement \"{stmt_name}\" does not exist"),
            )
            .into());
        };
        if b.parameters.len() != prepared.params.len() {
            return Err(SqlError::new(
                "08P01",
                format!(
                    "bind message supplies {} parameters, but prepared statement \"{stmt_name}\" requires {}",
                    b.parameters.len(),
                    prepared.params.len()
                ),
            )
            .into());
        }
        values::check_formats(&b.parameter_format_codes, b.parameters.len(), "parameter")?;
        values::check_formats(
            &b.result_column_format_codes,
            prepared.columns.len(),
            "result",
        )?;
        let mut params = Vec::with_capacity(b.parameters.len());
        for (i, (ty, value)) in prepared.params.iter().zip(&b.parameters).enumerate() {
            let format = values::format_of(&b.parameter_format_codes, i);
            params.push(values::parameter(*ty, format, value.as_deref())?);
        }
        if self.portals.len() >= MAX_NAMED && !self.portals.contains_key(&portal_name) {
            return Err(SqlError::new("54000", "too many portals").into());
        }
        let size = prepared.size
            + b.parameters
                .iter()
                .map(|v| v.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>();
        let replaced = self.portals.get(&portal_name).map_or(0, |p| p.size);
        if self.held_bytes() - replaced + size > MAX_HELD_BYTES {
            return Err(SqlError::new(
                "54000",
                "the connection holds too many prepared statements and portals; close some",
            )
            .into());
        }
        let portal = Portal {
            size,
            stmt: prepared.stmt.clone(),
            params,
            formats: b.result_column_format_codes,
            columns: prepared.columns.clone(),
            pending: None,
            finished: None,
        };
        self.portals.insert(portal_name, portal);
        socket
            .send(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn describe(&mut self, socket: &mut Socket, d: Describe) -> Result<(), Fail> {
        let name = d.name.unwrap_or_default();
        let (columns, formats) = match d.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                let Some(p) = self.statements.get(&name) else {
                    return Err(SqlError::new(
                        "26000",
                        format!("prepared statement \"{name}\" does not exist"),
                    )
                    .into());
                };
                let oids = p.params.iter().map(|t| t.oid()).collect();
                socket
                    .feed(PgWireBackendMessage::ParameterDescription(
                        ParameterDescription::new(oids),
                    ))
                    .await?;
                (p.columns.clone(), vec![TEXT])
            }
            TARGET_TYPE_BYTE_PORTAL => {
                let Some(p) = self.portals.get(&name) else {
                    return Err(SqlError::new(
                        "34000",
                        format!("portal \"{name}\" does not exist"),
                    )
                    .into());
                };
                (p.columns.clone(), p.formats.clone())
            }
            other => {
                return Err(SqlError::new(
                    "08P01",
                    format!("invalid DESCRIBE message subtype {other}"),
                )
                .into())
            }
        };
        let msg = if columns.is_empty() {
            PgWireBackendMessage::NoData(NoData::new())
        } else {
            PgWireBackendMessage::RowDescription(values::row_description(&columns, &formats))
        };
        socket.send(msg).await?;
        Ok(())
    }

    async fn execute(&mut self, socket: &mut Socket, e: Execute) -> Result<(), Fail> {
        let name = e.name.unwrap_or_default();
        let Some(portal) = self.portals.get_mut(&name) else {
            return Err(SqlError::new("34000", format!("portal \"{name}\" does not exist")).into());
        };
        if let Some(t) = &portal.finished {
            socket.send(tag(t)).await?;
            return Ok(());
        }
        if portal.pending.is_none() {
            match self
                .conn
                .execute(portal.stmt.as_ref(), &portal.params)
                .await?
            {
                Outcome::Rows { rows, tag: t, .. } => portal.pending = Some((rows.into(), t)),
                Outcome::Done { tag: t } => {
                    socket.send(tag(&t)).await?;
                    portal.finished = Some(t);
                    return Ok(());
                }
                Outcome::Empty => {
                    socket
                        .send(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?;
                    portal.finished = Some(String::new());
                    return Ok(());
                }
            }
        }
        let (rows, t) = portal.pending.as_mut().expect("a run's rows");
        let limit = if e.max_rows > 0 {
            e.max_rows as usize
        } else {
            usize::MAX
        };
        let mut sent = 0;
        while sent < limit {
            let Some(row) = rows.pop_front() else { break };
            socket
                .feed(PgWireBackendMessage::DataRow(values::data_row(
                    &row,
                    &portal.formats,
                )))
                .await?;
            sent += 1;
        }
        if rows.is_empty() {
            let t = std::mem::take(t);
            portal.pending = None;
            socket.send(tag(&t)).await?;
            portal.finished = Some(t);
        } else {
            socket
                .send(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
                .await?;
        }
        Ok(())
    }

    async fn close(&mut self, socket: &mut Socket, c: Close) -> Result<(), Fail> {
        let name = c.name.unwrap_or_default();
        match c.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                self.statements.remove(&name);
            }
            TARGET_TYPE_BYTE_PORTAL => {
                self.portals.remove(&name);
            }
            other => {
                return Err(SqlError::new(
                    "08P01",
                    format!("invalid CLOSE message subtype {other}"),
                )
                .into())
            }
        }
        socket
            .send(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
            .await?;
        Ok(())
    }

    async fn sync(&mut self, socket: &mut Socket) -> Result<(), Fail> {
        self.skip_to_sync = false;
        self.portals.remove("");
        self.ready(socket).await
    }
}
