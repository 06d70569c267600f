//! Damaged rows in a real database file, written behind the store's back with raw libsql: a
//! truncated payload, garbage, invalid UTF-8 inside a stored string and an unknown encoding.
//! Each read of the damaged item is a typed `Corrupt` error naming the episode; everything
//! else stays readable; storing the item again repairs it. Never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use memory_core::testing::samples;
use memory_core::{Episode, EpisodeQuery, ErrorKind, StorageBackend};
use memory_storage_turso::{TursoConfig, TursoStorage};

/// A distinct domain per sample, so one row can be addressed by it.
fn sample(n: u64) -> Episode {
    let mut episode = samples::episode(n);
    episode.context.domain = format!("domain-{n}");
    episode
        .metadata
        .insert("marker".into(), "MARKERVALUE".into());
    episode
}

async fn raw_payload(conn: &libsql::Connection, domain: &str) -> Vec<u8> {
    let mut rows = conn
        .query("SELECT payload FROM episodes WHERE domain = ?1", [domain])
        .await
        .unwrap();
    let row = rows.next().await.unwrap().expect("the row");
    row.get::<Vec<u8>>(0).unwrap()
}

async fn set(conn: &libsql::Connection, domain: &str, column: &str, value: libsql::Value) {
    let sql = match column {
        "payload" => "UPDATE episodes SET payload = ?1 WHERE domain = ?2",
        "encoding" => "UPDATE episodes SET encoding = ?1 WHERE domain = ?2",
        other => panic!("no column {other} here"),
    };
    let changed = conn
        .execute(sql, libsql::params![value, domain.to_string()])
        .await
        .unwrap();
    assert_eq!(changed, 1);
}

#[tokio::test]
async fn damaged_rows_are_corrupt_errors_and_the_rest_stays_readable() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("m.db");
    let store = TursoStorage::open(TursoConfig::local(&path)).await?;
    let episodes: Vec<Episode> = (0..6).map(sample).collect();
    store.store_episodes(&episodes).await?;

    let raw_db = libsql::Builder::new_local(&path).build().await?;
    let conn = raw_db.connect()?;
    let original = raw_payload(&conn, "domain-0").await;

    // 0: truncated; 1: garbage; 2: invalid UTF-8 in a metadata value; 3: unknown encoding.
    set(
        &conn,
        "domain-0",
        "payload",
        original[..original.len() / 2].to_vec().into(),
    )
    .await;
    set(&conn, "domain-1", "payload", vec![0xA5; 300].into()).await;
    let mut bad_text = raw_payload(&conn, "domain-2").await;
    let at = bad_text
        .windows(11)
        .position(|w| w == b"MARKERVALUE")
        .expect("a small payload is stored plain");
    bad_text[at..at + 4].copy_from_slice(&[0xFF, 0xFE, 0xC0, 0x80]);
    set(&conn, "domain-2", "payload", bad_text.into()).await;
    set(&conn, "domain-3", "encoding", 99i64.into()).await;

    // A fresh store, so nothing is served from memory.
    let store = TursoStorage::open(TursoConfig::local(&path)).await?;
    for damaged in &episodes[..4] {
        let e = store.get_episode(damaged.id).await.expect_err("damaged");
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert!(
            e.to_string().contains(&damaged.id.to_string()),
            "names the episode: {e}"
        );
        let query = EpisodeQuery::new().domain(damaged.context.domain.as_str());
        let e = store.query_episodes(&query).await.expect_err("damaged");
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    }
    for intact in &episodes[4..] {
        assert_eq!(store.get_episode(intact.id).await?.as_deref(), Some(intact));
        let query = EpisodeQuery::new().domain(intact.context.domain.as_str());
        assert_eq!(store.query_episodes(&query).await?.items.len(), 1);
    }
    assert_eq!(store.count_episodes().await?, 6);

    // Storing a damaged item again repairs it.
    for damaged in &episodes[..4] {
        store.store_episode(damaged).await?;
        assert_eq!(
            store.get_episode(damaged.id).await?.as_deref(),
            Some(damaged)
        );
    }
    Ok(())
}
