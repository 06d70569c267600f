//! Two OS processes on one store: a cached reader in this process, a writer in a child
//! process (this test binary run again as `child_writer`). A write the child acknowledged
//! is seen by every read of the parent that starts one change-check interval later, and
//! only what it wrote leaves the parent's caches (read from the change feed; searches
//! by text and by vector included): on a shared
//! local database file, through two clients of one sqld, and on a replica of a primary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "support/processes.rs"]
mod processes;
mod support;

use processes::config;

use std::process::Stdio;
use std::time::{Duration, Instant};

use memory_core::search::{EpisodeSearch, Scored};
use memory_core::{
    Embedding, Episode, EpisodeId, EpisodeQuery, StorageBackend, TaskContext, TaskType,
};
use memory_storage_turso::{CacheSettings, TursoConfig, TursoStorage};
use tokio::io::{AsyncBufReadExt, BufReader};

const TARGET_ENV: &str = "MEMORY_TWO_PROCESSES_TARGET";
const INTERVAL: Duration = Duration::from_millis(100);

/// An episode of the shared domain, found by its description's words and by `vector`.
fn episode(id: EpisodeId, description: &str, vector: [f32; 2]) -> Episode {
    let mut e = Episode::new(TaskType::Testing, description, TaskContext::new("shared"));
    e.id = id;
    e.embedding = Some(Embedding::new(vector.to_vec()).unwrap());
    e
}

fn nearest(domain: &str, k: usize) -> EpisodeSearch {
    EpisodeSearch::new(Embedding::new(vec![1.0, 0.0]).unwrap(), k)
        .filter(EpisodeQuery::new().domain(domain))
}

/// A fixed id. The caches hash what an answer depends on into generation stripes, and a
/// write bumps its items' stripes: two that share one cost a spurious miss (by design,
/// never a stale hit). With fresh random ids the other domain's answers shared a stripe
/// with the child's writes in about 1 % of runs, failing the "stays cached" check below;
/// fixed ids make the stripes the same in every run, so that check holds always or never.
fn fixed_id(n: u64) -> EpisodeId {
    EpisodeId::from_uuid(memory_core::testing::samples::sample_uuid(0xE0, n))
}

/// The id of the episode both processes write, and of the child's new one.
const SHARED_ID: u64 = 1;
const CHILDS_OWN_ID: u64 = 2;

fn descriptions(found: &[Scored<Episode>]) -> Vec<&str> {
    found.iter().map(|s| s.item.description.as_str()).collect()
}

/// The second process: rewrites the episode it is given, adds one more to its domain,
/// and prints `MEMORY-CHILD-ACK` once both writes committed.
#[tokio::test]
#[ignore = "run by the two-process tests as the writing process"]
async fn child_writer() {
    let target = std::env::var(TARGET_ENV).expect("run by the two-process tests only");
    let store = TursoStorage::open(config(&target)).await.unwrap();
    store
        .store_episode(&episode(fixed_id(SHARED_ID), "second", [0.0, 1.0]))
        .await
        .unwrap();
    store
        .store_episode(&episode(fixed_id(CHILDS_OWN_ID), "child's own", [1.0, 1.0]))
        .await
        .unwrap();
    println!("MEMORY-CHILD-ACK");
}

/// Episodes of another domain the reader keeps cached while the child writes.
const UNTOUCHED: usize = 20;

