//! Episode-specific checks: payload size, literal strings and every query behaviour.

use std::collections::HashSet;

use anyhow::{Context, ensure};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use crate::entity::Entity;
use crate::error::ErrorKind;
use crate::limits::{MAX_PAYLOAD_BYTES, MAX_QUERY_LIMIT, MAX_TEXT_BYTES};
use crate::storage::StorageBackend;
use crate::testing::checks::expect_kind;
use crate::testing::{reference, samples, strategies};
use crate::{
    Episode, EpisodeCursor, EpisodeId, EpisodeQuery, ExecutionResult, ExecutionStep, OutcomeKind,
    TaskType, Timestamp,
};

/// Runs `query` to the end, page by page, checking that pages respect the limit and that a
/// cursor is given exactly when more episodes follow.
pub async fn all_pages(
    b: &dyn StorageBackend,
    query: &EpisodeQuery,
) -> anyhow::Result<Vec<EpisodeId>> {
    let mut ids = Vec::new();
    let mut query = query.clone();
    for _ in 0..10_000 {
        let page = b.query_episodes(&query).await.context("query_episodes")?;
        ensure!(
            page.items.len() <= query.limit,
            "page of {} over limit {}",
            page.items.len(),
            query.limit
        );
        ids.extend(page.items.iter().map(|e| e.id));
        match page.next_cursor {
            Some(cursor) => {
                ensure!(
                    page.items.len() == query.limit,
                    "a cursor after a short page"
                );
                let last = page.items.last().map(|e| EpisodeCursor::of(e));
                ensure!(
                    last == Some(cursor),
                    "the cursor is not the last item's position"
                );
                query.cursor = Some(cursor);
            }
            None => return Ok(ids),
        }
    }
    anyhow::bail!("paging did not end")
}

async fn expect_query(
    b: &dyn StorageBackend,
    all: &[Episode],
    query: &EpisodeQuery,
) -> anyhow::Result<()> {
    let expected = reference::episode_ids(all, query);
    let got = all_pages(b, query).await?;
    ensure!(
        got == expected,
        "query {query:?}\n  returned {got:?}\n  expected {expected:?}"
    );
    Ok(())
}

/// An episode close to the payload limit stores and reads back; one over it is rejected.
pub async fn large_payload(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut big = samples::episode(1);
    let output = "λ".repeat(MAX_TEXT_BYTES / 2);
    let steps = MAX_PAYLOAD_BYTES / 2 / MAX_TEXT_BYTES;
    big.steps = (1..=steps as u32)
        .map(|i| {
            let mut s = ExecutionStep::new(i, "tool", "act");
            s.timestamp = big.start_time;
            s.result = Some(ExecutionResult::Success {
                output: output.clone(),
            });
            s
        })
        .collect();
    b.store_episode(&big)
        .await
        .context("store a ~2 MiB episode")?;
    let got = b.get_episode(big.id).await?;
    ensure!(
        got.as_deref() == Some(&big),
        "a ~2 MiB episode did not read back equal"
    );

    let mut huge = samples::episode(2);
    huge.steps = (1..=(2 * steps + 2) as u32)
        .map(|i| {
            let mut s = ExecutionStep::new(i, "tool", "act");
            s.result = Some(ExecutionResult::Success {
                output: output.clone(),
            });
            s
        })
        .collect();
    expect_kind(
        b.store_episode(&huge).await,
        ErrorKind::InvalidInput,
        "an episode over the payload limit",
    )?;
    ensure!(
        b.get_episode(huge.id).await?.is_none(),
        "an oversized episode was stored"
    );
    Ok(())
}

