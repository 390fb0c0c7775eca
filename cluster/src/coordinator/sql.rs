//! The SQL session layer: statements ([`crate::sql`]) carried out on the coordinator's own
//! operations — a transaction's `Begin`, its statements routed to the contents that own the
//! rows, and its commit (one phase or two) — for both worlds: the simulator's clients send SQL
//! text in a [`crate::wire::ClientRequest::Sql`], and the production front door speaks
//! PostgreSQL's wire protocol over a [`SqlConnection`].
//!
//! A table made by SQL keeps its schema in the catalog; each row is stored as an encoded tuple
//! under its key: the primary key's value, or a hidden key drawn for the row. Its content is the
//! distribution column's hash (a replicated table's rows are on every content). A read with the
//! distribution key in its `WHERE` goes to one content; any other is dispatched to every content
//! and gathered here, where filters, aggregates, sorting and `LIMIT` apply.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::catalog::{Catalog, HistoryRow};
use crate::model::data::{Key, TableDef};
use crate::sql::{
    decode_row, encode_row, parse, BinOp, Column, Datum, Described, Distribution, Expr, Outcome,
    Select, SelectItem, SqlError, SqlType, Statement, TableSchema, TxnStatus,
};
use crate::wire::{ClientRequest, ClientResponse, DbError, Op, OpResult};

use super::content_for_key;
use crate::io::runtime;

/// The most rows one statement may gather on the coordinator.
pub const MAX_GATHERED_ROWS: usize = 1_000_000;

/// What the SQL layer needs of the coordinator: the client requests of a session, the tables'
/// definitions, and a number for hidden row keys.
pub(crate) trait Backend {
    async fn call(&mut self, req: ClientRequest) -> ClientResponse;
    fn table(&self, name: &str) -> Option<TableDef>;
    fn contents(&self) -> usize;
    async fn create_table(&mut self, name: &str, schema: TableSchema) -> Result<(), DbError>;
    async fn drop_table(&mut self, name: &str) -> Result<(), DbError>;
    /// A number drawn for a hidden row key: unique within the transaction, and with the
    /// transaction's id across the cluster's life.
    fn row_number(&mut self) -> u64;
    fn version(&self) -> String;
    fn bugs(&self) -> crate::model::bugs::PlantedBugs {
        Default::default()
    }
    /// Where the client's cancel requests arrive, if it can send any.
    fn cancel(&self) -> Option<std::sync::Arc<CancelSignal>> {
        None
    }
}

/// A client's requests to cancel the statement it is running (PostgreSQL's cancel request,
/// sent on a connection of its own). A request takes effect only while a statement runs: one
/// that arrives between statements is ignored, as PostgreSQL ignores it. The statement stops
/// at its next step (before its next call to a content, or in `pg_sleep`) with `57014`; a
/// commit already sent runs to its end, since its outcome is no longer the session's to take
/// back.
pub struct CancelSignal {
    state: crate::io::sync::Watch<Cancel>,
}

