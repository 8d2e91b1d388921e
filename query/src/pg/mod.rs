//! The PostgreSQL wire protocol (version 3), so `psql`, psycopg, JDBC and Grafana's PostgreSQL
//! data source can query loupe. Built on `pgwire`; every statement runs through
//! [`QueryEngine::sql_with_params`], so the read-only rules, the memory limit and the timeout
//! are the HTTP API's.
//!
//! - **Simple and extended query protocols.** A simple query may hold several statements; each
//!   is answered in turn. Extended queries take positional parameters (`$1`), typed by the
//!   client or inferred from the query, in text or binary format; results go in the format
//!   the client asks for per column (type OIDs in [`types`]).
//! - **Cancellation.** A `CancelRequest` (psql's Ctrl+C) stops the running statement: its
//!   task is aborted and the client gets SQLSTATE `57014`.
//! - **Errors** carry a SQLSTATE by kind: `42601`/`42P01`/`42703`/`42883` for a syntax error or
//!   an unknown table, column or function, `42000` for another wrong query, `25006` for one
//!   that would write, `53200` over the memory limit, `57014` past the timeout or cancelled,
//!   `XX000` for a failure of ours.
//! - **Sessions.** Transaction statements (`BEGIN`, `COMMIT`, `ROLLBACK`, `START TRANSACTION`,
//!   `END`, `DISCARD`) and `SET` are answered as done and change nothing: every query reads
//!   the same committed data, and session settings are the server's. Drivers send them on
//!   their own (psycopg opens a transaction before its first query), so refusing them would
//!   refuse the driver.
//! - **Authentication.** With API keys configured, the password is a query key (cleartext
//!   password exchange: use TLS termination or loopback); without keys, anyone who can reach
//!   the port may query, as with HTTP (loopback by default).

pub(crate) mod functions;
mod types;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use futures::{Sink, SinkExt, stream};
use pgwire::api::auth::{
    DefaultServerParameterProvider, LoginInfo, StartupHandler, finish_authentication,
    protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::{
    ClientInfo, ConnectionHandle, ConnectionManager, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::TcpListener;

use crate::{Error, QueryEngine, QueryOutput};

/// Most rows one statement sends; past it the client gets a NOTICE saying the rows were cut.
pub const MAX_PG_ROWS: usize = 1_000_000;

/// The default address of the PostgreSQL door.
pub const DEFAULT_PG_ADDR: &str = "127.0.0.1:5433";

/// Decides whether a password (an API key) may query. `None`: no password is asked.
pub type PasswordCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Accepts connections on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, engine: QueryEngine, check: Option<PasswordCheck>) {
    let manager = Arc::new(ConnectionManager::new());
    let handlers = Arc::new(Handlers {
        backend: Arc::new(Backend {
            engine,
            parser: Arc::new(NoopQueryParser::new()),
        }),
        startup: Arc::new(Startup {
            check,
            manager: manager.clone(),
            pids: RandomPidSecretKeyGenerator::default(),
        }),
        cancel: Arc::new(DefaultCancelHandler::new(manager)),
    });
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                let h = handlers.clone();
                tokio::spawn(async move {
                    if let Err(e) = pgwire::tokio::process_socket(socket, None, h).await {
                        tracing::debug!(error = %e, "PostgreSQL connection ended with an error");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors, usually: back off instead of spinning.
                tracing::warn!(error = %e, "PostgreSQL listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Binds `addr` and serves it in a task; returns the bound address (for port 0) and the task.
pub async fn spawn(
    addr: SocketAddr,
    engine: QueryEngine,
    check: Option<PasswordCheck>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, tokio::spawn(serve(listener, engine, check))))
}

struct Handlers {
    backend: Arc<Backend>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.backend.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.backend.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

fn server_parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    // Clients (psql, drivers) read the version to decide what they may send; 16 is the
    // protocol and catalog generation loupe's answers follow.
    p.server_version = format!(
        "{} (loupe {})",
        functions::SERVER_VERSION,
        env!("CARGO_PKG_VERSION")
    );
    p.default_transaction_read_only = true;
    p
}

/// Cleartext-password authentication against the API keys, or none without keys; registers
/// each connection for cancellation either way.
struct Startup {
    check: Option<PasswordCheck>,
    manager: Arc<ConnectionManager>,
    pids: RandomPidSecretKeyGenerator,
}

impl Startup {
    async fn admit<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, secret) = self.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let (handle, guard) = self.manager.register(pid, secret);
        // The same handle the manager fires on a CancelRequest.
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert(guard);
        finish_authentication(client, &server_parameters()).await
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.check.is_some() {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::CleartextPassword,
                        ))
                        .await?;
                } else {
                    self.admit(client).await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(pwd) => {
                let pwd = pwd.into_password()?;
                let ok = self.check.as_ref().is_some_and(|c| c(&pwd.password));
                if !ok {
                    let user = LoginInfo::from_client_info(client)
                        .user()
                        .map(str::to_owned)
                        .unwrap_or_default();
                    return Err(PgWireError::InvalidPassword(user));
                }
                self.admit(client).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

pub(crate) fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message,
    )))
}

