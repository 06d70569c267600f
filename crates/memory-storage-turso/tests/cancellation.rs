//! Callers that stop waiting for a write (a timeout that fires mid-batch) against a real
//! sqld and a local file:
//!
//! - the write's transaction never stays open: another handle and another process write
//!   within a second, and the cancelling handle's next write succeeds;
//! - through the cache, the write still finishes and the cache agrees with the database
//!   afterwards (the change check is an hour away, so nothing else would repair it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "support/processes.rs"]
mod processes;
mod support;

use processes::config;

use std::process::Stdio;
use std::time::{Duration, Instant};

use memory_core::testing::handles::{self, revision};
use memory_core::testing::typical::typical_episode;
use memory_core::{Episode, EpisodeId, StorageBackend};
use memory_storage_turso::{CacheSettings, TursoConfig, TursoStorage};

const TARGET_ENV: &str = "MEMORY_CANCELLATION_TARGET";
/// How long another writer may take once a cut-off batch's caller gave up (at least; twice
/// an uncut batch when that is longer).
const PROMPT: Duration = Duration::from_secs(1);

fn batch(size: usize) -> Vec<Episode> {
    (0..size)
        .map(|i| {
            let mut e = typical_episode(i as u64);
            e.id = EpisodeId::new();
            e
        })
        .collect()
}

/// Another process: opens the store, writes one episode, prints how long the write took.
#[tokio::test]
#[ignore = "run by the cancellation tests as the other writing process"]
async fn child_writer() {
    let target = std::env::var(TARGET_ENV).expect("run by the cancellation tests only");
    let store = TursoStorage::open(config(&target)).await.unwrap();
    let started = Instant::now();
    store
        .store_episode(&revision(EpisodeId::new(), 0))
        .await
        .unwrap();
    println!("MEMORY-CHILD-WROTE {}", started.elapsed().as_micros());
}

fn other_process_writes(target: &str) -> Duration {
    let started = Instant::now();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(processes::child_args("child_writer"))
        .env(TARGET_ENV, target)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split("MEMORY-CHILD-WROTE ").nth(1))
        .unwrap_or_else(|| {
            panic!(
                "the other process did not write (after {:?})",
                started.elapsed()
            )
        });
    Duration::from_micros(line.trim().parse().unwrap())
}

/// Batches of `size` cut off by timeouts from 0 to 19 times `step`; after each, another
/// handle (and, every fifth time, another process) writes within [`PROMPT`] (or twice an
/// uncut batch), and the cancelling handle writes again. On a local file libsql runs each statement
/// synchronously inside one poll, so a timeout cannot land inside a transaction there
/// (`must_cut` false): the file case checks that nothing else goes wrong.
async fn cut_off_batches_leave_no_transaction_open(
    target: &str,
    size: usize,
    step: Duration,
    must_cut: bool,
) {
    let cancelling = TursoStorage::open(config(target)).await.unwrap();
    let other = TursoStorage::open(config(target)).await.unwrap();
    // A cut-off batch still runs to its end (or its rollback) before the lock is free: the
    // other writer may wait up to one whole batch, which takes longer than PROMPT on a
    // loaded machine. The bound stays below the 5 s busy timeout a leaked transaction would
    // make it wait (and fail after).
    let started = Instant::now();
    cancelling.store_episodes(&batch(size)).await.unwrap();
    let prompt = PROMPT.max(started.elapsed() * 2);
    assert!(
        prompt < Duration::from_secs(4),
        "one batch took {:?}: too slow to tell a prompt write from a leaked transaction",
        started.elapsed()
    );
    let (mut cut, mut slowest) = (0, Duration::ZERO);
    for trial in 0..20u32 {
        let limit = step * trial;
        if tokio::time::timeout(limit, cancelling.store_episodes(&batch(size)))
            .await
            .is_err()
        {
            cut += 1;
        }
        let started = Instant::now();
        tokio::time::timeout(prompt, other.store_episode(&revision(EpisodeId::new(), 0)))
            .await
            .unwrap_or_else(|_| panic!("trial {trial}: another handle waited over {prompt:?}"))
            .unwrap();
        slowest = slowest.max(started.elapsed());
        if trial % 5 == 0 {
            let took = other_process_writes(target);
            assert!(
                took < prompt,
                "trial {trial}: another process took {took:?} (bound {prompt:?})"
            );
            slowest = slowest.max(took);
        }
        cancelling
            .store_episode(&revision(EpisodeId::new(), 0))
            .await
            .unwrap_or_else(|e| panic!("trial {trial}: the cancelling handle's next write: {e}"));
    }
    println!("{target}: 20 batches of {size}, {cut} cut off; slowest other write {slowest:?}");
    assert!(cut >= 1 || !must_cut, "no batch was cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_batches_leave_no_transaction_open_on_sqld() {
    let server = support::Sqld::start().await.unwrap();
    cut_off_batches_leave_no_transaction_open(&server.url(), 100, Duration::from_millis(2), true)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_batches_leave_no_transaction_open_on_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = format!("file:{}", dir.path().join("cancel.db").display());
    cut_off_batches_leave_no_transaction_open(&target, 500, Duration::from_micros(500), false)
        .await;
}

/// Cached writes cut off by their caller's timeout still finish (on an embedded replica,
/// with the sync that makes them visible), and the cache agrees with the database
/// afterwards.
async fn cached_writes_whose_caller_gave_up_leave_no_stale_entry(config: TursoConfig) {
    let settings = CacheSettings::default().change_check_interval(Duration::from_secs(3_600));
    let store = TursoStorage::open(config).await.unwrap();
    let cached = store.cached(&settings).unwrap();
    let (cut, stale) = handles::cut_off_writes(&store, &cached, 30, Duration::from_micros(200))
        .await
        .unwrap();
    println!(
        "{}: 30 cached writes, {cut} cut off: {stale} stale entries",
        store.backend_name()
    );
    assert!(cut >= 1, "no write was cut off");
    assert_eq!(stale, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_remote_write_whose_caller_gave_up_leaves_no_stale_entry() {
    let server = support::Sqld::start().await.unwrap();
    cached_writes_whose_caller_gave_up_leave_no_stale_entry(TursoConfig::remote(
        server.url(),
        None,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_replica_write_whose_caller_gave_up_leaves_no_stale_entry() {
    let server = support::Sqld::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    cached_writes_whose_caller_gave_up_leave_no_stale_entry(TursoConfig::replica(
        dir.path().join("replica.db"),
        server.url(),
        None,
    ))
    .await;
}