impl Default for CancelSignal {
    fn default() -> CancelSignal {
        CancelSignal {
            state: crate::io::sync::Watch::new(Cancel::default()),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Cancel {
    running: bool,
    requested: bool,
}

impl CancelSignal {
    /// A cancel request; whether a statement was running to take it.
    pub fn request(&self) -> bool {
        let mut taken = false;
        self.state.modify(|c| {
            if c.running {
                c.requested = true;
                taken = true;
            }
        });
        taken
    }

    fn start(&self) {
        self.state.set(Cancel {
            running: true,
            requested: false,
        });
    }

    fn finish(&self) {
        self.state.set(Cancel::default());
    }

    fn requested(&self) -> bool {
        self.state.read(|c| c.requested)
    }

    async fn requested_now(&self) {
        self.state.wait_until(|c| c.requested).await;
    }
}

fn canceled() -> SqlError {
    SqlError::new("57014", "canceling statement due to user request")
}

fn check_cancel<B: Backend>(b: &B) -> Result<(), SqlError> {
    match b.cancel() {
        Some(c) if c.requested() => Err(canceled()),
        _ => Ok(()),
    }
}

/// A session's SQL state: its transaction block and its settings.
#[derive(Debug)]
pub struct SqlState {
    status: TxnStatus,
    settings: BTreeMap<String, String>,
    /// The block failed outside a statement's run (a statement that did not parse, in the
    /// extended protocol): the session's transaction is rolled back before the next one.
    abort_pending: bool,
    /// What `version()` answers, asked of the coordinator once per session.
    version: String,
}

impl Default for SqlState {
    fn default() -> SqlState {
        let settings = [
            ("server_version", "15.0 (hacluster)"),
            ("server_version_num", "150000"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("datestyle", "ISO, MDY"),
            ("timezone", "UTC"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("transaction_isolation", "read committed"),
            ("default_transaction_isolation", "read committed"),
            ("application_name", ""),
            ("search_path", "\"$user\", public"),
            ("extra_float_digits", "1"),
            ("max_identifier_length", "63"),
            ("is_superuser", "on"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        SqlState {
            status: TxnStatus::Idle,
            settings,
            abort_pending: false,
            version: String::new(),
        }
    }
}

impl SqlState {
    /// A state that holds nothing, cheap to make: what a session leaves in place of its own
    /// while a statement runs with it.
    pub(crate) fn placeholder() -> SqlState {
        SqlState {
            status: TxnStatus::Idle,
            settings: BTreeMap::new(),
            abort_pending: false,
            version: String::new(),
        }
    }

    pub fn status(&self) -> TxnStatus {
        self.status
    }

    /// A statement of the open block failed before it could run (it did not parse): the block
    /// fails, as any error in it does.
    pub(crate) fn fail_block(&mut self) {
        if self.status == TxnStatus::InBlock {
            self.status = TxnStatus::Failed;
            self.abort_pending = true;
        }
    }
}

/// A `DbError` as a client of PostgreSQL would see it.
pub fn sql_error(e: DbError) -> SqlError {
    match e {
        DbError::Unknown(m) => SqlError::new(
            "08007",
            format!("the transaction's outcome is unknown: {m}"),
        ),
        DbError::NotAllowed { .. } => SqlError::new("42501", e.to_string()),
        DbError::Failed(m) => {
            let code = if m.contains("duplicate key") {
                // unique_violation
                "23505"
            } else if m.contains("relation \"") && m.contains("does not exist") {
                // undefined_table
                "42P01"
            } else if m.contains("no longer serves") {
                // admin_shutdown: this coordinator was deposed; connect to the acting one
                "57P01"
            } else if m.contains("not operational") || m.contains("unavailable") {
                // cannot_connect_now: a content has no acting primary; retry later
                "57P03"
            } else if m.contains("transaction rolled back")
                || m.contains("lost the primary")
                || m.contains("cannot reach its primary")
            {
                // serialization_failure: cut by a failover and not retried; run it again
                "40001"
            } else if m.contains("append-optimized") {
                // feature_not_supported
                "0A000"
            } else {
                "XX000"
            };
            SqlError::new(code, m)
        }
    }
}

fn response_error(resp: ClientResponse) -> SqlError {
    match resp {
        ClientResponse::Error(e) => sql_error(e),
        ClientResponse::NotActive(why) => SqlError::new(
            "57P01",
            format!("this coordinator does not serve: {why}; connect to the acting coordinator"),
        ),
        other => SqlError::new("XX000", format!("unexpected answer: {other:?}")),
    }
}

fn no_table(name: &str) -> SqlError {
    SqlError::new("42P01", format!("relation \"{name}\" does not exist"))
}

fn done(tag: impl Into<String>) -> Outcome {
    Outcome::Done { tag: tag.into() }
}

/// Runs the statements of `text` one after another (the simple query protocol): each
/// statement's outcome, up to and including the first that fails.
pub(crate) async fn simple_query<B: Backend>(
    b: &mut B,
    state: &mut SqlState,
    text: &str,
) -> Vec<Result<Outcome, SqlError>> {
    if let Some(c) = b.cancel() {
        c.start();
    }
    let out = statements(b, state, text).await;
    if let Some(c) = b.cancel() {
        c.finish();
    }
    out
}

async fn statements<B: Backend>(
    b: &mut B,
    state: &mut SqlState,
    text: &str,
) -> Vec<Result<Outcome, SqlError>> {
    let stmts = match parse(text) {
        Ok(s) => s,
        Err(e) => {
            if std::mem::take(&mut state.abort_pending) || state.status == TxnStatus::InBlock {
                abort(b, state).await;
            }
            return vec![Err(e)];
        }
    };
    if stmts.is_empty() {
        return vec![Ok(Outcome::Empty)];
    }
    // Several statements sent at once, with no transaction control among them, are one
    // transaction (PostgreSQL's implicit block): all of them commit, or none.
    let implicit = stmts.len() > 1
        && state.status == TxnStatus::Idle
        && stmts.iter().all(|s| {
            matches!(
                s,
                Statement::Insert { .. }
                    | Statement::Update { .. }
                    | Statement::Delete { .. }
                    | Statement::Select(_)
                    | Statement::Set { .. }
                    | Statement::Show { .. }
                    | Statement::Ignored { .. }
            )
        });
    let mut out = Vec::with_capacity(stmts.len() + 1);
    if implicit {
        match b.call(ClientRequest::Begin).await {
            ClientResponse::Ok => state.status = TxnStatus::InBlock,
            other => return vec![Err(response_error(other))],
        }
    }
    for stmt in stmts {
        let r = execute_statement(b, state, &stmt, &[]).await;
        let failed = r.is_err();
        out.push(r);
        if failed {
            break;
        }
    }
    if implicit {
        // A failed statement already rolled the block back (`execute` did).
        if state.status == TxnStatus::InBlock {
            match b.call(ClientRequest::Commit).await {
                ClientResponse::Committed | ClientResponse::Ok => {}
                other => out.push(Err(response_error(other))),
            }
        }
        state.status = TxnStatus::Idle;
        state.abort_pending = false;
    }
    out
}

/// The one statement of `text`, parsed (the extended protocol's Parse).
pub fn parse_one(text: &str) -> Result<Option<Statement>, SqlError> {
    let mut stmts = parse(text)?;
    match stmts.len() {
        0 => Ok(None),
        1 => Ok(stmts.pop()),
        _ => Err(SqlError::new(
            "42601",
            "cannot insert multiple commands into a prepared statement",
        )),
    }
}

async fn abort<B: Backend>(b: &mut B, state: &mut SqlState) {
    let _ = b.call(ClientRequest::Abort).await;
    state.status = TxnStatus::Failed;
}

/// Runs one statement with its parameters, in the session's transaction block or in a
/// transaction of its own.
pub(crate) async fn execute<B: Backend>(
    b: &mut B,
    state: &mut SqlState,
    stmt: &Statement,
    params: &[Datum],
) -> Result<Outcome, SqlError> {
    if let Some(c) = b.cancel() {
        c.start();
    }
    let out = execute_statement(b, state, stmt, params).await;
    if let Some(c) = b.cancel() {
        c.finish();
    }
    out
}

async fn execute_statement<B: Backend>(
    b: &mut B,
    state: &mut SqlState,
    stmt: &Statement,
    params: &[Datum],
) -> Result<Outcome, SqlError> {
    if std::mem::take(&mut state.abort_pending) {
        let _ = b.call(ClientRequest::Abort).await;
    }
    if state.version.is_empty() {
        state.version = b.version();
    }
    let result = run(b, state, stmt, params).await;
    // Any error in a block fails it, whatever the statement: PostgreSQL's rule.
    if result.is_err() && state.status == TxnStatus::InBlock {
        abort(b, state).await;
    }
    result
}

async fn run<B: Backend>(
    b: &mut B,
    state: &mut SqlState,
    stmt: &Statement,
    params: &[Datum],
) -> Result<Outcome, SqlError> {
    match (state.status, stmt) {
        (TxnStatus::Failed, Statement::Commit | Statement::Rollback) => {
            state.status = TxnStatus::Idle;
            return Ok(done("ROLLBACK"));
        }
        (TxnStatus::Failed, _) => {
            return Err(SqlError::new(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ))
        }
        _ => {}
    }
    if !matches!(stmt, Statement::Commit | Statement::Rollback) {
        check_cancel(b)?;
    }
    match stmt {
        Statement::Begin => {
            if state.status == TxnStatus::Idle {
                match b.call(ClientRequest::Begin).await {
                    ClientResponse::Ok => state.status = TxnStatus::InBlock,
                    other => return Err(response_error(other)),
                }
            }
            Ok(done("BEGIN"))
        }
        Statement::Commit => {
            if state.status == TxnStatus::Idle {
                return Ok(done("COMMIT"));
            }
            state.status = TxnStatus::Idle;
            match b.call(ClientRequest::Commit).await {
                ClientResponse::Committed | ClientResponse::Ok
                    if b.bugs().sql_cancel_answered_after_commit =>
                {
                    check_cancel(b).map(|()| done("COMMIT"))
                }
                ClientResponse::Committed | ClientResponse::Ok => Ok(done("COMMIT")),
                _ if b.bugs().sql_commit_failure_answered_ok => Ok(done("COMMIT")),
                other => Err(response_error(other)),
            }
        }
        Statement::Rollback => {
            if state.status == TxnStatus::InBlock {
                let _ = b.call(ClientRequest::Abort).await;
            }
            state.status = TxnStatus::Idle;
            Ok(done("ROLLBACK"))
        }
        Statement::Set { name, value } => {
            let name = name.strip_prefix("session ").unwrap_or(name);
            state.settings.insert(name.to_string(), value.clone());
            Ok(done("SET"))
        }
        Statement::Show { name } => {
            let value = if name == "all" {
                return Ok(Outcome::Rows {
                    columns: vec![text_column("name"), text_column("setting")],
                    rows: state
                        .settings
                        .iter()
                        .map(|(k, v)| vec![Datum::Text(k.clone()), Datum::Text(v.clone())])
                        .collect(),
                    tag: format!("SHOW {}", state.settings.len()),
                });
            } else {
                setting(state, name)?
            };
            Ok(Outcome::Rows {
                columns: vec![text_column(name)],
                rows: vec![vec![Datum::Text(value)]],
                tag: "SHOW".into(),
            })
        }
        Statement::Ignored { tag } => Ok(done(tag.clone())),
        Statement::CreateTable {
            name,
            schema,
            if_not_exists,
        } => {
            if state.status == TxnStatus::InBlock {
                abort(b, state).await;
                return Err(SqlError::new(
                    "25001",
                    "CREATE TABLE cannot run inside a transaction block",
                ));
            }
            if is_view(name) {
                return Err(SqlError::new(
                    "42P07",
                    format!("relation \"{name}\" already exists"),
                ));
            }
            match b.table(name) {
                // The same table again: made on every content where an earlier attempt did
                // not reach (an interrupted CREATE TABLE is finished this way).
                Some(def) if *if_not_exists && def.schema.as_deref() == Some(schema) => {
                    match b.create_table(name, schema.clone()).await {
                        Ok(()) => Ok(done("CREATE TABLE")),
                        Err(e) => Err(sql_error(e)),
                    }
                }
                Some(_) if *if_not_exists => Ok(done("CREATE TABLE")),
                Some(_) => Err(SqlError::new(
                    "42P07",
                    format!("relation \"{name}\" already exists"),
                )),
                None => match b.create_table(name, schema.clone()).await {
                    Ok(()) => Ok(done("CREATE TABLE")),
                    Err(e) => Err(sql_error(e)),
                },
            }
        }
        Statement::DropTable { names, if_exists } => {
            if state.status == TxnStatus::InBlock {
                abort(b, state).await;
                return Err(SqlError::new(
                    "25001",
                    "DROP TABLE cannot run inside a transaction block",
                ));
            }
            // Every name is checked before anything is dropped.
            for name in names {
                if is_view(name) {
                    return Err(SqlError::new(
                        "42809",
                        format!("\"{name}\" is a view of the cluster's state, not a table"),
                    ));
                }
                if b.table(name).is_none() && !*if_exists {
                    return Err(no_table(name));
                }
            }
            for name in names {
                match b.drop_table(name).await {
                    Ok(()) => {}
                    // Dropped meanwhile by another session: gone, as IF EXISTS asks.
                    Err(DbError::Failed(m)) if *if_exists && m.contains("does not exist") => {}
                    Err(e) => return Err(sql_error(e)),
                }
            }
            Ok(done("DROP TABLE"))
        }
        Statement::Select(sel) if sel.from.as_deref().is_none_or(is_view) => {
            if sel.from.is_none() {
                let env = Env {
                    params,
                    settings: &state.settings,
                    version: &state.version,
                };
                sleep_if_asked(b.cancel(), &env, sel).await?;
            }
            let rows = match sel.from.as_deref() {
                None => (Vec::new(), vec![Vec::new()]),
                Some(view) => view_rows(b, view).await?,
            };
            let env = Env {
                params,
                settings: &state.settings,
                version: &state.version,
            };
            project(&env, sel, &rows.0, rows.1)
        }
        Statement::Insert { .. }
        | Statement::Update { .. }
        | Statement::Delete { .. }
        | Statement::Select(_) => {
            let autocommit = state.status == TxnStatus::Idle;
            if autocommit {
                match b.call(ClientRequest::Begin).await {
                    ClientResponse::Ok => {}
                    other => return Err(response_error(other)),
                }
            }
            let env = Env {
                params,
                settings: &state.settings,
                version: &state.version,
            };
            let result = data_statement(b, &env, stmt).await;
            match (&result, autocommit) {
                (Ok(_), true) => match b.call(ClientRequest::Commit).await {
                    ClientResponse::Committed | ClientResponse::Ok
                        if b.bugs().sql_cancel_answered_after_commit =>
                    {
                        check_cancel(b)?
                    }
                    ClientResponse::Committed | ClientResponse::Ok => {}
                    other => return Err(response_error(other)),
                },
                (Err(_), true) => {
                    let _ = b.call(ClientRequest::Abort).await;
                }
                (Err(_), false) => abort(b, state).await,
                (Ok(_), false) => {}
            }
            result
        }
    }
}

/// `SELECT pg_sleep(n)`: waits `n` seconds (a whole number, or text such as `'0.5'`), or
/// until the client cancels the statement.
async fn sleep_if_asked(
    cancel: Option<std::sync::Arc<CancelSignal>>,
    env: &Env<'_>,
    sel: &Select,
) -> Result<(), SqlError> {
    for item in &sel.items {
        let SelectItem::Expr {
            expr: Expr::Call { name, args, .. },
            ..
        } = item
        else {
            continue;
        };
        if name != "pg_sleep" {
            continue;
        }
        let [arg] = &args[..] else {
            return Err(SqlError::new(
                "42883",
                "function pg_sleep takes 1 argument(s)",
            ));
        };
        let seconds = match eval(env, arg, &[], &[])? {
            Datum::Null => 0.0,
            d => d
                .to_text()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .ok_or_else(|| SqlError::new("22P02", "pg_sleep takes a number of seconds"))?,
        };
        // At most a day: a statement that long is a mistake, and a finite wait stays one.
        let wait = Duration::from_secs_f64(seconds.clamp(0.0, 86_400.0));
        let sleep = runtime::sleep(wait);
        match &cancel {
            Some(c) => {
                tokio::select! {
                    _ = sleep => {}
                    _ = c.requested_now() => return Err(canceled()),
                }
            }
            None => sleep.await,
        }
    }
    Ok(())
}

fn text_column(name: &str) -> Column {
    Column {
        name: name.to_string(),
        ty: SqlType::Text,
    }
}

fn setting(state: &SqlState, name: &str) -> Result<String, SqlError> {
    let name = name.replace(' ', "_");
    state.settings.get(&name).cloned().ok_or_else(|| {
        SqlError::new(
            "42704",
            format!("unrecognized configuration parameter \"{name}\""),
        )
    })
}

/// The cluster's own tables, read with plain `SELECT`.
const VIEWS: &[&str] = &[
    "gp_segment_configuration",
    "gp_configuration_history",
    "gp_stat_replication",
];

fn is_view(name: &str) -> bool {
    VIEWS.contains(&name)
}

fn col(name: &str, ty: SqlType) -> Column {
    Column {
        name: name.to_string(),
        ty,
    }
}

fn view_columns(view: &str) -> Vec<Column> {
    use SqlType::*;
    match view {
        "gp_segment_configuration" => vec![
            col("dbid", Int4),
            col("content", Int4),
            col("role", Text),
            col("preferred_role", Text),
            col("mode", Text),
            col("status", Text),
            col("port", Int4),
            col("hostname", Text),
            col("address", Text),
            col("datadir", Text),
        ],
        "gp_configuration_history" => {
            vec![col("time", Timestamp), col("dbid", Int4), col("desc", Text)]
        }
        _ => vec![
            col("gp_segment_id", Int4),
            col("pid", Int4),
            col("usesysid", Int4),
            col("usename", Text),
            col("application_name", Text),
            col("client_addr", Text),
            col("client_hostname", Text),
            col("client_port", Int4),
            col("backend_start", Timestamp),
            col("backend_xmin", Text),
            col("state", Text),
            col("sent_lsn", Text),
            col("write_lsn", Text),
            col("flush_lsn", Text),
            col("replay_lsn", Text),
            col("write_lag", Text),
            col("flush_lag", Text),
            col("replay_lag", Text),
            col("sync_priority", Int4),
            col("sync_state", Text),
            col("reply_time", Timestamp),
            col("sync_error", Text),
        ],
    }
}

fn catalog_rows(catalog: &Catalog) -> Vec<Vec<Datum>> {
    catalog
        .segments
        .values()
        .map(|s| {
            vec![
                Datum::Int4(s.dbid as i32),
                Datum::Int4(s.content as i32),
                Datum::Text(s.role.code().to_string()),
                Datum::Text(s.preferred_role.code().to_string()),
                Datum::Text(
                    match s.mode {
                        crate::model::catalog::Mode::Synced => "s",
                        crate::model::catalog::Mode::NotSynced => "n",
                    }
                    .to_string(),
                ),
                Datum::Text(
                    match s.status {
                        crate::model::catalog::Status::Up => "u",
                        crate::model::catalog::Status::Down => "d",
                    }
                    .to_string(),
                ),
                Datum::Int4(s.port as i32),
                Datum::Text(s.hostname.clone()),
                Datum::Text(s.address.clone()),
                Datum::Text(s.datadir.clone()),
            ]
        })
        .collect()
}

/// A WAL position as PostgreSQL prints an LSN.
fn lsn(at: u64) -> Datum {
    Datum::Text(format!("{:X}/{:X}", at >> 32, at & 0xffff_ffff))
}

/// `gp_stat_replication`: PostgreSQL's `pg_stat_replication` for every mirrored pair, from
/// the primary's side (the coordinator's for its standby), as `state` gathers it; where the
/// mirror is not streaming, the walsender's fields are NULL and `sync_error` says why.
fn replication_rows(report: &crate::wire::StateReport) -> Vec<Vec<Datum>> {
    use crate::model::catalog::Role;
    let catalog = &report.catalog;
    let mut rows = Vec::new();
    let row = |content: i16,
               mirror: &crate::model::catalog::SegmentConfig,
               state: Option<&str>,
               sent: u64,
               flushed: u64,
               replayed: Option<u64>,
               sync: bool,
               error: &str| {
        let streaming = state.is_some();
        let on = |d: Datum| if streaming { d } else { Datum::Null };
        vec![
            Datum::Int4(content as i32),
            Datum::Null,
            Datum::Null,
            on(Datum::Text("gpadmin".into())),
            on(Datum::Text(
                if content == -1 {
                    "gp_walreceiver_standby"
                } else {
                    "gp_walreceiver"
                }
                .into(),
            )),
            on(Datum::Text(mirror.address.clone())),
            on(Datum::Text(mirror.hostname.clone())),
            Datum::Null,
            Datum::Null,
            Datum::Null,
            state.map_or(Datum::Null, |s| Datum::Text(s.into())),
            on(lsn(sent)),
            on(lsn(flushed)),
            on(lsn(flushed)),
            match replayed {
                Some(r) if streaming => lsn(r),
                _ => on(lsn(flushed)),
            },
            Datum::Null,
            Datum::Null,
            Datum::Null,
            on(Datum::Int4(1)),
            on(Datum::Text(if sync { "sync" } else { "async" }.into())),
            Datum::Null,
            Datum::Text(error.into()),
        ]
    };
    if let Some(m) = &report.standby {
        if let Some(standby) = &m.standby {
            let state = (!m.detail_state.is_empty()).then_some(m.detail_state.as_str());
            let error = if state.is_some() { "none" } else { "walread" };
            rows.push(row(
                -1,
                standby,
                state,
                m.coordinator_flushed_lsn,
                m.standby_flushed_lsn,
                None,
                m.detail_state == "streaming",
                error,
            ));
        }
    }
    for p in catalog
        .segments
        .values()
        .filter(|s| s.role == Role::Primary && s.content >= 0)
    {
        let Some(m) = catalog
            .segments
            .values()
            .find(|s| s.content == p.content && s.role == Role::Mirror)
        else {
            continue;
        };
        let info = report.replication.get(&p.dbid).cloned().flatten();
        let replayed = report
            .replication
            .get(&m.dbid)
            .cloned()
            .flatten()
            .map(|r| r.replay_lsn);
        match info {
            Some(i) if i.mirror_connected => {
                let state = if i.mirror_caught_up {
                    "streaming"
                } else {
                    "catchup"
                };
                rows.push(row(
                    p.content,
                    m,
                    Some(state),
                    i.flushed,
                    i.mirror_flushed,
                    replayed,
                    i.mirror_caught_up,
                    "none",
                ));
            }
            Some(_) => rows.push(row(p.content, m, None, 0, 0, None, false, "walread")),
            None => rows.push(row(
                p.content,
                m,
                None,
                0,
                0,
                None,
                false,
                "primary unreachable",
            )),
        }
    }
    rows
}

async fn view_rows<B: Backend>(
    b: &mut B,
    view: &str,
) -> Result<(Vec<Column>, Vec<Vec<Datum>>), SqlError> {
    let columns = view_columns(view);
    let rows = match view {
        "gp_configuration_history" => match b.call(ClientRequest::ConfigurationHistory).await {
            ClientResponse::ConfigurationHistory { rows, .. } => rows
                .into_iter()
                .map(
                    |HistoryRow {
                         time_ms,
                         dbid,
                         desc,
                     }| {
                        vec![
                            Datum::Timestamp(time_ms as i64 * 1000 - 946_684_800_000_000),
                            Datum::Int4(dbid as i32),
                            Datum::Text(desc),
                        ]
                    },
                )
                .collect(),
            other => return Err(response_error(other)),
        },
        "gp_segment_configuration" => match b.call(ClientRequest::Catalog).await {
            ClientResponse::Catalog(c) => catalog_rows(&c),
            other => return Err(response_error(other)),
        },
        _ => {
            let req = ClientRequest::Admin(crate::wire::AdminRequest::State);
            match b.call(req).await {
                ClientResponse::Admin(crate::wire::AdminReply::State(report)) => {
                    replication_rows(&report)
                }
                other => return Err(response_error(other)),
            }
        }
    };
    Ok((columns, rows))
}

/// What an expression may read besides the row: parameters and settings.
struct Env<'a> {
    params: &'a [Datum],
    settings: &'a BTreeMap<String, String>,
    version: &'a str,
}

fn schema_of<B: Backend>(b: &B, table: &str) -> Result<(TableDef, TableSchema), SqlError> {
    if is_view(table) {
        return Err(SqlError::new(
            "42809",
            format!("\"{table}\" is a system view: it can only be read"),
        ));
    }
    let def = b.table(table).ok_or_else(|| no_table(table))?;
    let schema = def.schema.as_deref().cloned().ok_or_else(|| {
        SqlError::new(
            "42809",
            format!("\"{table}\" is a key-value table, not one made by CREATE TABLE"),
        )
    })?;
    Ok((def, schema))
}

async fn data_statement<B: Backend>(
    b: &mut B,
    env: &Env<'_>,
    stmt: &Statement,
) -> Result<Outcome, SqlError> {
    match stmt {
        Statement::Insert {
            table,
            columns,
            rows,
            returning,
        } => {
            insert(
                b,
                env,
                table,
                columns.as_deref(),
                rows,
                returning.as_deref(),
            )
            .await
        }
        Statement::Select(sel) => {
            let table = sel.from.as_deref().expect("a table read");
            let (def, schema) = schema_of(b, table)?;
            let found = find_rows(b, env, &def, &schema, sel.filter.as_ref()).await?;
            let columns = schema.result_columns();
            project(
                env,
                sel,
                &columns,
                found.into_iter().map(|r| r.row).collect(),
            )
        }
        Statement::Update {
            table,
            sets,
            filter,
        } => update(b, env, table, sets, filter.as_ref()).await,
        Statement::Delete { table, filter } => {
            let (def, schema) = schema_of(b, table)?;
            let found = find_rows(b, env, &def, &schema, filter.as_ref()).await?;
            let mut n = 0u64;
            for r in &found {
                for c in r.contents(b, &schema) {
                    let op = Op::Delete {
                        table: def.name.clone(),
                        key: r.key,
                    };
                    exec(b, op, c).await?;
                }
                n += 1;
            }
            Ok(done(format!("DELETE {n}")))
        }
        _ => unreachable!("not a data statement"),
    }
}

async fn exec<B: Backend>(b: &mut B, op: Op, content: i16) -> Result<OpResult, SqlError> {
    check_cancel(b)?;
    match b
        .call(ClientRequest::Exec {
            op,
            content: Some(content),
        })
        .await
    {
        ClientResponse::Result(r) => Ok(r),
        other => Err(response_error(other)),
    }
}

/// The content a row is stored on, by the table's distribution (`None`: every content).
fn placement(schema: &TableSchema, row: &[Datum], key: Key, contents: usize) -> Option<i16> {
    match schema.distribution {
        Distribution::By(c) => Some(content_for_key(row[c].distribution_hash(), contents)),
        Distribution::Randomly => Some(content_for_key(key, contents)),
        Distribution::Replicated => None,
    }
}

fn hidden_key(number: u64) -> Key {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x6861_6361_6c75, 0x726f_776b_6579);
    h.write_u64(number);
    h.finish() as i64
}

async fn insert<B: Backend>(
    b: &mut B,
    env: &Env<'_>,
    table: &str,
    columns: Option<&[String]>,
    rows: &[Vec<Expr>],
    returning: Option<&[SelectItem]>,
) -> Result<Outcome, SqlError> {
    let (def, schema) = schema_of(b, table)?;
    let targets: Vec<usize> = match columns {
        None => (0..schema.columns.len()).collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                schema.column(n).ok_or_else(|| {
                    SqlError::new(
                        "42703",
                        format!("column \"{n}\" of relation \"{table}\" does not exist"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let contents = b.contents();
    let mut inserted = Vec::new();
    for values in rows {
        if values.len() > targets.len() {
            return Err(SqlError::new(
                "42601",
                "INSERT has more expressions than target columns",
            ));
        }
        if values.len() < targets.len() && columns.is_some() {
            return Err(SqlError::new(
                "42601",
                "INSERT has more target columns than expressions",
            ));
        }
        let mut row = vec![Datum::Null; schema.columns.len()];
        for (v, &c) in values.iter().zip(&targets) {
            row[c] = eval(env, v, &[], &[])?.coerce(schema.columns[c].ty)?;
        }
        check_not_null(table, &schema, &row)?;
        let key = match schema.primary_key {
            Some(k) => row[k].as_i64().expect("an integer key, not null"),
            None => hidden_key(b.row_number()),
        };
        let value = encode_row(&row);
        let places: Vec<i16> = match placement(&schema, &row, key, contents) {
            Some(c) => vec![c],
            None => (0..contents as i16).collect(),
        };
        for c in places {
            exec(
                b,
                Op::Insert {
                    table: def.name.clone(),
                    key,
                    value: value.clone(),
                },
                c,
            )
            .await?;
        }
        inserted.push(row);
    }
    let n = inserted.len();
    match returning {
        None => Ok(done(format!("INSERT 0 {n}"))),
        Some(items) => {
            let sel = Select {
                from: Some(table.to_string()),
                items: items.to_vec(),
                filter: None,
                order_by: Vec::new(),
                limit: None,
                offset: None,
            };
            match project(env, &sel, &schema.result_columns(), inserted)? {
                Outcome::Rows { columns, rows, .. } => Ok(Outcome::Rows {
                    columns,
                    rows,
                    tag: format!("INSERT 0 {n}"),
                }),
                other => Ok(other),
            }
        }
    }
}

fn check_not_null(table: &str, schema: &TableSchema, row: &[Datum]) -> Result<(), SqlError> {
    for (c, d) in schema.columns.iter().zip(row) {
        if c.not_null && d.is_null() {
            return Err(SqlError::new(
                "23502",
                format!(
                    "null value in column \"{}\" of relation \"{table}\" violates not-null constraint",
                    c.name
                ),
            ));
        }
    }
    Ok(())
}

async fn update<B: Backend>(
    b: &mut B,
    env: &Env<'_>,
    table: &str,
    sets: &[(String, Expr)],
    filter: Option<&Expr>,
) -> Result<Outcome, SqlError> {
    let (def, schema) = schema_of(b, table)?;
    let mut assignments = Vec::with_capacity(sets.len());
    for (name, e) in sets {
        let c = schema.column(name).ok_or_else(|| {
            SqlError::new(
                "42703",
                format!("column \"{name}\" of relation \"{table}\" does not exist"),
            )
        })?;
        let fixed = Some(c) == schema.primary_key
            || matches!(schema.distribution, Distribution::By(d) if d == c);
        if fixed {
            return Err(SqlError::unsupported(format!(
                "updating the key or distribution column \"{name}\""
            )));
        }
        assignments.push((c, e));
    }
    let found = find_rows(b, env, &def, &schema, filter).await?;
    let names: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    let mut n = 0u64;
    for r in &found {
        let mut row = r.row.clone();
        for (c, e) in &assignments {
            row[*c] = eval(env, e, &names, &r.row)?.coerce(schema.columns[*c].ty)?;
        }
        check_not_null(table, &schema, &row)?;
        let value = encode_row(&row);
        for c in r.contents(b, &schema) {
            exec(
                b,
                Op::Update {
                    table: def.name.clone(),
                    key: r.key,
                    value: value.clone(),
                },
                c,
            )
            .await?;
        }
        n += 1;
    }
    Ok(done(format!("UPDATE {n}")))
}

/// Greenplum's system column naming the content a row is stored on; a filter on it reads
/// that content only.
const SEGMENT_ID: &str = "gp_segment_id";

/// A stored row found by a statement.
struct Found {
    content: i16,
    key: Key,
    row: Vec<Datum>,
}

impl Found {
    /// Where a write of this row goes: its content, or every content for a replicated table.
    fn contents<B: Backend>(&self, b: &B, schema: &TableSchema) -> Vec<i16> {
        match schema.distribution {
            Distribution::Replicated => (0..b.contents() as i16).collect(),
            _ => vec![self.content],
        }
    }
}

/// The value `column = constant` pins in a filter's conjuncts, if any.
fn pinned(filter: &Expr, column: &str, env: &Env<'_>) -> Option<Datum> {
    match filter {
        Expr::Binary(l, BinOp::And, r) => pinned(l, column, env).or_else(|| pinned(r, column, env)),
        Expr::Binary(l, BinOp::Eq, r) => {
            let (c, v) = match (&**l, &**r) {
                (Expr::Column(c), v) | (v, Expr::Column(c)) => (c, v),
                _ => return None,
            };
            if c != column || matches!(v, Expr::Column(_)) {
                return None;
            }
            eval(env, v, &[], &[]).ok()
        }
        _ => None,
    }
}

/// The rows of `def` that `filter` keeps: read on the one content the distribution key pins,
/// by key where it is the primary key, else scanned on every content.
async fn find_rows<B: Backend>(
    b: &mut B,
    env: &Env<'_>,
    def: &TableDef,
    schema: &TableSchema,
    filter: Option<&Expr>,
) -> Result<Vec<Found>, SqlError> {
    let contents = b.contents();
    let mut names: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    let mut targets: Vec<i16> = (0..contents as i16).collect();
    let mut by_key = None;
    if let (Some(f), Distribution::By(d)) = (filter, schema.distribution) {
        if let Some(v) = pinned(f, &names[d], env) {
            let v = v.coerce(schema.columns[d].ty)?;
            targets = vec![content_for_key(v.distribution_hash(), contents)];
            if schema.primary_key == Some(d) {
                by_key = v.as_i64();
            }
        }
    }
    // Greenplum's system column: the content a row is stored on.
    let segment_id = schema.column(SEGMENT_ID).is_none();
    if segment_id {
        if let Some(f) = filter {
            if let Some(c) = pinned(f, SEGMENT_ID, env).and_then(|v| v.as_i64()) {
                targets.retain(|t| *t as i64 == c);
            }
        }
        names.push(SEGMENT_ID.to_string());
    }
    if schema.distribution == Distribution::Replicated {
        targets.truncate(1);
    }
    let mut stored: Vec<(i16, Key, Vec<u8>)> = Vec::new();
    for c in targets {
        match by_key {
            Some(key) => {
                let op = Op::Get {
                    table: def.name.clone(),
                    key,
                };
                if let OpResult::Row(Some(v)) = exec(b, op, c).await? {
                    stored.push((c, key, v));
                }
            }
            None => {
                let op = Op::Scan {
                    table: def.name.clone(),
                };
                if let OpResult::Rows(rows) = exec(b, op, c).await? {
                    if stored.len() + rows.len() > MAX_GATHERED_ROWS {
                        return Err(SqlError::new(
                            "54000",
                            format!("the statement would gather more than {MAX_GATHERED_ROWS} rows on the coordinator"),
                        ));
                    }
                    stored.extend(rows.into_iter().map(|(k, v)| (c, k, v)));
                }
            }
        }
    }
    let mut found = Vec::with_capacity(stored.len());
    for (content, key, bytes) in stored {
        let mut row = decode_row(&bytes)?;
        if row.len() != schema.columns.len() {
            return Err(SqlError::new(
                "XX001",
                format!(
                    "a stored row of \"{}\" has {} values for {} columns",
                    def.name,
                    row.len(),
                    schema.columns.len()
                ),
            ));
        }
        if segment_id {
            row.push(Datum::Int4(content as i32));
        }
        let keep = match filter {
            None => true,
            Some(f) => truthy(&eval(env, f, &names, &row)?),
        };
        if segment_id {
            row.pop();
        }
        if keep {
            found.push(Found { content, key, row });
        }
    }
    Ok(found)
}

fn truthy(d: &Datum) -> bool {
    matches!(d, Datum::Bool(true))
}

fn is_aggregate(e: &Expr) -> bool {
    match e {
        Expr::Call { name, .. } => matches!(name.as_str(), "count" | "sum" | "min" | "max" | "avg"),
        Expr::Binary(l, _, r) => is_aggregate(l) || is_aggregate(r),
        Expr::Not(e) | Expr::Neg(e) | Expr::IsNull(e, _) | Expr::Cast(e, _) => is_aggregate(e),
        _ => false,
    }
}

/// Filters are applied; this computes the select list (or its aggregates), sorts, and cuts.
fn project(
    env: &Env<'_>,
    sel: &Select,
    columns: &[Column],
    rows: Vec<Vec<Datum>>,
) -> Result<Outcome, SqlError> {
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    // A view's rows (or none, without FROM) are filtered here; a table's were by find_rows.
    let rows: Vec<Vec<Datum>> = if sel.from.as_deref().is_none_or(is_view) {
        match &sel.filter {
            None => rows,
            Some(f) => {
                let mut kept = Vec::new();
                for r in rows {
                    if truthy(&eval(env, f, &names, &r)?) {
                        kept.push(r);
                    }
                }
                kept
            }
        }
    } else {
        rows
    };
    let aggregate = sel
        .items
        .iter()
        .any(|i| matches!(i, SelectItem::Expr { expr, .. } if is_aggregate(expr)));
    let mut out_columns = Vec::new();
    for item in &sel.items {
        match item {
            SelectItem::Wildcard => {
                if aggregate {
                    return Err(SqlError::new(
                        "42803",
                        "a column must appear in an aggregate function: there is no GROUP BY",
                    ));
                }
                out_columns.extend(columns.iter().cloned());
            }
            SelectItem::Expr { expr, name } => out_columns.push(Column {
                name: name.clone(),
                ty: type_of(expr, columns, env)?,
            }),
        }
    }
    // Rows paired with their sort keys, computed on the input row.
    let mut out: Vec<(Vec<Datum>, Vec<Datum>)> = Vec::new();
    if aggregate {
        let mut row = Vec::new();
        for item in &sel.items {
            if let SelectItem::Expr { expr, .. } = item {
                row.push(eval_aggregate(env, expr, &names, &rows)?);
            }
        }
        out.push((row, Vec::new()));
    } else {
        for r in &rows {
            let mut row = Vec::with_capacity(out_columns.len());
            for item in &sel.items {
                match item {
                    SelectItem::Wildcard => row.extend(r.iter().cloned()),
                    SelectItem::Expr { expr, .. } => row.push(eval(env, expr, &names, r)?),
                }
            }
            let mut keys = Vec::with_capacity(sel.order_by.len());
            for (e, _) in &sel.order_by {
                let k = match e {
                    // ORDER BY 2: the select list's second column.
                    Expr::Literal(Datum::Int4(n)) => {
                        let i = (*n as usize)
                            .checked_sub(1)
                            .filter(|i| *i < row.len())
                            .ok_or_else(|| {
                                SqlError::new(
                                    "42P10",
                                    format!("ORDER BY position {n} is not in select list"),
                                )
                            })?;
                        row[i].clone()
                    }
                    // A select-list alias, else a column of the input.
                    Expr::Column(c) if !names.contains(c) => {
                        match out_columns.iter().position(|o| &o.name == c) {
                            Some(i) => row[i].clone(),
                            None => eval(env, e, &names, r)?,
                        }
                    }
                    e => eval(env, e, &names, r)?,
                };
                keys.push(k);
            }
            out.push((row, keys));
        }
    }
    if !sel.order_by.is_empty() && !aggregate {
        let desc: Vec<bool> = sel.order_by.iter().map(|(_, d)| *d).collect();
        out.sort_by(|a, b| {
            for (i, d) in desc.iter().enumerate() {
                let o = compare_sort(&a.1[i], &b.1[i]);
                let o = if *d { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    let count_of = |e: &Option<Expr>, what: &str| -> Result<Option<usize>, SqlError> {
        match e {
            None => Ok(None),
            Some(e) => match eval(env, e, &[], &[])? {
                Datum::Null => Ok(None),
                d => match d.as_i64() {
                    Some(n) if n >= 0 => Ok(Some(n as usize)),
                    _ => Err(SqlError::new(
                        "2201W",
                        format!("{what} must not be negative"),
                    )),
                },
            },
        }
    };
    let offset = count_of(&sel.offset, "OFFSET")?.unwrap_or(0);
    let limit = count_of(&sel.limit, "LIMIT")?;
    let rows: Vec<Vec<Datum>> = out
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|(r, _)| r)
        .collect();
    Ok(Outcome::Rows {
        tag: format!("SELECT {}", rows.len()),
        columns: out_columns,
        rows,
    })
}

/// NULLs sort last (ascending), as in PostgreSQL.
fn compare_sort(a: &Datum, b: &Datum) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Datum::Null, Datum::Null) => Equal,
        (Datum::Null, _) => Greater,
        (_, Datum::Null) => Less,
        _ => compare(a, b).unwrap_or(Equal),
    }
}

fn type_of(e: &Expr, columns: &[Column], env: &Env<'_>) -> Result<SqlType, SqlError> {
    Ok(match e {
        Expr::Column(c) => columns
            .iter()
            .find(|x| &x.name == c)
            .map(|x| x.ty)
            .ok_or_else(|| no_column(c))?,
        Expr::Cast(_, t) => *t,
        Expr::Literal(Datum::Null) => SqlType::Text,
        Expr::Literal(d) => datum_type(d),
        Expr::Param(n) => env
            .params
            .get(n - 1)
            .map(datum_type)
            .unwrap_or(SqlType::Text),
        Expr::Binary(l, op, r) => match op {
            BinOp::Eq
            | BinOp::NotEq
            | BinOp::Lt
            | BinOp::LtEq
            | BinOp::Gt
            | BinOp::GtEq
            | BinOp::And
            | BinOp::Or => SqlType::Bool,
            BinOp::Concat => SqlType::Text,
            _ => {
                let (a, b) = (type_of(l, columns, env)?, type_of(r, columns, env)?);
                if a == SqlType::Int4 && b == SqlType::Int4 {
                    SqlType::Int4
                } else {
                    SqlType::Int8
                }
            }
        },
        Expr::Not(_) | Expr::IsNull(_, _) => SqlType::Bool,
        Expr::Neg(e) => type_of(e, columns, env)?,
        Expr::Call { name, args, .. } => match name.as_str() {
            "count" | "sum" => SqlType::Int8,
            "avg" => SqlType::Int8,
            "min" | "max" => match args.first() {
                Some(a) => type_of(a, columns, env)?,
                None => SqlType::Int8,
            },
            "now" | "current_timestamp" | "localtimestamp" => SqlType::Timestamp,
            "pg_backend_pid" | "length" => SqlType::Int4,
            _ => SqlType::Text,
        },
    })
}

fn datum_type(d: &Datum) -> SqlType {
    match d {
        Datum::Null | Datum::Text(_) => SqlType::Text,
        Datum::Int4(_) => SqlType::Int4,
        Datum::Int8(_) => SqlType::Int8,
        Datum::Bool(_) => SqlType::Bool,
        Datum::Timestamp(_) => SqlType::Timestamp,
    }
}

fn no_column(c: &str) -> SqlError {
    SqlError::new("42703", format!("column \"{c}\" does not exist"))
}

/// Orders two values, an untyped string literal taking the other side's type.
fn compare(a: &Datum, b: &Datum) -> Result<std::cmp::Ordering, SqlError> {
    use Datum::*;
    Ok(match (a, b) {
        (Int4(_) | Int8(_), Int4(_) | Int8(_)) => a.as_i64().cmp(&b.as_i64()),
        (Text(x), Text(y)) => x.cmp(y),
        (Bool(x), Bool(y)) => x.cmp(y),
        (Timestamp(x), Timestamp(y)) => x.cmp(y),
        (Text(s), other) => return compare(&Text(s.clone()).coerce(datum_type(other))?, other),
        (other, Text(s)) => return compare(other, &Text(s.clone()).coerce(datum_type(other))?),
        _ => {
            return Err(SqlError::new(
                "42883",
                format!(
                    "operator does not exist: {} = {}",
                    datum_type(a).name(),
                    datum_type(b).name()
                ),
            ))
        }
    })
}

fn eval(env: &Env<'_>, e: &Expr, names: &[String], row: &[Datum]) -> Result<Datum, SqlError> {
    Ok(match e {
        Expr::Column(c) => match names.iter().position(|n| n == c) {
            Some(i) => row[i].clone(),
            None => return Err(no_column(c)),
        },
        Expr::Literal(d) => d.clone(),
        Expr::Param(n) => env
            .params
            .get(n - 1)
            .cloned()
            .ok_or_else(|| SqlError::new("08P01", format!("there is no parameter ${n}")))?,
        Expr::Cast(inner, ty) => eval(env, inner, names, row)?.coerce(*ty)?,
        Expr::Not(inner) => match eval(env, inner, names, row)? {
            Datum::Null => Datum::Null,
            Datum::Bool(v) => Datum::Bool(!v),
            _ => {
                return Err(SqlError::new(
                    "42804",
                    "argument of NOT must be type boolean",
                ))
            }
        },
        Expr::Neg(inner) => match eval(env, inner, names, row)? {
            Datum::Null => Datum::Null,
            Datum::Int4(v) => Datum::Int4(v.checked_neg().ok_or_else(overflow)?),
            Datum::Int8(v) => Datum::Int8(v.checked_neg().ok_or_else(overflow)?),
            _ => {
                return Err(SqlError::new(
                    "42883",
                    "operator does not exist: - on a non-number",
                ))
            }
        },
        Expr::IsNull(inner, negated) => {
            Datum::Bool(eval(env, inner, names, row)?.is_null() != *negated)
        }
        Expr::Binary(l, op, r) => {
            let a = eval(env, l, names, row)?;
            let b = eval(env, r, names, row)?;
            binary(a, *op, b)?
        }
        Expr::Call { name, args, star } => {
            if is_aggregate(e) {
                return Err(SqlError::new(
                    "42803",
                    format!("aggregate function {name} is not allowed here"),
                ));
            }
            let _ = star;
            let vals = args
                .iter()
                .map(|a| eval(env, a, names, row))
                .collect::<Result<Vec<_>, _>>()?;
            scalar_function(env, name, vals)?
        }
    })
}

fn overflow() -> SqlError {
    SqlError::new("22003", "integer out of range")
}

fn binary(a: Datum, op: BinOp, b: Datum) -> Result<Datum, SqlError> {
    use std::cmp::Ordering::*;
    if op == BinOp::And || op == BinOp::Or {
        let v = |d: &Datum| match d {
            Datum::Null => Ok(None),
            Datum::Bool(v) => Ok(Some(*v)),
            _ => Err(SqlError::new(
                "42804",
                "argument of AND/OR must be type boolean",
            )),
        };
        let (x, y) = (v(&a)?, v(&b)?);
        return Ok(match (op, x, y) {
            (BinOp::And, Some(false), _) | (BinOp::And, _, Some(false)) => Datum::Bool(false),
            (BinOp::And, Some(true), Some(true)) => Datum::Bool(true),
            (BinOp::Or, Some(true), _) | (BinOp::Or, _, Some(true)) => Datum::Bool(true),
            (BinOp::Or, Some(false), Some(false)) => Datum::Bool(false),
            _ => Datum::Null,
        });
    }
    if a.is_null() || b.is_null() {
        return Ok(Datum::Null);
    }
    let cmp = |want: &[std::cmp::Ordering]| -> Result<Datum, SqlError> {
        Ok(Datum::Bool(want.contains(&compare(&a, &b)?)))
    };
    match op {
        BinOp::Eq => cmp(&[Equal]),
        BinOp::NotEq => cmp(&[Less, Greater]),
        BinOp::Lt => cmp(&[Less]),
        BinOp::LtEq => cmp(&[Less, Equal]),
        BinOp::Gt => cmp(&[Greater]),
        BinOp::GtEq => cmp(&[Greater, Equal]),
        BinOp::Concat => Ok(Datum::Text(format!(
            "{}{}",
            a.to_text().unwrap_or_default(),
            b.to_text().unwrap_or_default()
        ))),
        _ => {
            let narrow = matches!((&a, &b), (Datum::Int4(_), Datum::Int4(_)));
            let num = |d: &Datum| -> Result<i64, SqlError> {
                match d {
                    Datum::Text(s) => Datum::parse(SqlType::Int8, s)?
                        .as_i64()
                        .ok_or_else(overflow),
                    d => d.as_i64().ok_or_else(|| {
                        SqlError::new("42883", "arithmetic on a value that is not a number")
                    }),
                }
            };
            let (x, y) = (num(&a)?, num(&b)?);
            let v = match op {
                BinOp::Plus => x.checked_add(y),
                BinOp::Minus => x.checked_sub(y),
                BinOp::Multiply => x.checked_mul(y),
                BinOp::Divide | BinOp::Modulo if y == 0 => {
                    return Err(SqlError::new("22012", "division by zero"))
                }
                BinOp::Divide => x.checked_div(y),
                BinOp::Modulo => x.checked_rem(y),
                _ => unreachable!(),
            }
            .ok_or_else(overflow)?;
            Ok(if narrow {
                Datum::Int4(i32::try_from(v).map_err(|_| overflow())?)
            } else {
                Datum::Int8(v)
            })
        }
    }
}

fn scalar_function(env: &Env<'_>, name: &str, args: Vec<Datum>) -> Result<Datum, SqlError> {
    let arity = |n: usize| -> Result<(), SqlError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(SqlError::new(
                "42883",
                format!("function {name} takes {n} argument(s), not {}", args.len()),
            ))
        }
    };
    Ok(match name {
        "version" => {
            arity(0)?;
            Datum::Text(env.version.to_string())
        }
        "current_setting" => {
            if args.is_empty() || args.len() > 2 {
                arity(1)?;
            }
            let key = args[0].to_text().unwrap_or_default().to_ascii_lowercase();
            match env.settings.get(&key) {
                Some(v) => Datum::Text(v.clone()),
                None if matches!(args.get(1), Some(Datum::Bool(true))) => Datum::Null,
                None => {
                    return Err(SqlError::new(
                        "42704",
                        format!("unrecognized configuration parameter \"{key}\""),
                    ))
                }
            }
        }
        // Waited for before the row is made (see `sleep_if_asked`); void, shown empty.
        "pg_sleep" => Datum::Null,
        "current_database" => Datum::Text("postgres".into()),
        "current_user" | "session_user" | "current_schema" => Datum::Text(
            if name == "current_schema" {
                "public"
            } else {
                "gpadmin"
            }
            .into(),
        ),
        "length" | "char_length" => {
            arity(1)?;
            match &args[0] {
                Datum::Null => Datum::Null,
                d => Datum::Int4(d.to_text().unwrap_or_default().chars().count() as i32),
            }
        }
        "lower" | "upper" => {
            arity(1)?;
            match &args[0] {
                Datum::Null => Datum::Null,
                d => {
                    let t = d.to_text().unwrap_or_default();
                    Datum::Text(if name == "lower" {
                        t.to_lowercase()
                    } else {
                        t.to_uppercase()
                    })
                }
            }
        }
        "coalesce" => args
            .into_iter()
            .find(|d| !d.is_null())
            .unwrap_or(Datum::Null),
        _ => {
            return Err(SqlError::new(
                "42883",
                format!("function {name}() does not exist"),
            ))
        }
    })
}

fn eval_aggregate(
    env: &Env<'_>,
    e: &Expr,
    names: &[String],
    rows: &[Vec<Datum>],
) -> Result<Datum, SqlError> {
    match e {
        Expr::Call { name, args, star }
            if is_aggregate(e) && !matches!(args.first(), Some(a) if is_aggregate(a)) =>
        {
            if *star && name != "count" {
                return Err(SqlError::new(
                    "42809",
                    format!("{name}(*) is not an aggregate: only count(*) is"),
                ));
            }
            let mut values = Vec::with_capacity(rows.len());
            if !*star {
                let [arg] = args.as_slice() else {
                    return Err(SqlError::new(
                        "42883",
                        format!("{name}() takes one argument"),
                    ));
                };
                for r in rows {
                    let v = eval(env, arg, names, r)?;
                    if !v.is_null() {
                        values.push(v);
                    }
                }
            }
            Ok(match name.as_str() {
                "count" => Datum::Int8(if *star { rows.len() } else { values.len() } as i64),
                "min" => {
                    values
                        .into_iter()
                        .try_fold(Datum::Null, |m, v| -> Result<Datum, SqlError> {
                            Ok(if m.is_null() || compare(&v, &m)?.is_lt() {
                                v
                            } else {
                                m
                            })
                        })?
                }
                "max" => {
                    values
                        .into_iter()
                        .try_fold(Datum::Null, |m, v| -> Result<Datum, SqlError> {
                            Ok(if m.is_null() || compare(&v, &m)?.is_gt() {
                                v
                            } else {
                                m
                            })
                        })?
                }
                "sum" | "avg" => {
                    if values.is_empty() {
                        return Ok(Datum::Null);
                    }
                    let mut total: i64 = 0;
                    for v in &values {
                        let n = v.as_i64().ok_or_else(|| {
                            SqlError::new("42883", format!("function {name}() takes numbers"))
                        })?;
                        total = total.checked_add(n).ok_or_else(overflow)?;
                    }
                    Datum::Int8(if name == "avg" {
                        total / values.len() as i64
                    } else {
                        total
                    })
                }
                _ => unreachable!("an aggregate"),
            })
        }
        Expr::Binary(l, op, r) => binary(
            eval_aggregate(env, l, names, rows)?,
            *op,
            eval_aggregate(env, r, names, rows)?,
        ),
        Expr::Cast(inner, ty) => eval_aggregate(env, inner, names, rows)?.coerce(*ty),
        e if !mentions_column(e) => eval(env, e, names, &[]),
        _ => Err(SqlError::new(
            "42803",
            "a column must appear in an aggregate function: there is no GROUP BY",
        )),
    }
}

fn mentions_column(e: &Expr) -> bool {
    match e {
        Expr::Column(_) => true,
        Expr::Binary(l, _, r) => mentions_column(l) || mentions_column(r),
        Expr::Not(e) | Expr::Neg(e) | Expr::IsNull(e, _) | Expr::Cast(e, _) => mentions_column(e),
        Expr::Call { args, .. } => args.iter().any(mentions_column),
        _ => false,
    }
}

/// The parameter types and result columns of one statement (the extended protocol's
/// Describe): a parameter compared with, assigned to or inserted into a column takes its
/// type; `LIMIT` and `OFFSET` take bigint; any other, text.
pub(crate) fn describe<B: Backend>(b: &B, stmt: Option<&Statement>) -> Result<Described, SqlError> {
    let Some(stmt) = stmt else {
        return Ok(Described {
            params: Vec::new(),
            columns: Vec::new(),
        });
    };
    let mut types: BTreeMap<usize, SqlType> = BTreeMap::new();
    let mut max = 0usize;
    let columns_of = |table: &str| -> Result<Vec<Column>, SqlError> {
        if is_view(table) {
            return Ok(view_columns(table));
        }
        Ok(schema_of(b, table)?.1.result_columns())
    };
    let mut columns = Vec::new();
    match stmt {
        Statement::Insert {
            table,
            columns: named,
            rows,
            returning,
        } => {
            let cols = columns_of(table)?;
            let targets: Vec<SqlType> = match named {
                None => cols.iter().map(|c| c.ty).collect(),
                Some(names) => names
                    .iter()
                    .map(|n| {
                        cols.iter()
                            .find(|c| &c.name == n)
                            .map(|c| c.ty)
                            .ok_or_else(|| no_column(n))
                    })
                    .collect::<Result<_, _>>()?,
            };
            for r in rows {
                for (e, t) in r.iter().zip(&targets) {
                    infer(e, Some(*t), &cols, &mut types, &mut max);
                }
            }
            if let Some(items) = returning {
                columns = item_columns(items, &cols)?;
            }
        }
        Statement::Update {
            table,
            sets,
            filter,
        } => {
            let cols = columns_of(table)?;
            for (n, e) in sets {
                let t = cols.iter().find(|c| &c.name == n).map(|c| c.ty);
                infer(e, t, &cols, &mut types, &mut max);
            }
            if let Some(f) = filter {
                infer(f, None, &cols, &mut types, &mut max);
            }
        }
        Statement::Delete { table, filter } => {
            let cols = columns_of(table)?;
            if let Some(f) = filter {
                infer(f, None, &cols, &mut types, &mut max);
            }
        }
        Statement::Select(sel) => {
            let cols = match &sel.from {
                Some(t) => columns_of(t)?,
                None => Vec::new(),
            };
            if let Some(f) = &sel.filter {
                infer(f, None, &cols, &mut types, &mut max);
            }
            for item in &sel.items {
                if let SelectItem::Expr { expr, .. } = item {
                    infer(expr, None, &cols, &mut types, &mut max);
                }
            }
            for e in [&sel.limit, &sel.offset].into_iter().flatten() {
                infer(e, Some(SqlType::Int8), &cols, &mut types, &mut max);
            }
            columns = item_columns(&sel.items, &cols)?;
        }
        Statement::Show { name } => columns = vec![text_column(name)],
        _ => {}
    }
    Ok(Described {
        params: (1..=max)
            .map(|n| types.get(&n).copied().unwrap_or(SqlType::Text))
            .collect(),
        columns,
    })
}

fn item_columns(items: &[SelectItem], cols: &[Column]) -> Result<Vec<Column>, SqlError> {
    let env = Env {
        params: &[],
        settings: &BTreeMap::new(),
        version: "",
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            SelectItem::Wildcard => out.extend(cols.iter().cloned()),
            SelectItem::Expr { expr, name } => out.push(Column {
                name: name.clone(),
                ty: type_of(expr, cols, &env)?,
            }),
        }
    }
    Ok(out)
}

fn infer(
    e: &Expr,
    want: Option<SqlType>,
    cols: &[Column],
    types: &mut BTreeMap<usize, SqlType>,
    max: &mut usize,
) {
    match e {
        Expr::Param(n) => {
            *max = (*max).max(*n);
            if let Some(t) = want {
                types.entry(*n).or_insert(t);
            }
        }
        Expr::Binary(l, op, r) => {
            let side = |x: &Expr| match x {
                Expr::Column(c) => cols.iter().find(|k| &k.name == c).map(|k| k.ty),
                Expr::Cast(_, t) => Some(*t),
                _ => None,
            };
            let arith = matches!(
                op,
                BinOp::Plus | BinOp::Minus | BinOp::Multiply | BinOp::Divide | BinOp::Modulo
            );
            let (lt, rt) = (side(l), side(r));
            let default = if arith { Some(SqlType::Int8) } else { None };
            infer(
                l,
                rt.or(default).or(want.filter(|_| arith)),
                cols,
                types,
                max,
            );
            infer(
                r,
                lt.or(default).or(want.filter(|_| arith)),
                cols,
                types,
                max,
            );
        }
        Expr::Not(x) => infer(x, Some(SqlType::Bool), cols, types, max),
        Expr::Neg(x) => infer(x, Some(SqlType::Int8), cols, types, max),
        Expr::IsNull(x, _) => infer(x, None, cols, types, max),
        Expr::Cast(x, t) => infer(x, Some(*t), cols, types, max),
        Expr::Call { args, .. } => {
            for a in args {
                infer(a, None, cols, types, max);
            }
        }
        Expr::Column(_) | Expr::Literal(_) => {}
    }
}

#[cfg(test)]
mod tests_support {
    //! An in-memory stand-in for the session: every content a map of rows, a transaction's
    //! writes undone on abort.
    use super::*;

    /// A row as it was before a transaction's write: where, its key, its old value.
    type Undo = ((String, i16), Key, Option<Vec<u8>>);

    #[derive(Default)]
    pub(super) struct Memory {
        contents: usize,
        pub(super) tables: BTreeMap<String, TableDef>,
        pub(super) rows: BTreeMap<(String, i16), BTreeMap<Key, Vec<u8>>>,
        undo: Option<Vec<Undo>>,
        drawn: u64,
        pub(super) calls: Vec<String>,
        pub(super) cancel: std::sync::Arc<CancelSignal>,
        /// The client cancels when this many calls were made (a request on its own connection,
        /// arriving while the statement runs).
        pub(super) cancel_at_call: Option<usize>,
    }

    impl Memory {
        pub(super) fn new(contents: usize) -> Memory {
            Memory {
                contents,
                ..Default::default()
            }
        }

        fn rollback(&mut self) {
            for (at, key, old) in self.undo.take().unwrap_or_default().into_iter().rev() {
                let rows = self.rows.entry(at).or_default();
                match old {
                    Some(v) => rows.insert(key, v),
                    None => rows.remove(&key),
                };
            }
        }

        fn write(&mut self, at: (String, i16), key: Key, value: Option<Vec<u8>>) {
            let rows = self.rows.entry(at.clone()).or_default();
            let old = match value {
                Some(v) => rows.insert(key, v),
                None => rows.remove(&key),
            };
            self.undo.get_or_insert_with(Vec::new).push((at, key, old));
        }
    }

    impl Backend for Memory {
        async fn call(&mut self, req: ClientRequest) -> ClientResponse {
            self.calls.push(req.name().to_string());
            if self.cancel_at_call == Some(self.calls.len()) {
                self.cancel.request();
            }
            match req {
                // As the session does, a Begin first rolls back a transaction still open.
                ClientRequest::Begin => {
                    self.rollback();
                    self.undo = Some(Vec::new());
                    ClientResponse::Ok
                }
                ClientRequest::Commit => {
                    self.undo = None;
                    ClientResponse::Committed
                }
                ClientRequest::Abort => {
                    self.rollback();
                    ClientResponse::Ok
                }
                ClientRequest::Exec { op, content } => {
                    assert!(self.undo.is_some(), "a statement outside a transaction");
                    let c = content.expect("the SQL layer names the content");
                    let at = (op.table().to_string(), c);
                    let current = self
                        .rows
                        .get(&at)
                        .and_then(|r| op.key().and_then(|k| r.get(&k).cloned()));
                    let r = match op {
                        Op::Insert { key, value, table } => {
                            if current.is_some() {
                                return ClientResponse::Error(DbError::Failed(format!("duplicate key value violates unique constraint: key {key} already exists in \"{table}\"")));
                            }
                            self.write(at, key, Some(value));
                            OpResult::Done
                        }
                        Op::Update { key, value, .. } => {
                            if current.is_none() {
                                OpResult::Count(0)
                            } else {
                                self.write(at, key, Some(value));
                                OpResult::Count(1)
                            }
                        }
                        Op::Delete { key, .. } => {
                            if current.is_none() {
                                OpResult::Count(0)
                            } else {
                                self.write(at, key, None);
                                OpResult::Count(1)
                            }
                        }
                        Op::Get { .. } => OpResult::Row(current),
                        Op::Scan { .. } => OpResult::Rows(
                            self.rows
                                .get(&at)
                                .map(|r| r.iter().map(|(k, v)| (*k, v.clone())).collect())
                                .unwrap_or_default(),
                        ),
                    };
                    ClientResponse::Result(r)
                }
                other => ClientResponse::Error(DbError::Failed(format!(
                    "{} is not kept here",
                    other.name()
                ))),
            }
        }

        fn table(&self, name: &str) -> Option<TableDef> {
            self.tables.get(name).cloned()
        }

        fn contents(&self) -> usize {
            self.contents
        }

        async fn create_table(&mut self, name: &str, schema: TableSchema) -> Result<(), DbError> {
            let id = 100 + self.tables.len() as u32;
            self.tables.entry(name.to_string()).or_insert(TableDef {
                id,
                name: name.to_string(),
                kind: schema.kind,
                schema: Some(Box::new(schema)),
            });
            Ok(())
        }

        async fn drop_table(&mut self, name: &str) -> Result<(), DbError> {
            match self.tables.remove(name) {
                Some(_) => {
                    self.rows.retain(|(t, _), _| t != name);
                    Ok(())
                }
                None => Err(DbError::Failed(format!(
                    "relation \"{name}\" does not exist"
                ))),
            }
        }

        fn cancel(&self) -> Option<std::sync::Arc<CancelSignal>> {
            Some(self.cancel.clone())
        }

        fn row_number(&mut self) -> u64 {
            self.drawn += 1;
            self.drawn
        }

        fn version(&self) -> String {
            "PostgreSQL 15.0 (test)".into()
        }
    }

    /// Runs a future that never waits (the stand-in answers at once).
    pub(super) fn now<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the stand-in never waits"),
        }
    }

    pub(super) struct Sql {
        pub(super) b: Memory,
        pub(super) state: SqlState,
    }

    impl Sql {
        pub(super) fn new(contents: usize) -> Sql {
            Sql {
                b: Memory::new(contents),
                state: SqlState::default(),
            }
        }

        pub(super) fn run(&mut self, text: &str) -> Vec<Result<Outcome, SqlError>> {
            now(simple_query(&mut self.b, &mut self.state, text))
        }

        pub(super) fn ok(&mut self, text: &str) -> Outcome {
            let mut out = self.run(text);
            assert_eq!(out.len(), 1, "{text}: {out:?}");
            out.pop()
                .unwrap()
                .unwrap_or_else(|e| panic!("{text}: {e:?}"))
        }

        pub(super) fn err(&mut self, text: &str) -> String {
            match self.run(text).pop().unwrap() {
                Err(e) => e.code,
                Ok(o) => panic!("{text} succeeded: {o:?}"),
            }
        }

        pub(super) fn rows(&mut self, text: &str) -> Vec<Vec<String>> {
            match self.ok(text) {
                Outcome::Rows { rows, .. } => rows
                    .into_iter()
                    .map(|r| {
                        r.into_iter()
                            .map(|d| d.to_text().unwrap_or("NULL".into()))
                            .collect()
                    })
                    .collect(),
                other => panic!("{text}: no rows: {other:?}"),
            }
        }

        pub(super) fn tag(&mut self, text: &str) -> String {
            match self.ok(text) {
                Outcome::Done { tag } | Outcome::Rows { tag, .. } => tag,
                Outcome::Empty => String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The SQL layer over the in-memory stand-in for the session.
    use super::tests_support::*;
    use super::*;
    use crate::model::data::TableKind;

    fn strs(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn rows_are_placed_by_the_distribution_key_read_back_and_aggregated() {
        let mut s = Sql::new(3);
        assert_eq!(
            s.tag("CREATE TABLE t (id bigint PRIMARY KEY, v text, n int) DISTRIBUTED BY (id)"),
            "CREATE TABLE"
        );
        assert_eq!(
            s.tag("INSERT INTO t VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', NULL), (4, 'd', 5)"),
            "INSERT 0 4"
        );
        // Each row is on the content its key hashes to, under its key.
        for id in 1..=4i64 {
            let c = content_for_key(id, 3);
            assert!(s.b.rows[&("t".to_string(), c)].contains_key(&id));
        }
        assert_eq!(s.rows("SELECT v FROM t WHERE id = 2"), strs(&[&["b"]]));
        assert_eq!(
            s.rows("select * from t order by id desc limit 2"),
            strs(&[&["4", "d", "5"], &["3", "c", "NULL"]])
        );
        assert_eq!(
            s.rows("SELECT count(*), sum(n), min(v), max(n) FROM t"),
            strs(&[&["4", "35", "a", "20"]])
        );
        assert_eq!(
            s.rows("SELECT id FROM t WHERE n > 6 ORDER BY n"),
            strs(&[&["1"], &["2"]])
        );
        assert_eq!(
            s.rows("SELECT id FROM t ORDER BY id OFFSET 3"),
            strs(&[&["4"]])
        );
        assert_eq!(s.tag("UPDATE t SET n = n + 1 WHERE id = 1"), "UPDATE 1");
        assert_eq!(s.tag("UPDATE t SET v = 'z' WHERE n IS NULL"), "UPDATE 1");
        assert_eq!(
            s.rows(
                "SELECT n, v FROM t WHERE id IN (1)"
                    .replace(" IN (1)", " = 1")
                    .as_str()
            ),
            strs(&[&["11", "a"]])
        );
        assert_eq!(s.tag("DELETE FROM t WHERE v = 'z'"), "DELETE 1");
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["3"]]));
        // The key read goes to one content; a row there is found by the system column too.
        let c = content_for_key(2, 3);
        assert_eq!(
            s.rows(&format!(
                "SELECT id FROM t WHERE gp_segment_id = {c} AND id = 2"
            )),
            strs(&[&["2"]])
        );
        assert_eq!(
            s.rows("INSERT INTO t (id, v) VALUES (9, 'r') RETURNING id, v"),
            strs(&[&["9", "r"]])
        );
    }

    #[test]
    fn errors_carry_postgresql_codes_and_a_failed_block_refuses_until_its_end() {
        let mut s = Sql::new(2);
        s.ok("CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL, ts timestamp, ok boolean)");
        s.ok("INSERT INTO t VALUES (1, 'a', '2024-01-02 03:04:05', true)");
        assert_eq!(
            s.err("INSERT INTO t VALUES (1, 'again', NULL, NULL)"),
            "23505"
        );
        assert_eq!(
            s.err("INSERT INTO t VALUES ('x', 'a', NULL, NULL)"),
            "22P02"
        );
        assert_eq!(s.err("INSERT INTO t VALUES (2, NULL, NULL, NULL)"), "23502");
        assert_eq!(s.err("INSERT INTO nope VALUES (1)"), "42P01");
        assert_eq!(s.err("SELECT nope FROM t"), "42703");
        assert_eq!(s.err("CREATE TABLE t (id int)"), "42P07");
        assert_eq!(s.err("UPDATE t SET id = 3"), "0A000");
        // A multi-row insert that fails leaves nothing behind (autocommit rolls it back).
        assert_eq!(
            s.err("INSERT INTO t VALUES (5, 'e', NULL, NULL), (1, 'dup', NULL, NULL)"),
            "23505"
        );
        assert_eq!(
            s.rows("SELECT id, ts, ok FROM t"),
            strs(&[&["1", "2024-01-02 03:04:05", "t"]])
        );
        // In a block: an error fails the block; the rest is refused; COMMIT rolls back.
        s.ok("BEGIN");
        s.ok("INSERT INTO t VALUES (6, 'f', NULL, NULL)");
        assert_eq!(s.state.status(), TxnStatus::InBlock);
        assert_eq!(
            s.err("INSERT INTO t VALUES (1, 'dup', NULL, NULL)"),
            "23505"
        );
        assert_eq!(s.state.status(), TxnStatus::Failed);
        assert_eq!(s.err("SELECT 1"), "25P02");
        assert_eq!(s.tag("COMMIT"), "ROLLBACK");
        assert_eq!(s.state.status(), TxnStatus::Idle);
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["1"]]));
        // A block that commits keeps every statement.
        let out = s.run("BEGIN; INSERT INTO t VALUES (7, 'g', NULL, NULL); INSERT INTO t VALUES (8, 'h', NULL, NULL); COMMIT");
        assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
        assert_eq!(
            s.rows("SELECT id FROM t ORDER BY 1"),
            strs(&[&["1"], &["7"], &["8"]])
        );
        s.ok("BEGIN");
        s.ok("DELETE FROM t");
        s.ok("ROLLBACK");
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["3"]]));
        // The session survives a syntax error.
        assert_eq!(s.err("SELEC 1"), "42601");
        assert_eq!(
            s.rows("SELECT 1 + 2, version() IS NOT NULL"),
            strs(&[&["3", "t"]])
        );
    }

    #[test]
    fn replicated_and_random_tables_and_what_drivers_ask_on_connect() {
        let mut s = Sql::new(3);
        s.ok("CREATE TABLE r (a int, b text) DISTRIBUTED REPLICATED");
        s.ok("INSERT INTO r VALUES (1, 'x'), (2, 'y')");
        for c in 0..3i16 {
            assert_eq!(
                s.b.rows[&("r".to_string(), c)].len(),
                2,
                "content {c} holds every row"
            );
        }
        assert_eq!(s.rows("SELECT count(*) FROM r"), strs(&[&["2"]]));
        assert_eq!(s.tag("UPDATE r SET b = 'w' WHERE a = 2"), "UPDATE 1");
        for c in 0..3i16 {
            let rows: Vec<_> = s.b.rows[&("r".to_string(), c)]
                .values()
                .map(|v| decode_row(v).unwrap())
                .collect();
            assert!(rows.contains(&vec![Datum::Int4(2), Datum::Text("w".into())]));
        }
        s.ok("CREATE TABLE q (a text, b bigint) WITH (appendoptimized=true) DISTRIBUTED RANDOMLY");
        s.ok("INSERT INTO q VALUES ('one', 1), ('two', 2), ('three', 3), ('four', 4)");
        assert_eq!(s.rows("SELECT sum(b) FROM q"), strs(&[&["10"]]));
        assert_eq!(s.b.tables["q"].kind, TableKind::AppendOptimized);
        assert_eq!(s.tag("SET application_name = 'psql'"), "SET");
        assert_eq!(s.rows("SHOW application_name"), strs(&[&["psql"]]));
        assert_eq!(
            s.rows("SELECT current_setting('server_version_num')"),
            strs(&[&["150000"]])
        );
        assert_eq!(s.err("SHOW nonsense"), "42704");
        assert_eq!(s.run(" ; "), vec![Ok(Outcome::Empty)]);
    }

    #[test]
    fn a_block_fails_at_any_error_and_a_second_begin_changes_nothing() {
        let mut s = Sql::new(2);
        s.ok("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
        // BEGIN inside a block is only a warning in PostgreSQL: the block goes on.
        let out = s.run(
            "BEGIN; INSERT INTO t VALUES (1, 'a'); BEGIN; INSERT INTO t VALUES (2, 'b'); COMMIT",
        );
        assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
        assert_eq!(
            s.rows("SELECT id FROM t ORDER BY id"),
            strs(&[&["1"], &["2"]])
        );
        // Errors of statements that touch no table fail the block too.
        for bad in [
            "SELECT 1 / 0",
            "SHOW nonsense",
            "DROP TABLE t",
            "SELECT nope FROM gp_segment_configuration",
        ] {
            s.ok("BEGIN");
            s.ok("INSERT INTO t VALUES (3, 'c')");
            s.err(bad);
            assert_eq!(s.state.status(), TxnStatus::Failed, "{bad}");
            assert_eq!(s.err("SELECT 1"), "25P02");
            assert_eq!(s.tag("COMMIT"), "ROLLBACK");
            assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["2"]]), "{bad}");
        }
        // The extended protocol's Execute fails the block the same way.
        now(execute(
            &mut s.b,
            &mut s.state,
            &parse_one("BEGIN").unwrap().unwrap(),
            &[],
        ))
        .unwrap();
        let insert = parse_one("INSERT INTO t VALUES ($1, $2)").unwrap().unwrap();
        now(execute(
            &mut s.b,
            &mut s.state,
            &insert,
            &[Datum::Int8(4), Datum::Text("d".into())],
        ))
        .unwrap();
        let dup = now(execute(
            &mut s.b,
            &mut s.state,
            &insert,
            &[Datum::Int8(1), Datum::Text("x".into())],
        ));
        assert_eq!(dup.unwrap_err().code, "23505");
        let next = now(execute(
            &mut s.b,
            &mut s.state,
            &insert,
            &[Datum::Int8(5), Datum::Text("e".into())],
        ));
        assert_eq!(next.unwrap_err().code, "25P02");
        let commit = parse_one("COMMIT").unwrap().unwrap();
        assert_eq!(
            now(execute(&mut s.b, &mut s.state, &commit, &[])).unwrap(),
            Outcome::Done {
                tag: "ROLLBACK".into()
            }
        );
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["2"]]));
        // A statement that does not parse, in a block, fails it: the transaction is rolled
        // back before anything else runs.
        s.ok("BEGIN");
        s.ok("INSERT INTO t VALUES (6, 'f')");
        s.state.fail_block();
        assert_eq!(s.state.status(), TxnStatus::Failed);
        assert_eq!(s.tag("ROLLBACK"), "ROLLBACK");
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["2"]]));
    }

    #[test]
    fn drop_table_removes_the_table_and_its_rows_and_refuses_what_postgresql_refuses() {
        let mut s = Sql::new(3);
        s.ok("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
        s.ok("CREATE TABLE u (id bigint PRIMARY KEY)");
        s.ok("INSERT INTO t VALUES (1, 'a'), (2, 'b')");
        // Nothing is dropped unless every name is a table.
        assert_eq!(s.err("DROP TABLE t, nope"), "42P01");
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["2"]]));
        assert_eq!(s.err("DROP TABLE gp_segment_configuration"), "42809");
        s.ok("BEGIN");
        assert_eq!(s.err("DROP TABLE t"), "25001");
        assert_eq!(s.tag("ROLLBACK"), "ROLLBACK");
        assert_eq!(s.tag("DROP TABLE t, u"), "DROP TABLE");
        assert_eq!(s.err("SELECT * FROM t"), "42P01");
        assert_eq!(s.err("INSERT INTO u VALUES (1)"), "42P01");
        assert_eq!(s.tag("DROP TABLE IF EXISTS t, u"), "DROP TABLE");
        assert_eq!(s.err("DROP TABLE t"), "42P01");
        // A table of the same name again is a new, empty one.
        s.ok("CREATE TABLE t (id bigint PRIMARY KEY, n int)");
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["0"]]));
        s.ok("INSERT INTO t VALUES (1, 7)");
        assert_eq!(s.rows("SELECT n FROM t WHERE id = 1"), strs(&[&["7"]]));
    }

    #[test]
    fn a_cancel_stops_the_running_statement_before_its_next_call_and_is_ignored_between_statements()
    {
        let mut s = Sql::new(3);
        s.ok("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
        s.ok("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')");
        // Ignored between statements.
        assert!(!s.b.cancel.request());
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["4"]]));
        // A scan of three contents, cancelled after its first: 57014, rolled back.
        s.b.calls.clear();
        s.b.cancel_at_call = Some(2);
        assert_eq!(s.err("SELECT * FROM t"), "57014");
        assert_eq!(s.b.calls, ["BEGIN", "a statement", "ABORT"]);
        s.b.cancel_at_call = None;
        // A multi-row insert cancelled part way takes nothing.
        s.b.calls.clear();
        s.b.cancel_at_call = Some(3);
        assert_eq!(
            s.err("INSERT INTO t VALUES (5, 'e'), (6, 'f'), (7, 'g'), (8, 'h')"),
            "57014"
        );
        s.b.cancel_at_call = None;
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["4"]]));
        // In a block, the cancelled statement fails the block; the rest of the query string
        // does not run.
        s.ok("BEGIN");
        s.b.calls.clear();
        s.b.cancel_at_call = Some(1);
        let out =
            s.run("INSERT INTO t VALUES (9, 'i'); SELECT * FROM t; INSERT INTO t VALUES (10, 'j')");
        s.b.cancel_at_call = None;
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1].as_ref().unwrap_err().code, "57014");
        assert_eq!(s.err("SELECT 1"), "25P02");
        assert_eq!(s.tag("COMMIT"), "ROLLBACK");
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["4"]]));
        assert_eq!(s.rows("SELECT pg_sleep(0) IS NULL"), strs(&[&["t"]]));
    }

    #[test]
    fn statements_sent_together_are_one_transaction_unless_they_control_it() {
        let mut s = Sql::new(3);
        s.ok("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
        s.ok("INSERT INTO t VALUES (1, 'a')");
        // The third fails: the first two are rolled back with it, and the session is idle.
        let out = s.run("INSERT INTO t VALUES (2, 'b'); INSERT INTO t VALUES (3, 'c'); INSERT INTO t VALUES (1, 'dup'); INSERT INTO t VALUES (4, 'd')");
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[2].as_ref().unwrap_err().code, "23505");
        assert_eq!(s.state.status(), TxnStatus::Idle);
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["1"]]));
        // All of them go through: one Begin, one Commit.
        s.b.calls.clear();
        let out = s.run("INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'z' WHERE id = 1; SELECT count(*) FROM t");
        assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
        assert_eq!(
            s.b.calls.iter().filter(|c| *c == "BEGIN").count(),
            1,
            "{:?}",
            s.b.calls
        );
        assert_eq!(s.b.calls.iter().filter(|c| *c == "COMMIT").count(), 1);
        assert_eq!(s.state.status(), TxnStatus::Idle);
        assert_eq!(
            s.rows("SELECT id, v FROM t ORDER BY id"),
            strs(&[&["1", "z"], &["2", "b"]])
        );
        // With BEGIN and COMMIT among them, they are the client's block, as written.
        let out = s
            .run("BEGIN; INSERT INTO t VALUES (5, 'e'); COMMIT; INSERT INTO t VALUES (5, 'again')");
        assert_eq!(out.len(), 4);
        assert_eq!(out[3].as_ref().unwrap_err().code, "23505");
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["3"]]));
        // Inside an open block they are part of it, and the block stays open.
        s.ok("BEGIN");
        s.run("INSERT INTO t VALUES (6, 'f'); INSERT INTO t VALUES (7, 'g')");
        assert_eq!(s.state.status(), TxnStatus::InBlock);
        s.ok("ROLLBACK");
        assert_eq!(s.rows("SELECT count(*) FROM t"), strs(&[&["3"]]));
    }

    #[test]
    fn a_table_without_a_key_is_found_by_its_distribution_column() {
        let mut s = Sql::new(4);
        // Distributed by its first column by default, rows under hidden keys.
        s.ok("CREATE TABLE e (name text, n int)");
        s.ok("INSERT INTO e VALUES ('ann', 1), ('bob', 2), ('cy', 3), ('ann', 4)");
        let ann = content_for_key(Datum::Text("ann".into()).distribution_hash(), 4);
        let anns_on = |s: &Sql, c: i16| {
            s.b.rows.get(&("e".to_string(), c)).map_or(0, |r| {
                r.values()
                    .filter(|v| decode_row(v).unwrap()[0] == Datum::Text("ann".into()))
                    .count()
            })
        };
        assert_eq!(anns_on(&s, ann), 2, "both rows of 'ann' are on its content");
        assert_eq!(
            s.rows("SELECT n FROM e WHERE name = 'ann' ORDER BY n"),
            strs(&[&["1"], &["4"]])
        );
        assert_eq!(
            s.tag("UPDATE e SET n = n * 10 WHERE name = 'bob'"),
            "UPDATE 1"
        );
        assert_eq!(
            s.rows("SELECT n FROM e WHERE name = 'bob'"),
            strs(&[&["20"]])
        );
        assert_eq!(s.tag("DELETE FROM e WHERE name = 'ann'"), "DELETE 2");
        assert_eq!(
            s.rows("SELECT name FROM e ORDER BY name"),
            strs(&[&["bob"], &["cy"]])
        );
        s.ok("CREATE TABLE f (a int, b text) DISTRIBUTED BY (b)");
        s.ok("INSERT INTO f VALUES (1, 'x'), (2, 'y')");
        assert_eq!(s.rows("SELECT a FROM f WHERE b = 'y'"), strs(&[&["2"]]));
        assert_eq!(s.tag("DELETE FROM f WHERE b = 'x'"), "DELETE 1");
        assert_eq!(s.rows("SELECT count(*) FROM f"), strs(&[&["1"]]));
    }

    #[test]
    fn parameters_take_the_types_of_the_columns_they_meet() {
        let mut s = Sql::new(2);
        s.ok("CREATE TABLE t (id bigint PRIMARY KEY, v text, n int)");
        let stmt = parse_one("INSERT INTO t (id, v, n) VALUES ($1, $2, $3)").unwrap();
        let d = describe(&s.b, stmt.as_ref()).unwrap();
        assert_eq!(d.params, vec![SqlType::Int8, SqlType::Text, SqlType::Int4]);
        assert!(d.columns.is_empty());
        let params = [Datum::Int8(5), Datum::Text("p".into()), Datum::Int4(7)];
        now(execute(
            &mut s.b,
            &mut s.state,
            stmt.as_ref().unwrap(),
            &params,
        ))
        .unwrap();
        let stmt = parse_one("SELECT v, n FROM t WHERE id = $1 LIMIT $2").unwrap();
        let d = describe(&s.b, stmt.as_ref()).unwrap();
        assert_eq!(d.params, vec![SqlType::Int8, SqlType::Int8]);
        assert_eq!(
            d.columns.iter().map(|c| c.ty).collect::<Vec<_>>(),
            vec![SqlType::Text, SqlType::Int4]
        );
        let out = now(execute(
            &mut s.b,
            &mut s.state,
            stmt.as_ref().unwrap(),
            &[Datum::Int8(5), Datum::Int8(1)],
        ))
        .unwrap();
        let Outcome::Rows { rows, .. } = out else {
            panic!()
        };
        assert_eq!(rows, vec![vec![Datum::Text("p".into()), Datum::Int4(7)]]);
        assert_eq!(parse_one("SELECT 1; SELECT 2").unwrap_err().code, "42601");
    }
}

