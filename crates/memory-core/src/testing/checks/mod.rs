//! The conformance checks. Each takes a fresh, empty backend and returns an error that says
//! what was expected and what came back.

use std::fmt::Debug;

use crate::error::{ErrorKind, Result};

pub mod entity;
pub mod episodes;
pub mod listing;
pub mod patterns;
pub mod retention;
pub mod search;

/// Fails unless `result` is an error of `kind`.
pub(crate) fn expect_kind<T: Debug>(
    result: Result<T>,
    kind: ErrorKind,
    what: &str,
) -> anyhow::Result<()> {
    match result {
        Err(e) if e.kind() == kind => Ok(()),
        other => anyhow::bail!("{what}: expected a {kind} error, got {other:?}"),
    }
}
