//! Similarity search: the items whose [`Embedding`] is closest (by cosine similarity) to a
//! query vector, among those that pass the usual filters.
//!
//! [`exact`] is the brute-force reference every backend is checked against (and what the
//! in-memory store answers with): every candidate scored, best first, ties broken by id.
//!
//! ```
//! use memory_core::search::EpisodeSearch;
//! use memory_core::{Embedding, EpisodeQuery};
//!
//! let search = EpisodeSearch::new(Embedding::new(vec![0.1, 0.9]).unwrap(), 5)
//!     .min_score(0.5)
//!     .filter(EpisodeQuery::new().domain("web"));
//! assert!(search.validate().is_ok());
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

fn dimension_error(field: &str, given: usize, expected: usize) -> ValidationError {
    ValidationError::new(
        field,
        Problem::Invalid(format!(
            "has {given} dimensions; this store's embeddings have {expected}"
        )),
    )
}

/// A similarity search over episodes: the `k` most similar to `vector` among the episodes
/// `filter` matches (its `limit` is not used; a cursor is refused) with a score of at least
/// `min_score`.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeSearch {
    /// The query vector (of the store's dimension).
    pub vector: Embedding,
    /// How many results at most, 1 to [`MAX_SEARCH_K`].
    pub k: usize,
    /// The lowest cosine similarity returned.
    pub min_score: Option<f64>,
    /// Which episodes are candidates.
    pub filter: EpisodeQuery,
}

impl EpisodeSearch {
    /// The `k` nearest episodes to `vector`, any episode a candidate.
    pub fn new(vector: Embedding, k: usize) -> Self {
        EpisodeSearch {
            vector,
            k,
            min_score: None,
            filter: EpisodeQuery::new(),
        }
    }

    /// Only results scoring at least `score`.
    pub fn min_score(mut self, score: f64) -> Self {
        self.min_score = Some(score);
        self
    }

    /// Only episodes `filter` matches.
    pub fn filter(mut self, filter: EpisodeQuery) -> Self {
        self.filter = filter;
        self
    }

    /// Checks `k`, `min_score`, the vector and the filter.
    pub fn validate(&self) -> Result<(), ValidationError> {
        common(&self.vector, self.k, self.min_score)?;
        if self.filter.cursor.is_some() {
            return Err(ValidationError::new(
                "filter.cursor",
                Problem::Invalid("a search is not paged: give a larger k instead".into()),
            ));
        }
        self.filter.validate().map_err(|e| e.at("filter"))
    }
}

/// A similarity search over patterns (see [`EpisodeSearch`]; the filter's `limit` is not
/// used).
#[derive(Clone, Debug, PartialEq)]
pub struct PatternSearch {
    /// The query vector (of the store's dimension).
    pub vector: Embedding,
    /// How many results at most, 1 to [`MAX_SEARCH_K`].
    pub k: usize,
    /// The lowest cosine similarity returned.
    pub min_score: Option<f64>,
    /// Which patterns are candidates.
    pub filter: PatternQuery,
}

impl PatternSearch {
    /// The `k` nearest patterns to `vector`, any pattern a candidate.
    pub fn new(vector: Embedding, k: usize) -> Self {
        PatternSearch {
            vector,
            k,
            min_score: None,
            filter: PatternQuery::new(),
        }
    }

    /// Only results scoring at least `score`.
    pub fn min_score(mut self, score: f64) -> Self {
        self.min_score = Some(score);
        self
    }

    /// Only patterns `filter` matches.
    pub fn filter(mut self, filter: PatternQuery) -> Self {
        self.filter = filter;
        self
    }

    /// Checks `k`, `min_score`, the vector and the filter.
    pub fn validate(&self) -> Result<(), ValidationError> {
        common(&self.vector, self.k, self.min_score)?;
        self.filter.validate().map_err(|e| e.at("filter"))
    }
}

fn common(vector: &Embedding, k: usize, min_score: Option<f64>) -> Result<(), ValidationError> {
    vector.validate("vector")?;
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
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.item.id().cmp(&b.item.id()))
    });
    scored.truncate(k);
    scored
}

/// An exact episode search by a scan: every episode the filter matches, read through
/// `store.query_episodes` page by page, then [`exact_episodes`] (for stores without a vector
/// index).
pub async fn scan_episodes<S: StorageBackend + ?Sized>(
    store: &S,
    search: &EpisodeSearch,
) -> Result<Vec<Scored<Episode>>> {
    search.validate()?;
    let mut query = search.filter.clone().limit(MAX_QUERY_LIMIT);
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

/// [`exact`] for an episode search.
pub fn exact_episodes(
    candidates: impl IntoIterator<Item = Arc<Episode>>,
    search: &EpisodeSearch,
) -> Vec<Scored<Episode>> {
    exact(
        candidates,
        &search.vector,
        search.k,
        search.min_score,
        |e| search.filter.matches(e),
    )
}

/// [`exact`] for a pattern search.
pub fn exact_patterns(
    candidates: impl IntoIterator<Item = Arc<Pattern>>,
    search: &PatternSearch,
) -> Vec<Scored<Pattern>> {
    exact(
        candidates,
        &search.vector,
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
