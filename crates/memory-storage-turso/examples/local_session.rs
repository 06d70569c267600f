//! Stores a short agent session in the embedded default store (a local libSQL file) and
//! reads it back: a single write, a batch (one transaction), a point read, a filtered query
//! paged to the end, and the typed error for bad input; then prints the pool's and the
//! statement cache's counters.
//!
//! Run with `cargo run --release -p memory-storage-turso --example local_session`.

use memory_core::testing::tour;
use memory_storage_turso::{PoolStats, StatementCacheStats, TursoConfig, TursoStorage};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The embedded default: a local libSQL file (here in a temporary folder), no server.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("memory.db");
    let store = TursoStorage::open(TursoConfig::local(&path)).await?;
    println!(
        "opened {} (schema version {})",
        path.display(),
        store.schema_version().await?
    );

    tour::walk_through(&store).await?;
    let pool = store.pool_stats();
    let statements = store.statement_stats();
    println!(
        "pool: {} connection(s) opened, {} waits; statement cache: {} hits, {} misses \
         ({:.1} % hit ratio), {:?} spent preparing",
        pool.created,
        pool.waits,
        statements.hits,
        statements.misses,
        statements.hit_ratio() * 100.0,
        statements.prepare_time
    );
    Ok(())
}
