//! [`RedbStorage`]: every [`StorageBackend`] operation on one redb file.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use memory_core::feed::{ChangesSince, FeedGap};
use memory_core::search::{EpisodeSearch, PatternSearch, Scored};
use memory_core::{
    ChangeSignal, Entity, Episode, EpisodeId, EpisodePage, EpisodeQuery, ErrorKind, Heuristic,
    HeuristicId, Pattern, PatternId, PatternQuery, Problem, Result, StorageBackend, StorageError,
    ValidationError, validate_batch, validate_ids,
};
use memory_storage_cached::{CacheSettings, CachedStorage, ConfigError};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle};

use crate::error::{db, open};
use crate::tables::{
    self, EPISODES, EPISODES_BY_DOMAIN, EPISODES_BY_START, FORMAT_KEY, FORMAT_VERSION, META,
    PATTERNS, PATTERNS_BY_DOMAIN, PATTERNS_BY_KIND, POSITION_KEY, Row,
};
use crate::vectors::{Searched, Vectors};

const NO_ID: [u8; 16] = [0; 16];
/// Searches among at most this many items (after filters) score every one exactly; above
/// it the graph proposes the candidates (as in the in-memory store).
const EXACT_SEARCH_BELOW: usize = memory_core::EXACT_SEARCH_BELOW;
const ALL_ID: [u8; 16] = [0xff; 16];

/// An episodic-memory store in one redb file. Every write is one write transaction,
/// committed durably (fsync) before it returns; a batch is all-or-nothing; secondary
/// indexes change in the same transaction as the items. redb locks the file: a second
/// handle, in this process or another, gets an [`ErrorKind::Locked`] error naming the path.
///
/// ```
/// use memory_core::{Episode, StorageBackend, TaskContext, TaskType};
/// use memory_storage_redb::RedbStorage;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let store = RedbStorage::open(dir.path().join("memory.redb"))?;
/// let episode = Episode::new(TaskType::Testing, "run the suite", TaskContext::new("cli"));
/// store.store_episode(&episode).await?;
/// assert_eq!(store.get_episode(episode.id).await?.as_deref(), Some(&episode));
/// // The file is locked while `store` lives.
/// let again = RedbStorage::open(dir.path().join("memory.redb")).err().unwrap();
/// assert_eq!(again.kind(), memory_core::ErrorKind::Locked);
/// # Ok::<(), anyhow::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RedbStorage {
    db: Arc<Database>,
    path: Arc<PathBuf>,
    /// Similarity search's graphs, built by the first search that needs one.
    vectors: Arc<Vectors>,
}

