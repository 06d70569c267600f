//! The standard run behind `memory-bench run`: load the standard data set into a libSQL
//! store (a local file by default, or a server), run the agent-session workload through
//! the cached store, and measure what the Phase 3 plan's dashboard lists.

use std::time::Instant;

use anyhow::Context;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use memory_cache_adaptive::CacheConfig;
use memory_cache_adaptive::simulator::belady;
use memory_core::{Episode, StorageBackend};
use memory_storage_cached::{CachePart, CacheSettings, CachedStorage, CachedStorageStats};
use memory_storage_turso::{StatementCacheStats, TursoConfig, TursoStorage};
use serde::{Deserialize, Serialize};

use crate::agent::{self, AgentOp, AgentWorkload};
use crate::curves::{self, CurvePoint};
use crate::raw::Raw;
use crate::replay::{self, Timings};

/// The agent workload's seed in the standard run.
pub const AGENT_SEED: u64 = 42;

/// How big a run is and where it runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Episodes in the data set.
    pub history: u64,
    /// Sessions to warm up, and as many counted after.
    pub sessions: usize,
    /// A libSQL server instead of a local file in a temporary folder.
    pub remote: Option<TursoConfig>,
    /// Draw progress bars on the terminal.
    pub progress: bool,
    /// The cached store's settings (the default ones unless a gate check weakens them).
    pub cache: CacheSettings,
    /// Whether the store keeps prepared statements per connection.
    pub statement_cache: bool,
    /// Also run the queries of [`crate::measure::extra_shapes`] once (a gate weakening).
    pub extra_shapes: bool,
    /// Bytes live on the heap now, when the binary counts its allocations (the
    /// `memory-bench` binary does): the caches' real memory is what dropping them frees.
    pub heap_bytes: Option<fn() -> u64>,
    /// The `memory-bench` executable, to run another writer process beside a reader for
    /// the hit-ratio row (local runs of the binary only; see [`crate::feed`]).
    pub writer_exe: Option<std::path::PathBuf>,
    /// The retrieval rows' measurement (local runs only; `None`: not measured).
    pub search: Option<crate::search::SearchOptions>,
}

/// The other writer's rate and the phases' length in the dashboard's row.
pub const BESIDE_WRITER_RATE: u32 = 20;
/// See [`BESIDE_WRITER_RATE`].
pub const BESIDE_WRITER_SECS: f64 = 3.0;

impl RunOptions {
    /// The standard run: the standard data set, 20,000 + 20,000 sessions.
    pub fn standard() -> Self {
        RunOptions {
            history: agent::STANDARD_HISTORY,
            sessions: 20_000,
            remote: None,
            progress: true,
            cache: CacheSettings::default(),
            statement_cache: true,
            extra_shapes: false,
            heap_bytes: None,
            writer_exe: None,
            search: None,
        }
    }

    /// A run that finishes in well under a minute: 5,000 episodes, 2,000 + 2,000 sessions.
    pub fn quick() -> Self {
        RunOptions {
            history: 5_000,
            sessions: 2_000,
            ..Self::standard()
        }
    }
}

/// Percentiles of one operation's latency, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Calls measured.
    pub calls: u64,
    /// Median.
    pub p50_us: f64,
    /// 95th percentile.
    pub p95_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
        Latency {
            calls: h.len(),
            p50_us: us(0.50),
            p95_us: us(0.95),
            p99_us: us(0.99),
        }
    }
}

