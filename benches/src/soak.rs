//! The soak test behind `memory-bench soak`: many concurrent tasks mix reads, queries,
//! single and batch writes through the cached libSQL store on a local file for a set time,
//! checking as they go, against an oracle of every acknowledged write:
//!
//! - a read of any acknowledged episode (any task's) returns a revision at least as new as
//!   the one acknowledged before the read began, and one that was written;
//! - a domain page holds only episodes of that domain, each at a revision at least as new
//!   as the one acknowledged before the query began, and misses none acknowledged before
//!   it began that belongs in its range.
//!
//! At the end a fresh, uncached store must hold exactly the acknowledged writes (nothing
//! lost, nothing duplicated). Latencies are timed around each call (and checked against the
//! call counts of the store's Prometheus metrics); the phases inside the stores come from
//! their trace spans ([`phases`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hdrhistogram::Histogram;
use memory_core::testing::typical::TYPICAL_DOMAINS;
use memory_core::{Episode, EpisodeId, EpisodeQuery, StorageBackend};
use memory_metrics::{Instrumented, OperationMetrics};
use memory_storage_cached::{CacheSettings, CachedStats};
use memory_storage_turso::{TursoConfig, TursoStorage};
use parking_lot::Mutex;
use prometheus::Registry;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::{agent, phases};

/// How long and how wide a soak runs.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// Wall time of the mixed workload.
    pub duration: Duration,
    /// Concurrent tasks.
    pub tasks: usize,
    /// The seed of every task's choices.
    pub seed: u64,
}

/// One operation's latencies, timed by the soak around each call (HDR histogram, 3
/// significant digits), or one phase's from the stores' phase spans.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationFigures {
    /// The operation (`get_episode`, `store_episodes`, ...) or phase (`read_checkout`, ...).
    pub operation: String,
    /// Calls completed.
    pub calls: u64,
    /// Median, in seconds.
    pub p50_seconds: f64,
    /// 99th percentile, in seconds.
    pub p99_seconds: f64,
    /// 99.9th percentile, in seconds.
    pub p999_seconds: f64,
    /// The slowest, in seconds.
    pub max_seconds: f64,
}

/// A histogram of latencies in nanoseconds, 1 ns to 10 minutes, 3 significant digits.
pub fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).context("a histogram")
}

impl OperationFigures {
    /// The figures of histogram `h` (nanoseconds) under the name `operation`.
    pub fn of(operation: &str, h: &Histogram<u64>) -> Self {
        let secs = |nanos: u64| nanos as f64 / 1e9;
        OperationFigures {
            operation: operation.to_string(),
            calls: h.len(),
            p50_seconds: secs(h.value_at_quantile(0.5)),
            p99_seconds: secs(h.value_at_quantile(0.99)),
            p999_seconds: secs(h.value_at_quantile(0.999)),
            max_seconds: secs(h.max()),
        }
    }
}

impl std::fmt::Display for OperationFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |s: f64| s * 1_000.0;
        write!(
            f,
            "{:<18} {:>8} calls  p50 {:>8.3} ms  p99 {:>8.3} ms  p99.9 {:>8.3} ms  max {:>8.3} ms",
            self.operation,
            self.calls,
            ms(self.p50_seconds),
            ms(self.p99_seconds),
            ms(self.p999_seconds),
            ms(self.max_seconds)
        )
    }
}

/// What a soak did and found.
#[derive(Clone, Debug)]
pub struct SoakReport {
    /// Wall time of the workload.
    pub elapsed: Duration,
    /// Operations completed, all kinds.
    pub operations: u64,
    /// Episodes whose last acknowledged revision was checked at the end.
    pub episodes_checked: usize,
    /// Reads during the run checked against the acknowledged writes (any task's episode, at
    /// least the revision acknowledged before the read began).
    pub reads_checked: u64,
    /// Per operation, timed around each call.
    pub by_operation: Vec<OperationFigures>,
    /// Per phase inside the stores (empty if another tracing subscriber was installed).
    pub phases: Vec<OperationFigures>,
    /// The episode cache's hits and misses over the run.
    pub episode_hits: u64,
    /// See `episode_hits`.
    pub episode_misses: u64,
    /// Times the cache dropped everything because the store changed under it.
    pub foreign_flushes: u64,
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "soak: {} operations in {secs:.1} s ({:.0}/s); {} reads and every page checked \
             against the acknowledged writes; {} episodes at the end, each its last \
             acknowledged revision, none extra",
            self.operations,
            self.operations as f64 / secs,
            self.reads_checked,
            self.episodes_checked
        )?;
        writeln!(
            f,
            "  episode cache: {} hits, {} misses; {} flushes for other writers",
            self.episode_hits, self.episode_misses, self.foreign_flushes
        )?;
        for op in &self.by_operation {
            writeln!(f, "  {op}  {:>6.0}/s", op.calls as f64 / secs)?;
        }
        if !self.phases.is_empty() {
            writeln!(f, "  phases (each span, creation to close):")?;
        }
        for phase in &self.phases {
            writeln!(f, "    {phase}")?;
        }
        Ok(())
    }
}

