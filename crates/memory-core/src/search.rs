//! Search: the items closest to a query vector (cosine similarity), the items holding the
//! words of a text query ([`crate::text`]), or both fused, among those that pass the usual
//! filters (`docs/SEARCH.md`).
//!
//! [`exact_by`] is the brute-force reference every backend is checked against (and what the
//! in-memory store answers text searches with; its vector searches ask a graph,
//! [`crate::ann`]): every candidate scored, best first, ties broken by id.
//!
//! ```
//! use memory_core::search::EpisodeSearch;
//! use memory_core::{Embedding, Episode, EpisodeQuery, InMemoryStorage, StorageBackend};
//! use memory_core::{TaskContext, TaskType};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = InMemoryStorage::new();
//! let mut episode = Episode::new(
//!     TaskType::Debugging,
//!     "linker error in the release build",
//!     TaskContext::new("cli"),
//! );
//! episode.embedding = Some(Embedding::new(vec![0.9, 0.1, 0.0])?);
//! store.store_episode(&episode).await?;
//!
//! let query = Embedding::new(vec![1.0, 0.0, 0.0])?;
//! let similar = store.search_episodes(&EpisodeSearch::new(query.clone(), 5)).await?;
//! let by_text = store.search_episodes(&EpisodeSearch::text("Linker ERROR", 5)).await?;
//! let both = store
//!     .search_episodes(
//!         &EpisodeSearch::hybrid(query, "release", 5).filter(EpisodeQuery::new().domain("cli")),
//!     )
//!     .await?;
//! assert_eq!(similar[0].item.id, episode.id);
//! assert_eq!(by_text[0].item.id, episode.id);
//! assert_eq!(both[0].item.id, episode.id);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;

use crate::embedding::Embedding;
use crate::entity::Entity;
use crate::episode::Episode;
use crate::error::Result;
use crate::error::{Problem, ValidationError};
use crate::limits::MAX_QUERY_LIMIT;
use crate::pattern::Pattern;
use crate::query::{EpisodeQuery, PatternQuery};
use crate::storage::StorageBackend;
use crate::text::Searchable;

/// The most results one search returns.
pub const MAX_SEARCH_K: usize = 1_000;

/// An item and its cosine similarity to the query vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored<T> {
    /// The item.
    pub item: Arc<T>,
    /// Cosine similarity, in `[-1, 1]`.
    pub score: f64,
}

/// The one dimension of the embeddings among `items` (`None` when none has one); a batch
/// mixing two dimensions is `InvalidInput`.
pub fn batch_dimension<'a, T: Entity + 'a>(
    items: impl IntoIterator<Item = &'a T>,
) -> Result<Option<usize>> {
    let mut found: Option<usize> = None;
    for item in items {
        if let Some(e) = item.embedding() {
            match found {
                Some(d) if d != e.dimension() => {
                    return Err(dimension_error("embedding", e.dimension(), d).into());
                }
                _ => found = Some(e.dimension()),
            }
        }
    }
    Ok(found)
}

/// `InvalidInput` unless `given` is the store's dimension (`stored`; a store without one
/// takes any).
pub fn check_dimension(field: &str, given: usize, stored: Option<usize>) -> Result<()> {
    match stored {
        Some(d) if d != given => Err(dimension_error(field, given, d).into()),
        _ => Ok(()),
    }
}

/// [`check_dimension`] for a search's query vector, if it has one.
pub fn check_query_dimension(by: &SearchBy, stored: Option<usize>) -> Result<()> {
    match by.vector() {
        Some(v) => check_dimension("vector", v.dimension(), stored),
        None => Ok(()),
    }
}

fn dimension_error(field: &str, given: usize, expected: usize) -> ValidationError {
    ValidationError::new(
        field,
        Problem::Invalid(format!(
            "has {given} dimensions; this store's embeddings have {expected}"
        )),
    )
}

