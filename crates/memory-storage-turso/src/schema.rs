//! The schema and its forward-only, numbered migrations, run at open.
//!
//! Each entity table holds the columns queries filter and order on, plus the encoded
//! payload as a BLOB (`encoding` says whether it is zstd-compressed). Episode tags and
//! metadata live in side tables keyed for lookup, so tag and metadata filters use indexes.

use libsql::{Connection, TransactionBehavior};
use memory_core::{ErrorKind, StorageError, Timestamp};

use crate::error::db;
use crate::payload::decode;
use crate::table::Table;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 9;

/// Migration `n` (1-based) takes the schema from version `n - 1` to `n`.
const MIGRATIONS: &[&str] = &[
    // 1: the entity tables and their indexes.
    "CREATE TABLE episodes (
        id BLOB PRIMARY KEY NOT NULL,
        start_time INTEGER NOT NULL,
        domain TEXT NOT NULL,
        task_type TEXT NOT NULL,
        outcome TEXT,
        encoding INTEGER NOT NULL,
        payload BLOB NOT NULL
    );
    CREATE INDEX episodes_by_start ON episodes (start_time DESC, id DESC);
    CREATE INDEX episodes_by_domain ON episodes (domain, start_time DESC, id DESC);
    CREATE INDEX episodes_by_task_type ON episodes (task_type, start_time DESC, id DESC);
    CREATE INDEX episodes_by_outcome ON episodes (outcome, start_time DESC, id DESC);
    CREATE TABLE episode_tags (
        tag TEXT NOT NULL,
        episode_id BLOB NOT NULL REFERENCES episodes (id) ON DELETE CASCADE,
        PRIMARY KEY (tag, episode_id)
    ) WITHOUT ROWID;
    CREATE INDEX episode_tags_by_episode ON episode_tags (episode_id);
    CREATE TABLE episode_metadata (
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        episode_id BLOB NOT NULL REFERENCES episodes (id) ON DELETE CASCADE,
        PRIMARY KEY (key, value, episode_id)
    ) WITHOUT ROWID;
    CREATE INDEX episode_metadata_by_episode ON episode_metadata (episode_id);
    CREATE TABLE patterns (
        id BLOB PRIMARY KEY NOT NULL,
        kind TEXT NOT NULL,
        domain TEXT NOT NULL,
        success_rate REAL NOT NULL,
        encoding INTEGER NOT NULL,
        payload BLOB NOT NULL
    );
    CREATE INDEX patterns_by_rate ON patterns (success_rate DESC, id);
    CREATE INDEX patterns_by_kind ON patterns (kind, success_rate DESC, id);
    CREATE INDEX patterns_by_domain ON patterns (domain, success_rate DESC, id);
    CREATE TABLE heuristics (
        id BLOB PRIMARY KEY NOT NULL,
        encoding INTEGER NOT NULL,
        payload BLOB NOT NULL
    );",
    // 2: a generation bumped by every write transaction, the cheap change signal cached
    // readers of a shared (remote) database poll.
    "CREATE TABLE store_generation (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation INTEGER NOT NULL
    );
    INSERT INTO store_generation (id, generation) VALUES (1, 0);",
    // 3: the write log: each write transaction leaves its random token beside the generation
    // it produced (a trigger, so the write's statement count is unchanged), so that a writer
    // whose commit answer was lost can read whether it applied. The newest 65,536 are kept.
    "ALTER TABLE store_generation ADD COLUMN token BLOB;
    CREATE TABLE write_log (
        generation INTEGER PRIMARY KEY,
        token BLOB NOT NULL
    );
    CREATE INDEX write_log_by_token ON write_log (token);
    CREATE TRIGGER store_generation_logged AFTER UPDATE OF generation ON store_generation
    BEGIN
        INSERT INTO write_log (generation, token) VALUES (NEW.generation, NEW.token);
        DELETE FROM write_log WHERE generation <= NEW.generation - 65536;
    END;",
    // 4: the change feed: what each write changed (memory_core::feed), recorded by the same
    // trigger from the columns the write sets beside its token, so other processes' and
    // clients' caches drop exactly that. Kept: the newest 4,096 writes and none older than an
    // hour, trimmed a few of the oldest per write (a range scan on the key, never a full
    // one). A write that sets no changes leaves a gap, which readers treat as "anything".
    "CREATE TABLE change_feed (
        generation INTEGER PRIMARY KEY,
        at_micros INTEGER NOT NULL,
        changes BLOB NOT NULL
    );
    ALTER TABLE store_generation ADD COLUMN changes BLOB;
    ALTER TABLE store_generation ADD COLUMN at_micros INTEGER;
    DROP TRIGGER store_generation_logged;
    CREATE TRIGGER store_generation_logged AFTER UPDATE OF generation ON store_generation
    BEGIN
        INSERT INTO write_log (generation, token) VALUES (NEW.generation, NEW.token);
        DELETE FROM write_log WHERE generation <= NEW.generation - 65536;
        INSERT INTO change_feed (generation, at_micros, changes)
            SELECT NEW.generation, NEW.at_micros, NEW.changes
            WHERE NEW.changes IS NOT NULL AND NEW.at_micros IS NOT NULL;
        DELETE FROM change_feed WHERE generation IN (
                SELECT generation FROM change_feed ORDER BY generation LIMIT 4)
            AND (generation <= NEW.generation - 4096
                OR at_micros < NEW.at_micros - 3600000000);
    END;",
    // 5: store-wide settings: the dimension every embedding has, fixed by the first write
    // of an item with one (in that write's transaction).
    "CREATE TABLE store_settings (
        key TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    );",
    // 6: the vector tables (crate::vectors), created when the dimension is fixed; a
    // database that recorded one under schema 5 gets them here, filled from the payloads
    // (`vectors::backfill`, in this migration's transaction).
    "SELECT 1;",
    // 7: full-text indexes (crate::text_index): per kind, a key table (an INTEGER PRIMARY
    // KEY, so that `VACUUM` keeps the keys FTS5 rows carry) and a contentless FTS5 table of
    // the items' words. Searchable items are written through a view whose trigger upserts
    // the row and indexes its words, so that a write sends the statements it sent before;
    // triggers remove both with the item. Existing items are indexed from their payloads
    // in this migration's transaction (`text_index::backfill`).
    "CREATE TABLE episode_text_keys (
        key INTEGER PRIMARY KEY,
        item_id BLOB NOT NULL UNIQUE
    );
    CREATE VIRTUAL TABLE episode_text USING fts5(
        body, content = '', contentless_delete = 1, tokenize = 'ascii'
    );
    CREATE VIEW episodes_in AS
        SELECT id, start_time, domain, task_type, outcome, encoding, payload, NULL AS body
        FROM episodes WHERE 0;
    CREATE TRIGGER episodes_in_write INSTEAD OF INSERT ON episodes_in
    BEGIN
        INSERT INTO episodes (id, start_time, domain, task_type, outcome, encoding, payload)
            VALUES (NEW.id, NEW.start_time, NEW.domain, NEW.task_type, NEW.outcome,
                    NEW.encoding, NEW.payload)
            ON CONFLICT (id) DO UPDATE SET start_time = excluded.start_time,
                domain = excluded.domain, task_type = excluded.task_type,
                outcome = excluded.outcome, encoding = excluded.encoding,
                payload = excluded.payload;
        INSERT INTO episode_text_keys (item_id) VALUES (NEW.id)
            ON CONFLICT (item_id) DO NOTHING;
        INSERT OR REPLACE INTO episode_text (rowid, body)
            SELECT key, NEW.body FROM episode_text_keys WHERE item_id = NEW.id;
    END;
    CREATE TRIGGER episode_text_follow AFTER DELETE ON episodes
    BEGIN
        DELETE FROM episode_text
            WHERE rowid = (SELECT key FROM episode_text_keys WHERE item_id = OLD.id);
        DELETE FROM episode_text_keys WHERE item_id = OLD.id;
    END;
    CREATE TABLE pattern_text_keys (
        key INTEGER PRIMARY KEY,
        item_id BLOB NOT NULL UNIQUE
    );
    CREATE VIRTUAL TABLE pattern_text USING fts5(
        body, content = '', contentless_delete = 1, tokenize = 'ascii'
    );
    CREATE VIEW patterns_in AS
        SELECT id, kind, domain, success_rate, encoding, payload, NULL AS body
        FROM patterns WHERE 0;
    CREATE TRIGGER patterns_in_write INSTEAD OF INSERT ON patterns_in
    BEGIN
        INSERT INTO patterns (id, kind, domain, success_rate, encoding, payload)
            VALUES (NEW.id, NEW.kind, NEW.domain, NEW.success_rate, NEW.encoding,
                    NEW.payload)
            ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, domain = excluded.domain,
                success_rate = excluded.success_rate, encoding = excluded.encoding,
                payload = excluded.payload;
        INSERT INTO pattern_text_keys (item_id) VALUES (NEW.id)
            ON CONFLICT (item_id) DO NOTHING;
        INSERT OR REPLACE INTO pattern_text (rowid, body)
            SELECT key, NEW.body FROM pattern_text_keys WHERE item_id = NEW.id;
    END;
    CREATE TRIGGER pattern_text_follow AFTER DELETE ON patterns
    BEGIN
        DELETE FROM pattern_text
            WHERE rowid = (SELECT key FROM pattern_text_keys WHERE item_id = OLD.id);
        DELETE FROM pattern_text_keys WHERE item_id = OLD.id;
    END;",
    // 8: no full-text merges triggered by deletes. With FTS5's default ('deletemerge' 10),
    // a delete or rewrite that took a level past 10 % deleted rows merged that whole level
    // inside its transaction: prune's deletes of typical episodes took up to 105 ms where
    // their size alone took 20 (docs/BENCHMARKS.md). Deleted rows are dropped by the merges
    // that writes do anyway. (A setting of the FTS5 table, kept in its config table.)
    "INSERT INTO episode_text (episode_text, rank) VALUES ('deletemerge', 0);
    INSERT INTO pattern_text (pattern_text, rank) VALUES ('deletemerge', 0);",
    // 9: domain buckets beside the vector tables (crate::vectors::bucket_sql: a domain-
    // filtered similarity search asks an index holding its domain's vectors); a store that
    // has vector tables gets them here, filled from them (`vectors::add_buckets`, in this
    // migration's transaction).
    "SELECT 1;",
];

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY NOT NULL,
    applied_at_micros INTEGER NOT NULL
)";

