//! The connection pool: bounded, async checkout with a timeout, connections returned on
//! drop and reused (with their prepared statements), health-checked only after idling,
//! broken ones discarded.
//!
//! A local file's writes do not check out a pooled connection: they queue for the store's
//! writer thread ([`Writer`]), which owns the one connection that writes, so this process's
//! write transactions never sleep in SQLite's busy handler for each other. The pool's
//! `max_connections - 1` connections are then the readers, which in WAL mode never wait for
//! the writer. Remote databases and replicas have no writer thread (the server serializes
//! writes): their writes take turns on one connection of their own, beside the other
//! `max_connections` minus one that read, so that this process never has two transactions
//! waiting in the server's queue for its write lock (sqld's queue can stall on a
//! connection that gave up waiting: docs/RELIABILITY.md). The in-memory database has one
//! connection for everything.
//!
//! Local SQLite calls block the thread they run on (a statement, a checkpoint, the busy
//! handler's sleeps), so every one of them runs through [`off_worker`] (under
//! `block_in_place`, or on a blocking thread) or on the store's own threads, never on a
//! thread that is serving as an async worker.

use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libsql::{Connection, Database};
pub use memory_core::stats::{PoolStats, PoolStatsSnapshot, WAIT_BUCKETS, WAIT_SLOTS};
use memory_core::{ErrorKind, StorageError};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::config::{Location, PoolConfig, TursoConfig};
use crate::error::db;
use crate::statements::{StatementCache, StatementCounters};
use crate::writer::Writer;

#[derive(Default)]
struct Counters {
    waits: AtomicU64,
    wait_nanos: AtomicU64,
    wait_histogram: [AtomicU64; WAIT_SLOTS],
    timeouts: AtomicU64,
    created: AtomicU64,
    discarded: AtomicU64,
}

/// A pooled connection with its statements.
pub(crate) struct Conn {
    pub(crate) raw: Connection,
    pub(crate) statements: StatementCache,
    /// `Some` while a group commit runs on this connection: searchable items' words are
    /// noted here and written once before the commit (`text_index::PendingText`).
    pub(crate) pending_text: Option<Vec<crate::text_index::PendingText>>,
    idle_since: Instant,
}

pub(crate) struct Pool {
    db: Arc<Database>,
    local: bool,
    /// The in-memory database lives in its one connection: that connection is never
    /// discarded (a new one would be a new, empty database).
    pinned: bool,
    config: PoolConfig,
    busy_timeout: Duration,
    /// `PRAGMA cache_size` of every local connection (negative: KiB).
    cache_size: i64,
    /// `PRAGMA mmap_size` of every local file connection, in bytes.
    mmap_size: i64,
    /// `PRAGMA journal_size_limit` of every local file connection, in bytes.
    journal_size_limit: i64,
    /// Statements kept per connection; `None` prepares each use (configured so, or an
    /// embedded replica, whose statements cannot be reused: see `statements`).
    statement_capacity: Option<NonZeroUsize>,
    /// The connections that read (all of them when writes have no connection of their own).
    readers: Slots,
    /// A remote database's or replica's one connection that writes, when the pool has
    /// room for it beside a reader.
    remote_writes: Option<Slots>,
    /// A local file's writer thread, which owns the one connection that writes; elsewhere
    /// writes check out a pooled connection.
    writer: OnceLock<Writer>,
    counters: Counters,
    pub(crate) statement_counters: Arc<StatementCounters>,
}