impl std::fmt::Debug for RedbStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStorage")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStorage {
    /// Opens the store in the file at `path`, creating it if it does not exist. A file of
    /// another program, or of a newer format, is refused, never rewritten.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str().is_empty() || path.file_name().is_none() {
            return Err(ValidationError::new(
                "path",
                Problem::Invalid(format!("{} names no file", path.display())),
            )
            .into());
        }
        if !path.exists() {
            create_whole(&path)?;
        }
        let db = contained(&path, "opening", || {
            let db = Database::create(&path).map_err(|e| open(&path, e))?;
            check_format(&db, &path)?;
            Ok(db)
        })?;
        Ok(RedbStorage {
            db: Arc::new(db),
            path: Arc::new(path),
            vectors: Arc::default(),
        })
    }

    /// Opens the store at `path` behind the shared caches of `memory-storage-cached`, as
    /// `settings` say (disabled: the bare store). redb's lock keeps other processes out of
    /// the file; the cache watches the store's change position for writes made in this
    /// process past it (through the bare handle, a clone of it or another cache on it).
    ///
    /// ```
    /// use memory_storage_cached::{CacheSettings, CachedStorage, ConfigError};
    /// use memory_storage_redb::RedbStorage;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let store = RedbStorage::open_cached(dir.path().join("m.redb"), &CacheSettings::default())?;
    /// assert_eq!(store.count_episodes().await?, 0);
    /// # Ok::<(), anyhow::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn open_cached(
        path: impl AsRef<Path>,
        settings: &CacheSettings,
    ) -> Result<Arc<dyn StorageBackend>> {
        let store = Self::open(path)?;
        let signal: Arc<dyn ChangeSignal> = Arc::new(store.clone());
        memory_storage_cached::layer(store, settings, Some(signal)).map_err(cache_error)
    }

    /// This store behind caches as `settings` say (enabled), watching its change position
    /// for writes made past the cache (the bare handle, clones, other caches): what
    /// [`open_cached`](Self::open_cached) builds, as a concrete type (for its
    /// [`stats`](CachedStorage::stats)).
    ///
    /// ```
    /// use memory_core::StorageBackend;
    /// use memory_storage_cached::{CacheSettings, CachedStorage, ConfigError};
    /// use memory_storage_redb::RedbStorage;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let store = RedbStorage::open(dir.path().join("m.redb"))?;
    /// let cached = store.cached(&CacheSettings::default())?;
    /// assert_eq!(cached.get_episode(memory_core::EpisodeId::new()).await?, None);
    /// assert_eq!(cached.stats().episodes.misses, 1);
    /// # Ok::<(), anyhow::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn cached(&self, settings: &CacheSettings) -> Result<CachedStorage<RedbStorage>> {
        let signal: Arc<dyn ChangeSignal> = Arc::new(self.clone());
        Ok(CachedStorage::new(self.clone(), settings)
            .map_err(cache_error)?
            .with_change_signal(signal))
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `write` in one write transaction on a blocking thread (a durable commit waits
    /// for the disk) and commits it; an error rolls everything back.
    /// `committed` runs on that thread once the commit succeeded, before the write is
    /// answered (so also when the caller has stopped waiting).
    async fn write<F, C>(&self, doing: &'static str, write: F, committed: C) -> Result<()>
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<()> + Send + 'static,
        C: FnOnce() + Send + 'static,
    {
        let database = Arc::clone(&self.db);
        let task = tokio::task::spawn_blocking(move || {
            let txn = database.begin_write().map_err(|e| db(doing, e))?;
            match write(&txn).and_then(|()| advance_position(&txn, doing)) {
                Ok(position) => {
                    txn.commit().map_err(|e| db(doing, e))?;
                    committed();
                    Ok(position)
                }
                Err(e) => {
                    // Dropping the transaction aborts it too; aborting explicitly reports
                    // its own failure, which the caller's error already supersedes.
                    let _ = txn.abort();
                    Err(e)
                }
            }
        });
        let position = task.await.map_err(|e| match e.try_into_panic() {
            Ok(panic) => damaged(&self.path, doing, panic.as_ref()),
            Err(e) => StorageError::new(
                ErrorKind::Internal,
                format!("{doing}: the write task failed: {e}"),
            ),
        })??;
        memory_core::change::report_write(position);
        Ok(())
    }

    fn change_position_unguarded(&self) -> Result<u64> {
        let txn = self.read()?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(db("opening the format record", e)),
        };
        Ok(meta
            .get(POSITION_KEY)
            .map_err(|e| db("reading the change position", e))?
            .map_or(0, |v| v.value()))
    }

    /// Stores already validated `items` in one transaction.
    async fn store_items<E: Searched>(&self, items: Vec<E>) -> Result<()> {
        let changed = self.note_changed::<E>(items.iter().map(|i| i.id().into()).collect());
        self.write("storing", move |txn| tables::put(txn, &items), changed)
            .await
    }

    async fn delete_items<E: Searched>(&self, ids: Vec<E::Id>) -> Result<()> {
        validate_ids(&ids, true)?;
        let changed = self.note_changed::<E>(ids.iter().map(|&id| id.into()).collect());
        self.write(
            "deleting",
            move |txn| tables::delete::<E>(txn, &ids),
            changed,
        )
        .await
    }

    /// What a write of `ids` does once committed: tells the kind's graph they changed.
    fn note_changed<E: Searched>(
        &self,
        ids: Vec<memory_core::Uuid>,
    ) -> impl FnOnce() + Send + 'static {
        let vectors = Arc::clone(&self.vectors);
        move || {
            if let Some(graph) = E::vectors(&vectors) {
                graph.note_changed(ids);
            }
        }
    }

    /// A search (validated) by vector through [`nearest`](Self::nearest), by text through
    /// `text(words, n)`, or both fused.
    async fn search<E, F, FX, X>(
        &self,
        search: &memory_core::search::Search<F>,
        text: FX,
    ) -> Result<Vec<Scored<E>>>
    where
        E: Searched,
        F: memory_core::search::ItemFilter<E>,
        FX: FnOnce(String, usize) -> X,
        X: std::future::Future<Output = Result<Vec<Scored<E>>>>,
    {
        let vector = |v: memory_core::Embedding, n, _complete| {
            let filter = search.filter.clone();
            let filtered = filter.filters_anything();
            let keep = move |e: &E| filter.passes(e);
            async move { self.nearest(&v, n, search.min_score, filtered, keep).await }
        };
        memory_core::search::dispatch(&search.by, search.k, vector, text).await
    }

    /// The `k` best by vector among the items `keep` lets through (see `vectors.rs`), on a
    /// blocking thread: the first search builds the graph from the whole file.
    async fn nearest<E: Searched>(
        &self,
        vector: &memory_core::Embedding,
        k: usize,
        min_score: Option<f64>,
        filtered: bool,
        keep: impl Fn(&E) -> bool + Send + 'static,
    ) -> Result<Vec<Scored<E>>> {
        let store = self.clone();
        let vector = vector.clone();
        let task = tokio::task::spawn_blocking(move || {
            contained(&store.path, "searching", || {
                let Some(graph) = E::vectors(&store.vectors) else {
                    return Ok(Vec::new());
                };
                let dimension = vector.dimension();
                let found = graph.search(&vector, k, EXACT_SEARCH_BELOW, keep, filtered, |r| {
                    crate::vectors::load::<E>(&store.db, r, dimension)
                })?;
                let found = found
                    .into_iter()
                    .filter(|(_, score, _)| min_score.is_none_or(|min| *score >= min))
                    .collect();
                crate::vectors::with_items(&store.db, found)
            })
        });
        task.await.map_err(|e| {
            StorageError::new(
                ErrorKind::Internal,
                format!("searching: the task failed: {e}"),
            )
        })?
    }

    fn read(&self) -> Result<redb::ReadTransaction> {
        self.db.begin_read().map_err(|e| db("starting a read", e))
    }

    fn get_items<E: Row>(&self, ids: &[E::Id]) -> Result<Vec<Option<Arc<E>>>> {
        contained(&self.path, "reading", || self.get_items_unguarded(ids))
    }

    fn get_items_unguarded<E: Row>(&self, ids: &[E::Id]) -> Result<Vec<Option<Arc<E>>>> {
        let txn = self.read()?;
        let table = match txn.open_table(E::TABLE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![None; ids.len()]),
            Err(e) => return Err(db("opening a table", e)),
        };
        ids.iter()
            .map(|id| Ok(tables::get::<E>(&table, id)?.map(Arc::new)))
            .collect()
    }

    /// `each` of up to `limit` rows of `E`'s table with keys above `after`, by ascending
    /// key (the ids' order): the key and the stored bytes.
    fn rows_after<E: Row, T>(
        &self,
        what: &'static str,
        after: Option<E::Id>,
        limit: usize,
        mut each: impl FnMut(&[u8; 16], &[u8]) -> Result<T>,
    ) -> Result<Vec<T>> {
        memory_core::validate_list_limit(limit)?;
        contained(&self.path, what, || {
            let txn = self.read()?;
            let table = match txn.open_table(E::TABLE) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db("opening a table", e)),
            };
            let after = after.map(|id| E::key(&id));
            let from = after
                .as_ref()
                .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
            let mut out = Vec::with_capacity(limit.min(64));
            for row in table
                .range::<&[u8; 16]>((from, std::ops::Bound::Unbounded))
                .map_err(|e| db(what, e))?
                .take(limit)
            {
                let (key, value) = row.map_err(|e| db(what, e))?;
                out.push(each(key.value(), value.value())?);
            }
            Ok(out)
        })
    }

    /// Up to `limit` items with ids above `after`, by ascending id (the table's key order).
    fn list<E: Row>(&self, after: Option<E::Id>, limit: usize) -> Result<Vec<Arc<E>>> {
        self.rows_after::<E, _>("listing", after, limit, |_, bytes| {
            Ok(Arc::new(memory_core::codec::decode::<E>(bytes)?))
        })
    }

    /// As [`list`](Self::list), each item's decoding reported instead of returned.
    fn check<E: Row>(
        &self,
        after: Option<memory_core::Uuid>,
        limit: usize,
    ) -> Result<Vec<memory_core::ItemCheck>> {
        self.rows_after::<E, _>("checking", after.map(E::Id::from), limit, |key, bytes| {
            let decoded = memory_core::codec::decode::<E>(bytes);
            Ok(memory_core::ItemCheck::of(
                memory_core::Uuid::from_bytes(*key),
                &decoded,
            ))
        })
    }

    fn count<E: Row>(&self) -> Result<u64> {
        contained(&self.path, "counting", || self.count_unguarded::<E>())
    }

    fn count_unguarded<E: Row>(&self) -> Result<u64> {
        let txn = self.read()?;
        match txn.open_table(E::TABLE) {
            Ok(table) => table.len().map_err(|e| db("counting", e)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(db("opening a table", e)),
        }
    }

    fn query_episodes_now(&self, query: &EpisodeQuery) -> Result<EpisodePage> {
        query.validate()?;
        // The walk's exclusive upper end: the tighter of `until` and the cursor.
        let mut upper: Option<(i64, [u8; 16])> = query.until.map(|t| (t.as_micros(), NO_ID));
        if let Some(cursor) = query.cursor {
            let key = (cursor.start_time().as_micros(), *cursor.id().as_bytes());
            upper = Some(upper.map_or(key, |u| u.min(key)));
        }
        let since = query.since.map_or(i64::MIN, |t| t.as_micros());
        let txn = self.read()?;
        let episodes = match txn.open_table(EPISODES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Ok(EpisodePage::from_overfetch(Vec::new(), query.limit));
            }
            Err(e) => return Err(db("opening the episodes", e)),
        };
        let wanted = query.limit.saturating_add(1);
        let mut items: Vec<Arc<Episode>> = Vec::with_capacity(wanted.min(64));
        let mut take = |id: &[u8; 16]| -> Result<bool> {
            let id = EpisodeId::from_bytes(*id);
            let episode = tables::get::<Episode>(&episodes, &id)?.ok_or_else(|| {
                StorageError::corrupt(format!("the episode index names {id}, which is missing"))
            })?;
            if query.matches(&episode) {
                items.push(Arc::new(episode));
            }
            Ok(items.len() < wanted)
        };
        let index_error = |e| db("walking an episode index", e);
        match &query.domain {
            Some(domain) => {
                let index = txn
                    .open_table(EPISODES_BY_DOMAIN)
                    .map_err(|e| db("opening an index", e))?;
                let low = (domain.as_str(), since, &NO_ID);
                let range = match &upper {
                    Some((t, id)) => index.range::<(&str, i64, &[u8; 16])>((
                        Bound::Included(low),
                        Bound::Excluded((domain.as_str(), *t, id)),
                    )),
                    None => index.range::<(&str, i64, &[u8; 16])>((
                        Bound::Included(low),
                        Bound::Included((domain.as_str(), i64::MAX, &ALL_ID)),
                    )),
                }
                .map_err(index_error)?;
                for entry in range.rev() {
                    let (key, _) = entry.map_err(index_error)?;
                    if !take(key.value().2)? {
                        break;
                    }
                }
            }
            None => {
                let index = txn
                    .open_table(EPISODES_BY_START)
                    .map_err(|e| db("opening an index", e))?;
                let low = (since, &NO_ID);
                let range = match &upper {
                    Some((t, id)) => index.range::<(i64, &[u8; 16])>((
                        Bound::Included(low),
                        Bound::Excluded((*t, id)),
                    )),
                    None => index.range::<(i64, &[u8; 16])>((
                        Bound::Included(low),
                        Bound::Included((i64::MAX, &ALL_ID)),
                    )),
                }
                .map_err(index_error)?;
                for entry in range.rev() {
                    let (key, _) = entry.map_err(index_error)?;
                    if !take(key.value().1)? {
                        break;
                    }
                }
            }
        }
        Ok(EpisodePage::from_overfetch(items, query.limit))
    }

    fn query_patterns_now(&self, query: &PatternQuery) -> Result<Vec<Arc<Pattern>>> {
        query.validate()?;
        self.patterns_matching(query, query.limit)
    }

    /// `InvalidInput` unless a query vector of `dimension` fits the file's embeddings.
    fn check_search_dimension(&self, by: &memory_core::search::SearchBy) -> Result<()> {
        let stored = contained(&self.path, "reading the embedding dimension", || {
            let txn = self.read()?;
            match txn.open_table(tables::META) {
                Ok(meta) => Ok(meta
                    .get(tables::DIMENSION_KEY)
                    .map_err(|e| db("reading the embedding dimension", e))?
                    .map(|v| v.value() as usize)),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(db("opening the format table", e)),
            }
        })?;
        memory_core::search::check_query_dimension(by, stored)
    }

    /// The first `limit` patterns `query` matches (its own limit not used), in query order.
    fn patterns_matching(&self, query: &PatternQuery, limit: usize) -> Result<Vec<Arc<Pattern>>> {
        let txn = self.read()?;
        let patterns = match txn.open_table(PATTERNS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db("opening the patterns", e)),
        };
        let index_error = |e| db("walking a pattern index", e);
        // The narrowest index the query allows: its ids, or every id.
        let ids: Vec<[u8; 16]> = match (&query.domain, query.kind) {
            (Some(domain), _) => prefix_ids(&txn, PATTERNS_BY_DOMAIN, domain)?,
            (None, Some(kind)) => prefix_ids(&txn, PATTERNS_BY_KIND, kind.as_str())?,
            (None, None) => {
                let mut ids = Vec::new();
                for entry in patterns.iter().map_err(index_error)? {
                    let (key, _) = entry.map_err(index_error)?;
                    ids.push(*key.value());
                }
                ids
            }
        };
        let mut found = Vec::new();
        for id in ids {
            let id = PatternId::from_bytes(id);
            let pattern = tables::get::<Pattern>(&patterns, &id)?.ok_or_else(|| {
                StorageError::corrupt(format!("a pattern index names {id}, which is missing"))
            })?;
            if query.matches(&pattern) {
                found.push(Arc::new(pattern));
            }
        }
        found.sort_by(|a, b| PatternQuery::order(a, b));
        found.truncate(limit);
        Ok(found)
    }
}

