//! Checkpoints of a local file's write-ahead log, off the write path.
//!
//! SQLite's automatic checkpoint runs inside the commit that pushes the WAL past 1,000
//! pages, so every few dozen writes one of them pays for copying the log back into the
//! database and its fsyncs (measured: 5–13 ms against 0.2 ms for the others). Connections
//! of a local file turn it off (`wal_autocheckpoint = 0`) and this thread of the store's own
//! runs a `PASSIVE` checkpoint (which waits for nobody) `interval` after the first commit
//! it has not covered.
//!
//! A passive checkpoint running beside a steady stream of writes never quite catches up
//! (frames are appended while it copies, and readers' snapshots hold frames back), and
//! SQLite restarts the log from its beginning only when a write starts on a fully copied
//! one: measured, the log grew past 10,000 pages in 1,000 writes without restarting. So
//! once the log holds more than half of `max_pages`, the checkpointer asks the writer
//! thread to run a `RESTART` checkpoint between two writes ("finish"): no write competes
//! with it, the background pass has copied most of the log, and it waits (in the busy
//! handler) only for the reads still using the log, a few milliseconds; the next write
//! starts the log afresh. Past `max_pages` the writer runs `TRUNCATE` instead, which also
//! empties the file. `journal_size_limit` (set on every connection) truncates the file back
//! to `max_pages` pages whenever the log restarts. (Run from the checkpoint thread, a
//! `TRUNCATE` competed with the writer for the write lock and stalled writes up to 850 ms.)
//!

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::Duration;

use libsql::Connection;
use memory_core::StorageError;

use crate::own_thread::OwnThread;

/// What the checkpointer has done since the store opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Passive checkpoints run.
    pub checkpoints: u64,
    /// Restart checkpoints the writer thread ran between two writes to finish a
    /// background one (see the module notes).
    pub finishes: u64,
    /// Truncating checkpoints the writer thread ran because the log held more than the
    /// limit.
    pub restarts: u64,
    /// Checkpoints that failed (logged; the next commit schedules another).
    pub failures: u64,
    /// The most pages the log held when a checkpoint looked at it.
    pub largest_log_pages: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    checkpoints: AtomicU64,
    finishes: AtomicU64,
    /// A finishing checkpoint is queued for the writer thread.
    finishing: std::sync::atomic::AtomicBool,
    restarts: AtomicU64,
    failures: AtomicU64,
    largest_log_pages: AtomicU64,
}

/// The handle of a store's checkpoint thread; dropping it (with the store's last clone)
/// ends the thread after its last checkpoint and waits for it.
pub(crate) struct Checkpointer {
    wake: SyncSender<()>,
    counters: Arc<Counters>,
    _thread: OwnThread,
}

impl Checkpointer {
    /// Starts the thread, which checkpoints through `conn` and hands the last step of a
    /// checkpoint to `finish` (which runs it on the writing connection between two writes,
    /// or answers `false` if it cannot).
    pub(crate) fn start(
        conn: Connection,
        interval: Duration,
        max_pages: u64,
        finish: Box<dyn Fn(Arc<Counters>, bool) -> bool + Send>,
    ) -> Result<Self, StorageError> {
        let (wake, woken) = sync_channel(1);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = OwnThread::spawn("memory-checkpoint", move || {
            run(conn, woken, interval, max_pages, &thread_counters, &*finish)
        })?;
        Ok(Checkpointer {
            wake,
            counters,
            _thread: thread,
        })
    }

    /// Called after each commit: schedules a checkpoint (cheap; one wake-up at most).
    pub(crate) fn after_commit(&self) {
        // Full: a checkpoint is already scheduled; gone: the thread ended (logged there).
        let _ = self.wake.try_send(());
    }

    pub(crate) fn stats(&self) -> CheckpointStats {
        let c = &self.counters;
        CheckpointStats {
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            finishes: c.finishes.load(Ordering::Relaxed),
            restarts: c.restarts.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            largest_log_pages: c.largest_log_pages.load(Ordering::Relaxed),
        }
    }
}

fn run(
    conn: Connection,
    woken: Receiver<()>,
    interval: Duration,
    max_pages: u64,
    counters: &Arc<Counters>,
    finish: &(dyn Fn(Arc<Counters>, bool) -> bool + Send),
) {
    // libsql's calls are async; on a local file they complete without waiting on anything
    // a runtime drives, so a bare current-thread runtime is enough.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "no runtime for the checkpoint thread; checkpoints stop");
            return;
        }
    };
    loop {
        let closing = woken.recv().is_err();
        if !closing {
            // Commits arriving meanwhile are covered by this checkpoint.
            std::thread::sleep(interval);
        }
        let closing = closing || matches!(woken.try_recv(), Err(TryRecvError::Disconnected));
        let log = runtime.block_on(checkpoint(&conn, counters));
        if log > max_pages / 2
            && !counters.finishing.swap(true, Ordering::AcqRel)
            && !finish(Arc::clone(counters), log > max_pages)
        {
            counters.finishing.store(false, Ordering::Release);
        }
        if closing {
            return;
        }
    }
}

/// The last step of a checkpoint, on the writing connection between two writes: `RESTART`
/// (or `TRUNCATE`, past the limit), which waits for the readers still using the log and
/// leaves it empty for the next write to start from.
pub(crate) async fn finish(conn: &Connection, counters: &Counters, truncate: bool) {
    let sql = if truncate {
        counters.restarts.fetch_add(1, Ordering::Relaxed);
        "PRAGMA wal_checkpoint(TRUNCATE)"
    } else {
        counters.finishes.fetch_add(1, Ordering::Relaxed);
        "PRAGMA wal_checkpoint(RESTART)"
    };
    if let Err(e) = pages(conn, sql).await {
        counters.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "a finishing checkpoint failed");
    }
    counters.finishing.store(false, Ordering::Release);
}

/// One background checkpoint; answers the pages the log held.
async fn checkpoint(conn: &Connection, counters: &Counters) -> u64 {
    match pages(conn, "PRAGMA wal_checkpoint(PASSIVE)").await {
        Ok((log, _copied)) => {
            counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            counters.largest_log_pages.fetch_max(log, Ordering::Relaxed);
            log
        }
        Err(e) => {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "a checkpoint failed");
            0
        }
    }
}

/// `(pages in the log, pages copied into the database)` after the checkpoint `sql` runs.
async fn pages(conn: &Connection, sql: &str) -> Result<(u64, u64), libsql::Error> {
    let mut rows = conn.query(sql, ()).await?;
    let Some(row) = rows.next().await? else {
        return Ok((0, 0));
    };
    let count = |i| row.get::<i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
    let result = (count(1)?, count(2)?);
    while rows.next().await?.is_some() {}
    Ok(result)
}
