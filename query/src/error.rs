use axum::http::StatusCode;

/// What can go wrong answering a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query is not allowed: loupe's SQL is read-only.
    #[error("{0}")]
    ReadOnly(String),
    /// The query is wrong: a syntax error, an unknown table or column, a type error.
    #[error("{0}")]
    Query(String),
    /// The query needed more memory than `query.memory_limit_bytes`, even after spilling.
    #[error("{0}")]
    ResourcesExhausted(String),
    /// The query ran longer than `query.timeout_ms` and was stopped.
    #[error(
        "the query was stopped after {limit_ms} ms (query.timeout_ms); narrow its time range or raise the limit"
    )]
    Timeout { limit_ms: u64 },
    #[error("the query engine failed: {0}")]
    Execution(String),
    /// A file a pass read was merged away by compaction while it ran (see
    /// `QueryEngine::fold_partitions`): asking again reads the merged file.
    #[error("a file was merged by compaction while the query read it ({0}); ask again")]
    FilesMerged(String),
    #[error(transparent)]
    Store(#[from] loupe_store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status for this error (exhaustive: a new variant must choose one).
    pub fn status(&self) -> StatusCode {
        match self {
            Error::ReadOnly(_) => StatusCode::FORBIDDEN,
            Error::Query(_) => StatusCode::BAD_REQUEST,
            // The query as written does not fit the limits: asking again will not help.
            Error::ResourcesExhausted(_) | Error::Timeout { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Error::Execution(_) | Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // Asking again will.
            Error::FilesMerged(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Sorts a DataFusion error into "your query is wrong" and "we failed".
    pub(crate) fn from_datafusion(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        match e.find_root() {
            D::ResourcesExhausted(_) => Error::ResourcesExhausted(e.strip_backtrace()),
            D::SQL(..) | D::Plan(..) | D::SchemaError(..) | D::NotImplemented(..) => {
                let msg = e.strip_backtrace();
                if msg.contains("DDL not supported")
                    || msg.contains("DML not supported")
                    || msg.contains("Statement not supported")
                {
                    Error::ReadOnly(format!(
                        "loupe's SQL is read-only: {msg}. Data arrives through ingest; \
                         tables are the datasets"
                    ))
                } else {
                    Error::Query(msg)
                }
            }
            _ => Error::Execution(e.strip_backtrace()),
        }
    }
}
