//! What can be wrong with a policy: a syntax error in its file, or a problem with one key
//! (unknown, of the wrong type, an invalid entry, a key a group may not set, a schema newer
//! than this build). Every problem is collected, so one run reports them all.

use std::fmt;

/// The syntax of a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyFormat {
    /// `*.json`
    Json,
    /// `*.toml`
    Toml,
}

impl PolicyFormat {
    /// The format named by a file name's extension (`policy.json`, `C:\p\Policy.TOML`),
    /// case-insensitively. Only the name is looked at.
    pub fn from_path_name(name: &str) -> Result<PolicyFormat, UnsupportedFormat> {
        let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let extension = file
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase());
        match extension.as_deref() {
            Some("json") => Ok(PolicyFormat::Json),
            Some("toml") => Ok(PolicyFormat::Toml),
            _ => Err(UnsupportedFormat {
                name: name.to_owned(),
            }),
        }
    }

    /// `JSON` or `TOML`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyFormat::Json => "JSON",
            PolicyFormat::Toml => "TOML",
        }
    }
}

impl fmt::Display for PolicyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy file name whose extension is neither `.json` nor `.toml`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot tell the format of policy file {}: name it *.json or *.toml", crate::rules::quote(.name))]
pub struct UnsupportedFormat {
    /// The name as given.
    pub name: String,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The text is not valid JSON or TOML, or not a table at the top. 1-based.
    Syntax {
        format: PolicyFormat,
        line: usize,
        column: usize,
        message: String,
    },
    /// A problem with one key (or one entry of it, at `index`).
    Key {
        key: String,
        index: Option<usize>,
        message: String,
    },
}

impl PolicyError {
    /// A problem with `key`.
    pub fn key(
        key: impl Into<String>,
        index: Option<usize>,
        message: impl Into<String>,
    ) -> PolicyError {
        PolicyError::Key {
            key: key.into(),
            index,
            message: message.into(),
        }
    }

    /// The key the error is about (`None` for a syntax error).
    pub fn key_name(&self) -> Option<&str> {
        match self {
            PolicyError::Syntax { .. } => None,
            PolicyError::Key { key, .. } => Some(key),
        }
    }

    /// Sort key: syntax first, then keys in table order (unknown ones last), then index.
    fn rank(&self) -> (usize, String, usize) {
        match self {
            PolicyError::Syntax { .. } => (0, String::new(), 0),
            PolicyError::Key { key, index, .. } => {
                let position = crate::keys::KEYS
                    .iter()
                    .position(|k| k.name == key)
                    .map_or(usize::MAX, |p| p + 1);
                (position, key.clone(), index.map_or(0, |i| i + 1))
            }
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Syntax {
                format,
                line,
                column,
                message,
            } => {
                write!(
                    f,
                    "{format} syntax error at line {line}, column {column}: {message}"
                )
            }
            PolicyError::Key {
                key,
                index,
                message,
            } => {
                f.write_str(key)?;
                if let Some(i) = index {
                    write!(f, "[{i}]")?;
                }
                write!(f, ": {message}")
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// Every problem found (never empty). `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(Vec<PolicyError>);

impl PolicyErrors {
    /// `Ok(())` when `errors` is empty, else the errors in a stable order.
    pub fn check(mut errors: Vec<PolicyError>) -> Result<(), PolicyErrors> {
        if errors.is_empty() {
            return Ok(());
        }
        errors.sort_by_key(PolicyError::rank);
        Err(PolicyErrors(errors))
    }

    /// One error.
    pub fn one(error: PolicyError) -> PolicyErrors {
        PolicyErrors(vec![error])
    }

    /// The same errors, each passed through `f`, in the same order.
    pub fn map(self, f: impl FnMut(PolicyError) -> PolicyError) -> PolicyErrors {
        PolicyErrors(self.0.into_iter().map(f).collect())
    }

    /// The errors: syntax, then by key (table order), then index.
    pub fn errors(&self) -> &[PolicyError] {
        &self.0
    }

    /// How many (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

impl IntoIterator for PolicyErrors {
    type Item = PolicyError;
    type IntoIter = std::vec::IntoIter<PolicyError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
