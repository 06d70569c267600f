//! The dashboard: each of the Phase 3 plan's metrics with the plan's baseline, its target,
//! this run's measurement and whether it passes; as a terminal table and as markdown.

use crate::run::RunResult;

/// One dashboard row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// What is measured.
    pub metric: &'static str,
    /// The Phase 3 plan's starting point.
    pub baseline: &'static str,
    /// The Phase 3 plan's target.
    pub target: &'static str,
    /// This run's measurement, formatted.
    pub measured: String,
    /// `Some(pass)` when the target is a bar; `None` when the metric is only reported.
    pub pass: Option<bool>,
}

fn ms(us: f64) -> String {
    if us >= 1_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// The rows for `r`.
pub fn rows(r: &RunResult) -> Vec<Row> {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    vec![
        Row {
            metric: "cache hit rate (episodes)",
            baseline: "70 %",
            target: "85–90 % (≥ 85 %)",
            measured: format!(
                "{:.1} % (offline reference {:.1} %)",
                r.episode_hit_ratio * 100.0,
                r.episode_hit_ratio_reference * 100.0
            ),
            pass: Some(r.episode_hit_ratio >= 0.85),
        },
        Row {
            metric: "query-result hit rate",
            baseline: "—",
            target: "reported",
            measured: format!("{:.1} %", r.query_hit_ratio * 100.0),
            pass: None,
        },
        Row {
            metric: "cached query latency p50",
            baseline: "45 ms",
            target: "5–10 ms (≤ 10 ms)",
            measured: ms(r.query.p50_us),
            pass: Some(r.query.p50_us <= 10_000.0),
        },
        Row {
            metric: "cached query latency p95",
            baseline: "—",
            target: "reported",
            measured: ms(r.query.p95_us),
            pass: None,
        },
        Row {
            metric: "cached query latency p99",
            baseline: "—",
            target: "< 100 ms",
            measured: ms(r.query.p99_us),
            pass: Some(r.query.p99_us < 100_000.0),
        },
        Row {
            metric: "bulk insert (batches of 100)",
            baseline: "50 episodes/s",
            target: "200–300 episodes/s (≥ 200)",
            measured: format!("{:.0} episodes/s", r.bulk_insert_per_sec),
            pass: Some(r.bulk_insert_per_sec >= 200.0),
        },
        Row {
            metric: "statement preparation (mean)",
            baseline: "≈ 5 ms",
            target: "< 1 ms",
            measured: ms(r.statement_prepare_us),
            pass: Some(r.statement_prepare_us < 1_000.0),
        },
        Row {
            metric: "statement-cache hit rate",
            baseline: "—",
            target: "> 95 %",
            measured: format!("{:.1} %", r.statement_hit_ratio * 100.0),
            pass: Some(r.statement_hit_ratio > 0.95),
        },
        Row {
            metric: "memory used by caches",
            baseline: "—",
            target: "< 500 MB",
            measured: format!(
                "{:.1} MiB of a {:.0} MiB budget",
                mib(r.cache_bytes),
                mib(r.cache_budget_bytes)
            ),
            pass: Some(r.cache_bytes < 500 * 1000 * 1000),
        },
        Row {
            metric: "eviction rate",
            baseline: "—",
            target: "reported",
            measured: format!("{:.1} per 1,000 lookups", r.evictions_per_1000_lookups),
            pass: None,
        },
        Row {
            metric: "get p99",
            baseline: "—",
            target: "< 100 ms",
            measured: ms(r.get.p99_us),
            pass: Some(r.get.p99_us < 100_000.0),
        },
        Row {
            metric: "store p99",
            baseline: "—",
            target: "< 100 ms",
            measured: ms(r.store.p99_us),
            pass: Some(r.store.p99_us < 100_000.0),
        },
        Row {
            metric: "batch store p99",
            baseline: "—",
            target: "< 100 ms",
            measured: ms(r.store_batch.p99_us),
            pass: Some(r.store_batch.p99_us < 100_000.0),
        },
    ]
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "—",
    }
}