/// The ids under `prefix` in a `(prefix, id)` index.
fn prefix_ids(
    txn: &redb::ReadTransaction,
    index: redb::TableDefinition<(&str, tables::IdKey), ()>,
    prefix: &str,
) -> Result<Vec<[u8; 16]>> {
    let fail = |e| db("walking a pattern index", e);
    let table = match txn.open_table(index) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db("opening a pattern index", e)),
    };
    let mut ids = Vec::new();
    for entry in table
        .range::<(&str, &[u8; 16])>((prefix, &NO_ID)..=(prefix, &ALL_ID))
        .map_err(fail)?
    {
        let (key, _) = entry.map_err(fail)?;
        ids.push(*key.value().1);
    }
    Ok(ids)
}

/// Creates the format record in a new file; accepts this build's format; refuses a newer
/// format and a file that holds tables but no format record (another program's file).
/// Runs `f`, turning a panic inside redb into a `Corrupt` error: redb panics on some
/// damaged pages (seen: "Invalid page type byte 165") where it should return an error, and
/// a damaged file must not take the caller's process down.
fn contained<T>(path: &Path, doing: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(damaged(path, doing, panic.as_ref())))
}

fn damaged(path: &Path, doing: &str, panic: &(dyn std::any::Any + Send)) -> StorageError {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no message");
    StorageError::corrupt(format!(
        "{doing} {}: redb stopped on damaged data ({message})",
        path.display()
    ))
}