/// Quotes, wildcards, injections and non-ASCII text are stored and matched literally.
pub async fn literal_strings(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let nasty = [
        "o'brien",
        "x'); DROP TABLE episodes;--",
        "100%",
        "a_b",
        "\"quoted\"",
        "back\\slash",
        "ünïcødé 🦀",
        "tab\tnew\nline",
        "nul\0byte",
    ];
    let mut all = Vec::new();
    for (i, s) in nasty.iter().enumerate() {
        let mut e = samples::episode(i as u64);
        e.description = (*s).into();
        e.context.domain = (*s).into();
        e.tags = vec![(*s).into()];
        e.metadata.insert((*s).into(), (*s).into());
        all.push(e);
    }
    // Neighbours that a LIKE or prefix match would wrongly return.
    let mut decoy = samples::episode(100);
    decoy.context.domain = "100%x".into();
    decoy.tags = vec!["a-b".into(), "100".into()];
    all.push(decoy);
    b.store_episodes(&all).await.context("store_episodes")?;
    for e in &all {
        let got = b.get_episode(e.id).await?;
        ensure!(
            got.as_deref() == Some(e),
            "episode with {:?} did not read back equal",
            e.description
        );
    }
    for s in nasty {
        expect_query(b, &all, &EpisodeQuery::new().domain(s)).await?;
        expect_query(b, &all, &EpisodeQuery::new().tag(s)).await?;
        expect_query(b, &all, &EpisodeQuery::new().metadata(s, s)).await?;
        let ids = all_pages(b, &EpisodeQuery::new().domain(s)).await?;
        ensure!(
            ids.len() == 1,
            "domain {s:?} matched {} episodes, expected 1",
            ids.len()
        );
    }
    Ok(())
}

fn filter_data() -> Vec<Episode> {
    (0..60).map(samples::episode).collect()
}

/// Each filter alone, and combined, returns exactly the reference answer.
pub async fn query_each_filter(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let all = filter_data();
    b.store_episodes(&all).await?;
    let t = |ms: i64| samples::BASE_TIME.plus_micros(ms * 1_000);
    let mut queries = vec![
        EpisodeQuery::new(),
        EpisodeQuery::new().since(t(20)),
        EpisodeQuery::new().until(t(20)),
        EpisodeQuery::new().since(t(10)).until(t(30)),
        EpisodeQuery::new().tag("even"),
        EpisodeQuery::new().tag("t3"),
        EpisodeQuery::new().tag("even").tag("t4"),
        EpisodeQuery::new().tag("nope"),
        EpisodeQuery::new().metadata("agent", "agent-1"),
        EpisodeQuery::new().metadata("agent", "agent-9"),
        EpisodeQuery::new().metadata("missing", "agent-1"),
        EpisodeQuery::new()
            .domain("web")
            .task_type(TaskType::Debugging)
            .since(t(5))
            .tag("t1"),
        EpisodeQuery::new()
            .domain("cli")
            .outcome(OutcomeKind::Failure)
            .metadata("agent", "agent-1"),
    ];
    for domain in samples::DOMAINS {
        queries.push(EpisodeQuery::new().domain(domain));
    }
    for task_type in TaskType::ALL {
        queries.push(EpisodeQuery::new().task_type(task_type));
    }
    for outcome in OutcomeKind::ALL {
        queries.push(EpisodeQuery::new().outcome(outcome));
    }
    for q in &queries {
        let expected = reference::episode_ids(&all, q);
        if q.tags != ["nope"]
            && !q.metadata.contains_key("missing")
            && q.metadata.get("agent").is_none_or(|v| v != "agent-9")
        {
            ensure!(
                !expected.is_empty() || q.domain.is_some(),
                "test data gives no hit for {q:?}"
            );
        }
        expect_query(b, &all, q).await?;
    }
    Ok(())
}

/// `since` is inclusive, `until` exclusive, `since == until` is empty.
pub async fn query_time_bounds(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let all: Vec<Episode> = (0..5).map(samples::episode).collect();
    b.store_episodes(&all).await?;
    let at = |n: usize| all[n].start_time;
    let ids = |q: EpisodeQuery| async move { all_pages(b, &q).await };
    ensure!(
        ids(EpisodeQuery::new().since(at(3))).await? == vec![all[4].id, all[3].id],
        "since is inclusive"
    );
    ensure!(
        ids(EpisodeQuery::new().until(at(1))).await? == vec![all[0].id],
        "until is exclusive"
    );
    ensure!(
        ids(EpisodeQuery::new().since(at(2)).until(at(2)))
            .await?
            .is_empty(),
        "an empty range"
    );
    ensure!(
        ids(EpisodeQuery::new().since(at(1)).until(at(3))).await? == vec![all[2].id, all[1].id],
        "a closed-open range"
    );
    let far = Timestamp::from_micros(i64::MAX);
    ensure!(
        ids(EpisodeQuery::new().since(far)).await?.is_empty(),
        "since the end of time"
    );
    ensure!(
        ids(EpisodeQuery::new().until(Timestamp::from_micros(i64::MIN)))
            .await?
            .is_empty(),
        "until the start of time"
    );
    Ok(())
}

