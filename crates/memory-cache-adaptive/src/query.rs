//! [`QueryCache`]: cached query results that are never served after a write to what they
//! depend on.

use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::cache::AdaptiveCache;
use crate::clock::Clock;
use crate::config::{CacheConfig, ConfigError};
use crate::generations::Mark;
use crate::shard::Slot;
use crate::stats::{CacheStats, CacheStatsSnapshot};

struct Cached<R> {
    result: R,
    marks: Box<[Mark]>,
}

/// The dependency generations observed when a read began; see [`QueryCache::begin`].
#[derive(Clone, Debug)]
pub struct ReadTicket {
    marks: Box<[Mark]>,
}

/// A cache of query results keyed by typed query values `Q`. Each result records the
/// dependencies `D` it was computed from ("all episodes", "episodes of domain X", …) and
/// their generations when the read began; [`invalidate`](Self::invalidate) bumps a
/// dependency's generation, and a result is served only while every one of its dependencies
/// is unchanged. A read that overlapped an invalidation of one of its dependencies is
/// returned to its caller but never stored.
///
/// Dependencies hash into a fixed table of generation stripes: memory does not grow with
/// the number of distinct dependencies, and a collision can only cause a spurious miss.
///
/// ```
/// use memory_cache_adaptive::{CacheConfig, QueryCache};
///
/// #[derive(Clone, Hash, PartialEq, Eq)]
/// enum Query { ByDomain(String) }
/// #[derive(Hash)]
/// enum Dep { Domain(String) }
///
/// # futures::executor::block_on(async {
/// let cache: QueryCache<Query, Dep, Vec<u32>> = QueryCache::new(CacheConfig::new(1_000)).unwrap();
/// let q = Query::ByDomain("web".into());
/// let deps = [Dep::Domain("web".into())];
/// let r = cache.get_or_load(q.clone(), &deps, || async { Ok::<_, ()>(vec![1, 2]) }).await;
/// assert_eq!(r, Ok(vec![1, 2]));
/// assert_eq!(cache.get(&q), Some(vec![1, 2]));
/// cache.invalidate(&Dep::Domain("web".into()));
/// assert_eq!(cache.get(&q), None);
/// # });
/// ```
pub struct QueryCache<Q, D, R> {
    entries: AdaptiveCache<Q, Arc<Cached<R>>>,
    _deps: PhantomData<fn(&D)>,
}

impl<Q, D, R> Clone for QueryCache<Q, D, R> {
    fn clone(&self) -> Self {
        QueryCache {
            entries: self.entries.clone(),
            _deps: PhantomData,
        }
    }
}

