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

/// `trials` times: writes revision 0 of a new episode through `cached` and lets it cache it,
/// then writes revision 1 through `cached` under a caller timeout of `trial × step` (the
/// caller gives up on many of them), waits until `truth` (the bare store) has revision 1
/// and reads through `cached` again. Returns how many writes were cut off by the timeout
/// and how many of the last reads disagreed with `truth` (stale entries).
pub async fn cut_off_writes(
    truth: &dyn StorageBackend,
    cached: &dyn StorageBackend,
    trials: u32,
    step: Duration,
) -> anyhow::Result<(usize, usize)> {
    let (mut cut, mut stale) = (0, 0);
    for trial in 0..trials {
        let x = EpisodeId::new();
        cached.store_episode(&revision(x, 0)).await?;
        for _ in 0..2 {
            cached.get_episode(x).await?;
        }
        if tokio::time::timeout(step * trial, cached.store_episode(&revision(x, 1)))
            .await
            .is_err()
        {
            cut += 1;
        }
        // A write whose caller gave up finishes by itself; wait until the store has it.
        for _ in 0..200 {
            let now = truth.get_episode(x).await?;
            if now.is_some_and(|e| e.description == "revision 1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let want = truth.get_episode(x).await?;
        ensure!(
            want.as_ref().is_some_and(|e| e.description == "revision 1"),
            "trial {trial}: the write did not finish"
        );
        if cached.get_episode(x).await?.map(|e| e.description.clone())
            != want.map(|e| e.description.clone())
        {
            stale += 1;
        }
    }
    Ok((cut, stale))
}
