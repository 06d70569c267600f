//! [`Yielding`]: a store that lets other tasks run before and after every call, so that a
//! concurrency test's tasks really interleave between a read's answer and what a layer
//! above does with it (an in-memory store alone answers without ever suspending).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::search::{EpisodeSearch, PatternSearch, Scored};
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

crate::storage::with_storage_methods!(yielding);

/// The change signal yields around its calls too, so that checks interleave with writes.
#[async_trait]
impl<S: crate::ChangeSignal> crate::ChangeSignal for Yielding<S> {
    async fn change_position(&self) -> Result<u64> {
        self.pause().await;
        let result = self.inner.change_position().await;
        self.pause().await;
        result
    }

    async fn changes_since(&self, position: u64) -> Result<crate::feed::ChangesSince> {
        self.pause().await;
        let result = self.inner.changes_since(position).await;
        self.pause().await;
        result
    }

    fn reports_before_visible(&self) -> bool {
        self.inner.reports_before_visible()
    }
}
