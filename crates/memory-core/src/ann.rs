//! [`VectorIndex`]: an approximate nearest-neighbour index over one kind's embeddings, for
//! the stores that have no vector index of their own (the in-memory store and redb).
//!
//! The graph is usearch's HNSW over cosine distance, its vectors normalized and stored as
//! `i8` (a quarter of the memory, and building it costs a third of what `f32` vectors
//! cost); the exact `f32` embedding of each item is kept beside it (shared with the item
//! where the store holds it in memory) for the exact re-rank. It follows the store lazily: a write
//! only notes the ids it changed ([`VectorIndex::note_changed`]), and the next search that
//! needs the graph asks the store for those items as they now are, in the snapshot it
//! searches, and applies them first. The first such search builds the graph from every
//! item. Writes therefore cost a few nanoseconds more, never a graph insertion, and a search
//! never misses an acknowledged write.
//!
//! Ranking stays exact where it is cheap: a search whose filter lets through at most
//! `exact_below` items scores all of them; above that the graph proposes
//! `k` + [`RERANK_MARGIN`] candidates among the items the filter lets through, and those are
//! scored exactly (the stored vector against the query, as [`crate::search::exact`] does),
//! best first, ties by id.
//!
//! ```
//! use std::sync::Arc;
//! use memory_core::ann::{Current, VectorIndex};
//! use memory_core::{Embedding, Uuid};
//!
//! let index: VectorIndex<&'static str> = VectorIndex::new();
//! let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
//! let stored = [
//!     (a, Embedding::new(vec![1.0, 0.0])?, "east"),
//!     (b, Embedding::new(vec![0.0, 1.0])?, "north"),
//! ];
//! // The first search builds the graph from everything the store hands it.
//! let found = index.search(&Embedding::new(vec![0.9, 0.1])?, 1, 0, |_: &&str| true, false, |_| {
//!     Ok(stored
//!         .iter()
//!         .map(|(id, v, item)| Current { id: *id, entry: Some((v.clone(), Arc::new(*item))) })
//!         .collect())
//! })?;
//! assert_eq!(*found[0].0, "east");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use foldhash::HashMap;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::embedding::Embedding;
use crate::error::{ErrorKind, Result, StorageError};

/// Candidates the graph proposes beyond `k`, each then scored exactly.
pub const RERANK_MARGIN: usize = 8;

/// Ids noted as changed past which the next search rebuilds the graph instead.
const MAX_NOTED: usize = 100_000;
/// Links per node, and the breadth of the search that places a new node (measured in
/// docs/SEARCH.md).
const CONNECTIVITY: usize = 16;
const EXPANSION_ADD: usize = 64;
/// The breadth of a search's beam: 128 unfiltered (usearch's default, 64, gave recall@10
/// 0.950-0.960 at 100,000 vectors of 384 values, at the bar; 128: 0.993), 64 filtered (the
/// nodes the filter refuses widen its walk already: 0.992-0.995 at one domain in three).
const EXPANSION_SEARCH: usize = 128;
const EXPANSION_FILTERED: usize = 64;

/// Which items a search needs from the store before it can use the graph.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Every stored item with an embedding (the graph is built).
    All,
    /// These items, as they now are (each may have changed, lost its embedding or gone).
    Ids(Vec<Uuid>),
}

/// One item as the store now holds it.
#[derive(Debug)]
pub struct Current<T> {
    /// The item's id.
    pub id: Uuid,
    /// Its embedding and what the search's filter looks at, or `None` if it is gone or has
    /// no embedding.
    pub entry: Option<(Embedding, Arc<T>)>,
}

/// An HNSW graph over the embeddings of one kind of item, and what each holds for filters.
pub struct VectorIndex<T> {
    /// Searches take turns: one syncs the graph, then searches it.
    state: Mutex<Option<Graph<T>>>,
    /// Ids written since the graph last caught up.
    noted: Mutex<Noted>,
}

