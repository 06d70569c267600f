//! A real sqld killed (SIGKILL) and restarted in the middle of a workload through the cached
//! store: calls during the outage fail with a typed, retryable error within a bounded time
//! and never panic; once the server is back the same store works without being rebuilt;
//! every write that returned success is on the server; and the cache serves nothing the
//! server does not hold.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use std::time::{Duration, Instant};

use memory_core::testing::samples;
use memory_core::{EpisodeId, ErrorKind, StorageBackend};
use memory_storage_cached::CacheSettings;
use memory_storage_turso::{TursoConfig, TursoStorage};

/// No call may take longer than this, outage or not.
const CALL_LIMIT: Duration = Duration::from_secs(10);

/// Runs `op`, failing the test if it takes longer than [`CALL_LIMIT`].
async fn bounded<T>(what: &str, op: impl Future<Output = T>) -> T {
    let started = Instant::now();
    match tokio::time::timeout(CALL_LIMIT, op).await {
        Ok(out) => out,
        Err(_) => panic!(
            "{what} hung past {CALL_LIMIT:?} (started {:?} ago)",
            started.elapsed()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_server_loses_no_acknowledged_write() -> anyhow::Result<()> {
    let mut server = support::Sqld::start().await?;
    let store = TursoStorage::open(TursoConfig::remote(server.url(), None)).await?;
    let cached = store.cached(&CacheSettings::default())?;
    let (mut acknowledged, mut unknown): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());

    // Up: every write succeeds; reads fill the cache.
    for n in 0..30 {
        bounded("a write", cached.store_episode(&samples::episode(n))).await?;
        acknowledged.push(n);
        bounded("a read", cached.get_episode(samples::episode(n).id)).await?;
    }

    server.kill();
    let mut kinds = Vec::new();
    for n in 30..40 {
        match bounded(
            "a write during the outage",
            cached.store_episode(&samples::episode(n)),
        )
        .await
        {
            Ok(()) => acknowledged.push(n),
            Err(e) => {
                kinds.push(e.kind());
                unknown.push(n);
            }
        }
        // A read of something never cached has to ask the server.
        let absent = bounded(
            "a read during the outage",
            cached.get_episode(EpisodeId::new()),
        );
        if let Err(e) = absent.await {
            kinds.push(e.kind());
        }
    }
    assert!(
        !kinds.is_empty(),
        "calls to a dead server cannot all succeed"
    );
    for kind in &kinds {
        assert!(
            matches!(kind, ErrorKind::Transient | ErrorKind::Unavailable),
            "an outage is a retryable error, got {kind:?} (all: {kinds:?})"
        );
    }

    server.restart().await?;
    // Back: the same store recovers on its own (its pool drops dead connections).
    let recovered = Instant::now();
    let mut n = 40;
    loop {
        match bounded(
            "a write after the restart",
            cached.store_episode(&samples::episode(n)),
        )
        .await
        {
            Ok(()) => {
                acknowledged.push(n);
                break;
            }
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Transient | ErrorKind::Unavailable),
                    "{e}"
                );
                assert!(
                    recovered.elapsed() < Duration::from_secs(30),
                    "no recovery: {e}"
                );
                unknown.push(n);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        n += 1;
    }
    let recovery = recovered.elapsed();
    for m in n..n + 20 {
        bounded(
            "a write after recovery",
            cached.store_episode(&samples::episode(m)),
        )
        .await?;
        acknowledged.push(m);
    }

    // A fresh client sees every acknowledged write, and the cache agrees with the server on
    // everything written or attempted.
    let fresh = TursoStorage::open(TursoConfig::remote(server.url(), None)).await?;
    for n in &acknowledged {
        let episode = samples::episode(*n);
        let stored = fresh.get_episode(episode.id).await?;
        assert_eq!(
            stored.as_deref(),
            Some(&episode),
            "acknowledged write {n} lost"
        );
    }
    for n in acknowledged.iter().chain(&unknown) {
        let id = samples::episode(*n).id;
        assert_eq!(
            cached.get_episode(id).await?,
            fresh.get_episode(id).await?,
            "the cache and the server disagree on episode {n}"
        );
    }
    println!(
        "outage errors: {kinds:?}; first write after the restart succeeded after {recovery:?}; \
         {} acknowledged writes all present, {} of unknown outcome",
        acknowledged.len(),
        unknown.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_fails_calls_within_the_operation_timeout() -> anyhow::Result<()> {
    let limit = Duration::from_secs(2);
    assert_eq!(
        TursoConfig::remote("http://127.0.0.1:1", None).operation_timeout,
        Some(memory_storage_turso::DEFAULT_OPERATION_TIMEOUT)
    );
    assert_eq!(TursoConfig::local("m.db").operation_timeout, None);
    assert!(
        TursoConfig::remote("http://127.0.0.1:1", None)
            .operation_timeout(Some(Duration::ZERO))
            .validate()
            .is_err()
    );

    let server = support::Sqld::start().await?;
    let config = TursoConfig::remote(server.url(), None).operation_timeout(Some(limit));
    let store = TursoStorage::open(config.clone()).await?;
    let cached = store.cached(&CacheSettings::default())?;
    for n in 0..10 {
        cached.store_episode(&samples::episode(n)).await?;
    }

    // Stopped (SIGSTOP): connections are accepted and nothing is ever answered.
    server.freeze(true)?;
    let outcomes = [
        timed(cached.store_episode(&samples::episode(10))).await,
        timed(async { cached.get_episode(EpisodeId::new()).await.map(|_| ()) }).await,
        timed(async { store.count_episodes().await.map(|_| ()) }).await,
        timed(async { TursoStorage::open(config.clone()).await.map(|_| ()) }).await,
        // Even a cached item: the cache cannot check for other writers, and it never
        // serves what it cannot vouch for.
        timed(async { cached.get_episode(samples::episode(3).id).await.map(|_| ()) }).await,
    ];
    server.freeze(false)?;

    // A cut-off write says where it stalled: here, at its first round trip.
    let write_error = outcomes[0].0.as_ref().err().map(ToString::to_string);
    assert!(
        write_error
            .as_deref()
            .is_some_and(|e| e.contains("while waiting for the server's write lock")),
        "{write_error:?}"
    );
    for (i, (outcome, took)) in outcomes.iter().enumerate() {
        let e = outcome
            .as_ref()
            .expect_err("a stalled server cannot answer");
        assert_eq!(e.kind(), ErrorKind::Transient, "call {i}: {e}");
        // A cached call can make two server calls, each bounded: the check for other
        // writers and the read itself.
        assert!(
            *took < 2 * limit + Duration::from_secs(1),
            "call {i} took {took:?}"
        );
    }

    // Thawed: the same store works again; the cut-off connections were dropped. A write cut
    // off during the stall may still reach the server when it resumes and hold its write
    // lock until the server expires that stream, so the first write may wait for that.
    let thawed = Instant::now();
    loop {
        match cached.store_episode(&samples::episode(11)).await {
            Ok(()) => break,
            Err(e) if e.is_transient() && thawed.elapsed() < Duration::from_secs(30) => {
                println!("after the thaw, {:?}: {e}", thawed.elapsed());
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!("first write after the thaw: {:?}", thawed.elapsed());
    let fresh = TursoStorage::open(TursoConfig::remote(server.url(), None)).await?;
    for n in (0..10).chain([11]) {
        let episode = samples::episode(n);
        assert_eq!(
            fresh.get_episode(episode.id).await?.as_deref(),
            Some(&episode)
        );
    }
    println!(
        "stalled server: {:?}",
        outcomes
            .iter()
            .map(|(o, took)| (o.as_ref().err().map(|e| e.kind()), *took))
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// The call's outcome and how long it took, never more than [`CALL_LIMIT`].
async fn timed<T>(
    op: impl Future<Output = memory_core::Result<T>>,
) -> (memory_core::Result<T>, Duration) {
    let started = Instant::now();
    let outcome = bounded("a call", op).await;
    (outcome, started.elapsed())
}
