//! The full-text indexes (schema 7): per searchable kind, a contentless FTS5 table of the
//! items' words ([`memory_core::text`]: the words joined by spaces, read back by FTS5's
//! `ascii` tokenizer, so that the store and the reference cut text the same way) and a key
//! table giving each item the integer key its FTS5 row carries. Writes keep both in step in
//! the item's transaction; triggers remove them with the item.
//!
//! A text search is one statement: the FTS5 `MATCH` of the query's words (each a quoted
//! string, so nothing in the user's text is an operator), joined to the items, filtered,
//! ranked by `bm25()`.

use libsql::Value;
use memory_core::{Episode, Pattern, StorageError};

use crate::error::db;
use crate::query::Sql;
use crate::schema::stored_page;
use crate::table::{Table, row_groups};
use crate::vectors::numbered;

/// Gives `rows` items a key (those that have one keep it).
pub(crate) fn keys_sql(keys: &str, rows: usize) -> String {
    format!(
        "INSERT INTO {keys} (item_id) VALUES {} ON CONFLICT (item_id) DO NOTHING",
        row_groups(rows, 1)
    )
}

/// Writes (or rewrites) the words of `rows` items `(item_id, words)`.
pub(crate) fn words_sql(fts: &str, keys: &str, rows: usize) -> String {
    format!(
        "INSERT OR REPLACE INTO {fts} (rowid, body) \
         SELECT k.key, v.column2 FROM (VALUES {}) AS v JOIN {keys} k ON k.item_id = v.column1",
        row_groups(rows, 2)
    )
}

/// The text search statement for items of `E`: rows `(id, encoding, payload, bm25)`, best
/// first (FTS5's `bm25()` is lower for better matches). Its placeholders are numbered from
/// `first` (1 when it stands alone; after another statement's in a hybrid search's
/// `query::both`): the `MATCH` expression, the limit, then `filter`'s `AND ...` terms on the
/// item table as `e`.
pub(crate) fn search_sql<E: Table>(
    fts: &str,
    keys: &str,
    filter: &Sql,
    expression: String,
    k: usize,
    first: usize,
) -> Sql {
    let items = E::TABLE;
    let (matched, limit) = (first, first + 1);
    let f = numbered(&filter.text, first + 2);
    // Unfiltered, FTS5 ranks alone and only the best `k` are joined to their items. (FTS5
    // still scores every match: a word most items hold costs tens of milliseconds per
    // 20,000 items, docs/BENCHMARKS.md.)
    let text = if filter.text.is_empty() {
        format!(
            "SELECT e.id, e.encoding, e.payload, t.rank FROM \
             (SELECT rowid, rank FROM {fts} WHERE {fts} MATCH ?{matched} ORDER BY rank \
             LIMIT ?{limit}) t \
             CROSS JOIN {keys} k ON k.key = t.rowid CROSS JOIN {items} e ON e.id = k.item_id \
             ORDER BY t.rank, e.id"
        )
    } else {
        format!(
            "SELECT e.id, e.encoding, e.payload, bm25({fts}) FROM {fts} \
             CROSS JOIN {keys} k ON k.key = {fts}.rowid CROSS JOIN {items} e ON e.id = k.item_id \
             WHERE {fts} MATCH ?{matched}{f} ORDER BY bm25({fts}), e.id LIMIT ?{limit}"
        )
    };
    let mut params = vec![
        Value::Text(expression),
        Value::Integer(i64::try_from(k).unwrap_or(i64::MAX)),
    ];
    params.extend(filter.params.iter().cloned());
    Sql { text, params }
}

/// Indexes the words of every stored episode and pattern (a database upgraded to schema 7),
/// inside the caller's transaction.
pub(crate) async fn backfill(conn: &libsql::Connection) -> Result<(), StorageError> {
    backfill_kind::<Episode>(conn).await?;
    backfill_kind::<Pattern>(conn).await
}

async fn backfill_kind<E: Table>(conn: &libsql::Connection) -> Result<(), StorageError> {
    let Some((fts, keys)) = E::TEXT else {
        return Ok(());
    };
    let mut after = Some(i64::MIN);
    while let Some(from) = after {
        let (page, next) = stored_page::<E>(conn, from).await?;
        after = next;
        let found: Vec<(Vec<u8>, String)> = page
            .into_iter()
            .filter_map(|(id, item)| item.indexed_text().map(|words| (id, words)))
            .collect();
        for chunk in found.chunks(64) {
            let ids: Vec<Value> = chunk
                .iter()
                .map(|(id, _)| Value::Blob(id.clone()))
                .collect();
            conn.execute(&keys_sql(keys, chunk.len()), ids)
                .await
                .map_err(|e| db("keying items to index", e))?;
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|(id, w)| [Value::Blob(id.clone()), Value::Text(w.clone())])
                .collect();
            conn.execute(&words_sql(fts, keys, chunk.len()), params)
                .await
                .map_err(|e| db("indexing an item's words", e))?;
        }
    }
    Ok(())
}
