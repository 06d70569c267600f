//! A local file's writer thread: it owns the one connection of this process that writes,
//! and runs the writes queued for it back to back.
//!
//! Why a thread and not a pooled connection behind a semaphore of one: the hand-over from
//! one write to the next then goes through the async runtime (the next writer's task has
//! to be polled on a worker busy with other tasks before it can start), and on a loaded
//! 2-core machine that scheduling delay, paid once per write, made the write queue the
//! bottleneck. Here the next write starts as soon as the last one committed. Writes are
//! serialized in process, so none of them sleeps in SQLite's busy handler waiting for
//! another of this process (other processes' writers still can make it wait, on this
//! thread, never on an async worker).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use memory_core::{ErrorKind, StorageError};
use tracing::Instrument;

use crate::pool::{Conn, Job, Pool};

/// One queued write: runs with the connection (or the reason there is none) and answers
/// whether the connection stays usable.
type Queued = Box<dyn for<'c> FnOnce(Result<&'c mut Conn, StorageError>) -> Job<'c, bool> + Send>;

struct Entry {
    queued_at: Instant,
    /// Jobs ahead of this one when it was queued.
    behind: usize,
    /// The write's wait in the queue, closed when the thread takes it.
    waiting: tracing::Span,
    job: Queued,
}

#[derive(Default)]
struct State {
    queued: AtomicUsize,
    open: AtomicBool,
    busy: AtomicBool,
}

pub(crate) struct Writer {
    jobs: Option<Sender<Entry>>,
    state: Arc<State>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Dropping the writer closes its queue and waits for the thread to finish the writes
/// queued and close its connection: once the store is gone, so is its hold on the file.
impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

impl Writer {
    /// Starts the thread; it opens its connection through `pool` on the first write and
    /// ends when the pool is dropped.
    pub(crate) fn start(pool: Weak<Pool>) -> Result<Self, StorageError> {
        let (jobs, queue) = channel();
        let state = Arc::new(State::default());
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("memory-writer".into())
            .spawn(move || run(pool, queue, &thread_state))
            .map_err(|e| {
                StorageError::with_source(ErrorKind::Unavailable, "starting the writer thread", e)
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            state,
            thread: Some(thread),
        })
    }

    /// (connections open, connections in use): 0 or 1 each.
    pub(crate) fn occupancy(&self) -> (u64, u64) {
        let open = u64::from(self.state.open.load(Ordering::Relaxed));
        (
            open,
            open.min(u64::from(self.state.busy.load(Ordering::Relaxed))),
        )
    }

    /// Queues `work` and waits for its result. The write runs to its end even if the
    /// caller stops waiting.
    pub(crate) async fn run<R, F>(&self, work: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> Job<'c, (R, bool)> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Queued = Box::new(move |conn| {
            Box::pin(async move {
                match conn {
                    Ok(conn) => {
                        let (result, discard) = work(conn).await;
                        let _ = answer.send(Ok(result));
                        !discard
                    }
                    Err(e) => {
                        let _ = answer.send(Err(e));
                        true
                    }
                }
            })
        });
        let behind = self.state.queued.fetch_add(1, Ordering::AcqRel);
        let entry = Entry {
            queued_at: Instant::now(),
            behind,
            waiting: phase_span!("write_checkout"),
            job,
        };
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(entry));
        if !matches!(sent, Some(Ok(()))) {
            self.state.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(stopped());
        }
        answered.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StorageError {
    StorageError::new(
        ErrorKind::Internal,
        "the write ended without an answer (the store's writer thread stopped, or the write \
         panicked)",
    )
}

fn run(pool: Weak<Pool>, queue: Receiver<Entry>, state: &State) {
    // libsql's calls are async; on a local file they complete without waiting on I/O a
    // runtime drives. Timers: switching a new file to WAL pauses between attempts.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "no runtime for the writer thread; writes fail");
            return;
        }
    };
    let mut conn: Option<Conn> = None;
    while let Ok(entry) = queue.recv() {
        state.queued.fetch_sub(1, Ordering::AcqRel);
        drop(entry.waiting);
        let Some(pool) = pool.upgrade() else { return };
        let waited = entry.queued_at.elapsed();
        if entry.behind > 0 {
            pool.record_wait(waited);
        }
        if waited > pool.checkout_timeout() {
            pool.record_timeout();
            let e = StorageError::new(
                ErrorKind::Unavailable,
                format!(
                    "the writer stayed busy for {:?} (the checkout timeout) before this write",
                    pool.checkout_timeout()
                ),
            );
            runtime.block_on((entry.job)(Err(e)));
            continue;
        }
        if conn.is_none() {
            match runtime.block_on(pool.open()) {
                Ok(opened) => {
                    conn = Some(opened);
                    state.open.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    runtime.block_on((entry.job)(Err(e)));
                    continue;
                }
            }
        }
        let Some(current) = conn.as_mut() else {
            continue;
        };
        state.busy.store(true, Ordering::Relaxed);
        let span = phase_span!("write_transaction");
        // A write that panics loses its connection (and its caller gets an error), not the
        // thread: later writes still run.
        let keep = std::panic::catch_unwind(AssertUnwindSafe(|| {
            runtime.block_on((entry.job)(Ok(current)).instrument(span))
        }))
        .unwrap_or(false);
        state.busy.store(false, Ordering::Relaxed);
        // A write leaves no transaction open; one that did (a failed rollback) is closed by
        // dropping its connection, which rolls it back.
        if !keep || !current.raw.is_autocommit() {
            conn = None;
            state.open.store(false, Ordering::Relaxed);
            pool.record_discard();
        }
    }
}
