//! Network round trips against a real sqld, counted by the server itself (its
//! `libsql_server_user_http_response` counter: one per HTTP request).

mod support;

use memory_core::StorageBackend;
use memory_core::testing::typical::typical_episode;
use memory_storage_turso::{TursoConfig, TursoStorage};

/// Requests the server saw while `op` ran.
async fn round_trips<T>(
    server: &support::Sqld,
    op: impl AsyncFnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<u64> {
    let before = server.requests().await?;
    op().await?;
    Ok(server.requests().await? - before)
}

/// `ceil`-like count of the statements `chunks(total, max)` makes: full chunks, then one
/// per set bit of the remainder.
fn statements(total: usize, max: usize) -> u64 {
    (total / max + (total % max).count_ones() as usize) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_1000_episodes_is_a_few_dozen_round_trips_not_thousands() -> anyhow::Result<()> {
    let server = support::Sqld::start().await?;
    let store = TursoStorage::open(TursoConfig::remote(server.url(), None)).await?;
    let first: Vec<_> = (0..1_000).map(typical_episode).collect();
    let second: Vec<_> = (1_000..2_000).map(typical_episode).collect();
    // The first batch also prepares each statement shape (one `describe` each).
    let cold = round_trips(&server, async || Ok(store.store_episodes(&first).await?)).await?;
    let warm = round_trips(&server, async || Ok(store.store_episodes(&second).await?)).await?;

    // Every typical episode has two tags and two metadata pairs.
    let expected = 1 // BEGIN IMMEDIATE
        + statements(1_000, 64) // multi-row upserts
        + 2 * statements(1_000, 256) // side rows cleared, tags and metadata
        + statements(2_000, 128) // tag rows
        + statements(2_000, 128) // metadata rows
        + 1 // generation bump
        + 1; // COMMIT
    println!("1,000 episodes: {cold} round trips cold, {warm} warm (expected {expected})");
    assert_eq!(warm, expected);
    assert!(cold > warm && cold <= warm + 25, "cold {cold}");
    // One statement per row, as a plain loop would do, would be 5,002.
    assert!(warm < 100);
    assert_eq!(store.count_episodes().await?, 2_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statement_cache_saves_the_describe_round_trip() -> anyhow::Result<()> {
    let server = support::Sqld::start().await?;
    let cached = TursoStorage::open(TursoConfig::remote(server.url(), None)).await?;
    let uncached =
        TursoStorage::open(TursoConfig::remote(server.url(), None).statement_cache_capacity(0))
            .await?;
    let episodes: Vec<_> = (0..3).map(typical_episode).collect();
    cached.store_episodes(&episodes).await?;

    let first = round_trips(&server, async || {
        Ok(cached.get_episode(episodes[0].id).await?)
    })
    .await?;
    let again = round_trips(&server, async || {
        Ok(cached.get_episode(episodes[1].id).await?)
    })
    .await?;
    let without = round_trips(&server, async || {
        Ok(uncached.get_episode(episodes[2].id).await?)
    })
    .await?;
    println!("get: {first} round trips preparing, {again} reusing, {without} without a cache");
    assert_eq!(first, 2, "describe + execute");
    assert_eq!(again, 1, "execute only");
    assert_eq!(without, 2, "describe + execute, every time");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_write_is_one_transaction_of_a_handful_of_round_trips() -> anyhow::Result<()> {
    let server = support::Sqld::start().await?;
    let store = TursoStorage::open(TursoConfig::remote(server.url(), None)).await?;
    store.store_episode(&typical_episode(0)).await?;
    let trips = round_trips(&server, async || {
        Ok(store.store_episode(&typical_episode(1)).await?)
    })
    .await?;
    println!("one episode: {trips} round trips");
    // BEGIN, upsert, clear tags, clear metadata, tags, metadata, generation, COMMIT.
    assert_eq!(trips, 8);
    Ok(())
}

/// A change check is one statement: the generation and the feed's entries since the last
/// position come back together, whether anything changed or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_check_is_one_round_trip_changed_or_not() -> anyhow::Result<()> {
    use memory_core::ChangeSignal;
    use memory_core::feed::ChangesSince;
    let server = support::Sqld::start().await?;
    let store = TursoStorage::open(TursoConfig::remote(server.url(), None)).await?;
    let reader = TursoStorage::open(TursoConfig::remote(server.url(), None)).await?;
    store.store_episode(&typical_episode(0)).await?;
    let at = reader.change_position().await?;
    reader.changes_since(at).await?; // a connection open and its statement prepared
    let trips = round_trips(&server, async || Ok(reader.changes_since(at).await?)).await?;
    assert_eq!(trips, 1, "nothing changed");
    store
        .store_episodes(&(1..4).map(typical_episode).collect::<Vec<_>>())
        .await?;
    store.store_episode(&typical_episode(5)).await?;
    let mut answer = None;
    let trips = round_trips(&server, async || {
        answer = Some(reader.changes_since(at).await?);
        Ok(())
    })
    .await?;
    assert_eq!(trips, 1, "two writes to catch up on");
    match answer {
        Some(ChangesSince::Complete { writes, .. }) => {
            let items: Vec<usize> = writes.iter().map(|w| w.changes.len()).collect();
            assert_eq!(items, vec![3, 1]);
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

/// A warm search is one statement whatever it asks: by vector, by text, or both (a hybrid
/// search asks for its two lists together), filtered or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_of_any_kind_is_one_round_trip() -> anyhow::Result<()> {
    use memory_core::EpisodeQuery;
    use memory_core::search::EpisodeSearch;
    use memory_core::testing::vectors::Structured;
    let server = support::Sqld::start().await?;
    let store = TursoStorage::open(TursoConfig::remote(server.url(), None)).await?;
    let mut vectors = Structured::new(7, 16, 4);
    let episodes: Vec<_> = (0..60)
        .map(|n| {
            let mut e = typical_episode(n);
            e.embedding = Some(vectors.next());
            e
        })
        .collect();
    store.store_episodes(&episodes).await?;
    let words = memory_core::text::words(&episodes[3].description);
    let text = words[..2].join(" ");
    let domain = EpisodeQuery::new().domain(episodes[3].context.domain.clone());
    let searches = [
        EpisodeSearch::new(vectors.next(), 5),
        EpisodeSearch::text(&text, 5),
        EpisodeSearch::hybrid(vectors.next(), &text, 5),
        EpisodeSearch::hybrid(vectors.next(), &text, 5).filter(domain),
    ];
    for search in &searches {
        let first = store.search_episodes(search).await?; // its statement prepared
        assert!(!first.is_empty(), "{search:?} found nothing");
        let trips = round_trips(&server, async || Ok(store.search_episodes(search).await?)).await?;
        assert_eq!(trips, 1, "{:?}", search.by);
    }
    Ok(())
}
