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
//! candidates (over-fetched by the filter's selectivity) are filtered. Either way the
//! candidates are re-ranked exactly in `f64` by the caller. Only the chosen path runs:
//! the other's row limit is 0, or its index lookup sits in a `CASE` branch not taken.

use libsql::Value;
use memory_core::{Embedding, Episode, Pattern, StorageError};

use crate::error::db;
use crate::payload::decode;
use crate::query::Sql;
use crate::table::{Table, placeholders, row_groups};

/// The vector index's settings. Neighbours compressed to 8 bits per value: as good as
/// `f32` neighbours for recall on the conformance set (1-bit neighbours fall to 0.83 at 32
/// dimensions) and about 3x faster to insert. A search beam of 100 (libSQL's default 200)
/// halves a search (5.4 -> 2.5 ms on 3,000 vectors here) with the recall still at the
/// conformance bar (plans/0014). Candidates are re-ranked with the stored `f32` vectors
/// whatever the index holds.
const INDEX_SETTINGS: &str = "'metric=cosine', 'compress_neighbors=float8', 'max_neighbors=32', 'insert_l=40', 'search_l=100'";

/// The most candidates one search asks the index for.
const MAX_FETCH: i64 = 1_000;

/// Candidates kept beyond `k` for the exact re-rank (SQLite computes distances in `f32`,
/// the re-rank in `f64`; near ties at the boundary must not fall out).
const RERANK_MARGIN: i64 = 16;

/// The statements that create the vector tables of a store whose embeddings have
/// `dimension` values (idempotent).
pub(crate) fn create_sql(dimension: usize) -> String {
    let mut sql = String::new();
    for (table, items) in [
        ("episode_vectors", "episodes"),
        ("pattern_vectors", "patterns"),
    ] {
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                key INTEGER PRIMARY KEY,
                item_id BLOB NOT NULL UNIQUE,
                embedding F32_BLOB({dimension}) NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {table}_ann
                ON {table} (libsql_vector_idx(embedding, {INDEX_SETTINGS}));
            CREATE TRIGGER IF NOT EXISTS {table}_follow AFTER DELETE ON {items}
            BEGIN
                DELETE FROM {table} WHERE item_id = OLD.id;
            END;"
        ));
    }
    sql
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
fn numbered(text: &str, first: usize) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = first;
    for c in text.chars() {
        if c == '?' {
            out.push_str(&format!("?{n}"));
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
    let f = numbered(&filter.text, 6);
    let matches = if filter.text.is_empty() {
        format!("SELECT COALESCE(MAX(key), 0) AS matches FROM {vectors}")
    } else {
        format!("SELECT COUNT(*) AS matches FROM {items} e WHERE 1 = 1{f}")
    };
    // ?1 query vector, ?2 exact below, ?3 candidates kept, ?4 k, ?5 most fetched.
    // The candidates' keys drive the outer loop (CROSS JOIN keeps that order): without it
    // SQLite scans every vector, or every match of the filter, and probes the list.
    let text = format!(
        "WITH n AS ({matches}), total AS (SELECT COALESCE(MAX(key), 0) AS t FROM {vectors}), \
         candidates (key) AS ( \
            SELECT key FROM ( \
                SELECT v.key FROM {items} e JOIN {vectors} v ON v.item_id = e.id \
                WHERE 1 = 1{f} ORDER BY vector_distance_cos(v.embedding, ?1) \
                LIMIT (SELECT CASE WHEN matches <= ?2 THEN ?3 ELSE 0 END FROM n)) \
            UNION ALL \
            SELECT value FROM json_each((SELECT CASE WHEN matches > ?2 THEN ( \
                SELECT json_group_array(id) FROM vector_top_k('{vectors}_ann', ?1, \
                    (SELECT MIN(?5, ?3 + ?4 + 4 * ?4 * (t - matches) / MAX(matches, 1)) \
                     FROM n, total))) \
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
        Value::Integer(k),
        Value::Integer(MAX_FETCH),
    ];
    params.extend(filter.params.iter().cloned());
    Sql { text, params }
}

/// Rows read per step of [`backfill`].
const BACKFILL_ROWS: i64 = 512;

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
    let select = format!(
        "SELECT rowid, id, encoding, payload FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        E::TABLE
    );
    let mut after = i64::MIN;
    loop {
        let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut read = 0;
        let mut rows = conn
            .query(&select, libsql::params![after, BACKFILL_ROWS])
            .await
            .map_err(|e| db("reading items to index", e))?;
        while let Some(row) = rows
            .next()
            .await
            .map_err(|e| db("reading items to index", e))?
        {
            read += 1;
            after = row.get(0).map_err(|e| db("reading a rowid", e))?;
            let id: Vec<u8> = row.get(1).map_err(|e| db("reading an id", e))?;
            let encoding: i64 = row.get(2).map_err(|e| db("reading an encoding", e))?;
            let payload: Vec<u8> = row.get(3).map_err(|e| db("reading a payload", e))?;
            let item: E = decode(encoding, &payload, format_args!("{} row {after}", E::KIND))?;
            if let Some(embedding) = item.embedding() {
                found.push((id, blob(embedding)));
            }
        }
        drop(rows);
        for chunk in found.chunks(64) {
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|(id, v)| [Value::Blob(id.clone()), Value::Blob(v.clone())])
                .collect();
            conn.execute(&upsert_sql(vectors, chunk.len()), params)
                .await
                .map_err(|e| db("indexing a stored embedding", e))?;
        }
        if read < BACKFILL_ROWS {
            return Ok(());
        }
    }
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
