//! [`Instrumented`]: a [`StorageBackend`] that records every call's latency, outcome and
//! batch size.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use memory_core::search::{EpisodeSearch, PatternSearch, Scored};
use memory_core::stats::{CachedStats, CachedStorageStats};
use memory_core::{
    EntityKind, Episode, EpisodeId, EpisodePage, EpisodeQuery, ErrorKind, Heuristic, HeuristicId,
    ItemCheck, Pattern, PatternId, PatternQuery, Result, StorageBackend, Uuid,
};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

use crate::buckets;

/// Every operation, in the order of [`OPERATIONS`].
const OPERATION_COUNT: usize = 28;

/// The `operation` label values.
pub const OPERATIONS: [&str; OPERATION_COUNT] = [
    "store_episode",
    "get_episode",
    "delete_episode",
    "store_episodes",
    "get_episodes",
    "delete_episodes",
    "query_episodes",
    "count_episodes",
    "store_pattern",
    "get_pattern",
    "delete_pattern",
    "store_patterns",
    "get_patterns",
    "delete_patterns",
    "query_patterns",
    "count_patterns",
    "store_heuristic",
    "get_heuristic",
    "delete_heuristic",
    "store_heuristics",
    "get_heuristics",
    "delete_heuristics",
    "count_heuristics",
    "search_episodes",
    "search_patterns",
    "list_patterns",
    "list_heuristics",
    "check_items",
];

/// The error kinds, in outcome order after "ok".
const KINDS: [ErrorKind; 9] = [
    ErrorKind::NotFound,
    ErrorKind::InvalidInput,
    ErrorKind::Conflict,
    ErrorKind::Locked,
    ErrorKind::Transient,
    ErrorKind::Corrupt,
    ErrorKind::Unavailable,
    ErrorKind::Internal,
    ErrorKind::Indeterminate,
];

/// "ok", then every error kind's name ("not_found" also for a get that found nothing).
const OUTCOME_COUNT: usize = 1 + KINDS.len();

fn outcome_name(i: usize) -> &'static str {
    match i {
        0 => "ok",
        i => KINDS[i - 1].as_str(),
    }
}

fn kind_index(kind: ErrorKind) -> usize {
    1 + KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KINDS.len() - 1)
}

/// The metric families [`Instrumented`] stores write to. Register them once per registry
/// and share them between stores: each store labels its samples with its backend's name.
pub struct OperationMetrics {
    latency: HistogramVec,
    batch: HistogramVec,
    errors: IntCounterVec,
}

