//! [`Yielding`]: a store that lets other tasks run before and after every call, so that a
//! concurrency test's tasks really interleave between a read's answer and what a layer
//! above does with it (an in-memory store alone answers without ever suspending).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::storage::StorageBackend;
use crate::{
    Episode, EpisodeId, EpisodePage, EpisodeQuery, Heuristic, HeuristicId, Pattern, PatternId,
    PatternQuery, Result,
};

/// Wraps `S`: each call first yields to the scheduler 0–3 times, then calls `S`, then
/// yields 0–3 times again (the counts vary call by call, deterministically).
///
/// ```
/// use memory_core::{InMemoryStorage, StorageBackend};
/// use memory_core::testing::Yielding;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = Yielding::new(InMemoryStorage::new());
/// assert_eq!(store.count_episodes().await?, 0);
/// # Ok::<(), memory_core::StorageError>(())
/// # }).unwrap();
/// ```
pub struct Yielding<S> {
    inner: S,
    calls: AtomicU64,
    /// Yields before and after every call, when fixed.
    fixed: Option<u64>,
}

impl<S> Yielding<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Yielding {
            inner,
            calls: AtomicU64::new(0),
            fixed: None,
        }
    }

    /// Wraps `inner`, yielding exactly `times` before and after every call: each call then
    /// has the same await points, so that a test can cut a caller off at every one of them.
    pub fn fixed(inner: S, times: u64) -> Self {
        Yielding {
            inner,
            calls: AtomicU64::new(0),
            fixed: Some(times),
        }
    }

    async fn pause(&self) {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        // A cheap mix of the call number: varied, reproducible yield counts.
        let times = self
            .fixed
            .unwrap_or_else(|| n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 62);
        for _ in 0..times {
            tokio::task::yield_now().await;
        }
    }
}

// The macro writes the whole impl, so that `async_trait` sees the expanded methods.
macro_rules! yielding {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait]
        impl<S: StorageBackend> StorageBackend for Yielding<S> {
            fn backend_name(&self) -> &'static str {
                self.inner.backend_name()
            }

            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$out> {
                    self.pause().await;
                    let result = self.inner.$name($($arg),*).await;
                    self.pause().await;
                    result
                }
            )*
        }
    };
}

yielding! {
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
    store_heuristic(heuristic: &Heuristic) -> ();
    get_heuristic(id: HeuristicId) -> Option<Arc<Heuristic>>;
    delete_heuristic(id: HeuristicId) -> ();
    store_heuristics(heuristics: &[Heuristic]) -> ();
    get_heuristics(ids: &[HeuristicId]) -> Vec<Option<Arc<Heuristic>>>;
    delete_heuristics(ids: &[HeuristicId]) -> ();
    count_heuristics() -> u64;
}
