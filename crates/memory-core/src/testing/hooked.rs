//! [`Hooked`]: a store that runs a test's hook before every call, named by its method, so
//! that a test can hold a call back, reorder calls or act between them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use crate::search::{EpisodeSearch, PatternSearch, Scored};
use crate::storage::StorageBackend;
use crate::{
    Episode, EpisodeId, EpisodePage, EpisodeQuery, Heuristic, HeuristicId, Pattern, PatternId,
    PatternQuery, Result,
};

/// The future a [`Hooked`] store awaits before a call.
pub type HookFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Wraps `S`: each call first awaits `hook(method name)`, then calls `S`.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use memory_core::{InMemoryStorage, StorageBackend};
/// use memory_core::testing::Hooked;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let counts = Arc::new(AtomicUsize::new(0));
/// let seen = Arc::clone(&counts);
/// let store = Hooked::new(InMemoryStorage::new(), move |method| {
///     if method == "count_episodes" {
///         seen.fetch_add(1, Ordering::Relaxed);
///     }
///     Box::pin(async {})
/// });
/// assert_eq!(store.count_episodes().await?, 0);
/// assert_eq!(counts.load(Ordering::Relaxed), 1);
/// # Ok::<(), memory_core::StorageError>(())
/// # }).unwrap();
/// ```
pub struct Hooked<S> {
    inner: S,
    hook: Box<dyn Fn(&'static str) -> HookFuture + Send + Sync>,
}

impl<S> Hooked<S> {
    /// Wraps `inner`, awaiting `hook(method)` before every call.
    pub fn new(
        inner: S,
        hook: impl Fn(&'static str) -> HookFuture + Send + Sync + 'static,
    ) -> Self {
        Hooked {
            inner,
            hook: Box::new(hook),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

// The macro writes the whole impl, so that `async_trait` sees the expanded methods.
macro_rules! hooked {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait]
        impl<S: StorageBackend> StorageBackend for Hooked<S> {
            fn backend_name(&self) -> &'static str {
                self.inner.backend_name()
            }

            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$out> {
                    (self.hook)(stringify!($name)).await;
                    self.inner.$name($($arg),*).await
                }
            )*
        }
    };
}

crate::storage::with_storage_methods!(hooked);
