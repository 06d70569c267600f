//! Several handles on one store in one process: a write through one is seen through
//! another within the change-check interval. Every backend's tests run
//! [`stale_reads`] over the pairings it offers (two caches on one handle, a cache beside
//! its bare handle, caches on clones).

use std::time::Duration;

use anyhow::ensure;

use crate::{Episode, EpisodeId, StorageBackend, TaskContext, TaskType};

/// Episode `id` at `revision` (the revision is its description).
pub fn revision(id: EpisodeId, revision: usize) -> Episode {
    let mut e = Episode::new(
        TaskType::Testing,
        format!("revision {revision}"),
        TaskContext::new("handles"),
    );
    e.id = id;
    e
}

/// `trials` times: writes revision 0 through `writer`, lets `reader` cache it (two reads),
/// writes revision 1 through `writer`, waits three `interval`s and reads through `reader`.
/// Returns how many of those last reads were stale.
pub async fn stale_reads(
    writer: &dyn StorageBackend,
    reader: &dyn StorageBackend,
    interval: Duration,
    trials: usize,
) -> anyhow::Result<usize> {
    let mut stale = 0;
    for trial in 0..trials {
        let id = EpisodeId::new();
        writer.store_episode(&revision(id, 0)).await?;
        tokio::time::sleep(interval * 3).await;
        for _ in 0..2 {
            let seen = reader.get_episode(id).await?;
            ensure!(
                seen.is_some_and(|e| e.description == "revision 0"),
                "trial {trial}: the first revision not seen"
            );
        }
        writer.store_episode(&revision(id, 1)).await?;
        tokio::time::sleep(interval * 3).await;
        let seen = reader.get_episode(id).await?;
        if seen.is_none_or(|e| e.description != "revision 1") {
            stale += 1;
        }
    }
    Ok(stale)
}

/// [`stale_reads`] in both directions; fails naming the pairing if any read was stale.
pub async fn see_each_other(
    name: &str,
    a: &dyn StorageBackend,
    b: &dyn StorageBackend,
    interval: Duration,
    trials: usize,
) -> anyhow::Result<()> {
    let ab = stale_reads(a, b, interval, trials).await?;
    let ba = stale_reads(b, a, interval, trials).await?;
    println!("{name}: {ab} + {ba} of {} reads stale", 2 * trials);
    ensure!((ab, ba) == (0, 0), "{name}: {ab} + {ba} stale reads");
    Ok(())
}
