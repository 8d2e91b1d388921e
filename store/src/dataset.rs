//! Dataset names: validated once, at the edge, so no path trick reaches the filesystem.

use std::fmt;

use crate::error::{Error, Result};

/// Longest dataset name, in bytes.
pub const MAX_DATASET_NAME_BYTES: usize = 64;

/// A dataset name that is safe as a directory name and as an unquoted SQL identifier:
/// 1 to 64 bytes of lowercase ASCII letters, digits, `_` and `-`, starting with a letter or
/// digit. Names starting with `_` are reserved for loupe's own datasets
/// ([`DatasetName::internal`]), which keeps them apart from `_catalog`/`_wal` and from anything
/// a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetName(String);

impl DatasetName {
    pub fn new(name: &str) -> Result<Self> {
        let bad = |reason| {
            Err(Error::InvalidDatasetName {
                name: name.chars().take(80).collect(),
                reason,
            })
        };
        if name.is_empty() {
            return bad("empty");
        }
        if name.len() > MAX_DATASET_NAME_BYTES {
            return bad("longer than 64 bytes");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return bad("only lowercase ASCII letters, digits, '_' and '-' are allowed");
        }
        if !name.as_bytes()[0].is_ascii_alphanumeric() {
            return bad("must start with a letter or a digit");
        }
        Ok(DatasetName(name.to_owned()))
    }

    /// A loupe-owned dataset (`_` prefix), which clients cannot name.
    pub fn internal(suffix: &str) -> Result<Self> {
        let inner = DatasetName::new(suffix)?;
        Ok(DatasetName(format!("_{}", inner.0)))
    }

    /// Accepts both client names and internal ones; for reading what is on disk.
    pub fn from_dir_name(name: &str) -> Result<Self> {
        match name.strip_prefix('_') {
            Some(rest) if !rest.starts_with('_') => DatasetName::internal(rest),
            _ => DatasetName::new(name),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["api", "web-frontend", "svc_2", "0day", &"a".repeat(64)] {
            assert_eq!(DatasetName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_path_tricks_and_oddities() {
        let long = "a".repeat(65);
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "/etc",
            "_catalog",
            "_wal",
            "-x",
            "API",
            "a b",
            "a\0b",
            "caf\u{e9}",
            "\u{430}pi", // Cyrillic a, looks like "api"
            "api\u{200b}",
            long.as_str(),
        ] {
            assert!(DatasetName::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn error_names_the_problem() {
        let e = DatasetName::new("../x").unwrap_err().to_string();
        assert!(e.contains("\"../x\"") && e.contains("lowercase"), "{e}");
    }

    #[test]
    fn internal_names_round_trip_through_dir_names() {
        let n = DatasetName::internal("loupe").unwrap();
        assert_eq!(n.as_str(), "_loupe");
        assert_eq!(DatasetName::from_dir_name("_loupe").unwrap(), n);
        assert!(DatasetName::from_dir_name("__x").is_err());
        assert!(DatasetName::from_dir_name("_").is_err());
    }
}
