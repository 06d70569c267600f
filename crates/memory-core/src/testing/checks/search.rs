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
            let query = vectors.next();
            let s = EpisodeSearch::new(query.clone(), 10).filter(filter.clone());
            let got = b.search_episodes(&s).await.context("search_episodes")?;
            let expected = search::exact_episodes(shared.iter().cloned(), &s);
            ensure!(
                got.len() == expected.len(),
                "{what}: {} results, {} expected",
                got.len(),
                expected.len()
            );
            for g in &got {
                let reference = g.item.embedding.as_ref().map(|e| e.cosine(&query));
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
    let all = episodes(20, 31);
    b.store_episodes(&all).await?;
    follows_writes_among(b, all, EpisodeQuery::new(), 100).await
}

/// As [`follows_writes`] among 1,500 episodes (1,200 with embeddings), unfiltered, then
/// among 4,000 more within one domain (a third of them, still more than the 1,000 that
/// stores score exactly before they ask an index or graph): searches that ask one see the
/// writes before them too.
pub async fn follows_writes_past_the_exact_bound(b: &dyn StorageBackend) -> anyhow::Result<()> {
    for (set, seed, count) in [(1u64, 31u64, 1_500u64), (2, 33, 4_000)] {
        let mut rng = Seeded::seed_from_u64(seed);
        let all: Vec<Episode> = (set * 10_000..set * 10_000 + count)
            .map(|i| {
                let mut e = samples::episode(i);
                e.embedding = (i % 5 != 4).then(|| vector(&mut rng));
                e
            })
            .collect();
        for chunk in all.chunks(500) {
            b.store_episodes(chunk).await?;
        }
        let filter = match set {
            1 => EpisodeQuery::new(),
            _ => EpisodeQuery::new().domain(all[0].context.domain.clone()),
        };
        follows_writes_among(b, all, filter, set * 10_000 - 10).await?;
    }
    Ok(())
}

/// With `all` stored, a search for the first one's vector (among those `filter` lets
/// through) follows a new, a changed, a deleted and a bare episode; the new ones are
/// `samples::episode(extra)` and `(extra + 1)`.
async fn follows_writes_among(
    b: &dyn StorageBackend,
    mut all: Vec<Episode>,
    filter: EpisodeQuery,
    extra: u64,
) -> anyhow::Result<()> {
    let target = all[0]
        .embedding
        .clone()
        .context("episode 0 has an embedding")?;
    let s = EpisodeSearch::new(target.clone(), 3).filter(filter.clone());
    let first = b.search_episodes(&s).await?;
    ensure!(
        first.first().map(|r| r.item.id) == Some(all[0].id),
        "the item itself is its own nearest"
    );
    // A new episode with the same vector ties it; a changed one moves away; a deleted one
    // is gone.
    let mut twin = samples::episode(extra);
    twin.context.domain = all[0].context.domain.clone();
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
    let stored = b.get_episode(nearest).await?.context("stored")?;
    let mut bare = Episode::clone(&stored);
    bare.embedding = None;
    b.store_episode(&bare).await?;
    let second = got.get(1).map(|r| r.item.id).context("a second result")?;
    let stored = b.get_episode(second).await?.context("stored")?;
    let mut bare_too = Episode::clone(&stored);
    bare_too.embedding = None;
    b.store_episodes(&[bare_too, samples::episode(extra + 1)])
        .await?;
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
    bad_vector.by = search::SearchBy::Vector(serde_json::from_str("[0.0, 0.0]")?);
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

/// The checks' vocabulary for text: a few words, so that queries match several items.
const WORDS: [&str; 10] = [
    "timeout",
    "linker",
    "cargo",
    "http",
    "retry",
    "parser",
    "cache",
    "deadlock",
    "Überlauf",
    "naïve",
];

/// Text a user could write, operators and quotes included: stored and searched as words.
pub const HOSTILE: [&str; 16] = [
    "\"",
    "'",
    "AND",
    "timeout OR linker",
    "NOT cargo",
    "NEAR(http retry)",
    "pars*",
    "body:cache",
    "-deadlock",
    "^http",
    "'); DROP TABLE episodes; --",
    "\" OR 1=1 --",
    "timeout\u{0}linker",
    "(((",
    "ÜBERLAUF",
    "{cache} [retry]",
];

/// Episodes whose descriptions are seeded words and hostile fragments.
fn texts(n: u64, seed: u64) -> Vec<Episode> {
    let mut rng = Seeded::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let mut e = samples::episode(i);
            let count = 1 + ((rng.unit() + 1.0) * 3.0) as usize;
            let words: Vec<&str> = (0..count)
                .map(|_| WORDS[((rng.unit() + 1.0) * 5.0) as usize % WORDS.len()])
                .collect();
            e.description = format!(
                "{} {}",
                words.join(" "),
                HOSTILE[i as usize % HOSTILE.len()]
            );
            e
        })
        .collect()
}

fn id_set<T: Entity>(s: &[Scored<T>]) -> std::collections::BTreeSet<T::Id>
where
    T::Id: Ord,
{
    s.iter().map(|s| s.item.id()).collect()
}

