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

use crate::error::db;
use crate::own_thread::OwnThread;
use crate::pool::{Conn, Job, Pool};

/// One queued write: runs with the connection (or the reason there is none) and answers
/// whether the connection stays usable.
type Queued = Box<dyn for<'c> FnOnce(Result<&'c mut Conn, StorageError>) -> Job<'c, bool> + Send>;

/// A grouped write's statements (see [`Grouped::body`]).
pub(crate) type GroupedBody =
    Box<dyn for<'c> FnOnce(&'c mut Conn) -> Job<'c, Result<u64, StorageError>> + Send>;

/// Writes that the thread commits together, several to one transaction.
pub(crate) struct Grouped {
    /// The write's statements, run inside the group's transaction (in a savepoint of its
    /// own); answers the position it produced.
    pub(crate) body: GroupedBody,
    /// Set just before the group's `COMMIT` is sent.
    pub(crate) commit_sent: Arc<AtomicBool>,
    /// Told the position right after the commit, under `order`.
    pub(crate) recorder: Option<memory_core::change::Recorder>,
    /// The lock the change signal reads under (see `store::Signal`).
    pub(crate) order: Option<Arc<tokio::sync::Mutex<()>>>,
    answer: tokio::sync::oneshot::Sender<Result<u64, GroupFailure>>,
}

/// How a grouped write failed: before the commit (it did not apply) or at it.
pub(crate) enum GroupFailure {
    Before(StorageError),
    AtCommit(StorageError),
}

/// Writes committed together at most: each waits for the group's transaction, so a group
/// stays short.
const MAX_GROUP: usize = 16;

enum Work {
    Alone(Queued),
    Grouped(Grouped),
}

struct Entry {
    queued_at: Instant,
    /// Jobs ahead of this one when it was queued.
    behind: usize,
    /// The write's wait in the queue, closed when the thread takes it.
    waiting: tracing::Span,
    work: Work,
}

impl Entry {
    /// Fails the entry without running it.
    fn fail(self, runtime: &tokio::runtime::Runtime, e: StorageError) {
        match self.work {
            Work::Alone(job) => {
                runtime.block_on(job(Err(e)));
            }
            Work::Grouped(g) => {
                let _ = g.answer.send(Err(GroupFailure::Before(e)));
            }
        }
    }
}

#[derive(Default)]
struct State {
    queued: AtomicUsize,
    open: AtomicBool,
    busy: AtomicBool,
}

/// Dropping the writer closes its queue and waits for the thread to finish the writes
/// queued and close its connection.
pub(crate) struct Writer {
    jobs: Sender<Entry>,
    state: Arc<State>,
    _thread: OwnThread,
}

