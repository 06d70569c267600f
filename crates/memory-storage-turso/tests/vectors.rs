//! The vector index on libSQL: tables kept in step across handles, and databases that
//! recorded embeddings before the vector and text indexes existed (schema 5).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use memory_core::search::{self, EpisodeSearch};
use memory_core::testing::samples;
use memory_core::{Embedding, Episode, StorageBackend};
use memory_storage_turso::{TursoConfig, TursoStorage};

fn vector(i: u64) -> Embedding {
    let values = (0..8)
        .map(|j| ((i * 7 + j * 13) % 17) as f32 - 8.0 + 0.5)
        .collect();
    Embedding::new(values).unwrap()
}

fn episodes(n: u64) -> Vec<Episode> {
    (0..n)
        .map(|i| {
            let mut e = samples::episode(i);
            e.embedding = Some(vector(i));
            e
        })
        .collect()
}

async fn index_only(path: &std::path::Path) -> TursoStorage {
    TursoStorage::open(TursoConfig::local(path).exact_search_below(0))
        .await
        .unwrap()
}

async fn vector_rows(path: &std::path::Path) -> i64 {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut rows = conn
        .query("SELECT COUNT(*) FROM episode_vectors", ())
        .await
        .unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
}

#[tokio::test]
async fn a_schema_5_database_gets_its_vectors_and_text_indexed_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let all = episodes(40);
    {
        let store = TursoStorage::open(TursoConfig::local(&path)).await.unwrap();
        store.store_episodes(&all).await.unwrap();
    }
    // What schema 5 left: the dimension recorded, no vector tables.
    {
        let db = libsql::Builder::new_local(&path).build().await.unwrap();
        db.connect()
            .unwrap()
            .execute_batch(
                "DROP TRIGGER episode_vectors_follow; DROP TRIGGER pattern_vectors_follow;
                 DROP TABLE episode_vectors; DROP TABLE pattern_vectors;
                 DROP VIEW episodes_in; DROP VIEW patterns_in;
                 DROP TRIGGER episode_text_follow; DROP TRIGGER pattern_text_follow;
                 DROP TABLE episode_text; DROP TABLE episode_text_keys;
                 DROP TABLE pattern_text; DROP TABLE pattern_text_keys;
                 DELETE FROM schema_version WHERE version >= 6;",
            )
            .await
            .unwrap();
    }
    // Scored exactly from the vector table the upgrade filled (the index is approximate: its
    // search starts at a random node, so its ranking is not pinned here).
    let store = TursoStorage::open(TursoConfig::local(&path)).await.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        memory_storage_turso::SCHEMA_VERSION
    );
    let shared: Vec<Arc<Episode>> = all.iter().cloned().map(Arc::new).collect();
    for i in [0, 17, 39] {
        let s = EpisodeSearch::new(vector(i), 5);
        let got = store.search_episodes(&s).await.unwrap();
        let expected = search::exact_episodes(shared.iter().cloned(), &s);
        let ids = |r: &[search::Scored<Episode>]| r.iter().map(|s| s.item.id).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&expected), "search {i} after the upgrade");
    }
    assert_eq!(vector_rows(&path).await, 40);
    // Their text was indexed too.
    let s = EpisodeSearch::text("sample episode 17", 5);
    let got = store.search_episodes(&s).await.unwrap();
    assert_eq!(got.first().map(|r| r.item.id), Some(all[17].id));
}

#[tokio::test]
async fn a_handle_that_never_saw_the_dimension_still_removes_a_vector() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    // Opened before any embedding exists: it does not know the store has vectors.
    let unaware = TursoStorage::open(TursoConfig::local(&path)).await.unwrap();
    let other = index_only(&path).await;
    let all = episodes(10);
    other.store_episodes(&all).await.unwrap();
    let mut bare = all[3].clone();
    bare.embedding = None;
    unaware.store_episode(&bare).await.unwrap();
    assert_eq!(vector_rows(&path).await, 9);
    let got = other
        .search_episodes(&EpisodeSearch::new(vector(3), 10))
        .await
        .unwrap();
    assert!(got.iter().all(|r| r.item.id != bare.id), "{got:?}");
    // And through a handle that knows.
    let mut bare = all[5].clone();
    bare.embedding = None;
    other.store_episodes(&[bare, all[6].clone()]).await.unwrap();
    assert_eq!(vector_rows(&path).await, 8);
    // Deleting through either handle removes the vector with the item.
    unaware.delete_episode(all[4].id).await.unwrap();
    other.delete_episodes(&[all[6].id]).await.unwrap();
    assert_eq!(vector_rows(&path).await, 6);
}