#[cfg(test)]
mod fuzz {
    //! Random and mutated SQL against the SQL layer (over the in-memory session of `tests`):
    //! every text gets outcomes or an error with a SQLSTATE, nothing panics, and the session
    //! goes on serving afterwards.
    use super::tests_support::*;
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    /// Texts tried per run.
    const CASES: u32 = 20_000;

    const SEEDS: &[&str] = &[
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, n int, b boolean, ts timestamp) DISTRIBUTED BY (id)",
        "CREATE TABLE IF NOT EXISTS r (a int, b text) DISTRIBUTED REPLICATED",
        "CREATE TABLE q (a text, b bigint) WITH (appendoptimized=true) DISTRIBUTED RANDOMLY",
        "INSERT INTO t VALUES (1, 'a', 2, true, '2024-01-01 00:00:00'), (2, 'b', NULL, false, NULL)",
        "INSERT INTO t (id, v) VALUES (3, 'c') RETURNING id, v",
        "UPDATE t SET n = n * 2 + 1 WHERE id = 1",
        "DELETE FROM t WHERE v = 'b' OR n IS NULL",
        "SELECT id, v FROM t WHERE id = 1 AND NOT b ORDER BY v DESC LIMIT 3 OFFSET 1",
        "SELECT count(*), sum(n), min(v), max(ts), avg(id) FROM t",
        "SELECT * FROM gp_segment_configuration WHERE content = -1",
        "BEGIN; INSERT INTO r VALUES (1, 'x'); COMMIT",
        "SET application_name = 'x'; SHOW application_name; SELECT current_setting('timezone')",
        "SELECT version(), 1 + 2 * 3 % 4 - -5, 'a' || 'b', lower('X'), length('abc')",
        "ROLLBACK; DISCARD ALL",
    ];

    const WORDS: &[&str] = &[
        "SELECT",
        "INSERT",
        "INTO",
        "VALUES",
        "UPDATE",
        "SET",
        "DELETE",
        "FROM",
        "WHERE",
        "CREATE",
        "TABLE",
        "DISTRIBUTED",
        "BY",
        "RANDOMLY",
        "REPLICATED",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "(",
        ")",
        ",",
        ";",
        "*",
        "=",
        "<",
        ">",
        "+",
        "-",
        "/",
        "%",
        "||",
        "AND",
        "OR",
        "NOT",
        "NULL",
        "IS",
        "t",
        "r",
        "q",
        "id",
        "v",
        "n",
        "'x'",
        "''",
        "1",
        "0",
        "-1",
        "9223372036854775807",
        "99999999999999999999",
        "$1",
        "$0",
        "count(*)",
        "sum(n)",
        "ORDER",
        "LIMIT",
        "OFFSET",
        "PRIMARY",
        "KEY",
        "bigint",
        "int",
        "text",
        "boolean",
        "timestamp",
        "WITH",
        "appendoptimized=true",
        "\"quoted\"",
        "--",
        "/*",
        "*/",
        "e'\\x'",
        "::",
        "IF",
        "EXISTS",
        "gp_segment_id",
        "RETURNING",
        "true",
        "DROP",
        "SHOW",
        "ALL",
    ];

    fn mutate(text: &str, cuts: &[(usize, u8)]) -> String {
        let mut bytes = text.as_bytes().to_vec();
        for (at, b) in cuts {
            if bytes.is_empty() {
                break;
            }
            let i = at % bytes.len();
            match b % 3 {
                0 => bytes[i] = *b,
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, *b),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn run_one(s: &mut Sql, text: &str) {
        for r in s.run(text) {
            if let Err(e) = r {
                assert_eq!(e.code.len(), 5, "{text:?}: {e:?}");
                assert!(!e.message.is_empty());
            }
        }
        // Whatever came before, the session serves after the block's end.
        s.run("ROLLBACK");
        assert_eq!(s.state.status(), TxnStatus::Idle);
        let after = s.run("SELECT 1");
        assert!(
            matches!(after.as_slice(), [Ok(Outcome::Rows { .. })]),
            "{text:?} then: {after:?}"
        );
    }

    #[test]
    fn random_and_mutated_sql_gets_an_answer_and_the_session_survives() {
        let mut s = Sql::new(3);
        for seed in SEEDS {
            run_one(&mut s, seed);
        }
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        let soup =
            prop::collection::vec(prop::sample::select(WORDS), 0..24).prop_map(|w| w.join(" "));
        let mutated = (
            prop::sample::select(SEEDS),
            prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        )
            .prop_map(|(text, cuts)| mutate(text, &cuts));
        let bytes = prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned());
        let texts = prop_oneof![soup, mutated, bytes];
        let s = std::cell::RefCell::new(s);
        let tried = std::cell::Cell::new(0u32);
        runner
            .run(&texts, |text| {
                run_one(&mut s.borrow_mut(), &text);
                tried.set(tried.get() + 1);
                Ok(())
            })
            .unwrap();
        assert_eq!(tried.get(), CASES);
        // Deep nesting is refused, not a stack overflow.
        let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        let out = s.borrow_mut().run(&deep);
        assert!(matches!(out.as_slice(), [Err(_)]), "{out:?}");
    }
}

