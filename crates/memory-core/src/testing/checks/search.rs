//! Similarity-search checks, against the exact brute-force reference
//! ([`crate::search::exact`]): every backend so far answers exactly, so the ranking must be
//! the reference's, scores within rounding.

use std::sync::Arc;

use anyhow::{Context, ensure};

use crate::error::ErrorKind;
use crate::search::{self, EpisodeSearch, PatternSearch, Scored};
use crate::storage::StorageBackend;
use crate::testing::checks::expect_kind;
use crate::testing::samples;
use crate::testing::vectors::{Seeded, Structured};
use crate::{Embedding, Entity, Episode, EpisodeQuery, OutcomeKind, Pattern, PatternQuery};

/// The dimension of the checks' vectors.
const DIMENSION: usize = 16;

fn vector(rng: &mut Seeded) -> Embedding {
    rng.uniform(DIMENSION)
}

/// Sample episodes, every fifth without an embedding.
fn episodes(n: u64, seed: u64) -> Vec<Episode> {
    let mut rng = Seeded::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let mut e = samples::episode(i);
            e.embedding = (i % 5 != 4).then(|| vector(&mut rng));
            e
        })
        .collect()
}

fn same_ranking<T: Entity>(
    what: &str,
    got: &[Scored<T>],
    expected: &[Scored<T>],
) -> anyhow::Result<()> {
    let ids = |s: &[Scored<T>]| s.iter().map(|s| s.item.id()).collect::<Vec<_>>();
    ensure!(
        ids(got) == ids(expected),
        "{what}: ranking\n  got      {:?}\n  expected {:?}",
        ids(got),
        ids(expected)
    );
    for (g, e) in got.iter().zip(expected) {
        ensure!(
            (g.score - e.score).abs() < 1e-5,
            "{what}: {} scored {} (reference {})",
            g.item.id(),
            g.score,
            e.score
        );
        ensure!(
            g.item == e.item,
            "{what}: {} came back changed",
            g.item.id()
        );
    }
    Ok(())
}

/// Searches with and without filters, `k` and `min_score`, match the reference.
pub async fn episodes_match_the_reference(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let all = episodes(120, 11);
    b.store_episodes(&all).await?;
    let shared: Vec<Arc<Episode>> = all.iter().cloned().map(Arc::new).collect();
    let mut rng = Seeded::seed_from_u64(12);
    for round in 0..12 {
        let query = vector(&mut rng);
        let mut s = EpisodeSearch::new(query, [1, 5, 10, 200][round % 4]);
        if round % 3 == 1 {
            s = s.filter(EpisodeQuery::new().domain(all[round].context.domain.clone()));
        }
        if round % 3 == 2 {
            s = s
                .filter(EpisodeQuery::new().outcome(OutcomeKind::Success))
                .min_score(0.1);
        }
        let got = b.search_episodes(&s).await.context("search_episodes")?;
        let expected = search::exact_episodes(shared.iter().cloned(), &s);
        same_ranking(&format!("round {round}: {s:?}"), &got, &expected)?;
    }
    Ok(())
}

/// Pattern searches match the reference too.
pub async fn patterns_match_the_reference(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut rng = Seeded::seed_from_u64(21);
    let all: Vec<Pattern> = (0..60)
        .map(|i| {
            let mut p = samples::pattern(i);
            p.embedding = (i % 4 != 3).then(|| vector(&mut rng));
            p
        })
        .collect();
    b.store_patterns(&all).await?;
    let shared: Vec<Arc<Pattern>> = all.iter().cloned().map(Arc::new).collect();
    for (round, pattern) in all.iter().enumerate().take(6) {
        let mut s = PatternSearch::new(vector(&mut rng), 7);
        if round % 2 == 1 {
            s = s.filter(PatternQuery::new().domain(pattern.domain.clone()));
        }
        let got = b.search_patterns(&s).await.context("search_patterns")?;
        let expected = search::exact_patterns(shared.iter().cloned(), &s);
        same_ranking(&format!("round {round}"), &got, &expected)?;
    }
    Ok(())
}

