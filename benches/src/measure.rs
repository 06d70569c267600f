//! What `memory-bench gate` measures and how two measurements are compared.
//!
//! A measurement holds two kinds of figure (see [`crate::gate`] for the decisions):
//!
//! - deterministic figures from one quick standard run on the seeded workload (the episode
//!   and query-result hit ratios, the statement-cache hit ratio and the statements
//!   prepared), the network round trips of a warm batch and a warm get against a real sqld
//!   (counted by the server), and the instructions of the CPU-bound hot paths under callgrind
//!   ([`crate::instructions`]);
//! - timing figures, each a ratio of the store's time to raw libsql's measured in the same
//!   repetition on the same data (raw and store calls interleaved in blocks, so that a
//!   slow moment of the machine lands on both), repeated [`GateOptions::reps`] times.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use hdrhistogram::Histogram;
use memory_core::{Episode, EpisodeQuery, StorageBackend};
use memory_storage_cached::CacheSettings;
use memory_storage_turso::{TursoConfig, TursoStorage};
use serde::{Deserialize, Serialize};

use crate::agent::{self, AgentWorkload};
use crate::gate::{self, Verdict};
use crate::instructions::{self, HotPath};
use crate::raw::Raw;
use crate::replay;
use crate::run::{RunOptions, nanos, standard_run};
use crate::sqld::Sqld;

/// A deliberately weakened configuration, to show that the gate catches it. The first two
/// switch a whole feature off; the others are the size of a regression a change could
/// bring without anyone noticing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Weakening {
    /// The shipped configuration.
    #[default]
    None,
    /// No entity or query-result cache.
    EntityCache,
    /// No prepared-statement cache: every statement is prepared again.
    StatementCache,
    /// Every cached get takes 10 % longer: after the read, a busy wait of a tenth of the
    /// time the read took.
    SlowCachedGet,
    /// Every libSQL get (without the entity cache) takes 10 % longer, the same way.
    SlowStoreGet,
    /// One get in three makes one more round trip to the server (a second lookup).
    ExtraRoundTrip,
    /// The run prepares [`EXTRA_SHAPES`] query shapes its workload does not use: about
    /// 10 % more statements prepared.
    ExtraStatements,
    /// The caches get [`SMALLER_CACHE`] of their budget: as if they held less in the same
    /// memory (a hit-ratio loss of about one point).
    SmallerCache,
}

/// Query shapes [`Weakening::ExtraStatements`] adds to the gate's run (one prepared
/// statement each on the one connection a sequential run uses).
pub const EXTRA_SHAPES: usize = 4;

/// The share of the budget [`Weakening::SmallerCache`] leaves the caches.
pub const SMALLER_CACHE: f64 = 0.85;

/// Which layer a get goes to, for the weakenings that slow one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// The cached store (the read is expected to be a hit).
    Cached,
    /// The libSQL store itself.
    Store,
}

/// The gate's budget for its hit-ratio runs, as a share of the data the run touches: the
/// cache must evict, or a broken admission or eviction policy would not show.
pub const GATE_BUDGET_SHARE: f64 = 0.25;

/// How much the gate measures.
#[derive(Clone, Debug)]
pub struct GateOptions {
    /// Timing repetitions.
    pub reps: usize,
    /// Episodes in each timing repetition's data set.
    pub history: u64,
    /// The configuration under test.
    pub weaken: Weakening,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions {
            reps: 20,
            history: 2_000,
            weaken: Weakening::None,
        }
    }
}

impl Weakening {
    /// The cached store's settings under this weakening.
    pub fn cache(self) -> CacheSettings {
        match self {
            Weakening::EntityCache => CacheSettings::disabled(),
            _ => CacheSettings::default(),
        }
    }

    /// `settings` with this weakening's budget.
    pub fn budget(self, settings: CacheSettings) -> CacheSettings {
        match self {
            Weakening::SmallerCache => {
                let budget = (settings.budget_bytes as f64 * SMALLER_CACHE) as u64;
                settings.budget_bytes(budget)
            }
            _ => settings,
        }
    }

    /// `config` under this weakening.
    pub fn store(self, config: TursoConfig) -> TursoConfig {
        match self {
            Weakening::StatementCache => config.statement_cache_capacity(0),
            _ => config,
        }
    }