/// Creates a new store file at `path` so that a crash at any moment leaves either no file
/// there or a complete one: the file is built beside it under a temporary name, with its
/// format record committed, then linked into place (a link fails rather than replace a file
/// that another process created meanwhile). A crash can leave the temporary file behind.
fn create_whole(path: &Path) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.creating-{}", std::process::id()));
    let io = |what: &str, e: std::io::Error| {
        StorageError::new(
            ErrorKind::Unavailable,
            format!("{what} {}: {e}", path.display()),
        )
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io("creating the folder of", e))?;
    }
    {
        let db = Database::create(&temporary).map_err(|e| open(&temporary, e))?;
        check_format(&db, &temporary)?;
    }
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("putting in place the new store file", e)),
    }
    // The link itself must survive a power loss, not only the file's contents.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io("syncing the folder of", e))?;
    }
    Ok(())
}

/// A cache setting the decorator refused, as a validation error on `cache.<field>`.
fn cache_error(e: ConfigError) -> StorageError {
    ValidationError::new(format!("cache.{}", e.field), Problem::Invalid(e.reason)).into()
}

/// Advances the change position inside the write transaction `txn`; returns the new one.
fn advance_position(txn: &redb::WriteTransaction, doing: &str) -> Result<u64> {
    let mut meta = txn.open_table(META).map_err(|e| db(doing, e))?;
    let position = meta
        .get(POSITION_KEY)
        .map_err(|e| db(doing, e))?
        .map_or(0, |v| v.value())
        + 1;
    meta.insert(POSITION_KEY, position)
        .map_err(|e| db(doing, e))?;
    Ok(position)
}

