//! The tail figures behind `memory-bench tails`: single writes on a local file (the
//! checkpoint's place shows in their p99) and a single task's cached gets, change check on,
//! over a long run on a local file and on sqld (no hit may wait for a check).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use hdrhistogram::Histogram;
use memory_core::{ChangeSignal, StorageBackend};
use memory_storage_cached::CacheSettings;
use memory_storage_turso::{TursoConfig, TursoStorage};

use crate::agent;
use crate::soak::{OperationFigures, latency_histogram};

/// Latencies of one run, in microseconds.
#[derive(Clone, Debug)]
pub struct Tail {
    /// What was timed.
    pub what: String,
    /// Calls timed.
    pub calls: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// The slowest.
    pub max_us: f64,
    /// Anything else worth knowing about the run.
    pub note: String,
}

impl std::fmt::Display for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<44} {:>9} calls  p50 {:>9.2} µs  p99 {:>9.2} µs  p99.9 {:>9.2} µs  max {:>10.2} µs  {}",
            self.what, self.calls, self.p50_us, self.p99_us, self.p999_us, self.max_us, self.note
        )
    }
}

fn tail(what: &str, h: &Histogram<u64>, note: String) -> Tail {
    let f = OperationFigures::of(what, h);
    let us = |secs: f64| secs * 1e6;
    Tail {
        what: f.operation,
        calls: f.calls,
        p50_us: us(f.p50_seconds),
        p99_us: us(f.p99_seconds),
        p999_us: us(f.p999_seconds),
        max_us: us(f.max_seconds),
        note,
    }
}

fn nanos(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `count` single updates from one task on a local file (50 episodes revised in turn),
/// with the checkpoint thread's figures.
pub async fn single_writes(count: u64) -> anyhow::Result<Tail> {
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let store = TursoStorage::open(TursoConfig::local(dir.path().join("writes.db"))).await?;
    for n in 0..50 {
        store.store_episode(&agent::episode(n, 0)).await?;
    }
    let mut h = latency_histogram()?;
    for i in 0..count {
        let episode = agent::episode(i % 50, u32::try_from(i / 50 + 1)?);
        let started = Instant::now();
        store.store_episode(&episode).await?;
        h.record(nanos(started).max(1))?;
    }
    let checkpoints = store
        .checkpoint_stats()
        .context("a local file has a checkpointer")?;
    let wal = std::fs::metadata(dir.path().join("writes.db-wal")).map_or(0, |m| m.len());
    Ok(tail(
        "store_episode, one task, local file",
        &h,
        format!(
            "{} checkpoints ({} finished between writes), {} truncating, largest log {} pages \
             (limit {}), log file {} KiB",
            checkpoints.checkpoints,
            checkpoints.finishes,
            checkpoints.restarts,
            checkpoints.largest_log_pages,
            store.config().wal_limit_pages,
            wal / 1024
        ),
    ))
}

/// One task's cache hits for `secs`, change check on, on `config`'s store (1,000 episodes,
/// all cached first). The note counts the reads that waited for a check.
pub async fn cached_gets(what: &str, config: TursoConfig, secs: f64) -> anyhow::Result<Tail> {
    let store = TursoStorage::open(config).await?;
    let ids: Vec<_> = (0..1_000u64).map(agent::id_of).collect();
    let episodes: Vec<_> = (0..1_000u64).map(|n| agent::episode(n, 0)).collect();
    for chunk in episodes.chunks(100) {
        store.store_episodes(chunk).await?;
    }
    let signal: Arc<dyn ChangeSignal> = Arc::new(store.clone());
    let cached = store
        .cached(&CacheSettings::default())?
        .with_change_signal(signal);
    for id in &ids {
        ensure!(
            cached.get_episode(*id).await?.is_some(),
            "a stored episode is missing"
        );
    }
    let before = cached.stats().episodes;
    let mut h = latency_histogram()?;
    let started = Instant::now();
    let mut over_10us = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        for id in &ids {
            let call = Instant::now();
            let got = cached.get_episode(*id).await?;
            let took = nanos(call);
            ensure!(got.is_some(), "a stored episode is missing");
            over_10us += u64::from(took > 10_000);
            h.record(took.max(1))?;
        }
    }
    let after = cached.stats().episodes;
    ensure!(
        after.misses == before.misses,
        "{} misses during the run: the timed reads were not all hits",
        after.misses - before.misses
    );
    Ok(tail(
        what,
        &h,
        format!("{over_10us} reads over 10 µs in {secs:.0} s"),
    ))
}

/// Both, as `memory-bench tails` prints them; the sqld run needs `SQLD_BIN` (or sqld on the
/// path).
pub async fn tails(writes: u64, secs: f64) -> anyhow::Result<Vec<Tail>> {
    let mut out = vec![single_writes(writes).await?];
    let dir = tempfile::tempdir().context("a temporary folder")?;
    out.push(
        cached_gets(
            "cached get, change check on, local file",
            TursoConfig::local(dir.path().join("gets.db")),
            secs,
        )
        .await?,
    );
    let sqld = memory_test_sqld::Sqld::start().await?;
    out.push(
        cached_gets(
            "cached get, change check on, sqld loopback",
            TursoConfig::remote(sqld.url(), None),
            secs,
        )
        .await?,
    );
    drop(sqld);
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(out)
}
