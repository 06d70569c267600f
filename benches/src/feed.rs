//! `memory-bench feed`: what the change feed buys and what it costs, with other writers in
//! other OS processes (this binary run again as `memory-bench feed-child`).
//!
//! - **Hit ratio beside another writer**: one reader (this process) reads a Zipf hot set of
//!   2,000 episodes through the cached store, alone and then while a child process writes
//!   *other* episodes to the same file at each rate. With the feed only what the child wrote
//!   leaves the reader's cache.
//! - **Shared store**: 2 and 4 processes each read any process's episodes and rewrite their
//!   own (a local file, and a sqld on loopback); aggregate throughput and hit ratio, and the
//!   largest staleness observed, from the processes' write and read logs: a read that
//!   returned revision `r` while `r + 1` had been acknowledged is stale by the time since
//!   that acknowledgement, and the documented bound is the change-check interval.
//! - **Cost**: a 100-episode batch with the feed against one without (two files, the same
//!   batches, interleaved), and a change check when nothing changed (local file).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use memory_core::feed::ChangesSince;
use memory_core::stats::ForeignWriteStats;
use memory_core::testing::handles;
use memory_core::testing::samples::sample_uuid;
use memory_core::{ChangeSignal, Episode, EpisodeId, StorageBackend};
use memory_storage_turso::{CacheSettings, CachedStorage, TursoConfig, TursoStorage};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::soak::latency_histogram;
use crate::zipf::ZipfWorkload;

/// Episodes in the reader's hot set.
pub const HOT_SET: u64 = 2_000;
/// Episodes each process of a shared-store run owns (and rewrites).
const OWNED: u32 = 200;
/// Of a shared-store process's operations, the share that are writes.
const WRITE_SHARE: f64 = 0.1;
/// The change-check interval of every cache here (the default).
const INTERVAL: Duration = Duration::from_millis(100);
/// Episode numbers of the writer child's episodes, far from the hot set's.
const OTHER_EPISODES: u64 = 1 << 40;

/// What to run.
#[derive(Clone, Debug)]
pub struct FeedOptions {
    /// Seconds per measured phase (each rate; each shared-store run).
    pub secs: f64,
    /// The other writer's rates, writes per second.
    pub rates: Vec<u32>,
    /// Process counts of the shared-store runs.
    pub processes: Vec<usize>,
    /// Also run the shared store on a sqld on loopback (needs `SQLD_BIN` or sqld).
    pub sqld: bool,
    /// Seconds of each shared-store run on sqld (remote operations are slower: long
    /// enough for each process to see at least 1,000 writes of the others).
    pub sqld_secs: f64,
    /// 100-episode batches timed per store for the cost.
    pub batches: usize,
    /// Whether the cost targets count (timing targets need a release build and a full run;
    /// the quick run reports them only).
    pub enforce_costs: bool,
}

impl FeedOptions {
    /// The full measurement `memory-bench feed` runs.
    pub fn full() -> Self {
        FeedOptions {
            secs: 10.0,
            rates: vec![1, 20, 200],
            processes: vec![2, 4],
            sqld: true,
            sqld_secs: 20.0,
            batches: 200,
            enforce_costs: true,
        }
    }

    /// A short version (the dashboard's row, the test script's self-check).
    pub fn quick() -> Self {
        FeedOptions {
            secs: 2.0,
            rates: vec![20],
            processes: vec![2],
            sqld: false,
            sqld_secs: 2.0,
            batches: 20,
            enforce_costs: false,
        }
    }
}

/// The reader's hit ratio in one phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatePhase {
    /// The other writer's rate (0: alone).
    pub rate: u32,
    /// Writes the other process made during the phase.
    pub written: u64,
    /// Gets the reader made.
    pub gets: u64,
    /// Hits / (hits + misses) of those gets.
    pub hit_ratio: f64,
    /// What the reader's change checks did meanwhile.
    pub foreign: ForeignWriteStats,
}