impl Pool {
    /// A pool of connections to `db`, set up as `config` says.
    pub(crate) fn new(db: Arc<Database>, config: &TursoConfig) -> Result<Arc<Self>, StorageError> {
        let location = &config.location;
        let max = config.pool.max_connections;
        let own_writer = matches!(location, Location::LocalFile(_)) && max >= 2;
        let local = matches!(location, Location::LocalFile(_) | Location::InMemory);
        let remote_writes = (!local && max >= 2).then(|| Slots::new(1));
        let size = if own_writer || remote_writes.is_some() {
            max - 1
        } else {
            max
        };
        let pool = Arc::new(Pool {
            db,
            local,
            pinned: matches!(location, Location::InMemory),
            readers: Slots::new(size),
            remote_writes,
            writer: OnceLock::new(),
            config: config.pool.clone(),
            busy_timeout: config.busy_timeout,
            cache_size: -(config.page_cache_kib as i64),
            mmap_size: i64::from(config.mmap_mib) * 1024 * 1024,
            // SQLite's default page size; a larger one only makes the file bound looser.
            journal_size_limit: i64::from(config.wal_limit_pages) * 4096,
            statement_capacity: NonZeroUsize::new(config.statement_cache_capacity)
                .filter(|_| !matches!(location, Location::Replica { .. })),
            counters: Counters::default(),
            statement_counters: Arc::new(StatementCounters::default()),
        });
        if own_writer {
            let writer = Writer::start(Arc::downgrade(&pool))?;
            let _ = pool.writer.set(writer);
        }
        Ok(pool)
    }

    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    /// Queues `work` for the writer thread, between two writes, without waiting for it
    /// (`false` without a writer thread, or once it stopped).
    pub(crate) fn between_writes<F>(&self, work: F) -> bool
    where
        F: for<'c> FnOnce(&'c mut Conn) -> Job<'c, ()> + Send + 'static,
    {
        self.writer.get().is_some_and(|writer| writer.submit(work))
    }

    /// The writer thread, if this pool has one.
    pub(crate) fn writer(&self) -> Option<&Writer> {
        self.writer.get()
    }

    /// Whether a writer thread runs this pool's writes.
    pub(crate) fn has_writer(&self) -> bool {
        self.writer.get().is_some()
    }

    /// Whether SQLite runs in this process (a local file or memory): its calls block.
    pub(crate) fn is_local(&self) -> bool {
        self.local
    }

    /// A connection (for reading, where writes have a connection or thread of their own),
    /// waiting up to the checkout timeout for one to be free.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<PooledConn, StorageError> {
        self.checkout(Use::Read).await
    }

    async fn checkout(self: &Arc<Self>, usage: Use) -> Result<PooledConn, StorageError> {
        let slots = self.slots(usage);
        let permit = match Arc::clone(&slots.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => self.wait_for_permit(usage).await?,
        };
        let candidate = slots.idle.lock().pop();
        // Reused at once when it has not idled long and is not inside a transaction (the
        // usual case: nothing to ask SQLite); otherwise checked, or opened, off the worker.
        if let Some(conn) = candidate {
            let health = self.config.health_check_after;
            if conn.raw.is_autocommit() && conn.idle_since.elapsed() < health {
                return Ok(self.wrap(conn, permit, usage));
            }
            let (ok, conn) = off_worker(self.local, async move {
                let ok = usable(&conn, health).await;
                Ok((ok, conn))
            })
            .await?;
            if ok || self.pinned {
                return Ok(self.wrap(conn, permit, usage));
            }
            self.counters.discarded.fetch_add(1, Ordering::Relaxed);
        }
        let pool = Arc::clone(self);
        let conn = off_worker(self.local, async move { pool.open().await }).await?;
        Ok(self.wrap(conn, permit, usage))
    }

    /// The connections for `usage`: writes use the readers' where they have none of
    /// their own.
    fn slots(&self, usage: Use) -> &Slots {
        match (usage, &self.remote_writes) {
            (Use::RemoteWrite, Some(writes)) => writes,
            _ => &self.readers,
        }
    }

    /// Runs one write's `work` on the connection that writes, in this process's order of
    /// writes: a local file's writer thread, else the remote write connection (one write at
    /// a time), else the one pooled connection. `work` answers its
    /// result and whether the connection is to be thrown away (a connection-level failure).
    pub(crate) async fn exclusive<R, F>(self: &Arc<Self>, work: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> Job<'c, (R, bool)> + Send + 'static,
    {
        if let Some(writer) = self.writer.get() {
            return writer.run(work).await;
        }
        let pooled = self
            .checkout(Use::RemoteWrite)
            .instrument(phase_span!("write_checkout"))
            .await?;
        let (mut pooled, (result, discard)) = run_on(self.local, pooled, work)
            .instrument(phase_span!("write_transaction"))
            .await?;
        if discard {
            pooled.discard();
        }
        Ok(result)
    }

    /// Counts one checkout that had to wait `waited`.
    pub(crate) fn record_wait(&self, waited: Duration) {
        self.counters.waits.fetch_add(1, Ordering::Relaxed);
        self.counters
            .wait_nanos
            .fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
        let slot = WAIT_BUCKETS
            .iter()
            .position(|bound| waited <= *bound)
            .unwrap_or(WAIT_BUCKETS.len());
        self.counters.wait_histogram[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one checkout that waited past the checkout timeout.
    pub(crate) fn record_timeout(&self) {
        self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one connection thrown away.
    pub(crate) fn record_discard(&self) {
        self.counters.discarded.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn checkout_timeout(&self) -> Duration {
        self.config.checkout_timeout
    }

    async fn wait_for_permit(&self, usage: Use) -> Result<OwnedSemaphorePermit, StorageError> {
        let started = Instant::now();
        let writes = self.remote_writes.is_some() && usage == Use::RemoteWrite;
        // A write waits for this process's earlier writes as it would for the server's
        // write lock: up to the busy timeout, then `Locked` (which a write waits out within
        // its operation timeout, as it does the server's lock).
        let limit = if writes {
            self.busy_timeout
        } else {
            self.config.checkout_timeout
        };
        let acquired = tokio::time::timeout(
            limit,
            Arc::clone(&self.slots(usage).permits).acquire_owned(),
        )
        .await;
        if !writes {
            self.record_wait(started.elapsed());
        }
        match acquired {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(StorageError::new(
                ErrorKind::Unavailable,
                "the connection pool is closed",
            )),
            Err(_elapsed) if writes => Err(StorageError::new(
                ErrorKind::Locked,
                format!(
                    "this process's earlier writes to the server held its write connection \
                     for {limit:?}"
                ),
            )),
            Err(_elapsed) => {
                self.record_timeout();
                Err(StorageError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "connection pool exhausted: all {} {}connections stayed in use for {:?}",
                        self.readers.size,
                        if self.writer.get().is_some() || self.remote_writes.is_some() {
                            "reader "
                        } else {
                            ""
                        },
                        self.config.checkout_timeout
                    ),
                ))
            }
        }
    }

    fn wrap(self: &Arc<Self>, conn: Conn, permit: OwnedSemaphorePermit, usage: Use) -> PooledConn {
        PooledConn {
            conn: Some(conn),
            pool: Arc::clone(self),
            usage,
            broken: false,
            _permit: permit,
        }
    }

    /// Opens and configures a new connection. Local connections each get the busy timeout
    /// and pragmas: they are per connection in SQLite, so setting them once is not enough.
    pub(crate) async fn open(&self) -> Result<Conn, StorageError> {
        let raw = self
            .db
            .connect()
            .map_err(|e| db("opening a connection", e))?;
        if self.local {
            raw.busy_timeout(self.busy_timeout)
                .map_err(|e| db("setting the busy timeout", e))?;
            let mut pragmas = vec![
                "PRAGMA foreign_keys = ON".to_string(),
                "PRAGMA synchronous = NORMAL".to_string(),
                // PRAGMA takes no parameters; the values are integers of ours.
                format!("PRAGMA cache_size = {}", self.cache_size),
                // Statement journals in memory: every write of a group commit is a
                // savepoint, and past 64 KiB SQLite spilled each savepoint's journal to a
                // temporary file, about a sixth of the writer thread's time (perf, soak).
                "PRAGMA temp_store = MEMORY".to_string(),
            ];
            if !self.pinned {
                pragmas.push(format!("PRAGMA mmap_size = {}", self.mmap_size));
            }
            if !self.pinned {
                // A file's checkpoints run on the store's checkpointer, never in a commit.
                pragmas.push("PRAGMA wal_autocheckpoint = 0".to_string());
                pragmas.push(format!(
                    "PRAGMA journal_size_limit = {}",
                    self.journal_size_limit
                ));
            }
            for sql in &pragmas {
                pragma(&raw, sql)
                    .await
                    .map_err(|e| db("configuring a connection", e))?;
            }
        }
        self.counters.created.fetch_add(1, Ordering::Relaxed);
        Ok(Conn {
            raw,
            statements: StatementCache::new(
                self.statement_capacity,
                Arc::clone(&self.statement_counters),
            ),
            pending_text: None,
            idle_since: Instant::now(),
        })
    }

    pub(crate) fn stats(&self) -> PoolStatsSnapshot {
        let (writer_open, writer_busy) = self.writer.get().map_or((0, 0), Writer::occupancy);
        let (mut idle, mut in_use) = self.readers.occupancy();
        if let Some(writes) = &self.remote_writes {
            let (writes_idle, writes_in_use) = writes.occupancy();
            idle += writes_idle;
            in_use += writes_in_use;
        }
        idle += writer_open - writer_busy;
        in_use += writer_busy;
        let max_size = self.config.max_connections as u64;
        PoolStatsSnapshot {
            max_size,
            open: in_use + idle,
            in_use,
            idle,
            waits: self.counters.waits.load(Ordering::Relaxed),
            wait_time: Duration::from_nanos(self.counters.wait_nanos.load(Ordering::Relaxed)),
            wait_histogram: std::array::from_fn(|i| {
                self.counters.wait_histogram[i].load(Ordering::Relaxed)
            }),
            timeouts: self.counters.timeouts.load(Ordering::Relaxed),
            created: self.counters.created.load(Ordering::Relaxed),
            discarded: self.counters.discarded.load(Ordering::Relaxed),
        }
    }
}

/// What a connection is checked out for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    Read,
    /// A write without a writer thread: on the remote write connection where there is one.
    RemoteWrite,
}

/// Connections of one use: the permits that bound them and the idle ones (reused last in,
/// first out).
struct Slots {
    permits: Arc<Semaphore>,
    size: usize,
    idle: Mutex<Vec<Conn>>,
}

impl Slots {
    fn new(size: usize) -> Self {
        Slots {
            permits: Arc::new(Semaphore::new(size)),
            size,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// `(idle, in use)`.
    fn occupancy(&self) -> (u64, u64) {
        (
            self.idle.lock().len() as u64,
            (self.size - self.permits.available_permits()) as u64,
        )
    }
}

/// One piece of work on a connection: a future borrowing it, owning everything else (it
/// may run on a blocking thread, and finish after its caller stopped waiting).
pub(crate) type Job<'c, R> = Pin<Box<dyn Future<Output = R> + Send + 'c>>;

/// Gives a closure the signature of a [`Job`] maker (closures do not infer it).
pub(crate) fn job<R, F>(f: F) -> F
where
    F: for<'c> Fn(&'c mut Conn) -> Job<'c, R>,
{
    f
}

/// Runs `work` on `pooled`'s connection: on a blocking thread for local SQLite, here for a
/// remote database. A connection whose work was cut off half-way (its future dropped, so
/// only remotely) is never reused: its state is unknown.
pub(crate) async fn run_on<R, F>(
    local: bool,
    mut pooled: PooledConn,
    work: F,
) -> Result<(PooledConn, R), StorageError>
where
    R: Send + 'static,
    F: for<'c> FnOnce(&'c mut Conn) -> Job<'c, R> + Send + 'static,
{
    off_worker(local, async move {
        pooled.set_broken(true);
        let result = work(pooled.conn()?).await;
        pooled.set_broken(false);
        Ok((pooled, result))
    })
    .await
}

/// Runs a pragma, reading whatever it answers.
async fn pragma(raw: &Connection, sql: &str) -> Result<(), libsql::Error> {
    let mut rows = raw.query(sql, ()).await?;
    while rows.next().await?.is_some() {}
    Ok(())
}

/// Runs `job` off the async workers when `blocking` (local SQLite: its calls block the
/// thread), else here. On a multi-thread runtime the worker first hands its other tasks to
/// another thread (`block_in_place`) and then runs the job itself: nothing waits for the
/// job but its caller, and the caller waits for no thread to wake (a hop to a blocking
/// thread made an uncached get 2.7x raw libsql's time, this 1.1x). A current-thread
/// runtime cannot hand its tasks over: there the job runs on a blocking thread. Either
/// way the job runs to its end even if the caller stops waiting.
pub(crate) async fn off_worker<T, F>(blocking: bool, job: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, StorageError>> + Send + 'static,
{
    if !blocking {
        return job.await;
    }
    run_blocking(move |runtime| runtime.block_on(job)).await
}

/// Runs blocking `work` as [`off_worker`] says, giving it the runtime's handle (for
/// `Handle::block_on` of libsql's futures).
pub(crate) async fn run_blocking<T, W>(work: W) -> Result<T, StorageError>
where
    T: Send + 'static,
    W: FnOnce(&tokio::runtime::Handle) -> Result<T, StorageError> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        return tokio::task::block_in_place(|| work(&runtime));
    }
    tokio::task::spawn_blocking(move || work(&runtime))
        .await
        .map_err(|e| {
            StorageError::with_source(ErrorKind::Internal, "a database call panicked", e)
        })?
}

