//! The file's tables: one per entity (id → encoded item) and the secondary indexes that
//! queries walk, each kept in step with its main table inside the same write transaction.

use memory_core::{
    Entity, Episode, EpisodeId, Heuristic, HeuristicId, Pattern, PatternId, StorageError, codec,
};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::error::db;

/// Ids as stored: 16 bytes whose order is the id's order.
pub(crate) type IdKey = &'static [u8; 16];

/// `format_version` → the version of this file's layout.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The key of the format version in [`META`].
pub(crate) const FORMAT_KEY: &str = "format_version";
/// The key of the change position in [`META`]: advanced by every write transaction (files
/// written before it existed start at 0, so no format change).
pub(crate) const POSITION_KEY: &str = "change_position";
/// The layout this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;

pub(crate) const EPISODES: TableDefinition<IdKey, &[u8]> = TableDefinition::new("episodes");
/// (start time in µs, id): the newest-first query order.
pub(crate) const EPISODES_BY_START: TableDefinition<(i64, IdKey), ()> =
    TableDefinition::new("episodes_by_start");
/// (domain, start time in µs, id): the same order within one domain.
pub(crate) const EPISODES_BY_DOMAIN: TableDefinition<(&str, i64, IdKey), ()> =
    TableDefinition::new("episodes_by_domain");
pub(crate) const PATTERNS: TableDefinition<IdKey, &[u8]> = TableDefinition::new("patterns");
/// (domain, id).
pub(crate) const PATTERNS_BY_DOMAIN: TableDefinition<(&str, IdKey), ()> =
    TableDefinition::new("patterns_by_domain");
/// (kind name, id).
pub(crate) const PATTERNS_BY_KIND: TableDefinition<(&str, IdKey), ()> =
    TableDefinition::new("patterns_by_kind");
pub(crate) const HEURISTICS: TableDefinition<IdKey, &[u8]> = TableDefinition::new("heuristics");

/// An entity stored in its own table, with the index entries that follow it.
pub(crate) trait Row: Entity {
    const TABLE: TableDefinition<'static, IdKey, &'static [u8]>;

    fn key(id: &Self::Id) -> [u8; 16];

    /// Moves this item's index entries from `old` to `new` (either may be absent).
    fn reindex(
        txn: &WriteTransaction,
        old: Option<&Self>,
        new: Option<&Self>,
    ) -> Result<(), StorageError>;
}

impl Row for Episode {
    const TABLE: TableDefinition<'static, IdKey, &'static [u8]> = EPISODES;

    fn key(id: &EpisodeId) -> [u8; 16] {
        *id.as_bytes()
    }

    fn reindex(
        txn: &WriteTransaction,
        old: Option<&Episode>,
        new: Option<&Episode>,
    ) -> Result<(), StorageError> {
        let fail = |e: redb::Error| db("updating the episode indexes", e);
        let mut by_start = txn
            .open_table(EPISODES_BY_START)
            .map_err(|e| fail(e.into()))?;
        let mut by_domain = txn
            .open_table(EPISODES_BY_DOMAIN)
            .map_err(|e| fail(e.into()))?;
        if let Some(old) = old {
            let id = old.id.as_bytes();
            let start = old.start_time.as_micros();
            by_start.remove((start, id)).map_err(|e| fail(e.into()))?;
            by_domain
                .remove((old.context.domain.as_str(), start, id))
                .map_err(|e| fail(e.into()))?;
        }
        if let Some(new) = new {
            let id = new.id.as_bytes();
            let start = new.start_time.as_micros();
            by_start
                .insert((start, id), ())
                .map_err(|e| fail(e.into()))?;
            by_domain
                .insert((new.context.domain.as_str(), start, id), ())
                .map_err(|e| fail(e.into()))?;
        }
        Ok(())
    }
}

impl Row for Pattern {
    const TABLE: TableDefinition<'static, IdKey, &'static [u8]> = PATTERNS;

    fn key(id: &PatternId) -> [u8; 16] {
        *id.as_bytes()
    }

