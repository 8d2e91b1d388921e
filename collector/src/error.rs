//! Collector errors, and the one place that maps them to HTTP.

use std::path::PathBuf;

use axum::http::StatusCode;
use loupe_event::BodyError;

/// A failure of the write-ahead log. Any of these means events were not made durable.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt write-ahead log: {0}")]
    Decode(String),
    #[error(transparent)]
    Store(#[from] loupe_store::Error),
    #[error("the write-ahead log of dataset {dataset} failed earlier and refuses writes: {cause}")]
    Broken { dataset: String, cause: String },
    /// A write failed and was undone: the log is whole, these events were not stored, and a
    /// retry may succeed (a full disk that has been freed).
    #[error("could not write to {path} (nothing was stored; retry later): {source}")]
    WriteRefused {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The same, as the dataset's writer reports it to the appender.
    #[error(
        "could not write to the write-ahead log of dataset {dataset} (nothing was stored; retry later): {cause}"
    )]
    Refused { dataset: String, cause: String },
    #[error("the write-ahead log writer of dataset {0} has stopped")]
    Stopped(String),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidDataset(loupe_store::Error),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(
        "unsupported Content-Type {found:?}: send application/json or application/x-ndjson \
         (with curl: -H 'Content-Type: application/json')"
    )]
    UnsupportedContentType { found: String },
    #[error(
        "unsupported Content-Type {found:?} for OTLP: send application/x-protobuf or application/json"
    )]
    UnsupportedOtlpContentType { found: String },
    #[error("unsupported Content-Encoding {found:?}: send gzip, zstd or identity")]
    UnsupportedEncoding { found: String },
    #[error("could not decompress the {encoding} body: {reason}")]
    Decompress {
        encoding: &'static str,
        reason: String,
    },
    #[error(
        "buffers are full ({buffered_bytes} bytes of events waiting for Parquet, limit \
         {limit} = collector.max_buffered_bytes); retry after {retry_after_s} s"
    )]
    Overloaded {
        buffered_bytes: usize,
        limit: usize,
        retry_after_s: u64,
    },
    #[error("the collector is shutting down")]
    ShuttingDown,
    #[error(
        "dataset {name} would be the store's {}th, over the limit of {limit} (collector.max_datasets)",
        limit + 1
    )]
    TooManyDatasets { name: String, limit: usize },
    #[error("{path} is in use by another loupe process (only one may write a data directory)")]
    Locked { path: PathBuf },
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Store(#[from] loupe_store::Error),
    #[error("invalid collector settings: {}", problems.join("; "))]
    InvalidConfig { problems: Vec<String> },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status for this error. Exhaustive on purpose: a new variant must choose one.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidDataset(_) | Error::Decompress { .. } => StatusCode::BAD_REQUEST,
            Error::Body(BodyError::TooLarge { .. } | BodyError::TooManyEvents { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Error::Body(BodyError::Empty | BodyError::Json { .. }) => StatusCode::BAD_REQUEST,
            Error::UnsupportedContentType { .. }
            | Error::UnsupportedOtlpContentType { .. }
            | Error::UnsupportedEncoding { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::TooManyDatasets { .. } => StatusCode::FORBIDDEN,
            // A failed write or fsync lasts until an operator restarts the collector: retrying
            // will not help, so it is not a 503.
            Error::Wal(WalError::Broken { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::ShuttingDown | Error::Wal(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(_)
            | Error::Internal(_)
            | Error::Locked { .. }
            | Error::InvalidConfig { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before retrying, for errors that pass.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Error::Overloaded { retry_after_s, .. } => Some(*retry_after_s),
            Error::Wal(WalError::Broken { .. }) => None,
            Error::ShuttingDown | Error::Wal(_) => Some(5),
            _ => None,
        }
    }
}
