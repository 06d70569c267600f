//! The embeddings' tables and the similarity search over them.
//!
//! Each searchable kind has a vector table, created in the transaction that fixes the
//! store's dimension (its column type carries it): `key` (an `INTEGER PRIMARY KEY`, so that
//! `VACUUM` keeps the keys the vector index refers to), the item's id, and the embedding as
//! `F32_BLOB(dimension)`, indexed by `libsql_vector_idx`. Writes keep it in step with the
//! item in the same transaction; a trigger removes an item's vector with the item.
//!
//! A search runs as one statement (one round trip remotely) that takes one of two paths,
//! chosen inside the statement by how many items the filter matches: at most
//! `exact_search_below`, every match is scored exactly; more, the index's nearest
//! candidates (its whole beam: [`SEARCH_BEAM`]) are filtered. Either way the
//! candidates are re-ranked exactly in `f64` by the caller. Only the chosen path runs:
//! the other's row limit is 0, or its index lookup sits in a `CASE` branch not taken.

use libsql::Value;
use memory_core::{Embedding, Episode, Pattern, StorageError};

use crate::error::db;
use crate::query::Sql;
use crate::schema::stored_page;
use crate::table::{Table, placeholders, row_groups};

/// The vector index's settings for `dimension`. Neighbours are stored compressed (the
/// index only proposes candidates, re-ranked with the stored `f32` vectors): to 1 bit per
/// value from [`ONE_BIT_FROM`] dimensions, where a sign pattern still tells directions
/// apart and inserts are about 3.5x faster than with 8 bits; to 8 bits below it (1-bit
/// neighbours fell to recall 0.83 at 32 dimensions on the conformance set). A search
/// beam of 100 (libSQL's default 200) halves a search with the recall at the bar
/// (plans/0014).
fn index_settings(dimension: usize) -> &'static str {
    if dimension >= ONE_BIT_FROM {
        "'metric=cosine', 'compress_neighbors=float1bit', 'max_neighbors=32', 'insert_l=40', \
         'search_l=100'"
    } else {
        "'metric=cosine', 'compress_neighbors=float8', 'max_neighbors=32', 'insert_l=40', \
         'search_l=100'"
    }
}

/// The dimension from which neighbours are compressed to one bit per value.
const ONE_BIT_FROM: usize = 256;

/// The index's search beam (`search_l`), and so the candidates every search asks it for:
/// libSQL's `vector_top_k` returns at most its beam whatever `k` it is given (its search
/// context holds `search_l` candidates), and asking for fewer costs as much and finds
/// fewer (recall@10 0.952 with 36 candidates, 0.955 with 100, on 100,000 vectors of 384
/// values; plans/0014). A filtered search therefore sees the filter's share of these; when
/// that leaves fewer than `k` matches, it runs again exactly.
const SEARCH_BEAM: i64 = 100;

/// Candidates kept beyond `k` for the exact re-rank (SQLite computes distances in `f32`,
/// the re-rank in `f64`; near ties at the boundary must not fall out).
const RERANK_MARGIN: i64 = 16;

/// The statements that create the vector tables of a store whose embeddings have
/// `dimension` values (idempotent).
pub(crate) fn create_sql(dimension: usize) -> String {
    let settings = index_settings(dimension);
    let tables = [
        ("episode_vectors", "episodes"),
        ("pattern_vectors", "patterns"),
    ];
    tables
        .map(|(table, items)| {
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                key INTEGER PRIMARY KEY,
                item_id BLOB NOT NULL UNIQUE,
                embedding F32_BLOB({dimension}) NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {table}_ann
                ON {table} (libsql_vector_idx(embedding, {settings}));
            CREATE TRIGGER IF NOT EXISTS {table}_follow AFTER DELETE ON {items}
            BEGIN
                DELETE FROM {table} WHERE item_id = OLD.id;
            END;"
            )
        })
        .concat()
}

