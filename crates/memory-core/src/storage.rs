//! [`StorageBackend`]: the one async interface every store, cache and metric layer speaks.

use std::sync::Arc;

use async_trait::async_trait;

use crate::episode::Episode;
use crate::error::Result;
use crate::heuristic::Heuristic;
use crate::ids::{EpisodeId, HeuristicId, PatternId};
use crate::pattern::Pattern;
use crate::query::{EpisodePage, EpisodeQuery, PatternQuery};

/// An episodic-memory store.
///
/// Object safe: use it as `Arc<dyn StorageBackend>`. Every implementation passes the
/// conformance suite in `memory_core::testing` (feature `testing`), which pins the semantics
/// written here:
///
/// - `store_*` inserts or replaces the whole item with that id, after validating it against
///   [`crate::limits`] (an invalid item is an `InvalidInput` error and nothing is written).
/// - `get_*` returns `Ok(None)` for an id that does not exist. Items come back as `Arc`s so
///   that caching layers can hand out shared values without deep copies.
/// - `delete_*` of an id that does not exist is a `NotFound` error.
/// - Batch calls are all-or-nothing: `store_*s` writes every item or none (a batch with an
///   invalid item or a repeated id stores nothing); `delete_*s` deletes every id or none (an
///   unknown or repeated id deletes nothing); `get_*s` returns one entry per id, in the order
///   asked (repeats allowed). At most [`MAX_BATCH_ITEMS`](crate::limits::MAX_BATCH_ITEMS)
///   per call; an empty batch is a successful no-op.
/// - Once a write returns `Ok`, every later read through the same backend sees it.
///
/// ```
/// use std::sync::Arc;
/// use memory_core::{Episode, EpisodeQuery, InMemoryStorage, StorageBackend, TaskContext, TaskType};
///
/// # tokio_test_block_on(async {
/// let store: Arc<dyn StorageBackend> = Arc::new(InMemoryStorage::new());
/// let episode = Episode::new(TaskType::Testing, "run the suite", TaskContext::new("cli"));
/// store.store_episode(&episode).await?;
/// assert_eq!(store.get_episode(episode.id).await?.as_deref(), Some(&episode));
/// let page = store.query_episodes(&EpisodeQuery::new().domain("cli")).await?;
/// assert_eq!(page.items.len(), 1);
/// # Ok::<(), memory_core::StorageError>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[async_trait]
pub trait StorageBackend: Send + Sync {
    /// A short, stable name of the backend kind (`"memory"`, `"libsql"`, …) for logs and
    /// metric labels.
    fn backend_name(&self) -> &'static str;

    /// Inserts or replaces an episode.
    async fn store_episode(&self, episode: &Episode) -> Result<()>;
    /// The episode with `id`, or `None`.
    async fn get_episode(&self, id: EpisodeId) -> Result<Option<Arc<Episode>>>;
    /// Deletes an episode; `NotFound` if it does not exist.
    async fn delete_episode(&self, id: EpisodeId) -> Result<()>;
    /// Inserts or replaces every episode, or none.
    async fn store_episodes(&self, episodes: &[Episode]) -> Result<()>;
    /// The episodes with these ids, in the same order, `None` where absent.
    async fn get_episodes(&self, ids: &[EpisodeId]) -> Result<Vec<Option<Arc<Episode>>>>;
    /// Deletes every one of these episodes, or none.
    async fn delete_episodes(&self, ids: &[EpisodeId]) -> Result<()>;
    /// One page of the episodes matching `query`, newest first.
    async fn query_episodes(&self, query: &EpisodeQuery) -> Result<EpisodePage>;
    /// How many episodes are stored.
    async fn count_episodes(&self) -> Result<u64>;

    /// Inserts or replaces a pattern.
    async fn store_pattern(&self, pattern: &Pattern) -> Result<()>;
    /// The pattern with `id`, or `None`.
    async fn get_pattern(&self, id: PatternId) -> Result<Option<Arc<Pattern>>>;
    /// Deletes a pattern; `NotFound` if it does not exist.
    async fn delete_pattern(&self, id: PatternId) -> Result<()>;
    /// Inserts or replaces every pattern, or none.
    async fn store_patterns(&self, patterns: &[Pattern]) -> Result<()>;
    /// The patterns with these ids, in the same order, `None` where absent.
    async fn get_patterns(&self, ids: &[PatternId]) -> Result<Vec<Option<Arc<Pattern>>>>;
    /// Deletes every one of these patterns, or none.
    async fn delete_patterns(&self, ids: &[PatternId]) -> Result<()>;
    /// The patterns matching `query`, most successful first.
    async fn query_patterns(&self, query: &PatternQuery) -> Result<Vec<Arc<Pattern>>>;
    /// How many patterns are stored.
    async fn count_patterns(&self) -> Result<u64>;

    /// Inserts or replaces a heuristic.
    async fn store_heuristic(&self, heuristic: &Heuristic) -> Result<()>;
    /// The heuristic with `id`, or `None`.
    async fn get_heuristic(&self, id: HeuristicId) -> Result<Option<Arc<Heuristic>>>;
    /// Deletes a heuristic; `NotFound` if it does not exist.
    async fn delete_heuristic(&self, id: HeuristicId) -> Result<()>;
    /// Inserts or replaces every heuristic, or none.
    async fn store_heuristics(&self, heuristics: &[Heuristic]) -> Result<()>;
    /// The heuristics with these ids, in the same order, `None` where absent.
    async fn get_heuristics(&self, ids: &[HeuristicId]) -> Result<Vec<Option<Arc<Heuristic>>>>;
    /// Deletes every one of these heuristics, or none.
    async fn delete_heuristics(&self, ids: &[HeuristicId]) -> Result<()>;
    /// How many heuristics are stored.
    async fn count_heuristics(&self) -> Result<u64>;
}

/// A cheap signal that other writers changed a store: other handles in this process, other
/// processes sharing a database file, other clients of a server.
///
/// The store keeps a position that every committed write transaction advances by one, and
/// remembers which positions its own writes produced. A cache calls
/// [`change_position`](Self::change_position) now and then and asks
/// [`written_elsewhere`](Self::written_elsewhere) whether anything between two positions
/// came from elsewhere; if so, it drops what it holds.
///
/// ```
/// use memory_core::ChangeSignal;
///
/// // A cache remembers the last position it checked, and flushes when another writer moved it.
/// async fn must_flush(signal: &dyn ChangeSignal, last: &mut u64) -> memory_core::Result<bool> {
///     let now = signal.change_position().await?;
///     let foreign = signal.written_elsewhere(*last, now);
///     *last = now;
///     Ok(foreign)
/// }
/// ```
#[async_trait]
pub trait ChangeSignal: Send + Sync {
    /// The store's current write position, read from the store itself.
    async fn change_position(&self) -> Result<u64>;

    /// Whether any write after position `from` up to and including `to` was made by someone
    /// other than this handle. True whenever the handle cannot tell (it remembers only its
    /// recent writes): a false alarm costs a cache flush, a missed one would serve stale
    /// data.
    fn written_elsewhere(&self, from: u64, to: u64) -> bool;
}