/// What a search looks for.
#[derive(Clone, Debug, PartialEq)]
pub enum SearchBy {
    /// Items whose embeddings are most similar to this vector; scores are cosine
    /// similarities.
    Vector(Embedding),
    /// Items holding every word of this text ([`crate::text`]); scores are BM25 relevance.
    Text(String),
    /// Both lists fused by reciprocal rank fusion: an item's score is the sum over the two
    /// lists of `1 / (60 + rank)` (rank 1 the best), each list [`hybrid_depth`] long.
    Hybrid {
        /// The query vector.
        vector: Embedding,
        /// The text query.
        text: String,
    },
}

impl SearchBy {
    /// The query vector, if the search has one.
    pub fn vector(&self) -> Option<&Embedding> {
        match self {
            SearchBy::Vector(v) | SearchBy::Hybrid { vector: v, .. } => Some(v),
            SearchBy::Text(_) => None,
        }
    }

    /// The text query, if the search has one.
    pub fn text(&self) -> Option<&str> {
        match self {
            SearchBy::Text(t) | SearchBy::Hybrid { text: t, .. } => Some(t),
            SearchBy::Vector(_) => None,
        }
    }
}

/// The reciprocal-rank-fusion constant (the usual 60).
pub const RRF_K: f64 = 60.0;

/// How long each list of a hybrid search is before fusion: `4k`, at least 40, at most
/// [`MAX_SEARCH_K`].
pub fn hybrid_depth(k: usize) -> usize {
    (4 * k).clamp(40, MAX_SEARCH_K)
}

/// A search: the `k` best among the items `filter` matches (its `limit` is not used), by
/// vector, text or both ([`SearchBy`]). `min_score` bounds the cosine similarity (vector and
/// hybrid searches only). Used as [`EpisodeSearch`] and [`PatternSearch`].
#[derive(Clone, Debug, PartialEq)]
pub struct Search<F> {
    /// What to look for.
    pub by: SearchBy,
    /// How many results at most, 1 to [`MAX_SEARCH_K`].
    pub k: usize,
    /// The lowest cosine similarity returned (in a hybrid search, of the vector list).
    pub min_score: Option<f64>,
    /// Which items are candidates.
    pub filter: F,
}

/// What a search's filter does, whatever its kind: which items pass, and whether any can
/// fail (stores that judge a filter's share skip that for an empty one).
pub trait ItemFilter<T>: Clone + Send + Sync + 'static {
    /// Whether `item` passes.
    fn passes(&self, item: &T) -> bool;
    /// Whether any item can fail.
    fn filters_anything(&self) -> bool;
}

impl ItemFilter<Episode> for EpisodeQuery {
    fn passes(&self, item: &Episode) -> bool {
        self.matches(item)
    }
    fn filters_anything(&self) -> bool {
        EpisodeQuery::filters_anything(self)
    }
}

impl ItemFilter<Pattern> for PatternQuery {
    fn passes(&self, item: &Pattern) -> bool {
        self.matches(item)
    }
    fn filters_anything(&self) -> bool {
        PatternQuery::filters_anything(self)
    }
}

/// A search over episodes (a cursor in the filter is refused: a search is not paged).
pub type EpisodeSearch = Search<EpisodeQuery>;
/// A search over patterns.
pub type PatternSearch = Search<PatternQuery>;

impl<F: Default> Search<F> {
    /// The `k` nearest items to `vector`, any item a candidate.
    pub fn new(vector: Embedding, k: usize) -> Self {
        Self::by(SearchBy::Vector(vector), k)
    }

    /// The `k` items that best match the words of `text`.
    pub fn text(text: impl Into<String>, k: usize) -> Self {
        Self::by(SearchBy::Text(text.into()), k)
    }

    /// Vector and text, fused.
    pub fn hybrid(vector: Embedding, text: impl Into<String>, k: usize) -> Self {
        Self::by(
            SearchBy::Hybrid {
                vector,
                text: text.into(),
            },
            k,
        )
    }

    fn by(by: SearchBy, k: usize) -> Self {
        Search {
            by,
            k,
            min_score: None,
            filter: F::default(),
        }
    }
}

