//! Pattern query checks.

use anyhow::{Context, ensure};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use crate::error::ErrorKind;
use crate::limits::MAX_QUERY_LIMIT;
use crate::storage::StorageBackend;
use crate::testing::checks::expect_kind;
use crate::testing::{reference, samples, strategies};
use crate::{Pattern, PatternKind, PatternQuery};

async fn expect_query(
    b: &dyn StorageBackend,
    all: &[Pattern],
    query: &PatternQuery,
) -> anyhow::Result<()> {
    let expected = reference::pattern_ids(all, query);
    let got: Vec<_> = b
        .query_patterns(query)
        .await
        .context("query_patterns")?
        .iter()
        .map(|p| p.id)
        .collect();
    ensure!(
        got == expected,
        "query {query:?}\n  returned {got:?}\n  expected {expected:?}"
    );
    Ok(())
}

/// Kind, minimum success rate (inclusive) and domain filters, order and limit.
pub async fn query_filters_and_order(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut all: Vec<Pattern> = (0..40).map(samples::pattern).collect();
    // Ties in success rate are ordered by id.
    all[5].success_rate = 0.5;
    all[6].success_rate = 0.5;
    all[7].success_rate = 0.5;
    b.store_patterns(&all).await?;
    let mut queries = vec![
        PatternQuery::new(),
        PatternQuery::new().limit(3),
        PatternQuery::new().min_success_rate(0.5),
        PatternQuery::new().min_success_rate(1.0),
        PatternQuery::new().min_success_rate(0.0),
        PatternQuery::new().domain("cli").min_success_rate(0.3),
        PatternQuery::new().domain("nowhere"),
    ];
    for kind in PatternKind::ALL {
        queries.push(PatternQuery::new().kind(kind));
        queries.push(
            PatternQuery::new()
                .kind(kind)
                .min_success_rate(0.6)
                .limit(2),
        );
    }
    for q in &queries {
        expect_query(b, &all, q).await?;
    }
    let at_half = b
        .query_patterns(&PatternQuery::new().min_success_rate(0.5))
        .await?;
    ensure!(
        at_half.iter().any(|p| p.id == all[5].id),
        "min_success_rate is inclusive"
    );
    Ok(())
}

/// Replacing a pattern moves it between results; deleting removes it.
pub async fn query_follows_updates(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut all: Vec<Pattern> = (0..12).map(samples::pattern).collect();
    b.store_patterns(&all).await?;
    let mut changed = all[0].clone();
    changed.success_rate = 0.99;
    changed.domain = "moved".into();
    changed.data = samples::pattern(3).data;
    b.store_pattern(&changed).await?;
    all[0] = changed.clone();
    for q in [
        PatternQuery::new().min_success_rate(0.95),
        PatternQuery::new().domain("moved"),
        PatternQuery::new().kind(changed.kind()),
        PatternQuery::new().kind(samples::pattern(0).kind()),
    ] {
        expect_query(b, &all, &q).await?;
    }
    b.delete_pattern(changed.id).await?;
    all.remove(0);
    expect_query(b, &all, &PatternQuery::new()).await
}

/// Bad queries are `InvalidInput`.
pub async fn query_invalid(b: &dyn StorageBackend) -> anyhow::Result<()> {
    for (what, q) in [
        ("limit 0", PatternQuery::new().limit(0)),
        (
            "limit over the maximum",
            PatternQuery::new().limit(MAX_QUERY_LIMIT + 1),
        ),
        ("NaN rate", PatternQuery::new().min_success_rate(f64::NAN)),
        ("rate above 1", PatternQuery::new().min_success_rate(1.5)),
        ("negative rate", PatternQuery::new().min_success_rate(-0.1)),
        ("empty domain", PatternQuery::new().domain("")),
    ] {
        expect_kind(b.query_patterns(&q).await, ErrorKind::InvalidInput, what)?;
    }
    Ok(())
}

/// Random patterns and random queries match the reference filter.
pub async fn query_matches_reference(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut runner = TestRunner::deterministic();
    let all = proptest::collection::vec(strategies::pattern(), 40..60)
        .new_tree(&mut runner)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .current();
    b.store_patterns(&all).await?;
    for _ in 0..100 {
        let q = strategies::pattern_query()
            .new_tree(&mut runner)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .current();
        expect_query(b, &all, &q).await?;
    }
    Ok(())
}
