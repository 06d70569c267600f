//! The per-connection prepared-statement cache: an LRU of real `libsql::Statement`s keyed
//! by their SQL text, reset before every reuse.
//!
//! Why reset: a local libSQL statement executed again without `reset()` silently re-runs
//! with its first parameters (tursodatabase/libsql#2135), and one left unreset after a
//! query keeps its read transaction open. For remote connections `prepare` costs a
//! `describe` round trip and the statement holds only its SQL text, so the cache saves that
//! round trip but not the execution's own.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libsql::{Connection, Statement};
use lru::LruCache;
use memory_core::StorageError;
pub use memory_core::stats::{StatementCacheStats, StatementStatsSnapshot};

use crate::error::db;

/// Counters shared by every connection's cache.
#[derive(Default, Debug)]
pub(crate) struct StatementCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    prepare_nanos: AtomicU64,
}

impl StatementCounters {
    pub(crate) fn snapshot(&self) -> StatementStatsSnapshot {
        StatementStatsSnapshot {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            prepare_time: Duration::from_nanos(self.prepare_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// One connection's statements.
pub(crate) struct StatementCache {
    statements: LruCache<Arc<str>, Statement>,
    counters: Arc<StatementCounters>,
    /// False when configured without a cache, and for embedded replicas: libsql's replica
    /// statements ignore `reset()`, so a reused one would keep its first parameters and its
    /// read snapshot. Statements are then prepared for each use (and counted as misses).
    reusable: bool,
    scratch: Option<Statement>,
}

impl StatementCache {
    /// A cache of `capacity` statements; `None` prepares every use.
    pub(crate) fn new(capacity: Option<NonZeroUsize>, counters: Arc<StatementCounters>) -> Self {
        StatementCache {
            statements: LruCache::new(capacity.unwrap_or(NonZeroUsize::MIN)),
            counters,
            reusable: capacity.is_some(),
            scratch: None,
        }
    }

    /// The statement for `sql` on `conn`, prepared now or reused (and then reset).
    pub(crate) async fn get(
        &mut self,
        conn: &Connection,
        sql: &str,
    ) -> Result<&Statement, StorageError> {
        if !self.reusable {
            let statement = self.prepare(conn, sql).await?;
            return Ok(self.scratch.insert(statement));
        }
        if self.statements.contains(sql) {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            let statement = self.prepare(conn, sql).await?;
            // Dropping an evicted statement finalizes it.
            if self.statements.push(Arc::from(sql), statement).is_some() {
                self.counters.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        let statement = self
            .statements
            .get(sql)
            .ok_or_else(|| StorageError::internal("a statement vanished from its cache"))?;
        statement.reset();
        Ok(statement)
    }

    async fn prepare(&self, conn: &Connection, sql: &str) -> Result<Statement, StorageError> {
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let statement = conn
            .prepare(sql)
            .await
            .map_err(|e| db("preparing a statement", e))?;
        self.counters
            .prepare_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(statement)
    }
}
