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
/// the re-rank in `f64`; near ties at the boundary must not fall out). Equal distances are
/// ordered by id on both sides, so only distances within `f32`'s rounding of each other
/// can swap; each candidate kept is one more payload to decode (plans/0014: 4 against 16
/// took a search of typical episodes from about 5.0 to 3.9 ms).
const RERANK_MARGIN: i64 = 4;

/// The statements that create the vector tables of a store whose embeddings have
/// `dimension` values (idempotent): per kind the table, its index, and its domain buckets
/// ([`bucket_sql`]).
pub(crate) fn create_sql(dimension: usize) -> String {
    let settings = index_settings(dimension);
    KINDS
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
            END;
            {}",
                bucket_sql(table, items, dimension, settings)
            )
        })
        .concat()
}

/// Tables of domain buckets beside each kind's vector table.
///
/// Why: libSQL's `vector_top_k` returns at most its beam (100) of candidates, so a search
/// filtered to one domain saw only that domain's share of them, and recall@10 fell to 0.85
/// when a domain held a third of 100,000 episodes (plans/0014). Each domain is given one of
/// [`DOMAIN_BUCKETS`] buckets when its first vector is written (in turn: the first eight
/// domains each have one of their own), and each bucket holds a copy of its domains'
/// vectors, keyed like the kind's table, under an index of its own; a domain-filtered
/// search asks its bucket's index. Triggers keep the buckets in step with the vector table
/// and with an item's domain, in the write's transaction; writes send no extra statement.
fn bucket_sql(table: &str, items: &str, dimension: usize, settings: &str) -> String {
    let each = |f: &dyn Fn(usize) -> String| (0..DOMAIN_BUCKETS).map(f).collect::<String>();
    // The bucket of the domain of the item `id`.
    let bucket_of = |new_item_id: &str| {
        format!(
            "(SELECT b.bucket FROM {items} i JOIN {table}_domains b ON b.domain = i.domain \
             WHERE i.id = {new_item_id})"
        )
    };
    let assign = |new_item_id: &str| {
        format!(
            "INSERT INTO {table}_domains (domain, bucket) \
             SELECT i.domain, (SELECT COUNT(*) FROM {table}_domains) % {DOMAIN_BUCKETS} \
             FROM {items} i WHERE i.id = {new_item_id} AND NOT EXISTS \
             (SELECT 1 FROM {table}_domains b WHERE b.domain = i.domain);"
        )
    };
    let tables = each(&|b| {
        format!(
            "CREATE TABLE IF NOT EXISTS {table}_b{b} (
                key INTEGER PRIMARY KEY,
                embedding F32_BLOB({dimension}) NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {table}_b{b}_ann
                ON {table}_b{b} (libsql_vector_idx(embedding, {settings}));"
        )
    });
    let insert = each(&|b| {
        format!(
            "INSERT INTO {table}_b{b} (key, embedding) SELECT NEW.key, NEW.embedding \
             WHERE {} = {b};",
            bucket_of("NEW.item_id")
        )
    });
    let update = each(&|b| {
        format!("UPDATE {table}_b{b} SET embedding = NEW.embedding WHERE key = NEW.key;")
    });
    let delete = each(&|b| format!("DELETE FROM {table}_b{b} WHERE key = OLD.key;"));
    let leave = each(&|b| {
        format!(
            "DELETE FROM {table}_b{b} WHERE key = (SELECT key FROM {table} WHERE item_id = NEW.id);"
        )
    });
    let join = each(&|b| {
        format!(
            "INSERT INTO {table}_b{b} (key, embedding) SELECT key, embedding FROM {table} \
             WHERE item_id = NEW.id AND {} = {b};",
            bucket_of("NEW.id")
        )
    });
    format!(
        "CREATE TABLE IF NOT EXISTS {table}_domains (
            domain TEXT PRIMARY KEY NOT NULL,
            bucket INTEGER NOT NULL
        );
        {tables}
        CREATE TRIGGER IF NOT EXISTS {table}_bucket_insert AFTER INSERT ON {table}
        BEGIN {} {insert} END;
        CREATE TRIGGER IF NOT EXISTS {table}_bucket_update AFTER UPDATE OF embedding ON {table}
        BEGIN {update} END;
        CREATE TRIGGER IF NOT EXISTS {table}_bucket_delete AFTER DELETE ON {table}
        BEGIN {delete} END;
        CREATE TRIGGER IF NOT EXISTS {table}_bucket_move AFTER UPDATE OF domain ON {items}
        WHEN OLD.domain IS NOT NEW.domain
        BEGIN {} {leave} {join} END;",
        assign("NEW.item_id"),
        assign("NEW.id"),
    )
}