#[cfg(test)]
mod codes {
    use super::*;

    #[test]
    fn the_coordinators_errors_become_sqlstates_a_client_acts_on() {
        let code = |m: &str| sql_error(DbError::Failed(m.into())).code;
        assert_eq!(
            code("duplicate key value violates unique constraint: key 1 already exists in \"t\""),
            "23505"
        );
        assert_eq!(code("relation \"t\" does not exist"), "42P01");
        assert_eq!(code("content 9 does not exist"), "XX000");
        assert_eq!(code("the system is not operational: content 1 failed and has no mirror; restart the cluster and recover it"), "57P03");
        assert_eq!(code("content 2 is unavailable: no live instance"), "57P03");
        assert_eq!(
            code("content 0: lost the primary: reset; transaction rolled back after one retry"),
            "40001"
        );
        assert_eq!(
            code("content 0 could not prepare: gone; transaction rolled back"),
            "40001"
        );
        assert_eq!(code("content 0: epoch 9 is newer; this coordinator no longer serves, connect to the acting one"), "57P01");
        assert_eq!(
            code("append-optimized table \"a\" does not support update or delete"),
            "0A000"
        );
        assert_eq!(sql_error(DbError::Unknown("lost".into())).code, "08007");
        // An unknown outcome stays unknown whatever its message says: a client that ran it
        // again could apply it twice.
        for m in [
            "content 0: lost the primary: reset",
            "the coordinator failed before the commit was acknowledged; transaction rolled back?",
            "content 1 is unavailable: no live instance",
        ] {
            assert_eq!(sql_error(DbError::Unknown(m.into())).code, "08007", "{m}");
        }
    }
}
