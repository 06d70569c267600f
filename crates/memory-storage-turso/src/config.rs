//! [`TursoConfig`]: where the data lives (local file, in memory, remote server, embedded
//! replica) and how the pool, statement cache, compression and retries behave.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use memory_core::{Problem, StorageError, ValidationError};
use memory_storage_cached::CacheSettings;

/// The environment variable naming a remote database (`libsql://`, `https://`, `http://`).
pub const URL_ENV: &str = "TURSO_DATABASE_URL";
/// The environment variable holding the remote database's auth token.
pub const TOKEN_ENV: &str = "TURSO_AUTH_TOKEN";

/// An auth token. It never appears in `Debug` or `Display` output (nor, therefore, in logs).
///
/// ```
/// use memory_storage_turso::AuthToken;
/// let token = AuthToken::new("secret-value");
/// assert_eq!(format!("{token:?}"), "AuthToken(<redacted>)");
/// assert_eq!(token.expose(), "secret-value");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(String);

impl AuthToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        AuthToken(token.into())
    }

    /// The token itself, for handing to the client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

impl fmt::Display for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local database file (WAL, `synchronous=NORMAL`, statement journals and temporary
    /// tables in memory), no server.
    LocalFile(PathBuf),
    /// One private in-memory database, shared by every operation of the store (the pool then
    /// holds a single connection, since each SQLite `:memory:` connection would be a
    /// database of its own).
    InMemory,
    /// A remote sqld or Turso database.
    Remote {
        /// `libsql://`, `https://` or `http://` URL.
        url: String,
        /// Auth token, if the server wants one.
        auth_token: Option<AuthToken>,
    },
    /// A local file kept in sync with a remote primary: reads are local, writes go to the
    /// primary, and the store syncs after each write so that it reads its own writes.
    Replica {
        /// The local replica file.
        path: PathBuf,
        /// The primary's URL.
        url: String,
        /// Auth token, if the primary wants one.
        auth_token: Option<AuthToken>,
        /// Also sync on this period, to see other writers' changes (`None`: only on writes
        /// and explicit [`sync`](crate::TursoStorage::sync) calls).
        sync_interval: Option<Duration>,
    },
}

impl Location {
    /// The URL of a remote or replica location.
    pub fn url(&self) -> Option<&str> {
        match self {
            Location::Remote { url, .. } | Location::Replica { url, .. } => Some(url),
            Location::LocalFile(_) | Location::InMemory => None,
        }
    }
}

/// Bounds and timings of the connection pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections open at most (checkouts beyond it wait). From 2 up, writes have one of
    /// them to themselves: a local file's writer thread owns one, and a remote database's
    /// or replica's writes take turns on one (a write waits for this process's earlier
    /// ones up to the busy timeout, then is `Locked`); the rest read.
    pub max_connections: usize,
    /// How long a checkout waits for a free connection before failing with a typed
    /// `Unavailable` error.
    pub checkout_timeout: Duration,
    /// A connection idle for longer than this is checked with `SELECT 1` before reuse.
    pub health_check_after: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections: 8,
            checkout_timeout: Duration::from_secs(5),
            health_check_after: Duration::from_secs(30),
        }
    }
}

/// The default [`TursoConfig::operation_timeout`] of remote databases and replicas.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Retries of transient failures (busy database, dropped connection) for idempotent
/// operations.
///
/// A remote write that finds the server's write lock taken ("database is locked", as sqld
/// answers while it checkpoints) does not spend its attempts: it asks again with this
/// backoff for as long as its [`TursoConfig::operation_timeout`] allows (its
/// [`TursoConfig::busy_timeout`] without one), as SQLite's busy timeout makes a local write
/// wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1: no retry).
    pub attempts: u32,
    /// Delay before the first retry; doubled each time up to `max_delay`.
    pub base_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(500),
        }
    }
}

