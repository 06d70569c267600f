//! Model-based, concurrent: several tasks run random writes, batch writes, deletes, gets,
//! batch gets, domain queries and searches (by vector and by text) through one `CachedStorage` over the in-memory reference
//! backend. Each episode id has one writing task, which numbers its versions; every read
//! checks that what it got is no older than the last write of that id acknowledged before
//! the read began (and is a version that was really written).
//!
//! The second property runs the tasks through two caches over one store, each watching
//! the store's change signal and feed with a check before every read (a 1 ns interval): a
//! write through one cache is another writer's to the other, and no read through either
//! may be older than a write acknowledged before it began.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::sync::Arc;

use memory_core::search::EpisodeSearch;
use memory_core::testing::Yielding;
use memory_core::{
    ChangeSignal, Embedding, Episode, EpisodeId, EpisodeQuery, InMemoryStorage, StorageBackend,
    TaskContext, TaskType,
};
use memory_storage_cached::{CacheSettings, CachedStorage};
use parking_lot::Mutex;
use proptest::prelude::*;

const TASKS: usize = 3;
const IDS_PER_TASK: usize = 6;
const DOMAINS: [&str; 3] = ["web", "cli", "db"];

#[derive(Clone, Debug)]
enum Op {
    Store {
        slot: usize,
        domain: usize,
    },
    StoreBatch {
        slots: Vec<usize>,
        domain: usize,
    },
    Delete {
        slot: usize,
    },
    Get {
        id: usize,
    },
    GetMany {
        ids: Vec<usize>,
    },
    Query {
        domain: Option<usize>,
    },
    /// Every match (k above the number of ids), by vector or by text.
    Search {
        domain: Option<usize>,
        text: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let any_id = 0..TASKS * IDS_PER_TASK;
    prop_oneof![
        3 => (0..IDS_PER_TASK, 0..DOMAINS.len()).prop_map(|(slot, domain)| Op::Store { slot, domain }),
        1 => (proptest::sample::subsequence((0..IDS_PER_TASK).collect::<Vec<_>>(), 1..4), 0..DOMAINS.len())
            .prop_map(|(slots, domain)| Op::StoreBatch { slots, domain }),
        1 => (0..IDS_PER_TASK).prop_map(|slot| Op::Delete { slot }),
        4 => any_id.clone().prop_map(|id| Op::Get { id }),
        1 => proptest::collection::vec(any_id, 1..5).prop_map(|ids| Op::GetMany { ids }),
        2 => proptest::option::of(0..DOMAINS.len()).prop_map(|domain| Op::Query { domain }),
        2 => (proptest::option::of(0..DOMAINS.len()), any::<bool>())
            .prop_map(|(domain, text)| Op::Search { domain, text }),
    ]
}

/// One version of an id: `None` deleted (or never written: version 0).
type State = Option<&'static str>;

/// Per id: every version issued (index = version) and the last acknowledged one.
struct History {
    versions: Vec<State>,
    acked: usize,
}

struct Model {
    ids: Vec<EpisodeId>,
    histories: Vec<Mutex<History>>,
}

impl Model {
    fn new() -> Self {
        Model {
            ids: (0..TASKS * IDS_PER_TASK)
                .map(|_| EpisodeId::new())
                .collect(),
            histories: (0..TASKS * IDS_PER_TASK)
                .map(|_| {
                    Mutex::new(History {
                        versions: vec![None],
                        acked: 0,
                    })
                })
                .collect(),
        }
    }

    fn issue(&self, index: usize, state: State) -> usize {
        let mut history = self.histories[index].lock();
        history.versions.push(state);
        history.versions.len() - 1
    }

    fn ack(&self, index: usize, version: usize) {
        let mut history = self.histories[index].lock();
        history.acked = history.acked.max(version);
    }

    fn acked(&self) -> Vec<usize> {
        self.histories.iter().map(|h| h.lock().acked).collect()
    }

    fn index_of(&self, id: EpisodeId) -> Option<usize> {
        self.ids.iter().position(|i| *i == id)
    }