/// One shared-store run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SharedRun {
    /// `file` or `sqld`.
    pub location: String,
    /// Processes.
    pub processes: usize,
    /// Operations of all processes per second.
    pub ops_per_sec: f64,
    /// Aggregate hits / (hits + misses).
    pub hit_ratio: f64,
    /// The fewest writes of other processes any one process saw in the feed.
    pub least_foreign_writes: u64,
    /// Full flushes of all processes, by reason.
    pub flushes: ForeignWriteStats,
    /// Reads that returned an older revision than one acknowledged before they began.
    pub stale_reads: u64,
    /// Reads checked against the other processes' write logs.
    pub reads_checked: u64,
    /// The largest staleness observed (0 when no read was stale).
    pub max_staleness: Duration,
    /// Write latency over all processes: the largest p50, the largest p99, the longest.
    pub write_p50: Duration,
    /// See `write_p50`.
    pub write_p99: Duration,
    /// See `write_p50`.
    pub write_max: Duration,
}

/// The cost of keeping the feed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeedCost {
    /// Median 100-episode batch with the feed.
    pub batch_with: Duration,
    /// Median 100-episode batch without it (same batches, interleaved).
    pub batch_without: Duration,
    /// Median change check with nothing changed, local file.
    pub check_p50: Duration,
    /// Its 99th percentile.
    pub check_p99: Duration,
}

impl FeedCost {
    /// Batch with the feed / without it.
    pub fn ratio(&self) -> f64 {
        self.batch_with.as_secs_f64() / self.batch_without.as_secs_f64().max(1e-12)
    }
}

/// Everything `memory-bench feed` measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeedReport {
    /// The reader alone, then beside each rate.
    pub phases: Vec<RatePhase>,
    /// The shared-store runs.
    pub shared: Vec<SharedRun>,
    /// The feed's cost.
    pub cost: FeedCost,
    /// Whether the cost targets count (see [`FeedOptions::enforce_costs`]).
    pub costs_enforced: bool,
}

/// The targets (issue 20): hit ratio within 1 point of alone at 20/s and 3 points at
/// 200/s; a batch with the feed at most 1.10x one without; a check with nothing changed
/// at most 5 µs; no read staler than the bound.
pub const BATCH_RATIO_BAR: f64 = 1.10;
/// See [`BATCH_RATIO_BAR`].
pub const CHECK_BAR: Duration = Duration::from_micros(5);

/// The largest drop in points allowed beside a writer at `rate` (none for other rates).
pub fn ratio_drop_bar(rate: u32) -> Option<f64> {
    match rate {
        20 => Some(1.0),
        200 => Some(3.0),
        _ => None,
    }
}

impl FeedReport {
    /// Whether every enforced target holds.
    pub fn passes(&self) -> bool {
        self.checks().iter().all(|(_, holds)| *holds != Some(false))
    }

    /// The reader's ratio alone.
    pub fn alone(&self) -> Option<&RatePhase> {
        self.phases.iter().find(|p| p.rate == 0)
    }

    /// Each target and whether it holds: (what, `Some(holds)`, or `None` when only
    /// reported: a quick run's cost and volume targets).
    pub fn checks(&self) -> Vec<(String, Option<bool>)> {
        let enforced = |holds: bool| Some(holds);
        let cost = |holds: bool| self.costs_enforced.then_some(holds);
        let mut out = Vec::new();
        if let Some(alone) = self.alone() {
            for phase in self.phases.iter().filter(|p| p.rate > 0) {
                if let Some(bar) = ratio_drop_bar(phase.rate) {
                    let drop = 100.0 * (alone.hit_ratio - phase.hit_ratio);
                    out.push((
                        format!(
                            "hit ratio beside {}/s within {bar} point(s) of alone: {drop:.2}",
                            phase.rate
                        ),
                        enforced(drop <= bar),
                    ));
                }
            }
        }
        for run in &self.shared {
            out.push((
                format!(
                    "{} x{}: each process saw >= 1,000 foreign writes: {}",
                    run.location, run.processes, run.least_foreign_writes
                ),
                cost(run.least_foreign_writes >= 1_000),
            ));
            out.push((
                format!(
                    "{} x{}: no read staler than {} ms (largest {:.1} ms, {} stale of {})",
                    run.location,
                    run.processes,
                    INTERVAL.as_millis(),
                    run.max_staleness.as_secs_f64() * 1e3,
                    run.stale_reads,
                    run.reads_checked
                ),
                enforced(run.max_staleness <= INTERVAL),
            ));
        }
        out.push((
            format!(
                "batch with the feed <= {BATCH_RATIO_BAR}x without: {:.3}x",
                self.cost.ratio()
            ),
            cost(self.cost.ratio() <= BATCH_RATIO_BAR),
        ));
        out.push((
            format!(
                "check with nothing changed <= {} us: p50 {:.2} us",
                CHECK_BAR.as_micros(),
                self.cost.check_p50.as_secs_f64() * 1e6
            ),
            cost(self.cost.check_p50 <= CHECK_BAR),
        ));
        out
    }
}

