//! The dashboard: each metric with the Phase 3 plan's target (kept for reference), this
//! project's bar (`../shared/DESIGN.md`'s targets), this run's measurement and whether it
//! passes; as markdown.

use crate::curves::CurvePoint;
use crate::run::RunResult;

/// One dashboard row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// What is measured.
    pub metric: &'static str,
    /// The Phase 3 plan's target.
    pub plan: &'static str,
    /// This project's bar.
    pub bar: &'static str,
    /// This run's measurement, formatted.
    pub measured: String,
    /// `Some(pass)` when there is a bar; `None` when the metric is only reported.
    pub pass: Option<bool>,
}

fn ms(us: f64) -> String {
    if us >= 1_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else if us >= 10.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.2} µs")
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// The simulated point of `policy` at the run's own budget share, if the curve has one.
fn at_budget<'a>(r: &'a RunResult, policy: &str) -> Option<&'a CurvePoint> {
    r.hit_ratio_curve
        .iter()
        .find(|p| p.policy == policy && p.budget_share == r.episode_budget_share)
}

/// "LRU x %, optimum y %" at the run's budget, with `pick` choosing the figure.
fn beside(r: &RunResult, pick: fn(&CurvePoint) -> f64) -> String {
    match (at_budget(r, "LRU"), at_budget(r, "optimum")) {
        (Some(lru), Some(opt)) => format!(
            " (same budget, simulated: LRU {}, optimum {})",
            pct(pick(lru)),
            pct(pick(opt))
        ),
        _ => " (the cache holds the whole data set: no eviction to compare)".to_string(),
    }
}

/// The cache's memory: measured heap beside what the weighers account.
fn memory_row(r: &RunResult) -> Row {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let (measured, pass) = match r.cache_heap_bytes {
        Some(heap) => {
            let off = heap as f64 / r.cache_bytes.max(1) as f64;
            (
                format!(
                    "{:.1} MiB heap for {:.1} MiB accounted ({:.2}×), budget {:.0} MiB",
                    mib(heap),
                    mib(r.cache_bytes),
                    off,
                    mib(r.cache_budget_bytes)
                ),
                Some((0.8..=1.2).contains(&off)),
            )
        }
        None => (
            format!(
                "{:.1} MiB accounted of a {:.0} MiB budget (heap not counted by this binary)",
                mib(r.cache_bytes),
                mib(r.cache_budget_bytes)
            ),
            None,
        ),
    };
    Row {
        metric: "memory held by the caches",
        plan: "< 500 MB",
        bar: "heap within ± 20 % of the bytes the budget counts",
        measured,
        pass,
    }
}

