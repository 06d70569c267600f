//! A short agent session walked through any backend: the body of the runnable examples
//! (`memory-core`'s `quickstart`, `memory-storage-turso`'s `local_session`), kept in one
//! place so every store shows the same thing.

use std::time::Instant;

use crate::{
    Episode, EpisodeQuery, ErrorKind, ExecutionResult, ExecutionStep, OutcomeKind, StorageBackend,
    TaskContext, TaskOutcome, TaskType,
};

/// Episode `n` of the session in `domain`: three successful steps, a `ci` or `local` tag,
/// and every fourth run a failure.
pub fn session_episode(n: usize, domain: &str) -> Episode {
    let mut episode = Episode::new(
        TaskType::ALL[n % TaskType::ALL.len()],
        format!("task {n} in {domain}"),
        TaskContext::new(domain).with_language("rust"),
    );
    for i in 1..=3 {
        let mut step = ExecutionStep::new(i, "cargo", "test");
        step.result = Some(ExecutionResult::Success {
            output: format!("step {i} ok"),
        });
        episode.steps.push(step);
    }
    episode
        .tags
        .push(if n.is_multiple_of(3) { "ci" } else { "local" }.into());
    episode.complete(if n.is_multiple_of(4) {
        TaskOutcome::Failure {
            reason: "tests failed".into(),
            error_details: None,
        }
    } else {
        TaskOutcome::Success {
            verdict: "done".into(),
            artifacts: vec![],
        }
    });
    episode
}

/// Stores a single episode and a 499-episode batch, reads one back, pages a filtered query
/// to the end and checks that bad input gets a typed error, printing what it did.
pub async fn walk_through(store: &dyn StorageBackend) -> anyhow::Result<()> {
    let first = session_episode(0, "web");
    store.store_episode(&first).await?;
    let batch: Vec<Episode> = (1..500)
        .map(|n| session_episode(n, ["web", "cli", "data"][n % 3]))
        .collect();
    let started = Instant::now();
    store.store_episodes(&batch).await?;
    println!(
        "stored {} episodes ({} in one batch, {:?})",
        store.count_episodes().await?,
        batch.len(),
        started.elapsed()
    );

    let read = store.get_episode(first.id).await?;
    anyhow::ensure!(
        read.as_deref() == Some(&first),
        "the stored episode must read back equal"
    );
    println!("read back {} with {} steps", first.id, first.steps.len());

    let query = EpisodeQuery::new()
        .domain("web")
        .outcome(OutcomeKind::Success)
        .tag("ci")
        .limit(25);
    let (mut pages, mut total) = (0, 0);
    let mut next = Some(query);
    while let Some(q) = next {
        let page = store.query_episodes(&q).await?;
        pages += 1;
        total += page.items.len();
        next = page.next_cursor.map(|c| q.clone().after(c));
    }
    println!("successful CI episodes in `web`: {total} over {pages} pages");

    let mut bad = session_episode(9_999, "web");
    bad.description.clear();
    match store.store_episode(&bad).await {
        Err(err) if err.kind() == ErrorKind::InvalidInput => {
            println!("invalid input is rejected: {err}");
        }
        other => anyhow::bail!("an empty description must be rejected, got {other:?}"),
    }
    Ok(())
}