/// Everything [`TursoStorage::open`](crate::TursoStorage::open) needs.
///
/// ```
/// use std::time::Duration;
/// use memory_storage_turso::TursoConfig;
///
/// let config = TursoConfig::local("/tmp/agent-memory.db")
///     .max_connections(4)
///     .statement_cache_capacity(128)
///     .busy_timeout(Duration::from_secs(2));
/// assert_eq!(config.pool.max_connections, 4);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TursoConfig {
    /// Where the data lives.
    pub location: Location,
    /// The connection pool.
    pub pool: PoolConfig,
    /// Prepared statements kept per connection (least recently used leave first); 0 turns
    /// the cache off (every use prepares its statement: only useful to measure the cache).
    pub statement_cache_capacity: usize,
    /// How long a local connection waits on a locked database before failing `Locked` (and a
    /// remote write without an [`operation_timeout`](Self::operation_timeout) waits for the
    /// server's write lock).
    pub busy_timeout: Duration,
    /// SQLite's page cache per local connection, in KiB (SQLite's own default is 2,000).
    /// Reads of pages outside it go to the operating system, and with a working set larger
    /// than the cache they make up much of a read's time.
    pub page_cache_kib: u32,
    /// How much of a local file SQLite reads through a memory map (`PRAGMA mmap_size`), in
    /// MiB; 0 reads every page with a system call. With the map, a page read is a memory
    /// access. Measured once with a throwaway program on a 1.9 GB file of 100,000 episodes
    /// (plans/0014, "Memory-mapped reads"), not yet by `memory-bench search`. SQLite caps it
    /// at its build's limit (2 GiB on Linux); the mapped pages are the operating system's
    /// file cache, not the process's heap. Default 2,048.
    pub mmap_mib: u32,
    /// A local file's write-ahead log is checkpointed by a thread of the store's own this
    /// long after the first commit it has not covered (never inside a commit; see
    /// [`TursoStorage::checkpoint_stats`](crate::TursoStorage::checkpoint_stats)).
    pub checkpoint_interval: Duration,
    /// The bound on a local file's write-ahead log, in pages: when a checkpoint leaves more
    /// than this behind, writers wait for a full one, and the file is truncated to this size
    /// whenever the log restarts.
    pub wal_limit_pages: u32,
    /// Whether this store's writes record what they changed in the database's change feed
    /// (on by default). Other processes' and clients' caches read it to drop exactly what
    /// a write changed; a write that records nothing makes them drop everything. Off only
    /// to measure what the feed costs.
    pub change_feed: bool,
    /// A similarity search whose filter matches at most this many items scores each of
    /// them exactly; above it the search asks the vector index (`libsql_vector_idx`) for
    /// candidates and re-ranks them exactly (1,000 by default; 0 sends every search to the
    /// index).
    pub exact_search_below: u32,
    /// Payloads of at least this many bytes are stored zstd-compressed.
    pub compression_threshold: usize,
    /// zstd level for compressed payloads.
    pub compression_level: i32,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// The longest one attempt of an operation (checkout included) may wait for a server
    /// that has stopped answering; past it the call fails `Transient` and the connection is
    /// dropped. 30 s for remote databases and replicas; `None` (no limit) for local files
    /// and memory, whose waits `busy_timeout` already bounds. Raise it for batches that
    /// take longer.
    pub operation_timeout: Option<Duration>,
    /// The cache [`TursoStorage::open_cached`](crate::TursoStorage::open_cached) puts in
    /// front (on by default; [`CacheSettings::disabled`] turns it off).
    pub cache: CacheSettings,
}

impl TursoConfig {
    fn with_location(location: Location) -> Self {
        let pool = match location {
            Location::InMemory => PoolConfig {
                max_connections: 1,
                ..PoolConfig::default()
            },
            _ => PoolConfig::default(),
        };
        let operation_timeout = match location {
            Location::Remote { .. } | Location::Replica { .. } => Some(DEFAULT_OPERATION_TIMEOUT),
            Location::LocalFile(_) | Location::InMemory => None,
        };
        TursoConfig {
            location,
            pool,
            statement_cache_capacity: 64,
            busy_timeout: Duration::from_secs(5),
            page_cache_kib: 16 * 1024,
            mmap_mib: 2048,
            checkpoint_interval: Duration::from_millis(50),
            wal_limit_pages: 8 * 1024,
            change_feed: true,
            exact_search_below: 1_000,
            compression_threshold: 4 * 1024,
            compression_level: 3,
            retry: RetryPolicy::default(),
            operation_timeout,
            cache: CacheSettings::default(),
        }
    }