impl<Q, D, R> QueryCache<Q, D, R>
where
    Q: Hash + Eq + Clone + Send + Sync + 'static,
    D: Hash,
    R: Clone + Send + Sync + 'static,
{
    /// A query cache with `config`, sized by entry count (and per-entry overhead).
    pub fn new(config: CacheConfig) -> Result<Self, ConfigError> {
        Self::build(config, None, None)
    }

    /// A query cache whose weight bound counts `weigher(query, result)` bytes per entry,
    /// optionally on a custom clock.
    pub fn with_weigher(
        config: CacheConfig,
        weigher: impl Fn(&Q, &R) -> u64 + Send + Sync + 'static,
        clock: Option<Arc<dyn Clock>>,
    ) -> Result<Self, ConfigError> {
        Self::build(config, Some(Arc::new(weigher)), clock)
    }

    #[allow(clippy::type_complexity)]
    fn build(
        config: CacheConfig,
        weigher: Option<Arc<dyn Fn(&Q, &R) -> u64 + Send + Sync>>,
        clock: Option<Arc<dyn Clock>>,
    ) -> Result<Self, ConfigError> {
        let mut builder = AdaptiveCache::builder(config);
        if let Some(weigher) = weigher {
            builder = builder.weigher(move |q: &Q, c: &Arc<Cached<R>>| {
                weigher(q, &c.result).saturating_add(16 * c.marks.len() as u64)
            });
        }
        if let Some(clock) = clock {
            builder = builder.clock(clock);
        }
        Ok(QueryCache {
            entries: builder.build()?,
            _deps: PhantomData,
        })
    }

    fn is_current(&self, marks: &[Mark]) -> bool {
        let generations = self.entries.generations();
        marks.iter().all(|m| generations.is_current(*m))
    }

    /// The cached result of `query`, if none of its dependencies changed since it was read.
    pub fn get(&self, query: &Q) -> Option<R> {
        self.entries
            .get_valid(query, |c| self.is_current(&c.marks))
            .map(|c| c.result.clone())
    }

    /// Records the current generations of `deps`. Call it before reading the source, then
    /// hand the result to [`complete`](Self::complete).
    pub fn begin(&self, deps: &[D]) -> ReadTicket {
        ReadTicket {
            marks: self.marks(deps),
        }
    }

    fn marks(&self, deps: &[D]) -> Box<[Mark]> {
        let generations = self.entries.generations();
        deps.iter()
            .map(|d| generations.mark(self.entries.hash_of(d)))
            .collect()
    }

    /// Stores `result` for `query` unless a dependency was invalidated since `ticket` was
    /// taken; returns whether it was stored.
    pub fn complete(&self, query: Q, ticket: ReadTicket, result: R) -> bool {
        let hash = self.entries.hash(&query);
        let cached = Arc::new(Cached {
            result,
            marks: ticket.marks.clone(),
        });
        self.entries
            .store(query, hash, Slot::Present(cached), &ticket.marks)
    }

    /// The cached result of `query`, or the loader's. Concurrent callers of the same query
    /// share one loader run (joining it only while its dependencies are unchanged); an error
    /// is returned to every waiter and not cached; a result whose dependencies changed during
    /// the load is returned but not cached.
    pub async fn get_or_load<E, F, Fut>(&self, query: Q, deps: &[D], loader: F) -> Result<R, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        // The result depends on exactly what was marked when the load began.
        self.load_and_store(query, deps, |_, begun| begun.into(), loader)
            .await
    }

    /// Like [`get_or_load`](Self::get_or_load), for results whose dependencies are known
    /// only once they are read (a page of items depends on each item in it).
    ///
    /// `guard` names what any relevant write invalidates (for example "some episode was
    /// written"): a running load is joined only while the guard is unchanged, and its result
    /// is stored only if the guard is still unchanged when it lands. The stored result then
    /// depends on `deps_of(&result)`, marked after the read: a write that landed during the
    /// read changed the guard, and any later write changes one of those dependencies.
    ///
    /// ```
    /// use memory_cache_adaptive::{CacheConfig, QueryCache};
    ///
    /// #[derive(Hash)]
    /// enum Dep { AnyWrite, Item(u32) }
    ///
    /// # futures::executor::block_on(async {
    /// let cache: QueryCache<&str, Dep, Vec<u32>> = QueryCache::new(CacheConfig::new(100)).unwrap();
    /// let deps_of = |items: &Vec<u32>| items.iter().map(|i| Dep::Item(*i)).collect();
    /// let page = cache
    ///     .get_or_load_tracked("first page", &[Dep::AnyWrite], deps_of, || async {
    ///         Ok::<_, ()>(vec![4, 7])
    ///     })
    ///     .await;
    /// assert_eq!(page, Ok(vec![4, 7]));
    /// cache.invalidate(&Dep::Item(9));
    /// assert_eq!(cache.get(&"first page"), Some(vec![4, 7]), "item 9 is not on the page");
    /// cache.invalidate(&Dep::Item(7));
    /// assert_eq!(cache.get(&"first page"), None);
    /// # });
    /// ```
    pub async fn get_or_load_tracked<E, F, Fut>(
        &self,
        query: Q,
        guard: &[D],
        deps_of: impl FnOnce(&R) -> Vec<D>,
        loader: F,
    ) -> Result<R, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        self.load_and_store(
            query,
            guard,
            |result, _| self.marks(&deps_of(result)),
            loader,
        )
        .await
    }

    /// The shared body of both loads: serve a hit, else join or run the load marked with
    /// `begin` deps, and store the result (depending on `result_marks`) only if those deps
    /// and the result's own are still current when it lands.
    async fn load_and_store<E, F, Fut>(
        &self,
        query: Q,
        begin: &[D],
        result_marks: impl FnOnce(&R, &[Mark]) -> Box<[Mark]>,
        loader: F,
    ) -> Result<R, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        if let Some(result) = self.get(&query) {
            return Ok(result);
        }
        let hash = self.entries.hash(&query);
        self.entries
            .load(
                query,
                hash,
                || self.marks(begin),
                loader,
                |cache, query, hash, result: &R, begun| {
                    let marks = result_marks(result, begun);
                    let only_if: Vec<Mark> = begun.iter().chain(marks.iter()).copied().collect();
                    let cached = Arc::new(Cached {
                        result: result.clone(),
                        marks,
                    });
                    cache.store(query, hash, Slot::Present(cached), &only_if)
                },
            )
            .await
    }

    /// Makes every cached result that depends on `dep` unservable, and every read of it in
    /// flight unstorable.
    pub fn invalidate(&self, dep: &D) {
        self.entries.generations().bump(self.entries.hash_of(dep));
    }

    /// Drops every cached result.
    pub fn invalidate_all(&self) {
        self.entries.invalidate_all();
    }

    /// Entries held now (including results that are stale and not yet removed).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held now.
    pub fn weight(&self) -> u64 {
        self.entries.weight()
    }
}

impl<Q, D, R> CacheStats for QueryCache<Q, D, R>
where
    Q: Hash + Eq + Clone + Send + Sync + 'static,
    D: Hash,
    R: Clone + Send + Sync + 'static,
{
    fn snapshot(&self) -> CacheStatsSnapshot {
        self.entries.snapshot()
    }
}
