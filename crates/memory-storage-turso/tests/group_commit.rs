//! Writes committed together on a local file (the writer thread's group commit) and the
//! full-text index: one index write per group, and what it holds is what each write left.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use memory_core::search::EpisodeSearch;
use memory_core::testing::samples;
use memory_core::{Episode, EpisodeId, StorageBackend};
use memory_storage_turso::{TursoConfig, TursoStorage};

async fn raw(path: &std::path::Path) -> libsql::Connection {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    db.connect().unwrap()
}

async fn integer(conn: &libsql::Connection, sql: &str) -> i64 {
    let mut rows = conn.query(sql, ()).await.unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
}

/// Turns FTS5's merges of the episode index off, so that its segments count what writes
/// made.
async fn merges_off(conn: &libsql::Connection) {
    for setting in ["'automerge', 0", "'crisismerge', 1000"] {
        conn.execute(
            &format!("INSERT INTO episode_text (episode_text, rank) VALUES ({setting})"),
            (),
        )
        .await
        .unwrap();
    }
}

/// FTS5's segments of the episode index: its data rows past the structure and averages
/// records, keyed by segment id (`rowid >> 37`).
const SEGMENTS: &str =
    "SELECT COUNT(DISTINCT id >> 37) FROM episode_text_data WHERE id >= (1 << 37)";

fn episode(i: u64, word: &str) -> Episode {
    let mut e = samples::episode(i);
    e.description = format!("run {word} of the group test");
    e
}

async fn ids_for(store: &TursoStorage, word: &str) -> Vec<EpisodeId> {
    let mut ids: Vec<EpisodeId> = store
        .search_episodes(&EpisodeSearch::text(word, 100))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.item.id)
        .collect();
    ids.sort();
    ids
}

/// 48 single writes queued at once behind a batch. Each write of a group used to open a
/// savepoint, at which FTS5 writes its pending words as a segment of their own: 48 writes
/// made about 48 segments. The group's words are now written once before its commit, so
/// segments number about the groups (at most 16 writes each). Merges are off here so that
/// the count shows what the writes made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_writes_indexes_its_words_in_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let store = Arc::new(TursoStorage::open(TursoConfig::local(&path)).await.unwrap());
    merges_off(&raw(&path).await).await;

    let batch: Vec<Episode> = (1_000..1_400).map(|i| episode(i, "batch")).collect();
    let mut tasks = Vec::new();
    {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.store_episodes(&batch).await.unwrap();
        }));
    }
    for i in 0..48u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .store_episode(&episode(i, &format!("single{i}")))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let conn = raw(&path).await;
    let segments = integer(&conn, SEGMENTS).await;
    assert!(
        segments <= 24,
        "49 writes made {segments} index segments: writes were not indexed once per group"
    );
    for i in 0..48u64 {
        assert_eq!(
            ids_for(&store, &format!("single{i}")).await,
            [samples::episode(i).id],
            "single{i}"
        );
    }
    assert_eq!(ids_for(&store, "batch").await.len(), 100, "top 100 of 400");
}

/// A batch whose ids come in descending order. FTS5 writes its pending words out as a
/// segment whenever a row's key is lower than the last one's, and new items are keyed in
/// id order: unless the words are written in that order too, a batch in any other order
/// becomes a segment every few items (and the merges that many segments trigger), which
/// made imports about a sixth slower. Merges are off, so the count is what the batch made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_in_any_order_is_indexed_in_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.db");
    let store = TursoStorage::open(TursoConfig::local(&path)).await.unwrap();
    let conn = raw(&path).await;
    merges_off(&conn).await;
    let mut batch: Vec<Episode> = (0..300).map(|i| episode(i, "ordered")).collect();
    batch.sort_by_key(|e| std::cmp::Reverse(e.id));
    store.store_episodes(&batch).await.unwrap();

    let segments = integer(&conn, SEGMENTS).await;
    assert!(
        segments <= 2,
        "a batch of 300 made {segments} index segments: its words were not written in key order"
    );
    assert_eq!(
        ids_for(&store, "ordered").await.len(),
        100,
        "top 100 of 300"
    );

    // Rewritten in yet another order (an import run twice): one segment more.
    let mut again: Vec<Episode> = (0..300).map(|i| episode(i, "rewritten")).collect();
    again.sort_by_key(|e| e.id.to_string().chars().rev().collect::<String>());
    store.store_episodes(&again).await.unwrap();
    let after = integer(&conn, SEGMENTS).await;
    assert!(
        after <= segments + 2,
        "rewriting the batch made {} more index segments",
        after - segments
    );
    assert!(ids_for(&store, "ordered").await.is_empty());
    assert_eq!(ids_for(&store, "rewritten").await.len(), 100);
}

