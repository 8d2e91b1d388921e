//! Errors of this crate: one type per failure, gathered in [`Error`].

use std::fmt;

/// A condition (`http.status_code >= 500`) that does not parse or cannot match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?}: {message} at column {column}")]
pub struct PredicateError {
    /// The condition as written.
    pub input: String,
    /// 1-based character column where the problem starts.
    pub column: usize,
    /// What was expected or what is wrong, in words.
    pub message: String,
}

/// One problem in a sampling config, with the option that caused it
/// (`sampling.rules[2].when`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a sampling config, all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{n} problem{} in the sampling config",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// A sampler state snapshot that could not be used at all. Parts of a usable snapshot that do
/// not fit the current config are skipped and listed in a
/// [`RestoreReport`](crate::RestoreReport) instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("sampling state is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("sampling state has version {found}; this build reads version {expected}")]
    Version { expected: u32, found: u32 },
}

/// Any error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Predicate(#[from] PredicateError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
