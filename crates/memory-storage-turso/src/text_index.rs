//! The full-text indexes (schema 7): per searchable kind, a contentless FTS5 table of the
//! items' words ([`memory_core::text`]: the words joined by spaces, read back by FTS5's
//! `ascii` tokenizer, so that the store and the reference cut text the same way) and a key
//! table giving each item the integer key its FTS5 row carries. Writes keep both in step in
//! the item's transaction (through the kind's write view, or, for writes a local file's
//! writer commits together, by one write of the group's words before its commit:
//! [`PendingText`]); triggers remove them with the item.
//!
//! A text search is one statement: the FTS5 `MATCH` of the query's words (each a quoted
//! string, so nothing in the user's text is an operator), joined to the items, filtered,
//! ranked by `bm25()`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use libsql::Value;
use memory_core::{Episode, Pattern, StorageError};

use crate::error::db;
use crate::query::Sql;
use crate::schema::stored_page;
use crate::table::{Table, placeholders, row_groups};
use crate::vectors::numbered;

/// Gives those of `rows` ids that are stored in `items` a key (those that have one keep
/// it; an id no longer stored, deleted since its words were noted, gets none).
pub(crate) fn keys_sql(keys: &str, items: &str, rows: usize) -> String {
    format!(
        "INSERT INTO {keys} (item_id) SELECT id FROM {items} WHERE id IN ({}) \
         ON CONFLICT (item_id) DO NOTHING",
        placeholders(rows)
    )
}

/// The keys of those of `rows` ids that have one: rows `(item_id, key)`.
pub(crate) fn keys_of_sql(keys: &str, rows: usize) -> String {
    format!(
        "SELECT item_id, key FROM {keys} WHERE item_id IN ({})",
        placeholders(rows)
    )
}

/// Writes (or rewrites) the words of `rows` FTS5 rows `(key, words)`.
pub(crate) fn words_sql(fts: &str, rows: usize) -> String {
    format!(
        "INSERT OR REPLACE INTO {fts} (rowid, body) VALUES {}",
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
        // Matches are ranked on the filter's columns alone and only the best `k` joined to
        // their payloads (sorted with them, every match's payload was read and copied).
        format!(
            "SELECT e.id, e.encoding, e.payload, t.rank FROM \
             (SELECT e.id, bm25({fts}) AS rank FROM {fts} \
              CROSS JOIN {keys} k ON k.key = {fts}.rowid \
              CROSS JOIN {items} e ON e.id = k.item_id \
              WHERE {fts} MATCH ?{matched}{f} ORDER BY rank, e.id LIMIT ?{limit}) t \
             CROSS JOIN {items} e ON e.id = t.id ORDER BY t.rank, e.id"
        )
    };
    let mut params = vec![
        Value::Text(expression),
        Value::Integer(i64::try_from(k).unwrap_or(i64::MAX)),
    ];
    params.extend(filter.params.iter().cloned());
    Sql { text, params }
}

/// A searchable kind's item table, full-text table and key table.
pub(crate) type Tables = (&'static str, &'static str, &'static str);

/// Words noted for the index instead of written at once: inside a group commit each write
/// is a savepoint, and FTS5 writes its pending words as a segment of their own at every
/// savepoint, so twelve writes made twelve segments (and the merges of them). Noted, the
/// group's words are written by one statement per kind before its `COMMIT`
/// ([`write_pending`]): one segment per group, as a batch makes.
pub(crate) struct PendingText {
    pub(crate) tables: Tables,
    pub(crate) id: Vec<u8>,
    pub(crate) words: String,
}

/// Writes the words noted in `pending` (oldest first; an item noted twice gets its last
/// words), inside the caller's transaction. Items deleted since are skipped: only stored
/// items get a key, and words are written for keys only.
pub(crate) async fn write_pending(
    conn: &libsql::Connection,
    pending: Vec<PendingText>,
) -> Result<(), StorageError> {
    let mut rows: Vec<PendingText> = Vec::with_capacity(pending.len());
    let mut at: HashMap<(&str, Vec<u8>), usize> = HashMap::with_capacity(pending.len());
    for noted in pending {
        match at.entry((noted.tables.0, noted.id.clone())) {
            Entry::Occupied(row) => rows[*row.get()].words = noted.words,
            Entry::Vacant(row) => {
                row.insert(rows.len());
                rows.push(noted);
            }
        }
    }
    let mut kinds: Vec<Tables> = rows.iter().map(|r| r.tables).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for tables in kinds {
        let (of_kind, rest): (Vec<PendingText>, Vec<PendingText>) =
            rows.into_iter().partition(|r| r.tables == tables);
        rows = rest;
        let of_kind = of_kind.into_iter().map(|r| (r.id, r.words)).collect();
        write_words(conn, tables, of_kind).await?;
    }
    Ok(())
}

/// Rows a statement of [`write_words`] keys and indexes: FTS5 writes its pending words
/// out as a segment at every statement (each opens a savepoint), so the fewer statements,
/// the fewer segments and merges. 2 parameters a row stay far below SQLite's 32,766.
const WORDS_PER_STATEMENT: usize = 1_000;

/// Keys and indexes `rows` `(id, words)` of one kind, in chunks (statements prepared each
/// time: their text depends on the chunk's size). The words move into the statements'
/// parameters (a typical episode's are about 10 KB), never copied.
///
/// A chunk's words are written in key order: FTS5 also writes its pending words out
/// whenever a row's key is lower than the last one's, so a chunk in another order became
/// a segment every few rows (300 for a batch of 300 new items in descending id order, the
/// keys being given in id order: `tests/group_commit.rs`).
async fn write_words(
    conn: &libsql::Connection,
    (items, fts, keys): Tables,
    mut rows: Vec<(Vec<u8>, String)>,
) -> Result<(), StorageError> {
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(WORDS_PER_STATEMENT));
        let chunk = std::mem::replace(&mut rows, rest);
        let ids: Vec<Value> = chunk
            .iter()
            .map(|(id, _)| Value::Blob(id.clone()))
            .collect();
        conn.execute(&keys_sql(keys, items, chunk.len()), ids.clone())
            .await
            .map_err(|e| db("keying items to index", e))?;
        let mut found = HashMap::with_capacity(chunk.len());
        let mut keyed = conn
            .query(&keys_of_sql(keys, chunk.len()), ids)
            .await
            .map_err(|e| db("reading the keys of items to index", e))?;
        while let Some(row) = keyed
            .next()
            .await
            .map_err(|e| db("reading the keys of items to index", e))?
        {
            let id: Vec<u8> = row.get(0).map_err(|e| db("reading an item's key", e))?;
            let key: i64 = row.get(1).map_err(|e| db("reading an item's key", e))?;
            found.insert(id, key);
        }
        // An item deleted since its words were noted has no key: it gets no words.
        let mut words: Vec<(i64, String)> = chunk
            .into_iter()
            .filter_map(|(id, words)| found.get(&id).map(|&key| (key, words)))
            .collect();
        if words.is_empty() {
            continue;
        }
        words.sort_unstable_by_key(|(key, _)| *key);
        let rows_in_chunk = words.len();
        let params: Vec<Value> = words
            .into_iter()
            .flat_map(|(key, words)| [Value::Integer(key), Value::Text(words)])
            .collect();
        conn.execute(&words_sql(fts, rows_in_chunk), params)
            .await
            .map_err(|e| db("indexing items' words", e))?;
    }
    Ok(())
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
        write_words(conn, (E::TABLE, fts, keys), found).await?;
    }
    Ok(())
}