/// The change position is a counter in the file's format table, advanced inside every
/// write transaction: exact for every handle on the file (only this process can open it).
#[async_trait]
impl ChangeSignal for RedbStorage {
    async fn change_position(&self) -> Result<u64> {
        contained(&self.path, "reading the change position", || {
            self.change_position_unguarded()
        })
    }

    /// No feed: only this process can open the file, so other writers are other handles
    /// and caches in this process, and a cache that sees one flushes.
    async fn changes_since(&self, position: u64) -> Result<ChangesSince> {
        let current = self.change_position().await?;
        Ok(if current == position {
            ChangesSince::Complete {
                position: current,
                writes: Vec::new(),
            }
        } else {
            ChangesSince::Unknown {
                position: current,
                gap: FeedGap::NotKept,
            }
        })
    }

    /// Positions are reported after the write's commit returned.
    fn reports_before_visible(&self) -> bool {
        false
    }
}

fn check_format(database: &Database, path: &Path) -> Result<()> {
    let doing = "checking the file format";
    let txn = database.begin_write().map_err(|e| db(doing, e))?;
    let existing = txn.list_tables().map_err(|e| db(doing, e))?;
    let names: Vec<String> = existing.map(|t| t.name().to_string()).collect();
    let version = {
        let mut meta = txn.open_table(META).map_err(|e| db(doing, e))?;
        let stored = meta
            .get(FORMAT_KEY)
            .map_err(|e| db(doing, e))?
            .map(|v| v.value());
        match stored {
            Some(version) => version,
            None if names.is_empty() => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION)
                    .map_err(|e| db(doing, e))?;
                FORMAT_VERSION
            }
            None => {
                return Err(StorageError::corrupt(format!(
                    "{} is a redb file without this store's format record (tables: {}); \
                     refusing to use it",
                    path.display(),
                    names.join(", ")
                )));
            }
        }
    };
    if version > FORMAT_VERSION {
        return Err(StorageError::corrupt(format!(
            "{} has format version {version}, newer than this build's {FORMAT_VERSION}: \
             upgrade memory-storage-redb to open it",
            path.display()
        )));
    }
    // Version 1 is the first format: there is nothing older to migrate yet.
    txn.commit().map_err(|e| db(doing, e))
}