    /// A local database file at `path`.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Self::with_location(Location::LocalFile(path.into()))
    }

    /// The local database file at [`default_path`](Self::default_path).
    pub fn local_default() -> Result<Self, StorageError> {
        Ok(Self::local(Self::default_path()?))
    }

    /// `memory.db` in this project's folder under the user's data directory (for example
    /// `~/.local/share/episodic-memory/memory.db` on Linux).
    pub fn default_path() -> Result<PathBuf, StorageError> {
        dirs::data_dir()
            .map(|dir| dir.join("episodic-memory").join("memory.db"))
            .ok_or_else(|| {
                invalid(
                    "location",
                    "no user data directory is known here; give a path".into(),
                )
            })
    }

    /// One private in-memory database.
    pub fn in_memory() -> Self {
        Self::with_location(Location::InMemory)
    }

    /// A remote sqld or Turso database.
    pub fn remote(url: impl Into<String>, auth_token: Option<AuthToken>) -> Self {
        Self::with_location(Location::Remote {
            url: url.into(),
            auth_token,
        })
    }

    /// An embedded replica at `path` of the primary at `url`.
    pub fn replica(
        path: impl Into<PathBuf>,
        url: impl Into<String>,
        auth_token: Option<AuthToken>,
    ) -> Self {
        Self::with_location(Location::Replica {
            path: path.into(),
            url: url.into(),
            auth_token,
            sync_interval: None,
        })
    }

    /// From `TURSO_DATABASE_URL` and `TURSO_AUTH_TOKEN`: a remote database if the URL is
    /// set and not empty, else the local default file.
    pub fn from_env() -> Result<Self, StorageError> {
        Self::from_vars(
            std::env::var(URL_ENV).ok().as_deref(),
            std::env::var(TOKEN_ENV).ok().as_deref(),
        )
    }

    /// Like [`from_env`](Self::from_env) with the two values given.
    pub fn from_vars(url: Option<&str>, token: Option<&str>) -> Result<Self, StorageError> {
        let token = token.filter(|t| !t.is_empty()).map(AuthToken::new);
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => {
                let config = Self::remote(url, token);
                config.validate()?;
                Ok(config)
            }
            None => Self::local_default(),
        }
    }

    /// Sets the pool's maximum size.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.pool.max_connections = max;
        self
    }

    /// Sets how long a checkout may wait.
    pub fn checkout_timeout(mut self, timeout: Duration) -> Self {
        self.pool.checkout_timeout = timeout;
        self
    }

    /// Sets the idle time after which a connection is health-checked before reuse.
    pub fn health_check_after(mut self, idle: Duration) -> Self {
        self.pool.health_check_after = idle;
        self
    }

    /// Sets the per-connection prepared-statement cache capacity.
    pub fn statement_cache_capacity(mut self, capacity: usize) -> Self {
        self.statement_cache_capacity = capacity;
        self
    }

    /// Sets the page cache of every local connection, in KiB.
    pub fn page_cache_kib(mut self, kib: u32) -> Self {
        self.page_cache_kib = kib;
        self
    }

    /// Sets how much of a local file is read through a memory map, in MiB (0: none).
    pub fn mmap_mib(mut self, mib: u32) -> Self {
        self.mmap_mib = mib;
        self
    }

    /// Sets the busy timeout of every local connection.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets the payload size from which payloads are compressed.
    pub fn compression_threshold(mut self, bytes: usize) -> Self {
        self.compression_threshold = bytes;
        self
    }

    /// Sets the limit on one attempt of an operation against a server (`None`: no limit).
    pub fn operation_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the cache of [`TursoStorage::open_cached`](crate::TursoStorage::open_cached).
    pub fn cache(mut self, cache: CacheSettings) -> Self {
        self.cache = cache;
        self
    }

    /// Sets a replica's periodic sync (ignored by other locations). A cached store does not
    /// need it to notice other writers: each of its change checks syncs the replica first.
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        if let Location::Replica { sync_interval, .. } = &mut self.location {
            *sync_interval = Some(interval);
        }
        self
    }

    /// Sets [`checkpoint_interval`](Self::checkpoint_interval).
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Sets [`wal_limit_pages`](Self::wal_limit_pages).
    pub fn wal_limit_pages(mut self, pages: u32) -> Self {
        self.wal_limit_pages = pages;
        self
    }

    /// Sets [`change_feed`](Self::change_feed).
    pub fn change_feed(mut self, record: bool) -> Self {
        self.change_feed = record;
        self
    }

    /// Sets [`exact_search_below`](Self::exact_search_below).
    pub fn exact_search_below(mut self, items: u32) -> Self {
        self.exact_search_below = items;
        self
    }

    /// Checks every value; [`TursoStorage::open`](crate::TursoStorage::open) calls it.
    pub fn validate(&self) -> Result<(), StorageError> {
        if let Some(url) = self.location.url() {
            check_url(url)?;
        }
        if let Location::LocalFile(path) | Location::Replica { path, .. } = &self.location
            && path.as_os_str().is_empty()
        {
            return Err(invalid("location", "the database path is empty".into()));
        }
        if self.pool.max_connections == 0 || self.pool.max_connections > 1_024 {
            return Err(range(
                "pool.max_connections",
                1.0,
                1_024.0,
                self.pool.max_connections as f64,
            ));
        }
        if matches!(self.location, Location::InMemory) && self.pool.max_connections != 1 {
            return Err(invalid(
                "pool.max_connections",
                "an in-memory database is one connection; the pool must hold exactly 1".into(),
            ));
        }
        self.cache
            .validate()
            .map_err(|e| invalid(&format!("cache.{}", e.field), e.reason))?;
        if self.operation_timeout.is_some_and(|t| t.is_zero()) {
            return Err(invalid(
                "operation_timeout",
                "must be positive (None turns the limit off)".into(),
            ));
        }
        if self.pool.checkout_timeout.is_zero() {
            return Err(invalid("pool.checkout_timeout", "must be positive".into()));
        }
        if !(64..=4 * 1024 * 1024).contains(&self.page_cache_kib) {
            return Err(range(
                "page_cache_kib",
                64.0,
                4.0 * 1024.0 * 1024.0,
                f64::from(self.page_cache_kib),
            ));
        }
        if self.mmap_mib > 1024 * 1024 {
            return Err(range(
                "mmap_mib",
                0.0,
                1024.0 * 1024.0,
                f64::from(self.mmap_mib),
            ));
        }
        if self.checkpoint_interval.is_zero() || self.checkpoint_interval > Duration::from_secs(60)
        {
            return Err(invalid(
                "checkpoint_interval",
                format!(
                    "must be longer than zero and at most 60 s, not {:?}",
                    self.checkpoint_interval
                ),
            ));
        }
        if !(64..=1 << 20).contains(&self.wal_limit_pages) {
            return Err(range(
                "wal_limit_pages",
                64.0,
                f64::from(1u32 << 20),
                f64::from(self.wal_limit_pages),
            ));
        }
        if self.statement_cache_capacity > 100_000 {
            return Err(range(
                "statement_cache_capacity",
                0.0,
                100_000.0,
                self.statement_cache_capacity as f64,
            ));
        }
        if !(1..=22).contains(&self.compression_level) {
            return Err(range(
                "compression_level",
                1.0,
                22.0,
                f64::from(self.compression_level),
            ));
        }
        if self.retry.attempts == 0 || self.retry.attempts > 100 {
            return Err(range(
                "retry.attempts",
                1.0,
                100.0,
                f64::from(self.retry.attempts),
            ));
        }
        if let Location::Replica {
            sync_interval: Some(interval),
            ..
        } = &self.location
            && interval.is_zero()
        {
            return Err(invalid("location.sync_interval", "must be positive".into()));
        }
        Ok(())
    }
}