/// Whether an idle connection may be handed out: one left inside a transaction (its user's
/// future was dropped mid-operation) is rolled back first, and one idle past the threshold
/// must answer `SELECT 1`.
async fn usable(conn: &Conn, health_check_after: Duration) -> bool {
    if !conn.raw.is_autocommit() && conn.raw.execute("ROLLBACK", ()).await.is_err() {
        return false;
    }
    if conn.idle_since.elapsed() < health_check_after {
        return true;
    }
    match conn.raw.query("SELECT 1", ()).await {
        Ok(mut rows) => matches!(rows.next().await, Ok(Some(_))),
        Err(_) => false,
    }
}

/// A connection dropped inside a transaction (its user's future was cut off) must not hold
/// the database's write lock until it is next checked out, which may be never: it is
/// thrown away. A local connection rolls back as it closes; a remote one is told to roll
/// back (on a task, when there is a runtime), else the server keeps the transaction until
/// its own timeout.
fn release_transaction(conn: Conn) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        if let Err(e) = conn.raw.execute("ROLLBACK", ()).await {
            tracing::debug!(error = %e, "rolling back a connection dropped inside a transaction");
        }
    });
}

/// A checked-out connection; it goes back to the pool when dropped, unless marked broken
/// or left inside a transaction.
pub(crate) struct PooledConn {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    usage: Use,
    broken: bool,
    // Released after the connection is back in the idle list (fields drop in order).
    _permit: OwnedSemaphorePermit,
}