/// Writes of one group that rewrite, delete and re-create the same items, and writes that
/// fail beside them: the index holds each item's last words, nothing of a deleted item or
/// of a failed write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_holds_what_each_write_of_a_group_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let store = Arc::new(TursoStorage::open(TursoConfig::local(&path)).await.unwrap());
    for round in 0..5u64 {
        let mut tasks = Vec::new();
        {
            let store = Arc::clone(&store);
            let batch: Vec<Episode> = (500..800).map(|i| episode(i, "filler")).collect();
            tasks.push(tokio::spawn(async move {
                store.store_episodes(&batch).await.unwrap();
            }));
        }
        for i in 0..16u64 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                // In order on one task, queued beside the other tasks' writes.
                store.store_episode(&episode(i, "first")).await.unwrap();
                store
                    .store_episode(&episode(i, &format!("second{round}")))
                    .await
                    .unwrap();
                match i % 4 {
                    0 => store.delete_episode(samples::episode(i).id).await.unwrap(),
                    1 => {
                        store.delete_episode(samples::episode(i).id).await.unwrap();
                        store.store_episode(&episode(i, "third")).await.unwrap();
                    }
                    _ => {}
                }
                // Fails (no such episode) between the others' writes.
                assert!(
                    store
                        .delete_episode(samples::episode(10_000 + i).id)
                        .await
                        .is_err()
                );
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let expect = |pick: &dyn Fn(u64) -> bool| -> Vec<EpisodeId> {
            let mut ids: Vec<EpisodeId> = (0..16u64)
                .filter(|i| pick(*i))
                .map(|i| samples::episode(i).id)
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(
            ids_for(&store, "first").await,
            expect(&|_| false),
            "round {round}"
        );
        assert_eq!(
            ids_for(&store, &format!("second{round}")).await,
            expect(&|i| i % 4 >= 2),
            "round {round}"
        );
        assert_eq!(
            ids_for(&store, "third").await,
            expect(&|i| i % 4 == 1),
            "round {round}"
        );
    }
    // No index row outlives its item, and every item has one.
    let conn = raw(&path).await;
    let keys = integer(&conn, "SELECT COUNT(*) FROM episode_text_keys").await;
    let episodes = integer(&conn, "SELECT COUNT(*) FROM episodes").await;
    let dangling = integer(
        &conn,
        "SELECT COUNT(*) FROM episode_text_keys k \
         WHERE NOT EXISTS (SELECT 1 FROM episodes e WHERE e.id = k.item_id)",
    )
    .await;
    assert_eq!((keys, dangling), (episodes, 0));
}

/// Callers that stop waiting at any point: a write still runs to its end or not at all, and
/// its words are indexed exactly when its episode is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_stops_waiting_is_indexed_exactly_when_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let store = Arc::new(TursoStorage::open(TursoConfig::local(&path)).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            // Cut off after 0 to 3.1 ms: before the queue, in it, or while committing.
            let wait = std::time::Duration::from_micros((i % 32) * 100);
            let cut = episode(i, &format!("cut{i}"));
            let _ = tokio::time::timeout(wait, store.store_episode(&cut)).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A write cut off runs on to its end: wait for the writer to be idle.
    store.store_episode(&episode(1_000, "last")).await.unwrap();
    let mut stored = 0;
    for i in 0..64u64 {
        let id = samples::episode(i).id;
        let kept = store.get_episode(id).await.unwrap().is_some();
        stored += usize::from(kept);
        let found = ids_for(&store, &format!("cut{i}")).await;
        let expected = if kept { vec![id] } else { Vec::new() };
        assert_eq!(found, expected, "episode {i}: stored {kept}");
    }
    assert!(stored > 0, "no write got through");
}