    fn reindex(
        txn: &WriteTransaction,
        old: Option<&Pattern>,
        new: Option<&Pattern>,
    ) -> Result<(), StorageError> {
        let fail = |e: redb::Error| db("updating the pattern indexes", e);
        let mut by_domain = txn
            .open_table(PATTERNS_BY_DOMAIN)
            .map_err(|e| fail(e.into()))?;
        let mut by_kind = txn
            .open_table(PATTERNS_BY_KIND)
            .map_err(|e| fail(e.into()))?;
        if let Some(old) = old {
            let id = old.id.as_bytes();
            by_domain
                .remove((old.domain.as_str(), id))
                .map_err(|e| fail(e.into()))?;
            by_kind
                .remove((old.kind().as_str(), id))
                .map_err(|e| fail(e.into()))?;
        }
        if let Some(new) = new {
            let id = new.id.as_bytes();
            by_domain
                .insert((new.domain.as_str(), id), ())
                .map_err(|e| fail(e.into()))?;
            by_kind
                .insert((new.kind().as_str(), id), ())
                .map_err(|e| fail(e.into()))?;
        }
        Ok(())
    }
}

impl Row for Heuristic {
    const TABLE: TableDefinition<'static, IdKey, &'static [u8]> = HEURISTICS;

    fn key(id: &HeuristicId) -> [u8; 16] {
        *id.as_bytes()
    }

    fn reindex(
        _: &WriteTransaction,
        _: Option<&Heuristic>,
        _: Option<&Heuristic>,
    ) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Writes `items` (already validated) in `txn`: each replaces any stored item of its id,
/// and the indexes move with it.
pub(crate) fn put<E: Row>(txn: &WriteTransaction, items: &[E]) -> Result<(), StorageError> {
    if let Some(d) = memory_core::search::batch_dimension(items)? {
        fix_dimension(txn, d)?;
    }
    let mut table = txn
        .open_table(E::TABLE)
        .map_err(|e| db("opening a table", e))?;
    for item in items {
        let bytes = codec::encode(item)?;
        let key = E::key(&item.id());
        let old = table
            .insert(&key, bytes.as_slice())
            .map_err(|e| db("writing an item", e))?
            .map(|guard| codec::decode::<E>(guard.value()))
            .transpose()?;
        E::reindex(txn, old.as_ref(), Some(item))?;
    }
    Ok(())
}

/// The key of the embeddings' dimension in [`META`], fixed by the first stored.
pub(crate) const DIMENSION_KEY: &str = "embedding_dimension";

/// Checks a write's embedding dimension against the file's, recording it on first use.
fn fix_dimension(txn: &WriteTransaction, dimension: usize) -> Result<(), StorageError> {
    let doing = "reading the embedding dimension";
    let mut meta = txn.open_table(META).map_err(|e| db(doing, e))?;
    let stored = meta
        .get(DIMENSION_KEY)
        .map_err(|e| db(doing, e))?
        .map(|v| v.value() as usize);
    memory_core::search::check_dimension("embedding", dimension, stored)?;
    if stored.is_none() {
        meta.insert(DIMENSION_KEY, dimension as u64)
            .map_err(|e| db("recording the embedding dimension", e))?;
    }
    Ok(())
}

/// Deletes `ids` in `txn`, all or none: the first missing id is a `NotFound` error.
pub(crate) fn delete<E: Row>(txn: &WriteTransaction, ids: &[E::Id]) -> Result<(), StorageError> {
    let mut table = txn
        .open_table(E::TABLE)
        .map_err(|e| db("opening a table", e))?;
    for id in ids {
        let old = table
            .remove(&E::key(id))
            .map_err(|e| db("deleting an item", e))?
            .map(|guard| codec::decode::<E>(guard.value()))
            .transpose()?;
        match old {
            Some(old) => E::reindex(txn, Some(&old), None)?,
            None => return Err(StorageError::not_found(E::KIND, id)),
        }
    }
    Ok(())
}

/// Decodes an item read from `table`.
pub(crate) fn get<E: Row>(
    table: &impl ReadableTable<IdKey, &'static [u8]>,
    id: &E::Id,
) -> Result<Option<E>, StorageError> {
    table
        .get(&E::key(id))
        .map_err(|e| db("reading an item", e))?
        .map(|guard| codec::decode::<E>(guard.value()))
        .transpose()
}
