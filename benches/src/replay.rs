//! Running a workload against any [`StorageBackend`]: every error, and every read that
//! finds nothing where the workload stored something, stops the run.

use std::time::Instant;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use memory_core::{Episode, EpisodeId, StorageBackend};

use crate::agent::{self, AgentOp};

/// Stores `episodes` in batches of `batch` (one transaction each).
pub async fn load(
    store: &dyn StorageBackend,
    episodes: impl IntoIterator<Item = Episode>,
    batch: usize,
) -> anyhow::Result<()> {
    let mut chunk = Vec::with_capacity(batch);
    for episode in episodes {
        chunk.push(episode);
        if chunk.len() == batch.max(1) {
            store
                .store_episodes(&chunk)
                .await
                .context("loading episodes")?;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        store
            .store_episodes(&chunk)
            .await
            .context("loading episodes")?;
    }
    Ok(())
}

/// Reads `id`, which must exist.
pub async fn get_existing(store: &dyn StorageBackend, id: EpisodeId) -> anyhow::Result<()> {
    match store.get_episode(id).await? {
        Some(episode) if episode.id == id => Ok(()),
        Some(episode) => bail!("asked for episode {id}, got {}", episode.id),
        None => bail!("episode {id} is missing"),
    }
}

/// Runs agent-session operations in order.
pub async fn run_agent(store: &dyn StorageBackend, ops: &[AgentOp]) -> anyhow::Result<()> {
    for op in ops {
        run_op(store, op).await?;
    }
    Ok(())
}

/// Latency histograms (nanoseconds) of a workload's operations, by kind.
pub struct Timings {
    /// Reads by id.
    pub get: Histogram<u64>,
    /// Domain and time-window queries.
    pub query: Histogram<u64>,
    /// Single-episode stores (new runs and revisions).
    pub store: Histogram<u64>,
    /// Batch stores.
    pub store_batch: Histogram<u64>,
}

impl Timings {
    /// Empty histograms (3 significant digits).
    pub fn new() -> anyhow::Result<Self> {
        let h = || Histogram::<u64>::new(3).context("a histogram");
        Ok(Timings {
            get: h()?,
            query: h()?,
            store: h()?,
            store_batch: h()?,
        })
    }
}

/// Runs agent-session operations in order, timing each into `timings`.
pub async fn run_agent_timed(
    store: &dyn StorageBackend,
    ops: &[AgentOp],
    timings: &mut Timings,
) -> anyhow::Result<()> {
    for op in ops {
        let started = Instant::now();
        run_op(store, op).await?;
        let nanos = u64::try_from(started.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let histogram = match op {
            AgentOp::Get(_) | AgentOp::ReadBack(_) => &mut timings.get,
            AgentOp::Recent(_) | AgentOp::Window { .. } => &mut timings.query,
            AgentOp::Store(range) if range.end - range.start > 1 => &mut timings.store_batch,
            AgentOp::Store(_) | AgentOp::Revise { .. } => &mut timings.store,
        };
        histogram.record(nanos).context("recording a latency")?;
    }
    Ok(())
}

async fn run_op(store: &dyn StorageBackend, op: &AgentOp) -> anyhow::Result<()> {
    {
        match op {
            AgentOp::Get(n) | AgentOp::ReadBack(n) => get_existing(store, agent::id_of(*n)).await?,
            AgentOp::Recent(_) | AgentOp::Window { .. } => {
                if let Some(query) = op.query() {
                    store.query_episodes(&query).await?;
                }
            }
            AgentOp::Store(range) if range.end - range.start == 1 => {
                store.store_episode(&agent::episode(range.start, 0)).await?;
            }
            AgentOp::Store(range) => {
                let batch: Vec<Episode> = range.clone().map(|n| agent::episode(n, 0)).collect();
                store.store_episodes(&batch).await?;
            }
            AgentOp::Revise { n, revision } => {
                store.store_episode(&agent::episode(*n, *revision)).await?;
            }
        }
    }
    Ok(())
}