impl fmt::Display for FeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "reader hit ratio, Zipf 0.99 over {HOT_SET} episodes, another process writing other episodes:"
        )?;
        for p in &self.phases {
            let who = match p.rate {
                0 => "alone".to_string(),
                r => format!("writer {r}/s"),
            };
            writeln!(
                f,
                "  {who:<14} {:>7.2} %  ({} gets, {} foreign writes read, {} items dropped, {} flushes; the writer wrote {})",
                100.0 * p.hit_ratio,
                p.gets,
                p.foreign.writes,
                p.foreign.invalidated,
                p.foreign.flushes(),
                p.written
            )?;
        }
        if !self.shared.is_empty() {
            writeln!(
                f,
                "shared store, each process reading any episode and rewriting its own ({:.0} % writes):",
                100.0 * WRITE_SHARE
            )?;
        }
        for r in &self.shared {
            writeln!(
                f,
                "  {:<5} x{}  {:>9.0} ops/s  hit ratio {:>6.2} %  foreign writes seen >= {}  flushes {} (feed behind {}, failed {})  stale reads {} of {}  largest staleness {:.1} ms (bound {} ms)  writes p50 {:.2} ms p99 {:.1} ms max {:.0} ms",
                r.location,
                r.processes,
                r.ops_per_sec,
                100.0 * r.hit_ratio,
                r.least_foreign_writes,
                r.flushes.flushes(),
                r.flushes.flushes_feed_behind,
                r.flushes.flushes_failed,
                r.stale_reads,
                r.reads_checked,
                r.max_staleness.as_secs_f64() * 1e3,
                INTERVAL.as_millis(),
                r.write_p50.as_secs_f64() * 1e3,
                r.write_p99.as_secs_f64() * 1e3,
                r.write_max.as_secs_f64() * 1e3
            )?;
        }
        writeln!(
            f,
            "cost: 100-episode batch median {:.3} ms with the feed, {:.3} ms without ({:.3}x); check with nothing changed p50 {:.2} us, p99 {:.2} us",
            self.cost.batch_with.as_secs_f64() * 1e3,
            self.cost.batch_without.as_secs_f64() * 1e3,
            self.cost.ratio(),
            self.cost.check_p50.as_secs_f64() * 1e6,
            self.cost.check_p99.as_secs_f64() * 1e6
        )?;
        for (what, holds) in self.checks() {
            let verdict = match holds {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "reported",
            };
            writeln!(f, "  [{verdict}] {what}")?;
        }
        Ok(())
    }
}

/// The store a target names: `file:PATH` a local file, anything else a server URL.
fn config(target: &str) -> TursoConfig {
    match target.strip_prefix("file:") {
        Some(path) => TursoConfig::local(path),
        None => TursoConfig::remote(target, None),
    }
}

fn settings() -> CacheSettings {
    CacheSettings::default().change_check_interval(INTERVAL)
}