/// The reader: `reader` is its store (the file, a client of the server, or a replica of
/// it); the child writes to `target`. `bound` is how long after the child's acknowledgement
/// every read must see the writes (the check interval).
async fn reader_sees_the_other_process(
    reader: TursoConfig,
    target: String,
    bound: Duration,
) -> anyhow::Result<()> {
    let settings = CacheSettings::default().change_check_interval(INTERVAL);
    let store = TursoStorage::open(reader.cache(settings.clone())).await?;
    let cached = store.cached(&settings)?;
    let id = fixed_id(SHARED_ID);
    cached
        .store_episode(&episode(id, "first", [1.0, 0.0]))
        .await?;
    let untouched: Vec<Episode> = (0..UNTOUCHED)
        .map(|i| {
            let mut e = Episode::new(
                TaskType::Testing,
                format!("untouched {i}"),
                TaskContext::new("other"),
            );
            e.id = fixed_id(100 + i as u64);
            e.embedding = Some(Embedding::new(vec![1.0, i as f32]).unwrap());
            e
        })
        .collect();
    cached.store_episodes(&untouched).await?;
    let by_domain = EpisodeQuery::new().domain("shared");
    // Small answers of the other domain (each item held is one more stripe; see `fixed_id`).
    let other_domain = EpisodeQuery::new().domain("other").limit(2);
    let other_nearest = nearest("other", 2);
    for _ in 0..3 {
        assert_eq!(cached.get_episode(id).await?.unwrap().description, "first");
        assert_eq!(cached.query_episodes(&by_domain).await?.items.len(), 1);
        assert_eq!(cached.query_episodes(&other_domain).await?.items.len(), 2);
        let first = cached
            .search_episodes(&EpisodeSearch::text("first", 5))
            .await?;
        assert_eq!(descriptions(&first), ["first"]);
        let near = cached.search_episodes(&nearest("shared", 10)).await?;
        assert_eq!(descriptions(&near), ["first"]);
        assert_eq!(cached.search_episodes(&other_nearest).await?.len(), 2);
    }
    for e in &untouched {
        assert!(cached.get_episode(e.id).await?.is_some());
    }
    let before = cached.stats();
    assert!(
        before.episodes.hits >= 2 && before.episode_queries.hits >= 2,
        "{before:?}"
    );

    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(processes::child_args("child_writer"))
        .env(TARGET_ENV, &target)
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
    tokio::time::sleep_until((acked + bound).into()).await;
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
    let first = cached
        .search_episodes(&EpisodeSearch::text("first", 5))
        .await?;
    assert!(
        first.is_empty(),
        "a text search sees the rewrite: {first:?}"
    );
    let near = cached.search_episodes(&nearest("shared", 10)).await?;
    assert_eq!(
        descriptions(&near),
        ["child's own", "second"],
        "a similarity search sees both writes"
    );
    // What the child did not touch is still cached: no flush, no miss.
    let mid = cached.stats();
    assert_eq!(cached.query_episodes(&other_domain).await?.items.len(), 2);
    for e in &untouched {
        assert!(cached.get_episode(e.id).await?.is_some());
    }
    assert_eq!(cached.search_episodes(&other_nearest).await?.len(), 2);
    let after = cached.stats();
    assert_eq!(after.foreign.flushes(), 0, "{after:?}");
    assert!(
        after.foreign.writes >= 2,
        "both child writes read from the feed: {after:?}"
    );
    assert!(after.foreign.invalidated >= 2, "{after:?}");
    assert_eq!(
        after.episodes.misses, mid.episodes.misses,
        "untouched episodes stay cached: {after:?}"
    );
    assert_eq!(
        after.episodes.hits - mid.episodes.hits,
        UNTOUCHED as u64,
        "{after:?}"
    );
    assert_eq!(
        after.episode_queries.hits - mid.episode_queries.hits,
        2,
        "the other domain's page and similarity search stay cached: {after:?}"
    );

    // Its own writes are not taken for foreign ones.
    let foreign = after.foreign.writes;
    for i in 0..5 {
        cached
            .store_episode(&episode(id, &format!("own {i}"), [1.0, 0.0]))
            .await?;
        tokio::time::sleep(INTERVAL).await;
        assert_eq!(
            cached.get_episode(id).await?.unwrap().description,
            format!("own {i}")
        );
    }
    let last = cached.stats();
    assert_eq!(
        last.foreign.writes, foreign,
        "own writes are not foreign: {last:?}"
    );
    assert_eq!(last.foreign.flushes(), 0, "{last:?}");
    Ok(())
}

