//! What the libSQL benchmarks share: a runtime, stores loaded with typical episodes, a real
//! sqld, and the raw-libsql baselines, written the way a careful user would write them by
//! hand (one reused prepared statement per shape, one transaction per batch).

#![allow(dead_code)]

#[allow(unused_imports)] // not every bench that shares this module starts a server
pub use memory_bench::sqld;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memory_core::testing::typical::typical_episode;
use memory_core::{Episode, StorageBackend};
use memory_storage_turso::{TursoConfig, TursoStorage};

#[allow(unused_imports)] // not every bench that shares this module compares with raw libsql
pub use memory_bench::raw::Raw;

/// A single-threaded runtime: the benchmarks measure one caller's latency, and a
/// current-thread runtime adds no cross-thread wake-ups to it.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Typical episodes `range`, built before any timing starts.
pub fn typical(range: std::ops::Range<u64>) -> Vec<Episode> {
    range.map(typical_episode).collect()
}

/// Stores `episodes` in batches of 1,000.
pub async fn load(store: &TursoStorage, episodes: &[Episode]) -> anyhow::Result<()> {
    for chunk in episodes.chunks(1_000) {
        store.store_episodes(chunk).await?;
    }
    Ok(())
}

/// Index `i` of a fixed pseudo-random walk over `0..n` (every index once per `n` steps):
/// lookups that defeat any locality a sequential walk would have.
pub fn scattered(i: u64, n: u64) -> usize {
    // 7_919 is prime, so stepping by it visits every residue mod n unless n is a multiple.
    ((i.wrapping_mul(7_919)) % n) as usize
}

/// The operation number `timed` hands out next: it keeps counting across calls, so that a
/// walk over the data set continues where the last sample stopped instead of every sample
/// re-reading the same first items (which then sit in every cache).
static NEXT_OP: AtomicU64 = AtomicU64::new(0);

/// Runs `op(i)` `iters` times on `rt`, with `i` counting on from the previous call, and
/// returns the time it took; an error stops the benchmark (it is never timed or skipped).
pub fn timed<F>(rt: &tokio::runtime::Runtime, iters: u64, mut op: F) -> Duration
where
    F: AsyncFnMut(u64) -> anyhow::Result<()>,
{
    let first = NEXT_OP.fetch_add(iters, Ordering::Relaxed);
    rt.block_on(async {
        let started = Instant::now();
        for i in first..first + iters {
            op(i).await.expect("a benchmarked operation failed");
        }
        started.elapsed()
    })
}

/// Like [`timed`], but each iteration first runs `other(i)` untimed and then `measured(i)`
/// timed. Single reads measure each side interleaved with an identical twin on its own copy
/// of the data, so that both sides run the same alternating workload. This does not remove
/// the unexplained penalty described in `plans/0010-libsql-benchmarks.md` (one side of a
/// pair of small-episode reads can still run about 2.2 µs slower); it keeps the two sides'
/// conditions alike.
pub fn timed_against<M, O>(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    mut measured: M,
    mut other: O,
) -> Duration
where
    M: AsyncFnMut(u64) -> anyhow::Result<()>,
    O: AsyncFnMut(u64) -> anyhow::Result<()>,
{
    let first = NEXT_OP.fetch_add(iters, Ordering::Relaxed);
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for i in first..first + iters {
            other(i).await.expect("the interleaved operation failed");
            let started = Instant::now();
            measured(i).await.expect("a benchmarked operation failed");
            total += started.elapsed();
        }
        total
    })
}

/// Copies the closed database at `path` (and its write-ahead log, if one is left) to
/// `to`: the raw baseline reads its own identical copy, so that nothing two connections to
/// one file share (its lock and WAL-index bookkeeping) weighs on one side only.
pub fn copy_database(path: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(path, to)?;
    let wal = |p: &Path| p.with_extension("db-wal");
    if wal(path).exists() {
        std::fs::copy(wal(path), wal(to))?;
    }
    Ok(())
}

/// A store over the local file `path` with `config`'s other settings.
pub async fn local_store(path: &Path) -> anyhow::Result<TursoStorage> {
    Ok(TursoStorage::open(TursoConfig::local(path)).await?)
}
