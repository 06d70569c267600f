//! [`CachedStorage`]: the caches in front of any [`StorageBackend`].

use std::sync::{Arc, OnceLock};

use memory_cache_adaptive::{AdaptiveCache, CacheConfig, CacheStats, ConfigError, QueryCache};
use memory_core::feed::Change;
use memory_core::heap::{self, HeapSize};
use memory_core::{
    ChangeSignal, Entity, Episode, EpisodeId, EpisodeQuery, Heuristic, HeuristicId, Pattern,
    PatternId, PatternQuery, StorageBackend,
};

pub use memory_core::stats::{CachedStats, CachedStorageStats};

use crate::deps::{self, CachedPage, Dep};
use crate::freshness::{Freshness, Invalidate};
use crate::reads::{self, Answer, Read};
use crate::settings::{CachePart, CacheSettings};

/// The entity caches' starting admission window, in percent. Agents read what they just
/// did far more than a static popularity law predicts, and the window's hill climber moves
/// it only one step per ten reads per cached entry, too slowly to get there from 1 % within
/// a session's lifetime. On the agent-session bench a start anywhere from 5 to 30 % hits
/// within 0.3 points of each other and 1.2 to 1.4 points above a 1 % start; Zipf 0.99 loses
/// 0.4 points (see `plans/0008-cache-admission-policy.md`).
const ENTITY_WINDOW_PERCENT: u8 = 10;
/// Bytes per entry assumed when sizing entry-count bounds: small enough that the byte
/// budget is the bound that binds.
const MIN_ENTRY_BYTES: u64 = 256;

/// A [`StorageBackend`] with adaptive caches in front: episodes, patterns and heuristics by
/// id (shared `Arc`s, loads of one id coalesced, "not found" remembered), and the results of
/// `query_episodes`, `query_patterns` and both searches, all within one byte budget.
///
/// Never stale for its own writes: before a write returns, the entries it replaced hold
/// what it wrote (write-through, [`CacheSettings::write_through`]) or are gone, the query
/// results it affects are gone, and a read that overlapped it is returned but not cached. With a
/// [`ChangeSignal`] (see [`with_change_signal`](Self::with_change_signal)) it also notices
/// other writers within [`CacheSettings::change_check_interval`].
///
/// Cancellation: a caller that drops a write's future (a timeout, `select!`, a cancelled
/// task) only stops waiting. The rest of the write, with its cache bookkeeping, finishes on
/// a task of its own ([`memory_core::FinishOnDrop`]), and the caches are then as if the
/// caller had waited. Outside a tokio runtime dropping a write half-way clears every cache.
///
/// ```
/// use memory_core::{Episode, InMemoryStorage, StorageBackend, TaskContext, TaskType};
/// use memory_storage_cached::{CacheSettings, CachedStorage};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = CachedStorage::new(InMemoryStorage::new(), &CacheSettings::default())?;
/// let episode = Episode::new(TaskType::Testing, "run the suite", TaskContext::new("cli"));
/// store.store_episode(&episode).await?; // written through to the cache
/// assert_eq!(store.get_episode(episode.id).await?.as_deref(), Some(&episode));
/// assert_eq!(store.stats().episodes.hits, 1);
/// let other = Episode::new(TaskType::Testing, "lint", TaskContext::new("cli"));
/// assert_eq!(store.get_episode(other.id).await?, None); // a miss, remembered
/// assert_eq!(store.get_episode(other.id).await?, None);
/// assert_eq!((store.stats().episodes.misses, store.stats().episodes.negative_hits), (1, 1));
/// # Ok::<(), anyhow::Error>(())
/// # }).unwrap();
/// ```
pub struct CachedStorage<S> {
    shared: Arc<Shared<S>>,
}

/// The store and its caches, shared with the writes running on their own tasks.
pub(crate) struct Shared<S> {
    pub(crate) inner: S,
    pub(crate) episodes: AdaptiveCache<EpisodeId, Arc<Episode>>,
    pub(crate) patterns: AdaptiveCache<PatternId, Arc<Pattern>>,
    pub(crate) heuristics: AdaptiveCache<HeuristicId, Arc<Heuristic>>,
    /// `query_episodes` pages and `search_episodes` answers.
    pub(crate) episode_queries: QueryCache<Read<EpisodeQuery>, Dep, Answer<CachedPage, Episode>>,
    /// `query_patterns` and `search_patterns` answers.
    pub(crate) pattern_queries:
        QueryCache<Read<PatternQuery>, Dep, Answer<Vec<Arc<Pattern>>, Pattern>>,
    pub(crate) freshness: OnceLock<Freshness>,
    check_interval: std::time::Duration,
    pub(crate) write_through: bool,
}

