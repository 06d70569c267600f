//! SQL injection: strings built to break out of a quoted literal, end a statement or match
//! everything go through every text filter and every stored text field, on a local file and
//! on a real sqld. Each must be stored and read back byte for byte, match only itself, and
//! leave every other row and table as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use memory_core::testing::samples;
use memory_core::{EpisodeQuery, PatternQuery, StorageBackend};
use memory_storage_turso::{TursoConfig, TursoStorage};

/// Strings that a store building SQL text from values would mis-handle.
const HOSTILE: [&str; 12] = [
    "' OR '1'='1",
    "'; DROP TABLE episodes; --",
    "\"; DELETE FROM patterns; --",
    "x' UNION SELECT id, payload FROM episodes --",
    "%",
    "_",
    "a%' OR domain LIKE '%",
    "\\'; --",
    "web') OR ('1'='1",
    "0x27 /* */ OR 1=1",
    "日本語' --",
    "line\nbreak'; --",
];

async fn hostile_strings_are_data(store: &TursoStorage) -> anyhow::Result<()> {
    // Innocent neighbours, to see that nothing else matches or disappears.
    let plain: Vec<_> = (0..8).map(samples::episode).collect();
    store.store_episodes(&plain).await?;
    let plain_patterns: Vec<_> = (0..4).map(samples::pattern).collect();
    store.store_patterns(&plain_patterns).await?;

    for (i, text) in HOSTILE.iter().enumerate() {
        let mut episode = samples::episode(100 + i as u64);
        episode.context.domain = (*text).to_string();
        episode.description = format!("{text} description");
        episode.tags = vec![(*text).to_string()];
        episode
            .metadata
            .insert((*text).to_string(), (*text).to_string());
        store.store_episode(&episode).await?;

        let read = store.get_episode(episode.id).await?.expect("stored");
        assert_eq!(*read, episode, "{text:?} must round-trip byte for byte");

        let by = |query: EpisodeQuery| async move {
            let page = store.query_episodes(&query.limit(100)).await.unwrap();
            page.items.iter().map(|e| e.id).collect::<Vec<_>>()
        };
        assert_eq!(
            by(EpisodeQuery::new().domain(*text)).await,
            vec![episode.id],
            "domain {text:?}"
        );
        assert_eq!(
            by(EpisodeQuery::new().tag(*text)).await,
            vec![episode.id],
            "tag {text:?}"
        );
        assert_eq!(
            by(EpisodeQuery::new().metadata(*text, *text)).await,
            vec![episode.id],
            "metadata {text:?}"
        );
        // The same text with one more character matches nothing: no pattern matching.
        let longer = format!("{text}x");
        assert!(
            by(EpisodeQuery::new().domain(longer.as_str()))
                .await
                .is_empty(),
            "{longer:?}"
        );
        assert!(
            by(EpisodeQuery::new().tag(longer.as_str()))
                .await
                .is_empty(),
            "{longer:?}"
        );

        let mut pattern = samples::pattern(100 + i as u64);
        pattern.domain = (*text).to_string();
        store.store_pattern(&pattern).await?;
        let found = store
            .query_patterns(&PatternQuery::new().domain(*text).limit(100))
            .await?;
        assert_eq!(
            found.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![pattern.id],
            "pattern domain {text:?}"
        );
    }

    // Every row is still there and nothing else appeared.
    for episode in &plain {
        assert_eq!(
            *store.get_episode(episode.id).await?.expect("kept"),
            *episode
        );
    }
    for pattern in &plain_patterns {
        assert_eq!(
            *store.get_pattern(pattern.id).await?.expect("kept"),
            *pattern
        );
    }
    let all = store
        .query_episodes(&EpisodeQuery::new().limit(1_000))
        .await?;
    assert_eq!(all.items.len(), plain.len() + HOSTILE.len());
    let patterns = store
        .query_patterns(&PatternQuery::new().limit(1_000))
        .await?;
    assert_eq!(patterns.len(), plain_patterns.len() + HOSTILE.len());
    Ok(())
}

#[tokio::test]
async fn hostile_strings_are_stored_and_matched_literally_in_a_local_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = TursoStorage::open(TursoConfig::local(dir.path().join("m.db"))).await?;
    hostile_strings_are_data(&store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_are_stored_and_matched_literally_on_sqld() -> anyhow::Result<()> {
    let server = support::Sqld::start().await?;
    let store = TursoStorage::open(TursoConfig::remote(server.url(), None)).await?;
    hostile_strings_are_data(&store).await
}
