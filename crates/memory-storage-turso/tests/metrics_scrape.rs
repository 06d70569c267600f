//! A known workload through an instrumented, cached libSQL store on a local file; the real
//! endpoint is scraped over HTTP and every count and hit ratio is checked against what the
//! workload did.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::Arc;

use memory_core::testing::samples;
use memory_core::{EpisodeId, EpisodeQuery, ErrorKind, StorageBackend};
use memory_metrics::{
    CacheCollector, Instrumented, OperationMetrics, PoolCollector, StatementCollector,
    serve_metrics,
};
use memory_storage_turso::{CacheSettings, CachedStorage, TursoConfig, TursoStorage};

/// The value of the sample `name` whose labels include all of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, number) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let found: BTreeMap<&str, &str> = label_text
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            labels
                .iter()
                .all(|(k, v)| found.get(k) == Some(v))
                .then(|| number.parse().ok())?
        })
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let uri: hyper::Uri = format!("http://{addr}/metrics").parse().unwrap();
    let response = hyper::Client::new().get(uri).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = hyper::body::to_bytes(response.into_body()).await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_reports_what_the_workload_did() {
    let dir = tempfile::tempdir().unwrap();
    let turso = TursoStorage::open(TursoConfig::local(dir.path().join("m.db")))
        .await
        .unwrap();
    let cached = CachedStorage::new(turso.clone(), &CacheSettings::default()).unwrap();
    let registry = prometheus::Registry::new();
    let metrics = OperationMetrics::register(&registry).unwrap();
    let store = Arc::new(Instrumented::new(cached, &metrics));
    registry
        .register(Box::new(
            CacheCollector::new(store.clone(), "test").unwrap(),
        ))
        .unwrap();
    let source = Arc::new(turso.clone());
    registry
        .register(Box::new(
            PoolCollector::new(source.clone(), "test").unwrap(),
        ))
        .unwrap();
    registry
        .register(Box::new(StatementCollector::new(source, "test").unwrap()))
        .unwrap();
    let backend = store.backend_name();

    // The workload.
    let episodes: Vec<_> = (0..10).map(samples::episode).collect();
    store.store_episodes(&episodes).await.unwrap();
    for _ in 0..2 {
        for e in &episodes {
            assert!(store.get_episode(e.id).await.unwrap().is_some());
        }
    }
    let unknown: Vec<EpisodeId> = (0..3).map(|_| EpisodeId::new()).collect();
    for _ in 0..2 {
        for id in &unknown {
            assert!(store.get_episode(*id).await.unwrap().is_none());
        }
    }
    let error = store.delete_episode(EpisodeId::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    let query = EpisodeQuery::new().domain(episodes[0].context.domain.clone());
    store.query_episodes(&query).await.unwrap();
    store.query_episodes(&query).await.unwrap();

    let server = serve_metrics(([127, 0, 0, 1], 0).into(), registry).unwrap();
    let text = scrape(server.addr()).await;
    let op = |operation: &str, outcome: &str| {
        value(
            &text,
            "memory_operation_duration_seconds_count",
            &[
                ("operation", operation),
                ("outcome", outcome),
                ("backend", backend),
            ],
        )
    };
    assert_eq!(op("store_episodes", "ok"), Some(1.0));
    assert_eq!(op("get_episode", "ok"), Some(20.0));
    assert_eq!(op("get_episode", "not_found"), Some(6.0));
    assert_eq!(op("delete_episode", "not_found"), Some(1.0));
    assert_eq!(op("query_episodes", "ok"), Some(2.0));
    assert_eq!(
        op("count_episodes", "ok"),
        None,
        "an operation never called is not exported"
    );
    assert_eq!(
        value(
            &text,
            "memory_batch_items_sum",
            &[("operation", "store_episodes")]
        ),
        Some(10.0)
    );
    assert_eq!(
        value(
            &text,
            "memory_operation_errors_total",
            &[("operation", "delete_episode"), ("kind", "not_found")]
        ),
        Some(1.0)
    );

    let cache =
        |name: &str, cache: &str| value(&text, name, &[("cache", cache), ("store", "test")]);
    // Written through: all 20 gets of stored episodes hit; the unknown ids miss once each,
    // then their "does not exist" is remembered and answers the second round (3 more hits).
    assert_eq!(cache("memory_cache_hits_total", "episodes"), Some(23.0));
    assert_eq!(cache("memory_cache_misses_total", "episodes"), Some(3.0));
    assert_eq!(
        cache("memory_cache_negative_hits_total", "episodes"),
        Some(3.0)
    );
    let ratio = cache("memory_cache_hit_ratio", "episodes").unwrap();
    assert!((ratio - 23.0 / 26.0).abs() < 1e-9, "{ratio}");
    assert_eq!(
        cache("memory_cache_hits_total", "episode_queries"),
        Some(1.0)
    );
    assert_eq!(
        cache("memory_cache_misses_total", "episode_queries"),
        Some(1.0)
    );
    assert_eq!(cache("memory_cache_entries", "episodes"), Some(13.0));
    assert_eq!(
        cache("memory_cache_hit_ratio", "patterns"),
        None,
        "no lookups, no ratio"
    );

    // The store itself: the misses reached it through the pool and its statement cache.
    assert!(value(&text, "memory_pool_connections_created_total", &[]).unwrap() >= 1.0);
    assert_eq!(
        value(&text, "memory_pool_connections", &[("state", "in_use")]),
        Some(0.0)
    );
    let stmt_hits = value(&text, "memory_statement_cache_hits_total", &[]).unwrap();
    let stmt_misses = value(&text, "memory_statement_cache_misses_total", &[]).unwrap();
    assert!(stmt_misses >= 1.0);
    let stmt_ratio = value(&text, "memory_statement_cache_hit_ratio", &[]).unwrap();
    assert!((stmt_ratio - stmt_hits / (stmt_hits + stmt_misses)).abs() < 1e-9);

    assert!(memory_metrics::DEFAULT_ADDR.ip().is_loopback());
    // Counts and timings only: no id, description, domain or tag of what was stored.
    for e in &episodes {
        for private in [
            e.id.to_string(),
            e.description.clone(),
            e.context.domain.clone(),
        ]
        .into_iter()
        .chain(e.tags.iter().cloned())
        {
            assert!(!text.contains(&private), "the scrape shows {private:?}");
        }
    }
    // Anything but GET /metrics is a 404, and shutdown is clean.
    let uri: hyper::Uri = format!("http://{}/other", server.addr()).parse().unwrap();
    assert_eq!(hyper::Client::new().get(uri).await.unwrap().status(), 404);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_waits_are_a_histogram_that_agrees_with_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let turso = TursoStorage::open(TursoConfig::local(dir.path().join("w.db")).max_connections(1))
        .await
        .unwrap();
    let registry = prometheus::Registry::new();
    registry
        .register(Box::new(
            PoolCollector::new(Arc::new(turso.clone()), "w").unwrap(),
        ))
        .unwrap();
    // A long batch holds the only connection; a count meanwhile has to wait for it.
    let batch: Vec<_> = (0..5_000).map(samples::episode).collect();
    let writer = {
        let turso = turso.clone();
        tokio::spawn(async move { turso.store_episodes(&batch).await })
    };
    while memory_storage_turso::PoolStats::pool_stats(&turso).in_use == 0 {
        tokio::task::yield_now().await;
    }
    turso.count_episodes().await.unwrap();
    writer.await.unwrap().unwrap();

    let stats = memory_storage_turso::PoolStats::pool_stats(&turso);
    assert!(stats.waits >= 1, "{stats:?}");
    let server = serve_metrics(([127, 0, 0, 1], 0).into(), registry).unwrap();
    let text = scrape(server.addr()).await;
    let store = [("store", "w")];
    assert_eq!(
        value(&text, "memory_pool_wait_seconds_count", &store),
        Some(stats.waits as f64)
    );
    let sum = value(&text, "memory_pool_wait_seconds_sum", &store).unwrap();
    assert!((sum - stats.wait_time.as_secs_f64()).abs() < 1e-9);
    assert_eq!(
        value(
            &text,
            "memory_pool_wait_seconds_bucket",
            &[("store", "w"), ("le", "+Inf")]
        ),
        Some(stats.waits as f64)
    );
    server.shutdown().await.unwrap();
}