/// Newest first; equal start times are ordered by descending id, also across pages.
pub async fn query_order_and_ties(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut all: Vec<Episode> = (0..12).map(samples::episode).collect();
    for (i, e) in all.iter_mut().enumerate() {
        e.start_time = samples::BASE_TIME.plus_micros((i as i64 / 4) * 1_000);
        e.end_time = e.end_time.map(|_| e.start_time);
        for s in &mut e.steps {
            s.timestamp = e.start_time;
        }
    }
    // Pre-epoch times sort before everything else.
    all[0].start_time = Timestamp::from_micros(-5);
    all[0].end_time = None;
    b.store_episodes(&all).await?;
    let expected = reference::episode_ids(&all, &EpisodeQuery::new());
    for limit in [1, 3, 4, 5, 12, 100] {
        let got = all_pages(b, &EpisodeQuery::new().limit(limit)).await?;
        ensure!(
            got == expected,
            "order with limit {limit}: {got:?}, expected {expected:?}"
        );
    }
    Ok(())
}

/// Paging visits every match once; the last full page has no cursor when nothing follows.
pub async fn query_paging(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let all: Vec<Episode> = (0..30).map(samples::episode).collect();
    b.store_episodes(&all).await?;
    let q = EpisodeQuery::new().limit(10);
    let first = b.query_episodes(&q).await?;
    ensure!(
        first.items.len() == 10 && first.next_cursor.is_some(),
        "first page"
    );
    let got = all_pages(b, &q).await?;
    ensure!(
        got.len() == 30 && got.iter().collect::<HashSet<_>>().len() == 30,
        "pages skip or repeat"
    );
    let exact = b.query_episodes(&EpisodeQuery::new().limit(30)).await?;
    ensure!(
        exact.items.len() == 30 && exact.next_cursor.is_none(),
        "a page holding every match has no cursor"
    );
    let filtered = EpisodeQuery::new().domain("web").limit(3);
    expect_query(b, &all, &filtered).await?;
    // A cursor token survives a trip through text.
    let cursor = first.next_cursor.context("no cursor")?;
    let parsed: EpisodeCursor = cursor.to_string().parse()?;
    let from_text = b.query_episodes(&q.clone().after(parsed)).await?;
    ensure!(
        from_text.items.first().map(|e| e.id) == got.get(10).copied(),
        "page from a parsed cursor"
    );
    Ok(())
}

/// A page's cursor follows the match just beyond its limit: deleting that episode, or
/// moving it to another domain, leaves a page with no cursor (read twice first, so that a
/// caching layer has the page cached).
pub async fn query_cursor_follows_the_next_match(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let in_domain = |n: u64, domain: &str| {
        let mut e = samples::episode(n);
        e.context.domain = domain.to_string();
        e
    };
    for moved in [false, true] {
        let domain = if moved {
            "cursor-moved"
        } else {
            "cursor-deleted"
        };
        let episodes: Vec<Episode> = (0..3).map(|n| in_domain(n, domain)).collect();
        b.store_episodes(&episodes).await?;
        let q = EpisodeQuery::new().domain(domain).limit(2);
        for _ in 0..2 {
            let page = b.query_episodes(&q).await?;
            ensure!(
                page.items.len() == 2 && page.next_cursor.is_some(),
                "two of three with a cursor"
            );
        }
        // The oldest of the three is the one beyond the page.
        if moved {
            b.store_episode(&in_domain(0, "elsewhere")).await?;
        } else {
            b.delete_episode(episodes[0].id).await?;
        }
        let page = b.query_episodes(&q).await?;
        ensure!(
            page.items.len() == 2 && page.next_cursor.is_none(),
            "after the next match was {}, the page still has a cursor",
            if moved { "moved away" } else { "deleted" }
        );
    }
    Ok(())
}