/// Everything one run measured (the JSON result).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Logical cores of the machine.
    pub cores: usize,
    /// `local file` or `remote`.
    pub location: String,
    /// Episodes in the data set.
    pub history: u64,
    /// Sessions counted (after as many to warm up).
    pub sessions: usize,
    /// Episodes stored per second while loading the data set in batches of 100.
    pub bulk_insert_per_sec: f64,
    /// Episode-cache hit ratio over the counted sessions.
    pub episode_hit_ratio: f64,
    /// The same without the read-backs (each session reading the episode it has just
    /// stored, a hit by construction for a write-through cache).
    #[serde(default)]
    pub episode_hit_ratio_without_read_backs: f64,
    /// Belady's rule under the same byte budget on the same trace.
    pub episode_hit_ratio_reference: f64,
    /// Query-result cache hit ratio over the counted sessions.
    pub query_hit_ratio: f64,
    /// Cached queries (hits and misses) in the counted sessions.
    pub query: Latency,
    /// Reads by id in the counted sessions.
    pub get: Latency,
    /// Cache hits by id with the change check on (as `open_cached` builds the cache), for
    /// at least [`CACHED_GET_SECS`] s: local runs only.
    #[serde(default)]
    pub cached_get: Option<Latency>,
    /// Single stores in the counted sessions.
    pub store: Latency,
    /// Batch stores in the counted sessions.
    pub store_batch: Latency,
    /// Mean time to prepare a statement, in microseconds.
    pub statement_prepare_us: f64,
    /// Prepared-statement cache hit ratio over the whole run.
    pub statement_hit_ratio: f64,
    /// Statements prepared over the whole run (every statement-cache miss prepares one).
    #[serde(default)]
    pub statements_prepared: u64,
    /// Bytes all caches held at the end, as they account them (their weighers).
    pub cache_bytes: u64,
    /// Heap bytes dropping every cache freed at the end (values and index included), when
    /// the binary counts allocations.
    #[serde(default)]
    pub cache_heap_bytes: Option<u64>,
    /// The configured cache budget.
    pub cache_budget_bytes: u64,
    /// Entries evicted for room per 1,000 cache lookups in the counted sessions.
    pub evictions_per_1000_lookups: f64,
    /// The same-run raw-libsql baseline (local runs only).
    pub raw: Option<RawComparison>,
    /// Hit ratio by cache size for this cache, LRU, moka and the optimum, simulated on this
    /// run's trace.
    #[serde(default)]
    pub hit_ratio_curve: Vec<CurvePoint>,
    /// The episode cache's budget as a share of the data set's bytes.
    #[serde(default)]
    pub episode_budget_share: f64,
    /// A reader's hit ratio alone and beside another process writing other episodes at
    /// [`BESIDE_WRITER_RATE`] per second (local runs of the binary only).
    #[serde(default)]
    pub beside_writer: Option<(crate::feed::RatePhase, crate::feed::RatePhase)>,
    /// Similarity and text search on a local file of their own ([`crate::search`]).
    #[serde(default)]
    pub search: Option<crate::search::SearchReport>,
}

/// The store beside hand-written raw libsql doing the same work in the same run, on a
/// local file of its own with the same data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RawComparison {
    /// Raw: one transaction and reused prepared inserts per batch of 100, episodes/s,
    /// loaded in the same loop as the store (batches alternating).
    pub raw_bulk_insert_per_sec: f64,
    /// Raw: a reused prepared lookup by id plus decoding, p50 in µs.
    pub raw_get_p50_us: f64,
    /// The store without its cache, the same lookups, p50 in µs.
    pub store_get_p50_us: f64,
    /// The cached store (change check on), the same lookups once cached, p50 in µs.
    pub cached_get_p50_us: f64,
    /// The three lookups' latency distributions.
    #[serde(default)]
    pub distribution: Vec<QuantilePoint>,
}

/// The latency of one quantile of the raw comparison's lookups, on each side.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuantilePoint {
    /// The quantile (0.5 = median).
    pub quantile: f64,
    /// Raw libsql, µs.
    pub raw_us: f64,
    /// The store without its cache, µs.
    pub store_us: f64,
    /// The cached store, µs.
    pub cached_us: f64,
}

/// The quantiles the raw comparison's distributions are given at.
const QUANTILES: [f64; 15] = [
    0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999,
];

/// Stores the data set's episodes `0..history` in batches of 100 in `store` and, when
/// given, in `raw` (its own file with the same schema), alternating which goes first from
/// batch to batch so that a slow moment of the machine lands on both; returns the seconds
/// spent in each side's calls alone (not in building the episodes).
async fn interleaved_load(
    history: u64,
    progress: &ProgressBar,
    store: &TursoStorage,
    raw: Option<&Raw>,
) -> anyhow::Result<(f64, f64)> {
    let (mut store_secs, mut raw_secs) = (0.0, 0.0);
    let mut batch: Vec<Episode> = Vec::with_capacity(100);
    let mut batches = 0u64;
    for n in 0..history {
        batch.push(agent::episode(n, 0));
        if batch.len() == 100 || n + 1 == history {
            for side in 0..2 {
                let raw_turn = (side + batches) % 2 == 1;
                let started = Instant::now();
                match (raw_turn, raw) {
                    (false, _) => {
                        store
                            .store_episodes(&batch)
                            .await
                            .context("loading the data set")?;
                        store_secs += started.elapsed().as_secs_f64();
                    }
                    (true, Some(raw)) => {
                        raw.insert_episodes(&batch).await?;
                        raw_secs += started.elapsed().as_secs_f64();
                    }
                    (true, None) => {}
                }
            }
            batches += 1;
            batch.clear();
            progress.set_position(n + 1);
        }
    }
    Ok((store_secs, raw_secs))
}