#[tokio::test]
async fn a_write_by_another_process_on_the_same_file_is_seen_within_the_interval()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let target = format!("file:{}", dir.path().join("memory.db").display());
    reader_sees_the_other_process(config(&target), target, INTERVAL).await
}

#[tokio::test]
async fn a_write_by_another_client_of_the_server_is_seen_within_the_interval() -> anyhow::Result<()>
{
    let server = support::Sqld::start().await?;
    reader_sees_the_other_process(config(&server.url()), server.url(), INTERVAL).await
}

/// A replica that never syncs by itself (no sync interval) sees a write to its primary
/// within the check interval: each change check syncs it first.
#[tokio::test]
async fn a_write_to_the_primary_reaches_a_replica_reader_through_the_feed() -> anyhow::Result<()> {
    let server = support::Sqld::start_primary().await?;
    let dir = tempfile::tempdir()?;
    let replica = TursoConfig::replica(dir.path().join("replica.db"), server.url(), None);
    reader_sees_the_other_process(replica, server.url(), INTERVAL).await
}

const IDS_ENV: &str = "MEMORY_TWO_PROCESSES_IDS";
/// Bursts the burst writer makes.
const BURSTS: usize = 24;

fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn revision_of(e: &Episode) -> usize {
    e.description
        .strip_prefix("revision ")
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("not a revision: {:?}", e.description))
}

fn revision(id: EpisodeId, revision: usize) -> Episode {
    let mut e = episode(id, &format!("revision {revision}"), [1.0, 0.0]);
    e.embedding = None;
    e
}

/// The burst writer: rewrites the reader's own episodes in bursts (a few single writes or
/// one batch), pausing between bursts; prints `ACK index revision micros` for each item
/// once its write returned, then `DONE`.
#[tokio::test]
#[ignore = "run by the two-process tests as the writing process"]
async fn child_burst_writer() {
    let target = std::env::var(TARGET_ENV).expect("run by the two-process tests only");
    let ids: Vec<EpisodeId> = std::env::var(IDS_ENV)
        .unwrap()
        .split(',')
        .map(|id| id.parse().unwrap())
        .collect();
    let store = TursoStorage::open(config(&target)).await.unwrap();
    let mut revisions = vec![0usize; ids.len()];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for burst in 0..BURSTS {
        if burst % 2 == 0 {
            for _ in 0..1 + next(5) {
                let i = next(ids.len());
                revisions[i] += 1;
                store
                    .store_episode(&revision(ids[i], revisions[i]))
                    .await
                    .unwrap();
                println!("ACK {i} {} {}", revisions[i], wall_micros());
            }
        } else {
            let mut chosen: Vec<usize> = (0..2 + next(7)).map(|_| next(ids.len())).collect();
            chosen.sort_unstable();
            chosen.dedup();
            for &i in &chosen {
                revisions[i] += 1;
            }
            let batch: Vec<Episode> = chosen
                .iter()
                .map(|&i| revision(ids[i], revisions[i]))
                .collect();
            store.store_episodes(&batch).await.unwrap();
            let at = wall_micros();
            for &i in &chosen {
                println!("ACK {i} {} {at}", revisions[i]);
            }
        }
        tokio::time::sleep(Duration::from_millis(next(60) as u64)).await;
    }
    println!("DONE");
}

