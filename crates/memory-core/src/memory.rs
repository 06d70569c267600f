//! [`InMemoryStorage`]: the obviously-correct reference backend (one lock around ordered
//! maps). It is the oracle that caches and other backends are tested against.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use uuid::Uuid;

use crate::ann::{Current, Refresh, VectorIndex};
use crate::episode::Episode;
use crate::error::{EntityKind, Result, StorageError};
use crate::feed::{Change, Changed, ChangesSince, MemoryFeed};
use crate::heuristic::Heuristic;
use crate::ids::{EpisodeId, HeuristicId, PatternId};
use crate::pattern::Pattern;
use crate::query::{EpisodePage, EpisodeQuery, PatternQuery};
use crate::search::{EpisodeSearch, PatternSearch, Scored};
use crate::storage::{ItemCheck, StorageBackend};
use crate::time::Timestamp;
use crate::validate::{validate_batch, validate_ids};

/// A process-local store holding everything in memory. Nothing survives the process.
///
/// ```
/// use memory_core::{Heuristic, InMemoryStorage, StorageBackend};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryStorage::new();
/// let h = Heuristic::new("lint fails", "run cargo fmt", 0.9);
/// store.store_heuristic(&h).await.unwrap();
/// assert_eq!(store.count_heuristics().await.unwrap(), 1);
/// # });
/// ```
#[derive(Default)]
pub struct InMemoryStorage {
    tables: RwLock<Tables>,
    /// The graphs similarity searches of large stores ask (`crate::ann`): writes note what
    /// they changed, under the tables' lock, and searches catch up first.
    episode_vectors: VectorIndex<Episode>,
    pattern_vectors: VectorIndex<Pattern>,
}

/// Searches among at most this many items (after filters) score every one; above it the
/// graph proposes candidates (as libSQL's `exact_search_below`).
pub const EXACT_SEARCH_BELOW: usize = 1_000;

struct Tables {
    episodes: BTreeMap<EpisodeId, Arc<Episode>>,
    /// Every episode's position in the query order, kept in step with `episodes`.
    episodes_by_start: BTreeSet<(Timestamp, EpisodeId)>,
    patterns: BTreeMap<PatternId, Arc<Pattern>>,
    heuristics: BTreeMap<HeuristicId, Arc<Heuristic>>,
    /// The change position: advanced by every write, under the same lock.
    position: u64,
    /// What the newest writes changed, under the same lock.
    feed: MemoryFeed,
    /// The dimension of every embedding, fixed by the first stored.
    dimension: Option<usize>,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            episodes: BTreeMap::new(),
            episodes_by_start: BTreeSet::new(),
            patterns: BTreeMap::new(),
            heuristics: BTreeMap::new(),
            position: 0,
            feed: MemoryFeed::new(FEED_KEPT),
            dimension: None,
        }
    }
}

/// Writes the in-memory feed keeps (and the most one answer lists).
const FEED_KEPT: usize = 4_096;

/// Where an entity lives inside [`Tables`], and how its secondary index follows a change.
trait Stored: Changed {
    /// The graph of this kind's embeddings (none for heuristics, which are not searched).
    fn vectors(store: &InMemoryStorage) -> Option<&VectorIndex<Self>>;
    fn rows(tables: &Tables) -> &BTreeMap<Self::Id, Arc<Self>>;
    fn rows_mut(tables: &mut Tables) -> &mut BTreeMap<Self::Id, Arc<Self>>;
    fn reindex(tables: &mut Tables, old: Option<&Self>, new: Option<&Self>);
}

impl Stored for Episode {
    fn vectors(store: &InMemoryStorage) -> Option<&VectorIndex<Episode>> {
        Some(&store.episode_vectors)
    }
    fn rows(tables: &Tables) -> &BTreeMap<EpisodeId, Arc<Episode>> {
        &tables.episodes
    }
    fn rows_mut(tables: &mut Tables) -> &mut BTreeMap<EpisodeId, Arc<Episode>> {
        &mut tables.episodes
    }
    fn reindex(tables: &mut Tables, old: Option<&Episode>, new: Option<&Episode>) {
        if let Some(old) = old {
            tables.episodes_by_start.remove(&(old.start_time, old.id));
        }
        if let Some(new) = new {
            tables.episodes_by_start.insert((new.start_time, new.id));
        }
    }
}

impl Stored for Pattern {
    fn vectors(store: &InMemoryStorage) -> Option<&VectorIndex<Pattern>> {
        Some(&store.pattern_vectors)
    }
    fn rows(tables: &Tables) -> &BTreeMap<PatternId, Arc<Pattern>> {
        &tables.patterns
    }
    fn rows_mut(tables: &mut Tables) -> &mut BTreeMap<PatternId, Arc<Pattern>> {
        &mut tables.patterns
    }
    fn reindex(_: &mut Tables, _: Option<&Pattern>, _: Option<&Pattern>) {}
}

