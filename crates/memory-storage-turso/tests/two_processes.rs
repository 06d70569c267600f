//! Two OS processes on one store: a cached reader in this process, a writer in a child
//! process (this test binary run again as `child_writer`). A write the child acknowledged
//! is seen by every read of the parent that starts one change-check interval later: on a
//! shared local database file and through two clients of one sqld.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "support/processes.rs"]
mod processes;
mod support;

use processes::config;

use std::process::Stdio;
use std::time::{Duration, Instant};

use memory_core::{Episode, EpisodeId, EpisodeQuery, StorageBackend, TaskContext, TaskType};
use memory_storage_turso::{CacheSettings, TursoStorage};
use tokio::io::{AsyncBufReadExt, BufReader};

const TARGET_ENV: &str = "MEMORY_TWO_PROCESSES_TARGET";
const EPISODE_ENV: &str = "MEMORY_TWO_PROCESSES_EPISODE";
const INTERVAL: Duration = Duration::from_millis(100);

fn episode(id: EpisodeId, description: &str) -> Episode {
    let mut e = Episode::new(TaskType::Testing, description, TaskContext::new("shared"));
    e.id = id;
    e
}

/// The second process: rewrites the episode it is given, adds one more to its domain,
/// and prints `MEMORY-CHILD-ACK` once both writes committed.
#[tokio::test]
#[ignore = "run by the two-process tests as the writing process"]
async fn child_writer() {
    let target = std::env::var(TARGET_ENV).expect("run by the two-process tests only");
    let id: EpisodeId = std::env::var(EPISODE_ENV).unwrap().parse().unwrap();
    let store = TursoStorage::open(config(&target)).await.unwrap();
    store.store_episode(&episode(id, "second")).await.unwrap();
    store
        .store_episode(&episode(EpisodeId::new(), "child's own"))
        .await
        .unwrap();
    println!("MEMORY-CHILD-ACK");
}

async fn reader_sees_the_other_process(target: String) -> anyhow::Result<()> {
    let settings = CacheSettings::default().change_check_interval(INTERVAL);
    let store = TursoStorage::open(config(&target).cache(settings.clone())).await?;
    let cached = store.cached(&settings)?;
    let id = EpisodeId::new();
    cached.store_episode(&episode(id, "first")).await?;
    let by_domain = EpisodeQuery::new().domain("shared");
    for _ in 0..3 {
        assert_eq!(cached.get_episode(id).await?.unwrap().description, "first");
        assert_eq!(cached.query_episodes(&by_domain).await?.items.len(), 1);
    }
    let before = cached.stats();
    assert!(
        before.episodes.hits >= 2 && before.episode_queries.hits >= 2,
        "{before:?}"
    );

    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(processes::child_args("child_writer"))
        .env(TARGET_ENV, &target)
        .env(EPISODE_ENV, id.to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut acked = None;
    while let Some(line) = lines.next_line().await? {
        if line.contains("MEMORY-CHILD-ACK") {
            acked = Some(Instant::now());
            break;
        }
    }
    let acked = acked.expect("the child process acknowledged its writes");
    assert!(child.wait().await?.success());

    // The documented bound: reads starting one interval after the commit see it.
    tokio::time::sleep_until((acked + INTERVAL).into()).await;
    let got = cached.get_episode(id).await?.unwrap();
    assert_eq!(
        got.description, "second",
        "the other process's write is visible"
    );
    let page = cached.query_episodes(&by_domain).await?;
    assert_eq!(
        page.items.len(),
        2,
        "the other process's new episode is in the query"
    );
    let after = cached.stats();
    assert!(after.foreign_flushes > before.foreign_flushes, "{after:?}");

    // Its own writes do not make it flush.
    let flushes = after.foreign_flushes;
    for i in 0..5 {
        cached
            .store_episode(&episode(id, &format!("own {i}")))
            .await?;
        tokio::time::sleep(INTERVAL).await;
        assert_eq!(
            cached.get_episode(id).await?.unwrap().description,
            format!("own {i}")
        );
    }
    assert_eq!(
        cached.stats().foreign_flushes,
        flushes,
        "own writes are not foreign"
    );
    Ok(())
}

#[tokio::test]
async fn a_write_by_another_process_on_the_same_file_is_seen_within_the_interval()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("memory.db");
    reader_sees_the_other_process(format!("file:{}", path.display())).await
}

#[tokio::test]
async fn a_write_by_another_client_of_the_server_is_seen_within_the_interval() -> anyhow::Result<()>
{
    let server = support::Sqld::start().await?;
    reader_sees_the_other_process(server.url()).await
}