/// Runs everything `options` names.
pub async fn feed(options: &FeedOptions) -> anyhow::Result<FeedReport> {
    ensure!(options.secs > 0.0, "--secs must be positive");
    let exe = std::env::current_exe().context("finding memory-bench's own executable")?;
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let phases = hit_ratios(&exe, dir.path(), options).await?;
    let mut shared = Vec::new();
    for &n in &options.processes {
        let path = dir.path().join(format!("shared-{n}.db"));
        let target = format!("file:{}", path.display());
        shared.push(shared_run(&exe, dir.path(), "file", &target, n, options.secs).await?);
    }
    if options.sqld {
        let server = memory_test_sqld::Sqld::start().await?;
        for &n in &options.processes {
            // A fresh database per run: the server's one database, emptied.
            let store = TursoStorage::open(config(&server.url())).await?;
            empty(&store).await?;
            drop(store);
            shared
                .push(shared_run(&exe, dir.path(), "sqld", &server.url(), n, options.secs).await?);
        }
    }
    let cost = cost(dir.path(), options.batches).await?;
    Ok(FeedReport {
        phases,
        shared,
        cost,
        costs_enforced: options.enforce_costs,
    })
}

async fn empty(store: &TursoStorage) -> anyhow::Result<()> {
    loop {
        let page = store
            .query_episodes(&memory_core::EpisodeQuery::new().limit(1_000))
            .await?;
        if page.items.is_empty() {
            return Ok(());
        }
        let ids: Vec<EpisodeId> = page.items.iter().map(|e| e.id).collect();
        store.delete_episodes(&ids).await?;
    }
}

// ---- the reader beside another writer ----

/// The reader's hit ratio alone and then beside a writer process at each of `rates`, each
/// phase `secs` long: a file of its own in `dir`; `exe` is `memory-bench` (it runs the
/// writer as `memory-bench feed-child writer`). The first phase is the one alone.
pub async fn hit_ratios_beside_writers(
    exe: &Path,
    dir: &Path,
    rates: &[u32],
    secs: f64,
) -> anyhow::Result<Vec<RatePhase>> {
    hit_ratios(
        exe,
        dir,
        &FeedOptions {
            secs,
            rates: rates.to_vec(),
            ..FeedOptions::quick()
        },
    )
    .await
}

async fn hit_ratios(
    exe: &Path,
    dir: &Path,
    options: &FeedOptions,
) -> anyhow::Result<Vec<RatePhase>> {
    let path = dir.join("reader.db");
    let target = format!("file:{}", path.display());
    let store = TursoStorage::open(config(&target)).await?;
    let hot: Vec<Episode> = (0..HOT_SET).map(ZipfWorkload::episode).collect();
    for chunk in hot.chunks(500) {
        store.store_episodes(chunk).await?;
    }
    let cached = store.cached(&settings())?;
    for n in 0..HOT_SET {
        ensure!(
            cached.get_episode(ZipfWorkload::id_of(n)).await?.is_some(),
            "hot episode {n} missing"
        );
    }
    let ids: Vec<EpisodeId> = ZipfWorkload::new(HOT_SET, 0.99, 7)
        .reads(1 << 18)
        .into_iter()
        .map(ZipfWorkload::id_of)
        .collect();
    let secs = Duration::from_secs_f64(options.secs);
    let mut phases = vec![read_phase(&cached, &ids, secs, 0, 0).await?];
    for &rate in &options.rates {
        let mut child = spawn_child(
            exe,
            &[
                "writer",
                "--target",
                &target,
                "--rate",
                &rate.to_string(),
                "--secs",
                &(options.secs + 1.0).to_string(),
            ],
        )?;
        let mut lines = child_lines(&mut child)?;
        expect_line(&mut lines, "READY").await?;
        let mut phase = read_phase(&cached, &ids, secs, rate, 0).await?;
        let wrote = expect_line(&mut lines, "WROTE ").await?;
        phase.written = wrote.trim().parse().context("the writer's count")?;
        ensure!(child.wait().await?.success(), "the writer process failed");
        phases.push(phase);
    }
    Ok(phases)
}