impl OperationMetrics {
    /// Creates the families and registers them in `registry`:
    ///
    /// - `memory_operation_duration_seconds{operation, backend, outcome}` (histogram);
    /// - `memory_batch_items{operation, backend}` (histogram of batch sizes);
    /// - `memory_operation_errors_total{operation, backend, kind}` (counter).
    pub fn register(registry: &Registry) -> prometheus::Result<Arc<Self>> {
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "memory_operation_duration_seconds",
                "Time a storage operation took, by operation, backend and outcome.",
            )
            .buckets(buckets::latency_seconds()),
            &["operation", "backend", "outcome"],
        )?;
        let batch = HistogramVec::new(
            HistogramOpts::new(
                "memory_batch_items",
                "Items in one batch operation (store, get or delete of many).",
            )
            .buckets(buckets::batch_items()),
            &["operation", "backend"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "memory_operation_errors_total",
                "Storage operations that failed, by operation, backend and error kind.",
            ),
            &["operation", "backend", "kind"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(batch.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        Ok(Arc::new(OperationMetrics {
            latency,
            batch,
            errors,
        }))
    }
}

/// One operation's series, each resolved on first use (so that only outcomes that
/// happened are exported) and then read without a label lookup.
#[derive(Default)]
struct Series {
    latency: [OnceLock<Histogram>; OUTCOME_COUNT],
    errors: [OnceLock<IntCounter>; OUTCOME_COUNT],
    batch: OnceLock<Histogram>,
}

/// A store whose every call is timed (one clock read at each end) and counted by outcome,
/// with batch sizes and errors by kind, into [`OperationMetrics`].
///
/// ```
/// use memory_core::{InMemoryStorage, StorageBackend};
/// use memory_metrics::{Instrumented, OperationMetrics};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let registry = prometheus::Registry::new();
/// let metrics = OperationMetrics::register(&registry)?;
/// let store = Instrumented::new(InMemoryStorage::new(), &metrics);
/// assert_eq!(store.count_episodes().await?, 0);
/// let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather())?;
/// assert!(text.contains(
///     r#"memory_operation_duration_seconds_count{backend="memory",operation="count_episodes",outcome="ok"} 1"#
/// ));
/// # Ok::<(), anyhow::Error>(())
/// # }).unwrap();
/// ```
pub struct Instrumented<S> {
    inner: S,
    backend: &'static str,
    metrics: Arc<OperationMetrics>,
    series: Box<[Series]>,
}

impl<S: StorageBackend> Instrumented<S> {
    /// Wraps `inner`, recording into `metrics` under `inner`'s backend name.
    pub fn new(inner: S, metrics: &Arc<OperationMetrics>) -> Self {
        Instrumented {
            backend: inner.backend_name(),
            inner,
            metrics: Arc::clone(metrics),
            series: (0..OPERATION_COUNT).map(|_| Series::default()).collect(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn record<T: Found>(&self, op: usize, started: Instant, result: &Result<T>) {
        let elapsed = started.elapsed().as_secs_f64();
        let series = &self.series[op];
        let labels = |i: usize| [OPERATIONS[op], self.backend, outcome_name(i)];
        let outcome = match result {
            Ok(value) if value.found() => 0,
            Ok(_) => kind_index(ErrorKind::NotFound),
            Err(e) => {
                let i = kind_index(e.kind());
                series.errors[i]
                    .get_or_init(|| self.metrics.errors.with_label_values(&labels(i)))
                    .inc();
                i
            }
        };
        series.latency[outcome]
            .get_or_init(|| self.metrics.latency.with_label_values(&labels(outcome)))
            .observe(elapsed);
    }

    fn record_batch(&self, op: usize, items: usize) {
        self.series[op]
            .batch
            .get_or_init(|| {
                self.metrics
                    .batch
                    .with_label_values(&[OPERATIONS[op], self.backend])
            })
            .observe(items as f64);
    }
}

/// The cache statistics of an instrumented cached store pass through, so one `Arc` serves
/// both the caller and a [`CacheCollector`](crate::CacheCollector).
impl<S: CachedStats> CachedStats for Instrumented<S> {
    fn cached_stats(&self) -> CachedStorageStats {
        self.inner.cached_stats()
    }
}

/// Whether a successful answer found what was asked for (a get of a missing id did not).
trait Found {
    fn found(&self) -> bool;
}

impl<T> Found for Option<T> {
    fn found(&self) -> bool {
        self.is_some()
    }
}

macro_rules! found_always {
    ($($t:ty),*) => { $(impl Found for $t { fn found(&self) -> bool { true } })* };
}

found_always!((), u64, EpisodePage);

impl<T> Found for Vec<T> {
    fn found(&self) -> bool {
        true
    }
}

// The macro writes the whole impl, so that `async_trait` sees the expanded methods. A
// method given `batch` also records the length of that slice argument.
macro_rules! instrumented {
    ($($op:literal $name:ident($($arg:ident: $ty:ty),*) -> $out:ty $(, batch $items:ident)?;)*) => {
        #[async_trait]
        impl<S: StorageBackend> StorageBackend for Instrumented<S> {
            fn backend_name(&self) -> &'static str {
                self.inner.backend_name()
            }

            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$out> {
                    debug_assert_eq!(OPERATIONS[$op], stringify!($name));
                    $(self.record_batch($op, $items.len());)?
                    let started = Instant::now();
                    let result = self.inner.$name($($arg),*).await;
                    self.record($op, started, &result);
                    result
                }
            )*
        }
    };
}

instrumented! {
    0 store_episode(episode: &Episode) -> ();
    1 get_episode(id: EpisodeId) -> Option<Arc<Episode>>;
    2 delete_episode(id: EpisodeId) -> ();
    3 store_episodes(episodes: &[Episode]) -> (), batch episodes;
    4 get_episodes(ids: &[EpisodeId]) -> Vec<Option<Arc<Episode>>>, batch ids;
    5 delete_episodes(ids: &[EpisodeId]) -> (), batch ids;
    6 query_episodes(query: &EpisodeQuery) -> EpisodePage;
    7 count_episodes() -> u64;
    8 store_pattern(pattern: &Pattern) -> ();
    9 get_pattern(id: PatternId) -> Option<Arc<Pattern>>;
    10 delete_pattern(id: PatternId) -> ();
    11 store_patterns(patterns: &[Pattern]) -> (), batch patterns;
    12 get_patterns(ids: &[PatternId]) -> Vec<Option<Arc<Pattern>>>, batch ids;
    13 delete_patterns(ids: &[PatternId]) -> (), batch ids;
    14 query_patterns(query: &PatternQuery) -> Vec<Arc<Pattern>>;
    15 count_patterns() -> u64;
    16 store_heuristic(heuristic: &Heuristic) -> ();
    17 get_heuristic(id: HeuristicId) -> Option<Arc<Heuristic>>;
    18 delete_heuristic(id: HeuristicId) -> ();
    19 store_heuristics(heuristics: &[Heuristic]) -> (), batch heuristics;
    20 get_heuristics(ids: &[HeuristicId]) -> Vec<Option<Arc<Heuristic>>>, batch ids;
    21 delete_heuristics(ids: &[HeuristicId]) -> (), batch ids;
    22 count_heuristics() -> u64;
    23 search_episodes(search: &EpisodeSearch) -> Vec<Scored<Episode>>;
    24 search_patterns(search: &PatternSearch) -> Vec<Scored<Pattern>>;
    25 list_patterns(after: Option<PatternId>, limit: usize) -> Vec<Arc<Pattern>>;
    26 list_heuristics(after: Option<HeuristicId>, limit: usize) -> Vec<Arc<Heuristic>>;
    27 check_items(kind: EntityKind, after: Option<Uuid>, limit: usize) -> Vec<ItemCheck>;
}
