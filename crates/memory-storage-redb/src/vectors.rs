//! Similarity search on redb: a graph per kind ([`memory_core::ann::VectorIndex`]) held in
//! memory beside the file. redb has no vector index, and scoring every stored item means
//! decoding every one (300 ms at 10,000 typical episodes), so the first search that needs a
//! graph builds it from the file and later ones catch up with what writes noted. What the
//! graph holds per item is a filter view: the item without its steps, texts and embedding,
//! enough for the search's filter; the items returned are read from the file.

use std::sync::Arc;

use memory_core::ann::{Current, Refresh, VectorIndex};
use memory_core::search::Scored;
use memory_core::{Embedding, Episode, Heuristic, Pattern, Result, Uuid};
use redb::{ReadableDatabase, ReadableTable};

use crate::error::db;
use crate::tables::Row;

/// One graph per searched kind, shared by every clone of the store.
#[derive(Default)]
pub(crate) struct Vectors {
    episodes: VectorIndex<Episode>,
    patterns: VectorIndex<Pattern>,
}

/// What a kind's graph is and holds.
pub(crate) trait Searched: Row {
    /// This kind's graph, if it is searched by vector.
    fn vectors(vectors: &Vectors) -> Option<&VectorIndex<Self>>;
    /// The item as its filter sees it: no steps, texts or embedding.
    fn filter_view(self) -> Self;
}

impl Searched for Episode {
    fn vectors(vectors: &Vectors) -> Option<&VectorIndex<Episode>> {
        Some(&vectors.episodes)
    }
    fn filter_view(self) -> Episode {
        Episode {
            description: String::new(),
            steps: Vec::new(),
            reflection: None,
            patterns: Vec::new(),
            heuristics: Vec::new(),
            embedding: None,
            ..self
        }
    }
}

impl Searched for Pattern {
    fn vectors(vectors: &Vectors) -> Option<&VectorIndex<Pattern>> {
        Some(&vectors.patterns)
    }
    fn filter_view(self) -> Pattern {
        Pattern {
            embedding: None,
            ..self
        }
    }
}

impl Searched for Heuristic {
    fn vectors(_: &Vectors) -> Option<&VectorIndex<Heuristic>> {
        None
    }
    fn filter_view(self) -> Heuristic {
        self
    }
}

/// An item's current state for the graph: its embedding of `dimension` and filter view.
fn current<E: Searched>(id: Uuid, item: Option<E>, dimension: usize) -> Current<E> {
    let entry = item.and_then(|item| {
        let vector: Embedding = item
            .embedding()
            .filter(|e| e.dimension() == dimension)?
            .clone();
        Some((vector, Arc::new(item.filter_view())))
    });
    Current { id, entry }
}

/// Reads what `refresh` asks for from `db`, in one read transaction opened now.
pub(crate) fn load<E: Searched>(
    database: &redb::Database,
    refresh: Refresh,
    dimension: usize,
) -> Result<Vec<Current<E>>> {
    let txn = database
        .begin_read()
        .map_err(|e| db("starting a read", e))?;
    let table = match txn.open_table(E::TABLE) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Ok(match refresh {
                Refresh::All => Vec::new(),
                Refresh::Ids(ids) => ids
                    .into_iter()
                    .map(|id| Current { id, entry: None })
                    .collect(),
            });
        }
        Err(e) => return Err(db("opening a table", e)),
    };
    match refresh {
        Refresh::All => {
            let mut out = Vec::new();
            for row in table.iter().map_err(|e| db("reading every item", e))? {
                let (key, bytes) = row.map_err(|e| db("reading every item", e))?;
                let item = memory_core::codec::decode::<E>(bytes.value())?;
                out.push(current(
                    Uuid::from_bytes(*key.value()),
                    Some(item),
                    dimension,
                ));
            }
            Ok(out)
        }
        Refresh::Ids(ids) => ids
            .into_iter()
            .map(|id| {
                let item = crate::tables::get::<E>(&table, &E::Id::from(id))?;
                Ok(current(id, item, dimension))
            })
            .collect(),
    }
}

/// The found filter views replaced by the stored items, read in one transaction; an item
/// deleted since the search began is left out.
pub(crate) fn with_items<E: Searched>(
    database: &redb::Database,
    found: Vec<(Arc<E>, f64, Uuid)>,
) -> Result<Vec<Scored<E>>> {
    let txn = database
        .begin_read()
        .map_err(|e| db("starting a read", e))?;
    let table = match txn.open_table(E::TABLE) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db("opening a table", e)),
    };
    let mut out = Vec::with_capacity(found.len());
    for (_, score, id) in found {
        if let Some(item) = crate::tables::get::<E>(&table, &E::Id::from(id))? {
            out.push(Scored {
                item: Arc::new(item),
                score,
            });
        }
    }
    Ok(out)
}
