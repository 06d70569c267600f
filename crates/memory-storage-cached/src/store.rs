//! [`CachedStorage`]: the caches in front of any [`StorageBackend`].

use std::sync::Arc;

use async_trait::async_trait;
use memory_cache_adaptive::{
    AdaptiveCache, CacheConfig, CacheStats, CacheStatsSnapshot, ConfigError, LoadTicket, Lookup,
    QueryCache,
};
use memory_core::{
    ChangeSignal, Entity, Episode, EpisodeId, EpisodePage, EpisodeQuery, Heuristic, HeuristicId,
    Pattern, PatternId, PatternQuery, Result, StorageBackend, StorageError, codec, validate_ids,
};

use crate::deps::{self, CachedPage, Dep};
use crate::freshness::Freshness;
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
/// `query_episodes` and `query_patterns`, all within one byte budget.
///
/// Never stale for its own writes: before a write returns, the entries it replaced hold
/// what it wrote (write-through, [`CacheSettings::write_through`]) or are gone, the query
/// results it affects are gone, and a read that overlapped it is returned but not cached. With a
/// [`ChangeSignal`] (see [`with_change_signal`](Self::with_change_signal)) it also notices
/// other writers within [`CacheSettings::change_check_interval`].
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
    inner: S,
    episodes: AdaptiveCache<EpisodeId, Arc<Episode>>,
    patterns: AdaptiveCache<PatternId, Arc<Pattern>>,
    heuristics: AdaptiveCache<HeuristicId, Arc<Heuristic>>,
    episode_queries: QueryCache<EpisodeQuery, Dep, CachedPage>,
    pattern_queries: QueryCache<PatternQuery, Dep, Vec<Arc<Pattern>>>,
    freshness: Option<Freshness>,
    check_interval: std::time::Duration,
    write_through: bool,
}

/// What every cache of a [`CachedStorage`] counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CachedStorageStats {
    /// The episode cache.
    pub episodes: CacheStatsSnapshot,
    /// The pattern cache.
    pub patterns: CacheStatsSnapshot,
    /// The heuristic cache.
    pub heuristics: CacheStatsSnapshot,
    /// Cached `query_episodes` results.
    pub episode_queries: CacheStatsSnapshot,
    /// Cached `query_patterns` results.
    pub pattern_queries: CacheStatsSnapshot,
    /// Times every cache was dropped because another writer changed the store.
    pub foreign_flushes: u64,
}

/// Anything that reports what its caches counted (metrics read caches through this trait).
pub trait CachedStats {
    /// Every cache's counters as of now.
    fn cached_stats(&self) -> CachedStorageStats;
}

impl<S: StorageBackend> CachedStats for CachedStorage<S> {
    fn cached_stats(&self) -> CachedStorageStats {
        self.stats()
    }
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
    config
}