/// Reads `ids` round and round for `secs` through `cached`; the hit ratio of those reads.
async fn read_phase(
    cached: &CachedStorage<TursoStorage>,
    ids: &[EpisodeId],
    secs: Duration,
    rate: u32,
    written: u64,
) -> anyhow::Result<RatePhase> {
    let before = cached.stats();
    let deadline = Instant::now() + secs;
    let mut gets = 0u64;
    'reading: loop {
        for chunk in ids.chunks(256) {
            for id in chunk {
                ensure!(
                    cached.get_episode(*id).await?.is_some(),
                    "hot episode {id} missing"
                );
            }
            gets += chunk.len() as u64;
            if Instant::now() >= deadline {
                break 'reading;
            }
        }
    }
    let after = cached.stats();
    let hits = after.episodes.hits - before.episodes.hits;
    let misses = after.episodes.misses - before.episodes.misses;
    Ok(RatePhase {
        rate,
        written,
        gets,
        hit_ratio: hits as f64 / (hits + misses).max(1) as f64,
        foreign: delta(&after.foreign, &before.foreign),
    })
}

fn delta(after: &ForeignWriteStats, before: &ForeignWriteStats) -> ForeignWriteStats {
    ForeignWriteStats {
        writes: after.writes - before.writes,
        invalidated: after.invalidated - before.invalidated,
        flushes_no_feed: after.flushes_no_feed - before.flushes_no_feed,
        flushes_feed_behind: after.flushes_feed_behind - before.flushes_feed_behind,
        flushes_failed: after.flushes_failed - before.flushes_failed,
        feed_lag: after.feed_lag,
    }
}

/// The writer child: other episodes at `rate` per second for `secs`, through the bare store.
pub async fn writer_child(target: &str, rate: u32, secs: f64) -> anyhow::Result<()> {
    ensure!(rate > 0, "--rate must be positive");
    let store = TursoStorage::open(config(target)).await?;
    println!("READY");
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while Instant::now() < deadline {
        tick.tick().await;
        store
            .store_episode(&ZipfWorkload::episode(OTHER_EPISODES + n))
            .await?;
        n += 1;
    }
    println!("WROTE {n}");
    Ok(())
}

// ---- several processes on one store ----

fn peer_id(peer: u32, index: u32) -> EpisodeId {
    sample_uuid(0x5A, (u64::from(peer) << 32) | u64::from(index)).into()
}

fn revision_of(e: &Episode) -> anyhow::Result<u32> {
    e.description
        .strip_prefix("revision ")
        .and_then(|r| r.parse().ok())
        .with_context(|| format!("not a revision: {:?}", e.description))
}

fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// What one peer process reports on its last line (`RESULT {json}`).
#[derive(Debug, Serialize, Deserialize)]
struct PeerResult {
    ops: u64,
    /// Write latencies, µs: p50, p99, max.
    write_us: [u64; 3],
    hits: u64,
    misses: u64,
    foreign: ForeignWriteStats,
    elapsed_secs: f64,
}

