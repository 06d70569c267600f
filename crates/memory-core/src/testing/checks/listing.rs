//! Listing checks: `list_patterns`, `list_heuristics` and `check_items` page through every
//! stored item by ascending id, and refuse a limit out of range.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use anyhow::ensure;

use crate::error::{ErrorKind, Result};
use crate::limits::MAX_QUERY_LIMIT;
use crate::storage::StorageBackend;
use crate::testing::checks::expect_kind;
use crate::testing::samples;
use crate::{Entity, HeuristicId, PatternId};

/// Lists everything through `list` in pages of `limit`: each page at most `limit` long,
/// ids strictly ascending across pages.
async fn every_page<T, F, Fut>(list: F, limit: usize) -> anyhow::Result<(Vec<T::Id>, usize)>
where
    T: Entity,
    F: Fn(Option<T::Id>, usize) -> Fut,
    Fut: Future<Output = Result<Vec<Arc<T>>>>,
{
    let (mut ids, mut pages, mut after) = (Vec::new(), 0, None);
    loop {
        let page = list(after, limit).await?;
        ensure!(
            page.len() <= limit,
            "a page of {} for a limit of {limit}",
            page.len()
        );
        if page.is_empty() {
            return Ok((ids, pages));
        }
        pages += 1;
        for item in &page {
            ensure!(
                ids.last().is_none_or(|last| *last < item.id()),
                "ids out of order at {}",
                item.id()
            );
            ids.push(item.id());
        }
        after = ids.last().copied();
    }
}

/// 250 items stored, 10 deleted: pages of 100 hold the 240 others once each, in id order,
/// in 3 pages; after the last id nothing; limits 0 and above the query limit refused.
async fn pages_through_everything<T, F, Fut>(
    stored: Vec<T::Id>,
    deleted: Vec<T::Id>,
    list: F,
) -> anyhow::Result<()>
where
    T: Entity,
    F: Fn(Option<T::Id>, usize) -> Fut,
    Fut: Future<Output = Result<Vec<Arc<T>>>>,
{
    let (ids, pages) = every_page(&list, 100).await?;
    let wanted: BTreeSet<T::Id> = stored
        .iter()
        .copied()
        .filter(|id| !deleted.contains(id))
        .collect();
    ensure!(
        ids.len() == wanted.len(),
        "{} listed, {} stored",
        ids.len(),
        wanted.len()
    );
    ensure!(
        ids.iter().copied().collect::<BTreeSet<_>>() == wanted,
        "the listing is not the stored set"
    );
    ensure!(pages == 3, "{pages} pages of 100 for {} items", ids.len());
    let last = ids.last().copied();
    ensure!(
        list(last, 10).await?.is_empty(),
        "something after the last id"
    );
    let (one_by_one, _) = every_page(&list, 1).await?;
    ensure!(one_by_one == ids, "pages of 1 list the same");
    for limit in [0, MAX_QUERY_LIMIT + 1] {
        expect_kind(
            list(None, limit).await,
            ErrorKind::InvalidInput,
            "a limit out of range",
        )?;
    }
    Ok(())
}

/// For patterns: 250 stored, 10 deleted; pages of 100 (and of 1) list the other 240 once
/// each by ascending id, in 3 pages; limits out of range refused.
pub async fn patterns(b: &dyn StorageBackend) -> anyhow::Result<()> {
    ensure!(
        b.list_patterns(None, 10).await?.is_empty(),
        "an empty store lists nothing"
    );
    let items: Vec<_> = (0..250).map(samples::pattern).collect();
    b.store_patterns(&items).await?;
    let deleted: Vec<PatternId> = items.iter().step_by(25).map(|p| p.id).collect();
    b.delete_patterns(&deleted).await?;
    let stored = items.iter().map(|p| p.id).collect();
    pages_through_everything(stored, deleted, |after, limit| {
        b.list_patterns(after, limit)
    })
    .await
}

