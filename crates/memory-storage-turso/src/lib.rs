//! libSQL storage for episodic memory, on the `libsql` crate: a local file (the embedded
//! default, no server), one in-memory database, a remote sqld/Turso database, or an embedded
//! replica of one. One [`TursoStorage`] implements `memory_core::StorageBackend` for all of
//! them, with
//!
//! - a bounded connection pool (async checkout with a timeout, idle health checks, broken
//!   connections discarded; [`PoolStats`]),
//! - a prepared-statement cache per pooled connection holding real `libsql::Statement`s,
//!   reset before each reuse ([`StatementCacheStats`]),
//! - batches as single transactions of multi-row statements, all-or-nothing,
//! - versioned, forward-only schema migrations run at open,
//! - zstd compression of large payloads.
//!
//! ```no_run
//! use memory_storage_turso::{TursoConfig, TursoStorage};
//!
//! # async fn example() -> Result<(), memory_core::StorageError> {
//! // TURSO_DATABASE_URL / TURSO_AUTH_TOKEN, or the local default file.
//! let store = TursoStorage::open(TursoConfig::from_env()?).await?;
//! # Ok(()) }
//! ```

/// A span timing one phase of an operation (target `memory::phase`, level trace: free
/// unless a subscriber asks for it; the soak's breakdown does).
macro_rules! phase_span {
    ($name:literal) => {
        tracing::trace_span!(target: "memory::phase", $name)
    };
}

mod checkpoint;
mod config;
mod error;
mod own_thread;
pub(crate) mod payload;
mod pool;
mod query;
mod schema;
mod statements;
mod store;
mod table;
mod text_index;
mod vectors;
mod writer;

pub use checkpoint::CheckpointStats;
pub use config::{
    AuthToken, DEFAULT_OPERATION_TIMEOUT, Location, PoolConfig, RetryPolicy, TOKEN_ENV,
    TursoConfig, URL_ENV,
};
pub use memory_storage_cached::{CacheSettings, CachedStorage};
pub use pool::{PoolStats, PoolStatsSnapshot, WAIT_BUCKETS, WAIT_SLOTS};
pub use schema::SCHEMA_VERSION;
pub use statements::{StatementCacheStats, StatementStatsSnapshot};
pub use store::TursoStorage;

/// Test support, not part of the supported API: building old-schema databases and reading
/// and writing stored payloads, for the upgrade and golden tests and the raw-libsql
/// benchmark baselines.
#[doc(hidden)]
pub mod testing {
    pub use crate::payload::{PLAIN, ZSTD, decode as decode_payload};
    pub use crate::schema::migrate_to;

    /// `(encoding, bytes)` of `item` as a store with `config` writes it.
    pub fn encode_payload<E: memory_core::Entity>(
        item: &E,
        config: &crate::TursoConfig,
    ) -> Result<(i64, Vec<u8>), memory_core::StorageError> {
        crate::payload::PayloadCodec {
            threshold: config.compression_threshold,
            level: config.compression_level,
        }
        .encode(item)
    }
}
