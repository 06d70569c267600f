//! redb's errors as [`StorageError`]s of the right kind.

use std::path::Path;

use memory_core::{ErrorKind, StorageError};

/// Any redb error met while `doing` something.
pub(crate) fn db(doing: &str, error: impl Into<redb::Error>) -> StorageError {
    let error: redb::Error = error.into();
    let kind = match &error {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => ErrorKind::Locked,
        redb::Error::Corrupted(_) | redb::Error::UpgradeRequired(_) => ErrorKind::Corrupt,
        redb::Error::ValueTooLarge(_) => ErrorKind::InvalidInput,
        redb::Error::Io(_) => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    StorageError::with_source(kind, format!("{doing}: {error}"), error)
}

/// Opening `path` failed.
pub(crate) fn open(path: &Path, error: redb::DatabaseError) -> StorageError {
    let doing = match error {
        redb::DatabaseError::DatabaseAlreadyOpen => format!(
            "opening {}: another process (or another handle in this one) holds the file's lock",
            path.display()
        ),
        _ => format!("opening {}", path.display()),
    };
    db(&doing, error)
}