/// For heuristics, as for patterns.
pub async fn heuristics(b: &dyn StorageBackend) -> anyhow::Result<()> {
    ensure!(
        b.list_heuristics(None, 10).await?.is_empty(),
        "an empty store lists nothing"
    );
    let items: Vec<_> = (0..250).map(samples::heuristic).collect();
    b.store_heuristics(&items).await?;
    let deleted: Vec<HeuristicId> = items.iter().step_by(25).map(|h| h.id).collect();
    b.delete_heuristics(&deleted).await?;
    let stored = items.iter().map(|h| h.id).collect();
    pages_through_everything(stored, deleted, |after, limit| {
        b.list_heuristics(after, limit)
    })
    .await
}

/// `check_items`: 60 episodes, 30 patterns and 20 heuristics stored, a few of each deleted;
/// pages of 7 report every other stored id of each kind once, ascending, each sound; nothing
/// after the last; kinds stay apart; limits out of range refused.
pub async fn checks(b: &dyn StorageBackend) -> anyhow::Result<()> {
    use crate::{EntityKind, Uuid};
    for kind in [
        EntityKind::Episode,
        EntityKind::Pattern,
        EntityKind::Heuristic,
    ] {
        ensure!(
            b.check_items(kind, None, 10).await?.is_empty(),
            "an empty store has no {kind:?} to check"
        );
    }
    let episodes: Vec<_> = (0..60).map(samples::episode).collect();
    b.store_episodes(&episodes).await?;
    let patterns: Vec<_> = (0..30).map(samples::pattern).collect();
    b.store_patterns(&patterns).await?;
    let heuristics: Vec<_> = (0..20).map(samples::heuristic).collect();
    b.store_heuristics(&heuristics).await?;
    let gone_episodes: Vec<_> = episodes.iter().step_by(9).map(|e| e.id).collect();
    b.delete_episodes(&gone_episodes).await?;
    let gone_patterns: Vec<_> = patterns.iter().step_by(7).map(|p| p.id).collect();
    b.delete_patterns(&gone_patterns).await?;
    let gone_heuristics: Vec<_> = heuristics.iter().step_by(5).map(|h| h.id).collect();
    b.delete_heuristics(&gone_heuristics).await?;

    let kept = |all: Vec<Uuid>, gone: Vec<Uuid>| -> Vec<Uuid> {
        let set: BTreeSet<Uuid> = all.into_iter().filter(|id| !gone.contains(id)).collect();
        set.into_iter().collect()
    };
    let expected = [
        (
            EntityKind::Episode,
            kept(
                episodes.iter().map(|e| e.id.into()).collect(),
                gone_episodes.iter().map(|&id| id.into()).collect(),
            ),
        ),
        (
            EntityKind::Pattern,
            kept(
                patterns.iter().map(|p| p.id.into()).collect(),
                gone_patterns.iter().map(|&id| id.into()).collect(),
            ),
        ),
        (
            EntityKind::Heuristic,
            kept(
                heuristics.iter().map(|h| h.id.into()).collect(),
                gone_heuristics.iter().map(|&id| id.into()).collect(),
            ),
        ),
    ];
    for (kind, wanted) in expected {
        let mut seen: Vec<Uuid> = Vec::new();
        let mut after = None;
        loop {
            let page = b.check_items(kind, after, 7).await?;
            ensure!(page.len() <= 7, "a page of {} for a limit of 7", page.len());
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for item in page {
                ensure!(
                    item.problem.is_none(),
                    "{kind:?} {} reported unsound: {:?}",
                    item.id,
                    item.problem
                );
                ensure!(
                    seen.last().is_none_or(|prev| *prev < item.id),
                    "{kind:?} ids out of order at {}",
                    item.id
                );
                seen.push(item.id);
            }
        }
        ensure!(
            seen == wanted,
            "{kind:?}: checked {} ids, {} stored (or not the same ones)",
            seen.len(),
            wanted.len()
        );
        for limit in [0, MAX_QUERY_LIMIT + 1] {
            expect_kind(
                b.check_items(kind, None, limit).await,
                ErrorKind::InvalidInput,
                "a limit out of range",
            )?;
        }
    }
    Ok(())
}
