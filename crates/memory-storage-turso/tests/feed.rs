//! The libSQL change feed: what a write records, how far back it reaches (count, age, the
//! most items one write lists), and what a reader does when it cannot say: flush, counted
//! as such.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use memory_core::feed::{Change, ChangesSince, FeedGap, MAX_FEED_ITEMS};
use memory_core::testing::handles;
use memory_core::{ChangeSignal, Episode, EpisodeId, StorageBackend};
use memory_storage_turso::{CacheSettings, CachedStorage, TursoConfig, TursoStorage};

const INTERVAL: Duration = Duration::from_millis(20);

fn episode(revision: usize) -> Episode {
    handles::revision(EpisodeId::new(), revision)
}

async fn open(path: &std::path::Path) -> TursoStorage {
    TursoStorage::open(TursoConfig::local(path)).await.unwrap()
}

fn cached(store: &TursoStorage) -> CachedStorage<TursoStorage> {
    store
        .cached(&CacheSettings::default().change_check_interval(INTERVAL))
        .unwrap()
}

async fn feed_rows(path: &std::path::Path) -> i64 {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut rows = conn
        .query("SELECT COUNT(*) FROM change_feed", ())
        .await
        .unwrap();
    rows.next().await.unwrap().unwrap().get(0).unwrap()
}

#[tokio::test]
async fn each_write_lists_its_items_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("feed.db")).await;
    let start = store.change_position().await.unwrap();
    let (a, b) = (episode(1), episode(1));
    store.store_episodes(&[a.clone(), b.clone()]).await.unwrap();
    store.delete_episode(a.id).await.unwrap();
    match store.changes_since(start).await.unwrap() {
        ChangesSince::Complete { position, writes } => {
            assert_eq!(position, start + 2);
            assert_eq!(writes.len(), 2);
            assert_eq!(writes[0].position, start + 1);
            assert_eq!(
                &*writes[0].changes,
                &[
                    Change::EpisodeStored {
                        id: a.id,
                        domain: a.context.domain.clone()
                    },
                    Change::EpisodeStored {
                        id: b.id,
                        domain: b.context.domain.clone()
                    },
                ]
            );
            assert_eq!(&*writes[1].changes, &[Change::EpisodeDeleted { id: a.id }]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.changes_since(start + 2).await.unwrap(),
        ChangesSince::Complete {
            position: start + 2,
            writes: vec![]
        }
    );
}

#[tokio::test]
async fn the_feed_keeps_the_newest_writes_and_trims_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.db");
    let store = open(&path).await;
    let start = store.change_position().await.unwrap();
    for i in 0..4_200 {
        store.store_episode(&episode(i)).await.unwrap();
    }
    assert_eq!(feed_rows(&path).await, 4_096, "bounded by count");
    let now = start + 4_200;
    assert_eq!(
        store.changes_since(start).await.unwrap(),
        ChangesSince::Unknown {
            position: now,
            gap: FeedGap::Trimmed
        }
    );
    match store.changes_since(now - 4_096).await.unwrap() {
        ChangesSince::Complete { writes, .. } => assert_eq!(writes.len(), 4_096),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.changes_since(now - 4_097).await.unwrap(),
        ChangesSince::Unknown {
            position: now,
            gap: FeedGap::Trimmed
        }
    );
    // Age: entries older than an hour go, a few per write.
    // A second writer on the file waits for the lock like any other: the store's writer may
    // be finishing a checkpoint (RESTART holds the write lock) when the loop above returns.
    let db = libsql::Builder::new_local(&path).build().await.unwrap();
    let conn = db.connect().unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn.execute(
        "UPDATE change_feed SET at_micros = at_micros - 7200000000 WHERE generation IN \
             (SELECT generation FROM change_feed ORDER BY generation LIMIT 100)",
        (),
    )
    .await
    .unwrap();
    for i in 0..10 {
        store.store_episode(&episode(i)).await.unwrap();
    }
    // Each write added one and trimmed up to 4 aged ones beside the one past the count.
    assert_eq!(feed_rows(&path).await, 4_096 - 30);
}