/// Brings the database to [`SCHEMA_VERSION`]; refuses one written by a newer version.
pub(crate) async fn migrate(conn: &Connection) -> Result<i64, StorageError> {
    migrate_to(conn, SCHEMA_VERSION).await
}

/// Brings the database to `target` (tests build old databases with it).
///
/// Safe against other openers of the same new database (processes on one file, clients of
/// one server): the version is read again inside the immediate transaction that applies
/// the migrations, so exactly one opener applies each and the others find it applied. An
/// up-to-date database is only read, never write-locked.
pub async fn migrate_to(conn: &Connection, target: i64) -> Result<i64, StorageError> {
    if has_version_table(conn).await? {
        let current = version(conn).await?;
        refuse_newer(current)?;
        if current >= target {
            return Ok(current);
        }
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .await
        .map_err(|e| db("beginning the schema migration", e))?;
    tx.execute(VERSION_TABLE, ())
        .await
        .map_err(|e| db("creating the schema version table", e))?;
    let current = version(&tx).await?;
    refuse_newer(current)?;
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let number = index as i64 + 1;
        if number <= current || number > target {
            continue;
        }
        let context = |what: &str| format!("applying schema migration {number}: {what}");
        tx.execute_batch(sql)
            .await
            .map_err(|e| db(&context("schema change"), e))?;
        if number == 6 {
            crate::vectors::backfill(&tx).await?;
        }
        if number == 7 {
            crate::text_index::backfill(&tx).await?;
        }
        if number == 9 {
            crate::vectors::add_buckets(&tx).await?;
        }
        tx.execute(
            "INSERT INTO schema_version (version, applied_at_micros) VALUES (?1, ?2)",
            libsql::params![number, Timestamp::now().as_micros()],
        )
        .await
        .map_err(|e| db(&context("version row"), e))?;
    }
    // Every migration and its version row commit together, or none does.
    tx.commit()
        .await
        .map_err(|e| db("committing the schema migration", e))?;
    version(conn).await
}

