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
    count(path, "SELECT COUNT(*) FROM episode_vectors").await
}

async fn count(path: &std::path::Path, sql: &str) -> i64 {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut rows = conn.query(sql, ()).await.unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
}

/// Statements removing what schema 9 added (the domain buckets).
fn drop_buckets() -> String {
    let mut sql = String::new();
    for table in ["episode_vectors", "pattern_vectors"] {
        sql += &format!("DROP TRIGGER {table}_bucket_move; DROP TABLE {table}_domains;");
        for b in 0..8 {
            sql += &format!("DROP TABLE {table}_b{b};");
        }
    }
    sql
}

/// The rows of each domain's bucket: `(domain, bucket, vectors in it)`, by domain.
async fn buckets(path: &std::path::Path) -> Vec<(String, i64, i64)> {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut rows = conn
        .query(
            "SELECT domain, bucket FROM episode_vectors_domains ORDER BY domain",
            (),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        let (domain, bucket): (String, i64) = (row.get(0).unwrap(), row.get(1).unwrap());
        out.push((domain, bucket, 0));
    }
    for entry in &mut out {
        entry.2 = count(
            path,
            &format!("SELECT COUNT(*) FROM episode_vectors_b{}", entry.1),
        )
        .await;
    }
    out
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
        let conn = db.connect().unwrap();
        conn.execute_batch(&drop_buckets()).await.unwrap();
        conn.execute_batch(
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

/// Each domain's vectors are copied into a bucket of their own (schema 9), kept in step
/// with writes, domain changes, removed embeddings and deletes, and a search filtered to a
/// domain finds the items the bucket's index holds.
#[tokio::test]
async fn each_domain_s_vectors_follow_it_into_its_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let store = index_only(&path).await;
    let mut all = episodes(30); // domains in turn: web, cli, data
    store.store_episodes(&all).await.unwrap();
    let got = buckets(&path).await;
    let mut numbers: Vec<i64> = got.iter().map(|b| b.1).collect();
    numbers.sort();
    assert_eq!(numbers, [0, 1, 2], "{got:?}: a bucket each");
    assert!(got.iter().all(|b| b.2 == 10), "{got:?}");

    // Moved: episode 0 from web to cli, its vector with it (and found there).
    all[0].context.domain = "cli".into();
    store.store_episode(&all[0]).await.unwrap();
    let sizes = |b: &[(String, i64, i64)]| b.iter().map(|b| (b.0.clone(), b.2)).collect::<Vec<_>>();
    let expect = |c, d, w| {
        vec![
            ("cli".to_string(), c),
            ("data".into(), d),
            ("web".into(), w),
        ]
    };
    assert_eq!(sizes(&buckets(&path).await), expect(11, 10, 9));
    let by_domain = |domain: &str, i| {
        EpisodeSearch::new(vector(i), 3).filter(memory_core::EpisodeQuery::new().domain(domain))
    };
    let found = store.search_episodes(&by_domain("cli", 0)).await.unwrap();
    assert_eq!(found.first().map(|r| r.item.id), Some(all[0].id));
    assert!(found.iter().all(|r| r.item.context.domain == "cli"));
    let found = store.search_episodes(&by_domain("web", 0)).await.unwrap();
    assert!(
        found
            .iter()
            .all(|r| r.item.id != all[0].id && r.item.context.domain == "web")
    );

    // Its embedding removed, a deleted item, an item moved with a new vector in one write.
    let mut bare = all[1].clone();
    bare.embedding = None;
    store.store_episode(&bare).await.unwrap();
    store.delete_episode(all[2].id).await.unwrap();
    all[4].context.domain = "web".into();
    all[4].embedding = Some(vector(1_000));
    store.store_episode(&all[4]).await.unwrap();
    assert_eq!(sizes(&buckets(&path).await), expect(9, 9, 10));
    let found = store
        .search_episodes(&by_domain("web", 1_000))
        .await
        .unwrap();
    assert_eq!(found.first().map(|r| r.item.id), Some(all[4].id));

    // A fourth domain gets the fourth bucket.
    let mut new = samples::episode(100);
    new.context.domain = "ops".into();
    new.embedding = Some(vector(100));
    store.store_episode(&new).await.unwrap();
    let ops = buckets(&path).await.into_iter().find(|b| b.0 == "ops");
    assert_eq!(ops, Some(("ops".to_string(), 3, 1)));
    let found = store.search_episodes(&by_domain("ops", 5)).await.unwrap();
    assert_eq!(
        found.iter().map(|r| r.item.id).collect::<Vec<_>>(),
        [new.id]
    );

    // Domain searches ask their bucket's index alone: they still answer without the kind's.
    let db = libsql::Builder::new_local(&path).build().await.unwrap();
    let conn = db.connect().unwrap();
    // The open store's writer may hold the write lock for a checkpoint: wait for it.
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn.execute("DROP INDEX episode_vectors_ann", ())
        .await
        .unwrap();
    let found = store.search_episodes(&by_domain("data", 5)).await.unwrap();
    assert_eq!(found.first().map(|r| r.item.id), Some(all[5].id));
    let unfiltered = EpisodeSearch::new(vector(5), 3);
    assert!(store.search_episodes(&unfiltered).await.is_err());
}

#[tokio::test]
async fn a_schema_8_database_gets_its_domain_buckets_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    {
        let store = TursoStorage::open(TursoConfig::local(&path)).await.unwrap();
        store.store_episodes(&episodes(45)).await.unwrap();
    }
    {
        let db = libsql::Builder::new_local(&path).build().await.unwrap();
        let conn = db.connect().unwrap();
        conn.execute_batch(&drop_buckets()).await.unwrap();
        conn.execute("DELETE FROM schema_version WHERE version >= 9", ())
            .await
            .unwrap();
    }
    let store = index_only(&path).await;
    assert_eq!(
        store.schema_version().await.unwrap(),
        memory_storage_turso::SCHEMA_VERSION
    );
    let got = buckets(&path).await;
    assert_eq!(
        got,
        [
            ("cli".to_string(), 0, 15),
            ("data".into(), 1, 15),
            ("web".into(), 2, 15)
        ]
    );
    let s = EpisodeSearch::new(vector(7), 1)
        .filter(memory_core::EpisodeQuery::new().domain(samples::DOMAINS[7 % 3]));
    let found = store.search_episodes(&s).await.unwrap();
    assert_eq!(
        found.first().map(|r| r.item.id),
        Some(samples::episode(7).id)
    );
}

