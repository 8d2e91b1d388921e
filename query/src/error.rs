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
    #[error("the query engine failed: {0}")]
    Execution(String),
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
            Error::Execution(_) | Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Sorts a DataFusion error into "your query is wrong" and "we failed".
    pub(crate) fn from_datafusion(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        match e.find_root() {
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