#[derive(Default)]
struct Noted {
    /// Whether a graph exists that `ids` are changes to (before: every item is new).
    built: bool,
    ids: Vec<Uuid>,
}

struct Graph<T> {
    graph: usearch::Index,
    dimension: usize,
    keys: HashMap<Uuid, u64>,
    entries: HashMap<u64, Entry<T>>,
    next_key: u64,
}

/// What the graph knows of one item besides its node.
struct Entry<T> {
    id: Uuid,
    /// The exact vector, for the re-rank.
    vector: Embedding,
    held: Arc<T>,
}

/// `v` scaled to length 1 (the graph's `i8` values cover [-1, 1]; cosine ignores length).
fn normalized(v: &Embedding) -> Vec<f32> {
    let norm = v
        .values()
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    // An embedding is never all zero (`Embedding::new` refuses it).
    v.values()
        .iter()
        .map(|x| (f64::from(*x) / norm) as f32)
        .collect()
}

impl<T> Default for VectorIndex<T> {
    fn default() -> Self {
        VectorIndex {
            state: Mutex::new(None),
            noted: Mutex::new(Noted::default()),
        }
    }
}

impl<T> std::fmt::Debug for VectorIndex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("noted", &self.noted.lock().ids.len())
            .finish_non_exhaustive()
    }
}

fn native(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::new(ErrorKind::Internal, format!("vector index: {what}: {e}"))
}

impl<T: Send + Sync> Graph<T> {
    fn new(dimension: usize) -> Result<Self> {
        let options = usearch::IndexOptions {
            dimensions: dimension,
            metric: usearch::MetricKind::Cos,
            quantization: usearch::ScalarKind::I8,
            connectivity: CONNECTIVITY,
            expansion_add: EXPANSION_ADD,
            expansion_search: EXPANSION_SEARCH,
            ..Default::default()
        };
        Ok(Graph {
            graph: usearch::Index::new(&options).map_err(|e| native("creating", e))?,
            dimension,
            keys: HashMap::default(),
            entries: HashMap::default(),
            next_key: 0,
        })
    }

