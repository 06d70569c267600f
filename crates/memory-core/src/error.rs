//! Typed errors: every failure a backend reports is one [`StorageError`] with an [`ErrorKind`].

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// The error type of every [`StorageBackend`](crate::StorageBackend) method.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A shared, cloneable underlying cause.
pub type Source = Arc<dyn StdError + Send + Sync + 'static>;

/// Which kind of stored item an error or operation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// An [`Episode`](crate::Episode).
    Episode,
    /// A [`Pattern`](crate::Pattern).
    Pattern,
    /// A [`Heuristic`](crate::Heuristic).
    Heuristic,
}

impl EntityKind {
    /// Lower-case name, stable for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntityKind::Episode => "episode",
            EntityKind::Pattern => "pattern",
            EntityKind::Heuristic => "heuristic",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classification of a [`StorageError`], for callers that branch on what went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The item does not exist.
    NotFound,
    /// The caller's input broke a documented rule; nothing was written.
    InvalidInput,
    /// The write conflicts with the stored state (for example a constraint).
    Conflict,
    /// The database or file is locked or busy; retrying later may succeed.
    Locked,
    /// A passing failure (timeout, dropped connection); the operation is safe to retry.
    Transient,
    /// Stored bytes cannot be decoded or violate the format.
    Corrupt,
    /// The backend cannot be reached or is shut down.
    Unavailable,
    /// A bug or an unexpected state inside the backend.
    Internal,
    /// A write whose outcome is unknown: its commit was sent but the answer was lost, and
    /// the store could not find out whether it applied. Read to see; retrying is safe for
    /// stores (upserts) but a repeated delete may report `NotFound`.
    Indeterminate,
}

impl ErrorKind {
    /// Lower-case name, stable for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Locked => "locked",
            ErrorKind::Transient => "transient",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
            ErrorKind::Indeterminate => "indeterminate",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A storage failure. Cloneable (the cause is shared), so one failure can be handed to every
/// caller waiting on the same load.
///
/// ```
/// use memory_core::{EntityKind, ErrorKind, StorageError};
///
/// let err = StorageError::not_found(EntityKind::Episode, "42");
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert!(!err.is_transient());
/// assert_eq!(err.to_string(), "episode 42 not found");
/// ```
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The item does not exist.
    #[error("{entity} {id} not found")]
    NotFound {
        /// What kind of item was asked for.
        entity: EntityKind,
        /// The id asked for.
        id: String,
    },
    /// The caller's input broke a documented rule; nothing was written.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] ValidationError),
    /// Any other failure, classified by `kind`.
    #[error("{kind}: {message}")]
    Failed {
        /// The classification (never `NotFound` or `InvalidInput`).
        kind: ErrorKind,
        /// What failed, for people.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Source>,
    },
}

impl StorageError {
    /// A not-found error for `entity` with the given id.
    pub fn not_found(entity: EntityKind, id: impl fmt::Display) -> Self {
        StorageError::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// A failure of `kind` with a message and no underlying cause. `NotFound` and
    /// `InvalidInput` have their own constructors and variants; passed here they are kept as
    /// the kind of a generic failure.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StorageError::Failed {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A failure of `kind` caused by `source`.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        StorageError::Failed {
            kind,
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// Stored data could not be decoded.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }

    /// An unexpected internal state.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::NotFound { .. } => ErrorKind::NotFound,
            StorageError::InvalidInput(_) => ErrorKind::InvalidInput,
            StorageError::Failed { kind, .. } => *kind,
        }
    }

    /// True when retrying the same call may succeed: [`ErrorKind::Transient`] and
    /// [`ErrorKind::Locked`] (a busy database frees its lock).
    pub fn is_transient(&self) -> bool {
        matches!(self.kind(), ErrorKind::Transient | ErrorKind::Locked)
    }
}

/// A broken input rule: which field, and what is wrong with it.
///
/// ```
/// use memory_core::{Problem, ValidationError};
///
/// let err = ValidationError::new("description", Problem::Empty);
/// assert_eq!(err.to_string(), "description: must not be empty");
/// assert_eq!(err.at("batch[3]").field(), "batch[3].description");
/// ```
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    field: String,
    problem: Problem,
}

impl ValidationError {
    /// A problem with `field` (a path such as `steps[2].tool`).
    pub fn new(field: impl Into<String>, problem: Problem) -> Self {
        ValidationError {
            field: field.into(),
            problem,
        }
    }

    /// The same error with `prefix.` put before the field path.
    pub fn at(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }

    /// The path of the offending field.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

/// What is wrong with a field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A required value is empty.
    #[error("must not be empty")]
    Empty,
    /// A text or payload is longer than its limit (bytes).
    #[error("is {actual} bytes long; the limit is {max}")]
    TooLong {
        /// The limit.
        max: usize,
        /// The length given.
        actual: usize,
    },
    /// A list or map has more entries than its limit.
    #[error("has {actual} entries; the limit is {max}")]
    TooMany {
        /// The limit.
        max: usize,
        /// The count given.
        actual: usize,
    },
    /// A number is NaN or infinite.
    #[error("must be a finite number, got {0}")]
    NotFinite(f64),
    /// A number is outside its allowed range.
    #[error("must be between {min} and {max}, got {actual}")]
    OutOfRange {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
        /// The value given.
        actual: f64,
    },
    /// A value that must be unique appears twice.
    #[error("contains {0} more than once")]
    Duplicate(String),
    /// Any other broken rule, described.
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_transience() {
        let io = std::io::Error::other("socket closed");
        let err = StorageError::with_source(ErrorKind::Transient, "query failed", io);
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(err.is_transient());
        assert_eq!(
            StdError::source(&err).map(ToString::to_string),
            Some("socket closed".to_owned())
        );
        assert!(StorageError::new(ErrorKind::Locked, "busy").is_transient());
        assert!(!StorageError::corrupt("bad").is_transient());
        let invalid: StorageError = ValidationError::new("x", Problem::Empty).into();
        assert_eq!(invalid.kind(), ErrorKind::InvalidInput);
        assert_eq!(invalid.to_string(), "invalid input: x: must not be empty");
    }

    #[test]
    fn errors_are_cloneable_with_their_source() {
        let err = StorageError::with_source(
            ErrorKind::Unavailable,
            "connect",
            std::io::Error::other("refused"),
        );
        let copy = err.clone();
        assert_eq!(copy.to_string(), "unavailable: connect");
        assert!(StdError::source(&copy).is_some());
    }
}
