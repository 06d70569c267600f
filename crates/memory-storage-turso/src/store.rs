//! [`TursoStorage`]: the `StorageBackend` over libSQL.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use libsql::{Builder, Statement, Value};
use memory_core::feed::{
    Change, Changed, ChangesSince, FeedEntry, FeedGap, decode_changes, encode_changes,
};
use memory_core::search::{EpisodeSearch, PatternSearch, Scored, SearchBy};
use memory_core::{
    ChangeSignal, Entity, Episode, EpisodeId, EpisodePage, EpisodeQuery, ErrorKind, FinishOnDrop,
    Heuristic, HeuristicId, Pattern, PatternId, PatternQuery, Result, StorageBackend, StorageError,
    validate_batch, validate_ids,
};
use tracing::Instrument;

use memory_storage_cached::{CacheSettings, CachedStorage};

use crate::checkpoint::{CheckpointStats, Checkpointer};
use crate::config::{Location, TursoConfig};
use crate::error::db;
use crate::payload::{PayloadCodec, decode};
use crate::pool::{
    Conn, Job, Pool, PoolStats, PoolStatsSnapshot, PooledConn, job, run_blocking, run_on,
};
use crate::query::{self, Sql};
use crate::schema;
use crate::statements::{StatementCacheStats, StatementStatsSnapshot};
use crate::table::{self, Table};
use crate::text_index;
use crate::vectors;
use crate::writer::GroupFailure;

/// `fut`'s output, or `None` if `limit` passed first (no limit: always the output).
async fn within<F: Future>(limit: Option<Duration>, fut: F) -> Option<F::Output> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// How far a remote write attempt got, named in its error when the operation timeout cuts
/// it off (a stall waiting for a connection, for the server's write lock, for a statement
/// or for the commit's answer calls for different remedies).
#[derive(Debug, Default)]
struct WriteStage(AtomicU8);

impl WriteStage {
    const CHECKOUT: u8 = 0;
    const BEGIN: u8 = 1;
    const STATEMENTS: u8 = 2;
    const COMMIT: u8 = 3;

    fn set(&self, stage: u8) {
        self.0.store(stage, Ordering::SeqCst);
    }

    /// Whether the `COMMIT` went out (the write may have applied).
    fn commit_sent(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::COMMIT
    }

    fn describe(&self) -> &'static str {
        match self.0.load(Ordering::SeqCst) {
            Self::CHECKOUT => "waiting for a pooled connection",
            Self::BEGIN => "waiting for the server's write lock (BEGIN IMMEDIATE)",
            Self::STATEMENTS => "waiting for a statement inside the write transaction",
            _ => "waiting for the answer to COMMIT",
        }
    }
}

/// The error of a write attempt cut off by the operation timeout at `stage`.
fn write_timed_out(limit: Option<Duration>, started: Instant, stage: &WriteStage) -> StorageError {
    let e = StorageError::new(
        ErrorKind::Transient,
        format!(
            "the database did not answer within the operation timeout ({:?}; waited {:?}) \
             while {}",
            limit.unwrap_or_default(),
            started.elapsed(),
            stage.describe()
        ),
    );
    tracing::warn!(error = %e, "a remote write attempt stalled");
    e
}

/// The error of an attempt cut off by the operation timeout.
fn timed_out(limit: Option<Duration>, started: Instant) -> StorageError {
    StorageError::new(
        ErrorKind::Transient,
        format!(
            "the database did not answer within the operation timeout ({:?}; waited {:?})",
            limit.unwrap_or_default(),
            started.elapsed()
        ),
    )
}

/// Items per multi-row upsert (7 columns × 64 rows stays far below SQLite's parameter limit).
const UPSERT_ROWS: usize = 64;
/// Ids per `IN (...)` list.
const ID_ROWS: usize = 256;
/// Rows per multi-row side-table insert.
const SIDE_ROWS: usize = 128;

/// libSQL storage: a local file (the embedded default), one in-memory database, a remote
/// sqld/Turso database, or an embedded replica of one, behind one connection pool with a
/// prepared-statement cache per connection. Every batch is one transaction.
///
/// ```
/// use memory_core::{Episode, StorageBackend, TaskContext, TaskType};
/// use memory_storage_turso::{TursoConfig, TursoStorage};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = TursoStorage::open(TursoConfig::local(dir.path().join("memory.db")))
///     .await
///     .unwrap();
/// let episode = Episode::new(TaskType::Testing, "run the suite", TaskContext::new("web"));
/// store.store_episode(&episode).await.unwrap();
/// let back = store.get_episode(episode.id).await.unwrap().unwrap();
/// assert_eq!(*back, episode);
/// # });
/// ```
#[derive(Clone)]
pub struct TursoStorage {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Arc<Pool>,
    config: TursoConfig,
    payload: PayloadCodec,
    replica: bool,
    /// A local file's checkpoint thread (none elsewhere: sqld, replicas and memory manage
    /// their own logs).
    checkpointer: Option<Checkpointer>,
    /// With a writer thread: the change signal's own connection and the commit order.
    signal: Option<Arc<Signal>>,
    /// The embeddings' dimension once this store has seen it recorded (it never changes).
    dimension: parking_lot::Mutex<Option<usize>>,
}

/// The change signal of a local file written by one writer thread: the generation is read
/// on a connection of its own (a check never waits for a pooled one behind reads) under
/// the lock each commit holds while it records its position, so every own write the
/// answer covers has been recorded (`reports_before_visible`).
struct Signal {
    order: Arc<tokio::sync::Mutex<()>>,
    conn: parking_lot::Mutex<Option<Conn>>,
    /// `PRAGMA data_version` of that connection and the generation read with it: while the
    /// version stays, no other connection committed, and a check needs no other statement.
    seen: parking_lot::Mutex<Option<(i64, u64)>>,
}