/// The rows for `r`.
pub fn rows(r: &RunResult) -> Vec<Row> {
    let mut rows = vec![
        Row {
            metric: "episode hit rate, agent sessions",
            plan: "85–90 %",
            bar: "≥ 85 %",
            measured: format!("{}{}", pct(r.episode_hit_ratio), beside(r, |p| p.hit_ratio)),
            pass: Some(r.episode_hit_ratio >= 0.85),
        },
        Row {
            metric: "episode hit rate without read-backs",
            plan: "—",
            bar: "reported",
            measured: format!(
                "{}{}",
                pct(r.episode_hit_ratio_without_read_backs),
                beside(r, |p| p.hit_ratio_without_read_backs)
            ),
            pass: None,
        },
        Row {
            metric: "query-result hit rate",
            plan: "—",
            bar: "reported",
            measured: pct(r.query_hit_ratio),
            pass: None,
        },
    ];
    rows.push(match &r.cached_get {
        Some(get) => Row {
            metric: "cached get, change check on",
            plan: "5–10 ms",
            bar: "p50 ≤ 1 µs, p99 ≤ 10 µs",
            measured: format!(
                "p50 {}, p99 {} ({} hits)",
                ms(get.p50_us),
                ms(get.p99_us),
                get.calls
            ),
            pass: Some(get.p50_us <= 1.0 && get.p99_us <= 10.0),
        },
        None => Row {
            metric: "cached get, change check on",
            plan: "5–10 ms",
            bar: "p50 ≤ 1 µs, p99 ≤ 10 µs",
            measured: "measured on local runs only".to_string(),
            pass: None,
        },
    });
    rows.push(match &r.beside_writer {
        Some((alone, beside)) => {
            let drop = 100.0 * (alone.hit_ratio - beside.hit_ratio);
            Row {
                metric: "hit rate beside another process writing 20/s",
                plan: "—",
                bar: "within 1 point of alone",
                measured: format!(
                    "{} (alone {}; {} foreign writes dropped item by item, {} flushes)",
                    pct(beside.hit_ratio),
                    pct(alone.hit_ratio),
                    beside.foreign.writes,
                    beside.foreign.flushes()
                ),
                pass: Some(drop <= 1.0),
            }
        }
        None => Row {
            metric: "hit rate beside another process writing 20/s",
            plan: "—",
            bar: "within 1 point of alone",
            measured: "measured by `memory-bench run` on a local file only".to_string(),
            pass: None,
        },
    });
    let bulk = format!("{:.0} episodes/s", r.bulk_insert_per_sec);
    rows.push(match &r.raw {
        Some(raw) => {
            let share = r.bulk_insert_per_sec / raw.raw_bulk_insert_per_sec.max(f64::EPSILON);
            Row {
                metric: "bulk insert, batches of 100",
                plan: "200–300 episodes/s",
                bar: "≥ 80 % of raw libsql, same run, interleaved",
                measured: format!(
                    "{bulk}, {} of raw's {:.0}",
                    pct(share),
                    raw.raw_bulk_insert_per_sec
                ),
                pass: Some(share >= 0.8),
            }
        }
        None => Row {
            metric: "bulk insert, batches of 100",
            plan: "200–300 episodes/s",
            bar: "remote: ≥ 5,000 episodes/s",
            measured: bulk,
            pass: Some(r.bulk_insert_per_sec >= 5_000.0),
        },
    });
    rows.extend([
        Row {
            metric: "statement-cache hit rate",
            plan: "> 95 %",
            bar: "≥ 99 %",
            measured: format!(
                "{} ({} prepared, {} each)",
                pct(r.statement_hit_ratio),
                r.statements_prepared,
                ms(r.statement_prepare_us)
            ),
            pass: Some(r.statement_hit_ratio >= 0.99),
        },
        memory_row(r),
        Row {
            metric: "eviction rate",
            plan: "—",
            bar: "reported",
            measured: format!("{:.1} per 1,000 lookups", r.evictions_per_1000_lookups),
            pass: None,
        },
        Row {
            metric: "workload query p50 / p99",
            plan: "p50 ≤ 10 ms",
            bar: "reported (tails under concurrency: issue 19)",
            measured: format!("{} / {}", ms(r.query.p50_us), ms(r.query.p99_us)),
            pass: None,
        },
        Row {
            metric: "workload get p50 / p99 (hits and misses)",
            plan: "p99 < 100 ms",
            bar: "reported",
            measured: format!("{} / {}", ms(r.get.p50_us), ms(r.get.p99_us)),
            pass: None,
        },
        Row {
            metric: "workload store p99 / batch store p99",
            plan: "< 100 ms",
            bar: "reported",
            measured: format!("{} / {}", ms(r.store.p99_us), ms(r.store_batch.p99_us)),
            pass: None,
        },
    ]);
    rows.extend(search_rows(r));
    rows
}

