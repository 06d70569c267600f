//! [`StorageBackend`]: the one async interface every store, cache and metric layer speaks.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::episode::Episode;
use crate::error::{EntityKind, Result, StorageError};
use crate::heuristic::Heuristic;
use crate::ids::{EpisodeId, HeuristicId, PatternId};
use crate::pattern::Pattern;
use crate::query::{EpisodePage, EpisodeQuery, PatternQuery};
use crate::search::{EpisodeSearch, PatternSearch, Scored};

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
    /// Up to `limit` (1 to [`MAX_QUERY_LIMIT`](crate::limits::MAX_QUERY_LIMIT)) patterns
    /// with ids above `after` (from the first with `None`), by ascending id: every stored
    /// pattern, page by page, for export and scans. A limit out of range is `InvalidInput`.
    async fn list_patterns(
        &self,
        after: Option<PatternId>,
        limit: usize,
    ) -> Result<Vec<Arc<Pattern>>>;
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
    /// Up to `limit` heuristics with ids above `after`, by ascending id (as
    /// [`list_patterns`](Self::list_patterns)).
    async fn list_heuristics(
        &self,
        after: Option<HeuristicId>,
        limit: usize,
    ) -> Result<Vec<Arc<Heuristic>>>;
    /// How many heuristics are stored.
    async fn count_heuristics(&self) -> Result<u64>;

    /// Reads up to `limit` (1 to [`MAX_QUERY_LIMIT`](crate::limits::MAX_QUERY_LIMIT))
    /// stored items of `kind` with ids above `after` (from the first with `None`), by
    /// ascending id, and says for each whether it decodes: every stored item, page by page,
    /// for integrity checks (`memory check`). Unlike the other reads, an item that does not
    /// decode is not an error of the call but an [`ItemCheck`] holding the `Corrupt` error
    /// reading it gives, so that a check goes on past it. A limit out of range is
    /// `InvalidInput`.
    async fn check_items(
        &self,
        kind: EntityKind,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ItemCheck>>;

    /// The `search.k` episodes whose embeddings are most similar (cosine) to `search.vector`
    /// among those `search.filter` matches, best first, ties broken by id
    /// ([`crate::search`]); episodes without an embedding are not candidates. A bad search
    /// is `InvalidInput`.
    async fn search_episodes(&self, search: &EpisodeSearch) -> Result<Vec<Scored<Episode>>>;
    /// The same for patterns.
    async fn search_patterns(&self, search: &PatternSearch) -> Result<Vec<Scored<Pattern>>>;
}

// The macro writes the whole impl, so that `async_trait` sees the expanded methods.
macro_rules! forward_to_shared {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        /// A shared store is a store: `Arc<InMemoryStorage>`, `Arc<dyn StorageBackend>` and
        /// the like can be wrapped by any layer (a cache, metrics) while others keep a handle.
        #[async_trait]
        impl<S: StorageBackend + ?Sized> StorageBackend for Arc<S> {
            fn backend_name(&self) -> &'static str {
                (**self).backend_name()
            }

            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$out> {
                    (**self).$name($($arg),*).await
                }
            )*
        }
    };
}

/// Calls `$callback! { name(arg: Type, ...) -> Output; ... }` with every method of
/// [`StorageBackend`] but `backend_name`: the one list that every forwarding impl in this
/// crate expands (the shared-store impl below, the testing `Yielding` store).
macro_rules! with_storage_methods {
    ($callback:ident) => {
        $callback! {
            store_episode(episode: &Episode) -> ();
            get_episode(id: EpisodeId) -> Option<Arc<Episode>>;
            delete_episode(id: EpisodeId) -> ();
            store_episodes(episodes: &[Episode]) -> ();
            get_episodes(ids: &[EpisodeId]) -> Vec<Option<Arc<Episode>>>;
            delete_episodes(ids: &[EpisodeId]) -> ();
            query_episodes(query: &EpisodeQuery) -> EpisodePage;
            count_episodes() -> u64;
            store_pattern(pattern: &Pattern) -> ();
            get_pattern(id: PatternId) -> Option<Arc<Pattern>>;
            delete_pattern(id: PatternId) -> ();
            store_patterns(patterns: &[Pattern]) -> ();
            get_patterns(ids: &[PatternId]) -> Vec<Option<Arc<Pattern>>>;
            delete_patterns(ids: &[PatternId]) -> ();
            query_patterns(query: &PatternQuery) -> Vec<Arc<Pattern>>;
            count_patterns() -> u64;
            list_patterns(after: Option<PatternId>, limit: usize) -> Vec<Arc<Pattern>>;
            store_heuristic(heuristic: &Heuristic) -> ();
            get_heuristic(id: HeuristicId) -> Option<Arc<Heuristic>>;
            delete_heuristic(id: HeuristicId) -> ();
            store_heuristics(heuristics: &[Heuristic]) -> ();
            get_heuristics(ids: &[HeuristicId]) -> Vec<Option<Arc<Heuristic>>>;
            delete_heuristics(ids: &[HeuristicId]) -> ();
            count_heuristics() -> u64;
            list_heuristics(after: Option<HeuristicId>, limit: usize) -> Vec<Arc<Heuristic>>;
            check_items(kind: crate::EntityKind, after: Option<crate::Uuid>, limit: usize)
                -> Vec<crate::ItemCheck>;
            search_episodes(search: &EpisodeSearch) -> Vec<Scored<Episode>>;
            search_patterns(search: &PatternSearch) -> Vec<Scored<Pattern>>;
        }
    };
}
// The testing `Yielding` store expands the same list.
#[cfg(any(test, feature = "testing"))]
pub(crate) use with_storage_methods;

with_storage_methods!(forward_to_shared);

/// One stored item as [`StorageBackend::check_items`] found it.
#[derive(Clone, Debug)]
pub struct ItemCheck {
    /// The item's id (of the kind asked for).
    pub id: Uuid,
    /// Why it cannot be read (a `Corrupt` error), or `None` when it decodes.
    pub problem: Option<StorageError>,
}

impl ItemCheck {
    /// An item that decodes.
    pub fn sound(id: impl Into<Uuid>) -> Self {
        ItemCheck {
            id: id.into(),
            problem: None,
        }
    }

    /// The item `id` as decoding its stored bytes (`decoded`) found it.
    pub fn of<T>(id: impl Into<Uuid>, decoded: &Result<T>) -> Self {
        ItemCheck {
            id: id.into(),
            problem: decoded.as_ref().err().cloned(),
        }
    }
}