/// Items in the recall check's set.
pub const RECALL_ITEMS: u64 = 10_000;
/// The dimension of the recall check's vectors.
const RECALL_DIMENSION: usize = 32;
/// The recall@10 every backend reaches (exact ones reach 1).
pub const MIN_RECALL: f64 = 0.95;

/// recall@10 of 30 searches (unfiltered, by domain, by domain and outcome) on a seeded set
/// of [`RECALL_ITEMS`] episodes is at least [`MIN_RECALL`] for each kind of search: the
/// bar for backends that answer from an approximate index.
pub async fn recall_at_10(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut vectors = Structured::new(51, RECALL_DIMENSION, 12);
    let all: Vec<Episode> = (0..RECALL_ITEMS)
        .map(|i| {
            let mut e = samples::episode(i);
            e.embedding = Some(vectors.next());
            e
        })
        .collect();
    for chunk in all.chunks(500) {
        b.store_episodes(chunk).await?;
    }
    let shared: Vec<Arc<Episode>> = all.iter().cloned().map(Arc::new).collect();
    let filters = [
        ("unfiltered", EpisodeQuery::new()),
        (
            "one domain",
            EpisodeQuery::new().domain(samples::DOMAINS[1]),
        ),
        (
            "a domain and an outcome",
            EpisodeQuery::new()
                .domain(samples::DOMAINS[2])
                .outcome(OutcomeKind::Success),
        ),
    ];
    for (what, filter) in filters {
        let (mut found, mut wanted) = (0usize, 0usize);
        for _ in 0..10 {
            let s = EpisodeSearch::new(vectors.next(), 10).filter(filter.clone());
            let got = b.search_episodes(&s).await.context("search_episodes")?;
            let expected = search::exact_episodes(shared.iter().cloned(), &s);
            ensure!(
                got.len() == expected.len(),
                "{what}: {} results, {} expected",
                got.len(),
                expected.len()
            );
            for g in &got {
                let reference = g.item.embedding.as_ref().map(|e| e.cosine(&s.vector));
                ensure!(
                    reference.is_some_and(|r| (r - g.score).abs() < 1e-5),
                    "{what}: {} scored {} (its cosine is {reference:?})",
                    g.item.id,
                    g.score
                );
                ensure!(
                    s.filter.matches(&g.item),
                    "{what}: {} does not match",
                    g.item.id
                );
            }
            wanted += expected.len();
            found += got
                .iter()
                .filter(|g| expected.iter().any(|e| e.item.id == g.item.id))
                .count();
        }
        let recall = found as f64 / wanted.max(1) as f64;
        ensure!(
            recall >= MIN_RECALL,
            "{what}: recall@10 {recall:.3} (at least {MIN_RECALL} wanted)"
        );
    }
    Ok(())
}