fn check_url(url: &str) -> Result<(), StorageError> {
    let rest = ["libsql://", "https://", "http://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or_else(|| {
            invalid(
                "location.url",
                "must start with libsql://, https:// or http://".into(),
            )
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(invalid("location.url", "has no valid host".into()));
    }
    Ok(())
}

fn invalid(field: &str, reason: String) -> StorageError {
    ValidationError::new(field, Problem::Invalid(reason)).into()
}

fn range(field: &str, min: f64, max: f64, actual: f64) -> StorageError {
    ValidationError::new(field, Problem::OutOfRange { min, max, actual }).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use memory_core::ErrorKind;
    use proptest::prelude::*;

    proptest! {
        // The fuzz target `config_from_vars` (fuzz/) runs the same check without bounds.
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Any pair of strings is a typed answer: a valid remote config, or `InvalidInput`
        /// naming the URL; never a panic.
        #[test]
        fn any_url_and_token_is_a_typed_answer(
            url in prop_oneof![
                ".*",
                "(libsql|https?|ftp|)(://)?[ -~\\t\\n]{0,40}",
            ],
            token in ".*",
        ) {
            match TursoConfig::from_vars(Some(&url), Some(&token)) {
                Ok(config) => {
                    prop_assert!(config.validate().is_ok());
                    if let Some(kept) = config.location.url() {
                        prop_assert!(
                            ["libsql://", "https://", "http://"].iter().any(|s| kept.starts_with(s))
                        );
                    }
                    // The token, whatever it is, has no influence on what `Debug` prints.
                    let other = TursoConfig::from_vars(Some(&url), Some("another token")).unwrap();
                    if !token.is_empty() {
                        prop_assert_eq!(format!("{config:?}"), format!("{other:?}"));
                    }
                }
                Err(e) => {
                    prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
                    prop_assert!(e.to_string().contains("location.url"), "{}", e);
                }
            }
        }
    }

    #[test]
    fn urls_are_checked() {
        for good in [
            "libsql://db.example.com",
            "https://db.example.com:8080/x",
            "http://127.0.0.1:1234",
        ] {
            assert!(TursoConfig::remote(good, None).validate().is_ok(), "{good}");
        }
        for bad in [
            "",
            "ftp://x",
            "db.example.com",
            "http://",
            "https:///path",
            "http://a b",
        ] {
            let err = TursoConfig::remote(bad, None).validate().unwrap_err();
            assert_eq!(err.kind(), memory_core::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn env_values_choose_the_location() {
        let remote = TursoConfig::from_vars(Some("http://127.0.0.1:9"), Some("tok")).unwrap();
        assert_eq!(
            remote.location,
            Location::Remote {
                url: "http://127.0.0.1:9".into(),
                auth_token: Some(AuthToken::new("tok"))
            }
        );
        if let Ok(local) = TursoConfig::from_vars(Some("  "), None) {
            assert!(matches!(local.location, Location::LocalFile(_)));
        }
        assert!(TursoConfig::from_vars(Some("nonsense"), None).is_err());
    }

    #[test]
    fn token_never_printed() {
        let config = TursoConfig::remote("libsql://x.turso.io", Some(AuthToken::new("s3cr3t")));
        let printed = format!("{config:?} {:?}", config.location);
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("<redacted>"));
        let token = AuthToken::new("s3cr3t");
        assert_eq!(
            format!("{token} {token:?}"),
            "<redacted> AuthToken(<redacted>)"
        );
    }

    #[test]
    fn absurd_values_rejected() {
        assert!(TursoConfig::in_memory().validate().is_ok());
        assert!(
            TursoConfig::in_memory()
                .max_connections(2)
                .validate()
                .is_err()
        );
        assert!(
            TursoConfig::local("x.db")
                .max_connections(0)
                .validate()
                .is_err()
        );
        assert!(TursoConfig::local("").validate().is_err());
        assert!(
            TursoConfig::local("x.db")
                .page_cache_kib(0)
                .validate()
                .is_err()
        );
        assert!(
            TursoConfig::local("x.db")
                .mmap_mib(1024 * 1024 + 1)
                .validate()
                .is_err()
        );
        assert!(TursoConfig::local("x.db").mmap_mib(0).validate().is_ok());
        assert!(
            TursoConfig::local("x.db")
                .statement_cache_capacity(100_001)
                .validate()
                .is_err()
        );
        assert!(
            TursoConfig::local("x.db")
                .checkout_timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
    }
}
