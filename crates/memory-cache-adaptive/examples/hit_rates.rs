//! Replays seeded traces through this crate's cache, a plain LRU (`lru`), moka (W-TinyLFU)
//! and Belady's optimum; prints one table and writes CSV.
//!
//! ```sh
//! cargo run --release -p memory-cache-adaptive --features simulator --example hit_rates -- [--quick] [--csv PATH]
//! ```
//!
//! Exits non-zero if a bar of the cache issue fails (Zipf 0.99 at 10 %: ≥ moka − 1 point and
//! ≥ LRU + 3 points; scan mix within 3 points of pure Zipf; loop far above LRU).

use std::fmt::Write as _;
use std::num::NonZeroUsize;

use memory_cache_adaptive::simulator::{
    AdaptivePolicy, Policy, ReplayResult, Trace, belady, replay, traces,
};

struct Lru(lru::LruCache<u64, ()>);

impl Policy for Lru {
    fn name(&self) -> String {
        "lru".into()
    }
    fn access(&mut self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.put(key, ());
        false
    }
}

struct Moka(moka::sync::Cache<u64, ()>);

impl Policy for Moka {
    fn name(&self) -> String {
        "moka".into()
    }
    fn access(&mut self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, ());
        false
    }
}

struct Row {
    trace: String,
    percent: u64,
    capacity: usize,
    results: Vec<(String, ReplayResult)>,
    optimum: ReplayResult,
}

impl Row {
    fn ratio(&self, policy: &str) -> f64 {
        self.results
            .iter()
            .find(|(n, _)| n == policy)
            .map_or(0.0, |(_, r)| r.hit_ratio())
    }
    fn core_ratio(&self, policy: &str) -> f64 {
        self.results
            .iter()
            .find(|(n, _)| n == policy)
            .map_or(0.0, |(_, r)| r.core_hit_ratio())
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let csv_path = args
        .iter()
        .position(|a| a == "--csv")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "target/hit_rates.csv".into());
    let (keys, requests) = if quick {
        (20_000, 200_000)
    } else {
        (100_000, 1_000_000)
    };

    let workloads: Vec<Trace> = vec![
        traces::zipf(keys, 0.8, requests, 1),
        traces::zipf(keys, 0.99, requests, 2),
        traces::zipf(keys, 1.2, requests, 3),
        traces::zipf_with_scans(keys, requests, requests / 20, (keys / 10) as usize, 4),
        traces::looping(keys / 10 + keys / 100, requests),
        traces::agent_sessions(keys, requests, 5),
    ];
    let mut rows = Vec::new();
    for trace in &workloads {
        for percent in [1u64, 5, 10, 20] {
            // The loop is sized against the 10 % cache; other sizes still show its shape.
            let capacity = usize::try_from(keys * percent / 100)?;
            let mut policies: Vec<Box<dyn Policy>> = vec![
                Box::new(AdaptivePolicy::new(capacity)),
                Box::new(Lru(lru::LruCache::new(
                    NonZeroUsize::new(capacity).ok_or_else(|| anyhow::anyhow!("zero capacity"))?,
                ))),
                Box::new(Moka(moka::sync::Cache::new(capacity as u64))),
            ];
            let results = policies
                .iter_mut()
                .map(|p| (p.name(), replay(trace, p.as_mut())))
                .collect();
            rows.push(Row {
                trace: trace.name.clone(),
                percent,
                capacity,
                results,
                optimum: belady::replay(trace, capacity),
            });
        }
    }

    println!("keys = {keys}, requests per trace = {requests} (scan trace: plus its scans)\n");
    println!(
        "{:<18} {:>5} {:>8} {:>9} {:>7} {:>7} {:>8} {:>9}",
        "workload", "size", "entries", "adaptive", "lru", "moka", "optimum", "gap(opt)"
    );
    let mut csv = String::from("workload,size_percent,entries,policy,hit_ratio,core_hit_ratio\n");
    for row in &rows {
        let opt = row.optimum.hit_ratio();
        println!(
            "{:<18} {:>4}% {:>8} {:>9.4} {:>7.4} {:>7.4} {:>8.4} {:>9.4}",
            row.trace,
            row.percent,
            row.capacity,
            row.ratio("adaptive"),
            row.ratio("lru"),
            row.ratio("moka"),
            opt,
            opt - row.ratio("adaptive"),
        );
        for (name, r) in row
            .results
            .iter()
            .chain([("optimum".to_string(), row.optimum)].iter())
        {
            writeln!(
                csv,
                "{},{},{},{},{:.6},{:.6}",
                row.trace,
                row.percent,
                row.capacity,
                name,
                r.hit_ratio(),
                r.core_hit_ratio()
            )?;
        }
    }
    if let Some(dir) = std::path::Path::new(&csv_path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&csv_path, csv)?;
    println!("\nCSV written to {csv_path}");

    let find = |trace: &str, percent: u64| {
        rows.iter()
            .find(|r| r.trace == trace && r.percent == percent)
            .ok_or_else(|| anyhow::anyhow!("no row {trace} {percent}%"))
    };
    let zipf = find("zipf-0.99", 10)?;
    let scans = find("zipf-0.99+scans", 10)?;
    let looped = find(&workloads[4].name, 10)?;
    let checks = [
        (
            "zipf-0.99 @10%: adaptive >= moka - 0.01",
            zipf.ratio("adaptive") >= zipf.ratio("moka") - 0.01,
            format!("{:.4} vs {:.4}", zipf.ratio("adaptive"), zipf.ratio("moka")),
        ),
        (
            "zipf-0.99 @10%: adaptive >= lru + 0.03",
            zipf.ratio("adaptive") >= zipf.ratio("lru") + 0.03,
            format!("{:.4} vs {:.4}", zipf.ratio("adaptive"), zipf.ratio("lru")),
        ),
        (
            "scan mix @10%: zipf-request hit ratio within 0.03 of pure zipf",
            (scans.core_ratio("adaptive") - zipf.ratio("adaptive")).abs() <= 0.03,
            format!(
                "{:.4} vs {:.4}",
                scans.core_ratio("adaptive"),
                zipf.ratio("adaptive")
            ),
        ),
        (
            "loop @10%: adaptive far above lru (>= lru + 0.5)",
            looped.ratio("adaptive") >= looped.ratio("lru") + 0.5,
            format!(
                "{:.4} vs {:.4}",
                looped.ratio("adaptive"),
                looped.ratio("lru")
            ),
        ),
    ];
    println!();
    let mut failed = 0;
    for (what, ok, numbers) in checks {
        println!("{} {what} ({numbers})", if ok { "PASS" } else { "FAIL" });
        failed += usize::from(!ok);
    }
    anyhow::ensure!(failed == 0, "{failed} hit-ratio bar(s) failed");
    Ok(())
}