/// Each searchable kind's vector table and item table.
const KINDS: [(&str, &str); 2] = [
    ("episode_vectors", "episodes"),
    ("pattern_vectors", "patterns"),
];

/// Domain buckets per kind (see [`bucket_sql`]).
pub(crate) const DOMAIN_BUCKETS: usize = 8;

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
    /// The filter's domain, whose bucket's index is asked rather than the kind's.
    pub(crate) domain: Option<String>,
}

/// The search statement for items of `E` whose table is `vectors`: rows `(id, encoding,
/// payload, matches)` of the candidates, nearest first, where `matches` is how many items
/// the filter matched, counted up to one past the larger of `exact below` and the
/// candidates kept (for an unfiltered search, an upper bound of the vectors stored).
/// `filter` holds `AND ...` terms on the item table as `e` with `?` placeholders.
pub(crate) fn search_sql<E: Table>(vectors: &str, filter: &Sql, plan: &Plan) -> Sql {
    let items = E::TABLE;
    // ?1 query vector, ?2 exact below, ?3 candidates kept, ?4 the index's candidates, ?5
    // the domain when the filter names one; then the filter's own.
    let first = if plan.domain.is_some() { 6 } else { 5 };
    let f = numbered(&filter.text, first);
    let matches = if filter.text.is_empty() {
        format!("SELECT COALESCE(MAX(key), 0) AS matches FROM {vectors}")
    } else {
        // Counted only as far as the choice needs (a third of 100,000 episodes took
        // milliseconds to count): past `exact below` and past the candidates kept, so
        // that "fewer candidates than matches" still holds when the count stops.
        format!(
            "SELECT COUNT(*) AS matches FROM (SELECT 1 FROM {items} e WHERE 1 = 1{f} \
             LIMIT MAX(MIN(?2, 1000000000), ?3) + 1)"
        )
    };
    // A domain's bucket has its own index; a domain without one (no vector yet) has no
    // vector to find, and the kind's index answers.
    let index = if plan.domain.is_some() {
        format!(
            "COALESCE((SELECT '{vectors}_b' || bucket || '_ann' FROM {vectors}_domains \
             WHERE domain = ?5), '{vectors}_ann')"
        )
    } else {
        format!("'{vectors}_ann'")
    };
    // The candidates kept are ranked on their vectors (and the filter's columns) alone;
    // only they are joined to their payloads. Sorted with their payloads, every candidate's
    // payload was read and copied, a hundred where ten are kept.
    let filtered = if filter.text.is_empty() {
        String::new()
    } else {
        format!("CROSS JOIN {items} e ON e.id = v.item_id WHERE 1 = 1{f}")
    };
    // The candidates' keys drive the outer loop (CROSS JOIN keeps that order): without it
    // SQLite scans every vector, or every match of the filter, and probes the list.
    let text = format!(
        "WITH n AS ({matches}), \
         candidates (key) AS ( \
            SELECT key FROM ( \
                SELECT v.key FROM {items} e JOIN {vectors} v ON v.item_id = e.id \
                WHERE 1 = 1{f} ORDER BY vector_distance_cos(v.embedding, ?1), e.id \
                LIMIT (SELECT CASE WHEN matches <= ?2 THEN ?3 ELSE 0 END FROM n)) \
            UNION ALL \
            SELECT value FROM json_each((SELECT CASE WHEN matches > ?2 THEN ( \
                SELECT json_group_array(id) FROM vector_top_k({index}, ?1, ?4)) \
                ELSE '[]' END FROM n))), \
         kept (id, distance) AS MATERIALIZED ( \
            SELECT v.item_id, vector_distance_cos(v.embedding, ?1) AS distance \
            FROM candidates c CROSS JOIN {vectors} v ON v.key = c.key {filtered} \
            ORDER BY distance, v.item_id LIMIT ?3) \
         SELECT e.id, e.encoding, e.payload, (SELECT matches FROM n) \
         FROM kept k CROSS JOIN {items} e ON e.id = k.id ORDER BY k.distance, k.id"
    );
    let k = i64::try_from(plan.k).unwrap_or(i64::MAX);
    let mut params = vec![
        Value::Blob(plan.vector.clone()),
        Value::Integer(plan.exact_below),
        Value::Integer(k.saturating_add(RERANK_MARGIN)),
        Value::Integer(SEARCH_BEAM),
    ];
    if let Some(domain) = &plan.domain {
        params.push(Value::Text(domain.clone()));
    }
    params.extend(filter.params.iter().cloned());
    Sql { text, params }
}