/// Lookups timed per side of the raw comparison.
const RAW_GETS: usize = 5_000;

/// Seconds of cache hits timed with the change check on: long enough to cross the default
/// change-check interval (100 ms) many times.
pub const CACHED_GET_SECS: f64 = 1.0;

/// Times the same lookups raw, through the bare store and (once cached) through a cache
/// with the change check on; the cache's hits are timed for [`CACHED_GET_SECS`].
async fn raw_comparison(
    raw: &Raw,
    store: &TursoStorage,
    history: u64,
    settings: &CacheSettings,
) -> anyhow::Result<(RawComparison, Latency)> {
    let ids: Vec<_> = (0..RAW_GETS as u64)
        .map(|i| agent::id_of(crate::scatter(i, history)))
        .collect();
    let mut raw_h = Histogram::<u64>::new(3)?;
    let lookup = raw.lookup_statement().await?;
    for id in &ids {
        let started = Instant::now();
        raw.get_with(&lookup, *id).await?;
        raw_h.record(nanos(started))?;
    }
    let mut store_h = Histogram::<u64>::new(3)?;
    for id in &ids {
        let started = Instant::now();
        replay::get_existing(store, *id).await?;
        store_h.record(nanos(started))?;
    }
    // As `open_cached` builds it: the store is the cache's change signal (with the cache
    // off, a weakened gate check, this is the bare store).
    let signal: std::sync::Arc<dyn memory_core::ChangeSignal> = std::sync::Arc::new(store.clone());
    let cached = memory_storage_cached::layer(store.clone(), settings, Some(signal))
        .context("cache settings")?;
    let cached = cached.as_ref();
    for id in &ids {
        replay::get_existing(cached, *id).await?;
    }
    let mut cached_h = Histogram::<u64>::new(3)?;
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < CACHED_GET_SECS {
        for id in &ids {
            let call = Instant::now();
            replay::get_existing(cached, *id).await?;
            cached_h.record(nanos(call))?;
        }
    }
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    let comparison = RawComparison {
        raw_bulk_insert_per_sec: 0.0,
        raw_get_p50_us: us(&raw_h, 0.5),
        store_get_p50_us: us(&store_h, 0.5),
        cached_get_p50_us: us(&cached_h, 0.5),
        distribution: QUANTILES
            .iter()
            .map(|&q| QuantilePoint {
                quantile: q,
                raw_us: us(&raw_h, q),
                store_us: us(&store_h, q),
                cached_us: us(&cached_h, q),
            })
            .collect(),
    };
    Ok((comparison, Latency::of(&cached_h)))
}