    /// Reads `id` (which must exist) from `store`, a `layer` store, as this configuration
    /// reads it; `call` numbers the calls of one loop from 0.
    pub async fn get(
        self,
        layer: Layer,
        store: &dyn StorageBackend,
        id: memory_core::EpisodeId,
        call: usize,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        replay::get_existing(store, id).await?;
        match (self, layer) {
            (Weakening::SlowCachedGet, Layer::Cached) | (Weakening::SlowStoreGet, Layer::Store) => {
                let until = Instant::now() + started.elapsed() / 10;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            (Weakening::ExtraRoundTrip, Layer::Store) if call % 3 == 2 => {
                replay::get_existing(store, id).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Queries of shapes the agent workload never runs (tag, outcome and metadata filters), for
/// [`Weakening::ExtraStatements`].
pub fn extra_shapes() -> Vec<EpisodeQuery> {
    use memory_core::OutcomeKind;
    let shapes = [
        EpisodeQuery::new().tag("gate"),
        EpisodeQuery::new().outcome(OutcomeKind::Success),
        EpisodeQuery::new().metadata("gate", "1"),
        EpisodeQuery::new()
            .tag("gate")
            .outcome(OutcomeKind::Failure),
    ];
    debug_assert_eq!(shapes.len(), EXTRA_SHAPES);
    shapes.into_iter().map(|q| q.limit(5)).collect()
}

/// A figure that is the same on every run of the same build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deterministic {
    /// The value.
    pub value: f64,
    /// The absolute change towards worse that is still a pass.
    pub tolerance: f64,
    /// Whether a larger value is better.
    pub higher_is_better: bool,
}

/// One gate measurement (the JSON the gate saves and compares).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Logical cores of the machine.
    pub cores: usize,
    /// Deterministic figures by name.
    pub deterministic: BTreeMap<String, Deterministic>,
    /// Timing ratios by name (lower is better), one per repetition.
    pub timing: BTreeMap<String, Vec<f64>>,
}

/// Get and query calls timed per side in each repetition.
const CALLS: usize = 2_000;
/// Calls per interleaved block.
const BLOCK: usize = 100;

/// Measures everything the gate compares.
pub async fn measure(options: &GateOptions, progress: bool) -> anyhow::Result<Measurement> {
    let mut run_options = RunOptions::quick();
    run_options.progress = progress;
    let settings = options.weaken.cache();
    run_options.cache = if settings.enabled {
        options
            .weaken
            .budget(evicting_budget(&run_options, settings))
    } else {
        settings
    };
    run_options.statement_cache = options.weaken != Weakening::StatementCache;
    run_options.extra_shapes = options.weaken == Weakening::ExtraStatements;
    let run = standard_run(&run_options).await?;
    anyhow::ensure!(
        !run_options.cache.enabled || run.episode_budget_share <= 1.0 / 3.0,
        "the gate's agent run must evict: its episode budget is {:.0} % of the data",
        run.episode_budget_share * 100.0
    );
    let zipf = zipf_hit_ratio(options.weaken).await?;
    let mut out = Measurement {
        cores: run.cores,
        ..Measurement::default()
    };
    let mut put = |name: &str, value: f64, tolerance: f64, higher_is_better: bool| {
        out.deterministic.insert(
            name.to_string(),
            Deterministic {
                value,
                tolerance,
                higher_is_better,
            },
        );
    };
    // Deterministic for the seeds: repeated runs of one build agree to the last digit.
    put(
        "episode hit ratio (agent, evicting)",
        run.episode_hit_ratio,
        0.0005,
        true,
    );
    put(
        "query hit ratio (agent, evicting)",
        run.query_hit_ratio,
        0.0005,
        true,
    );
    put(
        "episode hit ratio (Zipf 0.99, 10 % held)",
        zipf,
        0.0005,
        true,
    );
    put("statement hit ratio", run.statement_hit_ratio, 0.001, true);
    // The same on every run: the sequential run prepares each shape on one connection.
    let prepared = run.statements_prepared as f64;
    put("statements prepared", prepared, prepared * 0.05, false);

    let trips = round_trips(options).await.context(
        "counting round trips against sqld (scripts/install-sqld.sh installs it; or set SQLD_BIN)",
    )?;
    // Whole requests counted by the server over many calls: a tenth of a trip per call
    // more is a real change.
    put("round trips per 100-episode batch", trips.batch, 0.1, false);
    put("round trips per get", trips.get, 0.1, false);

    for path in HotPath::ALL {
        let per_op = instructions::per_operation(path, options.weaken)
            .with_context(|| format!("counting {}", path.figure()))?;
        put(path.figure(), per_op, per_op * path.tolerance(), false);
    }

    for rep in 0..options.reps {
        let dir = tempfile::tempdir().context("a temporary folder")?;
        let sample = timing_sample(dir.path(), options)
            .await
            .with_context(|| format!("timing repetition {rep}"))?;
        for (name, ratio) in sample {
            out.timing.entry(name.to_string()).or_default().push(ratio);
        }
    }
    Ok(out)
}

/// The settings whose episode cache holds [`GATE_BUDGET_SHARE`] of the episodes the agent
/// run of `options` touches.
fn evicting_budget(options: &RunOptions, settings: CacheSettings) -> CacheSettings {
    let ops =
        AgentWorkload::new(options.history, crate::run::AGENT_SEED).sessions(2 * options.sessions);
    let overhead = memory_cache_adaptive::CacheConfig::new(1).entry_overhead;
    let touched = crate::curves::distinct_bytes(&AgentWorkload::events(&ops, overhead));
    let episodes = (touched as f64 * GATE_BUDGET_SHARE) as u64;
    let per_mille = memory_storage_cached::CachePart::Episodes.per_mille();
    settings.budget_bytes(episodes * 1_000 / per_mille)
}

/// Zipf workload episodes in the gate's Zipf run, and reads to warm up (as many counted).
const ZIPF_EPISODES: u64 = 20_000;
const ZIPF_READS: usize = 200_000;

/// The episode hit ratio of the cached store (over the in-memory store: the policy is
/// what is measured) on Zipf 0.99 reads with room for a tenth of the episodes.
pub async fn zipf_hit_ratio(weaken: Weakening) -> anyhow::Result<f64> {
    use crate::zipf::ZipfWorkload;
    let settings = weaken.cache();
    let per_entry = crate::agent::cached_weight(&ZipfWorkload::episode(0))
        + memory_cache_adaptive::CacheConfig::new(1).entry_overhead;
    let per_mille = memory_storage_cached::CachePart::Episodes.per_mille();
    let budget = (ZIPF_EPISODES / 10 * per_entry).div_ceil(per_mille) * 1_000;
    let settings = weaken.budget(settings.budget_bytes(budget));
    if !settings.enabled {
        return Ok(0.0); // no cache, no hits
    }
    let store = memory_core::InMemoryStorage::new();
    replay::load(&store, (0..ZIPF_EPISODES).map(ZipfWorkload::episode), 1_000).await?;
    let cached = memory_storage_cached::CachedStorage::new(store, &settings)?;
    let ids: Vec<_> = (0..ZIPF_EPISODES).map(ZipfWorkload::id_of).collect();
    let reads = ZipfWorkload::new(ZIPF_EPISODES, 0.99, 42).reads(2 * ZIPF_READS);
    for &n in &reads[..ZIPF_READS] {
        replay::get_existing(&cached, ids[n as usize]).await?;
    }
    let before = cached.stats();
    for &n in &reads[ZIPF_READS..] {
        replay::get_existing(&cached, ids[n as usize]).await?;
    }
    let after = cached.stats();
    Ok(crate::run::ratio(
        crate::run::delta(after.episodes.hits, before.episodes.hits)?,
        crate::run::delta(after.episodes.misses, before.episodes.misses)?,
    ))
}

/// Network round trips of warm operations against a real sqld.
struct RoundTrips {
    batch: f64,
    get: f64,
}

/// Counts the HTTP requests (each one network round trip) a real sqld sees for a warm
/// 100-episode batch and a warm get, each the mean of a few, after a first batch and get
/// prepared every statement shape.
async fn round_trips(options: &GateOptions) -> anyhow::Result<RoundTrips> {
    const REPEATS: u64 = 30;
    let server = Sqld::start().await?;
    let config = options
        .weaken
        .store(TursoConfig::remote(server.url(), None));
    let store = TursoStorage::open(config).await?;
    let batch = |b: u64| -> Vec<Episode> {
        (b * 100..(b + 1) * 100)
            .map(|n| agent::episode(n, 0))
            .collect()
    };
    store.store_episodes(&batch(0)).await?;
    replay::get_existing(&store, agent::id_of(0)).await?;
    let before = server.requests().await?;
    for b in 1..=REPEATS {
        store.store_episodes(&batch(b)).await?;
    }
    let batches = server.requests().await? - before;
    let before = server.requests().await?;
    for n in 1..=REPEATS {
        options
            .weaken
            .get(Layer::Store, &store, agent::id_of(n), n as usize - 1)
            .await?;
    }
    let gets = server.requests().await? - before;
    Ok(RoundTrips {
        batch: batches as f64 / REPEATS as f64,
        get: gets as f64 / REPEATS as f64,
    })
}

fn p50(h: &Histogram<u64>) -> f64 {
    h.value_at_quantile(0.5) as f64
}

/// One repetition: a fresh store and a fresh raw file with the same data, and the same
/// calls on both, interleaved.
async fn timing_sample(
    dir: &Path,
    options: &GateOptions,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let store = TursoStorage::open(
        options
            .weaken
            .store(TursoConfig::local(dir.join("store.db"))),
    )
    .await?;
    let raw_path = dir.join("raw.db");
    // The store creates the schema; raw libsql then writes and reads its tables directly.
    drop(TursoStorage::open(TursoConfig::local(&raw_path)).await?);
    let raw = Raw::local(&raw_path).await?;

    let (mut store_secs, mut raw_secs) = (0.0, 0.0);
    let mut batch: Vec<Episode> = Vec::with_capacity(100);
    for n in 0..options.history {
        batch.push(agent::episode(n, 0));
        if batch.len() == 100 || n + 1 == options.history {
            let started = Instant::now();
            store.store_episodes(&batch).await?;
            store_secs += started.elapsed().as_secs_f64();
            let started = Instant::now();
            raw.insert_episodes(&batch).await?;
            raw_secs += started.elapsed().as_secs_f64();
            batch.clear();
        }
    }

    let ids: Vec<_> = (0..CALLS as u64)
        .map(|i| agent::id_of(crate::scatter(i % options.history, options.history)))
        .collect();
    let queries: Vec<_> = AgentWorkload::new(options.history, 7)
        .sessions(CALLS)
        .iter()
        .filter_map(|op| op.query())
        .take(CALLS)
        .collect();

    let h = || Histogram::<u64>::new(3).context("a histogram");
    let (mut raw_get, mut store_get) = (h()?, h()?);
    let (mut raw_query, mut store_query) = (h()?, h()?);
    let lookup = raw.lookup_statement().await?;
    let query_statements = raw.query_statements().await?;
    for (ids, queries) in ids.chunks(BLOCK).zip(queries.chunks(BLOCK)) {
        for id in ids {
            let started = Instant::now();
            raw.get_with(&lookup, *id).await?;
            raw_get.record(nanos(started))?;
        }
        for (call, id) in ids.iter().enumerate() {
            let started = Instant::now();
            options.weaken.get(Layer::Store, &store, *id, call).await?;
            store_get.record(nanos(started))?;
        }
        for query in queries {
            let started = Instant::now();
            let raw_items = raw.query_with(&query_statements, query).await?;
            raw_query.record(nanos(started))?;
            let started = Instant::now();
            let page = store.query_episodes(query).await?;
            store_query.record(nanos(started))?;
            anyhow::ensure!(
                page.items.len() == raw_items.len().min(query.limit),
                "the store and raw libsql disagree on a page"
            );
        }
    }
    let base = p50(&raw_get);
    Ok(vec![
        (
            "bulk insert time / raw",
            store_secs / raw_secs.max(f64::EPSILON),
        ),
        ("get p50 / raw get p50", p50(&store_get) / base),
        (
            "query p50 / raw query p50",
            p50(&store_query) / p50(&raw_query),
        ),
    ])
}

/// One compared figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The figure's name.
    pub name: String,
    /// The baseline's value (the median for timing figures).
    pub base: f64,
    /// This measurement's value (the median for timing figures).
    pub now: f64,
    /// The gate's verdict.
    pub verdict: Verdict,
}

fn median(samples: &[f64]) -> f64 {
    gate::median(samples).unwrap_or(f64::NAN)
}

/// Compares `now` with `base`, figure by figure. A figure of the baseline that `now` lacks
/// is a failure (a renamed figure must not slip through unchecked).
pub fn compare(base: &Measurement, now: &Measurement) -> Vec<Comparison> {
    let missing = || Verdict::Inconclusive {
        needed: f64::INFINITY,
    };
    let mut out = Vec::new();
    for (name, b) in &base.deterministic {
        let (value, verdict) = match now.deterministic.get(name) {
            Some(n) => (
                n.value,
                gate::deterministic(b.value, n.value, b.tolerance, b.higher_is_better),
            ),
            None => (f64::NAN, missing()),
        };
        out.push(Comparison {
            name: name.clone(),
            base: b.value,
            now: value,
            verdict,
        });
    }
    for (name, b) in &base.timing {
        let (value, verdict) = match now.timing.get(name) {
            Some(n) => (median(n), gate::timing(b, n)),
            None => (f64::NAN, missing()),
        };
        out.push(Comparison {
            name: name.clone(),
            base: median(b),
            now: value,
            verdict,
        });
    }
    out
}

/// The comparison as a markdown table.
pub fn markdown(comparisons: &[Comparison]) -> String {
    let mut out = String::from(
        "| figure | baseline | this build | change | verdict |\n| --- | --- | --- | --- | --- |\n",
    );
    for c in comparisons {
        let verdict = match &c.verdict {
            Verdict::Pass => "pass".to_string(),
            Verdict::Regressed { change, allowed } => format!(
                "**REGRESSED** ({:+.1} %, {:.1} % allowed)",
                change * 100.0,
                allowed * 100.0
            ),
            Verdict::Inconclusive { needed } if needed.is_finite() => format!(
                "**INCONCLUSIVE** (noise needs {:.1} %; rerun with more --reps)",
                needed * 100.0
            ),
            Verdict::Inconclusive { .. } => "**MISSING** from this build".to_string(),
        };
        out += &format!(
            "| {} | {:.4} | {:.4} | {:+.1} % | {verdict} |\n",
            c.name,
            c.base,
            c.now,
            (c.now / c.base - 1.0) * 100.0
        );
    }
    out
}

/// The figures of one measurement as a markdown table (timing ones as median, lowest and
/// highest of the repetitions).
pub fn figures(m: &Measurement) -> String {
    let mut out = String::from("| figure | value |\n| --- | --- |\n");
    for (name, d) in &m.deterministic {
        out += &format!("| {name} | {:.4} |\n", d.value);
    }
    for (name, samples) in &m.timing {
        let low = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let high = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out += &format!(
            "| {name} | {:.4} (median of {}, {low:.4}–{high:.4}) |\n",
            median(samples),
            samples.len()
        );
    }
    out
}

/// Whether every figure passes.
pub fn passes(comparisons: &[Comparison]) -> bool {
    comparisons.iter().all(|c| c.verdict.passes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(hit: f64, ratios: &[f64]) -> Measurement {
        let mut m = Measurement::default();
        m.deterministic.insert(
            "episode hit ratio".into(),
            Deterministic {
                value: hit,
                tolerance: 0.0005,
                higher_is_better: true,
            },
        );
        m.timing.insert("get".into(), ratios.to_vec());
        m
    }

    const STEADY: [f64; 8] = [1.10, 1.12, 1.09, 1.11, 1.10, 1.13, 1.08, 1.11];

    #[test]
    fn the_same_figures_pass() {
        let base = measurement(0.95, &STEADY);
        let comparisons = compare(&base, &base.clone());
        assert_eq!(comparisons.len(), 2);
        assert!(passes(&comparisons), "{}", markdown(&comparisons));
        assert!(figures(&base).contains("| get | 1.1050 (median of 8, 1.0800–1.1300) |"));
    }

    #[test]
    fn a_lower_hit_ratio_or_a_slower_path_fails() {
        let base = measurement(0.95, &STEADY);
        assert!(!passes(&compare(&base, &measurement(0.90, &STEADY))));
        let slower: Vec<f64> = STEADY.iter().map(|x| x * 1.1).collect();
        let comparisons = compare(&base, &measurement(0.95, &slower));
        assert!(!passes(&comparisons));
        assert!(markdown(&comparisons).contains("REGRESSED"));
    }

    #[test]
    fn a_figure_missing_from_the_new_build_fails() {
        let base = measurement(0.95, &STEADY);
        let mut now = base.clone();
        now.timing.clear();
        let comparisons = compare(&base, &now);
        assert!(!passes(&comparisons));
        assert!(markdown(&comparisons).contains("MISSING"));
    }
}