/// The dashboard as a markdown table, with a heading line saying what ran.
pub fn markdown(r: &RunResult) -> String {
    let mut out = format!(
        "`memory-bench run`: {} libSQL, cached, {} cores; {} episodes, {} sessions counted \
         after as many to warm up.\n\n| metric | plan baseline | plan target | this run | |\n\
         | --- | --- | --- | --- | --- |\n",
        r.location, r.cores, r.history, r.sessions
    );
    for row in rows(r) {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.metric,
            row.baseline,
            row.target,
            row.measured,
            verdict(row.pass)
        ));
    }
    out
}

/// The same-run raw-libsql comparison as markdown (or why there is none).
pub fn raw_markdown(r: &RunResult) -> String {
    match &r.raw {
        None => "Raw-libsql ratios: measured on local runs only (a server's database is shared \
                 with whatever else writes to it).\n"
            .to_string(),
        Some(raw) => format!(
            "Same run, raw libsql beside the store (one connection, reused prepared \
             statements, one transaction per batch; its own copy of the data):\n\n\
             | figure | raw libsql | store | store ÷ raw |\n| --- | --- | --- | --- |\n\
             | bulk insert, episodes/s, batches of 100 (higher is better) | {:.0} | {:.0} | {:.2} |\n\
             | get by id p50, uncached store (lower is better) | {} | {} | {:.2} |\n\
             | get by id p50, cached store (lower is better) | {} | {} | {:.3} |\n",
            raw.raw_bulk_insert_per_sec,
            r.bulk_insert_per_sec,
            r.bulk_insert_per_sec / raw.raw_bulk_insert_per_sec.max(f64::EPSILON),
            ms(raw.raw_get_p50_us),
            ms(raw.store_get_p50_us),
            raw.store_get_p50_us / raw.raw_get_p50_us.max(f64::EPSILON),
            ms(raw.raw_get_p50_us),
            ms(raw.cached_get_p50_us),
            raw.cached_get_p50_us / raw.raw_get_p50_us.max(f64::EPSILON),
        ),
    }
}

/// Whether every row with a bar passes.
pub fn all_pass(r: &RunResult) -> bool {
    rows(r).iter().all(|row| row.pass != Some(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Latency;

    fn result() -> RunResult {
        let latency = Latency {
            calls: 10,
            p50_us: 5.0,
            p95_us: 50.0,
            p99_us: 500.0,
        };
        RunResult {
            cores: 2,
            location: "local file".into(),
            history: 100,
            sessions: 10,
            bulk_insert_per_sec: 10_000.0,
            episode_hit_ratio: 0.9,
            episode_hit_ratio_reference: 0.95,
            query_hit_ratio: 0.3,
            query: latency.clone(),
            get: latency.clone(),
            store: latency.clone(),
            store_batch: latency,
            statement_prepare_us: 20.0,
            statement_hit_ratio: 0.99,
            statements_prepared: 40,
            cache_bytes: 10 << 20,
            cache_budget_bytes: 256 << 20,
            evictions_per_1000_lookups: 1.0,
            raw: None,
            hit_ratio_curve: Vec::new(),
            episode_budget_share: 0.0,
        }
    }

    #[test]
    fn bars_pass_and_fail_on_their_thresholds() {
        let mut r = result();
        assert!(all_pass(&r));
        r.episode_hit_ratio = 0.849;
        assert!(!all_pass(&r));
        r.episode_hit_ratio = 0.85;
        r.statement_hit_ratio = 0.95;
        assert!(
            !all_pass(&r),
            "the statement-cache bar is strictly above 95 %"
        );
        r.statement_hit_ratio = 0.96;
        r.query.p50_us = 10_001.0;
        assert!(!all_pass(&r));
    }

    #[test]
    fn markdown_has_a_row_per_metric() {
        let text = markdown(&result());
        assert_eq!(text.matches("| PASS |").count(), 10);
        assert!(text.contains("| cache hit rate (episodes) | 70 % |"));
    }
}
