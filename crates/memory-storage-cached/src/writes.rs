//! How a write goes through the caches, so that a caller who drops the write's future (a
//! timeout, `select!`, a cancelled task) never leaves the caches serving what the write
//! replaced: the write runs to its end whatever the caller does (on a task of its own once
//! the caller stops waiting), and the cache bookkeeping runs after the store answered,
//! exactly as for a write the caller waited for.
//!
//! Order inside one write: write-through tickets (before the store can change), the store's
//! write (as one of this cache's own, for the change check), then the bookkeeping: the
//! query guard, the written entries (cached anew or removed), the query dependencies the
//! write affects. The bookkeeping runs after a failed write too: a remote write may have
//! committed before its answer was lost.

use std::sync::Arc;

use memory_cache_adaptive::{AdaptiveCache, LoadTicket, QueryCache};
use memory_core::{
    Episode, EpisodeId, FinishOnDrop, Heuristic, Pattern, PatternId, Result, StorageBackend,
};

use crate::deps::{self, Dep};
use crate::freshness::Freshness;
use crate::store::Shared;

impl<S: StorageBackend> Shared<S> {
    /// Before a read: flush if another writer changed the store (at most once per interval),
    /// and keep a refresher running ahead of reads (on the runtime, when there is one).
    pub(crate) async fn fresh(self: &Arc<Self>)
    where
        S: 'static,
    {
        let Some(freshness) = self.freshness.get() else {
            return;
        };
        if freshness.ensure(self.as_ref()).await {
            let started = tokio::runtime::Handle::try_current().map(|runtime| {
                runtime.spawn(Freshness::refresh(
                    Arc::downgrade(self),
                    |shared: &Shared<S>| shared.freshness.get(),
                ))
            });
            if started.is_err() {
                freshness.refresher_not_started();
            }
        }
    }

    /// Runs a write of the inner store: with a change signal, as one of this cache's own
    /// writes (so the store position it produces is not taken for another writer's).
    async fn write<T>(&self, write: impl Future<Output = Result<T>>) -> Result<T> {
        match self.freshness.get() {
            Some(freshness) => {
                let _in_flight = freshness.before_write().await;
                freshness.recording(write).await
            }
            None => write.await,
        }
    }

    /// Write-through tickets for `ids`, taken before a write starts (none when off).
    fn tickets<'c, I, T>(
        &self,
        cache: &'c AdaptiveCache<I, Arc<T>>,
        ids: impl Iterator<Item = I>,
    ) -> Vec<LoadTicket<'c>>
    where
        I: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        if self.write_through {
            ids.map(|id| cache.begin_load(&id)).collect()
        } else {
            Vec::new()
        }
    }

    /// Stores `episodes` (one item or a batch) and updates the caches.
    pub(crate) async fn store_episodes_with(
        &self,
        episodes: Vec<Episode>,
        call: Call,
    ) -> Result<()> {
        let target = (&self.episodes, &self.episode_queries, Dep::EpisodeWrites);
        let tickets = self.tickets(target.0, episodes.iter().map(|e| e.id));
        let write = one_or_many(
            call,
            &episodes,
            |item| self.inner.store_episode(item),
            |all| self.inner.store_episodes(all),
        );
        let result = self.write(write).await;
        let deps =
            deps::stored_episodes(episodes.iter().map(|e| (e.id, e.context.domain.as_str())));
        stored(target, episodes, &deps, tickets, result.is_ok(), |e| e.id);
        result
    }

    /// Deletes episodes (one or a batch) and updates the caches.
    pub(crate) async fn delete_episodes_with(&self, ids: Vec<EpisodeId>, call: Call) -> Result<()> {
        let write = one_or_many(
            call,
            &ids,
            |id| self.inner.delete_episode(*id),
            |all| self.inner.delete_episodes(all),
        );
        let target = (&self.episodes, &self.episode_queries, Dep::EpisodeWrites);
        self.delete_through(target, &ids, Dep::Episode, write).await
    }

    /// Stores `patterns` (one item or a batch) and updates the caches.
    pub(crate) async fn store_patterns_with(
        &self,
        patterns: Vec<Pattern>,
        call: Call,
    ) -> Result<()> {
        let target = (&self.patterns, &self.pattern_queries, Dep::PatternWrites);
        let tickets = self.tickets(target.0, patterns.iter().map(|p| p.id));
        let write = one_or_many(
            call,
            &patterns,
            |item| self.inner.store_pattern(item),
            |all| self.inner.store_patterns(all),
        );
        let result = self.write(write).await;
        let deps = deps::stored_patterns(patterns.iter().map(|p| (p.id, p.domain.as_str())));
        stored(target, patterns, &deps, tickets, result.is_ok(), |p| p.id);
        result
    }

    /// Deletes patterns (one or a batch) and updates the caches.
    pub(crate) async fn delete_patterns_with(&self, ids: Vec<PatternId>, call: Call) -> Result<()> {
        let write = one_or_many(
            call,
            &ids,
            |id| self.inner.delete_pattern(*id),
            |all| self.inner.delete_patterns(all),
        );
        let target = (&self.patterns, &self.pattern_queries, Dep::PatternWrites);
        self.delete_through(target, &ids, Dep::Pattern, write).await
    }

    /// A delete of `ids` made by `write`, and the bookkeeping after it (`dep` names the
    /// query dependency of one item).
    async fn delete_through<I, T, Q, R>(
        &self,
        (entities, queries, guard): Target<'_, I, T, Q, R>,
        ids: &[I],
        dep: fn(I) -> Dep,
        write: impl Future<Output = Result<()>>,
    ) -> Result<()>
    where
        I: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        T: Send + Sync + 'static,
        Q: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        R: Clone + Send + Sync + 'static,
    {
        let result = self.write(write).await;
        let deps: Vec<Dep> = ids.iter().cloned().map(dep).collect();
        written(entities, queries, guard, ids.iter().cloned(), &deps, None);
        result
    }

    /// Stores `heuristics` with `store`; heuristics have no query cache, only their entries
    /// change.
    pub(crate) async fn store_heuristics_with(
        &self,
        heuristics: Vec<Heuristic>,
        call: Call,
    ) -> Result<()> {
        let tickets = self.tickets(&self.heuristics, heuristics.iter().map(|h| h.id));
        let result = self
            .write(one_or_many(
                call,
                &heuristics,
                |item| self.inner.store_heuristic(item),
                |all| self.inner.store_heuristics(all),
            ))
            .await;
        let ids: Vec<_> = heuristics.iter().map(|h| h.id).collect();
        entities_written(
            &self.heuristics,
            ids.into_iter(),
            through(tickets, result.is_ok(), heuristics),
        );
        result
    }

    /// Deletes heuristics with `delete` and removes their entries.
    pub(crate) async fn delete_heuristics_with(
        &self,
        ids: Vec<memory_core::HeuristicId>,
        call: Call,
    ) -> Result<()> {
        let result = self
            .write(one_or_many(
                call,
                &ids,
                |item| self.inner.delete_heuristic(*item),
                |all| self.inner.delete_heuristics(all),
            ))
            .await;
        for id in &ids {
            self.heuristics.invalidate(id);
        }
        result
    }
}

