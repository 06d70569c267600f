//! The [`StorageBackend`] impl of [`CachedStorage`]: reads served from the caches (after
//! the change check), writes run through [`detached`] so that they finish, with their
//! cache bookkeeping, even when the caller stops waiting.

use std::sync::Arc;

use async_trait::async_trait;
use memory_cache_adaptive::{AdaptiveCache, Lookup};
use memory_core::search::{EpisodeSearch, PatternSearch, Scored};
use memory_core::{
    Episode, EpisodeId, EpisodePage, EpisodeQuery, Heuristic, HeuristicId, Pattern, PatternId,
    PatternQuery, Result, StorageBackend, StorageError, validate_ids,
};

use crate::deps::{self, CachedPage, Dep};
use crate::reads::{Answer, Read, SearchKey};
use crate::store::CachedStorage;
use crate::writes::{Call, detached};

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
impl<S: StorageBackend + 'static> StorageBackend for CachedStorage<S> {
    fn backend_name(&self) -> &'static str {
        self.inner().backend_name()
    }

    async fn store_episode(&self, episode: &Episode) -> Result<()> {
        let (shared, items) = (Arc::clone(self.shared()), vec![episode.clone()]);
        detached(self.shared(), async move {
            shared.store_episodes_with(items, Call::One).await
        })
        .await
    }

    async fn get_episode(&self, id: EpisodeId) -> Result<Option<Arc<Episode>>> {
        let shared = self.shared();
        shared.fresh().await;
        shared
            .episodes
            .get_or_load(id, || shared.inner.get_episode(id))
            .await
    }

    async fn delete_episode(&self, id: EpisodeId) -> Result<()> {
        let shared = Arc::clone(self.shared());
        detached(self.shared(), async move {
            shared.delete_episodes_with(vec![id], Call::One).await
        })
        .await
    }

    async fn store_episodes(&self, episodes: &[Episode]) -> Result<()> {
        let (shared, items) = (Arc::clone(self.shared()), episodes.to_vec());
        detached(self.shared(), async move {
            shared.store_episodes_with(items, Call::Many).await
        })
        .await
    }

    async fn get_episodes(&self, ids: &[EpisodeId]) -> Result<Vec<Option<Arc<Episode>>>> {
        let shared = self.shared();
        shared.fresh().await;
        get_many(&shared.episodes, ids, |wanted| async move {
            shared.inner.get_episodes(&wanted).await
        })
        .await
    }

    async fn delete_episodes(&self, ids: &[EpisodeId]) -> Result<()> {
        let (shared, ids) = (Arc::clone(self.shared()), ids.to_vec());
        detached(self.shared(), async move {
            shared.delete_episodes_with(ids, Call::Many).await
        })
        .await
    }

    async fn query_episodes(&self, query: &EpisodeQuery) -> Result<EpisodePage> {
        query.validate()?;
        let shared = self.shared();
        shared.fresh().await;
        let cached = shared
            .episode_queries
            .get_or_load_tracked(
                Read::Query(query.clone()),
                &[Dep::EpisodeWrites],
                |answer| match answer {
                    Answer::Query(page) => deps::episode_page(query, page),
                    Answer::Search(_) => vec![Dep::EpisodeWrites],
                },
                || async {
                    let Some(probe) = deps::probe(query) else {
                        let page = shared.inner.query_episodes(query).await?;
                        return Ok::<_, StorageError>(Answer::Query(CachedPage {
                            page,
                            next: None,
                        }));
                    };
                    // One match more than asked for: the page's cursor depends on it.
                    let items = shared.inner.query_episodes(&probe).await?.items;
                    let next = items.get(query.limit).map(|e| e.id);
                    Ok(Answer::Query(CachedPage {
                        page: EpisodePage::from_overfetch(items, query.limit),
                        next,
                    }))
                },
            )
            .await?;
        Ok(cached.into_query()?.page)
    }

    async fn count_episodes(&self) -> Result<u64> {
        self.inner().count_episodes().await
    }

    async fn store_pattern(&self, pattern: &Pattern) -> Result<()> {
        let (shared, items) = (Arc::clone(self.shared()), vec![pattern.clone()]);
        detached(self.shared(), async move {
            shared.store_patterns_with(items, Call::One).await
        })
        .await
    }

    async fn get_pattern(&self, id: PatternId) -> Result<Option<Arc<Pattern>>> {
        let shared = self.shared();
        shared.fresh().await;
        shared
            .patterns
            .get_or_load(id, || shared.inner.get_pattern(id))
            .await
    }

    async fn delete_pattern(&self, id: PatternId) -> Result<()> {
        let shared = Arc::clone(self.shared());
        detached(self.shared(), async move {
            shared.delete_patterns_with(vec![id], Call::One).await
        })
        .await
    }

    async fn store_patterns(&self, patterns: &[Pattern]) -> Result<()> {
        let (shared, items) = (Arc::clone(self.shared()), patterns.to_vec());
        detached(self.shared(), async move {
            shared.store_patterns_with(items, Call::Many).await
        })
        .await
    }

    async fn get_patterns(&self, ids: &[PatternId]) -> Result<Vec<Option<Arc<Pattern>>>> {
        let shared = self.shared();
        shared.fresh().await;
        get_many(&shared.patterns, ids, |wanted| async move {
            shared.inner.get_patterns(&wanted).await
        })
        .await
    }

    async fn delete_patterns(&self, ids: &[PatternId]) -> Result<()> {
        let (shared, ids) = (Arc::clone(self.shared()), ids.to_vec());
        detached(self.shared(), async move {
            shared.delete_patterns_with(ids, Call::Many).await
        })
        .await
    }

    async fn query_patterns(&self, query: &PatternQuery) -> Result<Vec<Arc<Pattern>>> {
        let shared = self.shared();
        shared.fresh().await;
        shared
            .pattern_queries
            .get_or_load_tracked(
                Read::Query(query.clone()),
                &[Dep::PatternWrites],
                |answer| match answer {
                    Answer::Query(items) => deps::pattern_result(query, items),
                    Answer::Search(_) => vec![Dep::PatternWrites],
                },
                || async { shared.inner.query_patterns(query).await.map(Answer::Query) },
            )
            .await?
            .into_query()
    }

    async fn count_patterns(&self) -> Result<u64> {
        self.inner().count_patterns().await
    }

    /// Not cached (a listing reads everything once): the store's answer, after the check.
    async fn list_patterns(
        &self,
        after: Option<PatternId>,
        limit: usize,
    ) -> Result<Vec<Arc<Pattern>>> {
        self.shared().fresh().await;
        self.inner().list_patterns(after, limit).await
    }

    /// Cached like a page: an answer by vector until a write that could enter it (its
    /// filter's domain, or any episode without one) or that changes or deletes an item in
    /// it; by text or both, until any episode write (BM25 weighs every item).
    async fn search_episodes(&self, search: &EpisodeSearch) -> Result<Vec<Scored<Episode>>> {
        search.validate()?;
        let shared = self.shared();
        shared.fresh().await;
        let episodes = (
            Dep::EpisodeWrites,
            Dep::AnyEpisode,
            Dep::EpisodeDomain as fn(_) -> _,
        );
        shared
            .episode_queries
            .get_or_load_tracked(
                Read::Search(SearchKey::new(search)),
                &[Dep::EpisodeWrites],
                |answer| match answer {
                    Answer::Search(found) => {
                        deps::search_result(search, found, episodes, |e| Dep::Episode(e.id))
                    }
                    Answer::Query(_) => vec![Dep::EpisodeWrites],
                },
                || async {
                    shared
                        .inner
                        .search_episodes(search)
                        .await
                        .map(Answer::Search)
                },
            )
            .await?
            .into_search()
    }

    /// Cached as for episodes.
    async fn search_patterns(&self, search: &PatternSearch) -> Result<Vec<Scored<Pattern>>> {
        search.validate()?;
        let shared = self.shared();
        shared.fresh().await;
        let patterns = (
            Dep::PatternWrites,
            Dep::AnyPattern,
            Dep::PatternDomain as fn(_) -> _,
        );
        shared
            .pattern_queries
            .get_or_load_tracked(
                Read::Search(SearchKey::new(search)),
                &[Dep::PatternWrites],
                |answer| match answer {
                    Answer::Search(found) => {
                        deps::search_result(search, found, patterns, |p| Dep::Pattern(p.id))
                    }
                    Answer::Query(_) => vec![Dep::PatternWrites],
                },
                || async {
                    shared
                        .inner
                        .search_patterns(search)
                        .await
                        .map(Answer::Search)
                },
            )
            .await?
            .into_search()
    }

    async fn store_heuristic(&self, heuristic: &Heuristic) -> Result<()> {
        let (shared, items) = (Arc::clone(self.shared()), vec![heuristic.clone()]);
        detached(self.shared(), async move {
            shared.store_heuristics_with(items, Call::One).await
        })
        .await
    }

    async fn get_heuristic(&self, id: HeuristicId) -> Result<Option<Arc<Heuristic>>> {
        let shared = self.shared();
        shared.fresh().await;
        shared
            .heuristics
            .get_or_load(id, || shared.inner.get_heuristic(id))
            .await
    }

    async fn delete_heuristic(&self, id: HeuristicId) -> Result<()> {
        let shared = Arc::clone(self.shared());
        detached(self.shared(), async move {
            shared.delete_heuristics_with(vec![id], Call::One).await
        })
        .await
    }

    async fn store_heuristics(&self, heuristics: &[Heuristic]) -> Result<()> {
        let (shared, items) = (Arc::clone(self.shared()), heuristics.to_vec());
        detached(self.shared(), async move {
            shared.store_heuristics_with(items, Call::Many).await
        })
        .await
    }

    async fn get_heuristics(&self, ids: &[HeuristicId]) -> Result<Vec<Option<Arc<Heuristic>>>> {
        let shared = self.shared();
        shared.fresh().await;
        get_many(&shared.heuristics, ids, |wanted| async move {
            shared.inner.get_heuristics(&wanted).await
        })
        .await
    }

    async fn delete_heuristics(&self, ids: &[HeuristicId]) -> Result<()> {
        let (shared, ids) = (Arc::clone(self.shared()), ids.to_vec());
        detached(self.shared(), async move {
            shared.delete_heuristics_with(ids, Call::Many).await
        })
        .await
    }

    async fn count_heuristics(&self) -> Result<u64> {
        self.inner().count_heuristics().await
    }

    /// Not cached, as for patterns.
    async fn list_heuristics(
        &self,
        after: Option<HeuristicId>,
        limit: usize,
    ) -> Result<Vec<Arc<Heuristic>>> {
        self.shared().fresh().await;
        self.inner().list_heuristics(after, limit).await
    }

    /// Never cached: a check reads what the store holds.
    async fn check_items(
        &self,
        kind: memory_core::EntityKind,
        after: Option<memory_core::Uuid>,
        limit: usize,
    ) -> Result<Vec<memory_core::ItemCheck>> {
        self.inner().check_items(kind, after, limit).await
    }
}