/// Episodes that exist for the whole paging appear exactly once even while others are
/// added and deleted between pages.
pub async fn query_paging_under_writes(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let all: Vec<Episode> = (0..40).map(samples::episode).collect();
    b.store_episodes(&all).await?;
    let deleted: HashSet<EpisodeId> = all.iter().skip(1).step_by(5).map(|e| e.id).collect();
    let mut query = EpisodeQuery::new().limit(6);
    let mut seen = Vec::new();
    let mut extra = 1_000;
    let mut gone = HashSet::new();
    loop {
        let page = b.query_episodes(&query).await?;
        seen.extend(page.items.iter().map(|e| e.id));
        // Between pages: a newer and an older episode arrive, and some old ones go.
        let newer = samples::episode(extra);
        let mut older = samples::episode(extra + 1);
        older.start_time = samples::BASE_TIME.plus_micros(-1_000 * extra as i64);
        older.end_time = older.end_time.map(|_| older.start_time);
        extra += 2;
        b.store_episodes(&[newer, older]).await?;
        let victim = all
            .iter()
            .find(|e| deleted.contains(&e.id) && !seen.contains(&e.id) && !gone.contains(&e.id));
        if let Some(victim) = victim {
            b.delete_episode(victim.id).await?;
            gone.insert(victim.id);
        }
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    let mut counts = std::collections::HashMap::new();
    for id in &seen {
        *counts.entry(*id).or_insert(0) += 1;
    }
    ensure!(
        counts.values().all(|&c| c == 1),
        "an episode appeared twice while paging"
    );
    for e in all.iter().filter(|e| !deleted.contains(&e.id)) {
        ensure!(
            counts.contains_key(&e.id),
            "episode {} existed throughout but was skipped",
            e.id
        );
    }
    Ok(())
}

/// Replacing an episode moves it between query results; deleting removes it.
pub async fn query_follows_updates(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut all: Vec<Episode> = (0..9).map(samples::episode).collect();
    b.store_episodes(&all).await?;
    let mut moved = all[0].clone();
    moved.context.domain = "moved".into();
    moved.start_time = samples::BASE_TIME.plus_micros(1_000_000);
    moved.end_time = None;
    moved.outcome = None;
    moved.tags = vec!["new-tag".into()];
    moved.metadata.insert("agent".into(), "agent-x".into());
    b.store_episode(&moved).await?;
    all[0] = moved.clone();
    for q in [
        EpisodeQuery::new().domain(samples::DOMAINS[0]),
        EpisodeQuery::new().domain("moved"),
        EpisodeQuery::new().tag("new-tag"),
        EpisodeQuery::new().tag("even"),
        EpisodeQuery::new().metadata("agent", "agent-0"),
        EpisodeQuery::new().metadata("agent", "agent-x"),
        EpisodeQuery::new().since(samples::BASE_TIME.plus_micros(999_999)),
        EpisodeQuery::new().limit(2),
    ] {
        expect_query(b, &all, &q).await?;
    }
    b.delete_episode(moved.id).await?;
    all.remove(0);
    expect_query(b, &all, &EpisodeQuery::new().domain("moved")).await?;
    expect_query(b, &all, &EpisodeQuery::new()).await?;
    b.delete_episodes(&[all[0].id, all[1].id]).await?;
    all.drain(..2);
    expect_query(b, &all, &EpisodeQuery::new().limit(3)).await
}

/// Bad queries are `InvalidInput`.
pub async fn query_invalid(b: &dyn StorageBackend) -> anyhow::Result<()> {
    b.store_episode(&samples::episode(1)).await?;
    let t = samples::BASE_TIME;
    for (what, q) in [
        ("limit 0", EpisodeQuery::new().limit(0)),
        (
            "limit over the maximum",
            EpisodeQuery::new().limit(MAX_QUERY_LIMIT + 1),
        ),
        (
            "since after until",
            EpisodeQuery::new().since(t.plus_micros(1)).until(t),
        ),
        ("empty domain", EpisodeQuery::new().domain("")),
        ("empty tag", EpisodeQuery::new().tag("")),
        ("repeated tag", EpisodeQuery::new().tag("a").tag("a")),
        ("overlong tag", EpisodeQuery::new().tag("x".repeat(65))),
        ("empty metadata key", EpisodeQuery::new().metadata("", "v")),
    ] {
        expect_kind(b.query_episodes(&q).await, ErrorKind::InvalidInput, what)?;
    }
    let page = b
        .query_episodes(&EpisodeQuery::new().limit(MAX_QUERY_LIMIT))
        .await?;
    ensure!(page.items.len() == 1, "the maximum limit is accepted");
    Ok(())
}

/// Random data sets and random queries, paged to the end, match the reference filter.
pub async fn query_matches_reference(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let mut runner = TestRunner::deterministic();
    let data = proptest::collection::vec(strategies::episode(), 60..90)
        .new_tree(&mut runner)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .current();
    b.store_episodes(&data).await?;
    // Replace some and delete some so the store's history is not a plain insert.
    let mut all = data;
    for e in all.iter_mut().step_by(7) {
        e.context.domain = strategies::DOMAINS[0].into();
        e.start_time = e.start_time.plus_micros(3_000);
        e.end_time = e.end_time.map(|t| t.plus_micros(3_000));
        b.store_episode(e).await?;
    }
    let doomed: Vec<EpisodeId> = all.iter().skip(3).step_by(11).map(|e| e.id).collect();
    b.delete_episodes(&doomed).await?;
    all.retain(|e| !doomed.contains(&e.id));
    let mut matched = 0;
    for _ in 0..150 {
        let q = strategies::episode_query()
            .new_tree(&mut runner)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .current();
        matched += usize::from(!reference::episode_ids(&all, &q).is_empty());
        expect_query(b, &all, &q).await?;
    }
    ensure!(
        matched >= 30,
        "only {matched} of 150 random queries matched anything"
    );
    Ok(())
}

/// Every kind of invalid episode (empty and oversized strings, too many steps, tags and
/// metadata entries, a non-finite reward, a duplicate tag) is `InvalidInput` naming a field,
/// alone and inside a batch of valid ones, and nothing stored changes.
pub async fn invalid_variants(b: &dyn StorageBackend) -> anyhow::Result<()> {
    use crate::limits::{
        MAX_DESCRIPTION_BYTES, MAX_METADATA_ENTRIES, MAX_METADATA_VALUE_BYTES,
        MAX_STEPS_PER_EPISODE, MAX_TAG_BYTES, MAX_TAGS,
    };
    let stored = samples::golden_episode();
    b.store_episode(&stored).await?;
    let long = |n: usize| "x".repeat(n + 1);
    type Break = fn(&mut Episode, &dyn Fn(usize) -> String);
    let variants: [(&str, Break); 13] = [
        ("empty description", |e, _| e.description.clear()),
        ("oversized description", |e, long| {
            e.description = long(MAX_DESCRIPTION_BYTES)
        }),
        ("empty domain", |e, _| e.context.domain.clear()),
        ("too many steps", |e, _| {
            let step = e.steps[0].clone();
            e.steps = (1..=MAX_STEPS_PER_EPISODE as u32 + 1)
                .map(|n| ExecutionStep {
                    step_number: n,
                    ..step.clone()
                })
                .collect();
        }),
        ("NaN reward", |e, _| {
            if let Some(r) = e.reward.as_mut() {
                r.total = f64::NAN;
            }
        }),
        ("infinite reward", |e, _| {
            if let Some(r) = e.reward.as_mut() {
                r.efficiency = f64::INFINITY;
            }
        }),
        ("empty tag", |e, _| e.tags.push(String::new())),
        ("overlong tag", |e, long| e.tags.push(long(MAX_TAG_BYTES))),
        ("duplicate tag", |e, _| {
            let tag = e.tags[0].clone();
            e.tags.push(tag);
        }),
        ("too many tags", |e, _| {
            e.tags = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect()
        }),
        ("empty metadata key", |e, _| {
            e.metadata.insert(String::new(), "v".into());
        }),
        ("oversized metadata value", |e, long| {
            e.metadata
                .insert("k".into(), long(MAX_METADATA_VALUE_BYTES));
        }),
        ("too many metadata entries", |e, _| {
            e.metadata = (0..=MAX_METADATA_ENTRIES)
                .map(|i| (format!("k{i}"), "v".into()))
                .collect();
        }),
    ];
    for (what, break_it) in variants {
        let mut bad = stored.clone();
        break_it(&mut bad, &long);
        ensure!(bad.validate().is_err(), "{what}: the variant validates");
        expect_kind(b.store_episode(&bad).await, ErrorKind::InvalidInput, what)?;
        let mut fresh = bad.clone();
        fresh.id = EpisodeId::new();
        let batch = [samples::episode(900), fresh.clone(), samples::episode(901)];
        expect_kind(
            b.store_episodes(&batch).await,
            ErrorKind::InvalidInput,
            what,
        )?;
        for id in [fresh.id, batch[0].id, batch[2].id] {
            ensure!(
                b.get_episode(id).await?.is_none(),
                "{what}: a rejected batch stored {id}"
            );
        }
        let now = b.get_episode(stored.id).await?;
        ensure!(
            now.as_deref() == Some(&stored),
            "{what}: the stored episode changed"
        );
    }
    ensure!(
        b.count_episodes().await? == 1,
        "rejected stores changed the count"
    );
    Ok(())
}