/// An entity cache, the query cache over the same kind and the guard every write of that
/// kind bumps.
type Target<'a, I, T, Q, R> = (&'a AdaptiveCache<I, Arc<T>>, &'a QueryCache<Q, Dep, R>, Dep);

/// The store's single-item call for a one-item write made as one, else its batch call.
async fn one_or_many<'a, T, A, B>(
    call: Call,
    items: &'a [T],
    one: impl FnOnce(&'a T) -> A,
    many: impl FnOnce(&'a [T]) -> B,
) -> Result<()>
where
    A: Future<Output = Result<()>>,
    B: Future<Output = Result<()>>,
{
    match (call, items) {
        (Call::One, [item]) => one(item).await,
        (_, all) => many(all).await,
    }
}

/// Which of the store's calls a write makes: the single-item one or the batch one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    One,
    Many,
}

/// Runs `work` (a write and its cache bookkeeping) in the caller's task; a caller that
/// stops waiting leaves it to finish on a task of its own ([`FinishOnDrop`]). Outside a
/// tokio runtime a write dropped half-way clears every cache instead (what the write
/// changed is then unknown, and a store that needs no runtime has stopped writing by then).
pub(crate) async fn detached<S, T, Fut>(shared: &Arc<Shared<S>>, work: Fut) -> Result<T>
where
    S: StorageBackend + 'static,
    T: Send + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let shared = Arc::clone(shared);
    FinishOnDrop::new(work)
        .or_else(move || shared.clear())
        .await
}

/// What a successful write-through hands the entity cache: its tickets (taken before the
/// write) and the written values, in the order of the written ids.
type Through<'c, T> = Option<(Vec<LoadTicket<'c>>, Vec<Arc<T>>)>;

/// The write-through for `items` if the write succeeded and tickets were taken.
fn through<T>(tickets: Vec<LoadTicket<'_>>, ok: bool, items: Vec<T>) -> Through<'_, T> {
    (ok && !tickets.is_empty()).then(|| (tickets, items.into_iter().map(Arc::new).collect()))
}

/// After a store of `items` (whose ids `id` gives, invalidating `deps`): the written entries
/// cached anew (the write-through, if it succeeded and `tickets` were taken) or removed,
/// and the query dependencies bumped.
fn stored<I, T, Q, R>(
    (entities, queries, guard): Target<'_, I, T, Q, R>,
    items: Vec<T>,
    deps: &[Dep],
    tickets: Vec<LoadTicket<'_>>,
    ok: bool,
    id: impl Fn(&T) -> I,
) where
    I: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
    Q: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
{
    let ids: Vec<I> = items.iter().map(id).collect();
    written(
        entities,
        queries,
        guard,
        ids.into_iter(),
        deps,
        through(tickets, ok, items),
    );
}

/// After a write of `ids`: the query guard first (a query read that lands after it is not
/// stored, and one that landed before it marked dependencies bumped below), then the
/// written ids' entries (cached anew with `through`, else removed), then the query
/// dependencies the write affects.
fn written<I, T, Q, R>(
    entities: &AdaptiveCache<I, Arc<T>>,
    queries: &QueryCache<Q, Dep, R>,
    guard: Dep,
    ids: impl Iterator<Item = I>,
    deps: &[Dep],
    through: Through<'_, T>,
) where
    I: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
    Q: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
{
    queries.invalidate(&guard);
    entities_written(entities, ids, through);
    for dep in deps {
        queries.invalidate(dep);
    }
}

/// The written ids' entries: cached anew with `through`, else removed.
fn entities_written<I, T>(
    entities: &AdaptiveCache<I, Arc<T>>,
    ids: impl Iterator<Item = I>,
    through: Through<'_, T>,
) where
    I: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    match through {
        Some((tickets, values)) => {
            // One call for the whole batch: its ids may share fence stripes.
            entities.complete_writes(
                ids.zip(tickets)
                    .zip(values)
                    .map(|((id, ticket), value)| (id, ticket, value)),
            );
        }
        None => {
            for id in ids {
                entities.invalidate(&id);
            }
        }
    }
}