impl std::fmt::Debug for TursoStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TursoStorage")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl TursoStorage {
    /// Opens (creating if needed) the database `config` names, configures it and brings its
    /// schema up to date. A database from a newer schema version is refused.
    pub async fn open(config: TursoConfig) -> Result<Self> {
        config.validate()?;
        let database = match &config.location {
            Location::LocalFile(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StorageError::with_source(
                            ErrorKind::Unavailable,
                            format!("creating the folder {}", parent.display()),
                            e,
                        )
                    })?;
                }
                Builder::new_local(path).build().await
            }
            Location::InMemory => Builder::new_local(":memory:").build().await,
            Location::Remote { url, auth_token } => {
                Builder::new_remote(
                    url.clone(),
                    auth_token
                        .as_ref()
                        .map(|t| t.expose().to_string())
                        .unwrap_or_default(),
                )
                .build()
                .await
            }
            Location::Replica {
                path,
                url,
                auth_token,
                sync_interval,
            } => {
                let mut builder = Builder::new_remote_replica(
                    path,
                    url.clone(),
                    auth_token
                        .as_ref()
                        .map(|t| t.expose().to_string())
                        .unwrap_or_default(),
                )
                .read_your_writes(true);
                if let Some(interval) = sync_interval {
                    builder = builder.sync_interval(*interval);
                }
                builder.build().await
            }
        }
        .map_err(|e| db(&format!("opening {}", describe(&config.location)), e))?;
        let pool = Pool::new(Arc::new(database), &config)?;
        let store = TursoStorage {
            inner: Arc::new(Inner {
                payload: PayloadCodec {
                    threshold: config.compression_threshold,
                    level: config.compression_level,
                },
                replica: matches!(config.location, Location::Replica { .. }),
                checkpointer: match config.location {
                    Location::LocalFile(_) => {
                        let writer = Arc::downgrade(&pool);
                        Some(Checkpointer::start(
                            checkpoint_connection(pool.database(), config.busy_timeout)?,
                            config.checkpoint_interval,
                            u64::from(config.wal_limit_pages),
                            Box::new(move |counters, truncate| {
                                writer.upgrade().is_some_and(|pool| {
                                    pool.between_writes(move |conn| {
                                        Box::pin(async move {
                                            crate::checkpoint::finish(
                                                &conn.raw, &counters, truncate,
                                            )
                                            .await;
                                        })
                                    })
                                })
                            }),
                        )?)
                    }
                    _ => None,
                },
                signal: pool.has_writer().then(|| {
                    Arc::new(Signal {
                        order: Arc::default(),
                        conn: parking_lot::Mutex::new(None),
                        seen: parking_lot::Mutex::new(None),
                    })
                }),
                pool,
                config,
                dimension: parking_lot::Mutex::new(None),
            }),
        };
        store.prepare_database().await?;
        Ok(store)
    }

    async fn prepare_database(&self) -> Result<()> {
        let limit = self.inner.config.operation_timeout;
        let started = Instant::now();
        // Opening asks the server too: a stalled one must not hang `open`.
        within(limit, self.prepare_database_unbounded())
            .await
            .unwrap_or_else(|| Err(timed_out(limit, started)))
    }

    async fn prepare_database_unbounded(&self) -> Result<()> {
        if self.inner.replica {
            self.sync().await?;
        }
        let local_file = matches!(self.inner.config.location, Location::LocalFile(_));
        let busy_timeout = self.inner.config.busy_timeout;
        let mut attempt = 1u32;
        loop {
            let result = self
                .inner
                .pool
                .exclusive(move |conn| {
                    Box::pin(async move {
                        let result = async {
                            if local_file {
                                switch_to_wal(&conn.raw, busy_timeout).await?;
                            }
                            schema::migrate(&conn.raw).await
                        }
                        .await;
                        let discard = matches!(&result, Err(e) if e.is_transient());
                        (result, discard)
                    })
                })
                .await?;
            match result {
                // Another opener of the same new database can make a step fail passingly
                // (sqld interrupts a statement waiting behind another client's migration);
                // the migration re-reads the version inside its transaction, so a retry
                // applies what is still missing and nothing twice.
                Err(e) if e.is_transient() && attempt < self.inner.config.retry.attempts => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                other => {
                    other?;
                    break;
                }
            }
        }
        if self.inner.replica {
            self.sync().await?;
        }
        Ok(())
    }

    /// What a local file's checkpoint thread has done (`None` for other locations).
    ///
    /// ```
    /// use memory_storage_turso::{TursoConfig, TursoStorage};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = TursoStorage::open(TursoConfig::local(dir.path().join("m.db"))).await.unwrap();
    /// assert!(store.checkpoint_stats().is_some());
    /// let memory = TursoStorage::open(TursoConfig::in_memory()).await.unwrap();
    /// assert!(memory.checkpoint_stats().is_none());
    /// # });
    /// ```
    pub fn checkpoint_stats(&self) -> Option<CheckpointStats> {
        self.inner.checkpointer.as_ref().map(Checkpointer::stats)
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &TursoConfig {
        &self.inner.config
    }

    /// The schema version of the open database.
    pub async fn schema_version(&self) -> Result<i64> {
        self.with_conn(job(|conn| Box::pin(schema::version(&conn.raw))))
            .await
    }

    /// The store generation, bumped by every write transaction of any client of this
    /// database: a cheap signal that something changed.
    pub async fn generation(&self) -> Result<u64> {
        if let Some(signal) = &self.inner.signal {
            return self.ordered_generation(Arc::clone(signal)).await;
        }
        let value = self
            .with_conn(job(|conn| {
                Box::pin(single_integer(
                    conn,
                    "SELECT generation FROM store_generation WHERE id = 1",
                    Vec::new(),
                ))
            }))
            .await?;
        Ok(u64::try_from(value).unwrap_or_default())
    }

    /// The generation read on the signal's own connection, under the commit order (with
    /// the feed's statement, asking for no rows: one statement prepared there, not two).
    async fn ordered_generation(&self, signal: Arc<Signal>) -> Result<u64> {
        let answer = self
            .on_signal(signal, job(|conn| Box::pin(read_changes(conn, u64::MAX))))
            .await?;
        Ok(answer.position())
    }

    /// What the writes after `since` changed, from the change feed: on the signal's own
    /// connection under the commit order when there is one, else on a pooled connection
    /// (remotely one round trip).
    async fn read_changes_since(&self, since: u64) -> Result<ChangesSince> {
        match &self.inner.signal {
            Some(signal) => {
                let watched = Arc::clone(signal);
                let read = job(move |conn| {
                    let watched = Arc::clone(&watched);
                    Box::pin(
                        async move { changes_unless_unchanged(conn, since, &watched.seen).await },
                    )
                });
                self.on_signal(Arc::clone(signal), read).await
            }
            None => {
                self.with_conn(job(move |conn| Box::pin(read_changes(conn, since))))
                    .await
            }
        }
    }

    /// Runs `work` on the signal's own connection (opened on first use, reopened after a
    /// failure) while holding the commit order, off the async workers.
    async fn on_signal<T: Send + 'static>(
        &self,
        signal: Arc<Signal>,
        work: impl for<'c> Fn(&'c mut Conn) -> Job<'c, Result<T>> + Send + 'static,
    ) -> Result<T> {
        let pool = Arc::clone(&self.inner.pool);
        run_blocking(move |runtime| {
            let _order = signal.order.blocking_lock();
            let mut slot = signal.conn.lock();
            if slot.is_none() {
                *signal.seen.lock() = None; // data_version is per connection
                *slot = Some(runtime.block_on(pool.open())?);
            }
            let Some(conn) = slot.as_mut() else {
                return Err(StorageError::internal("the signal connection vanished"));
            };
            let value = runtime.block_on(work(conn));
            if value.is_err() {
                *slot = None; // reopened by the next check
            }
            value
        })
        .await
    }

    /// Opens the store as [`open`](Self::open) does and puts the cache `config.cache`
    /// describes in front of it, watching this store's generation for other writers; with
    /// the cache disabled, returns the bare store.
    ///
    /// ```
    /// use memory_storage_cached::CacheSettings;
    /// use memory_storage_turso::{TursoConfig, TursoStorage};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let config = TursoConfig::local(dir.path().join("memory.db"));
    /// let store = TursoStorage::open_cached(config.clone()).await?;
    /// assert_eq!(store.count_episodes().await?, 0);
    /// let bare = TursoStorage::open_cached(config.cache(CacheSettings::disabled())).await?;
    /// assert_eq!(bare.count_episodes().await?, 0); // the bare store, nothing in between
    /// # Ok::<(), anyhow::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn open_cached(config: TursoConfig) -> Result<Arc<dyn StorageBackend>> {
        let settings = config.cache.clone();
        let store = Self::open(config).await?;
        let signal: Arc<dyn ChangeSignal> = Arc::new(store.clone());
        memory_storage_cached::layer(store, &settings, Some(signal)).map_err(cache_error)
    }

    /// This store behind caches as `settings` say (enabled), watching this store's change
    /// signal for other writers: what [`open_cached`](Self::open_cached) builds, as a
    /// concrete type (for its [`stats`](CachedStorage::stats)).
    ///
    /// ```
    /// use memory_core::StorageBackend;
    /// use memory_storage_cached::CacheSettings;
    /// use memory_storage_turso::{TursoConfig, TursoStorage};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let store = TursoStorage::open(TursoConfig::local(dir.path().join("m.db"))).await?;
    /// let cached = store.cached(&CacheSettings::default())?;
    /// assert_eq!(cached.get_episode(memory_core::EpisodeId::new()).await?, None);
    /// assert_eq!(cached.stats().episodes.misses, 1);
    /// # Ok::<(), anyhow::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn cached(&self, settings: &CacheSettings) -> Result<CachedStorage<TursoStorage>> {
        let signal: Arc<dyn ChangeSignal> = Arc::new(self.clone());
        Ok(CachedStorage::new(self.clone(), settings)
            .map_err(cache_error)?
            .with_change_signal(signal))
    }

    /// On an embedded replica, a change check's sync: within the configured cache's check
    /// interval, failures logged (the check then reads what the replica holds).
    async fn sync_for_check(&self) {
        if !self.inner.replica {
            return;
        }
        let limit = self.inner.config.cache.change_check_interval;
        match tokio::time::timeout(limit, self.sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "change check: the replica did not sync"),
            Err(_) => tracing::debug!(?limit, "change check: the replica's sync timed out"),
        }
    }

    /// Pulls the primary's latest changes into an embedded replica (other locations:
    /// nothing to do).
    pub async fn sync(&self) -> Result<()> {
        if !self.inner.replica {
            return Ok(());
        }
        let (limit, started) = (self.inner.config.operation_timeout, Instant::now());
        within(limit, self.inner.pool.database().sync())
            .await
            .ok_or_else(|| timed_out(limit, started))?
            .map_err(|e| db("syncing the replica", e))?;
        Ok(())
    }

    /// A pooled connection, waited for within the operation timeout, and when the attempt
    /// started (the rest of the attempt gets what is left of the timeout).
    async fn checkout(&self) -> Result<(PooledConn, Instant)> {
        let (limit, started) = (self.inner.config.operation_timeout, Instant::now());
        match within(limit, self.inner.pool.get()).await {
            Some(pooled) => Ok((pooled?, started)),
            None => Err(timed_out(limit, started)),
        }
    }

    /// What is left of the operation timeout of an attempt that started at `started`.
    fn time_left(&self, started: Instant) -> Option<Duration> {
        self.inner
            .config
            .operation_timeout
            .map(|l| l.saturating_sub(started.elapsed()))
    }

    /// Runs the work `make` makes on a pooled (reader) connection, retrying transient
    /// failures with backoff; a connection that failed at the transport level is
    /// discarded. Only for work that is safe to repeat: reads (writes go through
    /// `write_exactly_once`, which retries only where the outcome is known).
    async fn with_conn<T, F>(&self, make: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut Conn) -> Job<'c, Result<T>> + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let limit = self.inner.config.operation_timeout;
        let mut attempt = 1u32;
        loop {
            let (pooled, started) = self
                .checkout()
                .instrument(phase_span!("read_checkout"))
                .await?;
            let make = Arc::clone(&make);
            let local = self.inner.pool.is_local();
            let ran = within(
                self.time_left(started),
                run_on(local, pooled, move |conn| make(conn)),
            )
            .instrument(phase_span!("read_statement"))
            .await;
            let Some(ran) = ran else {
                break Err(timed_out(limit, started));
            };
            let (mut pooled, result) = ran?;
            match result {
                Err(e) if e.is_transient() && attempt < self.inner.config.retry.attempts => {
                    if e.kind() == ErrorKind::Transient {
                        pooled.discard();
                    }
                    drop(pooled);
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                other => break other,
            }
        }
    }

    /// Runs one write transaction, retrying passing failures only where the outcome is
    /// known: a failure before the `COMMIT` was sent did not apply; after a failure at the
    /// `COMMIT` the write log says whether it applied (its token is there), read inside a
    /// write transaction so that a commit the server is still finishing is waited for.
    /// An applied write is a success, never retried; an outcome that cannot be read is an
    /// [`ErrorKind::Indeterminate`] error.
    async fn write_exactly_once<E: Table>(
        &self,
        work: &Arc<Work<E>>,
        recorder: Option<memory_core::change::Recorder>,
    ) -> Result<u64> {
        let limit = self.inner.config.operation_timeout;
        let (began, mut attempt, mut lock_waits) = (Instant::now(), 1u32, 0u32);
        loop {
            let token = uuid::Uuid::new_v4().as_bytes().to_vec();
            let commit_sent = Arc::new(AtomicBool::new(false));
            let started = Instant::now();
            let failed = if let Some(writer) = self.inner.pool.writer() {
                // A local file: committed with the writes queued beside it.
                let (work, token_for_write) = (Arc::clone(work), token.clone());
                let outcome = writer
                    .run_grouped(
                        Box::new(move |conn| {
                            Box::pin(async move { write_body(conn, &work, &token_for_write).await })
                        }),
                        Arc::clone(&commit_sent),
                        recorder.clone(),
                        self.inner.signal.as_ref().map(|s| Arc::clone(&s.order)),
                    )
                    .await?;
                match outcome {
                    Ok(generation) => return Ok(generation),
                    Err(GroupFailure::Before(e)) => Failed::Before(e),
                    Err(GroupFailure::AtCommit(e)) => Failed::AtCommit(e),
                }
            } else {
                let stage = Arc::new(WriteStage::default());
                let (work, at, token_for_write) =
                    (Arc::clone(work), Arc::clone(&stage), token.clone());
                let ran = within(
                    self.time_left(started),
                    self.inner.pool.exclusive(move |conn| {
                        Box::pin(async move {
                            let result = write(conn, &work, &token_for_write, &at).await;
                            let discard = matches!(
                                &result,
                                Err(failed) if failed.error().kind() == ErrorKind::Transient
                            );
                            (result, discard)
                        })
                    }),
                )
                .await;
                match ran {
                    Some(ran) => match ran? {
                        Ok(generation) => return Ok(generation),
                        Err(failed) => failed,
                    },
                    None => {
                        // Cut off mid-request: the pool never reuses the connection.
                        let e = write_timed_out(limit, started, &stage);
                        if !stage.commit_sent() {
                            return Err(e);
                        }
                        Failed::AtCommit(e)
                    }
                }
            };
            let error = match failed {
                Failed::Before(e) => e,
                Failed::AtCommit(e) => match self.committed_generation(&token).await {
                    Ok(Some(generation)) => {
                        tracing::debug!(error = %e, "a commit's answer was lost; it applied");
                        return Ok(generation);
                    }
                    Ok(None) => e,
                    Err(check) => {
                        return Err(StorageError::with_source(
                            ErrorKind::Indeterminate,
                            format!(
                                "the commit's answer was lost ({e}) and whether it applied \
                                 could not be read ({check}): the write may or may not be stored"
                            ),
                            e,
                        ));
                    }
                },
            };
            if let Some(pause) = self.lock_wait(&error, began, lock_waits + 1) {
                lock_waits += 1;
                tokio::time::sleep(pause).await;
                continue;
            }
            if !error.is_transient() || attempt >= self.inner.config.retry.attempts {
                return Err(error);
            }
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// How long a remote write that found the server's write lock taken waits before asking
    /// again (`None`: it gives up). sqld answers `BEGIN IMMEDIATE` with "database is locked"
    /// at once, without waiting, while its own checkpoint holds the lock (measured: over a
    /// second when the disk is slow to sync), so the client waits here as SQLite's busy
    /// handler does for a local file: asking again with backoff while the operation timeout
    /// (the busy timeout if there is none), counted from the write's first attempt, leaves
    /// time. Nothing of the write applied.
    fn lock_wait(&self, error: &StorageError, began: Instant, wait: u32) -> Option<Duration> {
        if self.inner.pool.is_local() || error.kind() != ErrorKind::Locked {
            return None;
        }
        let config = &self.inner.config;
        let budget = config.operation_timeout.unwrap_or(config.busy_timeout);
        let pause = self.backoff(wait);
        (budget.saturating_sub(began.elapsed()) > pause).then_some(pause)
    }

    /// The generation the write with `token` produced, if it committed.
    async fn committed_generation(&self, token: &[u8]) -> Result<Option<u64>> {
        let mut attempt = 1u32;
        let resolving = Instant::now();
        let generation = loop {
            let token = token.to_vec();
            let (limit, started) = (self.inner.config.operation_timeout, Instant::now());
            let found = within(
                limit,
                self.inner.pool.exclusive(move |conn| {
                    Box::pin(async move {
                        let found = async {
                            conn.raw.execute("BEGIN IMMEDIATE", ()).await.map_err(|e| {
                                db("waiting for the write lock to read the write log", e)
                            })?;
                            let found =
                                optional_integer(conn, TOKEN_GENERATION, vec![Value::Blob(token)])
                                    .await;
                            rollback(&conn.raw).await;
                            found
                        }
                        .await;
                        let discard = matches!(&found, Err(e) if e.kind() == ErrorKind::Transient);
                        (found, discard)
                    })
                }),
            )
            .await
            .unwrap_or_else(|| Ok(Err(timed_out(limit, started))))?;
            // Patient: giving up makes the write `Indeterminate`. (An embedded replica whose
            // primary compacted its log cannot read for a second or two; libsql #1310.)
            match found {
                Err(e) if e.is_transient() && resolving.elapsed() < RESOLVE_PATIENCE => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                other => break other?,
            }
        };
        Ok(generation.and_then(|g| u64::try_from(g).ok()))
    }

    /// How long to wait before retry number `attempt` (1-based).
    fn backoff(&self, attempt: u32) -> Duration {
        let retry = &self.inner.config.retry;
        retry
            .base_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(retry.max_delay)
    }

    /// After a write: an embedded replica pulls the primary's log at least up to that
    /// write, so the next read through any of its connections sees it. (A plain `sync` may
    /// return before the primary's log holds the write.)
    async fn after_write(&self) -> Result<()> {
        if !self.inner.replica {
            return Ok(());
        }
        let database = self.inner.pool.database();
        let (limit, started) = (self.inner.config.operation_timeout, Instant::now());
        match database.max_write_replication_index() {
            Some(frame) => within(limit, database.sync_until(frame))
                .await
                .ok_or_else(|| timed_out(limit, started))?
                .map(|_| ())
                .map_err(|e| db("syncing the replica up to this store's last write", e)),
            None => self.sync().await,
        }
    }

    /// `InvalidInput` unless a query vector of `dimension` fits the store's embeddings;
    /// answers whether the store has any (a dimension recorded).
    async fn check_search_dimension(&self, dimension: usize) -> Result<bool> {
        let known = *self.inner.dimension.lock();
        let stored = match known {
            Some(d) => Some(d),
            None => {
                let read = self
                    .with_conn(job(|conn| {
                        Box::pin(optional_integer(conn, DIMENSION, Vec::new()))
                    }))
                    .await?;
                let read = read.and_then(|d| usize::try_from(d).ok());
                if read.is_some() {
                    *self.inner.dimension.lock() = read;
                }
                read
            }
        };
        memory_core::search::check_dimension("vector", dimension, stored)?;
        Ok(stored.is_some())
    }

    /// The `k` items of `E` that best match the words of `text` among those `filter` (SQL
    /// terms) admits, by FTS5's BM25 (scores negated: higher is better).
    async fn text_items<E: Table>(
        &self,
        filter: Sql,
        text: String,
        k: usize,
    ) -> Result<Vec<Scored<E>>> {
        let Some((fts, keys)) = E::TEXT else {
            return Ok(Vec::new());
        };
        let expression = memory_core::text::fts5_match(&text)?;
        let sql = Arc::new(text_index::search_sql::<E>(
            fts, keys, &filter, expression, k, 1,
        ));
        let rows = self
            .with_conn(job(move |conn| {
                let sql = sql.clone();
                Box::pin(async move { text_rows::<E>(conn, &sql).await })
            }))
            .await?;
        Ok(rows)
    }

    /// The `k` items of `E` nearest `vector` among those `filter` (SQL terms; `matches` the
    /// same in Rust) admits, re-ranked exactly (see `crate::vectors`). `complete`: when the
    /// index's candidates leave fewer than `k` of the filter's matches, search exactly.
    async fn search_items<E: Table>(
        &self,
        (filter, domain): (Sql, Option<String>),
        vector: memory_core::Embedding,
        k: usize,
        min_score: Option<f64>,
        complete: bool,
        matches: impl Fn(&E) -> bool,
    ) -> Result<Vec<Scored<E>>> {
        let vector = &vector;
        let Some(table) = E::VECTORS else {
            return Ok(Vec::new());
        };
        if !self.check_search_dimension(vector.dimension()).await? {
            return Ok(Vec::new());
        }
        let filter = Arc::new(filter);
        let mut plan = vectors::Plan {
            vector: vectors::blob(vector),
            k,
            exact_below: i64::from(self.inner.config.exact_search_below),
            domain,
        };
        loop {
            let sql = Arc::new(vectors::search_sql::<E>(table, &filter, &plan));
            let (candidates, matched) = self
                .with_conn(job(move |conn| {
                    let sql = sql.clone();
                    Box::pin(async move { search_rows::<E>(conn, &sql).await })
                }))
                .await?;
            // The index's candidates may hold fewer than `k` of the filter's matches when the
            // filter is narrow; then every match is scored.
            let approximate = matched > plan.exact_below;
            let short = candidates.len() < k && (candidates.len() as i64) < matched;
            if complete && approximate && short && plan.exact_below < i64::MAX {
                plan.exact_below = i64::MAX;
                continue;
            }
            return Ok(memory_core::search::exact(
                candidates, vector, k, min_score, &matches,
            ));
        }
    }

    /// A hybrid search's two lists, each [`hybrid_depth`](memory_core::search::hybrid_depth)
    /// deep, asked for in one statement (one round trip remotely) and fused: the vector
    /// list as `search_items` makes it (without its exact second pass: it only feeds the
    /// fusion), the text list as `text_items` does.
    async fn hybrid_items<E: Table>(
        &self,
        (filter, domain): (Sql, Option<String>),
        vector: memory_core::Embedding,
        text: String,
        k: usize,
        min_score: Option<f64>,
        matches: impl Fn(&E) -> bool,
    ) -> Result<Vec<Scored<E>>> {
        let depth = memory_core::search::hybrid_depth(k);
        let (Some(table), Some((fts, keys))) = (E::VECTORS, E::TEXT) else {
            return Ok(Vec::new());
        };
        let expression = memory_core::text::fts5_match(&text)?;
        if !self.check_search_dimension(vector.dimension()).await? {
            // No embedding stored yet: no vector list to ask for.
            let by_text = self.text_items::<E>(filter, text, depth).await?;
            return Ok(memory_core::search::fuse(&[], &by_text, k));
        }
        let plan = vectors::Plan {
            vector: vectors::blob(&vector),
            k: depth,
            exact_below: i64::from(self.inner.config.exact_search_below),
            domain,
        };
        let by_vector = vectors::search_sql::<E>(table, &filter, &plan);
        let first = by_vector.params.len() + 1;
        let sql = Arc::new(query::both(
            by_vector,
            text_index::search_sql::<E>(fts, keys, &filter, expression, depth, first),
        ));
        let (candidates, by_text) = self
            .with_conn(job(move |conn| {
                let sql = sql.clone();
                Box::pin(async move { hybrid_rows::<E>(conn, &sql).await })
            }))
            .await?;
        let by_vector = memory_core::search::exact(candidates, &vector, depth, min_score, matches);
        Ok(memory_core::search::fuse(&by_vector, &by_text, k))
    }

    async fn store_items<E: Table>(&self, items: &[E]) -> Result<()> {
        let dimension = memory_core::search::batch_dimension(items)?;
        let known = *self.inner.dimension.lock();
        if let Some(d) = dimension {
            memory_core::search::check_dimension("embedding", d, known)?;
        }
        let rows = encode_rows(&self.inner.payload, items)?;
        let mut work = Work::upsert(items, rows, self.inner.config.change_feed)?;
        // Checked (and recorded) inside the write unless this store already knows it.
        work.dimension = dimension.filter(|_| known.is_none());
        work.vectors = known.is_some() || dimension.is_some();
        self.transaction(work).await?;
        if let Some(d) = dimension {
            *self.inner.dimension.lock() = Some(d);
        }
        Ok(())
    }

    /// Runs `work` as one write transaction (retried while that is safe), then lets a
    /// replica catch up with it. A caller that stops waiting never cuts the transaction off
    /// half-way (which would leave its connection holding the database's write lock): the
    /// rest runs on a task of its own. The position the transaction produced is reported
    /// to the cache that made the write, if any.
    async fn transaction<E: Table>(&self, work: Work<E>) -> Result<()> {
        let store = self.clone();
        let work = Arc::new(work);
        // Taken here, inside the caller's cache scope (the rest may run on a task of its own).
        let recorder = memory_core::change::recorder();
        let run = async move {
            let generation = store.write_exactly_once(&work, recorder).await?;
            store.after_write().await?;
            Ok::<u64, StorageError>(generation)
        };
        // Finished on a task of its own if the caller stops waiting.
        let generation = FinishOnDrop::new(run).await?;
        if let Some(checkpointer) = &self.inner.checkpointer {
            checkpointer.after_commit();
        }
        memory_core::change::report_write(generation);
        Ok(())
    }

    async fn get_items<E: Table>(&self, ids: &[E::Id]) -> Result<Vec<Option<Arc<E>>>> {
        let ids = ids.to_vec();
        self.with_conn(job(move |conn| {
            let ids = ids.clone();
            Box::pin(async move { select_by_ids::<E>(conn, &ids).await })
        }))
        .await
    }

    async fn get_item<E: Table>(&self, id: E::Id) -> Result<Option<Arc<E>>> {
        self.with_conn(job(move |conn| Box::pin(select_one::<E>(conn, id))))
            .await
    }

    async fn delete_items<E: Table>(&self, ids: &[E::Id]) -> Result<()> {
        validate_ids(ids, true)?;
        let ids = ids.to_vec();
        self.transaction(Work::<E>::delete(ids, self.inner.config.change_feed)?)
            .await
    }

    async fn count_items<E: Table>(&self) -> Result<u64> {
        let sql = table::count_sql::<E>();
        let count = self
            .with_conn(job(move |conn| {
                let sql = sql.clone();
                Box::pin(async move { single_integer(conn, &sql, Vec::new()).await })
            }))
            .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Up to `limit` items with ids above `after`, by ascending id (blobs compare as
    /// bytes, which is the ids' order; with no `after`, above the empty blob: from the
    /// first).
    async fn list_items<E: Table>(
        &self,
        after: Option<E::Id>,
        limit: usize,
    ) -> Result<Vec<Arc<E>>> {
        memory_core::validate_list_limit(limit)?;
        let after = after.map_or_else(Vec::new, |id| E::id_bytes(id).to_vec());
        let sql = query::Sql {
            text: format!(
                "SELECT id, encoding, payload FROM {} WHERE id > ? ORDER BY id LIMIT ?",
                E::TABLE
            ),
            params: vec![Value::Blob(after), Value::Integer(limit as i64)],
        };
        self.select_items::<E>(&sql).await
    }

    /// Up to `limit` items with ids above `after`, each with what decoding it gave.
    async fn check_items_of<E: Table>(
        &self,
        after: Option<memory_core::Uuid>,
        limit: usize,
    ) -> Result<Vec<memory_core::ItemCheck>> {
        memory_core::validate_list_limit(limit)?;
        let after = after.map_or_else(Vec::new, |id| id.as_bytes().to_vec());
        let text = format!(
            "SELECT id, encoding, payload FROM {} WHERE id > ? ORDER BY id LIMIT ?",
            E::TABLE
        );
        let params = vec![Value::Blob(after), Value::Integer(limit as i64)];
        self.with_conn(job(move |conn| {
            let (text, params) = (text.clone(), params.clone());
            Box::pin(async move { check_rows::<E>(conn, &text, params).await })
        }))
        .await
    }

    /// Decoded items of the rows `sql` selects (`id, encoding, payload`), in row order.
    async fn select_items<E: Table>(&self, sql: &Sql) -> Result<Vec<Arc<E>>> {
        let (text, params) = (sql.text.clone(), sql.params.clone());
        self.with_conn(job(move |conn| {
            let (text, params) = (text.clone(), params.clone());
            Box::pin(async move { select_rows::<E>(conn, &text, params).await })
        }))
        .await
        .map(|rows| rows.into_iter().map(|(_, item)| item).collect())
    }
}

impl PoolStats for TursoStorage {
    fn pool_stats(&self) -> PoolStatsSnapshot {
        self.inner.pool.stats()
    }
}

impl StatementCacheStats for TursoStorage {
    fn statement_stats(&self) -> StatementStatsSnapshot {
        self.inner.pool.statement_counters.snapshot()
    }
}

fn describe(location: &Location) -> String {
    match location {
        Location::LocalFile(path) => format!("the database file {}", path.display()),
        Location::InMemory => "an in-memory database".to_string(),
        Location::Remote { url, .. } => format!("the remote database {url}"),
        Location::Replica { path, url, .. } => {
            format!("the replica {} of {url}", path.display())
        }
    }
}

/// The checkpoint thread's own connection (waiting for the write lock as others do when a
/// restart checkpoint needs it).
fn checkpoint_connection(
    database: &libsql::Database,
    busy_timeout: Duration,
) -> Result<libsql::Connection> {
    let conn = database
        .connect()
        .map_err(|e| db("opening the checkpoint connection", e))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| db("setting the checkpoint connection's busy timeout", e))?;
    Ok(conn)
}

/// Puts the file in WAL mode (a property of the file: set once, it persists). The switch
/// needs the file to itself and SQLite does not wait for that, so a `Locked` answer
/// (another process opening the same new file) is retried until the busy timeout.
async fn switch_to_wal(raw: &libsql::Connection, busy_timeout: Duration) -> Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let attempt = async {
            let mut rows = raw.query("PRAGMA journal_mode = WAL", ()).await?;
            while rows.next().await?.is_some() {}
            Ok::<(), libsql::Error>(())
        }
        .await
        .map_err(|e| db("switching to WAL", e));
        match attempt {
            Err(e) if e.kind() == ErrorKind::Locked && started.elapsed() < busy_timeout => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Runs `work` inside one immediate transaction on `conn`, bumping the store generation;
/// any failure rolls everything back. Returns the generation this transaction produced.
/// What one write transaction does, owned (it may finish on a task of its own), and its
/// change-feed entry (`memory_core::feed`), recorded with the generation.
struct Work<E: Table> {
    rows: Rows<E>,
    changes: Option<Vec<u8>>,
    /// The items' embedding dimension to check against the store's (and record if it has
    /// none); `None` when the write needs no check.
    dimension: Option<usize>,
    /// Whether the store has vector tables to keep in step (its dimension is known or
    /// fixed by this write); if not, the write finds out at its end (`write_body`).
    vectors: bool,
}

enum Rows<E: Table> {
    Upsert(Vec<Row>),
    Delete(Vec<E::Id>),
}

impl<E: Table> Work<E> {
    /// `feed`: record the changes (else the write leaves a gap in the feed).
    fn upsert(items: &[E], rows: Vec<Row>, feed: bool) -> Result<Self> {
        let changes = match feed {
            true => Some(encode_changes(
                &items.iter().map(Changed::stored).collect::<Vec<Change>>(),
            )?),
            false => None,
        };
        Ok(Work {
            rows: Rows::Upsert(rows),
            changes,
            dimension: None,
            vectors: false,
        })
    }

    fn delete(ids: Vec<E::Id>, feed: bool) -> Result<Self> {
        let changes = match feed {
            true => Some(encode_changes(
                &ids.iter()
                    .map(|id| E::deleted(*id))
                    .collect::<Vec<Change>>(),
            )?),
            false => None,
        };
        Ok(Work {
            rows: Rows::Delete(ids),
            changes,
            dimension: None,
            vectors: false,
        })
    }

    async fn run(&self, conn: &mut Conn) -> Result<()> {
        if let Some(d) = self.dimension {
            fix_dimension(conn, d).await?;
        }
        match &self.rows {
            Rows::Upsert(rows) => {
                upsert_all::<E>(conn, rows).await?;
                if self.vectors {
                    write_vectors::<E>(conn, rows).await?;
                }
                Ok(())
            }
            // The vector tables' triggers remove the deleted items' vectors.
            Rows::Delete(ids) => delete_all::<E>(conn, ids).await,
        }
    }
}

/// How a write transaction failed: before its `COMMIT` was sent (it did not apply), or at
/// the `COMMIT` (remotely, it may have applied and only the answer been lost).
enum Failed {
    Before(StorageError),
    AtCommit(StorageError),
}

impl Failed {
    fn error(&self) -> &StorageError {
        match self {
            Failed::Before(e) | Failed::AtCommit(e) => e,
        }
    }
}

/// Advances the store generation, leaving the write's token in the write log (a trigger
/// writes the log, so this is still one statement: no extra round trip).
/// Answers the embeddings' dimension beside it (a write that did not know whether the store
/// has vector tables learns it without a statement of its own).
const BUMP_GENERATION: &str = "UPDATE store_generation SET generation = generation + 1, \
                               token = ?1, changes = ?2, at_micros = ?3 WHERE id = 1 \
                               RETURNING generation, (SELECT value FROM store_settings \
                               WHERE key = 'embedding_dimension')";
/// The generation, then each change-feed row after `?1` in order (none: one row of NULLs),
/// at most `?2` of them: one consistent read.
const CHANGES_SINCE: &str = "SELECT s.generation, f.generation, f.changes \
                             FROM store_generation s \
                             LEFT JOIN change_feed f ON f.generation > ?1 \
                             WHERE s.id = 1 ORDER BY f.generation LIMIT ?2";
/// The most writes one feed answer lists: all the feed keeps (a reader further behind finds
/// the feed trimmed and flushes). A reader that paused while another process kept writing
/// (its own write waiting for the file's lock, say) catches up item by item.
const FEED_ANSWER_WRITES: u64 = 4_096;
/// Which generation the write with a token produced, if it committed.
const TOKEN_GENERATION: &str = "SELECT generation FROM write_log WHERE token = ?1";

/// A write's statements inside its transaction: the work, then the generation advanced
/// under `token` (the write log's trigger records the token). Answers the generation.
async fn write_body<E: Table>(conn: &mut Conn, work: &Work<E>, token: &[u8]) -> Result<u64> {
    work.run(conn).await?;
    let params = vec![
        Value::Blob(token.to_vec()),
        work.changes.clone().map_or(Value::Null, Value::Blob),
        Value::Integer(memory_core::Timestamp::now().as_micros()),
    ];
    let stmt = statement(conn, BUMP_GENERATION).await?;
    let result = async {
        let mut rows = stmt.query(params).await?;
        match rows.next().await? {
            Some(row) => Ok(Some((row.get::<i64>(0)?, row.get::<Option<i64>>(1)?))),
            None => Ok(None),
        }
    }
    .await;
    stmt.reset();
    let (generation, dimension) = result
        .map_err(|e| db("advancing the store generation", e))?
        .ok_or_else(|| StorageError::corrupt("the store generation row is missing"))?;
    // Another handle fixed the dimension unknown to this one: items written without an
    // embedding may have had one, so their vectors go (the items have none here).
    if let (false, Some(_), Rows::Upsert(rows)) = (work.vectors, dimension, &work.rows) {
        write_vectors::<E>(conn, rows).await?;
    }
    Ok(u64::try_from(generation).unwrap_or_default())
}

/// Runs `work` inside one immediate transaction on `conn`, advancing the store generation
/// under `token`; any failure rolls everything back. Returns the generation this
/// transaction produced. `stage` follows it (the `COMMIT` stage is set just before the
/// `COMMIT` goes out).
async fn write<E: Table>(
    conn: &mut Conn,
    work: &Work<E>,
    token: &[u8],
    stage: &WriteStage,
) -> std::result::Result<u64, Failed> {
    stage.set(WriteStage::BEGIN);
    conn.raw
        .execute("BEGIN IMMEDIATE", ())
        .await
        .map_err(|e| Failed::Before(db("beginning a write transaction", e)))?;
    stage.set(WriteStage::STATEMENTS);
    let result = write_body(conn, work, token).await;
    let committed = match result {
        Ok(value) => {
            stage.set(WriteStage::COMMIT);
            conn.raw
                .execute("COMMIT", ())
                .await
                .map(|_| value)
                .map_err(|e| Failed::AtCommit(db("committing", e)))
        }
        Err(e) => Err(Failed::Before(e)),
    };
    if committed.is_err() {
        rollback(&conn.raw).await;
    }
    committed
}

async fn rollback(raw: &libsql::Connection) {
    if !raw.is_autocommit() {
        // A failed rollback leaves the connection inside the transaction; the pool rolls
        // it back (or discards it) before its next use.
        if let Err(e) = raw.execute("ROLLBACK", ()).await {
            tracing::warn!(error = %e, "rollback failed");
        }
    }
}

/// The cached statement for `sql`.
async fn statement<'c>(conn: &'c mut Conn, sql: &str) -> Result<&'c Statement> {
    let Conn {
        raw, statements, ..
    } = conn;
    statements.get(raw, sql).await
}

async fn execute(conn: &mut Conn, sql: &str, params: Vec<Value>) -> Result<usize> {
    let stmt = statement(conn, sql).await?;
    let result = stmt.execute(params).await;
    stmt.reset();
    result.map_err(|e| db("writing", e))
}

/// The first column of the first row of `sql` as an integer, if there is a row.
async fn optional_integer(conn: &mut Conn, sql: &str, params: Vec<Value>) -> Result<Option<i64>> {
    let stmt = statement(conn, sql).await?;
    let result = async {
        let mut rows = stmt.query(params).await?;
        match rows.next().await? {
            Some(row) => row.get::<i64>(0).map(Some),
            None => Ok(None),
        }
    }
    .await;
    stmt.reset();
    result.map_err(|e| db("reading", e))
}

async fn single_integer(conn: &mut Conn, sql: &str, params: Vec<Value>) -> Result<i64> {
    optional_integer(conn, sql, params)
        .await?
        .ok_or_else(|| StorageError::corrupt(format!("no row from `{sql}`")))
}

/// Checks `dimension` against the store's, recording it if there is none yet (inside the
/// write's transaction, so two first writers cannot record two).
async fn fix_dimension(conn: &mut Conn, dimension: usize) -> Result<()> {
    let d = i64::try_from(dimension).unwrap_or(i64::MAX);
    execute(conn, RECORD_DIMENSION, vec![Value::Integer(d)]).await?;
    let stored = single_integer(conn, DIMENSION, Vec::new()).await?;
    memory_core::search::check_dimension("embedding", dimension, usize::try_from(stored).ok())?;
    conn.raw
        .execute_batch(&vectors::create_sql(dimension))
        .await
        .map_err(|e| db("creating the vector tables", e))?;
    Ok(())
}

/// Brings the vectors of `rows` in step with them: stored for those with an embedding,
/// removed for those without.
async fn write_vectors<E: Table>(conn: &mut Conn, rows: &[Row]) -> Result<()> {
    let Some(table) = E::VECTORS else {
        return Ok(());
    };
    let with: Vec<(&[u8], &[u8])> = rows
        .iter()
        .filter_map(|r| r.embedding.as_deref().map(|e| (r.id.as_slice(), e)))
        .collect();
    let without: Vec<&[u8]> = rows
        .iter()
        .filter(|r| r.embedding.is_none())
        .map(|r| r.id.as_slice())
        .collect();
    for range in table::chunks(with.len(), VECTOR_ROWS) {
        let params = with[range.clone()]
            .iter()
            .flat_map(|(id, v)| [Value::Blob(id.to_vec()), Value::Blob(v.to_vec())])
            .collect();
        execute(conn, &vectors::upsert_sql(table, range.len()), params).await?;
    }
    for range in table::chunks(without.len(), ID_ROWS) {
        let params = without[range.clone()]
            .iter()
            .map(|id| Value::Blob(id.to_vec()))
            .collect();
        execute(conn, &vectors::delete_sql(table, range.len()), params).await?;
    }
    Ok(())
}

/// How long a writer whose commit answer was lost keeps trying to read whether it applied
/// while the store fails transiently.
const RESOLVE_PATIENCE: Duration = Duration::from_secs(10);

/// Vectors per insert statement.
const VECTOR_ROWS: usize = 64;

/// Records the embeddings' dimension unless one is recorded.
const RECORD_DIMENSION: &str = "INSERT INTO store_settings (key, value) \
                                VALUES ('embedding_dimension', ?1) ON CONFLICT (key) DO NOTHING";
/// The embeddings' dimension, if recorded.
pub(crate) const DIMENSION: &str =
    "SELECT value FROM store_settings WHERE key = 'embedding_dimension'";

/// [`read_changes`], unless this connection's `PRAGMA data_version` says no other
/// connection committed since `seen` was read at generation `since`: then nothing changed.
async fn changes_unless_unchanged(
    conn: &mut Conn,
    since: u64,
    seen: &parking_lot::Mutex<Option<(i64, u64)>>,
) -> Result<ChangesSince> {
    let version = single_integer(conn, "PRAGMA data_version", Vec::new()).await?;
    if *seen.lock() == Some((version, since)) {
        return Ok(ChangesSince::Complete {
            position: since,
            writes: Vec::new(),
        });
    }
    // Read after the version: a commit in between makes the next version differ.
    let answer = read_changes(conn, since).await?;
    *seen.lock() = Some((version, answer.position()));
    Ok(answer)
}

/// The feed's answer for the writes after `since` (see [`CHANGES_SINCE`]).
async fn read_changes(conn: &mut Conn, since: u64) -> Result<ChangesSince> {
    let since_param = i64::try_from(since).unwrap_or(i64::MAX);
    let limit = i64::try_from(FEED_ANSWER_WRITES + 1).unwrap_or(i64::MAX);
    let stmt = statement(conn, CHANGES_SINCE).await?;
    let result = async {
        let mut rows = stmt
            .query(vec![Value::Integer(since_param), Value::Integer(limit)])
            .await
            .map_err(|e| db("reading the change feed", e))?;
        let (mut current, mut first, mut writes, mut bulk) = (None, None, Vec::new(), false);
        while let Some(row) = rows
            .next()
            .await
            .map_err(|e| db("reading the change feed", e))?
        {
            let generation: i64 = row.get(0).map_err(|e| db("reading the generation", e))?;
            current = Some(u64::try_from(generation).unwrap_or_default());
            let Some(position) = row
                .get::<Option<i64>>(1)
                .map_err(|e| db("reading a feed position", e))?
            else {
                continue;
            };
            let position = u64::try_from(position).unwrap_or_default();
            first.get_or_insert(position);
            let bytes: Vec<u8> = row.get(2).map_err(|e| db("reading a feed entry", e))?;
            match decode_changes(&bytes)? {
                Some(changes) => writes.push(FeedEntry {
                    position,
                    changes: changes.into(),
                }),
                None => bulk = true,
            }
        }
        Ok::<_, StorageError>((current, first, writes, bulk))
    }
    .await;
    stmt.reset();
    let (current, first, writes, bulk) = result?;
    let position = current.ok_or_else(|| StorageError::corrupt("no store generation row"))?;
    let behind = position.saturating_sub(since);
    let gap = if behind == 0 {
        None
    } else if first != Some(since + 1) {
        // Trimmed, or written without an entry (before the feed existed, or with it off).
        Some(FeedGap::Trimmed)
    } else if bulk || behind > FEED_ANSWER_WRITES {
        Some(FeedGap::TooMany)
    } else if writes.len() as u64 != behind {
        Some(FeedGap::Trimmed)
    } else {
        None
    };
    Ok(match gap {
        Some(gap) => ChangesSince::Unknown { position, gap },
        None if behind == 0 => ChangesSince::Complete {
            position,
            writes: Vec::new(),
        },
        None => ChangesSince::Complete { position, writes },
    })
}

/// The id in a row's first column (one that is not 16 bytes is damage: `Corrupt`).
fn row_id<E: Table>(row: &libsql::Row) -> Result<E::Id> {
    let id_bytes: Vec<u8> = row.get(0).map_err(|e| db("reading an id", e))?;
    let id_bytes: [u8; 16] = id_bytes.try_into().map_err(|bytes: Vec<u8>| {
        StorageError::corrupt(format!("a {} row has a {}-byte id", E::KIND, bytes.len()))
    })?;
    Ok(E::id_from(id_bytes))
}

/// Each row `(id, encoding, payload)` of `sql`: its id and what decoding its payload gave
/// (a row whose id is not 16 bytes fails the call: it cannot be named or paged past).
async fn decoded_rows<E: Table>(
    conn: &mut Conn,
    sql: &str,
    params: Vec<Value>,
) -> Result<Vec<(E::Id, Result<E>)>> {
    let stmt = statement(conn, sql).await?;
    let result = async {
        let mut out = Vec::new();
        let mut rows = stmt.query(params).await.map_err(|e| db("reading", e))?;
        // Local rows are views of the statement: decode each before stepping on.
        while let Some(row) = rows.next().await.map_err(|e| db("reading", e))? {
            let id = row_id::<E>(&row)?;
            let decoded = (|| {
                let encoding: i64 = row.get(1).map_err(|e| db("reading an encoding", e))?;
                let payload: Vec<u8> = row.get(2).map_err(|e| db("reading a payload", e))?;
                decode::<E>(encoding, &payload, format_args!("{} {id}", E::KIND))
            })();
            out.push((id, decoded));
        }
        Ok(out)
    }
    .await;
    stmt.reset();
    result
}

/// `(id, item)` for each row `(id, encoding, payload)` of `sql`; an item that does not
/// decode fails the call.
async fn select_rows<E: Table>(
    conn: &mut Conn,
    sql: &str,
    params: Vec<Value>,
) -> Result<Vec<(E::Id, Arc<E>)>> {
    decoded_rows::<E>(conn, sql, params)
        .await?
        .into_iter()
        .map(|(id, item)| Ok((id, Arc::new(item?))))
        .collect()
}

/// Each row of `sql` as an [`ItemCheck`](memory_core::ItemCheck): an item that does not
/// decode is reported, not an error.
async fn check_rows<E: Table>(
    conn: &mut Conn,
    sql: &str,
    params: Vec<Value>,
) -> Result<Vec<memory_core::ItemCheck>> {
    Ok(decoded_rows::<E>(conn, sql, params)
        .await?
        .into_iter()
        .map(|(id, decoded)| memory_core::ItemCheck::of(id, &decoded))
        .collect())
}

/// The candidates a search statement (`vectors::search_sql`) returns, and how many items
/// its filter matched.
async fn search_rows<E: Table>(conn: &mut Conn, sql: &Sql) -> Result<(Vec<Arc<E>>, i64)> {
    let (mut out, mut matched) = (Vec::new(), 0);
    found_rows::<E>(conn, sql, 1, |row, item| {
        matched = row.get(3).map_err(|e| db("reading a match count", e))?;
        out.push(Arc::new(item));
        Ok(())
    })
    .await?;
    Ok((out, matched))
}

/// The rows of a hybrid search statement (`query::both` of a vector and a text search):
/// the vector search's candidates, and the text search's items scored.
async fn hybrid_rows<E: Table>(
    conn: &mut Conn,
    sql: &Sql,
) -> Result<(Vec<Arc<E>>, Vec<Scored<E>>)> {
    let (mut candidates, mut by_text) = (Vec::new(), Vec::new());
    found_rows::<E>(conn, sql, 2, |row, item| {
        let part: i64 = row.get(0).map_err(|e| db("reading a list", e))?;
        if part == 0 {
            candidates.push(Arc::new(item));
        } else {
            by_text.push(scored_by_rank(row, 4, item)?);
        }
        Ok(())
    })
    .await?;
    Ok((candidates, by_text))
}

/// The items a text search statement (`text_index::search_sql`) returns, scored.
async fn text_rows<E: Table>(conn: &mut Conn, sql: &Sql) -> Result<Vec<Scored<E>>> {
    let mut out = Vec::new();
    found_rows::<E>(conn, sql, 1, |row, item| {
        out.push(scored_by_rank(row, 3, item)?);
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Runs a search statement, handing `each` every row with the item decoded from its
/// columns `at` (encoding) and `at + 1` (payload).
async fn found_rows<E: Table>(
    conn: &mut Conn,
    sql: &Sql,
    at: i32,
    mut each: impl FnMut(&libsql::Row, E) -> Result<()>,
) -> Result<()> {
    let stmt = statement(conn, &sql.text).await?;
    let result = async {
        let mut rows = stmt
            .query(sql.params.clone())
            .await
            .map_err(|e| db("searching", e))?;
        while let Some(row) = rows.next().await.map_err(|e| db("searching", e))? {
            let encoding: i64 = row.get(at).map_err(|e| db("reading an encoding", e))?;
            let payload: Vec<u8> = row.get(at + 1).map_err(|e| db("reading a payload", e))?;
            let item: E = decode(encoding, &payload, format_args!("a {} found", E::KIND))?;
            each(&row, item)?;
        }
        Ok(())
    }
    .await;
    stmt.reset();
    result
}

/// `item` scored by the FTS5 rank in column `at` (negated: higher is better).
fn scored_by_rank<E>(row: &libsql::Row, at: i32, item: E) -> Result<Scored<E>> {
    let rank: f64 = row.get(at).map_err(|e| db("reading a rank", e))?;
    Ok(Scored {
        item: Arc::new(item),
        score: -rank,
    })
}

/// The item with `id`, if stored.
async fn select_one<E: Table>(conn: &mut Conn, id: E::Id) -> Result<Option<Arc<E>>> {
    let stmt = statement(conn, E::SELECT_ONE).await?;
    let result = async {
        let mut rows = stmt
            .query([Value::Blob(E::id_bytes(id).to_vec())])
            .await
            .map_err(|e| db("reading", e))?;
        let Some(row) = rows.next().await.map_err(|e| db("reading", e))? else {
            return Ok(None);
        };
        let encoding: i64 = row.get(0).map_err(|e| db("reading an encoding", e))?;
        let payload: Vec<u8> = row.get(1).map_err(|e| db("reading a payload", e))?;
        let item: E = decode(encoding, &payload, format_args!("{} {id}", E::KIND))?;
        Ok(Some(Arc::new(item)))
    }
    .await;
    stmt.reset();
    result
}

async fn select_by_ids<E: Table>(conn: &mut Conn, ids: &[E::Id]) -> Result<Vec<Option<Arc<E>>>> {
    let mut found: HashMap<E::Id, Arc<E>> = HashMap::with_capacity(ids.len());
    for range in table::chunks(ids.len(), ID_ROWS) {
        let params = ids[range.clone()]
            .iter()
            .map(|id| Value::Blob(E::id_bytes(*id).to_vec()))
            .collect();
        let sql = table::select_by_ids_sql::<E>(range.len());
        found.extend(select_rows::<E>(conn, &sql, params).await?);
    }
    Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
}

/// One item as its table stores it, owned (a write transaction may finish on a task of its
/// own).
pub(crate) struct Row {
    id: Vec<u8>,
    index: Vec<Value>,
    encoding: i64,
    payload: Vec<u8>,
    tags: Vec<String>,
    metadata: Vec<(String, String)>,
    /// The embedding as `F32_BLOB` bytes.
    embedding: Option<Vec<u8>>,
    /// The words its full-text index holds.
    text: Option<String>,
}

impl Row {
    fn of<E: Table>(item: &E, encoding: i64, payload: Vec<u8>) -> Self {
        let side = item.side_rows();
        Row {
            id: E::id_bytes(item.id()).to_vec(),
            index: item.index_values(),
            encoding,
            payload,
            tags: side.tags,
            metadata: side.metadata,
            embedding: item.embedding().map(vectors::blob),
            text: item.indexed_text(),
        }
    }
}

/// Items from which a batch is encoded on two threads.
const SPLIT_ENCODING: usize = 32;

/// The cores this process may use, read once: on Linux the standard library reads the
/// cgroup's files to answer, which a batch write should not do each time.
static CORES: std::sync::LazyLock<usize> =
    std::sync::LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

/// The rows of `items`: encoded (postcard, zstd) with their index values and words. A
/// large batch is split in two and the second half encoded on a thread of its own: a
/// typical episode takes about 0.2 ms, and the store's writer waits while a batch is
/// encoded (an import of typical episodes spent about a third of its time there).
fn encode_rows<E: Table>(codec: &PayloadCodec, items: &[E]) -> Result<Vec<Row>> {
    let one = |item: &E| {
        let (encoding, payload) = codec.encode(item)?;
        Ok(Row::of(item, encoding, payload))
    };
    if items.len() < SPLIT_ENCODING || *CORES < 2 {
        return items.iter().map(one).collect();
    }
    let (first, second) = items.split_at(items.len() / 2);
    std::thread::scope(|scope| {
        let other = std::thread::Builder::new()
            .name("memory-encode".into())
            .spawn_scoped(scope, || second.iter().map(one).collect::<Result<Vec<_>>>());
        let mut rows = first.iter().map(one).collect::<Result<Vec<_>>>()?;
        let rest = match other {
            Ok(handle) => handle.join().map_err(|_| {
                StorageError::new(ErrorKind::Internal, "encoding a batch's items panicked")
            })??,
            // No thread to be had: encode the rest here.
            Err(_) => second.iter().map(one).collect::<Result<Vec<_>>>()?,
        };
        rows.extend(rest);
        Ok(rows)
    })
}

/// Upserts every row and rewrites episodes' side rows, in statement-sized chunks.
/// Searchable items' words go through the write view, or, in a group commit, are noted
/// for the group's one index write (`text_index::PendingText`).
async fn upsert_all<E: Table>(conn: &mut Conn, rows: &[Row]) -> Result<()> {
    let note = match (E::TEXT, conn.pending_text.is_some()) {
        (Some((fts, keys)), true) => Some((E::TABLE, fts, keys)),
        _ => None,
    };
    let through_view = E::WRITE_VIEW.is_some() && note.is_none();
    for range in table::chunks(rows.len(), UPSERT_ROWS) {
        let chunk = &rows[range];
        let mut params = Vec::with_capacity(chunk.len() * E::COLUMNS.len());
        for row in chunk {
            params.push(Value::Blob(row.id.clone()));
            params.extend(row.index.iter().cloned());
            params.push(Value::Integer(row.encoding));
            params.push(Value::Blob(row.payload.clone()));
            if through_view {
                params.push(row.text.clone().map_or(Value::Null, Value::Text));
            }
        }
        execute(
            conn,
            &table::upsert_sql::<E>(chunk.len(), through_view),
            params,
        )
        .await?;
    }
    if let (Some(tables), Some(pending)) = (note, conn.pending_text.as_mut()) {
        pending.extend(rows.iter().filter_map(|row| {
            row.text.as_ref().map(|words| text_index::PendingText {
                tables,
                id: row.id.clone(),
                words: words.clone(),
            })
        }));
    }
    if !E::SIDE_TABLES.is_empty() {
        rewrite_side_rows(conn, E::SIDE_TABLES, rows).await?;
    }
    Ok(())
}

async fn rewrite_side_rows(conn: &mut Conn, sides: &[&str], rows: &[Row]) -> Result<()> {
    for side in sides {
        for range in table::chunks(rows.len(), ID_ROWS) {
            let params = rows[range.clone()]
                .iter()
                .map(|row| Value::Blob(row.id.clone()))
                .collect();
            execute(conn, &table::delete_side_sql(side, range.len()), params).await?;
        }
    }
    let tags: Vec<(&str, &[u8])> = rows
        .iter()
        .flat_map(|row| row.tags.iter().map(|t| (t.as_str(), row.id.as_slice())))
        .collect();
    let metadata: Vec<(&str, &str, &[u8])> = rows
        .iter()
        .flat_map(|row| {
            row.metadata
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str(), row.id.as_slice()))
        })
        .collect();
    for range in table::chunks(tags.len(), SIDE_ROWS) {
        let params = tags[range.clone()]
            .iter()
            .flat_map(|(tag, id)| [Value::Text((*tag).to_string()), Value::Blob(id.to_vec())])
            .collect();
        execute(conn, &table::insert_tags_sql(range.len()), params).await?;
    }
    for range in table::chunks(metadata.len(), SIDE_ROWS) {
        let params = metadata[range.clone()]
            .iter()
            .flat_map(|(k, v, id)| {
                [
                    Value::Text((*k).to_string()),
                    Value::Text((*v).to_string()),
                    Value::Blob(id.to_vec()),
                ]
            })
            .collect();
        execute(conn, &table::insert_metadata_sql(range.len()), params).await?;
    }
    Ok(())
}

/// Deletes every id, or none if any is missing (`NotFound` names the first missing one).
async fn delete_all<E: Table>(conn: &mut Conn, ids: &[E::Id]) -> Result<()> {
    let mut present = std::collections::HashSet::with_capacity(ids.len());
    for range in table::chunks(ids.len(), ID_ROWS) {
        let params: Vec<Value> = ids[range.clone()]
            .iter()
            .map(|id| Value::Blob(E::id_bytes(*id).to_vec()))
            .collect();
        let stmt = statement(conn, &table::existing_ids_sql::<E>(range.len())).await?;
        let found = async {
            let mut rows = stmt.query(params).await?;
            let mut found = Vec::new();
            while let Some(row) = rows.next().await? {
                found.push(row.get::<Vec<u8>>(0)?);
            }
            Ok::<_, libsql::Error>(found)
        }
        .await;
        stmt.reset();
        present.extend(found.map_err(|e| db("reading ids", e))?);
    }
    if let Some(missing) = ids
        .iter()
        .find(|id| !present.contains(E::id_bytes(**id).as_slice()))
    {
        return Err(StorageError::not_found(E::KIND, missing));
    }
    for range in table::chunks(ids.len(), ID_ROWS) {
        let params = ids[range.clone()]
            .iter()
            .map(|id| Value::Blob(E::id_bytes(*id).to_vec()))
            .collect();
        execute(conn, &table::delete_sql::<E>(range.len()), params).await?;
    }
    Ok(())
}

#[async_trait]
impl StorageBackend for TursoStorage {
    fn backend_name(&self) -> &'static str {
        match self.inner.config.location {
            Location::LocalFile(_) => "libsql-local",
            Location::InMemory => "libsql-memory",
            Location::Remote { .. } => "libsql-remote",
            Location::Replica { .. } => "libsql-replica",
        }
    }

    async fn store_episode(&self, episode: &Episode) -> Result<()> {
        episode.validate()?;
        self.store_items(std::slice::from_ref(episode)).await
    }
    async fn get_episode(&self, id: EpisodeId) -> Result<Option<Arc<Episode>>> {
        self.get_item::<Episode>(id).await
    }
    async fn delete_episode(&self, id: EpisodeId) -> Result<()> {
        self.delete_items::<Episode>(&[id]).await
    }
    async fn store_episodes(&self, episodes: &[Episode]) -> Result<()> {
        validate_batch(episodes)?;
        self.store_items(episodes).await
    }
    async fn get_episodes(&self, ids: &[EpisodeId]) -> Result<Vec<Option<Arc<Episode>>>> {
        validate_ids(ids, false)?;
        self.get_items(ids).await
    }
    async fn delete_episodes(&self, ids: &[EpisodeId]) -> Result<()> {
        self.delete_items::<Episode>(ids).await
    }
    async fn query_episodes(&self, query: &EpisodeQuery) -> Result<EpisodePage> {
        query.validate()?;
        let items = self
            .select_items::<Episode>(&query::episodes(query))
            .await?;
        Ok(EpisodePage::from_overfetch(items, query.limit))
    }
    async fn count_episodes(&self) -> Result<u64> {
        self.count_items::<Episode>().await
    }

    async fn store_pattern(&self, pattern: &Pattern) -> Result<()> {
        pattern.validate()?;
        self.store_items(std::slice::from_ref(pattern)).await
    }
    async fn get_pattern(&self, id: PatternId) -> Result<Option<Arc<Pattern>>> {
        self.get_item::<Pattern>(id).await
    }
    async fn delete_pattern(&self, id: PatternId) -> Result<()> {
        self.delete_items::<Pattern>(&[id]).await
    }
    async fn store_patterns(&self, patterns: &[Pattern]) -> Result<()> {
        validate_batch(patterns)?;
        self.store_items(patterns).await
    }
    async fn get_patterns(&self, ids: &[PatternId]) -> Result<Vec<Option<Arc<Pattern>>>> {
        validate_ids(ids, false)?;
        self.get_items(ids).await
    }
    async fn delete_patterns(&self, ids: &[PatternId]) -> Result<()> {
        self.delete_items::<Pattern>(ids).await
    }
    async fn query_patterns(&self, query: &PatternQuery) -> Result<Vec<Arc<Pattern>>> {
        query.validate()?;
        self.select_items::<Pattern>(&query::patterns(query)).await
    }
    async fn count_patterns(&self) -> Result<u64> {
        self.count_items::<Pattern>().await
    }
    async fn list_patterns(
        &self,
        after: Option<PatternId>,
        limit: usize,
    ) -> Result<Vec<Arc<Pattern>>> {
        self.list_items(after, limit).await
    }
    async fn list_heuristics(
        &self,
        after: Option<HeuristicId>,
        limit: usize,
    ) -> Result<Vec<Arc<Heuristic>>> {
        self.list_items(after, limit).await
    }

    async fn check_items(
        &self,
        kind: memory_core::EntityKind,
        after: Option<memory_core::Uuid>,
        limit: usize,
    ) -> Result<Vec<memory_core::ItemCheck>> {
        match kind {
            memory_core::EntityKind::Episode => self.check_items_of::<Episode>(after, limit).await,
            memory_core::EntityKind::Pattern => self.check_items_of::<Pattern>(after, limit).await,
            memory_core::EntityKind::Heuristic => {
                self.check_items_of::<Heuristic>(after, limit).await
            }
        }
    }

    /// By vector (the index, or every match below `exact_search_below`), by text (FTS5), or
    /// both in one statement (`hybrid_items`).
    async fn search_episodes(&self, search: &EpisodeSearch) -> Result<Vec<Scored<Episode>>> {
        search.validate()?;
        let filter = || {
            let domain = search.filter.domain.clone();
            (query::episode_filter(&search.filter), domain)
        };
        let matches = |e: &Episode| search.filter.matches(e);
        if let SearchBy::Hybrid { vector, text } = &search.by {
            let (v, t, min) = (vector.clone(), text.clone(), search.min_score);
            return self
                .hybrid_items::<Episode>(filter(), v, t, search.k, min, matches)
                .await;
        }
        memory_core::search::dispatch(
            &search.by,
            search.k,
            |v, n, complete| {
                let min = search.min_score;
                self.search_items::<Episode>(filter(), v, n, min, complete, matches)
            },
            |t, n| self.text_items::<Episode>(filter().0, t, n),
        )
        .await
    }

    async fn search_patterns(&self, search: &PatternSearch) -> Result<Vec<Scored<Pattern>>> {
        search.validate()?;
        let filter = || {
            let domain = search.filter.domain.clone();
            (query::pattern_filter(&search.filter), domain)
        };
        let matches = |p: &Pattern| search.filter.matches(p);
        if let SearchBy::Hybrid { vector, text } = &search.by {
            let (v, t, min) = (vector.clone(), text.clone(), search.min_score);
            return self
                .hybrid_items::<Pattern>(filter(), v, t, search.k, min, matches)
                .await;
        }
        memory_core::search::dispatch(
            &search.by,
            search.k,
            |v, n, complete| {
                let min = search.min_score;
                self.search_items::<Pattern>(filter(), v, n, min, complete, matches)
            },
            |t, n| self.text_items::<Pattern>(filter().0, t, n),
        )
        .await
    }

    async fn store_heuristic(&self, heuristic: &Heuristic) -> Result<()> {
        heuristic.validate()?;
        self.store_items(std::slice::from_ref(heuristic)).await
    }
    async fn get_heuristic(&self, id: HeuristicId) -> Result<Option<Arc<Heuristic>>> {
        self.get_item::<Heuristic>(id).await
    }
    async fn delete_heuristic(&self, id: HeuristicId) -> Result<()> {
        self.delete_items::<Heuristic>(&[id]).await
    }
    async fn store_heuristics(&self, heuristics: &[Heuristic]) -> Result<()> {
        validate_batch(heuristics)?;
        self.store_items(heuristics).await
    }
    async fn get_heuristics(&self, ids: &[HeuristicId]) -> Result<Vec<Option<Arc<Heuristic>>>> {
        validate_ids(ids, false)?;
        self.get_items(ids).await
    }
    async fn delete_heuristics(&self, ids: &[HeuristicId]) -> Result<()> {
        self.delete_items::<Heuristic>(ids).await
    }
    async fn count_heuristics(&self) -> Result<u64> {
        self.count_items::<Heuristic>().await
    }
}

/// The store generation is the change position: every write transaction of any client
/// advances it by one, and each write reports its generation to the cache that made it
/// (`memory_core::change::report_write`). On an embedded replica a check first syncs the
/// replica (within the configured cache's change-check interval), so that its position is
/// the primary's as of the check and the staleness bound stays the check interval; a
/// primary that does not answer in time leaves the replica's own position (what it holds is
/// all a replica can serve then).
#[async_trait]
impl ChangeSignal for TursoStorage {
    async fn change_position(&self) -> Result<u64> {
        self.sync_for_check().await;
        self.generation().await
    }

    /// Read from the `change_feed` table the writes' trigger fills (see the schema): one
    /// statement, so one round trip remotely.
    async fn changes_since(&self, position: u64) -> Result<ChangesSince> {
        self.sync_for_check().await;
        self.read_changes_since(position).await
    }

    /// On a local file with a writer thread: each commit records its position under the lock
    /// the generation is read under. Elsewhere positions are reported after the write.
    fn reports_before_visible(&self) -> bool {
        self.inner.signal.is_some()
    }
}

/// A cache setting the decorator refused, as a validation error on `cache.<field>`.
fn cache_error(e: memory_storage_cached::ConfigError) -> StorageError {
    memory_core::ValidationError::new(
        format!("cache.{}", e.field),
        memory_core::Problem::Invalid(e.reason),
    )
    .into()
}