impl<F> Search<F> {
    /// Only results scoring at least `score`.
    pub fn min_score(mut self, score: f64) -> Self {
        self.min_score = Some(score);
        self
    }

    /// Only items `filter` matches.
    pub fn filter(mut self, filter: F) -> Self {
        self.filter = filter;
        self
    }
}

impl EpisodeSearch {
    /// Checks `k`, `min_score`, the vector, the text and the filter.
    pub fn validate(&self) -> Result<(), ValidationError> {
        common(&self.by, self.k, self.min_score)?;
        if self.filter.cursor.is_some() {
            return Err(ValidationError::new(
                "filter.cursor",
                Problem::Invalid("a search is not paged: give a larger k instead".into()),
            ));
        }
        self.filter.validate().map_err(|e| e.at("filter"))
    }
}

impl PatternSearch {
    /// Checks `k`, `min_score`, the vector, the text and the filter.
    pub fn validate(&self) -> Result<(), ValidationError> {
        common(&self.by, self.k, self.min_score)?;
        self.filter.validate().map_err(|e| e.at("filter"))
    }
}

fn common(by: &SearchBy, k: usize, min_score: Option<f64>) -> Result<(), ValidationError> {
    if let Some(vector) = by.vector() {
        vector.validate("vector")?;
    }
    if let Some(text) = by.text() {
        crate::text::query_words(text)?;
    }
    if min_score.is_some() && by.vector().is_none() {
        return Err(ValidationError::new(
            "min_score",
            Problem::Invalid("bounds a cosine similarity: only for searches by vector".into()),
        ));
    }
    if !(1..=MAX_SEARCH_K).contains(&k) {
        return Err(ValidationError::new(
            "k",
            Problem::OutOfRange {
                min: 1.0,
                max: MAX_SEARCH_K as f64,
                actual: k as f64,
            },
        ));
    }
    if let Some(score) = min_score {
        if !score.is_finite() {
            return Err(ValidationError::new("min_score", Problem::NotFinite(score)));
        }
        if !(-1.0..=1.0).contains(&score) {
            return Err(ValidationError::new(
                "min_score",
                Problem::OutOfRange {
                    min: -1.0,
                    max: 1.0,
                    actual: score,
                },
            ));
        }
    }
    Ok(())
}

/// The exact answer: every candidate that `matches` and has an embedding of the query's
/// dimension, scored by cosine similarity, at least `min_score`, best first (ties: the
/// smaller id first), the first `k`.
pub fn exact<T: Entity>(
    candidates: impl IntoIterator<Item = Arc<T>>,
    vector: &Embedding,
    k: usize,
    min_score: Option<f64>,
    matches: impl Fn(&T) -> bool,
) -> Vec<Scored<T>> {
    let mut scored: Vec<Scored<T>> = candidates
        .into_iter()
        .filter(|item| matches(item))
        .filter_map(|item| {
            let score = item
                .embedding()
                .filter(|e| e.dimension() == vector.dimension())?
                .cosine(vector);
            Some(Scored { item, score })
        })
        .filter(|s| min_score.is_none_or(|min| s.score >= min))
        .collect();
    rank(&mut scored, k);
    scored
}

/// Sorts `scored` best first (ties: the smaller id first) and keeps the first `k`.
pub(crate) fn rank<T: Entity>(scored: &mut Vec<Scored<T>>, k: usize) {
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.item.id().cmp(&b.item.id()))
    });
    scored.truncate(k);
}

/// An exact episode search by a scan: every episode the filter matches (and, for text,
/// every episode: BM25's statistics are the store's), read through `store.query_episodes`
/// page by page, then [`exact_episodes`] (for stores without a vector or text index).
pub async fn scan_episodes<S: StorageBackend + ?Sized>(
    store: &S,
    search: &EpisodeSearch,
) -> Result<Vec<Scored<Episode>>> {
    search.validate()?;
    let mut query = match search.by.text() {
        Some(_) => EpisodeQuery::new(),
        None => search.filter.clone(),
    }
    .limit(MAX_QUERY_LIMIT);
    let mut candidates = Vec::new();
    loop {
        let page = store.query_episodes(&query).await?;
        candidates.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query = query.after(cursor),
            None => break,
        }
    }
    Ok(exact_episodes(candidates, search))
}