/// Creates the vector tables of a database whose dimension was recorded before they existed
/// (schema 5) and fills them from the stored payloads, inside the caller's transaction.
pub(crate) async fn backfill(conn: &libsql::Connection) -> Result<(), StorageError> {
    if !create_if_recorded(conn).await? {
        return Ok(());
    }
    backfill_kind::<Episode>(conn).await?;
    backfill_kind::<Pattern>(conn).await
}

/// Gives a store that has vector tables (schema 8 and before) its domain buckets, filled
/// from the vector tables, inside the caller's transaction (schema 9). Every stored vector
/// is inserted into one more index, so this takes about as long as writing them did.
pub(crate) async fn add_buckets(conn: &libsql::Connection) -> Result<(), StorageError> {
    if !create_if_recorded(conn).await? {
        return Ok(());
    }
    for (table, items) in KINDS {
        let fill = (0..DOMAIN_BUCKETS)
            .map(|b| {
                format!(
                    "INSERT OR IGNORE INTO {table}_b{b} (key, embedding) \
                     SELECT v.key, v.embedding FROM {table} v \
                     JOIN {items} i ON i.id = v.item_id \
                     JOIN {table}_domains d ON d.domain = i.domain WHERE d.bucket = {b};"
                )
            })
            .collect::<String>();
        conn.execute_batch(&format!(
            "INSERT INTO {table}_domains (domain, bucket) \
             SELECT domain, (ROW_NUMBER() OVER (ORDER BY domain) - 1) % {DOMAIN_BUCKETS} \
             FROM (SELECT DISTINCT i.domain FROM {items} i JOIN {table} v ON v.item_id = i.id \
                   WHERE i.domain NOT IN (SELECT domain FROM {table}_domains)); \
             {fill}"
        ))
        .await
        .map_err(|e| db("filling the domain buckets", e))?;
    }
    Ok(())
}

/// Creates whatever vector tables and buckets a store that recorded a dimension lacks;
/// false if it recorded none.
async fn create_if_recorded(conn: &libsql::Connection) -> Result<bool, StorageError> {
    let Some(dimension) = recorded_dimension(conn).await? else {
        return Ok(false);
    };
    conn.execute_batch(&create_sql(dimension))
        .await
        .map_err(|e| db("creating the vector tables", e))?;
    Ok(true)
}

/// The store's embedding dimension, if one is recorded.
async fn recorded_dimension(conn: &libsql::Connection) -> Result<Option<usize>, StorageError> {
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
        None => return Ok(None),
    };
    usize::try_from(dimension)
        .map(Some)
        .map_err(|_| StorageError::corrupt(format!("embedding dimension {dimension}")))
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