/// Text searches (words, filters, every hostile string) find exactly the items the
/// reference finds; a query without words is `InvalidInput`.
pub async fn text_matches_the_reference(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let all = texts(80, 61);
    b.store_episodes(&all).await?;
    let shared: Vec<Arc<Episode>> = all.iter().cloned().map(Arc::new).collect();
    let mut queries: Vec<String> = WORDS.iter().map(|w| w.to_string()).collect();
    queries.extend(["timeout cargo", "CACHE retry", "sample episode 7", "naive"].map(String::from));
    queries.extend(HOSTILE.iter().map(|h| h.to_string()));
    let mut matched_some = 0;
    for (round, query) in queries.iter().enumerate() {
        let mut s = EpisodeSearch::text(query.clone(), search::MAX_SEARCH_K);
        if round % 3 == 1 {
            s = s.filter(EpisodeQuery::new().domain(samples::DOMAINS[round % 3]));
        }
        if crate::text::query_words(query).is_err() {
            expect_kind(
                b.search_episodes(&s).await,
                ErrorKind::InvalidInput,
                &format!("the query {query:?} holds no words"),
            )?;
            continue;
        }
        let got = b
            .search_episodes(&s)
            .await
            .with_context(|| format!("text search {query:?}"))?;
        let expected = search::exact_episodes(shared.iter().cloned(), &s);
        ensure!(
            id_set(&got) == id_set(&expected),
            "{query:?}: found {} items, the reference {}",
            got.len(),
            expected.len()
        );
        for pair in got.windows(2) {
            ensure!(pair[0].score >= pair[1].score, "{query:?}: not best first");
        }
        matched_some += usize::from(!got.is_empty());
        let first = EpisodeSearch::text(query.clone(), 3).filter(s.filter.clone());
        ensure!(
            b.search_episodes(&first).await?.len() == expected.len().min(3),
            "{query:?}: k bounds the answer"
        );
    }
    ensure!(
        matched_some >= 10,
        "only {matched_some} queries matched anything"
    );
    Ok(())
}

/// Text searches see the writes before them, and patterns are searched by their text.
pub async fn text_follows_writes(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut all = texts(10, 71);
    all[0].description = "unmistakable zebra".into();
    b.store_episodes(&all).await?;
    let zebra = EpisodeSearch::text("zebra", 10);
    let ids = |r: Vec<Scored<Episode>>| r.iter().map(|s| s.item.id).collect::<Vec<_>>();
    ensure!(
        ids(b.search_episodes(&zebra).await?) == vec![all[0].id],
        "stored"
    );
    all[0].description = "unmistakable okapi".into();
    all[1].description = "a zebra now".into();
    b.store_episodes(&all[..2]).await?;
    ensure!(
        ids(b.search_episodes(&zebra).await?) == vec![all[1].id],
        "changed"
    );
    b.delete_episode(all[1].id).await?;
    ensure!(b.search_episodes(&zebra).await?.is_empty(), "deleted");
    let mut pattern = samples::pattern(2);
    pattern.data = crate::PatternData::ErrorRecovery {
        error_type: "E0502 borrow conflict".into(),
        recovery_steps: vec!["clone the zebra".into()],
    };
    b.store_patterns(&[pattern.clone(), samples::pattern(3)])
        .await?;
    let found = b
        .search_patterns(&PatternSearch::text("Borrow zebra", 5))
        .await?;
    ensure!(
        found.iter().map(|s| s.item.id).collect::<Vec<_>>() == vec![pattern.id],
        "a pattern's text: {found:?}"
    );
    Ok(())
}

/// A hybrid search puts first the item both lists rank high, holds only items of either
/// list, and refuses a minimum score without a vector.
pub async fn hybrid_fuses_both(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut all = episodes(30, 81);
    for (i, e) in all.iter_mut().enumerate() {
        e.description = if i % 3 == 0 {
            "deadlock in the scheduler"
        } else {
            "fine"
        }
        .into();
    }
    b.store_episodes(&all).await?;
    let target = all[3]
        .embedding
        .clone()
        .context("episode 3 has an embedding")?;
    let s = EpisodeSearch::hybrid(target.clone(), "deadlock", 5);
    let got = b.search_episodes(&s).await?;
    ensure!(
        got.first().map(|r| r.item.id) == Some(all[3].id),
        "nearest and a text match: first ({got:?})"
    );
    ensure!(got.len() == 5, "k results: {}", got.len());
    let shared: Vec<Arc<Episode>> = all.iter().cloned().map(Arc::new).collect();
    let by_vector = search::exact_episodes(
        shared.iter().cloned(),
        &EpisodeSearch::new(target, search::hybrid_depth(5)),
    );
    for r in &got {
        let in_text = r.item.description.contains("deadlock");
        let in_vector = by_vector.iter().any(|v| v.item.id == r.item.id);
        ensure!(in_text || in_vector, "{} is in neither list", r.item.id);
    }
    expect_kind(
        b.search_episodes(&EpisodeSearch::text("deadlock", 5).min_score(0.5))
            .await,
        ErrorKind::InvalidInput,
        "a minimum score without a vector",
    )?;
    Ok(())
}