/// While another process rewrites the very episodes this one reads, in bursts of single and
/// batch writes, no read (by id or in a page) returns a revision older than one that
/// process acknowledged more than `bound` before the read began.
async fn no_read_is_staler_than_the_bound(
    reader: TursoConfig,
    target: String,
    bound: Duration,
) -> anyhow::Result<()> {
    let settings = CacheSettings::default().change_check_interval(INTERVAL);
    let store = TursoStorage::open(reader.cache(settings.clone())).await?;
    let cached = store.cached(&settings)?;
    let ids: Vec<EpisodeId> = (0..12).map(|_| EpisodeId::new()).collect();
    cached
        .store_episodes(&ids.iter().map(|id| revision(*id, 0)).collect::<Vec<_>>())
        .await?;
    // Per episode, the acknowledgement time of each revision.
    let mut acked: Vec<Vec<u64>> = vec![vec![wall_micros()]; ids.len()];
    let joined: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(processes::child_args("child_burst_writer"))
        .env(TARGET_ENV, &target)
        .env(IDS_ENV, joined.join(","))
        .stdout(Stdio::piped())
        .spawn()?;
    let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let acks = tokio::spawn(async move {
        let mut lines = lines;
        let mut acks = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            // The harness's "test ... " has no newline: the first line may start with it.
            if line.contains("DONE") {
                // Read on to the end: the child's test harness still prints.
                while lines.next_line().await.unwrap().is_some() {}
                return (acks, true);
            }
            if let Some(rest) = line.find("ACK ").map(|at| &line[at + 4..]) {
                let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
                acks.push((f[0] as usize, f[1] as usize, f[2]));
            }
        }
        (acks, false)
    });
    let by_domain = EpisodeQuery::new().domain("shared").limit(100);
    let index: std::collections::HashMap<EpisodeId, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    // (index, revision read, read began)
    let mut reads: Vec<(usize, usize, u64)> = Vec::new();
    let mut round = 0usize;
    while !acks.is_finished() {
        let began = wall_micros();
        if round % 5 == 4 {
            let page = cached.query_episodes(&by_domain).await?;
            assert_eq!(page.items.len(), ids.len(), "every episode in the page");
            for e in &page.items {
                reads.push((index[&e.id], revision_of(e), began));
            }
        } else {
            let i = round % ids.len();
            let got = cached.get_episode(ids[i]).await?.expect("never deleted");
            reads.push((i, revision_of(&got), began));
        }
        round += 1;
        tokio::task::yield_now().await;
    }
    let (log, done) = acks.await?;
    assert!(done, "the writer finished");
    assert!(child.wait().await?.success());
    for (i, rev, at) in log {
        assert_eq!(acked[i].len(), rev, "revisions in order");
        acked[i].push(at);
    }
    let (mut stale, mut worst) = (0, 0u64);
    for &(i, rev, began) in &reads {
        assert!(
            rev < acked[i].len(),
            "episode {i}: revision {rev} never written"
        );
        if let Some(&next) = acked[i].get(rev + 1)
            && next < began
        {
            stale += 1;
            worst = worst.max(began - next);
        }
    }
    let writes: usize = acked.iter().map(|a| a.len() - 1).sum();
    println!(
        "{} reads during {writes} foreign item writes: {stale} stale, the stalest {:.1} ms after the newer revision was acknowledged (bound {} ms)",
        reads.len(),
        worst as f64 / 1e3,
        bound.as_millis()
    );
    assert!(writes >= BURSTS, "the writer wrote: {writes}");
    assert!(
        worst < bound.as_micros() as u64,
        "a read {worst} µs after a newer revision was acknowledged"
    );
    Ok(())
}

#[tokio::test]
async fn bursts_of_single_and_batch_writes_on_the_same_file_stay_within_the_bound()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let target = format!("file:{}", dir.path().join("memory.db").display());
    no_read_is_staler_than_the_bound(config(&target), target, INTERVAL).await
}

#[tokio::test]
async fn bursts_of_single_and_batch_writes_through_the_server_stay_within_the_bound()
-> anyhow::Result<()> {
    let server = support::Sqld::start().await?;
    no_read_is_staler_than_the_bound(config(&server.url()), server.url(), INTERVAL).await
}

#[tokio::test]
async fn bursts_of_writes_to_the_primary_reach_a_replica_reader_within_the_bound()
-> anyhow::Result<()> {
    const SYNC: Duration = Duration::from_millis(50);
    let server = support::Sqld::start_primary().await?;
    let dir = tempfile::tempdir()?;
    let replica =
        TursoConfig::replica(dir.path().join("replica.db"), server.url(), None).sync_interval(SYNC);
    // The replica's own syncs run beside the checks' and do not widen the bound.
    no_read_is_staler_than_the_bound(replica, server.url(), INTERVAL).await
}