    /// A graph of `all`, its nodes added by as many threads as the machine has.
    fn build(dimension: usize, all: Vec<Current<T>>) -> Result<Self> {
        let mut graph = Graph::new(dimension)?;
        let mut nodes = Vec::with_capacity(all.len());
        for current in all {
            if let Some(key) = graph.enter(current)? {
                nodes.push(key);
            }
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        graph
            .graph
            .reserve_capacity_and_threads(nodes.len().max(1_024), threads)
            .map_err(|e| native("reserving", e))?;
        let per_thread = nodes.len().div_ceil(threads).max(1);
        let shared = &graph;
        std::thread::scope(|scope| {
            let workers: Vec<_> = nodes
                .chunks(per_thread)
                .map(|keys| scope.spawn(move || keys.iter().try_for_each(|key| shared.add(*key))))
                .collect();
            workers.into_iter().try_for_each(|worker| {
                worker
                    .join()
                    .map_err(|_| native("building", "a builder thread panicked"))?
            })
        })?;
        Ok(graph)
    }

    fn remove(&mut self, id: &Uuid) -> Result<()> {
        if let Some(key) = self.keys.remove(id) {
            self.entries.remove(&key);
            self.graph.remove(key).map_err(|e| native("removing", e))?;
        }
        Ok(())
    }

    /// Records `current` (replacing what its id held) without adding its node: its key,
    /// if it has an embedding.
    fn enter(&mut self, current: Current<T>) -> Result<Option<u64>> {
        self.remove(&current.id)?;
        let Some((vector, held)) = current.entry else {
            return Ok(None);
        };
        if vector.dimension() != self.dimension {
            return Err(StorageError::new(
                ErrorKind::Corrupt,
                format!(
                    "a stored embedding has {} values, the store's dimension is {}",
                    vector.dimension(),
                    self.dimension
                ),
            ));
        }
        // A fresh key per version: usearch reuses a removed key's slot, not the key.
        let key = self.next_key;
        self.next_key += 1;
        self.keys.insert(current.id, key);
        self.entries.insert(
            key,
            Entry {
                id: current.id,
                vector,
                held,
            },
        );
        Ok(Some(key))
    }

    /// Adds the node of the entry under `key` (safe from several threads at once, within
    /// the capacity reserved).
    fn add(&self, key: u64) -> Result<()> {
        let entry = self
            .entries
            .get(&key)
            .ok_or_else(|| native("adding", format!("no entry under key {key}")))?;
        self.graph
            .add(key, &normalized(&entry.vector))
            .map_err(|e| native("adding", e))
    }

    fn apply(&mut self, current: Current<T>) -> Result<()> {
        let Some(key) = self.enter(current)? else {
            return Ok(());
        };
        if self.graph.size() >= self.graph.capacity() {
            let more = (self.graph.capacity() * 2).max(1_024);
            self.graph.reserve(more).map_err(|e| native("growing", e))?;
        }
        self.add(key)
    }
}

/// Entries sampled to judge a filter's share (the map's order is its hashes', so any run
/// of entries is a fair sample).
const SAMPLE: usize = 2_000;

/// Whether at most about `bound` entries pass `keep`: counted when there are few entries,
/// else judged from a sample (a filter that lets through a small share is scored exactly;
/// near the bound either way finds the same items, exactly or nearly).
fn few_pass<T>(graph: &Graph<T>, keep: impl Fn(&T) -> bool, filtered: bool, bound: usize) -> bool {
    let total = graph.entries.len();
    if !filtered || total <= bound {
        return total <= bound;
    }
    let sampled = total.min(SAMPLE);
    let passed = graph
        .entries
        .values()
        .take(sampled)
        .filter(|e| keep(&e.held))
        .count();
    passed * total <= bound * sampled
}

impl<T: Send + Sync> VectorIndex<T> {
    /// An index with no graph yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that these items changed (stored, changed, deleted): the next search reads
    /// them again first. Call it once the change is visible to the store's readers.
    pub fn note_changed(&self, ids: impl IntoIterator<Item = Uuid>) {
        let mut noted = self.noted.lock();
        if !noted.built {
            return;
        }
        noted.ids.extend(ids);
        if noted.ids.len() > MAX_NOTED {
            // Cheaper to build again than to apply them one by one.
            noted.built = false;
            noted.ids = Vec::new();
        }
    }

    /// The `k` items closest to `query` among those `keep` lets through, best first (ties by
    /// id), with their cosine similarity; `filtered` says whether `keep` can refuse any.
    /// `load` answers the [`Refresh`] the graph needs, from the snapshot searched.
    ///
    /// # Errors
    /// What `load` returns, or `Internal` if the graph fails.
    pub fn search(
        &self,
        query: &Embedding,
        k: usize,
        exact_below: usize,
        keep: impl Fn(&T) -> bool,
        filtered: bool,
        load: impl FnOnce(Refresh) -> Result<Vec<Current<T>>>,
    ) -> Result<Vec<(Arc<T>, f64, Uuid)>> {
        let mut state = self.state.lock();
        let refresh = {
            let mut noted = self.noted.lock();
            let refresh = match (noted.built, state.is_some()) {
                (true, true) => Refresh::Ids(std::mem::take(&mut noted.ids)),
                _ => Refresh::All,
            };
            noted.built = true;
            noted.ids.clear();
            refresh
        };
        let result = self.sync(&mut state, query.dimension(), refresh, load);
        if result.is_err() {
            // What the graph holds is unknown: build it again next time.
            *state = None;
            self.noted.lock().built = false;
        }
        result?;
        let Some(graph) = state.as_ref() else {
            return Ok(Vec::new());
        };
        let exact_below = exact_below.max(k + RERANK_MARGIN);
        let mut scored = Vec::new();
        if few_pass(graph, &keep, filtered, exact_below) {
            for e in graph.entries.values() {
                if keep(&e.held) {
                    scored.push((Arc::clone(&e.held), e.vector.cosine(query), e.id));
                }
            }
        } else {
            graph.graph.change_expansion_search(match filtered {
                true => EXPANSION_FILTERED,
                false => EXPANSION_SEARCH,
            });
            let proposed = graph
                .graph
                .filtered_search(&normalized(query), k + RERANK_MARGIN, |key| {
                    graph.entries.get(&key).is_some_and(|e| keep(&e.held))
                })
                .map_err(|e| native("searching", e))?;
            for key in proposed.keys {
                if let Some(e) = graph.entries.get(&key) {
                    scored.push((Arc::clone(&e.held), e.vector.cosine(query), e.id));
                }
            }
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.2.cmp(&b.2)));
        scored.truncate(k);
        Ok(scored)
    }