/// Similarity and text search: bars only on an enforced run (release, full size).
fn search_rows(r: &RunResult) -> [Row; 2] {
    const VECTOR: &str = "similarity search, top 10 (libSQL index)";
    const VECTOR_BAR: &str = "p50 ≤ 5 ms, p99 ≤ 20 ms, recall@10 ≥ 0.95, unfiltered and one domain";
    const TEXT: &str = "full-text search, 2 words, top 10";
    const TEXT_BAR: &str = "p50 ≤ 5 ms, every match found";
    let Some(s) = &r.search else {
        let row = |metric, bar| Row {
            metric,
            plan: "—",
            bar,
            measured: "measured by `memory-bench run` on a local file only".to_string(),
            pass: None,
        };
        return [row(VECTOR, VECTOR_BAR), row(TEXT, TEXT_BAR)];
    };
    let figures = |it: &mut dyn Iterator<Item = &crate::search::SearchFigures>, recall: bool| {
        it.map(|f| {
            let recall = if recall {
                format!(", recall {:.3}", f.recall)
            } else {
                String::new()
            };
            format!(
                "{}: p50 {:.2} ms, p99 {:.2} ms{recall}",
                f.what, f.p50_ms, f.p99_ms
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
    };
    let scale = format!("{} episodes × {} values", s.items, s.dimension);
    let exact = s.exact().map_or(String::new(), |e| {
        let unfiltered = s.index().next().map_or(f64::NAN, |i| i.p50_ms);
        format!(
            "; exact scan p50 {:.1} ms ({:.1}× the index, same run)",
            e.p50_ms,
            e.p50_ms / unfiltered
        )
    });
    let enforced = |pass: bool| s.enforced.then_some(pass);
    [
        Row {
            metric: VECTOR,
            plan: "—",
            bar: VECTOR_BAR,
            measured: format!("{scale}: {}{exact}", figures(&mut s.index(), true)),
            pass: enforced(s.index_passes()),
        },
        Row {
            metric: TEXT,
            plan: "—",
            bar: TEXT_BAR,
            measured: format!("{scale}: {}", figures(&mut s.text(), true)),
            pass: enforced(s.text_passes()),
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
         after as many to warm up.\n\n| metric | plan target | this project's bar | this run | |\n\
         | --- | --- | --- | --- | --- |\n",
        r.location, r.cores, r.history, r.sessions
    );
    for row in rows(r) {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.metric,
            row.plan,
            row.bar,
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
             statements, one transaction per batch; its own copy of the data, loaded in the \
             same loop as the store's, batches alternating; the cached store with its change \
             check on):\n\n\
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
    use crate::run::{Latency, RawComparison};
    use crate::search::{SearchFigures, SearchReport};

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
            bulk_insert_per_sec: 9_000.0,
            episode_hit_ratio: 0.9,
            episode_hit_ratio_without_read_backs: 0.8,
            episode_hit_ratio_reference: 0.95,
            query_hit_ratio: 0.3,
            query: latency.clone(),
            get: latency.clone(),
            cached_get: Some(Latency {
                calls: 1_000,
                p50_us: 0.9,
                p95_us: 2.0,
                p99_us: 9.0,
            }),
            store: latency.clone(),
            store_batch: latency,
            statement_prepare_us: 20.0,
            statement_hit_ratio: 0.995,
            statements_prepared: 40,
            cache_bytes: 100 << 20,
            cache_heap_bytes: Some(110 << 20),
            cache_budget_bytes: 256 << 20,
            evictions_per_1000_lookups: 1.0,
            raw: Some(RawComparison {
                raw_bulk_insert_per_sec: 10_000.0,
                ..RawComparison::default()
            }),
            hit_ratio_curve: Vec::new(),
            episode_budget_share: 0.0,
            beside_writer: Some((phase(0, 1.0), phase(20, 0.995))),
            search: Some(search()),
        }
    }

    fn figures(what: &str, p50_ms: f64, p99_ms: f64, recall: f64) -> SearchFigures {
        SearchFigures {
            what: what.into(),
            p50_ms,
            p99_ms,
            recall,
            searches: 100,
        }
    }

    fn search() -> SearchReport {
        SearchReport {
            items: 10_000,
            dimension: 384,
            batch_with_ms: 200.0,
            batch_without_ms: 30.0,
            bytes_per_vector: 7_000.0,
            searches: vec![
                figures("index unfiltered", 4.0, 15.0, 0.96),
                figures("index one domain (1/3)", 4.5, 19.0, 0.95),
                figures("text, 2 words, unfiltered", 1.0, 50.0, 1.0),
                figures("text, 2 words, one domain (1/3)", 1.0, 60.0, 1.0),
                figures("exact unfiltered", 40.0, 50.0, 1.0),
            ],
            others: Vec::new(),
            graph_builds: Vec::new(),
            sqld: None,
            enforced: true,
        }
    }

    fn phase(rate: u32, hit_ratio: f64) -> crate::feed::RatePhase {
        crate::feed::RatePhase {
            rate,
            written: 0,
            gets: 1_000,
            hit_ratio,
            foreign: Default::default(),
        }
    }

    #[test]
    fn bars_pass_and_fail_on_their_thresholds() {
        let r = result();
        assert!(all_pass(&r), "{}", markdown(&r));
        let fails = |change: fn(&mut RunResult)| {
            let mut r = result();
            change(&mut r);
            !all_pass(&r)
        };
        assert!(fails(|r| r.episode_hit_ratio = 0.849));
        assert!(fails(|r| r.statement_hit_ratio = 0.989));
        assert!(
            fails(|r| r.bulk_insert_per_sec = 7_999.0),
            "below 80 % of raw"
        );
        assert!(fails(|r| r.cached_get.as_mut().unwrap().p50_us = 1.01));
        assert!(fails(|r| r.cached_get.as_mut().unwrap().p99_us = 10.5));
        assert!(
            fails(|r| r.cache_heap_bytes = Some(121 << 20)),
            "heap 1.21x"
        );
        assert!(fails(|r| r.cache_heap_bytes = Some(79 << 20)), "heap 0.79x");
        assert!(
            !fails(|r| r.cache_heap_bytes = None),
            "not measured: no bar"
        );
        assert!(fails(|r| {
            r.raw = None;
            r.bulk_insert_per_sec = 4_999.0;
        }));
        assert!(
            fails(|r| r.beside_writer.as_mut().unwrap().1.hit_ratio = 0.989),
            "1.1 points below alone"
        );
        assert!(!fails(|r| r.beside_writer = None), "not measured: no bar");
        assert!(fails(
            |r| r.search.as_mut().unwrap().searches[1].recall = 0.949
        ));
        assert!(fails(
            |r| r.search.as_mut().unwrap().searches[0].p50_ms = 5.01
        ));
        assert!(fails(
            |r| r.search.as_mut().unwrap().searches[1].p99_ms = 20.5
        ));
        assert!(fails(
            |r| r.search.as_mut().unwrap().searches[3].p50_ms = 5.5
        ));
        assert!(fails(
            |r| r.search.as_mut().unwrap().searches[2].recall = 0.99
        ));
        assert!(
            !fails(|r| r.search.as_mut().unwrap().searches[2].p99_ms = 500.0),
            "text p99 has no bar"
        );
        assert!(
            !fails(|r| {
                let s = r.search.as_mut().unwrap();
                s.enforced = false;
                s.searches[0].recall = 0.5;
            }),
            "a quick run reports only"
        );
        assert!(!fails(|r| r.search = None), "not measured: no bar");
    }

    #[test]
    fn markdown_has_a_row_per_metric() {
        let text = markdown(&result());
        assert_eq!(text.matches("| PASS |").count(), 8, "{text}");
        assert!(
            text.contains("exact scan p50 40.0 ms (10.0× the index, same run)"),
            "{text}"
        );
        assert!(text.contains("| episode hit rate, agent sessions | 85–90 % | ≥ 85 % |"));
        assert!(text.contains("cached get, change check on"));
        assert!(text.contains("hit rate beside another process writing 20/s"));
    }
}