impl Stored for Heuristic {
    fn vectors(_: &InMemoryStorage) -> Option<&VectorIndex<Heuristic>> {
        None
    }
    fn rows(tables: &Tables) -> &BTreeMap<HeuristicId, Arc<Heuristic>> {
        &tables.heuristics
    }
    fn rows_mut(tables: &mut Tables) -> &mut BTreeMap<HeuristicId, Arc<Heuristic>> {
        &mut tables.heuristics
    }
    fn reindex(_: &mut Tables, _: Option<&Heuristic>, _: Option<&Heuristic>) {}
}

impl Tables {
    fn put<E: Stored>(&mut self, item: &E) {
        let new = Arc::new(item.clone());
        let old = E::rows_mut(self).insert(item.id(), Arc::clone(&new));
        E::reindex(self, old.as_deref(), Some(&new));
    }

    /// One write committed: the next position, reported to the writing cache (under the
    /// lock, so that a position read never runs ahead of what readers see).
    fn advance(&mut self, changes: Vec<Change>) {
        self.position += 1;
        self.feed.record(self.position, changes);
        crate::change::report_write(self.position);
    }

    /// Checks the items' embeddings against the store's dimension, fixing it on first use.
    fn fix_dimension<E: Stored>(&mut self, items: &[E]) -> Result<()> {
        if let Some(d) = crate::search::batch_dimension(items)? {
            crate::search::check_dimension("embedding", d, self.dimension)?;
            self.dimension = Some(d);
        }
        Ok(())
    }

    fn remove<E: Stored>(&mut self, id: E::Id) {
        if let Some(old) = E::rows_mut(self).remove(&id) {
            E::reindex(self, Some(&old), None);
        }
    }
}