    fn sync(
        &self,
        state: &mut Option<Graph<T>>,
        dimension: usize,
        refresh: Refresh,
        load: impl FnOnce(Refresh) -> Result<Vec<Current<T>>>,
    ) -> Result<()> {
        if matches!(refresh, Refresh::All)
            || state.as_ref().is_some_and(|g| g.dimension != dimension)
        {
            *state = Some(Graph::build(dimension, load(Refresh::All)?)?);
            return Ok(());
        }
        let Refresh::Ids(mut ids) = refresh else {
            return Ok(());
        };
        if ids.is_empty() {
            return Ok(());
        }
        ids.sort_unstable();
        ids.dedup();
        let current = load(Refresh::Ids(ids))?;
        if let Some(graph) = state.as_mut() {
            for c in current {
                graph.apply(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::vectors::Seeded;

    const DIM: usize = 24;

    fn id(n: u64) -> Uuid {
        Uuid::from_u128(u128::from(n) + 1)
    }

    /// `n` items: (id, vector, held = n).
    fn items(n: u64, seed: u64) -> Vec<(Uuid, Embedding, u64)> {
        let mut rng = Seeded::seed_from_u64(seed);
        (0..n).map(|i| (id(i), rng.uniform(DIM), i)).collect()
    }

    fn everything(items: &[(Uuid, Embedding, u64)]) -> Vec<Current<u64>> {
        items
            .iter()
            .map(|(id, v, n)| Current {
                id: *id,
                entry: Some((v.clone(), Arc::new(*n))),
            })
            .collect()
    }

    /// The exact answer: (held, score) best first, ties by id.
    fn exact(
        items: &[(Uuid, Embedding, u64)],
        query: &Embedding,
        k: usize,
        keep: impl Fn(&u64) -> bool,
    ) -> Vec<(u64, f64)> {
        let mut all: Vec<_> = items
            .iter()
            .filter(|(_, _, n)| keep(n))
            .map(|(id, v, n)| (*n, v.cosine(query), *id))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.2.cmp(&b.2)));
        all.into_iter().take(k).map(|(n, s, _)| (n, s)).collect()
    }

    fn search(
        index: &VectorIndex<u64>,
        query: &Embedding,
        exact_below: usize,
        keep: impl Fn(&u64) -> bool,
        items: &[(Uuid, Embedding, u64)],
    ) -> Vec<(u64, f64)> {
        index
            .search(query, 10, exact_below, keep, true, |refresh| {
                Ok(match refresh {
                    Refresh::All => everything(items),
                    Refresh::Ids(ids) => ids
                        .into_iter()
                        .map(|id| Current {
                            id,
                            entry: items
                                .iter()
                                .find(|(i, _, _)| *i == id)
                                .map(|(_, v, n)| (v.clone(), Arc::new(*n))),
                        })
                        .collect(),
                })
            })
            .unwrap()
            .into_iter()
            .map(|(held, score, _)| (*held, score))
            .collect()
    }

    #[test]
    fn the_graph_finds_nearly_the_exact_answer_with_exact_scores() {
        let all = items(3_000, 1);
        let index = VectorIndex::new();
        let mut rng = Seeded::seed_from_u64(2);
        let (mut found, mut wanted) = (0, 0);
        for round in 0..40 {
            let query = rng.uniform(DIM);
            let keep = |n: &u64| round % 2 == 0 || n.is_multiple_of(3);
            let got = search(&index, &query, 0, keep, &all);
            let expected = exact(&all, &query, 10, keep);
            assert_eq!(got.len(), 10);
            for (n, score) in &got {
                assert!(keep(n), "{n} does not pass the filter");
                let reference = all[*n as usize].1.cosine(&query);
                assert_eq!(*score, reference, "scored exactly, as the reference does");
            }
            wanted += expected.len();
            found += got.iter().filter(|g| expected.contains(g)).count();
        }
        let recall = found as f64 / wanted as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
    }

    #[test]
    fn below_the_bound_every_match_is_scored() {
        let all = items(500, 3);
        let index = VectorIndex::new();
        let query = Seeded::seed_from_u64(4).uniform(DIM);
        let keep = |n: &u64| n.is_multiple_of(7);
        assert_eq!(
            search(&index, &query, 1_000, keep, &all),
            exact(&all, &query, 10, keep)
        );
    }

    #[test]
    fn a_search_applies_what_writes_noted() {
        let mut all = items(2_000, 5);
        let index = VectorIndex::new();
        let query = Seeded::seed_from_u64(6).uniform(DIM);
        let before = search(&index, &query, 0, |_| true, &all);
        // The best moves away, a new item equals the query, the second best goes.
        let best = before[0].0 as usize;
        let second = before[1].0 as usize;
        all[best].1 = Embedding::new(query.values().iter().map(|v| -v).collect()).unwrap();
        all.push((id(5_000), query.clone(), 5_000));
        let gone = all.remove(second);
        index.note_changed([all[best].0, id(5_000), gone.0]);
        let after = search(&index, &query, 0, |_| true, &all);
        assert_eq!(after[0], (5_000, query.cosine(&query)));
        assert!(
            after
                .iter()
                .all(|(n, _)| *n != best as u64 && *n != second as u64)
        );
    }

    #[test]
    fn a_failed_load_builds_the_graph_again() {
        let all = items(1_500, 7);
        let index = VectorIndex::new();
        let query = Seeded::seed_from_u64(8).uniform(DIM);
        search(&index, &query, 0, |_| true, &all);
        index.note_changed([id(3)]);
        let failed = index.search(
            &query,
            10,
            0,
            |_: &u64| true,
            false,
            |_| {
                Err(StorageError::new(
                    ErrorKind::Unavailable,
                    "the store is gone",
                ))
            },
        );
        assert_eq!(failed.unwrap_err().kind(), ErrorKind::Unavailable);
        let mut asked = Vec::new();
        index
            .search(
                &query,
                10,
                0,
                |_: &u64| true,
                false,
                |refresh| {
                    asked.push(refresh == Refresh::All);
                    Ok(everything(&all))
                },
            )
            .unwrap();
        assert_eq!(asked, [true], "the next search rebuilds from everything");
    }

    #[test]
    fn a_vector_of_another_dimension_is_corrupt() {
        let index = VectorIndex::new();
        let query = Embedding::new(vec![1.0; DIM]).unwrap();
        let err = index
            .search(
                &query,
                1,
                0,
                |_: &u64| true,
                false,
                |_| {
                    Ok(vec![Current {
                        id: id(1),
                        entry: Some((Embedding::new(vec![1.0; 3]).unwrap(), Arc::new(1))),
                    }])
                },
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
    }
}