async fn shared_run(
    exe: &Path,
    dir: &Path,
    location: &str,
    target: &str,
    processes: usize,
    secs: f64,
) -> anyhow::Result<SharedRun> {
    let logs = dir.join(format!("logs-{location}-{processes}"));
    std::fs::create_dir_all(&logs)?;
    let mut children = Vec::new();
    for peer in 0..processes {
        let mut child = spawn_child(
            exe,
            &[
                "peer",
                "--target",
                target,
                "--peer",
                &peer.to_string(),
                "--peers",
                &processes.to_string(),
                "--secs",
                &secs.to_string(),
                "--logs",
                &logs.display().to_string(),
            ],
        )?;
        let lines = child_lines(&mut child)?;
        children.push((child, lines));
    }
    for (_, lines) in &mut children {
        expect_line(lines, "READY").await?;
    }
    for (child, _) in &mut children {
        let stdin = child.stdin.as_mut().context("the peer's stdin")?;
        stdin.write_all(b"GO\n").await?;
        stdin.flush().await?;
    }
    let mut results = Vec::new();
    for (child, lines) in &mut children {
        let line = expect_line(lines, "RESULT ").await?;
        results.push(serde_json::from_str::<PeerResult>(&line).context("a peer's result")?);
        ensure!(child.wait().await?.success(), "a peer process failed");
    }
    let (stale_reads, reads_checked, max_staleness) = staleness(&logs, processes)?;
    let ops: u64 = results.iter().map(|r| r.ops).sum();
    let elapsed = results.iter().map(|r| r.elapsed_secs).fold(0.0, f64::max);
    let (hits, misses) = results
        .iter()
        .fold((0, 0), |(h, m), r| (h + r.hits, m + r.misses));
    Ok(SharedRun {
        location: location.to_string(),
        processes,
        ops_per_sec: ops as f64 / elapsed.max(1e-9),
        hit_ratio: hits as f64 / (hits + misses).max(1) as f64,
        least_foreign_writes: results.iter().map(|r| r.foreign.writes).min().unwrap_or(0),
        flushes: results
            .iter()
            .fold(ForeignWriteStats::default(), |sum, r| ForeignWriteStats {
                flushes_no_feed: sum.flushes_no_feed + r.foreign.flushes_no_feed,
                flushes_feed_behind: sum.flushes_feed_behind + r.foreign.flushes_feed_behind,
                flushes_failed: sum.flushes_failed + r.foreign.flushes_failed,
                ..sum
            }),
        stale_reads,
        reads_checked,
        max_staleness,
        write_p50: worst(&results, 0),
        write_p99: worst(&results, 1),
        write_max: worst(&results, 2),
    })
}

fn worst(results: &[PeerResult], which: usize) -> Duration {
    Duration::from_micros(results.iter().map(|r| r.write_us[which]).max().unwrap_or(0))
}

fn write_log(logs: &Path, peer: u32) -> PathBuf {
    logs.join(format!("writes-{peer}.bin"))
}

fn read_log(logs: &Path, peer: u32) -> PathBuf {
    logs.join(format!("reads-{peer}.bin"))
}

/// A peer: stores its own episodes, says READY, waits for GO, then for `secs` reads any
/// peer's episodes and rewrites its own; logs its acknowledged writes (index, revision,
/// wall-clock µs) and its reads of other peers' episodes (peer, index, revision, start µs).
pub async fn peer_child(
    target: &str,
    peer: u32,
    peers: u32,
    secs: f64,
    logs: &Path,
) -> anyhow::Result<()> {
    let store = TursoStorage::open(config(target)).await?;
    let cached = store.cached(&settings())?;
    let mut revisions = vec![0u32; OWNED as usize];
    let mut writes: Vec<(u32, u32, u64)> = Vec::new();
    let own: Vec<Episode> = (0..OWNED)
        .map(|i| handles::revision(peer_id(peer, i), 0))
        .collect();
    cached.store_episodes(&own).await?;
    let loaded = wall_micros();
    writes.extend((0..OWNED).map(|i| (i, 0, loaded)));
    println!("READY");
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let go = stdin.next_line().await?;
    ensure!(go.as_deref() == Some("GO"), "expected GO, got {go:?}");

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(u64::from(peer) + 1);
    let mut reads: Vec<(u32, u32, u32, u64)> = Vec::new();
    let before = cached.stats();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut ops = 0u64;
    let mut write_latency = latency_histogram()?;
    while Instant::now() < deadline {
        ops += 1;
        if rng.random_bool(WRITE_SHARE) {
            let i = rng.random_range(0..OWNED);
            revisions[i as usize] += 1;
            let revision = revisions[i as usize];
            let began = Instant::now();
            cached
                .store_episode(&handles::revision(peer_id(peer, i), revision as usize))
                .await?;
            write_latency.saturating_record(began.elapsed().as_micros() as u64);
            writes.push((i, revision, wall_micros()));
        } else {
            let (q, i) = (rng.random_range(0..peers), rng.random_range(0..OWNED));
            let began = wall_micros();
            let Some(got) = cached.get_episode(peer_id(q, i)).await? else {
                // Another peer may not have stored its own yet only before GO.
                bail!("peer {q}'s episode {i} missing");
            };
            let revision = revision_of(&got)?;
            if q == peer {
                ensure!(
                    revision == revisions[i as usize],
                    "own episode {i}: read revision {revision}, wrote {}",
                    revisions[i as usize]
                );
            } else {
                reads.push((q, i, revision, began));
            }
        }
    }
    let elapsed = started.elapsed();
    let after = cached.stats();
    let mut bytes = Vec::with_capacity(writes.len() * 16);
    for (i, r, t) in &writes {
        bytes.extend_from_slice(&i.to_le_bytes());
        bytes.extend_from_slice(&r.to_le_bytes());
        bytes.extend_from_slice(&t.to_le_bytes());
    }
    std::fs::write(write_log(logs, peer), bytes)?;
    let mut bytes = Vec::with_capacity(reads.len() * 20);
    for (q, i, r, t) in &reads {
        bytes.extend_from_slice(&q.to_le_bytes());
        bytes.extend_from_slice(&i.to_le_bytes());
        bytes.extend_from_slice(&r.to_le_bytes());
        bytes.extend_from_slice(&t.to_le_bytes());
    }
    std::fs::write(read_log(logs, peer), bytes)?;
    let result = PeerResult {
        ops,
        write_us: [
            write_latency.value_at_quantile(0.5),
            write_latency.value_at_quantile(0.99),
            write_latency.max(),
        ],
        hits: after.episodes.hits - before.episodes.hits,
        misses: after.episodes.misses - before.episodes.misses,
        foreign: delta(&after.foreign, &before.foreign),
        elapsed_secs: elapsed.as_secs_f64(),
    };
    println!("RESULT {}", serde_json::to_string(&result)?);
    Ok(())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(word)
}

