use std::path::PathBuf;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid dataset name {name:?}: {reason}")]
    InvalidDatasetName { name: String, reason: &'static str },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("catalog {path} is unreadable: {reason}")]
    CorruptCatalog { path: PathBuf, reason: String },
    #[error("dataset has {count} fields, more than the limit of {limit}")]
    TooManyFields { count: usize, limit: usize },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches the operation and path to an I/O error.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        })
    }
}
