//! The keys and values of a kind's query-result cache: filtered queries and searches share
//! one cache (and so one budget share), keyed by what was asked.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use memory_core::StorageError;
use memory_core::heap::{self, HeapSize};
use memory_core::search::{Scored, Search, SearchBy};

/// A cached read of one kind: a filtered query `Q`, or a search filtered by `Q`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Read<Q> {
    Query(Q),
    Search(SearchKey<Q>),
}

/// A cached answer: a query's `P`, or a search's scored items.
#[derive(Clone)]
pub(crate) enum Answer<P, T> {
    Query(P),
    Search(Vec<Scored<T>>),
}

impl<P, T> Answer<P, T> {
    /// The query's answer; a search's is a bug (the cache answers a key with what that
    /// key's loader returned), reported as `Internal`.
    pub(crate) fn into_query(self) -> memory_core::Result<P> {
        match self {
            Answer::Query(p) => Ok(p),
            Answer::Search(_) => Err(mixed_up("a query")),
        }
    }

    /// The search's answer; see [`into_query`](Self::into_query).
    pub(crate) fn into_search(self) -> memory_core::Result<Vec<Scored<T>>> {
        match self {
            Answer::Search(s) => Ok(s),
            Answer::Query(_) => Err(mixed_up("a search")),
        }
    }
}

fn mixed_up(what: &str) -> StorageError {
    StorageError::internal(format!(
        "the query cache answered {what} with another read's result"
    ))
}

/// The memory of a search's answer and of its key (the search, its query vector and text).
pub(crate) fn search_bytes<Q, T: HeapSize>(read: &Read<Q>, found: &Vec<Scored<T>>) -> u64 {
    let key = match read {
        Read::Search(SearchKey(search)) => {
            heap::allocation(2 * size_of::<usize>() + size_of::<Search<Q>>())
                + search
                    .by
                    .vector()
                    .map_or(0, |v| heap::allocation(4 * v.dimension()))
                + search.by.text().map_or(0, |t| heap::allocation(t.len()))
        }
        Read::Query(_) => 0,
    };
    let items = heap::allocation(found.capacity() * std::mem::size_of::<Scored<T>>())
        + found
            .iter()
            .map(|s| heap::arc_bytes(s.item.as_ref()))
            .sum::<usize>();
    (key + items) as u64
}

/// A search as a cache key: equal when bit for bit equal (a query vector that differs only
/// in the sign of a zero is another key: a spurious miss, never a wrong hit).
#[derive(Clone, Debug)]
pub(crate) struct SearchKey<Q>(pub(crate) Arc<Search<Q>>);

impl<Q> SearchKey<Q> {
    pub(crate) fn new(search: &Search<Q>) -> Self
    where
        Q: Clone,
    {
        SearchKey(Arc::new(search.clone()))
    }
}

fn bits(by: &SearchBy) -> (u8, Option<&[f32]>, Option<&str>) {
    let tag = match by {
        SearchBy::Vector(_) => 0,
        SearchBy::Text(_) => 1,
        SearchBy::Hybrid { .. } => 2,
    };
    (tag, by.vector().map(|v| v.values()), by.text())
}

impl<Q: PartialEq> PartialEq for SearchKey<Q> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        let (tag_a, vector_a, text_a) = bits(&a.by);
        let (tag_b, vector_b, text_b) = bits(&b.by);
        let same_vector = match (vector_a, vector_b) {
            (Some(x), Some(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
            }
            (None, None) => true,
            _ => false,
        };
        tag_a == tag_b
            && same_vector
            && text_a == text_b
            && a.k == b.k
            && a.min_score.map(f64::to_bits) == b.min_score.map(f64::to_bits)
            && a.filter == b.filter
    }
}

impl<Q: Eq> Eq for SearchKey<Q> {}

impl<Q: Hash> Hash for SearchKey<Q> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (tag, vector, text) = bits(&self.0.by);
        tag.hash(state);
        if let Some(values) = vector {
            values.len().hash(state);
            for v in values {
                v.to_bits().hash(state);
            }
        }
        text.hash(state);
        self.0.k.hash(state);
        self.0.min_score.map(f64::to_bits).hash(state);
        self.0.filter.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;

    use memory_core::search::EpisodeSearch;
    use memory_core::{Embedding, EpisodeQuery};

    use super::*;

    fn hash_of<T: Hash>(value: &T) -> u64 {
        let mut h = DefaultHasher::new();
        value.hash(&mut h);
        h.finish()
    }

    #[test]
    fn searches_are_one_key_only_when_everything_asked_is_the_same() {
        let v = |x: f32| Embedding::new(vec![x, 1.0]).unwrap();
        let base = EpisodeSearch::new(v(0.5), 10);
        let key = |s: &EpisodeSearch| SearchKey::new(s);
        assert_eq!(key(&base), key(&base.clone()));
        assert_eq!(hash_of(&key(&base)), hash_of(&key(&base.clone())));
        let others = [
            EpisodeSearch::new(v(0.25), 10),
            EpisodeSearch::new(v(0.5), 11),
            EpisodeSearch::new(v(0.5), 10).min_score(0.1),
            EpisodeSearch::new(v(0.5), 10).filter(EpisodeQuery::new().domain("web")),
            EpisodeSearch::hybrid(v(0.5), "word", 10),
            EpisodeSearch::text("word", 10),
            EpisodeSearch::new(v(-0.0), 10),
        ];
        for other in &others {
            assert_ne!(key(&base), key(other), "{other:?}");
        }
        assert_ne!(
            key(&EpisodeSearch::new(v(0.0), 10)),
            key(&EpisodeSearch::new(v(-0.0), 10)),
            "bit for bit"
        );
        assert_ne!(
            key(&EpisodeSearch::text("a", 10)),
            key(&EpisodeSearch::text("b", 10))
        );
    }
}
