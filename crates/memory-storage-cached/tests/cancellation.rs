//! A caller that drops a write future (a timeout, `select!`, a cancelled task) at any await
//! point never leaves the cache serving what the write replaced, nor a cached page the write
//! changed. The store yields to the scheduler before and after every call, and each write
//! is cut off after every possible number of polls (0, 1, 2, … until it completes by
//! itself); once the store has settled, every cached read must equal the store's truth.
//! The cache has no change signal and a long check interval: nothing else would ever repair
//! a stale entry.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use memory_core::testing::Yielding;
use memory_core::{
    ChangeSignal, Episode, EpisodeId, EpisodeQuery, InMemoryStorage, StorageBackend, TaskContext,
    TaskType,
};
use memory_storage_cached::{CacheSettings, CachedStorage};

type Write<'a> = Pin<Box<dyn Future<Output = memory_core::Result<()>> + Send + 'a>>;

fn episode(id: EpisodeId, revision: usize, domain: &str) -> Episode {
    let mut e = Episode::new(
        TaskType::Testing,
        format!("revision {revision}"),
        TaskContext::new(domain),
    );
    e.id = id;
    e
}

/// Polls `fut` at most `polls` times; whether it completed.
async fn poll_at_most(fut: &mut Write<'_>, polls: usize) -> bool {
    for _ in 0..polls {
        let ready = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_ready())).await;
        if ready {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
}

/// The writes under test, each against episode `x` (cached at revision 0 in domain "a")
/// and `y` (stored, not cached).
fn writes<'a>(
    cached: &'a dyn StorageBackend,
    x: EpisodeId,
    y: EpisodeId,
    which: usize,
) -> Write<'a> {
    match which {
        0 => Box::pin(async move { cached.store_episode(&episode(x, 1, "a")).await }),
        1 => Box::pin(async move {
            cached
                .store_episodes(&[episode(x, 1, "a"), episode(y, 1, "a")])
                .await
        }),
        2 => Box::pin(async move { cached.delete_episode(x).await }),
        3 => Box::pin(async move { cached.delete_episodes(&[x, y]).await }),
        _ => Box::pin(async move { cached.store_episode(&episode(x, 1, "b")).await }),
    }
}
const WRITES: usize = 5;

// One thread: a write on its own task advances exactly when the caller yields, so the cut
// points step through the write's await points one by one.
#[tokio::test]
async fn a_write_cut_off_after_any_number_of_polls_leaves_no_stale_entry() {
    let settings = CacheSettings::default()
        .budget_bytes(1 << 20)
        .change_check_interval(Duration::from_secs(3_600));
    let page_a = EpisodeQuery::new().domain("a").limit(10);
    let mut cut_points = 0;
    for (which, signal) in (0..WRITES).flat_map(|w| [(w, false), (w, true)]) {
        for polls in 0.. {
            let truth = Arc::new(InMemoryStorage::new());
            let mut cached =
                CachedStorage::new(Yielding::fixed(Arc::clone(&truth), 2), &settings).unwrap();
            if signal {
                // Own writes recorded through the signal must not hide a cut-off one.
                cached = cached.with_change_signal(Arc::clone(&truth) as Arc<dyn ChangeSignal>);
            }
            let (x, y) = (EpisodeId::new(), EpisodeId::new());
            cached.store_episode(&episode(x, 0, "a")).await.unwrap();
            truth.store_episode(&episode(y, 0, "a")).await.unwrap();
            for _ in 0..2 {
                cached.get_episode(x).await.unwrap();
                cached.query_episodes(&page_a).await.unwrap();
            }
            let mut write = writes(&cached, x, y, which);
            let completed = poll_at_most(&mut write, polls).await;
            drop(write);
            // Whatever was started finishes (on its own task); give it the time.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let want = truth.get_episode(x).await.unwrap();
            let got = cached.get_episode(x).await.unwrap();
            assert_eq!(
                got.as_deref().map(|e| (&e.description, &e.context.domain)),
                want.as_deref().map(|e| (&e.description, &e.context.domain)),
                "write {which} (signal: {signal}) cut off after {polls} polls: the cache disagrees with the store"
            );
            let want: Vec<_> = truth.query_episodes(&page_a).await.unwrap().items;
            let got: Vec<_> = cached.query_episodes(&page_a).await.unwrap().items;
            assert_eq!(
                got.iter()
                    .map(|e| (e.id, &e.description))
                    .collect::<Vec<_>>(),
                want.iter()
                    .map(|e| (e.id, &e.description))
                    .collect::<Vec<_>>(),
                "write {which} (signal: {signal}) cut off after {polls} polls: the cached page disagrees"
            );
            cut_points += 1;
            if completed {
                break;
            }
        }
    }
    println!(
        "{cut_points} cut points checked over {WRITES} kinds of write, with and without a change signal"
    );
}