#[async_trait]
impl StorageBackend for RedbStorage {
    fn backend_name(&self) -> &'static str {
        "redb"
    }

    async fn store_episode(&self, episode: &Episode) -> Result<()> {
        episode.validate()?;
        self.store_items(vec![episode.clone()]).await
    }
    async fn get_episode(&self, id: EpisodeId) -> Result<Option<Arc<Episode>>> {
        Ok(self.get_items::<Episode>(&[id])?.pop().flatten())
    }
    async fn delete_episode(&self, id: EpisodeId) -> Result<()> {
        self.delete_items::<Episode>(vec![id]).await
    }
    async fn store_episodes(&self, episodes: &[Episode]) -> Result<()> {
        validate_batch(episodes)?;
        self.store_items(episodes.to_vec()).await
    }
    async fn get_episodes(&self, ids: &[EpisodeId]) -> Result<Vec<Option<Arc<Episode>>>> {
        validate_ids(ids, false)?;
        self.get_items(ids)
    }
    async fn delete_episodes(&self, ids: &[EpisodeId]) -> Result<()> {
        self.delete_items::<Episode>(ids.to_vec()).await
    }
    async fn query_episodes(&self, query: &EpisodeQuery) -> Result<EpisodePage> {
        contained(&self.path, "querying episodes", || {
            self.query_episodes_now(query)
        })
    }
    async fn count_episodes(&self) -> Result<u64> {
        self.count::<Episode>()
    }

    async fn store_pattern(&self, pattern: &Pattern) -> Result<()> {
        pattern.validate()?;
        self.store_items(vec![pattern.clone()]).await
    }
    async fn get_pattern(&self, id: PatternId) -> Result<Option<Arc<Pattern>>> {
        Ok(self.get_items::<Pattern>(&[id])?.pop().flatten())
    }
    async fn delete_pattern(&self, id: PatternId) -> Result<()> {
        self.delete_items::<Pattern>(vec![id]).await
    }
    async fn store_patterns(&self, patterns: &[Pattern]) -> Result<()> {
        validate_batch(patterns)?;
        self.store_items(patterns.to_vec()).await
    }
    async fn get_patterns(&self, ids: &[PatternId]) -> Result<Vec<Option<Arc<Pattern>>>> {
        validate_ids(ids, false)?;
        self.get_items(ids)
    }
    async fn delete_patterns(&self, ids: &[PatternId]) -> Result<()> {
        self.delete_items::<Pattern>(ids.to_vec()).await
    }
    async fn query_patterns(&self, query: &PatternQuery) -> Result<Vec<Arc<Pattern>>> {
        contained(&self.path, "querying patterns", || {
            self.query_patterns_now(query)
        })
    }
    async fn count_patterns(&self) -> Result<u64> {
        self.count::<Pattern>()
    }
    async fn list_patterns(
        &self,
        after: Option<PatternId>,
        limit: usize,
    ) -> Result<Vec<Arc<Pattern>>> {
        self.list(after, limit)
    }
    async fn list_heuristics(
        &self,
        after: Option<HeuristicId>,
        limit: usize,
    ) -> Result<Vec<Arc<Heuristic>>> {
        self.list(after, limit)
    }

    async fn check_items(
        &self,
        kind: memory_core::EntityKind,
        after: Option<memory_core::Uuid>,
        limit: usize,
    ) -> Result<Vec<memory_core::ItemCheck>> {
        match kind {
            memory_core::EntityKind::Episode => self.check::<Episode>(after, limit),
            memory_core::EntityKind::Pattern => self.check::<Pattern>(after, limit),
            memory_core::EntityKind::Heuristic => self.check::<Heuristic>(after, limit),
        }
    }

    /// By vector through the graph (exact below 1,000 candidates); by text exactly, every
    /// episode read (BM25's statistics are the store's; redb has no text index); hybrid:
    /// both lists fused.
    async fn search_episodes(&self, search: &EpisodeSearch) -> Result<Vec<Scored<Episode>>> {
        search.validate()?;
        self.check_search_dimension(&search.by)?;
        self.search(search, |t, n| async move {
            let by_text = EpisodeSearch::text(t, n).filter(search.filter.clone());
            memory_core::search::scan_episodes(self, &by_text).await
        })
        .await
    }
    /// As for episodes; by text every pattern is read.
    async fn search_patterns(&self, search: &PatternSearch) -> Result<Vec<Scored<Pattern>>> {
        search.validate()?;
        self.check_search_dimension(&search.by)?;
        self.search(search, |t, n| async move {
            let every = contained(&self.path, "searching patterns", || {
                self.patterns_matching(&PatternQuery::new(), usize::MAX)
            })?;
            let by_text = PatternSearch::text(t, n).filter(search.filter.clone());
            Ok(memory_core::search::exact_patterns(every, &by_text))
        })
        .await
    }

    async fn store_heuristic(&self, heuristic: &Heuristic) -> Result<()> {
        heuristic.validate()?;
        self.store_items(vec![heuristic.clone()]).await
    }
    async fn get_heuristic(&self, id: HeuristicId) -> Result<Option<Arc<Heuristic>>> {
        Ok(self.get_items::<Heuristic>(&[id])?.pop().flatten())
    }
    async fn delete_heuristic(&self, id: HeuristicId) -> Result<()> {
        self.delete_items::<Heuristic>(vec![id]).await
    }
    async fn store_heuristics(&self, heuristics: &[Heuristic]) -> Result<()> {
        validate_batch(heuristics)?;
        self.store_items(heuristics.to_vec()).await
    }
    async fn get_heuristics(&self, ids: &[HeuristicId]) -> Result<Vec<Option<Arc<Heuristic>>>> {
        validate_ids(ids, false)?;
        self.get_items(ids)
    }
    async fn delete_heuristics(&self, ids: &[HeuristicId]) -> Result<()> {
        self.delete_items::<Heuristic>(ids.to_vec()).await
    }
    async fn count_heuristics(&self) -> Result<u64> {
        self.count::<Heuristic>()
    }
}