impl<S: StorageBackend> CachedStats for CachedStorage<S> {
    fn cached_stats(&self) -> CachedStorageStats {
        self.stats()
    }
}

/// A cached result's memory: its vector and every item it holds (items shared with the
/// entity cache are counted in both, as each may outlive the other).
fn page_bytes<E: HeapSize>(items: &Vec<Arc<E>>) -> usize {
    heap::allocation(items.capacity() * std::mem::size_of::<Arc<E>>())
        + items
            .iter()
            .map(|e| heap::arc_bytes(e.as_ref()))
            .sum::<usize>()
}

fn sized(bytes: u64) -> CacheConfig {
    let entries = usize::try_from((bytes / MIN_ENTRY_BYTES).max(256)).unwrap_or(usize::MAX);
    CacheConfig::new(entries).max_weight(bytes)
}

fn share(settings: &CacheSettings, part: CachePart) -> CacheConfig {
    with_ages(sized(settings.part_bytes(part)), settings)
}

fn with_ages(mut config: CacheConfig, settings: &CacheSettings) -> CacheConfig {
    config.max_age = settings.max_age;
    config.negative_ttl = settings.negative_ttl;
    config
}

/// The configuration an entity cache (episodes, patterns, heuristics) of `bytes` gets,
/// before the settings' ages are applied: what a simulation of the cached store's entity
/// caches should build.
///
/// ```
/// let config = memory_storage_cached::entity_cache_config(64 * 1024 * 1024);
/// assert_eq!(config.max_weight, Some(64 * 1024 * 1024));
/// assert!(config.validate().is_ok());
/// ```
pub fn entity_cache_config(bytes: u64) -> CacheConfig {
    let mut config = sized(bytes);
    config.window_percent = ENTITY_WINDOW_PERCENT;
    config.retire_batch = ENTITY_RETIRE_BATCH;
    config
}

/// Replaced or evicted episodes (up to a few tens of KiB each in memory) a thread keeps
/// before they are freed, and every thread keeps its own batch: with the default 512 the
/// standard run's caches held 1.69x the bytes they account; with 32, writers on four
/// threads still held 1.53x (`tests/memory.rs`); with 8, 1.17x.
const ENTITY_RETIRE_BATCH: usize = 8;
/// The same for query results, which hold up to a page of episodes each.
const QUERY_RETIRE_BATCH: usize = 4;

fn entity_cache<E: Entity + HeapSize + Send + Sync + 'static>(
    settings: &CacheSettings,
    part: CachePart,
) -> std::result::Result<AdaptiveCache<E::Id, Arc<E>>, ConfigError>
where
    E::Id: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    let config = with_ages(entity_cache_config(settings.part_bytes(part)), settings);
    AdaptiveCache::builder(config)
        // The memory the decoded item holds (2-3x its encoded size), so that the budget
        // bounds real memory; the cache adds its per-entry overhead.
        .weigher(|_, item: &Arc<E>| heap::arc_bytes(item.as_ref()) as u64)
        .build()
}

impl<S: StorageBackend> CachedStorage<S> {
    /// Puts caches sized by `settings` in front of `inner`. A disabled `settings` is an
    /// error here: use [`layer`](crate::layer) to get the bare store then.
    pub fn new(inner: S, settings: &CacheSettings) -> std::result::Result<Self, ConfigError> {
        settings.validate()?;
        if !settings.enabled {
            return Err(ConfigError {
                field: "enabled",
                reason: "the cache is disabled: use memory_storage_cached::layer, which \
                         returns the store itself"
                    .into(),
            });
        }
        let mut queries = share(settings, CachePart::EpisodeQueries);
        queries.negative_ttl = None;
        queries.retire_batch = QUERY_RETIRE_BATCH;
        let mut pattern_queries = share(settings, CachePart::PatternQueries);
        pattern_queries.negative_ttl = None;
        pattern_queries.retire_batch = QUERY_RETIRE_BATCH;
        let shared = Shared {
            inner,
            episodes: entity_cache::<Episode>(settings, CachePart::Episodes)?,
            patterns: entity_cache::<Pattern>(settings, CachePart::Patterns)?,
            heuristics: entity_cache::<Heuristic>(settings, CachePart::Heuristics)?,
            episode_queries: QueryCache::with_weigher(
                queries,
                |read, answer: &Answer<CachedPage, Episode>| match answer {
                    Answer::Query(cached) => page_bytes(&cached.page.items) as u64,
                    Answer::Search(found) => reads::search_bytes(read, found),
                },
                None,
            )?,
            pattern_queries: QueryCache::with_weigher(
                pattern_queries,
                |read, answer: &Answer<Vec<Arc<Pattern>>, Pattern>| match answer {
                    Answer::Query(items) => page_bytes(items) as u64,
                    Answer::Search(found) => reads::search_bytes(read, found),
                },
                None,
            )?,
            freshness: OnceLock::new(),
            check_interval: settings.change_check_interval,
            write_through: settings.write_through,
        };
        Ok(CachedStorage {
            shared: Arc::new(shared),
        })
    }

