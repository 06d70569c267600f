//! `memory-bench lifecycle`: the `memory` command's export and import on typical episodes
//! in a local libSQL file, and retention's delete chunks.
//!
//! - **Export** every item to a JSON Lines file, **import** it into an empty file: items per
//!   second each way (target 10,000), and the heap's peak above where each phase began
//!   (sampled every millisecond from the binary's counting allocator), on two stores, one a
//!   quarter of the other's size: the peak must not grow with the store.
//! - **Prune** half of each domain from the imported copy with the default options (chunks
//!   sized to take 20 ms each): the largest chunk, the longest and the mean delete (the
//!   issue asks for "a few tens of milliseconds").

use std::fmt;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memory_cli::jsonl::{self, Kinds};
use memory_core::retention::{self, PruneOptions, RetentionPolicy};
use memory_core::testing::typical::typical_episode;
use memory_core::{EpisodeQuery, StorageBackend, Timestamp};
use memory_storage_turso::{TursoConfig, TursoStorage};
use serde::Serialize;

/// The throughput target, items per second each way.
pub const TARGET_PER_SEC: f64 = 10_000.0;

/// The longest one delete of a prune may take, ms ("a few tens of milliseconds").
pub const PRUNE_LONGEST_MS: f64 = 50.0;

/// One store size's figures.
#[derive(Clone, Debug, Serialize)]
pub struct SizeFigures {
    /// Episodes in the store.
    pub items: usize,
    /// Bytes of the export file.
    pub export_bytes: u64,
    /// Export, items per second.
    pub export_per_sec: f64,
    /// Heap peak above the export's start, bytes.
    pub export_peak_bytes: u64,
    /// Import, items per second.
    pub import_per_sec: f64,
    /// Heap peak above the import's start, bytes.
    pub import_peak_bytes: u64,
    /// Delete chunks of the prune.
    pub prune_chunks: u64,
    /// Episodes in its largest chunk.
    pub prune_largest: usize,
    /// The longest chunk, milliseconds.
    pub prune_longest_ms: f64,
    /// The prune's mean chunk (its whole time over its chunks, reads included), ms.
    pub prune_mean_ms: f64,
}

/// Both sizes.
#[derive(Clone, Debug, Serialize)]
pub struct LifecycleReport {
    /// The smaller store, then the larger.
    pub sizes: Vec<SizeFigures>,
}

impl LifecycleReport {
    /// Whether both directions reach the target on the larger store, neither peak grows by
    /// more than half from the smaller store to the larger, and no delete of a prune took
    /// longer than [`PRUNE_LONGEST_MS`].
    pub fn passes(&self) -> bool {
        let (Some(small), Some(large)) = (self.sizes.first(), self.sizes.last()) else {
            return false;
        };
        let flat = |a: u64, b: u64| (b as f64) <= 1.5 * (a.max(1 << 20) as f64);
        large.export_per_sec >= TARGET_PER_SEC
            && large.import_per_sec >= TARGET_PER_SEC
            && flat(small.export_peak_bytes, large.export_peak_bytes)
            && flat(small.import_peak_bytes, large.import_peak_bytes)
            && self
                .sizes
                .iter()
                .all(|s| s.prune_longest_ms <= PRUNE_LONGEST_MS)
    }
}

impl fmt::Display for LifecycleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        for s in &self.sizes {
            writeln!(
                f,
                "{} typical episodes, local file ({:.1} MiB exported)\n  export {:>8.0} items/s, heap peak {:.1} MiB\n  import {:>8.0} items/s, heap peak {:.1} MiB\n  prune half of each domain: {} chunks of at most {}, longest {:.1} ms, mean {:.1} ms",
                s.items,
                mib(s.export_bytes),
                s.export_per_sec,
                mib(s.export_peak_bytes),
                s.import_per_sec,
                mib(s.import_peak_bytes),
                s.prune_chunks,
                s.prune_largest,
                s.prune_longest_ms,
                s.prune_mean_ms
            )?;
        }
        writeln!(
            f,
            "targets: >= {TARGET_PER_SEC:.0} items/s each way on the larger store, heap peaks \
             not growing with the store (at most 1.5x), no delete over {PRUNE_LONGEST_MS} ms: {}",
            if self.passes() { "PASS" } else { "FAIL" }
        )
    }
}

/// Samples `heap()` every millisecond while `work` runs: the peak above the start.
async fn peak_during<T>(
    heap: fn() -> u64,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, u64)> {
    let start = heap();
    let (stop, peak) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(start)),
    );
    let sampler = {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(heap(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let result = work.await;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    Ok((result?, peak.load(Ordering::Relaxed).saturating_sub(start)))
}

async fn one_size(dir: &Path, items: usize, heap: fn() -> u64) -> anyhow::Result<SizeFigures> {
    let source =
        TursoStorage::open(TursoConfig::local(dir.join(format!("source-{items}.db")))).await?;
    for start in (0..items).step_by(1_000) {
        let batch: Vec<_> = (start..(start + 1_000).min(items))
            .map(|i| typical_episode(i as u64))
            .collect();
        source.store_episodes(&batch).await?;
    }
    let file = dir.join(format!("export-{items}.jsonl"));
    let started = Instant::now();
    let (counts, export_peak) = peak_during(heap, async {
        let mut out = BufWriter::new(std::fs::File::create(&file)?);
        jsonl::export(&source, Kinds::ALL, &EpisodeQuery::new(), &mut out, |_| {}).await
    })
    .await?;
    let export_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(counts.episodes == items as u64, "exported {counts:?}");
    drop(source);

    let target =
        TursoStorage::open(TursoConfig::local(dir.join(format!("target-{items}.db")))).await?;
    let started = Instant::now();
    let (done, import_peak) = peak_during(heap, async {
        let input = BufReader::new(std::fs::File::open(&file)?);
        jsonl::import(&target, input, 1, 500, |_| {}).await
    })
    .await?;
    let import_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(done.counts.episodes == items as u64, "imported {done:?}");

    let per_domain = items / memory_core::testing::typical::TYPICAL_DOMAINS.len() / 2;
    let policy = RetentionPolicy::new().keep_newest_per_domain(per_domain);
    let started = Instant::now();
    let pruned =
        retention::prune(&target, &policy, Timestamp::now(), PruneOptions::default()).await?;
    let prune_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(pruned.removed > 0, "the prune removed nothing: {pruned:?}");
    Ok(SizeFigures {
        items,
        export_bytes: std::fs::metadata(&file)?.len(),
        export_per_sec: items as f64 / export_secs.max(1e-9),
        export_peak_bytes: export_peak,
        import_per_sec: items as f64 / import_secs.max(1e-9),
        import_peak_bytes: import_peak,
        prune_chunks: pruned.chunks,
        prune_largest: pruned.largest_chunk,
        prune_longest_ms: pruned.longest_chunk.as_secs_f64() * 1e3,
        prune_mean_ms: prune_secs * 1e3 / pruned.chunks.max(1) as f64,
    })
}

/// Runs the measurement on `items / 4` and `items` episodes.
pub async fn lifecycle(items: usize, heap: fn() -> u64) -> anyhow::Result<LifecycleReport> {
    let dir = tempfile::tempdir()?;
    let small = one_size(dir.path(), items / 4, heap).await?;
    let large = one_size(dir.path(), items, heap).await?;
    Ok(LifecycleReport {
        sizes: vec![small, large],
    })
}