impl InMemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn store_one<E: Stored>(&self, item: &E) -> Result<()> {
        item.validate()?;
        let mut tables = self.tables.write();
        tables.fix_dimension(std::slice::from_ref(item))?;
        tables.put(item);
        tables.advance(vec![item.stored()]);
        self.note_changed::<E>(std::iter::once(item.id()));
        Ok(())
    }

    fn store_many<E: Stored>(&self, items: &[E]) -> Result<()> {
        validate_batch(items)?;
        if items.is_empty() {
            return Ok(());
        }
        let mut tables = self.tables.write();
        tables.fix_dimension(items)?;
        for item in items {
            tables.put(item);
        }
        tables.advance(items.iter().map(Changed::stored).collect());
        self.note_changed::<E>(items.iter().map(crate::Entity::id));
        Ok(())
    }

    /// Called under the tables' write lock, so a search (under the read lock) sees the
    /// note with the change.
    fn note_changed<E: Stored>(&self, ids: impl Iterator<Item = E::Id>) {
        if let Some(vectors) = E::vectors(self) {
            vectors.note_changed(ids.map(Into::into));
        }
    }

    /// The `k` best by vector among the stored items `keep` lets through: exact below
    /// [`EXACT_SEARCH_BELOW`] candidates, else proposed by the graph and re-ranked exactly.
    fn nearest<E: Stored>(
        &self,
        tables: &Tables,
        vector: &crate::Embedding,
        k: usize,
        min_score: Option<f64>,
        keep: impl Fn(&E) -> bool,
        filtered: bool,
    ) -> Result<Vec<Scored<E>>> {
        let Some(vectors) = E::vectors(self) else {
            return Ok(Vec::new());
        };
        let rows = E::rows(tables);
        let found = vectors.search(vector, k, EXACT_SEARCH_BELOW, keep, filtered, |refresh| {
            let current = |id: &E::Id, item: &Arc<E>| Current {
                id: (*id).into(),
                entry: item
                    .embedding()
                    .filter(|e| e.dimension() == vector.dimension())
                    .map(|e| (e.clone(), Arc::clone(item))),
            };
            Ok(match refresh {
                Refresh::All => rows.iter().map(|(id, item)| current(id, item)).collect(),
                Refresh::Ids(ids) => ids
                    .into_iter()
                    .map(|id| match rows.get(&E::Id::from(id)) {
                        Some(item) => current(&E::Id::from(id), item),
                        None => Current { id, entry: None },
                    })
                    .collect(),
            })
        })?;
        Ok(found
            .into_iter()
            .filter(|(_, score, _)| min_score.is_none_or(|min| *score >= min))
            .map(|(item, score, _)| Scored { item, score })
            .collect())
    }

    /// A search (validated) by vector through [`nearest`](Self::nearest); by text exactly
    /// over every item (BM25's statistics are the store's); hybrid: both lists fused.
    fn search<E, F>(&self, search: &crate::search::Search<F>) -> Result<Vec<Scored<E>>>
    where
        E: Stored + crate::text::Searchable,
        F: crate::search::ItemFilter<E>,
    {
        use crate::search::SearchBy;
        let tables = self.tables.read();
        crate::search::check_query_dimension(&search.by, tables.dimension)?;
        let (k, min, filter) = (search.k, search.min_score, &search.filter);
        let keep = |e: &E| filter.passes(e);
        let filtered = filter.filters_anything();
        let every = || E::rows(&tables).values().cloned().collect::<Vec<_>>();
        Ok(match &search.by {
            SearchBy::Vector(v) => self.nearest(&tables, v, k, min, keep, filtered)?,
            SearchBy::Text(t) => crate::text::exact(every(), t, k, keep),
            SearchBy::Hybrid { vector, text } => {
                let depth = crate::search::hybrid_depth(k);
                let by_vector = self.nearest(&tables, vector, depth, min, keep, filtered)?;
                let by_text = crate::text::exact(every(), text, depth, keep);
                crate::search::fuse(&by_vector, &by_text, k)
            }
        })
    }

    fn get_one<E: Stored>(&self, id: E::Id) -> Option<Arc<E>> {
        E::rows(&self.tables.read()).get(&id).cloned()
    }

    fn get_many<E: Stored>(&self, ids: &[E::Id]) -> Result<Vec<Option<Arc<E>>>> {
        validate_ids(ids, false)?;
        let tables = self.tables.read();
        let rows = E::rows(&tables);
        Ok(ids.iter().map(|id| rows.get(id).cloned()).collect())
    }

    fn list_after<E: Stored>(&self, after: Option<E::Id>, limit: usize) -> Result<Vec<Arc<E>>> {
        crate::validate_list_limit(limit)?;
        let tables = self.tables.read();
        let rows = E::rows(&tables);
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(rows
            .range((from, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(_, item)| Arc::clone(item))
            .collect())
    }

    /// Items are held decoded, so every one is sound.
    fn check_after<E: Stored>(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<ItemCheck>> {
        crate::validate_list_limit(limit)?;
        let tables = self.tables.read();
        let from = after
            .map(E::Id::from)
            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(E::rows(&tables)
            .range((from, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(id, _)| ItemCheck::sound(*id))
            .collect())
    }

    fn delete_many<E: Stored>(&self, ids: &[E::Id]) -> Result<()> {
        validate_ids(ids, true)?;
        let mut tables = self.tables.write();
        if let Some(missing) = ids.iter().find(|id| !E::rows(&tables).contains_key(id)) {
            return Err(StorageError::not_found(E::KIND, missing));
        }
        if ids.is_empty() {
            return Ok(());
        }
        for id in ids {
            tables.remove::<E>(*id);
        }
        tables.advance(ids.iter().map(|id| E::deleted(*id)).collect());
        self.note_changed::<E>(ids.iter().copied());
        Ok(())
    }

    fn count<E: Stored>(&self) -> u64 {
        E::rows(&self.tables.read()).len() as u64
    }
}

/// Every write (a single item or a whole batch) advances the position by one.
#[async_trait]
impl crate::change::ChangeSignal for InMemoryStorage {
    async fn change_position(&self) -> Result<u64> {
        Ok(self.tables.read().position)
    }

    /// The newest 4,096 writes are kept, under the same lock as the data.
    async fn changes_since(&self, position: u64) -> Result<ChangesSince> {
        let tables = self.tables.read();
        Ok(tables.feed.since(position, tables.position, FEED_KEPT))
    }

    /// Positions are reported after the write released the tables.
    fn reports_before_visible(&self) -> bool {
        false
    }
}

#[async_trait]
impl StorageBackend for InMemoryStorage {
    fn backend_name(&self) -> &'static str {
        "memory"
    }

    async fn store_episode(&self, episode: &Episode) -> Result<()> {
        self.store_one(episode)
    }
    async fn get_episode(&self, id: EpisodeId) -> Result<Option<Arc<Episode>>> {
        Ok(self.get_one(id))
    }
    async fn delete_episode(&self, id: EpisodeId) -> Result<()> {
        self.delete_many::<Episode>(&[id])
    }
    async fn store_episodes(&self, episodes: &[Episode]) -> Result<()> {
        self.store_many(episodes)
    }
    async fn get_episodes(&self, ids: &[EpisodeId]) -> Result<Vec<Option<Arc<Episode>>>> {
        self.get_many(ids)
    }
    async fn delete_episodes(&self, ids: &[EpisodeId]) -> Result<()> {
        self.delete_many::<Episode>(ids)
    }

    async fn query_episodes(&self, query: &EpisodeQuery) -> Result<EpisodePage> {
        query.validate()?;
        // Walk the (start_time, id) order downwards from the tighter of the two upper bounds.
        let nil = EpisodeId::from_bytes([0; 16]);
        let mut upper = query.until.map(|t| (t, nil));
        if let Some(cursor) = query.cursor {
            let key = (cursor.start_time(), cursor.id());
            upper = Some(upper.map_or(key, |u| u.min(key)));
        }
        let range = upper.map_or(Bound::Unbounded, Bound::Excluded);
        let tables = self.tables.read();
        let items = tables
            .episodes_by_start
            .range((Bound::Unbounded, range))
            .rev()
            .take_while(|(start, _)| query.since.is_none_or(|since| *start >= since))
            .filter_map(|(_, id)| tables.episodes.get(id))
            .filter(|e| query.matches(e))
            .take(query.limit.saturating_add(1))
            .cloned()
            .collect();
        Ok(EpisodePage::from_overfetch(items, query.limit))
    }

    async fn count_episodes(&self) -> Result<u64> {
        Ok(self.count::<Episode>())
    }

    async fn store_pattern(&self, pattern: &Pattern) -> Result<()> {
        self.store_one(pattern)
    }
    async fn get_pattern(&self, id: PatternId) -> Result<Option<Arc<Pattern>>> {
        Ok(self.get_one(id))
    }
    async fn delete_pattern(&self, id: PatternId) -> Result<()> {
        self.delete_many::<Pattern>(&[id])
    }
    async fn store_patterns(&self, patterns: &[Pattern]) -> Result<()> {
        self.store_many(patterns)
    }
    async fn get_patterns(&self, ids: &[PatternId]) -> Result<Vec<Option<Arc<Pattern>>>> {
        self.get_many(ids)
    }
    async fn delete_patterns(&self, ids: &[PatternId]) -> Result<()> {
        self.delete_many::<Pattern>(ids)
    }
    async fn list_patterns(
        &self,
        after: Option<PatternId>,
        limit: usize,
    ) -> Result<Vec<Arc<Pattern>>> {
        self.list_after(after, limit)
    }
    async fn list_heuristics(
        &self,
        after: Option<HeuristicId>,
        limit: usize,
    ) -> Result<Vec<Arc<Heuristic>>> {
        self.list_after(after, limit)
    }

    async fn check_items(
        &self,
        kind: EntityKind,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ItemCheck>> {
        match kind {
            EntityKind::Episode => self.check_after::<Episode>(after, limit),
            EntityKind::Pattern => self.check_after::<Pattern>(after, limit),
            EntityKind::Heuristic => self.check_after::<Heuristic>(after, limit),
        }
    }

    async fn search_episodes(&self, search: &EpisodeSearch) -> Result<Vec<Scored<Episode>>> {
        search.validate()?;
        self.search(search)
    }
    async fn search_patterns(&self, search: &PatternSearch) -> Result<Vec<Scored<Pattern>>> {
        search.validate()?;
        self.search(search)
    }

    async fn query_patterns(&self, query: &PatternQuery) -> Result<Vec<Arc<Pattern>>> {
        query.validate()?;
        let mut found: Vec<Arc<Pattern>> = self
            .tables
            .read()
            .patterns
            .values()
            .filter(|p| query.matches(p))
            .cloned()
            .collect();
        found.sort_by(|a, b| PatternQuery::order(a, b));
        found.truncate(query.limit);
        Ok(found)
    }

    async fn count_patterns(&self) -> Result<u64> {
        Ok(self.count::<Pattern>())
    }

    async fn store_heuristic(&self, heuristic: &Heuristic) -> Result<()> {
        self.store_one(heuristic)
    }
    async fn get_heuristic(&self, id: HeuristicId) -> Result<Option<Arc<Heuristic>>> {
        Ok(self.get_one(id))
    }
    async fn delete_heuristic(&self, id: HeuristicId) -> Result<()> {
        self.delete_many::<Heuristic>(&[id])
    }
    async fn store_heuristics(&self, heuristics: &[Heuristic]) -> Result<()> {
        self.store_many(heuristics)
    }
    async fn get_heuristics(&self, ids: &[HeuristicId]) -> Result<Vec<Option<Arc<Heuristic>>>> {
        self.get_many(ids)
    }
    async fn delete_heuristics(&self, ids: &[HeuristicId]) -> Result<()> {
        self.delete_many::<Heuristic>(ids)
    }
    async fn count_heuristics(&self) -> Result<u64> {
        Ok(self.count::<Heuristic>())
    }
}