/// Items at the same distance from the query rank by id, as the exact answer does, however
/// many of them there are: the statement keeps only `k` and a small margin of candidates,
/// so it must break ties as the re-rank does (by id), or it keeps an arbitrary few.
#[tokio::test]
async fn equal_distances_rank_by_id_as_the_exact_answer_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ties.db");
    let same = vector(3);
    // Stored out of id order, so that the order the rows are found in is not the ids'.
    let stored: Vec<Episode> = (0..40u64)
        .map(|i| (i * 17) % 40)
        .map(|i| {
            let mut e = samples::episode(i);
            e.embedding = Some(same.clone());
            e
        })
        .collect();
    for store in [
        index_only(&path).await,
        TursoStorage::open(TursoConfig::local(&path).exact_search_below(u32::MAX))
            .await
            .unwrap(),
    ] {
        store.store_episodes(&stored).await.unwrap();
        let all: Vec<Arc<Episode>> = stored.iter().cloned().map(Arc::new).collect();
        let expected: Vec<_> = search::exact(all, &same, 10, None, |_| true)
            .into_iter()
            .map(|s| s.item.id)
            .collect();
        let got: Vec<_> = store
            .search_episodes(&EpisodeSearch::new(same.clone(), 10))
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.item.id)
            .collect();
        assert_eq!(got, expected);
    }
}