/// Each task writes episode numbers of its own, so that each episode has one writer and its
/// revisions are acknowledged in order.
const TASK_SPAN: u64 = 1 << 32;

/// Page size of the soak's domain queries.
const PAGE: usize = 20;

/// What every task acknowledged, shared: the checks of reads and pages read it.
#[derive(Default)]
struct Oracle {
    /// Every write acknowledged so far gets the next sequence number.
    seq: u64,
    /// Per episode number: (revision, sequence number) of each acknowledged write, in order.
    acked: HashMap<u64, Vec<(u32, u64)>>,
    /// Per episode number: the newest revision a write has begun for.
    started: HashMap<u64, u32>,
    /// The fingerprint of every revision a write has begun for.
    prints: HashMap<(u64, u32), u64>,
    /// Episode numbers by id (registered when their first write begins).
    numbers: HashMap<EpisodeId, u64>,
    /// Acknowledged episode numbers, for picking any of them.
    known: Vec<u64>,
    /// Per domain, the acknowledged episodes in query order key (start, id) with the
    /// sequence number of their first acknowledgement.
    by_domain: HashMap<String, BTreeMap<(i64, [u8; 16]), u64>>,
}

impl Oracle {
    fn begin(&mut self, n: u64, revision: u32, episode: &Episode, print: u64) {
        self.prints.insert((n, revision), print);
        self.numbers.insert(episode.id, n);
        let started = self.started.entry(n).or_insert(revision);
        *started = (*started).max(revision);
    }

    fn acknowledge(&mut self, n: u64, revision: u32, episode: &Episode) {
        let seq = self.seq;
        self.seq += 1;
        let history = self.acked.entry(n).or_default();
        if history.is_empty() {
            self.known.push(n);
            self.by_domain
                .entry(episode.context.domain.clone())
                .or_default()
                .insert(query_key(episode), seq);
        }
        history.push((revision, seq));
    }

    /// The last revision of `n` acknowledged before sequence number `seq`.
    fn acked_before(&self, n: u64, seq: u64) -> Option<u32> {
        self.acked
            .get(&n)?
            .iter()
            .rev()
            .find(|(_, s)| *s < seq)
            .map(|(r, _)| *r)
    }

    fn last(&self) -> HashMap<u64, u32> {
        self.acked
            .iter()
            .filter_map(|(n, h)| h.last().map(|(r, _)| (*n, *r)))
            .collect()
    }
}

/// An episode's position in the query order (newest first: start time, then id).
fn query_key(e: &Episode) -> (i64, [u8; 16]) {
    (e.start_time.as_micros(), *e.id.as_bytes())
}

/// A fingerprint of what tells an episode's revisions apart (its id, its steps, and the
/// reflection's insights, where [`agent::episode`] marks the revision). The run checks
/// revisions with it; the end of the soak compares every episode whole. Building the
/// expected episode for every item read (what the soak did first) was 15 % of the run's
/// CPU, and hashing its encoding still 10 %, taken from the store under test.
fn fingerprint(e: &Episode) -> anyhow::Result<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    e.id.as_bytes().hash(&mut hasher);
    e.steps.len().hash(&mut hasher);
    if let Some(reflection) = &e.reflection {
        reflection.insights.hash(&mut hasher);
    }
    Ok(hasher.finish())
}

/// Whether `got` is episode `n` at a revision from `floor` to `ceiling` (one a write began).
fn at_revision(oracle: &Oracle, print: u64, n: u64, floor: u32, ceiling: u32) -> bool {
    (floor..=ceiling).any(|r| oracle.prints.get(&(n, r)) == Some(&print))
}