/// A writer and a second handle's cache on one file, the cache holding one episode.
async fn writer_and_warm_reader(
    dir: &tempfile::TempDir,
) -> (TursoStorage, CachedStorage<TursoStorage>, Episode) {
    let path = dir.path().join("feed.db");
    let (writer, reader) = (open(&path).await, open(&path).await);
    let cache = cached(&reader);
    let kept = episode(0);
    cache.store_episode(&kept).await.unwrap();
    assert!(cache.get_episode(kept.id).await.unwrap().is_some());
    (writer, cache, kept)
}

/// Two handles on one file storing their first embeddings at once, of two dimensions: one
/// dimension wins, the other write is refused naming both, and both handles then agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_first_writers_of_two_dimensions_fix_one() {
    use memory_core::Embedding;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.db");
    for round in 0..10 {
        let (a, b) = (open(&path).await, open(&path).await);
        let with = |dimension: usize| {
            let mut e = episode(round);
            e.embedding = Some(Embedding::new(vec![1.0; dimension]).unwrap());
            e
        };
        let (x, y) = (with(4 + round), with(5 + round));
        let (ra, rb) = tokio::join!(a.store_episode(&x), b.store_episode(&y));
        let refused = match (&ra, &rb) {
            (Ok(()), Err(e)) | (Err(e), Ok(())) => e,
            other => panic!("round {round}: exactly one may win, got {other:?}"),
        };
        assert_eq!(
            refused.kind(),
            memory_core::ErrorKind::InvalidInput,
            "{refused}"
        );
        let winner = if ra.is_ok() { &x } else { &y };
        for store in [&a, &b] {
            let dims = winner.embedding.as_ref().unwrap().dimension();
            let other = Embedding::new(vec![1.0; dims + 1]).unwrap();
            let mut late = episode(round + 100);
            late.embedding = Some(other);
            assert!(store.store_episode(&late).await.is_err(), "round {round}");
        }
        drop((a, b));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

#[tokio::test]
async fn a_bulk_write_lists_nothing_and_readers_behind_it_flush() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, cache, kept) = writer_and_warm_reader(&dir).await;
    let start = writer.change_position().await.unwrap();
    let bulk: Vec<Episode> = (0..=MAX_FEED_ITEMS).map(episode).collect();
    writer.store_episodes(&bulk).await.unwrap();
    assert_eq!(
        writer.changes_since(start).await.unwrap(),
        ChangesSince::Unknown {
            position: start + 1,
            gap: FeedGap::TooMany
        }
    );
    tokio::time::sleep(INTERVAL * 2).await;
    assert!(cache.get_episode(kept.id).await.unwrap().is_some());
    let stats = cache.stats().foreign;
    assert_eq!(stats.flushes_feed_behind, 1, "{stats:?}");
}

#[tokio::test]
async fn a_reader_too_far_behind_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, cache, kept) = writer_and_warm_reader(&dir).await;
    // More writes than the feed keeps (4,096) before the reader's next check.
    for i in 0..4_200 {
        writer.store_episode(&episode(i)).await.unwrap();
    }
    tokio::time::sleep(INTERVAL * 2).await;
    assert!(cache.get_episode(kept.id).await.unwrap().is_some());
    let stats = cache.stats().foreign;
    assert_eq!(
        (stats.flushes_feed_behind, stats.writes),
        (1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_writer_with_the_feed_off_makes_readers_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.db");
    let writer = TursoStorage::open(TursoConfig::local(&path).change_feed(false))
        .await
        .unwrap();
    let reader = open(&path).await;
    let cache = cached(&reader);
    let kept = episode(0);
    cache.store_episode(&kept).await.unwrap();
    assert!(cache.get_episode(kept.id).await.unwrap().is_some());
    writer.store_episode(&episode(1)).await.unwrap();
    tokio::time::sleep(INTERVAL * 2).await;
    let misses = cache.stats().episodes.misses;
    assert!(cache.get_episode(kept.id).await.unwrap().is_some());
    let stats = cache.stats();
    assert_eq!(stats.foreign.flushes_feed_behind, 1, "{stats:?}");
    assert_eq!(stats.episodes.misses, misses + 1, "flushed: {stats:?}");
}
