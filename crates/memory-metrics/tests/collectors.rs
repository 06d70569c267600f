//! Every collector on fixed snapshots from the stats traits of `memory_core::stats`: what a
//! scrape prints is exactly what the source reported. No store is involved (the scrape of a
//! real cached libSQL store is `memory-storage-turso/tests/metrics_scrape.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use memory_core::stats::{
    CacheStatsSnapshot, CachedStats, CachedStorageStats, ForeignWriteStats, PoolStats,
    PoolStatsSnapshot, StatementCacheStats, StatementStatsSnapshot, WAIT_SLOTS,
};
use memory_metrics::{CacheCollector, PoolCollector, StatementCollector};

struct Fixed;

impl CachedStats for Fixed {
    fn cached_stats(&self) -> CachedStorageStats {
        CachedStorageStats {
            episodes: CacheStatsSnapshot {
                hits: 30,
                negative_hits: 5,
                misses: 10,
                evicted_capacity: 7,
                evicted_invalidated: 2,
                admissions_rejected: 3,
                entries: 12,
                weight: 4_096,
                ..CacheStatsSnapshot::default()
            },
            foreign: ForeignWriteStats {
                writes: 11,
                invalidated: 13,
                flushes_no_feed: 4,
                flushes_feed_behind: 2,
                flushes_failed: 1,
                feed_lag: 6,
            },
            ..CachedStorageStats::default()
        }
    }
}

impl PoolStats for Fixed {
    fn pool_stats(&self) -> PoolStatsSnapshot {
        let mut wait_histogram = [0; WAIT_SLOTS];
        wait_histogram[0] = 2; // <= 10 µs
        wait_histogram[5] = 1; // <= 5 ms
        PoolStatsSnapshot {
            max_size: 8,
            open: 3,
            in_use: 1,
            idle: 2,
            waits: 3,
            wait_time: Duration::from_millis(4),
            wait_histogram,
            timeouts: 1,
            created: 5,
            discarded: 2,
        }
    }
}

impl StatementCacheStats for Fixed {
    fn statement_stats(&self) -> StatementStatsSnapshot {
        StatementStatsSnapshot {
            hits: 99,
            misses: 1,
            evictions: 0,
            prepare_time: Duration::from_micros(250),
        }
    }
}

fn scrape() -> String {
    let registry = prometheus::Registry::new();
    let source = Arc::new(Fixed);
    registry
        .register(Box::new(CacheCollector::new(source.clone(), "s").unwrap()))
        .unwrap();
    registry
        .register(Box::new(PoolCollector::new(source.clone(), "s").unwrap()))
        .unwrap();
    registry
        .register(Box::new(StatementCollector::new(source, "s").unwrap()))
        .unwrap();
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap()
}

#[test]
fn a_scrape_prints_exactly_what_the_sources_reported() {
    let text = scrape();
    for line in [
        r#"memory_cache_hits_total{cache="episodes",store="s"} 30"#,
        r#"memory_cache_negative_hits_total{cache="episodes",store="s"} 5"#,
        r#"memory_cache_misses_total{cache="episodes",store="s"} 10"#,
        r#"memory_cache_evictions_total{cache="episodes",reason="capacity",store="s"} 7"#,
        r#"memory_cache_evictions_total{cache="episodes",reason="invalidated",store="s"} 2"#,
        r#"memory_cache_admissions_rejected_total{cache="episodes",store="s"} 3"#,
        r#"memory_cache_entries{cache="episodes",store="s"} 12"#,
        r#"memory_cache_bytes{cache="episodes",store="s"} 4096"#,
        r#"memory_cache_hit_ratio{cache="episodes",store="s"} 0.75"#,
        r#"memory_cache_foreign_flushes_total{reason="no_feed",store="s"} 4"#,
        r#"memory_cache_foreign_flushes_total{reason="feed_behind",store="s"} 2"#,
        r#"memory_cache_foreign_flushes_total{reason="failed",store="s"} 1"#,
        r#"memory_cache_foreign_writes_total{store="s"} 11"#,
        r#"memory_cache_foreign_invalidations_total{store="s"} 13"#,
        r#"memory_cache_feed_lag{store="s"} 6"#,
        r#"memory_pool_connections{state="open",store="s"} 3"#,
        r#"memory_pool_connections{state="in_use",store="s"} 1"#,
        r#"memory_pool_max_connections{store="s"} 8"#,
        r#"memory_pool_timeouts_total{store="s"} 1"#,
        r#"memory_pool_connections_created_total{store="s"} 5"#,
        r#"memory_pool_connections_discarded_total{store="s"} 2"#,
        r#"memory_pool_wait_seconds_bucket{store="s",le="0.00001"} 2"#,
        r#"memory_pool_wait_seconds_bucket{store="s",le="0.005"} 3"#,
        r#"memory_pool_wait_seconds_count{store="s"} 3"#,
        r#"memory_pool_wait_seconds_sum{store="s"} 0.004"#,
        r#"memory_statement_cache_hits_total{store="s"} 99"#,
        r#"memory_statement_cache_misses_total{store="s"} 1"#,
        r#"memory_statement_cache_hit_ratio{store="s"} 0.99"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    // A cache with no lookups has no hit ratio (absent, not 0).
    assert!(
        !text.contains(r#"memory_cache_hit_ratio{cache="patterns""#),
        "{text}"
    );
}