/// Runs one soak in a temporary folder.
pub async fn soak(options: &SoakOptions) -> anyhow::Result<SoakReport> {
    ensure!(options.tasks > 0, "a soak needs at least one task");
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let path = dir.path().join("soak.db");
    let registry = Registry::new();
    let metrics = OperationMetrics::register(&registry)?;
    let bare = TursoStorage::open(TursoConfig::local(&path)).await?;
    let store = Arc::new(Instrumented::new(
        bare.cached(&CacheSettings::default())?,
        &metrics,
    ));
    let oracle: Arc<Mutex<Oracle>> = Arc::default();
    let breakdown = phases::start();
    let deadline = Instant::now() + options.duration;
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..options.tasks as u64 {
        let (store, oracle) = (Arc::clone(&store), Arc::clone(&oracle));
        let seed = options.seed ^ task.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        handles.push(tokio::spawn(async move {
            run_task(store.as_ref(), &oracle, task, seed, deadline).await
        }));
    }
    let mut reads_checked = 0;
    let mut latencies = Latencies::new();
    for handle in handles {
        let (checked, timed) = handle.await.context("a soak task panicked")??;
        reads_checked += checked;
        for (op, h) in timed {
            match latencies.get_mut(op) {
                Some(all) => all.add(&h).context("merging latency histograms")?,
                None => {
                    latencies.insert(op, h);
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let recorded = if breakdown {
        phases::take()
    } else {
        Default::default()
    };
    let cache = store.cached_stats();

    let expected = oracle.lock().last();
    let fresh = TursoStorage::open(TursoConfig::local(&path)).await?;
    let stored = fresh.count_episodes().await?;
    ensure!(
        stored == expected.len() as u64,
        "the store holds {stored} episodes, {} were acknowledged",
        expected.len()
    );
    for (n, revision) in &expected {
        let want = agent::episode(*n, *revision);
        match fresh.get_episode(want.id).await? {
            Some(got) if *got == want => {}
            Some(_) => bail!("episode {n}: not its last acknowledged revision {revision}"),
            None => bail!("episode {n}: acknowledged (revision {revision}) but missing"),
        }
    }
    let counted = counted_calls(&registry)?;
    let mut by_operation: Vec<_> = latencies
        .iter()
        .map(|(op, h)| OperationFigures::of(op, h))
        .collect();
    by_operation.sort_by_key(|o| std::cmp::Reverse(o.calls));
    for op in &by_operation {
        let metered = counted.get(op.operation.as_str()).copied().unwrap_or(0);
        ensure!(
            metered == op.calls,
            "{}: the metrics counted {metered} calls, the soak timed {}",
            op.operation,
            op.calls
        );
    }
    let phases = recorded
        .iter()
        .map(|(name, h)| OperationFigures::of(name, h))
        .collect();
    Ok(SoakReport {
        elapsed,
        operations: by_operation.iter().map(|o| o.calls).sum(),
        phases,
        episodes_checked: expected.len(),
        reads_checked,
        by_operation,
        episode_hits: cache.episodes.hits,
        episode_misses: cache.episodes.misses,
        foreign_flushes: cache.foreign.flushes(),
    })
}

/// One task's loop; returns how many reads it checked against the oracle.
async fn run_task(
    store: &dyn StorageBackend,
    oracle: &Mutex<Oracle>,
    task: u64,
    seed: u64,
    deadline: Instant,
) -> anyhow::Result<(u64, Latencies)> {
    let mut latencies = Latencies::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let base = (task + 1) * TASK_SPAN;
    // This task's episodes and their last acknowledged revisions (only it writes them).
    let mut mine: Vec<(u64, u32)> = Vec::new();
    let mut next = base;
    let mut reads_checked = 0;
    while Instant::now() < deadline {
        let roll = rng.random_range(0..100);
        if roll < 40 && !mine.is_empty() {
            // Any task's acknowledged episode, and what was acknowledged before the read.
            let (n, floor) = {
                let oracle = oracle.lock();
                let n = oracle.known[rng.random_range(0..oracle.known.len())];
                (n, oracle.acked_before(n, oracle.seq).unwrap_or_default())
            };
            let id = agent::id_of(n);
            let began = Instant::now();
            let got = store.get_episode(id).await?;
            record(&mut latencies, "get_episode", began)?;
            let print = got.as_deref().map(fingerprint).transpose()?;
            let matches = {
                let oracle = oracle.lock();
                let ceiling = oracle.started.get(&n).copied().unwrap_or(floor);
                print.is_some_and(|p| at_revision(&oracle, p, n, floor, ceiling))
            };
            match got {
                Some(_) if matches => reads_checked += 1,
                Some(_) => bail!("task {task}: episode {n} read older than revision {floor}"),
                None => bail!("task {task}: acknowledged episode {n} missing"),
            }
        } else if roll < 55 {
            let domain = TYPICAL_DOMAINS[rng.random_range(0..TYPICAL_DOMAINS.len())];
            let began = oracle.lock().seq;
            let timed = Instant::now();
            let page = store
                .query_episodes(&EpisodeQuery::new().domain(domain).limit(PAGE))
                .await?;
            record(&mut latencies, "query_episodes", timed)?;
            let prints = page
                .items
                .iter()
                .map(|e| fingerprint(e))
                .collect::<anyhow::Result<Vec<_>>>()?;
            check_page(&oracle.lock(), task, domain, began, &page.items, &prints)?;
        } else if roll < 85 {
            let revise = !mine.is_empty() && rng.random_bool(0.3);
            let (n, revision) = if revise {
                let i = rng.random_range(0..mine.len());
                (mine[i].0, mine[i].1 + 1)
            } else {
                next += 1;
                (next - 1, 0)
            };
            let episode = agent::episode(n, revision);
            let print = fingerprint(&episode)?;
            oracle.lock().begin(n, revision, &episode, print);
            let began = Instant::now();
            store.store_episode(&episode).await?;
            record(&mut latencies, "store_episode", began)?;
            oracle.lock().acknowledge(n, revision, &episode);
            match mine.iter_mut().find(|(m, _)| *m == n) {
                Some(entry) => entry.1 = revision,
                None => mine.push((n, revision)),
            }
        } else {
            let size = rng.random_range(2..=8);
            let batch: Vec<_> = (next..next + size).map(|n| agent::episode(n, 0)).collect();
            let prints = batch
                .iter()
                .map(fingerprint)
                .collect::<anyhow::Result<Vec<_>>>()?;
            {
                let mut oracle = oracle.lock();
                for ((n, e), print) in (next..).zip(&batch).zip(prints) {
                    oracle.begin(n, 0, e, print);
                }
            }
            let began = Instant::now();
            store.store_episodes(&batch).await?;
            record(&mut latencies, "store_episodes", began)?;
            let mut oracle = oracle.lock();
            for (n, e) in (next..).zip(&batch) {
                oracle.acknowledge(n, 0, e);
                mine.push((n, 0));
            }
            next += size;
        }
    }
    Ok((reads_checked, latencies))
}

/// Per operation, latencies in nanoseconds.
type Latencies = BTreeMap<&'static str, Histogram<u64>>;

fn record(latencies: &mut Latencies, op: &'static str, began: Instant) -> anyhow::Result<()> {
    let nanos = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if !latencies.contains_key(op) {
        latencies.insert(op, latency_histogram()?);
    }
    if let Some(h) = latencies.get_mut(op) {
        h.saturating_record(nanos.max(1));
    }
    Ok(())
}

/// A page of `domain` read by a query that began at sequence number `began`: every item of
/// that domain, written (not invented), at a revision no older than the one acknowledged
/// before the query began; and every episode acknowledged before it began that belongs
/// within the page's range is on it.
fn check_page(
    oracle: &Oracle,
    task: u64,
    domain: &str,
    began: u64,
    items: &[Arc<Episode>],
    prints: &[u64],
) -> anyhow::Result<()> {
    let mut on_page = HashSet::with_capacity(items.len());
    for (item, print) in items.iter().zip(prints) {
        ensure!(
            item.context.domain == domain,
            "task {task}: a query for {domain} returned another domain"
        );
        let n = *oracle
            .numbers
            .get(&item.id)
            .with_context(|| format!("task {task}: a page holds an episode nobody wrote"))?;
        let floor = oracle.acked_before(n, began).unwrap_or_default();
        let ceiling = oracle.started.get(&n).copied().unwrap_or(floor);
        ensure!(
            at_revision(oracle, *print, n, floor, ceiling),
            "task {task}: a page of {domain} holds episode {n} older than revision {floor}"
        );
        on_page.insert(query_key(item));
    }
    // The page's range: everything at or above its last item, or all of the domain when the
    // page is not full.
    let lowest = match items.last() {
        Some(last) if items.len() == PAGE => query_key(last),
        _ => (i64::MIN, [0; 16]),
    };
    if let Some(acked) = oracle.by_domain.get(domain) {
        for (key, seq) in acked.range(lowest..) {
            ensure!(
                *seq >= began || on_page.contains(key),
                "task {task}: a page of {domain} misses an episode acknowledged before the \
                 query began"
            );
        }
    }
    Ok(())
}

/// Calls per operation (successful ones) as the metrics counted them; fails if any operation
/// failed.
fn counted_calls(registry: &Registry) -> anyhow::Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    for family in registry.gather() {
        match family.name() {
            "memory_operation_errors_total" => {
                let errors: f64 = family
                    .get_metric()
                    .iter()
                    .map(|m| m.get_counter().get_value())
                    .sum();
                ensure!(errors == 0.0, "{errors} operations failed during the soak");
            }
            "memory_operation_duration_seconds" => {
                for metric in family.get_metric() {
                    let label = |name: &str| {
                        metric
                            .get_label()
                            .iter()
                            .find(|l| l.name() == name)
                            .map(|l| l.value().to_string())
                            .unwrap_or_default()
                    };
                    if label("outcome") == "ok" {
                        *out.entry(label("operation")).or_default() +=
                            metric.get_histogram().get_sample_count();
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
