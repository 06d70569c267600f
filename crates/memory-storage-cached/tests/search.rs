//! Searches through the query-result cache: served again while nothing that could change
//! them was written, and never after a write that could (a nearer item in the filter's
//! reach, a change or a delete of an item in the answer, for text any write of the kind).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use memory_core::search::{EpisodeSearch, PatternSearch, Scored};
use memory_core::testing::samples;
use memory_core::{
    Embedding, Episode, EpisodeId, EpisodeQuery, InMemoryStorage, PatternQuery, StorageBackend,
    TaskContext, TaskType,
};
use memory_storage_cached::{CacheSettings, CachedStorage};

fn episode(domain: &str, text: &str, vector: [f32; 2]) -> Episode {
    let mut e = Episode::new(TaskType::Testing, text, TaskContext::new(domain));
    e.embedding = Some(Embedding::new(vector.to_vec()).unwrap());
    e
}

/// `e` with a fixed id. Answers and writes meet in hashed generation stripes, and two that
/// share one cost a spurious miss (never a stale hit): with random ids a test that counts
/// hits after a write elsewhere would fail in about 1 run in 800; fixed ids make the
/// stripes the same in every run.
fn with_id(mut e: Episode, n: u64) -> Episode {
    e.id = EpisodeId::from_uuid(samples::sample_uuid(0xE0, n));
    e
}

fn ids<T: memory_core::Entity>(found: &[Scored<T>]) -> Vec<T::Id> {
    found.iter().map(|s| s.item.id()).collect()
}

fn store() -> CachedStorage<InMemoryStorage> {
    CachedStorage::new(InMemoryStorage::new(), &CacheSettings::default()).unwrap()
}

#[tokio::test]
async fn a_search_by_vector_is_cached_until_a_write_could_enter_or_change_it() {
    let cached = store();
    let near = with_id(episode("web", "near", [1.0, 0.1]), 1);
    let far = with_id(episode("web", "far", [0.1, 1.0]), 2);
    cached
        .store_episodes(&[near.clone(), far.clone()])
        .await
        .unwrap();
    let query = Embedding::new(vec![1.0, 0.0]).unwrap();
    let web = EpisodeSearch::new(query.clone(), 1).filter(EpisodeQuery::new().domain("web"));
    let hits = || cached.stats().episode_queries.hits;

    assert_eq!(ids(&cached.search_episodes(&web).await.unwrap()), [near.id]);
    let before = hits();
    assert_eq!(ids(&cached.search_episodes(&web).await.unwrap()), [near.id]);
    assert_eq!(hits(), before + 1, "the same search again is a hit");

    // Nearer, but in another domain: the answer cannot change, and stays cached.
    let elsewhere = with_id(episode("cli", "elsewhere", [1.0, 0.0]), 3);
    cached.store_episode(&elsewhere).await.unwrap();
    assert_eq!(ids(&cached.search_episodes(&web).await.unwrap()), [near.id]);
    assert_eq!(
        hits(),
        before + 2,
        "a write outside the filter's domain keeps it"
    );

    // Moved into the domain: it enters the answer.
    let mut moved = elsewhere.clone();
    moved.context.domain = "web".into();
    cached.store_episode(&moved).await.unwrap();
    assert_eq!(
        ids(&cached.search_episodes(&web).await.unwrap()),
        [moved.id]
    );

    // The item in the answer moves away: the next one takes its place.
    let mut away = moved.clone();
    away.embedding = Some(Embedding::new(vec![0.0, 1.0]).unwrap());
    cached.store_episode(&away).await.unwrap();
    assert_eq!(ids(&cached.search_episodes(&web).await.unwrap()), [near.id]);

    // Deleted: gone; the unfiltered search sees the rest.
    cached.delete_episode(near.id).await.unwrap();
    let got = cached.search_episodes(&web).await.unwrap();
    assert_eq!(ids(&got), [far.id]);
    let all = cached
        .search_episodes(&EpisodeSearch::new(query, 10))
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        all,
        cached
            .inner()
            .search_episodes(&EpisodeSearch::new(
                Embedding::new(vec![1.0, 0.0]).unwrap(),
                10
            ))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_text_search_follows_every_write_of_its_kind() {
    let cached = store();
    let items = [
        episode("web", "timeout in the fetch", [1.0, 0.0]),
        episode("web", "retry the fetch later", [0.0, 1.0]),
    ];
    cached.store_episodes(&items).await.unwrap();
    let web = EpisodeSearch::text("fetch", 10).filter(EpisodeQuery::new().domain("web"));
    let first = cached.search_episodes(&web).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(cached.search_episodes(&web).await.unwrap(), first, "a hit");

    // A write in another domain changes how rare the word is, so every score.
    cached
        .store_episode(&episode("cli", "fetch fetch fetch", [1.0, 1.0]))
        .await
        .unwrap();
    let after = cached.search_episodes(&web).await.unwrap();
    assert_eq!(after, cached.inner().search_episodes(&web).await.unwrap());
    assert_ne!(
        after.iter().map(|s| s.score).collect::<Vec<_>>(),
        first.iter().map(|s| s.score).collect::<Vec<_>>(),
        "the scores moved"
    );

    // Hybrid too (it holds text scores).
    let hybrid = EpisodeSearch::hybrid(Embedding::new(vec![1.0, 0.0]).unwrap(), "fetch", 10);
    let fused = cached.search_episodes(&hybrid).await.unwrap();
    cached.delete_episode(items[0].id).await.unwrap();
    let fused_after = cached.search_episodes(&hybrid).await.unwrap();
    assert_ne!(fused, fused_after);
    assert_eq!(
        fused_after,
        cached.inner().search_episodes(&hybrid).await.unwrap()
    );
}

#[tokio::test]
async fn a_pattern_search_follows_writes() {
    let cached = store();
    let mut near = samples::pattern(1);
    near.embedding = Some(Embedding::new(vec![1.0, 0.1]).unwrap());
    let mut far = samples::pattern(2);
    far.embedding = Some(Embedding::new(vec![0.1, 1.0]).unwrap());
    cached
        .store_patterns(&[near.clone(), far.clone()])
        .await
        .unwrap();
    let search = PatternSearch::new(Embedding::new(vec![1.0, 0.0]).unwrap(), 1)
        .filter(PatternQuery::new().domain(near.domain.clone()));
    assert_eq!(
        ids(&cached.search_patterns(&search).await.unwrap()),
        [near.id]
    );
    let hits = cached.stats().pattern_queries.hits;
    assert_eq!(
        ids(&cached.search_patterns(&search).await.unwrap()),
        [near.id]
    );
    assert_eq!(cached.stats().pattern_queries.hits, hits + 1);

    let mut nearer = samples::pattern(3);
    nearer.domain = near.domain.clone();
    nearer.embedding = Some(Embedding::new(vec![1.0, 0.0]).unwrap());
    cached.store_pattern(&nearer).await.unwrap();
    assert_eq!(
        ids(&cached.search_patterns(&search).await.unwrap()),
        [nearer.id]
    );
    cached.delete_pattern(nearer.id).await.unwrap();
    assert_eq!(
        ids(&cached.search_patterns(&search).await.unwrap()),
        [near.id]
    );
}