/// (stale reads, reads checked, largest staleness) from the peers' logs.
fn staleness(logs: &Path, peers: usize) -> anyhow::Result<(u64, u64, Duration)> {
    // Per (peer, index): acknowledgement time of each revision, by revision.
    let mut acked: HashMap<(u32, u32), Vec<u64>> = HashMap::new();
    for peer in 0..peers as u32 {
        let bytes = std::fs::read(write_log(logs, peer))?;
        ensure!(bytes.len() % 16 == 0, "a torn write log");
        for record in bytes.chunks_exact(16) {
            let (i, r, t) = (u32_at(record, 0), u32_at(record, 4), u64_at(record, 8));
            let times = acked.entry((peer, i)).or_default();
            ensure!(
                times.len() == r as usize,
                "peer {peer}: revisions out of order"
            );
            times.push(t);
        }
    }
    let (mut stale, mut checked, mut worst) = (0u64, 0u64, 0u64);
    for peer in 0..peers as u32 {
        let bytes = std::fs::read(read_log(logs, peer))?;
        ensure!(bytes.len() % 20 == 0, "a torn read log");
        for record in bytes.chunks_exact(20) {
            let (q, i, r, began) = (
                u32_at(record, 0),
                u32_at(record, 4),
                u32_at(record, 8),
                u64_at(record, 12),
            );
            let times = acked
                .get(&(q, i))
                .with_context(|| format!("peer {q}'s episode {i} was never written"))?;
            ensure!(
                (r as usize) < times.len(),
                "peer {peer} read revision {r} of peer {q}'s episode {i}, which was never written"
            );
            checked += 1;
            // The first revision newer than the one read, if acknowledged before the read.
            if let Some(&next) = times.get(r as usize + 1)
                && next < began
            {
                stale += 1;
                worst = worst.max(began - next);
            }
        }
    }
    Ok((stale, checked, Duration::from_micros(worst)))
}

// ---- cost ----