/// A query error as a PostgreSQL error with the SQLSTATE of its kind.
fn pg_error(e: &Error) -> PgWireError {
    let code = match e {
        Error::ReadOnly(_) => "25006",
        Error::Query(msg) => query_sqlstate(msg),
        Error::ResourcesExhausted(_) => "53200",
        Error::Timeout { .. } => "57014",
        Error::Execution(_) | Error::Store(_) => "XX000",
        // serialization_failure: the client may run it again.
        Error::FilesMerged(_) => "40001",
    };
    user_error(code, e.to_string())
}

/// The SQLSTATE of a wrong query, from DataFusion's message (its errors carry no code): the
/// classes psql and drivers tell apart. Anything else wrong with a query is `42000`.
fn query_sqlstate(msg: &str) -> &'static str {
    if msg.starts_with("SQL error") {
        "42601" // syntax_error
    } else if msg.contains("No field named") {
        "42703" // undefined_column
    } else if msg.contains("table '") && msg.contains("not found") {
        "42P01" // undefined_table
    } else if msg.contains("Invalid function") {
        "42883" // undefined_function
    } else {
        "42000"
    }
}

/// A statement answered without running a query, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    Begin,
    End(&'static str),
    Other(&'static str),
}

impl Session {
    fn response(self) -> Response {
        match self {
            Session::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            Session::End(tag) => Response::TransactionEnd(Tag::new(tag)),
            Session::Other(tag) => Response::Execution(Tag::new(tag)),
        }
    }
}

/// What a statement is, for the few that are answered without running a query.
fn session_statement(sql: &str) -> Option<Session> {
    let first = sql
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == ';')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match first.as_str() {
        "BEGIN" | "START" => Some(Session::Begin),
        "COMMIT" | "END" => Some(Session::End("COMMIT")),
        "ROLLBACK" | "ABORT" => Some(Session::End("ROLLBACK")),
        "SET" => Some(Session::Other("SET")),
        "DISCARD" => Some(Session::Other("DISCARD ALL")),
        _ => None,
    }
}

/// Splits a simple query into its statements (DataFusion's parser, so semicolons inside
/// strings are not boundaries). Text with no statement at all (blank, `;`, or only comments:
/// Grafana's health check sends `-- ping`) is an empty query. A text that does not parse is
/// returned whole, so running it reports the syntax error.
fn statements(sql: &str) -> Vec<String> {
    match datafusion::sql::parser::DFParser::parse_sql(sql) {
        Ok(stmts) if stmts.len() > 1 => stmts.iter().map(ToString::to_string).collect(),
        Ok(stmts) if stmts.is_empty() => Vec::new(),
        _ => vec![sql.to_owned()],
    }
}

fn is_empty_query(sql: &str) -> bool {
    statements(sql).is_empty()
}

struct Backend {
    engine: QueryEngine,
    parser: Arc<NoopQueryParser>,
}

impl Backend {
    /// Runs one statement. A cancel request on this connection makes pgwire drop the future
    /// (it selects on the connection's `ConnectionHandle`, registered at startup), which
    /// aborts the query's task on the query runtime.
    async fn run(&self, sql: &str, params: Vec<ScalarValue>) -> PgWireResult<QueryOutput> {
        self.engine
            .sql_with_params(sql, params, MAX_PG_ROWS)
            .await
            .map_err(|e| pg_error(&e))
    }

    fn response(out: &QueryOutput, format: &Format) -> PgWireResult<Response> {
        let fields = Arc::new(types::fields(&out.schema, format));
        let mut rows = Vec::with_capacity(out.row_count());
        for b in &out.batches {
            types::encode_batch(b, &fields, &mut rows)?;
        }
        Ok(Response::Query(QueryResponse::new(
            fields,
            stream::iter(rows),
        )))
    }

    async fn notice_if_truncated<C>(client: &mut C, out: &QueryOutput) -> PgWireResult<()>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if out.truncated {
            client
                .send(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                    ErrorInfo::new(
                        "NOTICE".to_owned(),
                        "01000".to_owned(),
                        format!(
                            "only the first {MAX_PG_ROWS} rows were sent; add a LIMIT or aggregate"
                        ),
                    ),
                )))
                .await?;
        }
        Ok(())
    }

    /// The parameters of `portal` as values, typed by the client or else by the query.
    async fn params(&self, portal: &Portal<String>) -> PgWireResult<Vec<ScalarValue>> {
        let n = portal.parameter_len();
        if n == 0 {
            return Ok(Vec::new());
        }
        // Planning the query for its parameter types costs a second planning per execution:
        // only when the client left a type out.
        let given = &portal.statement.parameter_types;
        let all_given = (0..n).all(|i| {
            given
                .get(i)
                .cloned()
                .flatten()
                .is_some_and(|t| t != Type::UNKNOWN)
        });
        let inferred = if all_given {
            Vec::new()
        } else {
            self.engine
                .describe(&portal.statement.statement)
                .await
                .map(|(_, p)| p)
                .unwrap_or_default()
        };
        (0..n)
            .map(|i| {
                let pg = param_type(&portal.statement.parameter_types, &inferred, i);
                param(portal, i, &pg)
            })
            .collect()
    }
}