/// A search sees the writes before it: a new, a changed and a deleted item.
pub async fn follows_writes(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut all = episodes(20, 31);
    b.store_episodes(&all).await?;
    let target = all[0]
        .embedding
        .clone()
        .context("episode 0 has an embedding")?;
    let s = EpisodeSearch::new(target.clone(), 3);
    let first = b.search_episodes(&s).await?;
    ensure!(
        first.first().map(|r| r.item.id) == Some(all[0].id),
        "the item itself is its own nearest"
    );
    // A new episode with the same vector ties it; a changed one moves away; a deleted one
    // is gone.
    let mut twin = samples::episode(100);
    twin.embedding = Some(target.clone());
    b.store_episode(&twin).await?;
    let got = b.search_episodes(&s).await?;
    ensure!(
        got.iter().take(2).any(|r| r.item.id == twin.id),
        "a new episode is found: {got:?}"
    );
    all[0].embedding = Some(Embedding::new(
        target.values().iter().map(|v| -v).collect(),
    )?);
    b.store_episode(&all[0]).await?;
    b.delete_episode(twin.id).await?;
    let got = b.search_episodes(&s).await?;
    ensure!(
        got.iter()
            .all(|r| r.item.id != twin.id && r.item.id != all[0].id),
        "a deleted and a changed episode are not found: {got:?}"
    );
    // Stored again without its embedding (alone and in a batch): no longer a candidate.
    let nearest = got.first().map(|r| r.item.id).context("a result")?;
    let mut bare = all
        .iter()
        .find(|e| e.id == nearest)
        .cloned()
        .context("stored")?;
    bare.embedding = None;
    b.store_episode(&bare).await?;
    let second = got.get(1).map(|r| r.item.id).context("a second result")?;
    let mut bare_too = all
        .iter()
        .find(|e| e.id == second)
        .cloned()
        .context("stored")?;
    bare_too.embedding = None;
    b.store_episodes(&[bare_too, samples::episode(101)]).await?;
    let got = b.search_episodes(&s).await?;
    ensure!(
        got.iter()
            .all(|r| r.item.id != nearest && r.item.id != second),
        "episodes stored without their embeddings are not found: {got:?}"
    );
    Ok(())
}

/// Bad searches are `InvalidInput`.
pub async fn invalid_searches(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let v = Embedding::new(vec![1.0; DIMENSION])?;
    for s in [
        EpisodeSearch::new(v.clone(), 0),
        EpisodeSearch::new(v.clone(), 1).min_score(2.0),
    ] {
        expect_kind(
            b.search_episodes(&s).await,
            ErrorKind::InvalidInput,
            "bad search",
        )?;
    }
    let mut bad_vector = EpisodeSearch::new(v.clone(), 1);
    bad_vector.vector = serde_json::from_str("[0.0, 0.0]")?;
    expect_kind(
        b.search_episodes(&bad_vector).await,
        ErrorKind::InvalidInput,
        "an all-zero vector",
    )?;
    expect_kind(
        b.search_patterns(&PatternSearch::new(v, 0)).await,
        ErrorKind::InvalidInput,
        "k = 0",
    )?;
    Ok(())
}

/// One dimension per store, fixed by the first embedding stored: another is `InvalidInput`
/// (for writes, batches, patterns and query vectors), and a refused batch stores nothing.
pub async fn one_dimension_per_store(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut rng = Seeded::seed_from_u64(41);
    let mut first = samples::episode(0);
    first.embedding = Some(vector(&mut rng));
    b.store_episode(&first).await?;
    let short = Embedding::new(vec![1.0; DIMENSION / 2])?;
    let mut other = samples::episode(1);
    other.embedding = Some(short.clone());
    let refused = b.store_episode(&other).await;
    match &refused {
        Err(e) if e.kind() == ErrorKind::InvalidInput => ensure!(
            e.to_string().contains(&format!("{}", DIMENSION / 2))
                && e.to_string().contains(&format!("{DIMENSION}")),
            "the error names both dimensions: {e}"
        ),
        other => anyhow::bail!("another dimension: expected InvalidInput, got {other:?}"),
    }
    let mut fits = samples::episode(2);
    fits.embedding = Some(vector(&mut rng));
    expect_kind(
        b.store_episodes(&[fits.clone(), other.clone()]).await,
        ErrorKind::InvalidInput,
        "a batch with another dimension",
    )?;
    ensure!(
        b.get_episode(fits.id).await?.is_none(),
        "nothing of a refused batch is stored"
    );
    let mut pattern = samples::pattern(0);
    pattern.embedding = Some(short.clone());
    expect_kind(
        b.store_pattern(&pattern).await,
        ErrorKind::InvalidInput,
        "a pattern of another dimension",
    )?;
    expect_kind(
        b.search_episodes(&EpisodeSearch::new(short, 3)).await,
        ErrorKind::InvalidInput,
        "a query vector of another dimension",
    )?;
    // Items without an embedding are always welcome.
    b.store_episode(&samples::episode(3)).await?;
    Ok(())
}