async fn cost(dir: &Path, batches: usize) -> anyhow::Result<FeedCost> {
    ensure!(batches > 0, "at least one batch");
    let with = TursoStorage::open(TursoConfig::local(dir.join("with.db"))).await?;
    let without =
        TursoStorage::open(TursoConfig::local(dir.join("without.db")).change_feed(false)).await?;
    const WARM: usize = 5;
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..batches + WARM {
        let first = round as u64 * 100;
        let batch: Vec<Episode> = (first..first + 100)
            .map(|n| crate::agent::episode(n, 0))
            .collect();
        // Alternate which goes first, so neither always runs on a warmer machine.
        for feed in [round % 2 == 0, round % 2 != 0] {
            let store = if feed { &with } else { &without };
            let began = Instant::now();
            store.store_episodes(&batch).await?;
            let took = began.elapsed();
            if round >= WARM {
                if feed { &mut on } else { &mut off }.push(took);
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let current = with.change_position().await?;
    let mut h = latency_histogram()?;
    for i in 0..20_000 {
        let began = Instant::now();
        let answer = with.changes_since(current).await?;
        let took = began.elapsed();
        ensure!(
            matches!(&answer, ChangesSince::Complete { writes, .. } if writes.is_empty()),
            "nothing changed, yet the feed said {answer:?}"
        );
        if i >= 1_000 {
            h.saturating_record(took.as_nanos() as u64);
        }
    }
    Ok(FeedCost {
        batch_with: median(&mut on),
        batch_without: median(&mut off),
        check_p50: Duration::from_nanos(h.value_at_quantile(0.5)),
        check_p99: Duration::from_nanos(h.value_at_quantile(0.99)),
    })
}

// ---- child processes ----

fn spawn_child(exe: &Path, args: &[&str]) -> anyhow::Result<tokio::process::Child> {
    tokio::process::Command::new(exe)
        .arg("feed-child")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting a memory-bench child process")
}

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

fn child_lines(child: &mut tokio::process::Child) -> anyhow::Result<Lines> {
    Ok(BufReader::new(child.stdout.take().context("the child's stdout")?).lines())
}

/// Waits (up to a minute) for the line starting with `prefix`; answers the rest of it.
async fn expect_line(lines: &mut Lines, prefix: &str) -> anyhow::Result<String> {
    let wait = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.to_string());
            }
        }
        bail!("the child process ended before printing {prefix:?}")
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .with_context(|| format!("waiting for a child process to print {prefix:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_writes(logs: &Path, peer: u32, writes: &[(u32, u32, u64)]) {
        let mut bytes = Vec::new();
        for (i, r, t) in writes {
            bytes.extend_from_slice(&i.to_le_bytes());
            bytes.extend_from_slice(&r.to_le_bytes());
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        std::fs::write(write_log(logs, peer), bytes).unwrap();
    }

    fn record_reads(logs: &Path, peer: u32, reads: &[(u32, u32, u32, u64)]) {
        let mut bytes = Vec::new();
        for (q, i, r, t) in reads {
            bytes.extend_from_slice(&q.to_le_bytes());
            bytes.extend_from_slice(&i.to_le_bytes());
            bytes.extend_from_slice(&r.to_le_bytes());
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        std::fs::write(read_log(logs, peer), bytes).unwrap();
    }

    #[test]
    fn staleness_is_the_time_since_the_first_unseen_revision_was_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        // Peer 0 wrote revisions 0, 1, 2 of its episode 5 at 100, 200, 300 µs.
        record_writes(dir.path(), 0, &[(5, 0, 100), (5, 1, 200), (5, 2, 300)]);
        record_writes(dir.path(), 1, &[]);
        record_reads(dir.path(), 0, &[]);
        record_reads(
            dir.path(),
            1,
            &[
                (0, 5, 2, 1_000), // the newest: fresh
                (0, 5, 1, 250),   // revision 2 not yet acknowledged: fresh
                (0, 5, 0, 260),   // revision 1 acknowledged 60 µs before
                (0, 5, 1, 450),   // revision 2 acknowledged 150 µs before
            ],
        );
        let (stale, checked, worst) = staleness(dir.path(), 2).unwrap();
        assert_eq!((stale, checked), (2, 4));
        assert_eq!(worst, Duration::from_micros(150));
    }

    #[test]
    fn a_read_of_a_revision_never_written_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        record_writes(dir.path(), 0, &[(5, 0, 100)]);
        record_reads(dir.path(), 0, &[(0, 5, 1, 1_000)]);
        assert!(staleness(dir.path(), 1).is_err());
    }
}
