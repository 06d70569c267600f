//! `memory-bench figures`: every figure the documentation quotes, in one generated page
//! (`docs/FIGURES.md`), each under the bench and setup it comes from.
//!
//! `scripts/figures.sh` runs everything (the criterion benches, the dashboard run, the
//! gate's measurement) into one folder and then calls this to render it; nothing here
//! measures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::measure::{self, Measurement};
use crate::report;
use crate::run::RunResult;

/// One criterion benchmark's result, read from `target/criterion`.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchFigure {
    /// The benchmark's id (`group/function[/value]`).
    pub id: String,
    /// The median time per iteration, in nanoseconds.
    pub median_ns: f64,
    /// The 95 % confidence interval of the median.
    pub low_ns: f64,
    /// Its upper bound.
    pub high_ns: f64,
}

#[derive(Deserialize)]
struct BenchmarkJson {
    full_id: String,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Deserialize)]
struct EstimatesJson {
    median: Estimate,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Every benchmark criterion saved under `dir` (its `new` results), sorted by id.
pub fn criterion_figures(dir: &Path) -> anyhow::Result<Vec<BenchFigure>> {
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries =
            std::fs::read_dir(&folder).with_context(|| format!("listing {}", folder.display()))?;
        for entry in entries {
            let path = entry?.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "new") {
                let (bench, estimates) = (path.join("benchmark.json"), path.join("estimates.json"));
                if bench.exists() && estimates.exists() {
                    let bench: BenchmarkJson = read_json(&bench)?;
                    let estimates: EstimatesJson = read_json(&estimates)?;
                    let median = estimates.median;
                    if !(median.point_estimate.is_finite() && median.point_estimate > 0.0) {
                        bail!(
                            "{}: a median of {} ns is impossible",
                            bench.full_id,
                            median.point_estimate
                        );
                    }
                    found.push(BenchFigure {
                        id: bench.full_id,
                        median_ns: median.point_estimate,
                        low_ns: median.confidence_interval.lower_bound,
                        high_ns: median.confidence_interval.upper_bound,
                    });
                }
            } else if path.file_name().is_none_or(|n| n != "report") {
                pending.push(path);
            }
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// The criterion results as a markdown table.
pub fn criterion_markdown(figures: &[BenchFigure]) -> String {
    let mut out =
        String::from("| benchmark | median | 95 % interval of the median |\n| --- | --- | --- |\n");
    for f in figures {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} – {} |",
            f.id,
            time(f.median_ns),
            time(f.low_ns),
            time(f.high_ns)
        );
    }
    out
}

/// The blocks the benches print themselves (hit ratios, latency histograms): each starts
/// with a line beginning `== ` and runs to the next blank line.
pub fn printed_blocks(log: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in log.lines() {
        if line.starts_with("== ") {
            inside = true;
        } else if line.trim().is_empty() {
            if inside {
                out.push('\n');
            }
            inside = false;
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The page, from the folder `scripts/figures.sh` filled.
pub fn page(dir: &Path, criterion: &Path, commit: &str) -> anyhow::Result<String> {
    let run: RunResult = read_json(&dir.join("run/run.json"))?;
    let gate: Measurement = read_json(&dir.join("gate/gate.json"))?;
    let log = std::fs::read_to_string(dir.join("bench.log"))
        .with_context(|| format!("reading {}", dir.join("bench.log").display()))?;
    let benches = criterion_figures(criterion)?;
    if benches.is_empty() {
        bail!("no criterion results under {}", criterion.display());
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "# Figures\n\nGenerated by `bash scripts/figures.sh` (do not edit by hand) at commit \
         `{commit}` on a machine with {} cores. Every figure the other documents quote comes \
         from this page, under the command and setup named in its section.\n\n",
        run.cores
    );
    let _ = write!(
        out,
        "## Dashboard: `memory-bench run`\n\nThe standard run (local libSQL file, cached as \
         `open_cached` builds it; release build).\n\n{}\n{}\n",
        report::markdown(&run),
        report::raw_markdown(&run)
    );
    if !run.hit_ratio_curve.is_empty() {
        out.push_str(
            "Hit ratio by the episode cache's budget (share of the bytes the run touches), \
             simulated on the run's trace; after the slash, without the read-backs:\n\n\
             | budget share | this cache | LRU | moka | optimum |\n| --- | --- | --- | --- | --- |\n",
        );
        let mut shares: Vec<f64> = run.hit_ratio_curve.iter().map(|p| p.budget_share).collect();
        shares.dedup();
        for share in shares {
            let cell = |policy: &str| {
                run.hit_ratio_curve
                    .iter()
                    .find(|p| p.policy == policy && p.budget_share == share)
                    .map_or("—".to_string(), |p| {
                        format!("{:.4} / {:.4}", p.hit_ratio, p.hit_ratio_without_read_backs)
                    })
            };
            let _ = writeln!(
                out,
                "| {:.1} % | {} | {} | {} | {} |",
                share * 100.0,
                cell("this cache"),
                cell("LRU"),
                cell("moka"),
                cell("optimum")
            );
        }
        out.push('\n');
    }
    let _ = write!(
        out,
        "## Regression gate: `memory-bench gate`\n\nOne measurement of the gate's figures \
         (deterministic ones from an evicting quick run, the Zipf run, sqld's request counts \
         and callgrind; timing ratios to raw libsql, median of the repetitions).\n\n{}\n",
        measure::figures(&gate)
    );
    let _ = write!(
        out,
        "## Criterion benches: `cargo bench -p memory-bench`\n\nEach bench's own setup is \
         described at the top of its file in `benches/benches/` and in docs/BENCHMARKS.md.\n\n{}\n",
        criterion_markdown(&benches)
    );
    let printed = printed_blocks(&log);
    if !printed.is_empty() {
        let _ = write!(
            out,
            "## Printed by the benches in the same run\n\n```\n{}```\n",
            printed
        );
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
mod tests {
    use super::*;

    fn bench(dir: &Path, id: &str, median: f64) {
        let new = dir.join(id.replace('/', "_")).join("new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            format!(r#"{{"full_id":"{id}"}}"#),
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            format!(
                r#"{{"median":{{"point_estimate":{median},"confidence_interval":{{"confidence_level":0.95,"lower_bound":{},"upper_bound":{}}}}}}}"#,
                median * 0.9,
                median * 1.1
            ),
        )
        .unwrap();
    }

    #[test]
    fn reads_criterion_results_and_refuses_impossible_ones() {
        let dir = tempfile::tempdir().unwrap();
        bench(dir.path(), "b/two", 2_500.0);
        bench(dir.path(), "a/one", 90.0);
        let figures = criterion_figures(dir.path()).unwrap();
        assert_eq!(
            figures.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["a/one", "b/two"]
        );
        let table = criterion_markdown(&figures);
        assert!(
            table.contains("| `b/two` | 2.50 µs | 2.25 µs – 2.75 µs |"),
            "{table}"
        );
        bench(dir.path(), "c/zero", 0.0);
        assert!(criterion_figures(dir.path()).is_err());
    }

    #[test]
    fn keeps_only_the_printed_blocks() {
        let log = "Benchmarking x\n== hit ratios\n   a 0.5\n\nnoise\n== latency\n   p50 1\n";
        assert_eq!(
            printed_blocks(log),
            "== hit ratios\n   a 0.5\n\n== latency\n   p50 1\n"
        );
    }
}