impl Writer {
    /// Starts the thread; it opens its connection through `pool` on the first write and
    /// ends when the pool is dropped.
    pub(crate) fn start(pool: Weak<Pool>) -> Result<Self, StorageError> {
        let (jobs, queue) = channel();
        let state = Arc::new(State::default());
        let thread_state = Arc::clone(&state);
        let thread = OwnThread::spawn("memory-writer", move || run(pool, queue, &thread_state))?;
        Ok(Writer {
            jobs,
            state,
            _thread: thread,
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

    /// Queues `work` without waiting for it (`false` if the thread has stopped). For the
    /// checkpointer's last step, which must run between two writes.
    pub(crate) fn submit<F>(&self, work: F) -> bool
    where
        F: for<'c> FnOnce(&'c mut Conn) -> Job<'c, ()> + Send + 'static,
    {
        let job: Queued = Box::new(move |conn| {
            Box::pin(async move {
                if let Ok(conn) = conn {
                    work(conn).await;
                }
                true
            })
        });
        self.enqueue(Work::Alone(job), tracing::Span::none())
    }

    /// Queues a write to be committed with the others queued beside it, and waits for its
    /// outcome. It runs to its end even if the caller stops waiting.
    pub(crate) async fn run_grouped(
        &self,
        body: GroupedBody,
        commit_sent: Arc<AtomicBool>,
        recorder: Option<memory_core::change::Recorder>,
        order: Option<Arc<tokio::sync::Mutex<()>>>,
    ) -> Result<Result<u64, GroupFailure>, StorageError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let grouped = Grouped {
            body,
            commit_sent,
            recorder,
            order,
            answer,
        };
        if !self.enqueue(Work::Grouped(grouped), phase_span!("write_checkout")) {
            return Err(stopped());
        }
        answered.await.map_err(|_| stopped())
    }

    fn enqueue(&self, work: Work, waiting: tracing::Span) -> bool {
        let behind = self.state.queued.fetch_add(1, Ordering::AcqRel);
        let entry = Entry {
            queued_at: Instant::now(),
            behind,
            waiting,
            work,
        };
        if self.jobs.send(entry).is_ok() {
            return true;
        }
        self.state.queued.fetch_sub(1, Ordering::AcqRel);
        false
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
        if !self.enqueue(Work::Alone(job), phase_span!("write_checkout")) {
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
    // An entry taken while gathering a group that cannot join it: it runs next.
    let mut next: Option<Entry> = None;
    loop {
        let entry = match next.take() {
            Some(entry) => entry,
            None => match queue.recv() {
                Ok(entry) => entry,
                Err(_) => return,
            },
        };
        let Some(pool) = pool.upgrade() else { return };
        let Some(entry) = accept(&pool, &runtime, state, entry) else {
            continue;
        };
        if conn.is_none() {
            match runtime.block_on(pool.open()) {
                Ok(opened) => {
                    conn = Some(opened);
                    state.open.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    entry.fail(&runtime, e);
                    continue;
                }
            }
        }
        let Some(current) = conn.as_mut() else {
            continue;
        };
        let work = match entry.work {
            Work::Alone(job) => Either::Alone(job),
            Work::Grouped(first) => {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    let Ok(more) = queue.try_recv() else { break };
                    let Some(more) = accept(&pool, &runtime, state, more) else {
                        continue;
                    };
                    match more.work {
                        Work::Grouped(g) => group.push(g),
                        Work::Alone(_) => {
                            next = Some(more);
                            break;
                        }
                    }
                }
                Either::Group(group)
            }
        };
        state.busy.store(true, Ordering::Relaxed);
        let span = phase_span!("write_transaction");
        // A write that panics loses its connection (and its caller gets an error), not the
        // thread: later writes still run.
        let keep = std::panic::catch_unwind(AssertUnwindSafe(|| match work {
            Either::Alone(job) => runtime.block_on(job(Ok(current)).instrument(span)),
            Either::Group(group) => runtime.block_on(commit_group(current, group).instrument(span)),
        }))
        .unwrap_or(false);
        state.busy.store(false, Ordering::Relaxed);
        // A write leaves no transaction open; one that did (a failed rollback) is closed by
        // dropping its connection, which rolls it back.
        if !keep || conn.as_ref().is_some_and(|c| !c.raw.is_autocommit()) {
            conn = None;
            state.open.store(false, Ordering::Relaxed);
            pool.record_discard();
        }
    }
}

enum Either {
    Alone(Queued),
    Group(Vec<Grouped>),
}

/// Takes an entry off the queue: counts its wait, and fails it if it waited past the
/// checkout timeout (`None` then).
fn accept(
    pool: &Pool,
    runtime: &tokio::runtime::Runtime,
    state: &State,
    entry: Entry,
) -> Option<Entry> {
    state.queued.fetch_sub(1, Ordering::AcqRel);
    let Entry {
        queued_at,
        behind,
        waiting,
        work,
    } = entry;
    drop(waiting);
    let waited = queued_at.elapsed();
    if behind > 0 {
        pool.record_wait(waited);
    }
    let entry = Entry {
        queued_at,
        behind,
        waiting: tracing::Span::none(),
        work,
    };
    if waited > pool.checkout_timeout() {
        pool.record_timeout();
        let e = StorageError::new(
            ErrorKind::Unavailable,
            format!(
                "the writer stayed busy for {:?} (the checkout timeout) before this write",
                pool.checkout_timeout()
            ),
        );
        entry.fail(runtime, e);
        return None;
    }
    Some(entry)
}

/// A copy of `e` for each of several writes (errors are not `Clone`).
fn copy(e: &StorageError) -> StorageError {
    StorageError::new(e.kind(), e.to_string())
}

/// Commits `group` as one transaction, each write in a savepoint of its own: a write that
/// fails is rolled back alone and answered at once; the others commit together, their
/// items' words indexed by one write before the commit (`text_index::PendingText`; if that
/// fails, none of the group applies). Answers whether the connection stays usable.
async fn commit_group(conn: &mut Conn, group: Vec<Grouped>) -> bool {
    conn.pending_text = Some(Vec::new());
    let keep = run_group(conn, group).await;
    conn.pending_text = None;
    keep
}

async fn run_group(conn: &mut Conn, group: Vec<Grouped>) -> bool {
    if let Err(e) = conn.raw.execute("BEGIN IMMEDIATE", ()).await {
        let e = db("beginning a write transaction", e);
        let keep = e.kind() != ErrorKind::Transient;
        for g in group {
            let _ = g.answer.send(Err(GroupFailure::Before(copy(&e))));
        }
        return keep;
    }
    let mut keep = true;
    let mut applied = Vec::with_capacity(group.len());
    for g in group {
        let Grouped {
            body,
            commit_sent,
            recorder,
            order,
            answer,
        } = g;
        let noted = conn.pending_text.as_ref().map_or(0, Vec::len);
        if let Err(e) = conn.raw.execute("SAVEPOINT grouped_write", ()).await {
            let e = db("opening a write's savepoint", e);
            keep &= e.kind() != ErrorKind::Transient;
            let _ = answer.send(Err(GroupFailure::Before(e)));
            continue;
        }
        match body(conn).await {
            Ok(position) => {
                let released = conn.raw.execute("RELEASE grouped_write", ()).await;
                match released {
                    Ok(_) => applied.push((position, commit_sent, recorder, order, answer)),
                    Err(e) => {
                        // The savepoint is still open: the whole group is unsure; undo it.
                        let e = db("releasing a write's savepoint", e);
                        let _ = answer.send(Err(GroupFailure::Before(copy(&e))));
                        for (_, _, _, _, answer) in applied {
                            let _ = answer.send(Err(GroupFailure::Before(copy(&e))));
                        }
                        rollback(&conn.raw).await;
                        return false;
                    }
                }
            }
            Err(e) => {
                keep &= e.kind() != ErrorKind::Transient;
                let undone = async {
                    conn.raw.execute("ROLLBACK TO grouped_write", ()).await?;
                    conn.raw.execute("RELEASE grouped_write", ()).await
                }
                .await;
                let _ = answer.send(Err(GroupFailure::Before(e)));
                if let Some(pending) = conn.pending_text.as_mut() {
                    pending.truncate(noted);
                }
                if let Err(e) = undone {
                    let e = db("rolling back a write's savepoint", e);
                    for (_, _, _, _, answer) in applied {
                        let _ = answer.send(Err(GroupFailure::Before(copy(&e))));
                    }
                    rollback(&conn.raw).await;
                    return false;
                }
            }
        }
    }
    if applied.is_empty() {
        rollback(&conn.raw).await;
        return keep;
    }
    let pending = conn.pending_text.take().unwrap_or_default();
    if let Err(e) = crate::text_index::write_pending(&conn.raw, pending).await {
        for (_, _, _, _, answer) in applied {
            let _ = answer.send(Err(GroupFailure::Before(copy(&e))));
        }
        rollback(&conn.raw).await;
        return keep && e.kind() != ErrorKind::Transient;
    }
    for (_, sent, _, _, _) in &applied {
        sent.store(true, Ordering::SeqCst);
    }
    let order = applied.iter().find_map(|(_, _, _, order, _)| order.clone());
    let _order = match &order {
        Some(order) => Some(order.lock().await),
        None => None,
    };
    match conn.raw.execute("COMMIT", ()).await {
        Ok(_) => {
            for (position, _, recorder, _, answer) in applied {
                if let Some(recorder) = recorder {
                    recorder.record(position);
                }
                let _ = answer.send(Ok(position));
            }
            keep
        }
        Err(e) => {
            let e = db("committing", e);
            for (_, _, _, _, answer) in applied {
                let _ = answer.send(Err(GroupFailure::AtCommit(copy(&e))));
            }
            rollback(&conn.raw).await;
            false
        }
    }
}

async fn rollback(raw: &libsql::Connection) {
    if !raw.is_autocommit()
        && let Err(e) = raw.execute("ROLLBACK", ()).await
    {
        tracing::warn!(error = %e, "rollback failed");
    }
}
