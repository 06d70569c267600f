//! Classification of libSQL errors into the core's [`ErrorKind`]s: busy/locked and
//! connection failures are retryable, constraint violations are conflicts, damaged files
//! are corrupt.

use memory_core::{ErrorKind, StorageError};

// SQLite primary result codes (the low byte of an extended code).
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_NOMEM: i32 = 7;
const SQLITE_READONLY: i32 = 8;
const SQLITE_INTERRUPT: i32 = 9;
const SQLITE_IOERR: i32 = 10;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_PROTOCOL: i32 = 15;
const SQLITE_CONSTRAINT: i32 = 19;
const SQLITE_NOTADB: i32 = 26;

/// The kind of a SQLite result code.
fn kind_of_code(code: i32) -> ErrorKind {
    match code & 0xff {
        SQLITE_BUSY | SQLITE_LOCKED => ErrorKind::Locked,
        SQLITE_PROTOCOL | SQLITE_INTERRUPT | SQLITE_NOMEM => ErrorKind::Transient,
        SQLITE_CONSTRAINT => ErrorKind::Conflict,
        SQLITE_CORRUPT | SQLITE_NOTADB => ErrorKind::Corrupt,
        SQLITE_CANTOPEN | SQLITE_READONLY | SQLITE_FULL | SQLITE_IOERR => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// The kind of a remote error, from the server's message (hrana reports SQLite errors as
/// text) or the transport failure.
fn kind_of_message(message: &str) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    if lower.contains("sqlite_busy") || lower.contains("database is locked") {
        ErrorKind::Locked
    } else if lower.contains("constraint") {
        ErrorKind::Conflict
    } else if lower.contains("sqlite_corrupt") || lower.contains("malformed") {
        ErrorKind::Corrupt
    } else if lower.contains("sqlite_error") || lower.contains("syntax error") {
        ErrorKind::Internal
    } else if lower.contains("401") || lower.contains("403") || lower.contains("unauthorized") {
        ErrorKind::Unavailable
    } else if PASSING.iter().any(|marker| lower.contains(marker)) {
        ErrorKind::Transient
    } else {
        // Not recognised: not retried blindly (a retry is safe only for known passing
        // failures), and reported as it is.
        ErrorKind::Internal
    }
}

/// Message fragments of passing transport and server failures: connections refused, reset
/// or closed mid-answer, streams the server expired, timeouts, overloaded or restarting
/// servers, statements the server interrupted.
const PASSING: &[&str] = &[
    "error trying to connect",
    "connection refused",
    "connection reset",
    "connection closed",
    "connection aborted",
    "broken pipe",
    "incomplete message",
    "end of file",
    "unexpected eof",
    "error sending request",
    "error reading a body",
    "timed out",
    "timeout",
    "stream expired",
    // sqld 0.24: `{"message":"The stream has expired due to inactivity","code":"STREAM_EXPIRED"}`
    // for a pooled connection idle longer than the server keeps its stream.
    "stream has expired",
    "stream_expired",
    "stream not found",
    "baton",
    // An embedded replica syncing while its primary compacts its log: the snapshot it is
    // sent to is briefly not there yet (libsql issue #1310).
    "snapshot not found",
    "sqlite_interrupt",
    "interrupted",
    "502",
    "503",
    "504",
    "too many requests",
    "429",
];

/// Wraps a libSQL error with what was being done.
pub(crate) fn db(context: &str, error: libsql::Error) -> StorageError {
    let kind = match &error {
        libsql::Error::SqliteFailure(code, _) => kind_of_code(*code),
        libsql::Error::RemoteSqliteFailure(code, _, _) => kind_of_code(*code),
        libsql::Error::ConnectionFailed(_) => ErrorKind::Transient,
        libsql::Error::Hrana(e)
        | libsql::Error::WriteDelegation(e)
        | libsql::Error::Replication(e) => kind_of_message(&e.to_string()),
        libsql::Error::Sync(e) => kind_of_message(&e.to_string()),
        libsql::Error::InvalidColumnType
        | libsql::Error::InvalidColumnIndex
        | libsql::Error::NullValue
        | libsql::Error::InvalidBlobSize(_) => ErrorKind::Corrupt,
        _ => ErrorKind::Internal,
    };
    StorageError::with_source(kind, context.to_string(), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert_eq!(kind_of_code(5), ErrorKind::Locked);
        assert_eq!(
            kind_of_code(5 | (1 << 8)),
            ErrorKind::Locked,
            "extended busy code"
        );
        assert_eq!(kind_of_code(19), ErrorKind::Conflict);
        assert_eq!(kind_of_code(11), ErrorKind::Corrupt);
        assert_eq!(kind_of_code(26), ErrorKind::Corrupt);
        assert_eq!(kind_of_code(14), ErrorKind::Unavailable);
        assert!(db("x", libsql::Error::SqliteFailure(5, "busy".into())).is_transient());
        assert!(db("x", libsql::Error::ConnectionFailed("refused".into())).is_transient());
        assert_eq!(
            db("x", libsql::Error::SqliteFailure(19, "UNIQUE".into())).kind(),
            ErrorKind::Conflict
        );
    }

    #[test]
    fn remote_messages_are_classified() {
        assert_eq!(
            kind_of_message("SQLITE_BUSY: database is locked"),
            ErrorKind::Locked
        );
        assert_eq!(
            kind_of_message("SQLITE_CONSTRAINT: UNIQUE constraint failed"),
            ErrorKind::Conflict
        );
        assert_eq!(
            kind_of_message("error trying to connect: Connection refused"),
            ErrorKind::Transient
        );
        assert_eq!(
            kind_of_message("SQLITE_ERROR: no such table: x"),
            ErrorKind::Internal
        );
        assert_eq!(
            kind_of_message("connection closed before message completed"),
            ErrorKind::Transient
        );
        assert_eq!(
            kind_of_message("the stream expired: its baton is unknown"),
            ErrorKind::Transient
        );
        assert_eq!(
            kind_of_message(
                r#"status=400 Bad Request, body={"message":"The stream has expired due to inactivity","code":"STREAM_EXPIRED"}"#
            ),
            ErrorKind::Transient,
            "sqld's answer to a connection idle too long"
        );
        assert_eq!(
            kind_of_message("something nobody has seen before"),
            ErrorKind::Internal,
            "unknown errors are not retried blindly"
        );
    }
}
