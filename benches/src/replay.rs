//! Running a workload against any [`StorageBackend`]: every error, and every read that
//! finds nothing where the workload stored something, stops the run.

use anyhow::{Context, bail};
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
        match op {
            AgentOp::Get(n) => get_existing(store, agent::id_of(*n)).await?,
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