async fn has_version_table(conn: &Connection) -> Result<bool, StorageError> {
    let mut rows = conn
        .query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            (),
        )
        .await
        .map_err(|e| db("looking for the schema version table", e))?;
    Ok(rows
        .next()
        .await
        .map_err(|e| db("looking for the schema version table", e))?
        .is_some())
}

fn refuse_newer(current: i64) -> Result<(), StorageError> {
    if current > SCHEMA_VERSION {
        return Err(StorageError::new(
            ErrorKind::Corrupt,
            format!(
                "the database has schema version {current}, newer than the {SCHEMA_VERSION} \
                 this build understands; upgrade the library instead of opening it"
            ),
        ));
    }
    Ok(())
}

/// The schema version recorded in the database (0: empty).
pub(crate) async fn version(conn: &Connection) -> Result<i64, StorageError> {
    let mut rows = conn
        .query("SELECT COALESCE(MAX(version), 0) FROM schema_version", ())
        .await
        .map_err(|e| db("reading the schema version", e))?;
    let row = rows
        .next()
        .await
        .map_err(|e| db("reading the schema version", e))?
        .ok_or_else(|| StorageError::corrupt("the schema version query returned no row"))?;
    row.get::<i64>(0)
        .map_err(|e| db("reading the schema version", e))
}

/// Rows read per step of a backfill.
const BACKFILL_ROWS: i64 = 512;

/// Every stored item of `E` with its id bytes, a page of [`BACKFILL_ROWS`] at a time after
/// rowid `after`: the page and the rowid to continue after (`None`: that was the last).
/// A migration's backfill reads the payloads through it.
pub(crate) async fn stored_page<E: Table>(
    conn: &Connection,
    after: i64,
) -> Result<(Vec<(Vec<u8>, E)>, Option<i64>), StorageError> {
    let select = format!(
        "SELECT rowid, id, encoding, payload FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        E::TABLE
    );
    let mut page = Vec::new();
    let mut last = after;
    let mut rows = conn
        .query(&select, libsql::params![after, BACKFILL_ROWS])
        .await
        .map_err(|e| db("reading items to index", e))?;
    while let Some(row) = rows
        .next()
        .await
        .map_err(|e| db("reading items to index", e))?
    {
        last = row.get(0).map_err(|e| db("reading a rowid", e))?;
        let id: Vec<u8> = row.get(1).map_err(|e| db("reading an id", e))?;
        let encoding: i64 = row.get(2).map_err(|e| db("reading an encoding", e))?;
        let payload: Vec<u8> = row.get(3).map_err(|e| db("reading a payload", e))?;
        let item: E = decode(encoding, &payload, format_args!("{} row {last}", E::KIND))?;
        page.push((id, item));
    }
    let more = page.len() as i64 == BACKFILL_ROWS;
    Ok((page, more.then_some(last)))
}