fn entity_cache<E: Entity + Send + Sync + 'static>(
    settings: &CacheSettings,
    part: CachePart,
) -> std::result::Result<AdaptiveCache<E::Id, Arc<E>>, ConfigError>
where
    E::Id: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    let config = with_ages(entity_cache_config(settings.part_bytes(part)), settings);
    AdaptiveCache::builder(config)
        .weigher(|_, item: &Arc<E>| codec::encoded_len(item.as_ref()) as u64)
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
        let mut pattern_queries = share(settings, CachePart::PatternQueries);
        pattern_queries.negative_ttl = None;
        Ok(CachedStorage {
            inner,
            episodes: entity_cache::<Episode>(settings, CachePart::Episodes)?,
            patterns: entity_cache::<Pattern>(settings, CachePart::Patterns)?,
            heuristics: entity_cache::<Heuristic>(settings, CachePart::Heuristics)?,
            episode_queries: QueryCache::with_weigher(
                queries,
                |_, cached: &CachedPage| {
                    cached
                        .page
                        .items
                        .iter()
                        .map(|e| codec::encoded_len(e.as_ref()) as u64)
                        .sum()
                },
                None,
            )?,
            pattern_queries: QueryCache::with_weigher(
                pattern_queries,
                |_, items: &Vec<Arc<Pattern>>| {
                    items
                        .iter()
                        .map(|p| codec::encoded_len(p.as_ref()) as u64)
                        .sum()
                },
                None,
            )?,
            freshness: None,
            check_interval: settings.change_check_interval,
            write_through: settings.write_through,
        })
    }

    /// Watches `signal` for other writers, every
    /// [`change_check_interval`](CacheSettings::change_check_interval).
    pub fn with_change_signal(mut self, signal: Arc<dyn ChangeSignal>) -> Self {
        self.freshness = Some(Freshness::new(signal, self.check_interval));
        self
    }

    /// The store behind the caches.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Every cache's counters.
    pub fn stats(&self) -> CachedStorageStats {
        CachedStorageStats {
            episodes: self.episodes.snapshot(),
            patterns: self.patterns.snapshot(),
            heuristics: self.heuristics.snapshot(),
            episode_queries: self.episode_queries.snapshot(),
            pattern_queries: self.pattern_queries.snapshot(),
            foreign_flushes: self.freshness.as_ref().map_or(0, Freshness::flushes),
        }
    }

    /// Drops everything cached.
    pub fn clear(&self) {
        self.episodes.invalidate_all();
        self.patterns.invalidate_all();
        self.heuristics.invalidate_all();
        self.episode_queries.invalidate_all();
        self.pattern_queries.invalidate_all();
    }

    /// Before a read: flush if another writer changed the store (at most once per interval).
    async fn fresh(&self) {
        if let Some(freshness) = &self.freshness {
            freshness.ensure(|| self.clear()).await;
        }
    }

    /// Runs a write of the inner store: with a change signal, as one of this cache's own
    /// writes (so the store position it produces is not taken for another writer's).
    async fn write<T>(&self, write: impl Future<Output = Result<T>>) -> Result<T> {
        match &self.freshness {
            Some(freshness) => {
                let _in_flight = freshness.before_write().await;
                freshness.recording(write).await
            }
            None => write.await,
        }
    }

    /// Write-through tickets for `ids`, taken before a write starts (none when off).
    fn tickets<'c, I, T>(
        &self,
        cache: &'c AdaptiveCache<I, Arc<T>>,
        ids: impl Iterator<Item = I>,
    ) -> Vec<LoadTicket<'c>>
    where
        I: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        if self.write_through {
            ids.map(|id| cache.begin_load(&id)).collect()
        } else {
            Vec::new()
        }
    }

    fn episodes_stored<'a>(
        &self,
        items: impl Iterator<Item = &'a Episode> + Clone,
        tickets: Vec<LoadTicket<'_>>,
        ok: bool,
    ) {
        let deps = deps::stored_episodes(items.clone().map(|e| (e.id, e.context.domain.as_str())));
        written(
            &self.episodes,
            &self.episode_queries,
            Dep::EpisodeWrites,
            items.clone().map(|e| e.id),
            &deps,
            through(tickets, ok, items),
        );
    }

    fn episodes_deleted(&self, ids: &[EpisodeId]) {
        let deps: Vec<Dep> = ids.iter().map(|id| Dep::Episode(*id)).collect();
        written(
            &self.episodes,
            &self.episode_queries,
            Dep::EpisodeWrites,
            ids.iter().copied(),
            &deps,
            None,
        );
    }

    fn patterns_stored<'a>(
        &self,
        items: impl Iterator<Item = &'a Pattern> + Clone,
        tickets: Vec<LoadTicket<'_>>,
        ok: bool,
    ) {
        let deps = deps::stored_patterns(items.clone().map(|p| (p.id, p.domain.as_str())));
        written(
            &self.patterns,
            &self.pattern_queries,
            Dep::PatternWrites,
            items.clone().map(|p| p.id),
            &deps,
            through(tickets, ok, items),
        );
    }

    fn patterns_deleted(&self, ids: &[PatternId]) {
        let deps: Vec<Dep> = ids.iter().map(|id| Dep::Pattern(*id)).collect();
        written(
            &self.patterns,
            &self.pattern_queries,
            Dep::PatternWrites,
            ids.iter().copied(),
            &deps,
            None,
        );
    }

    /// Heuristics have no query cache: only their entries change.
    fn heuristics_stored<'a>(
        &self,
        items: impl Iterator<Item = &'a Heuristic> + Clone,
        tickets: Vec<LoadTicket<'_>>,
        ok: bool,
    ) {
        entities_written(
            &self.heuristics,
            items.clone().map(|h| h.id),
            through(tickets, ok, items),
        );
    }
}

/// What a successful write-through hands the entity cache: its tickets (taken before the
/// write) and the written values, in the order of the written ids.
type Through<'c, T> = Option<(Vec<LoadTicket<'c>>, Vec<Arc<T>>)>;

/// The write-through for `items` if the write succeeded and tickets were taken.
fn through<'c, 'a, T: Clone + 'a>(
    tickets: Vec<LoadTicket<'c>>,
    ok: bool,
    items: impl Iterator<Item = &'a T>,
) -> Through<'c, T> {
    (ok && !tickets.is_empty()).then(|| (tickets, items.map(|i| Arc::new(i.clone())).collect()))
}