/// The type of parameter `i`: the client's, if it gave one, else what DataFusion infers from
/// the query, else `text`.
fn param_type(given: &[Option<Type>], inferred: &[Option<DataType>], i: usize) -> Type {
    given
        .get(i)
        .cloned()
        .flatten()
        .filter(|t| *t != Type::UNKNOWN)
        .or_else(|| {
            inferred
                .get(i)
                .cloned()
                .flatten()
                .map(|t| types::pg_type(&t))
        })
        .unwrap_or(Type::TEXT)
}

/// Parameter `i` of `portal`, read as PostgreSQL type `t`.
fn param(portal: &Portal<String>, i: usize, t: &Type) -> PgWireResult<ScalarValue> {
    let bad = |e: PgWireError| user_error("22P02", format!("parameter ${}: {e}", i + 1));
    Ok(match *t {
        Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, t).map_err(bad)?),
        Type::INT2 => {
            ScalarValue::Int64(portal.parameter::<i16>(i, t).map_err(bad)?.map(i64::from))
        }
        Type::INT4 => {
            ScalarValue::Int64(portal.parameter::<i32>(i, t).map_err(bad)?.map(i64::from))
        }
        Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, t).map_err(bad)?),
        Type::FLOAT4 => {
            ScalarValue::Float64(portal.parameter::<f32>(i, t).map_err(bad)?.map(f64::from))
        }
        Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, t).map_err(bad)?),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            portal
                .parameter::<chrono::DateTime<chrono::FixedOffset>>(i, t)
                .map_err(bad)?
                .map(|d| d.timestamp_micros()),
            Some("UTC".into()),
        ),
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            portal
                .parameter::<chrono::NaiveDateTime>(i, t)
                .map_err(bad)?
                .map(|d| d.and_utc().timestamp_micros()),
            None,
        ),
        _ => ScalarValue::Utf8(portal.parameter::<String>(i, &Type::TEXT).map_err(bad)?),
    })
}

#[async_trait]
impl SimpleQueryHandler for Backend {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmts = statements(query);
        if stmts.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut out = Vec::with_capacity(stmts.len());
        for sql in stmts {
            if let Some(s) = session_statement(&sql) {
                out.push(s.response());
                continue;
            }
            let answer = self.run(&sql, Vec::new()).await?;
            Self::notice_if_truncated(client, &answer).await?;
            out.push(Self::response(&answer, &Format::UnifiedText)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Backend {
    type Statement = String;
    type QueryParser = NoopQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = &portal.statement.statement;
        if is_empty_query(sql) {
            return Ok(Response::EmptyQuery);
        }
        if let Some(s) = session_statement(sql) {
            return Ok(s.response());
        }
        let params = self.params(portal).await?;
        let answer = self.run(sql, params).await?;
        Self::notice_if_truncated(client, &answer).await?;
        Self::response(&answer, &portal.result_column_format)
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        stmt: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if session_statement(&stmt.statement).is_some() || is_empty_query(&stmt.statement) {
            return Ok(DescribeStatementResponse::new(Vec::new(), Vec::new()));
        }
        let (schema, inferred) = self
            .engine
            .describe(&stmt.statement)
            .await
            .map_err(|e| pg_error(&e))?;
        let n = inferred.len().max(stmt.parameter_types.len());
        let params: Vec<Type> = (0..n)
            .map(|i| param_type(&stmt.parameter_types, &inferred, i))
            .collect();
        // A described statement's columns are announced in text format, as PostgreSQL does:
        // the format is only chosen at Bind.
        let fields: Vec<FieldInfo> = types::fields(&schema, &Format::UnifiedText);
        Ok(DescribeStatementResponse::new(params, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let sql = &portal.statement.statement;
        if session_statement(sql).is_some() || is_empty_query(sql) {
            return Ok(DescribePortalResponse::new(Vec::new()));
        }
        let (schema, _) = self.engine.describe(sql).await.map_err(|e| pg_error(&e))?;
        Ok(DescribePortalResponse::new(types::fields(
            &schema,
            &portal.result_column_format,
        )))
    }
}

#[cfg(test)]
mod tests;
