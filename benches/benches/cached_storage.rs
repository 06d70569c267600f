//! `cached_storage`: the cached decorator over a local libSQL file, in one run:
//!
//! 1. hit ratios, which are deterministic for the seeds: Zipf 0.99 over 100,000 equally
//!    sized episodes with room for 10 % of them, beside the frequency ideal and Belady's
//!    optimum on the same reads; the standard agent-session workload at the default budget,
//!    beside the offline reference, with the query-result hit ratio. Each replays a warm-up
//!    first and counts the equally long second half (the ideal is a steady state);
//! 2. the latency of single gets, each call timed into a histogram for p50/p99: cached
//!    (a hit), uncached on the local file, uncached against a real sqld on loopback; then
//!    the same three as criterion benchmarks.
//!
//! ```sh
//! cargo bench -p memory-bench --bench cached_storage
//! ```
//!
//! Without `--bench` (as `cargo test --benches` runs it) everything runs at a small scale,
//! to show it works.

#![allow(clippy::expect_used)] // a failed operation must stop a benchmark, not be timed

use memory_bench::sqld;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use hdrhistogram::Histogram;
use memory_bench::agent::{self, AgentWorkload};
use memory_bench::replay::{self, get_existing};
use memory_bench::run::{delta, ratio};
use memory_bench::zipf::{ZIPF_EPISODE_BYTES, ZipfWorkload};
use memory_cache_adaptive::CacheConfig;
use memory_cache_adaptive::simulator::belady::{self, Event};
use memory_core::{EpisodeId, StorageBackend};
use memory_storage_cached::{CachePart, CacheSettings, CachedStorageStats};
use memory_storage_turso::{TursoConfig, TursoStorage};
use tokio::runtime::Runtime;

/// How big a run is.
struct Scale {
    zipf_episodes: u64,
    /// Reads replayed to warm up, and as many counted after.
    zipf_reads: usize,
    agent_history: u64,
    /// Sessions replayed to warm up, and as many counted after.
    agent_sessions: usize,
    /// Timed calls per latency histogram (a tenth of them against the server).
    latency_calls: usize,
}

const FULL: Scale = Scale {
    zipf_episodes: 100_000,
    zipf_reads: 1_000_000,
    agent_history: agent::STANDARD_HISTORY,
    agent_sessions: 20_000,
    latency_calls: 200_000,
};

const SMALL: Scale = Scale {
    zipf_episodes: 10_000,
    zipf_reads: 20_000,
    agent_history: 500,
    agent_sessions: 200,
    latency_calls: 2_000,
};