/// After a write of `ids`: the query guard first (a query read that lands after it is not
/// stored, and one that landed before it marked dependencies bumped below), then the
/// written ids' entries (cached anew with `through`, else removed), then the query
/// dependencies the write affects.
fn written<I, T, Q, R>(
    entities: &AdaptiveCache<I, Arc<T>>,
    queries: &QueryCache<Q, Dep, R>,
    guard: Dep,
    ids: impl Iterator<Item = I>,
    deps: &[Dep],
    through: Through<'_, T>,
) where
    I: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
    Q: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
{
    queries.invalidate(&guard);
    entities_written(entities, ids, through);
    for dep in deps {
        queries.invalidate(dep);
    }
}

/// The written ids' entries: cached anew with `through`, else removed.
fn entities_written<I, T>(
    entities: &AdaptiveCache<I, Arc<T>>,
    ids: impl Iterator<Item = I>,
    through: Through<'_, T>,
) where
    I: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    match through {
        Some((tickets, values)) => {
            for ((id, ticket), value) in ids.zip(tickets).zip(values) {
                entities.complete_write(id, ticket, value);
            }
        }
        None => {
            for id in ids {
                entities.invalidate(&id);
            }
        }
    }
}

/// Cached batch read: hits from `cache`, the rest in one `load` call for the distinct
/// missing ids, stored unless written meanwhile.
async fn get_many<I, T, F, Fut>(
    cache: &AdaptiveCache<I, Arc<T>>,
    ids: &[I],
    load: F,
) -> Result<Vec<Option<Arc<T>>>>
where
    I: std::hash::Hash + Eq + Clone + Send + Sync + ToString + 'static,
    T: Send + Sync + 'static,
    F: FnOnce(Vec<I>) -> Fut,
    Fut: Future<Output = Result<Vec<Option<Arc<T>>>>>,
{
    validate_ids(ids, false)?;
    let mut out: Vec<Option<Arc<T>>> = Vec::with_capacity(ids.len());
    let mut missing: Vec<usize> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match cache.lookup(id) {
            Lookup::Hit(item) => out.push(Some(item)),
            Lookup::NotFound => out.push(None),
            Lookup::Miss => {
                out.push(None);
                missing.push(i);
            }
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let mut wanted: Vec<I> = Vec::with_capacity(missing.len());
    let mut seen = std::collections::HashSet::with_capacity(missing.len());
    for &i in &missing {
        if seen.insert(&ids[i]) {
            wanted.push(ids[i].clone());
        }
    }
    let tickets: Vec<_> = wanted.iter().map(|id| cache.begin_load(id)).collect();
    let loaded = load(wanted.clone()).await?;
    let mut by_id = std::collections::HashMap::with_capacity(wanted.len());
    for ((id, ticket), item) in wanted.into_iter().zip(tickets).zip(loaded) {
        cache.complete_load(id.clone(), ticket, item.clone());
        by_id.insert(id, item);
    }
    for i in missing {
        out[i] = by_id.get(&ids[i]).cloned().flatten();
    }
    Ok(out)
}

#[async_trait]
impl<S: StorageBackend> StorageBackend for CachedStorage<S> {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn store_episode(&self, episode: &Episode) -> Result<()> {
        let tickets = self.tickets(&self.episodes, std::iter::once(episode.id));
        let result = self.write(self.inner.store_episode(episode)).await;
        // Also after an error: a remote write may have committed before its answer was lost.
        self.episodes_stored(std::iter::once(episode), tickets, result.is_ok());
        result
    }

    async fn get_episode(&self, id: EpisodeId) -> Result<Option<Arc<Episode>>> {
        self.fresh().await;
        self.episodes
            .get_or_load(id, || self.inner.get_episode(id))
            .await
    }

    async fn delete_episode(&self, id: EpisodeId) -> Result<()> {
        let result = self.write(self.inner.delete_episode(id)).await;
        self.episodes_deleted(&[id]);
        result
    }

    async fn store_episodes(&self, episodes: &[Episode]) -> Result<()> {
        let tickets = self.tickets(&self.episodes, episodes.iter().map(|e| e.id));
        let result = self.write(self.inner.store_episodes(episodes)).await;
        self.episodes_stored(episodes.iter(), tickets, result.is_ok());
        result
    }

    async fn get_episodes(&self, ids: &[EpisodeId]) -> Result<Vec<Option<Arc<Episode>>>> {
        self.fresh().await;
        get_many(&self.episodes, ids, |wanted| async move {
            self.inner.get_episodes(&wanted).await
        })
        .await
    }

    async fn delete_episodes(&self, ids: &[EpisodeId]) -> Result<()> {
        let result = self.write(self.inner.delete_episodes(ids)).await;
        self.episodes_deleted(ids);
        result
    }

    async fn query_episodes(&self, query: &EpisodeQuery) -> Result<EpisodePage> {
        query.validate()?;
        self.fresh().await;
        let cached = self
            .episode_queries
            .get_or_load_tracked(
                query.clone(),
                &[Dep::EpisodeWrites],
                |page| deps::episode_page(query, page),
                || async {
                    let Some(probe) = deps::probe(query) else {
                        let page = self.inner.query_episodes(query).await?;
                        return Ok::<_, StorageError>(CachedPage { page, next: None });
                    };
                    // One match more than asked for: the page's cursor depends on it.
                    let items = self.inner.query_episodes(&probe).await?.items;
                    let next = items.get(query.limit).map(|e| e.id);
                    Ok(CachedPage {
                        page: EpisodePage::from_overfetch(items, query.limit),
                        next,
                    })
                },
            )
            .await?;
        Ok(cached.page)
    }

    async fn count_episodes(&self) -> Result<u64> {
        self.inner.count_episodes().await
    }

    async fn store_pattern(&self, pattern: &Pattern) -> Result<()> {
        let tickets = self.tickets(&self.patterns, std::iter::once(pattern.id));
        let result = self.write(self.inner.store_pattern(pattern)).await;
        self.patterns_stored(std::iter::once(pattern), tickets, result.is_ok());
        result
    }

    async fn get_pattern(&self, id: PatternId) -> Result<Option<Arc<Pattern>>> {
        self.fresh().await;
        self.patterns
            .get_or_load(id, || self.inner.get_pattern(id))
            .await
    }

    async fn delete_pattern(&self, id: PatternId) -> Result<()> {
        let result = self.write(self.inner.delete_pattern(id)).await;
        self.patterns_deleted(&[id]);
        result
    }

    async fn store_patterns(&self, patterns: &[Pattern]) -> Result<()> {
        let tickets = self.tickets(&self.patterns, patterns.iter().map(|p| p.id));
        let result = self.write(self.inner.store_patterns(patterns)).await;
        self.patterns_stored(patterns.iter(), tickets, result.is_ok());
        result
    }

    async fn get_patterns(&self, ids: &[PatternId]) -> Result<Vec<Option<Arc<Pattern>>>> {
        self.fresh().await;
        get_many(&self.patterns, ids, |wanted| async move {
            self.inner.get_patterns(&wanted).await
        })
        .await
    }

    async fn delete_patterns(&self, ids: &[PatternId]) -> Result<()> {
        let result = self.write(self.inner.delete_patterns(ids)).await;
        self.patterns_deleted(ids);
        result
    }

    async fn query_patterns(&self, query: &PatternQuery) -> Result<Vec<Arc<Pattern>>> {
        self.fresh().await;
        self.pattern_queries
            .get_or_load_tracked(
                query.clone(),
                &[Dep::PatternWrites],
                |items| deps::pattern_result(query, items),
                || self.inner.query_patterns(query),
            )
            .await
    }

    async fn count_patterns(&self) -> Result<u64> {
        self.inner.count_patterns().await
    }

    async fn store_heuristic(&self, heuristic: &Heuristic) -> Result<()> {
        let tickets = self.tickets(&self.heuristics, std::iter::once(heuristic.id));
        let result = self.write(self.inner.store_heuristic(heuristic)).await;
        self.heuristics_stored(std::iter::once(heuristic), tickets, result.is_ok());
        result
    }

    async fn get_heuristic(&self, id: HeuristicId) -> Result<Option<Arc<Heuristic>>> {
        self.fresh().await;
        self.heuristics
            .get_or_load(id, || self.inner.get_heuristic(id))
            .await
    }

    async fn delete_heuristic(&self, id: HeuristicId) -> Result<()> {
        let result = self.write(self.inner.delete_heuristic(id)).await;
        self.heuristics.invalidate(&id);
        result
    }

    async fn store_heuristics(&self, heuristics: &[Heuristic]) -> Result<()> {
        let tickets = self.tickets(&self.heuristics, heuristics.iter().map(|h| h.id));
        let result = self.write(self.inner.store_heuristics(heuristics)).await;
        self.heuristics_stored(heuristics.iter(), tickets, result.is_ok());
        result
    }

    async fn get_heuristics(&self, ids: &[HeuristicId]) -> Result<Vec<Option<Arc<Heuristic>>>> {
        self.fresh().await;
        get_many(&self.heuristics, ids, |wanted| async move {
            self.inner.get_heuristics(&wanted).await
        })
        .await
    }

    async fn delete_heuristics(&self, ids: &[HeuristicId]) -> Result<()> {
        let result = self.write(self.inner.delete_heuristics(ids)).await;
        for id in ids {
            self.heuristics.invalidate(id);
        }
        result
    }

    async fn count_heuristics(&self) -> Result<u64> {
        self.inner.count_heuristics().await
    }
}
