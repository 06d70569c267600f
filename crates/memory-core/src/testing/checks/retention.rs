//! Retention checks: [`crate::retention::prune`] on the backend removes exactly what the
//! reference [`crate::retention::select`] picks, with everything that finds an episode
//! (get, queries, similarity and text search), and a dry run counts the same.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::ensure;

use crate::error::ErrorKind;
use crate::retention::{self, PruneOptions, RetentionPolicy};
use crate::search::EpisodeSearch;
use crate::storage::StorageBackend;
use crate::testing::checks::expect_kind;
use crate::testing::samples;
use crate::{Embedding, Episode, EpisodeId, EpisodeQuery, RewardScore, Timestamp};

const DAY: i64 = 86_400_000_000;
const DOMAINS: [&str; 3] = ["web", "cli", "db"];

/// 60 episodes over 90 days in three domains, rewards spread (every seventh unscored), each
/// with an embedding and a word of its own.
fn history(now: Timestamp) -> Vec<Episode> {
    (0..60u64)
        .map(|i| {
            let mut e = samples::episode(i);
            let start = now.plus_micros(-((i as i64 * 37) % 90) * DAY - i as i64);
            // Moved as a whole: its end and steps keep their offsets.
            let shift = start.as_micros() - e.start_time.as_micros();
            e.start_time = start;
            e.end_time = e.end_time.map(|t| t.plus_micros(shift));
            for step in &mut e.steps {
                step.timestamp = step.timestamp.plus_micros(shift);
            }
            e.context.domain = DOMAINS[i as usize % 3].into();
            e.description = format!("run r{i}");
            e.reward = (i % 7 != 0).then(|| RewardScore {
                total: (i % 10) as f64 / 10.0,
                base: 0.5,
                efficiency: 1.0,
                complexity_bonus: 0.0,
                quality_multiplier: 1.0,
                learning_bonus: 0.0,
            });
            e.embedding = Embedding::new(vec![1.0, i as f32, (i % 3) as f32]).ok();
            e
        })
        .collect()
}

async fn stored_ids(b: &dyn StorageBackend) -> anyhow::Result<BTreeSet<EpisodeId>> {
    let mut ids = BTreeSet::new();
    let mut query = EpisodeQuery::new().limit(crate::limits::MAX_QUERY_LIMIT);
    loop {
        let page = b.query_episodes(&query).await?;
        ids.extend(page.items.iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => query = query.after(c),
            None => return Ok(ids),
        }
    }
}

/// Each policy, from the full history: the dry run's count, then the real run's removals,
/// are the reference's; removed episodes are gone from gets, queries and both searches.
pub async fn matches_the_reference(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let all = history(now);
    let days = |d: u64| Duration::from_secs(d * 86_400);
    let policies = [
        RetentionPolicy::new().older_than(days(30)),
        RetentionPolicy::new().keep_newest_per_domain(6),
        RetentionPolicy::new().below_reward(0.35),
        RetentionPolicy::new()
            .older_than(days(20))
            .keep_newest_per_domain(4),
        RetentionPolicy::new()
            .older_than(days(10))
            .keep_newest_per_domain(2)
            .below_reward(0.5),
        RetentionPolicy::new().keep_newest_per_domain(0),
    ];
    for policy in &policies {
        b.store_episodes(&all).await?;
        let expected = retention::select(policy, &all, now);
        let before = b.count_episodes().await?;
        let dry = retention::prune(b, policy, now, PruneOptions::dry_run()).await?;
        ensure!(
            dry.selected == expected.len() as u64 && dry.removed == 0,
            "{policy:?}: dry run {dry:?}, the reference removes {}",
            expected.len()
        );
        ensure!(b.count_episodes().await? == before, "a dry run deleted");
        let done = retention::prune(b, policy, now, PruneOptions::default().chunk(7)).await?;
        ensure!(
            done.removed == expected.len() as u64,
            "{policy:?}: removed {done:?}, the reference {}",
            expected.len()
        );
        ensure!(
            done.chunks >= expected.len().div_ceil(7) as u64,
            "{policy:?}: {done:?} in chunks of 7"
        );
        let left = stored_ids(b).await?;
        let wanted: BTreeSet<EpisodeId> = all
            .iter()
            .map(|e| e.id)
            .filter(|id| !expected.contains(id))
            .collect();
        ensure!(left == wanted, "{policy:?}: the episodes left differ");
        for e in all.iter().filter(|e| expected.contains(&e.id)).take(5) {
            ensure!(
                b.get_episode(e.id).await?.is_none(),
                "{}: still there",
                e.id
            );
            let own_word = EpisodeSearch::text(e.description.clone(), 5);
            ensure!(
                b.search_episodes(&own_word).await?.is_empty(),
                "{}: its words are still indexed",
                e.id
            );
            if let Some(v) = &e.embedding {
                let near = b
                    .search_episodes(&EpisodeSearch::new(v.clone(), 60))
                    .await?;
                ensure!(
                    near.iter().all(|s| s.item.id != e.id),
                    "{}: its vector is still searched",
                    e.id
                );
            }
        }
        // Running it again removes nothing more.
        let again = retention::prune(b, policy, now, PruneOptions::default()).await?;
        ensure!(
            again.removed == 0,
            "{policy:?}: a second run removed {again:?}"
        );
    }
    Ok(())
}

/// A policy without a rule and a chunk out of range are `InvalidInput`; nothing is deleted.
pub async fn invalid_policies(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let now = Timestamp::now();
    b.store_episodes(&history(now)).await?;
    expect_kind(
        retention::prune(b, &RetentionPolicy::new(), now, PruneOptions::default()).await,
        ErrorKind::InvalidInput,
        "a policy without a rule",
    )?;
    let keep_none = RetentionPolicy::new().keep_newest_per_domain(0);
    for chunk in [0, crate::limits::MAX_BATCH_ITEMS + 1] {
        expect_kind(
            retention::prune(b, &keep_none, now, PruneOptions::default().chunk(chunk)).await,
            ErrorKind::InvalidInput,
            "a chunk out of range",
        )?;
    }
    ensure!(b.count_episodes().await? == 60, "a refused prune deleted");
    Ok(())
}