impl PooledConn {
    /// Marks the connection as not to be reused (after a connection-level failure).
    pub(crate) fn discard(&mut self) {
        self.broken = true;
    }

    /// Sets whether the connection is thrown away when dropped.
    pub(crate) fn set_broken(&mut self, broken: bool) {
        self.broken = broken;
    }

    /// The connection (present until the drop that returns it).
    pub(crate) fn conn(&mut self) -> Result<&mut Conn, StorageError> {
        self.conn
            .as_mut()
            .ok_or_else(|| StorageError::internal("pooled connection used after release"))
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let in_transaction = !conn.raw.is_autocommit();
        if self.pool.pinned {
            // The in-memory database lives in this one connection: keep it (a transaction
            // left open is rolled back at the next checkout; nobody else can wait on it).
            conn.idle_since = Instant::now();
            self.pool.slots(self.usage).idle.lock().push(conn);
            return;
        }
        if self.broken || in_transaction {
            self.pool.counters.discarded.fetch_add(1, Ordering::Relaxed);
            // A local connection rolls back as it closes, here and now.
            if in_transaction && !self.pool.local {
                release_transaction(conn);
            }
            return;
        }
        conn.idle_since = Instant::now();
        self.pool.slots(self.usage).idle.lock().push(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pragma(conn: &Connection, name: &str) -> String {
        let mut rows = conn.query(&format!("PRAGMA {name}"), ()).await.unwrap();
        let row = rows.next().await.unwrap().unwrap();
        row.get_value(0).map(|v| format!("{v:?}")).unwrap()
    }

    async fn local_pool(dir: &tempfile::TempDir, config: PoolConfig) -> Arc<Pool> {
        let path = dir.path().join("pool.db");
        let db = libsql::Builder::new_local(&path).build().await.unwrap();
        let mut store_config = TursoConfig::local(path)
            .busy_timeout(Duration::from_millis(1_234))
            .page_cache_kib(4_321)
            .mmap_mib(96);
        store_config.pool = config;
        Pool::new(Arc::new(db), &store_config).unwrap()
    }

    #[tokio::test]
    async fn every_connection_gets_the_busy_timeout_and_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let pool = local_pool(&dir, PoolConfig::default()).await;
        // Three connections open at once: each is a separate SQLite connection.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pool.get().await.unwrap());
        }
        for pooled in &mut held {
            let raw = &pooled.conn().unwrap().raw;
            assert_eq!(pragma(raw, "busy_timeout").await, "Integer(1234)");
            assert_eq!(pragma(raw, "foreign_keys").await, "Integer(1)");
            assert_eq!(pragma(raw, "synchronous").await, "Integer(1)", "NORMAL");
            assert_eq!(pragma(raw, "cache_size").await, "Integer(-4321)", "KiB");
            assert_eq!(pragma(raw, "temp_store").await, "Integer(2)", "MEMORY");
            assert_eq!(
                pragma(raw, "mmap_size").await,
                "Integer(100663296)",
                "96 MiB"
            );
        }
        assert_eq!(pool.stats().created, 3);
        assert_eq!(pool.stats().in_use, 3);
        drop(held);
        assert_eq!(pool.stats().idle, 3);
        assert_eq!(pool.stats().in_use, 0);
    }