/// Nanoseconds since `started`, at least 1 (a histogram takes no zero).
pub(crate) fn nanos(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn bar(progress: bool, len: u64, what: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// How much a counter grew between two snapshots; a counter that went back is an error
/// (a figure built on it would be impossible), never a zero.
pub fn delta(after: u64, before: u64) -> anyhow::Result<u64> {
    after
        .checked_sub(before)
        .with_context(|| format!("a counter went back from {before} to {after}"))
}

/// `hits / (hits + misses)`, or 0 with no lookups.
pub fn ratio(hits: u64, misses: u64) -> f64 {
    if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    }
}

/// Performs one run.
pub async fn standard_run(options: &RunOptions) -> anyhow::Result<RunResult> {
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let (config, location) = match &options.remote {
        Some(config) => (config.clone(), "remote"),
        None => (
            TursoConfig::local(dir.path().join("memory.db")),
            "local file",
        ),
    };
    let config = if options.statement_cache {
        config
    } else {
        config.statement_cache_capacity(0)
    };
    let store = TursoStorage::open(config)
        .await
        .context("opening the store")?;
    // Raw libsql beside a local store, on a file of its own (the store creates the schema;
    // raw libsql then writes and reads its tables directly).
    let raw = match options.remote {
        Some(_) => None,
        None => {
            let path = dir.path().join("raw.db");
            drop(TursoStorage::open(TursoConfig::local(&path)).await?);
            Some(Raw::local(&path).await?)
        }
    };

    let loading = bar(options.progress, options.history, "loading");
    let (load_secs, raw_load_secs) =
        interleaved_load(options.history, &loading, &store, raw.as_ref()).await?;
    loading.finish_and_clear();
    if options.extra_shapes {
        for query in crate::measure::extra_shapes() {
            store.query_episodes(&query).await?;
        }
    }

    // The workload through the cached store, as `open_cached` builds it.
    let settings = &options.cache;
    // Disabled (a weakened gate check), the workload runs on the store and no cache counts.
    let cached = match settings.enabled {
        true => Some(store.cached(settings).context("cache settings")?),
        false => None,
    };
    let workload = AgentWorkload::new(options.history, AGENT_SEED);
    let ops = workload.sessions(2 * options.sessions);
    let warm = workload.sessions(options.sessions).len();
    let running = bar(options.progress, ops.len() as u64, "sessions");
    let counted = {
        let target: &dyn StorageBackend = match &cached {
            Some(cached) => cached,
            None => &store,
        };
        let stats = || {
            cached
                .as_ref()
                .map(CachedStorage::stats)
                .unwrap_or_default()
        };
        let mut warmup = Timings::new()?;
        for chunk in ops[..warm].chunks(1_000) {
            replay::run_agent_timed(target, chunk, &mut warmup).await?;
            running.inc(chunk.len() as u64);
        }
        let before = stats();
        let mut timings = Timings::new()?;
        // Read-backs one at a time, their hits and misses counted apart (outside the timing).
        let (mut read_back_hits, mut read_back_misses) = (0, 0);
        for chunk in ops[warm..].chunks(1_000) {
            for run in chunk.split_inclusive(|op| matches!(op, AgentOp::ReadBack(_))) {
                let Some((last, rest)) = run.split_last() else {
                    continue;
                };
                replay::run_agent_timed(target, rest, &mut timings).await?;
                if matches!(last, AgentOp::ReadBack(_)) {
                    let ahead = stats().episodes;
                    replay::run_agent_timed(target, std::slice::from_ref(last), &mut timings)
                        .await?;
                    let behind = stats().episodes;
                    read_back_hits += delta(behind.hits, ahead.hits)?;
                    read_back_misses += delta(behind.misses, ahead.misses)?;
                } else {
                    replay::run_agent_timed(target, std::slice::from_ref(last), &mut timings)
                        .await?;
                }
            }
            running.inc(chunk.len() as u64);
        }
        Counted {
            before,
            after: stats(),
            timings,
            read_back_hits,
            read_back_misses,
        }
    };
    running.finish_and_clear();
    let (before, after) = (&counted.before, &counted.after);
    // What the caches really hold: the heap bytes that dropping them frees.
    let cache_heap_bytes = match (options.heap_bytes, cached) {
        (Some(heap), Some(cached)) => {
            let live = heap();
            drop(cached);
            Some(live.checked_sub(heap()).context(
                "the heap grew while the caches were dropped: their size cannot be measured",
            )?)
        }
        _ => None,
    };

    let (raw, cached_get) = match &raw {
        None => (None, None),
        Some(raw) => {
            let comparing = bar(options.progress, 1, "raw libsql");
            let (mut comparison, cached_get) =
                raw_comparison(raw, &store, options.history, settings).await?;
            comparison.raw_bulk_insert_per_sec =
                options.history as f64 / raw_load_secs.max(f64::EPSILON);
            comparing.finish_and_clear();
            (Some(comparison), Some(cached_get))
        }
    };

    let beside_writer = match (&options.writer_exe, &options.remote) {
        (Some(exe), None) => {
            let measuring = bar(options.progress, 1, "beside another writer");
            let phases = crate::feed::hit_ratios_beside_writers(
                exe,
                dir.path(),
                &[BESIDE_WRITER_RATE],
                BESIDE_WRITER_SECS,
            )
            .await?;
            measuring.finish_and_clear();
            match <[_; 2]>::try_from(phases) {
                Ok([alone, beside]) => Some((alone, beside)),
                Err(_) => anyhow::bail!("the beside-writer run measured no phases"),
            }
        }
        _ => None,
    };

    let overhead = CacheConfig::new(1).entry_overhead;
    let events = AgentWorkload::events(&ops, overhead);
    let read_backs = AgentWorkload::read_back_flags(&ops);
    let warm_events = AgentWorkload::event_count(&ops[..warm]);
    let episode_budget = settings.part_bytes(CachePart::Episodes);
    let reference = belady::replay_events(&events, episode_budget, warm_events).hit_ratio();
    let episode_budget_share =
        episode_budget as f64 / curves::distinct_bytes(&events).max(1) as f64;
    let mut shares = vec![0.02, 0.05, 0.1, 0.2, 0.4, 0.6];
    if episode_budget_share < 1.0 {
        shares.push(episode_budget_share);
        shares.sort_by(f64::total_cmp);
    }
    let curving = bar(options.progress, 1, "hit curves");
    let hit_ratio_curve =
        curves::hit_ratio_curves(&events, warm_events, overhead, &shares, &read_backs);
    curving.finish_and_clear();
    let search = match (&options.search, &options.remote) {
        (Some(search), None) => {
            let measuring = bar(options.progress, 1, "retrieval");
            let report = crate::search::search(search).await?;
            measuring.finish_and_clear();
            Some(report)
        }
        _ => None,
    };
    let statements = store.statement_stats();
    let lookups = |s: &CachedStorageStats| {
        s.episodes.hits + s.episodes.misses + s.episode_queries.hits + s.episode_queries.misses
    };
    // Capacity evictions include the candidates the admission policy turned away.
    let evicted =
        |s: &CachedStorageStats| s.episodes.evicted_capacity + s.episode_queries.evicted_capacity;
    let counted_lookups = delta(lookups(after), lookups(before))?;
    let bytes = after.episodes.weight
        + after.patterns.weight
        + after.heuristics.weight
        + after.episode_queries.weight
        + after.pattern_queries.weight;
    let episode_hits = delta(after.episodes.hits, before.episodes.hits)?;
    let episode_misses = delta(after.episodes.misses, before.episodes.misses)?;
    let timings = &counted.timings;
    Ok(RunResult {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        location: location.to_string(),
        history: options.history,
        sessions: options.sessions,
        bulk_insert_per_sec: options.history as f64 / load_secs.max(f64::EPSILON),
        episode_hit_ratio: ratio(episode_hits, episode_misses),
        episode_hit_ratio_without_read_backs: ratio(
            delta(episode_hits, counted.read_back_hits)?,
            delta(episode_misses, counted.read_back_misses)?,
        ),
        episode_hit_ratio_reference: reference,
        query_hit_ratio: ratio(
            delta(after.episode_queries.hits, before.episode_queries.hits)?,
            delta(after.episode_queries.misses, before.episode_queries.misses)?,
        ),
        query: Latency::of(&timings.query),
        get: Latency::of(&timings.get),
        cached_get,
        store: Latency::of(&timings.store),
        store_batch: Latency::of(&timings.store_batch),
        statement_prepare_us: if statements.misses == 0 {
            0.0
        } else {
            statements.prepare_time.as_secs_f64() * 1e6 / statements.misses as f64
        },
        statement_hit_ratio: statements.hit_ratio(),
        statements_prepared: statements.misses,
        cache_bytes: bytes,
        cache_heap_bytes,
        cache_budget_bytes: settings.budget_bytes,
        evictions_per_1000_lookups: if counted_lookups == 0 {
            0.0
        } else {
            delta(evicted(after), evicted(before))? as f64 * 1_000.0 / counted_lookups as f64
        },
        raw,
        hit_ratio_curve,
        episode_budget_share,
        beside_writer,
        search,
    })
}

/// What the counted sessions measured.
struct Counted {
    before: CachedStorageStats,
    after: CachedStorageStats,
    timings: Timings,
    read_back_hits: u64,
    read_back_misses: u64,
}