fn runtime() -> Runtime {
    // One caller's latency: a current-thread runtime adds no cross-thread wake-ups.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The bytes each cached episode costs the cache (its encoded size plus the per-entry
/// bookkeeping the cache counts).
fn entry_overhead() -> u64 {
    CacheConfig::new(1).entry_overhead
}

fn zipf_hit_ratio(rt: &Runtime, dir: &Path, scale: &Scale) -> TursoStorage {
    let workload = ZipfWorkload::new(scale.zipf_episodes, 0.99, 42);
    let held = scale.zipf_episodes / 10;
    let store = rt
        .block_on(TursoStorage::open(TursoConfig::local(dir.join("zipf.db"))))
        .expect("opening the Zipf store");
    rt.block_on(replay::load(
        &store,
        (0..scale.zipf_episodes).map(ZipfWorkload::episode),
        1_000,
    ))
    .expect("loading the Zipf data set");
    // The whole budget such that the episode share holds exactly `held` episodes.
    let per_entry = agent::cached_weight(&ZipfWorkload::episode(0)) + entry_overhead();
    let per_mille = CachePart::Episodes.per_mille();
    let budget = (held * per_entry).div_ceil(per_mille) * 1000;
    let settings = CacheSettings::default().budget_bytes(budget);
    let cache = store.cached(&settings).expect("cache settings");
    let reads = workload.reads(2 * scale.zipf_reads);
    let ids: Vec<EpisodeId> = (0..scale.zipf_episodes).map(ZipfWorkload::id_of).collect();
    let started = Instant::now();
    let (before, after) = rt
        .block_on(async {
            for &n in &reads[..scale.zipf_reads] {
                get_existing(&cache, ids[n as usize]).await?;
            }
            let before = cache.stats();
            for &n in &reads[scale.zipf_reads..] {
                get_existing(&cache, ids[n as usize]).await?;
            }
            anyhow::Ok((before, cache.stats()))
        })
        .expect("replaying the Zipf reads");
    let elapsed = started.elapsed();
    let hits = delta(after.episodes.hits, before.episodes.hits).expect("counters never go back");
    let misses =
        delta(after.episodes.misses, before.episodes.misses).expect("counters never go back");
    let measured = ratio(hits, misses);
    let events: Vec<Event> = reads
        .iter()
        .map(|&n| Event {
            key: n,
            weight: 1,
            write: false,
        })
        .collect();
    let optimum = belady::replay_events(&events, held, scale.zipf_reads).hit_ratio();
    let ideal = workload.frequency_ideal(held);
    println!(
        "\n== hit ratio: Zipf 0.99, {} episodes of {} bytes encoded, room for {held} ({} bytes of \
         budget; {} episodes held at the end)",
        scale.zipf_episodes, ZIPF_EPISODE_BYTES, settings.budget_bytes, after.episodes.entries
    );
    println!(
        "   {} reads to warm up, {} counted ({:.1} s for both)",
        scale.zipf_reads,
        scale.zipf_reads,
        elapsed.as_secs_f64()
    );
    println!("   cached store      {measured:.4}");
    println!(
        "   frequency ideal   {ideal:.4}   measured / ideal = {:.3}",
        measured / ideal
    );
    println!("   Belady optimum    {optimum:.4}");
    store
}

fn agent_hit_ratio(rt: &Runtime, dir: &Path, scale: &Scale) {
    let workload = AgentWorkload::new(scale.agent_history, 42);
    let store = rt
        .block_on(TursoStorage::open(TursoConfig::local(dir.join("agent.db"))))
        .expect("opening the agent store");
    let started = Instant::now();
    rt.block_on(replay::load(
        &store,
        (0..scale.agent_history).map(|n| agent::episode(n, 0)),
        500,
    ))
    .expect("loading the agent data set");
    let loaded = started.elapsed();
    let settings = CacheSettings::default();
    let cache = store.cached(&settings).expect("cache settings");
    let ops = workload.sessions(2 * scale.agent_sessions);
    let warm = workload.sessions(scale.agent_sessions).len();
    let started = Instant::now();
    let (before, after): (CachedStorageStats, CachedStorageStats) = rt
        .block_on(async {
            replay::run_agent(&cache, &ops[..warm]).await?;
            let before = cache.stats();
            replay::run_agent(&cache, &ops[warm..]).await?;
            anyhow::Ok((before, cache.stats()))
        })
        .expect("replaying the agent sessions");
    let elapsed = started.elapsed();
    let hits = delta(after.episodes.hits, before.episodes.hits).expect("counters never go back");
    let misses =
        delta(after.episodes.misses, before.episodes.misses).expect("counters never go back");
    let query_hits = delta(after.episode_queries.hits, before.episode_queries.hits)
        .expect("counters never go back");
    let query_misses = delta(after.episode_queries.misses, before.episode_queries.misses)
        .expect("counters never go back");
    let budget = settings.part_bytes(CachePart::Episodes);
    let events = AgentWorkload::events(&ops, entry_overhead());
    let warm_events = AgentWorkload::event_count(&ops[..warm]);
    let reference = belady::replay_events(&events, budget, warm_events).hit_ratio();
    let data_bytes: u64 = events
        .iter()
        .map(|e| (e.key, e.weight))
        .collect::<std::collections::HashMap<_, _>>()
        .values()
        .sum();
    println!(
        "\n== hit ratio: agent sessions, {} episodes at the start, default budget ({} bytes, \
         {} for episodes; the episodes touched weigh {} bytes)",
        scale.agent_history, settings.budget_bytes, budget, data_bytes
    );
    println!(
        "   loaded in {:.1} s; {} sessions to warm up, {} counted ({} operations, {:.1} s)",
        loaded.as_secs_f64(),
        scale.agent_sessions,
        scale.agent_sessions,
        ops.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "   episode hit ratio {:.4} ({hits} hits, {misses} misses)",
        ratio(hits, misses)
    );
    println!("   offline reference {reference:.4} (Belady's rule, same byte budget, writes free)");
    println!(
        "   query hit ratio   {:.4} ({query_hits} hits, {query_misses} misses)",
        ratio(query_hits, query_misses)
    );
    println!(
        "   at the end: {} episodes cached ({} bytes); counted half: {} evicted for room, {} \
         not admitted, {} flushes for other writers",
        after.episodes.entries,
        after.episodes.weight,
        delta(
            after.episodes.evicted_capacity,
            before.episodes.evicted_capacity
        )
        .expect("counters never go back"),
        delta(
            after.episodes.admissions_rejected,
            before.episodes.admissions_rejected
        )
        .expect("counters never go back"),
        delta(after.foreign.flushes(), before.foreign.flushes()).expect("counters never go back"),
    );
}

/// `calls` gets of `ids` (round robin), each timed, into a histogram of nanoseconds.
fn latency_histogram(
    rt: &Runtime,
    store: &dyn StorageBackend,
    ids: &[EpisodeId],
    calls: usize,
) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
    rt.block_on(async {
        for i in 0..calls {
            let id = ids[i % ids.len()];
            let started = Instant::now();
            let found = store.get_episode(id).await.expect("a get failed");
            let nanos = started.elapsed().as_nanos() as u64;
            assert!(found.is_some(), "episode {id} is missing");
            histogram.record(nanos.max(1)).expect("recording a latency");
        }
    });
    histogram
}