    #[tokio::test]
    async fn idle_connections_are_checked_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let pool = local_pool(
            &dir,
            PoolConfig {
                health_check_after: Duration::ZERO,
                ..PoolConfig::default()
            },
        )
        .await;
        for _ in 0..5 {
            let mut pooled = pool.get().await.unwrap();
            pooled.conn().unwrap();
        }
        let stats = pool.stats();
        assert_eq!((stats.created, stats.discarded), (1, 0), "{stats:?}");
    }

    #[tokio::test]
    async fn a_connection_dropped_inside_a_transaction_releases_the_lock_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let pool = local_pool(&dir, PoolConfig::default()).await;
        {
            let mut pooled = pool.get().await.unwrap();
            let raw = &pooled.conn().unwrap().raw;
            raw.execute("CREATE TABLE t (x INTEGER)", ()).await.unwrap();
        }
        {
            let mut pooled = pool.get().await.unwrap();
            let raw = &pooled.conn().unwrap().raw;
            raw.execute("BEGIN IMMEDIATE", ()).await.unwrap();
            raw.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
            // Dropped mid-transaction, as a cancelled future would leave it.
        }
        let stats = pool.stats();
        assert_eq!((stats.idle, stats.discarded), (0, 1), "not kept: {stats:?}");
        // Another connection of the file takes the write lock without waiting for it.
        let other = libsql::Builder::new_local(dir.path().join("pool.db"))
            .build()
            .await
            .unwrap()
            .connect()
            .unwrap();
        other.busy_timeout(Duration::from_millis(1)).unwrap();
        other.execute("BEGIN IMMEDIATE", ()).await.unwrap();
        let mut rows = other.query("SELECT COUNT(*) FROM t", ()).await.unwrap();
        let count: i64 = rows.next().await.unwrap().unwrap().get(0).unwrap();
        assert_eq!(count, 0, "the abandoned insert was rolled back");
        other.execute("ROLLBACK", ()).await.unwrap();
    }

    #[tokio::test]
    async fn broken_connections_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let pool = local_pool(&dir, PoolConfig::default()).await;
        let mut pooled = pool.get().await.unwrap();
        pooled.discard();
        drop(pooled);
        let stats = pool.stats();
        assert_eq!((stats.idle, stats.discarded), (0, 1), "{stats:?}");
        drop(pool.get().await.unwrap());
        assert_eq!(pool.stats().created, 2, "a fresh connection replaced it");
    }
}