    /// Whether some version from `since` on satisfies `ok`.
    fn seen_since(&self, index: usize, since: usize, ok: impl Fn(usize, State) -> bool) -> bool {
        let history = self.histories[index].lock();
        history
            .versions
            .iter()
            .enumerate()
            .skip(since)
            .any(|(v, s)| ok(v, *s))
    }
}

/// Version `version` of `id`: its description names the version (and holds the word every
/// text search looks for), its embedding moves with the version.
fn episode(id: EpisodeId, version: usize, domain: &str) -> Episode {
    let mut e = Episode::new(
        TaskType::Testing,
        format!("v{version} note"),
        TaskContext::new(domain),
    );
    e.id = id;
    e.embedding = Some(embedding(version));
    e
}

fn embedding(version: usize) -> Embedding {
    Embedding::new(vec![1.0, (version % 7) as f32]).unwrap()
}

fn version_of(e: &Episode) -> usize {
    e.description[1..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Checks a get of `index` that began when `since` was acknowledged.
fn check_get(
    model: &Model,
    index: usize,
    since: usize,
    got: Option<&Episode>,
) -> Result<(), String> {
    let ok = match got {
        Some(e) => {
            let v = version_of(e);
            model.seen_since(index, since, |w, s| {
                w == v && s == Some(e.context.domain.as_str())
            })
        }
        None => model.seen_since(index, since, |_, s| s.is_none()),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "id {index}: read {:?} but version {since} was acknowledged before the read",
            got.map(|e| (version_of(e), e.context.domain.clone()))
        ))
    }
}

async fn run_task(
    store: Arc<dyn StorageBackend>,
    model: Arc<Model>,
    task: usize,
    ops: Vec<Op>,
) -> Result<(), String> {
    let own = |slot: usize| task * IDS_PER_TASK + slot;
    for op in ops {
        match op {
            Op::Store { slot, domain } => {
                let index = own(slot);
                let v = model.issue(index, Some(DOMAINS[domain]));
                store
                    .store_episode(&episode(model.ids[index], v, DOMAINS[domain]))
                    .await
                    .map_err(|e| e.to_string())?;
                model.ack(index, v);
            }
            Op::StoreBatch { slots, domain } => {
                let versions: Vec<(usize, usize)> = slots
                    .iter()
                    .map(|s| (own(*s), model.issue(own(*s), Some(DOMAINS[domain]))))
                    .collect();
                let batch: Vec<Episode> = versions
                    .iter()
                    .map(|(i, v)| episode(model.ids[*i], *v, DOMAINS[domain]))
                    .collect();
                store
                    .store_episodes(&batch)
                    .await
                    .map_err(|e| e.to_string())?;
                for (i, v) in versions {
                    model.ack(i, v);
                }
            }
            Op::Delete { slot } => {
                let index = own(slot);
                let exists = model.histories[index]
                    .lock()
                    .versions
                    .last()
                    .is_some_and(|s| s.is_some());
                let v = model.issue(index, None);
                let result = store.delete_episode(model.ids[index]).await;
                match (exists, result) {
                    (true, Ok(())) => {}
                    (false, Err(e)) if e.kind() == memory_core::ErrorKind::NotFound => {}
                    (exists, other) => {
                        return Err(format!("delete of existing={exists}: {other:?}"));
                    }
                }
                model.ack(index, v);
            }
            Op::Get { id } => {
                let since = model.acked()[id];
                let got = store
                    .get_episode(model.ids[id])
                    .await
                    .map_err(|e| e.to_string())?;
                check_get(&model, id, since, got.as_deref())?;
            }
            Op::GetMany { ids } => {
                let acked = model.acked();
                let wanted: Vec<EpisodeId> = ids.iter().map(|i| model.ids[*i]).collect();
                let got = store
                    .get_episodes(&wanted)
                    .await
                    .map_err(|e| e.to_string())?;
                for (i, item) in ids.iter().zip(got) {
                    check_get(&model, *i, acked[*i], item.as_deref())?;
                }
            }
            Op::Query { domain } => {
                let acked = model.acked();
                let mut query = EpisodeQuery::new().limit(100);
                if let Some(d) = domain {
                    query = query.domain(DOMAINS[d]);
                }
                let page = store
                    .query_episodes(&query)
                    .await
                    .map_err(|e| e.to_string())?;
                let found: Vec<&Episode> = page.items.iter().map(|e| e.as_ref()).collect();
                check_matches(&model, &acked, domain, &found, "query")?;
            }
            Op::Search { domain, text } => {
                let acked = model.acked();
                let query_vector = embedding(3);
                let mut search = if text {
                    EpisodeSearch::text("note", 100)
                } else {
                    EpisodeSearch::new(query_vector.clone(), 100)
                };
                if let Some(d) = domain {
                    search = search.filter(EpisodeQuery::new().domain(DOMAINS[d]));
                }
                let results = store
                    .search_episodes(&search)
                    .await
                    .map_err(|e| e.to_string())?;
                for r in &results {
                    let own = r
                        .item
                        .embedding
                        .as_ref()
                        .ok_or("a result without a vector")?;
                    if !text && (r.score - query_vector.cosine(own)).abs() > 1e-6 {
                        return Err(format!("score {} is not its item's", r.score));
                    }
                }
                let found: Vec<&Episode> = results.iter().map(|r| r.item.as_ref()).collect();
                check_matches(&model, &acked, domain, &found, "search")?;
            }
        }
    }
    Ok(())
}

/// Checks a read of every episode of `domain` (or of all) that began when `acked` were
/// acknowledged: each item found is a version written since, and each item missing has
/// been outside the domain (or deleted) since.
fn check_matches(
    model: &Model,
    acked: &[usize],
    domain: Option<usize>,
    found: &[&Episode],
    what: &str,
) -> Result<(), String> {
    let mut by_index: HashMap<usize, &Episode> = HashMap::new();
    for e in found {
        let index = model.index_of(e.id).ok_or("unknown id in a result")?;
        by_index.insert(index, e);
    }
    for (index, since) in acked.iter().enumerate() {
        let matches = |s: State| s.is_some_and(|d| domain.is_none_or(|q| DOMAINS[q] == d));
        let ok = match by_index.get(&index) {
            Some(e) => {
                let v = version_of(e);
                model.seen_since(index, *since, |w, s| w == v && matches(s))
            }
            None => model.seen_since(index, *since, |_, s| !matches(s)),
        };
        if !ok {
            return Err(format!(
                "{what} {domain:?}: id {index} {} but version {since} was acknowledged before",
                if by_index.contains_key(&index) {
                    "stale in the result"
                } else {
                    "missing from the result"
                }
            ));
        }
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn no_read_is_older_than_an_acknowledged_write(
        tasks in proptest::collection::vec(proptest::collection::vec(op(), 1..30), TASKS),
        write_through in any::<bool>(),
    ) {
        let rt = runtime();
        let settings = CacheSettings::default().budget_bytes(1 << 20).write_through(write_through);
        // Yielding: tasks interleave between a read's answer and the cache storing it.
        let store = Arc::new(CachedStorage::new(Yielding::new(InMemoryStorage::new()), &settings).unwrap());
        let model = Arc::new(Model::new());
        let results = rt.block_on(async {
            let handles: Vec<_> = tasks
                .into_iter()
                .enumerate()
                .map(|(t, ops)| {
                    let store: Arc<dyn StorageBackend> = store.clone();
                    tokio::spawn(run_task(store, model.clone(), t, ops))
                })
                .collect();
            let mut results = Vec::new();
            for h in handles {
                results.push(h.await.unwrap());
            }
            results
        });
        for result in results {
            prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        }
    }
}

/// Runs `tasks` through two caches over one store, task `t` through cache `t % 2`; answers
/// each task's result and the caches' counters.
fn run_two_caches(
    tasks: Vec<Vec<Op>>,
    write_through: bool,
) -> (
    Vec<Result<(), String>>,
    Vec<memory_core::stats::ForeignWriteStats>,
) {
    let rt = runtime();
    let settings = CacheSettings::default()
        .budget_bytes(1 << 20)
        .write_through(write_through)
        .change_check_interval(std::time::Duration::from_nanos(1));
    let store = Arc::new(Yielding::new(InMemoryStorage::new()));
    let caches: Vec<Arc<CachedStorage<Arc<Yielding<InMemoryStorage>>>>> = (0..2)
        .map(|_| {
            let signal: Arc<dyn ChangeSignal> = store.clone();
            Arc::new(
                CachedStorage::new(Arc::clone(&store), &settings)
                    .unwrap()
                    .with_change_signal(signal),
            )
        })
        .collect();
    let model = Arc::new(Model::new());
    let results = rt.block_on(async {
        let handles: Vec<_> = tasks
            .into_iter()
            .enumerate()
            .map(|(t, ops)| {
                let cache: Arc<dyn StorageBackend> = caches[t % 2].clone();
                tokio::spawn(run_task(cache, model.clone(), t, ops))
            })
            .collect();
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap());
        }
        results
    });
    (results, caches.iter().map(|c| c.stats().foreign).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn two_caches_over_one_store_never_read_older_than_an_acknowledged_write(
        tasks in proptest::collection::vec(proptest::collection::vec(op(), 1..30), TASKS),
        write_through in any::<bool>(),
    ) {
        let (results, foreign) = run_two_caches(tasks, write_through);
        for result in results {
            prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        }
        for f in foreign {
            // The feed always reaches back: every foreign write is dropped item by item.
            prop_assert_eq!(f.flushes(), 0, "{:?}", f);
        }
    }
}

/// The two-cache property does exercise the feed: a write through one cache reaches the
/// other as a foreign write, dropped item by item, and the rest stays cached.
#[test]
fn writes_through_one_cache_are_foreign_writes_to_the_other() {
    runtime().block_on(async {
        let settings =
            CacheSettings::default().change_check_interval(std::time::Duration::from_nanos(1));
        let store = Arc::new(InMemoryStorage::new());
        let cache = || {
            let signal: Arc<dyn ChangeSignal> = store.clone();
            CachedStorage::new(Arc::clone(&store), &settings)
                .unwrap()
                .with_change_signal(signal)
        };
        let (a, b) = (cache(), cache());
        let (x, y) = (EpisodeId::new(), EpisodeId::new());
        a.store_episodes(&[episode(x, 1, "web"), episode(y, 1, "cli")])
            .await
            .unwrap();
        for id in [x, y] {
            assert!(b.get_episode(id).await.unwrap().is_some());
        }
        a.store_episode(&episode(x, 2, "web")).await.unwrap();
        let misses = b.stats().episodes.misses;
        assert_eq!(version_of(&b.get_episode(x).await.unwrap().unwrap()), 2);
        assert_eq!(version_of(&b.get_episode(y).await.unwrap().unwrap()), 1);
        let stats = b.stats();
        assert_eq!(
            stats.episodes.misses,
            misses + 1,
            "only x was dropped: {stats:?}"
        );
        assert_eq!(stats.foreign.flushes(), 0, "{stats:?}");
        // b's first check (at its first read) came after the batch: only the rewrite of x
        // is a write it had to catch up on.
        assert_eq!(
            (stats.foreign.writes, stats.foreign.invalidated),
            (1, 1),
            "{stats:?}"
        );
    });
}

/// On a runtime without timers the refresher cannot run; reads check for themselves and
/// still see other writers (no panic reaches the caller).
#[test]
fn a_runtime_without_timers_still_sees_other_writers() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let settings =
            CacheSettings::default().change_check_interval(std::time::Duration::from_nanos(1));
        let store = Arc::new(InMemoryStorage::new());
        let signal: Arc<dyn ChangeSignal> = store.clone();
        let cached = CachedStorage::new(Arc::clone(&store), &settings)
            .unwrap()
            .with_change_signal(signal);
        let x = EpisodeId::new();
        for version in 1..=3 {
            store
                .store_episode(&episode(x, version, "web"))
                .await
                .unwrap();
            for _ in 0..3 {
                tokio::task::yield_now().await;
                let got = cached.get_episode(x).await.unwrap().unwrap();
                assert_eq!(version_of(&got), version);
            }
        }
        assert!(cached.stats().episodes.hits > 0);
    });
}
