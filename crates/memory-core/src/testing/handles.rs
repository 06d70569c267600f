//! Several handles on one store in one process: a write through one is seen through
//! another within the change-check interval, by gets and by searches. Every backend's tests run
//! [`stale_reads`] over the pairings it offers (two caches on one handle, a cache beside
//! its bare handle, caches on clones).

use std::time::Duration;

use anyhow::ensure;

use crate::search::{EpisodeSearch, Scored};
use crate::{Embedding, Episode, EpisodeId, StorageBackend, TaskContext, TaskType};

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

/// Episode `id` at `revision` as [`revision`] makes it, findable: its description also
/// holds a word of its own and its embedding points one way at revision 0 and at right
/// angles to that later.
fn searchable(id: EpisodeId, revision: usize) -> Episode {
    let mut e = self::revision(id, revision);
    e.description = format!("{} {}", e.description, word(id));
    let values = if revision == 0 {
        [1.0, 0.0]
    } else {
        [0.0, 1.0]
    };
    e.embedding = Embedding::new(values.to_vec()).ok();
    e
}

fn word(id: EpisodeId) -> String {
    format!("w{}", id.to_string().replace('-', ""))
}

/// What `reader` answers for `id`: its description by get, by a text search for its word
/// and by the nearest to revision 0's vector (`None` where it is not found).
async fn seen(reader: &dyn StorageBackend, id: EpisodeId) -> anyhow::Result<[Option<String>; 3]> {
    let description = |found: Vec<Scored<Episode>>| {
        found
            .into_iter()
            .find(|s| s.item.id == id)
            .map(|s| s.item.description.clone())
    };
    // Searches first: a get's change check would otherwise do theirs.
    let by_text = reader
        .search_episodes(&EpisodeSearch::text(word(id), 1))
        .await?;
    let nearest = Embedding::new(vec![1.0, 0.0])?;
    let by_vector = reader
        .search_episodes(&EpisodeSearch::new(nearest, 1))
        .await?;
    let got = reader.get_episode(id).await?.map(|e| e.description.clone());
    Ok([got, description(by_text), description(by_vector)])
}

/// `trials` times: writes revision 0 through `writer`, lets `reader` cache it (two rounds of
/// a get, a text search and a similarity search), writes revision 1 through `writer`, waits
/// three `interval`s and reads through `reader` again. Returns how many of those last rounds
/// were stale (an answer holding revision 0, or a get or text search not finding it).
pub async fn stale_reads(
    writer: &dyn StorageBackend,
    reader: &dyn StorageBackend,
    interval: Duration,
    trials: usize,
) -> anyhow::Result<usize> {
    let mut stale = 0;
    for trial in 0..trials {
        let id = EpisodeId::new();
        let first = searchable(id, 0);
        writer.store_episode(&first).await?;
        tokio::time::sleep(interval * 3).await;
        for _ in 0..2 {
            let all = seen(reader, id).await?;
            ensure!(
                all.iter()
                    .all(|d| d.as_deref() == Some(first.description.as_str())),
                "trial {trial}: the first revision not seen: {all:?}"
            );
        }
        let second = searchable(id, 1);
        writer.store_episode(&second).await?;
        tokio::time::sleep(interval * 3).await;
        let [got, by_text, by_vector] = seen(reader, id).await?;
        let now = Some(second.description.as_str());
        if got.as_deref() != now
            || by_text.as_deref() != now
            || by_vector.is_some_and(|d| d != second.description)
        {
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