/// The exact answer to `by`: [`exact`] by vector, [`crate::text::exact`] by text, both fused
/// by [`fuse`] for a hybrid search. `corpus` holds every candidate (for text, every stored
/// item: the BM25 statistics are the store's).
pub fn exact_by<T: Entity + Searchable>(
    corpus: Vec<Arc<T>>,
    by: &SearchBy,
    k: usize,
    min_score: Option<f64>,
    matches: impl Fn(&T) -> bool,
) -> Vec<Scored<T>> {
    match by {
        SearchBy::Vector(v) => exact(corpus, v, k, min_score, matches),
        SearchBy::Text(t) => crate::text::exact(corpus, t, k, matches),
        SearchBy::Hybrid { vector, text } => {
            let depth = hybrid_depth(k);
            let by_vector = exact(corpus.iter().cloned(), vector, depth, min_score, &matches);
            let by_text = crate::text::exact(corpus, text, depth, &matches);
            fuse(&by_vector, &by_text, k)
        }
    }
}

/// Reciprocal rank fusion of two ranked lists: each item scores the sum over the lists
/// holding it of `1 / (RRF_K + rank)` (rank 1 the best); best first, ties by id, the first
/// `k`.
pub fn fuse<T: Entity>(a: &[Scored<T>], b: &[Scored<T>], k: usize) -> Vec<Scored<T>> {
    let mut fused: Vec<Scored<T>> = Vec::with_capacity(a.len() + b.len());
    let mut at: std::collections::HashMap<T::Id, usize> =
        std::collections::HashMap::with_capacity(a.len() + b.len());
    for list in [a, b] {
        for (rank, s) in list.iter().enumerate() {
            let add = 1.0 / (RRF_K + rank as f64 + 1.0);
            match at.get(&s.item.id()) {
                Some(&i) => fused[i].score += add,
                None => {
                    at.insert(s.item.id(), fused.len());
                    fused.push(Scored {
                        item: s.item.clone(),
                        score: add,
                    });
                }
            }
        }
    }
    rank(&mut fused, k);
    fused
}

/// Answers a search by `by` with a backend's own vector and text searches: `vector(v, n,
/// complete)` and `text(t, n)` each return their best `n` (the vector one applying the
/// minimum score); a hybrid search runs both [`hybrid_depth`] deep and [`fuse`]s them.
/// `complete` is false for a hybrid's vector list: an approximate index may then return
/// fewer than `n` without searching exactly for the rest (the list only feeds the fusion).
pub async fn dispatch<T, FV, V, FX, X>(
    by: &SearchBy,
    k: usize,
    vector: FV,
    text: FX,
) -> Result<Vec<Scored<T>>>
where
    T: Entity,
    FV: FnOnce(Embedding, usize, bool) -> V,
    V: std::future::Future<Output = Result<Vec<Scored<T>>>>,
    FX: FnOnce(String, usize) -> X,
    X: std::future::Future<Output = Result<Vec<Scored<T>>>>,
{
    match by {
        SearchBy::Vector(v) => vector(v.clone(), k, true).await,
        SearchBy::Text(t) => text(t.clone(), k).await,
        SearchBy::Hybrid { vector: v, text: t } => {
            let depth = hybrid_depth(k);
            let by_vector = vector(v.clone(), depth, false).await?;
            let by_text = text(t.clone(), depth).await?;
            Ok(fuse(&by_vector, &by_text, k))
        }
    }
}

/// [`exact_by`] for an episode search.
pub fn exact_episodes(
    candidates: impl IntoIterator<Item = Arc<Episode>>,
    search: &EpisodeSearch,
) -> Vec<Scored<Episode>> {
    exact_by(
        candidates.into_iter().collect(),
        &search.by,
        search.k,
        search.min_score,
        |e| search.filter.matches(e),
    )
}

