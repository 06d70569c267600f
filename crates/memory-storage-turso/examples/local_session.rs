//! Stores a short agent session in the embedded default store (a local libSQL file) and
//! reads it back: a single write, a batch (one transaction), a point read, a filtered query
//! paged to the end, and the typed error for bad input; then prints the pool's and the
//! statement cache's counters.
//!
//! Run with `cargo run --release -p memory-storage-turso --example local_session`.

use std::time::Instant;

use memory_core::{
    Episode, EpisodeQuery, ErrorKind, ExecutionResult, ExecutionStep, OutcomeKind, StorageBackend,
    TaskContext, TaskOutcome, TaskType,
};
use memory_storage_turso::{PoolStats, StatementCacheStats, TursoConfig, TursoStorage};

fn run(n: usize, domain: &str) -> Episode {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The embedded default: a local libSQL file (here in a temporary folder), no server.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("memory.db");
    let store = TursoStorage::open(TursoConfig::local(&path)).await?;
    println!(
        "opened {} (schema version {})",
        path.display(),
        store.schema_version().await?
    );

    let first = run(0, "web");
    store.store_episode(&first).await?;
    let batch: Vec<Episode> = (1..500)
        .map(|n| run(n, ["web", "cli", "data"][n % 3]))
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
    assert_eq!(read.as_deref(), Some(&first));
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

    let mut bad = run(9_999, "web");
    bad.description.clear();
    match store.store_episode(&bad).await {
        Err(err) if err.kind() == ErrorKind::InvalidInput => {
            println!("invalid input is rejected: {err}");
        }
        other => anyhow::bail!("an empty description must be rejected, got {other:?}"),
    }
    let pool = store.pool_stats();
    let statements = store.statement_stats();
    println!(
        "pool: {} connection(s) opened, {} waits; statement cache: {} hits, {} misses \
         ({:.1} % hit ratio), {:?} spent preparing",
        pool.created,
        pool.waits,
        statements.hits,
        statements.misses,
        statements.hit_ratio() * 100.0,
        statements.prepare_time
    );
    Ok(())
}