fn print_latency(name: &str, h: &Histogram<u64>, cached_p50: Option<u64>) {
    let us = |v: u64| v as f64 / 1_000.0;
    let p50 = h.value_at_quantile(0.50);
    let versus = cached_p50.map_or(String::new(), |c| {
        format!(
            "   p50 = {:.0}x the cached get's",
            p50 as f64 / c.max(1) as f64
        )
    });
    println!(
        "   {name:<22} p50 {:>9.3} us   p99 {:>9.3} us   max {:>10.3} us   ({} calls){versus}",
        us(p50),
        us(h.value_at_quantile(0.99)),
        us(h.max()),
        h.len()
    );
}

fn latencies(c: &mut Criterion, rt: &Runtime, local: &TursoStorage, scale: &Scale) {
    // Cached: 1,000 episodes, all read once so that every timed get is a hit.
    let hot: Vec<EpisodeId> = (0..1_000).map(ZipfWorkload::id_of).collect();
    let cache = local
        .cached(&CacheSettings::default())
        .expect("cache settings");
    rt.block_on(async {
        for &id in &hot {
            get_existing(&cache, id).await?;
        }
        anyhow::Ok(())
    })
    .expect("warming the cache");
    // Uncached: scattered over the whole local data set.
    let scattered: Vec<EpisodeId> = (0..scale.zipf_episodes)
        .map(|i| ZipfWorkload::id_of(memory_bench::scatter(i, scale.zipf_episodes)))
        .collect();
    let server = rt
        .block_on(sqld::Sqld::start())
        .expect("starting sqld (scripts/install-sqld.sh installs it; or set SQLD_BIN to its path)");
    let remote = rt
        .block_on(TursoStorage::open(TursoConfig::remote(server.url(), None)))
        .expect("connecting to sqld");
    rt.block_on(replay::load(
        &remote,
        (0..1_000).map(ZipfWorkload::episode),
        500,
    ))
    .expect("loading the remote data set");

    let cached_h = latency_histogram(rt, &cache, &hot, scale.latency_calls);
    let misses_before = cache.stats().episodes.misses;
    let local_h = latency_histogram(rt, local, &scattered, scale.latency_calls);
    let remote_h = latency_histogram(rt, &remote, &hot, scale.latency_calls / 10);
    assert_eq!(
        cache.stats().episodes.misses,
        misses_before,
        "a timed cached get missed"
    );
    println!("\n== single get latency (each call timed; 1 KiB episodes)");
    let p50 = cached_h.value_at_quantile(0.5);
    print_latency("cached (hit)", &cached_h, None);
    print_latency("uncached, local file", &local_h, Some(p50));
    print_latency("uncached, sqld", &remote_h, Some(p50));
    println!();

    let mut group = c.benchmark_group("cached_storage/get");
    let bench_get = |group: &mut criterion::BenchmarkGroup<'_, _>,
                     name: &str,
                     store: &dyn StorageBackend,
                     ids: &[EpisodeId]| {
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let id = ids[i % ids.len()];
                rt.block_on(store.get_episode(black_box(id)))
                    .expect("a get failed")
                    .expect("an episode is missing")
            })
        });
    };
    bench_get(&mut group, "cached_hit", &cache, &hot);
    bench_get(&mut group, "uncached_local", local, &scattered);
    group.measurement_time(Duration::from_secs(10));
    bench_get(&mut group, "uncached_sqld", &remote, &hot);
    group.finish();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { &FULL } else { &SMALL };
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let local = zipf_hit_ratio(&rt, dir.path(), scale);
    agent_hit_ratio(&rt, dir.path(), scale);
    let mut criterion = Criterion::default().configure_from_args();
    latencies(&mut criterion, &rt, &local, scale);
    criterion.final_summary();
}