/// [`exact_by`] for a pattern search.
pub fn exact_patterns(
    candidates: impl IntoIterator<Item = Arc<Pattern>>,
    search: &PatternSearch,
) -> Vec<Scored<Pattern>> {
    exact_by(
        candidates.into_iter().collect(),
        &search.by,
        search.k,
        search.min_score,
        |p| search.filter.matches(p),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TaskContext, TaskType};

    fn episode(domain: &str, v: Vec<f32>) -> Arc<Episode> {
        let mut e = Episode::new(TaskType::Testing, "e", TaskContext::new(domain));
        e.embedding = Some(Embedding::new(v).unwrap());
        Arc::new(e)
    }

    #[test]
    fn fusion_sums_the_ranks_of_both_lists() {
        let (a, b, c) = (
            episode("web", vec![1.0, 0.0]),
            episode("web", vec![0.0, 1.0]),
            episode("web", vec![1.0, 1.0]),
        );
        let list = |items: &[&Arc<Episode>]| -> Vec<Scored<Episode>> {
            items
                .iter()
                .map(|e| Scored {
                    item: Arc::clone(e),
                    score: 0.0,
                })
                .collect()
        };
        let fused = fuse(&list(&[&a, &b]), &list(&[&b, &c]), 10);
        assert_eq!(fused[0].item.id, b.id, "in both lists");
        assert!((fused[0].score - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-12);
        assert_eq!(fused.len(), 3);
        assert_eq!(fuse(&list(&[&a, &b]), &list(&[&b, &c]), 1).len(), 1);
    }

    #[test]
    fn best_first_filtered_bounded_and_ties_by_id() {
        let a = episode("web", vec![1.0, 0.0]);
        let b = episode("web", vec![1.0, 1.0]);
        let c = episode("cli", vec![1.0, 0.0]);
        let twin = episode("web", vec![2.0, 0.0]); // the same direction as `a`
        let mut none = Episode::new(TaskType::Testing, "e", TaskContext::new("web"));
        none.embedding = None;
        let other_dimension = episode("web", vec![1.0, 0.0, 0.0]);
        let all = vec![
            a.clone(),
            b.clone(),
            c.clone(),
            twin.clone(),
            Arc::new(none),
            other_dimension,
        ];
        let query = Embedding::new(vec![1.0, 0.0]).unwrap();
        let got = exact_episodes(all.clone(), &EpisodeSearch::new(query.clone(), 10));
        let ids: Vec<_> = got.iter().map(|s| s.item.id).collect();
        let mut tied = [a.id, c.id, twin.id];
        tied.sort();
        assert_eq!(&ids[..3], &tied, "score 1.0, by id");
        assert_eq!(ids[3], b.id);
        assert_eq!(
            ids.len(),
            4,
            "no embedding or another dimension: not a candidate"
        );
        let web = EpisodeSearch::new(query.clone(), 2).filter(EpisodeQuery::new().domain("web"));
        let got = exact_episodes(all.clone(), &web);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|s| s.item.context.domain == "web"));
        let close = EpisodeSearch::new(query, 10).min_score(0.9);
        assert_eq!(exact_episodes(all, &close).len(), 3);
    }

    #[test]
    fn bad_searches_are_validation_errors() {
        let v = Embedding::new(vec![1.0]).unwrap();
        assert!(EpisodeSearch::new(v.clone(), 0).validate().is_err());
        assert!(
            EpisodeSearch::new(v.clone(), MAX_SEARCH_K + 1)
                .validate()
                .is_err()
        );
        assert!(
            EpisodeSearch::new(v.clone(), 1)
                .min_score(1.5)
                .validate()
                .is_err()
        );
        assert!(
            EpisodeSearch::new(v.clone(), 1)
                .min_score(f64::NAN)
                .validate()
                .is_err()
        );
        assert!(PatternSearch::new(v, 3).validate().is_ok());
    }
}