/// The little-endian bytes of an embedding, as `F32_BLOB` stores them.
pub(crate) fn blob(embedding: &Embedding) -> Vec<u8> {
    embedding
        .values()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Upserts `rows` vectors `(item_id, embedding)`; an unchanged vector is not rewritten (the
/// index would redo its neighbour search for nothing).
pub(crate) fn upsert_sql(table: &str, rows: usize) -> String {
    format!(
        "INSERT INTO {table} (item_id, embedding) VALUES {} ON CONFLICT (item_id) DO UPDATE \
         SET embedding = excluded.embedding WHERE embedding IS NOT excluded.embedding",
        row_groups(rows, 2)
    )
}

/// Removes the vectors of `rows` items (stored again without an embedding).
pub(crate) fn delete_sql(table: &str, rows: usize) -> String {
    format!(
        "DELETE FROM {table} WHERE item_id IN ({})",
        placeholders(rows)
    )
}

/// Numbers the `?` placeholders of `text` from `first` on (the search repeats its filter,
/// and numbered parameters let every copy share one set of values).
pub(crate) fn numbered(text: &str, first: usize) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = first;
    for c in text.chars() {
        if c == '?' {
            out.push('?');
            out += &n.to_string();
            n += 1;
        } else {
            out.push(c);
        }
    }
    out
}

/// How a search is asked of the statement.
pub(crate) struct Plan {
    /// The query vector.
    pub(crate) vector: Vec<u8>,
    /// Results wanted.
    pub(crate) k: usize,
    /// Score every match exactly when there are at most this many.
    pub(crate) exact_below: i64,
}

/// The search statement for items of `E` whose table is `vectors`: rows `(id, encoding,
/// payload, matches)` of the candidates, nearest first, where `matches` is how many items
/// the filter matched (for an unfiltered search, an upper bound of the vectors stored).
/// `filter` holds `AND ...` terms on the item table as `e` with `?` placeholders.
pub(crate) fn search_sql<E: Table>(vectors: &str, filter: &Sql, plan: &Plan) -> Sql {
    let items = E::TABLE;
    let f = numbered(&filter.text, 5);
    let matches = if filter.text.is_empty() {
        format!("SELECT COALESCE(MAX(key), 0) AS matches FROM {vectors}")
    } else {
        format!("SELECT COUNT(*) AS matches FROM {items} e WHERE 1 = 1{f}")
    };
    // ?1 query vector, ?2 exact below, ?3 candidates kept, ?4 the index's candidates.
    // The candidates' keys drive the outer loop (CROSS JOIN keeps that order): without it
    // SQLite scans every vector, or every match of the filter, and probes the list.
    let text = format!(
        "WITH n AS ({matches}), \
         candidates (key) AS ( \
            SELECT key FROM ( \
                SELECT v.key FROM {items} e JOIN {vectors} v ON v.item_id = e.id \
                WHERE 1 = 1{f} ORDER BY vector_distance_cos(v.embedding, ?1) \
                LIMIT (SELECT CASE WHEN matches <= ?2 THEN ?3 ELSE 0 END FROM n)) \
            UNION ALL \
            SELECT value FROM json_each((SELECT CASE WHEN matches > ?2 THEN ( \
                SELECT json_group_array(id) FROM vector_top_k('{vectors}_ann', ?1, ?4)) \
                ELSE '[]' END FROM n))) \
         SELECT e.id, e.encoding, e.payload, (SELECT matches FROM n) \
         FROM candidates c CROSS JOIN {vectors} v ON v.key = c.key \
         CROSS JOIN {items} e ON e.id = v.item_id \
         WHERE 1 = 1{f} ORDER BY vector_distance_cos(v.embedding, ?1) LIMIT ?3"
    );
    let k = i64::try_from(plan.k).unwrap_or(i64::MAX);
    let mut params = vec![
        Value::Blob(plan.vector.clone()),
        Value::Integer(plan.exact_below),
        Value::Integer(k.saturating_add(RERANK_MARGIN)),
        Value::Integer(SEARCH_BEAM),
    ];
    params.extend(filter.params.iter().cloned());
    Sql { text, params }
}

/// Creates the vector tables of a database whose dimension was recorded before they existed
/// (schema 5) and fills them from the stored payloads, inside the caller's transaction.
pub(crate) async fn backfill(conn: &libsql::Connection) -> Result<(), StorageError> {
    let mut rows = conn
        .query(crate::store::DIMENSION, ())
        .await
        .map_err(|e| db("reading the embedding dimension", e))?;
    let dimension = match rows
        .next()
        .await
        .map_err(|e| db("reading the embedding dimension", e))?
    {
        Some(row) => row
            .get::<i64>(0)
            .map_err(|e| db("reading the embedding dimension", e))?,
        None => return Ok(()),
    };
    drop(rows);
    let dimension = usize::try_from(dimension)
        .map_err(|_| StorageError::corrupt(format!("embedding dimension {dimension}")))?;
    conn.execute_batch(&create_sql(dimension))
        .await
        .map_err(|e| db("creating the vector tables", e))?;
    backfill_kind::<Episode>(conn).await?;
    backfill_kind::<Pattern>(conn).await
}

async fn backfill_kind<E: Table>(conn: &libsql::Connection) -> Result<(), StorageError> {
    let Some(vectors) = E::VECTORS else {
        return Ok(());
    };
    let mut after = Some(i64::MIN);
    while let Some(from) = after {
        let (page, next) = stored_page::<E>(conn, from).await?;
        after = next;
        let found: Vec<(Vec<u8>, Vec<u8>)> = page
            .into_iter()
            .filter_map(|(id, item)| item.embedding().map(|e| (id, blob(e))))
            .collect();
        for chunk in found.chunks(64) {
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|(id, v)| [Value::Blob(id.clone()), Value::Blob(v.clone())])
                .collect();
            conn.execute(&upsert_sql(vectors, chunk.len()), params)
                .await
                .map_err(|e| db("indexing a stored embedding", e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered(" AND e.domain = ? AND e.kind = ?", 6),
            " AND e.domain = ?6 AND e.kind = ?7"
        );
        assert_eq!(numbered("", 6), "");
    }
}
