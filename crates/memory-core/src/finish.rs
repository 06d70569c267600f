//! [`FinishOnDrop`]: a future that, dropped before it completed (its caller timed out, lost
//! a `select!`, was cancelled), is not abandoned half-way but finished on a task of its own.
//! A write wrapped in it either completes with everything that belongs to it (the commit,
//! a cache's bookkeeping) or, if it never started, never starts; nothing is cut in between.
//! While the caller waits it runs in the caller's task, with no extra scheduling.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::time::Duration;
//! use memory_core::FinishOnDrop;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let done = Arc::new(AtomicBool::new(false));
//! let flag = Arc::clone(&done);
//! let write = FinishOnDrop::new(async move {
//!     tokio::time::sleep(Duration::from_millis(20)).await;
//!     flag.store(true, Ordering::SeqCst);
//! });
//! // The caller gives up after 1 ms; the write still finishes.
//! assert!(tokio::time::timeout(Duration::from_millis(1), write).await.is_err());
//! tokio::time::sleep(Duration::from_millis(100)).await;
//! assert!(done.load(Ordering::SeqCst));
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs `F` in place; if dropped before `F` completed, spawns the rest of `F` on the
/// current tokio runtime. Without a runtime the rest is dropped and `abandoned` (if set)
/// runs instead.
pub struct FinishOnDrop<F: Future + Send + 'static>
where
    F::Output: Send + 'static,
{
    future: Option<Pin<Box<F>>>,
    abandoned: Option<Box<dyn FnOnce() + Send>>,
}

impl<F: Future + Send + 'static> FinishOnDrop<F>
where
    F::Output: Send + 'static,
{
    /// Wraps `future`.
    pub fn new(future: F) -> Self {
        FinishOnDrop {
            future: Some(Box::pin(future)),
            abandoned: None,
        }
    }

    /// What to do instead when the rest cannot be finished (no runtime to spawn it on).
    pub fn or_else(mut self, abandoned: impl FnOnce() + Send + 'static) -> Self {
        self.abandoned = Some(Box::new(abandoned));
        self
    }
}

impl<F: Future + Send + 'static> Future for FinishOnDrop<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(future) = self.future.as_mut() else {
            // Polled after completion: a caller's bug; stay pending rather than panic.
            return Poll::Pending;
        };
        match future.as_mut().poll(cx) {
            Poll::Ready(output) => {
                self.future = None;
                self.abandoned = None;
                Poll::Ready(output)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

// `F` is boxed, so the wrapper never needs pinning itself.
impl<F: Future + Send + 'static> Unpin for FinishOnDrop<F> where F::Output: Send + 'static {}

impl<F: Future + Send + 'static> Drop for FinishOnDrop<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        let Some(future) = self.future.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(future);
            }
            Err(_) => {
                drop(future);
                if let Some(abandoned) = self.abandoned.take() {
                    abandoned();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_completed_future_is_not_run_again() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let out = FinishOnDrop::new(async move { counter.fetch_add(1, Ordering::SeqCst) }).await;
        assert_eq!(out, 0);
        tokio::task::yield_now().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn without_a_runtime_the_rest_is_abandoned_and_reported() {
        let abandoned = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&abandoned);
        let future = FinishOnDrop::new(std::future::pending::<()>()).or_else(move || {
            flag.fetch_add(1, Ordering::SeqCst);
        });
        drop(future);
        assert_eq!(abandoned.load(Ordering::SeqCst), 1);
    }
}