    /// Watches `signal` for other writers, every
    /// [`change_check_interval`](CacheSettings::change_check_interval). A cache watches one
    /// signal: a second call keeps the first (and logs a warning).
    pub fn with_change_signal(self, signal: Arc<dyn ChangeSignal>) -> Self {
        let freshness = Freshness::new(signal, self.shared.check_interval);
        if self.shared.freshness.set(freshness).is_err() {
            tracing::warn!("this cache already watches a change signal; the new one is ignored");
        }
        self
    }

    /// The store behind the caches.
    pub fn inner(&self) -> &S {
        &self.shared.inner
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<S>> {
        &self.shared
    }

    /// Every cache's counters.
    pub fn stats(&self) -> CachedStorageStats {
        self.shared.stats()
    }

    /// Drops everything cached.
    pub fn clear(&self) {
        self.shared.clear();
    }
}

impl<S> Shared<S> {
    fn stats(&self) -> CachedStorageStats {
        CachedStorageStats {
            episodes: self.episodes.snapshot(),
            patterns: self.patterns.snapshot(),
            heuristics: self.heuristics.snapshot(),
            episode_queries: self.episode_queries.snapshot(),
            pattern_queries: self.pattern_queries.snapshot(),
            foreign: self
                .freshness
                .get()
                .map(Freshness::stats)
                .unwrap_or_default(),
        }
    }

    /// Drops everything cached.
    pub(crate) fn clear(&self) {
        self.episodes.invalidate_all();
        self.patterns.invalidate_all();
        self.heuristics.invalidate_all();
        self.episode_queries.invalidate_all();
        self.pattern_queries.invalidate_all();
    }
}

/// Another writer's change drops what a write of this cache's own would have replaced: the
/// item (and loads of it in flight) and the query results that could hold it.
impl<S> Invalidate for Shared<S> {
    fn flush(&self) {
        self.clear();
    }

    fn invalidate(&self, change: &Change) {
        match change {
            Change::EpisodeStored { id, domain } => {
                self.episodes.invalidate(id);
                // What `deps::stored_episodes` names for one item, without building its list.
                for dep in [
                    Dep::EpisodeWrites,
                    Dep::AnyEpisode,
                    Dep::EpisodeDomain(deps::domain_key(domain)),
                    Dep::Episode(*id),
                ] {
                    self.episode_queries.invalidate(&dep);
                }
            }
            Change::EpisodeDeleted { id } => {
                self.episodes.invalidate(id);
                self.episode_queries.invalidate(&Dep::EpisodeWrites);
                self.episode_queries.invalidate(&Dep::Episode(*id));
            }
            Change::PatternStored { id, domain } => {
                self.patterns.invalidate(id);
                for dep in [
                    Dep::PatternWrites,
                    Dep::AnyPattern,
                    Dep::PatternDomain(deps::domain_key(domain)),
                    Dep::Pattern(*id),
                ] {
                    self.pattern_queries.invalidate(&dep);
                }
            }
            Change::PatternDeleted { id } => {
                self.patterns.invalidate(id);
                self.pattern_queries.invalidate(&Dep::PatternWrites);
                self.pattern_queries.invalidate(&Dep::Pattern(*id));
            }
            Change::HeuristicStored { id } | Change::HeuristicDeleted { id } => {
                self.heuristics.invalidate(id);
            }
        }
    }
}
