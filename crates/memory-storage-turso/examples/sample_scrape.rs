//! Serves the metrics of an instrumented, cached libSQL store (a local file in a temporary
//! folder) after a small workload, scrapes its own endpoint once and prints the text.
//!
//! ```sh
//! cargo run -p memory-storage-turso --example sample_scrape
//! ```

use std::sync::Arc;

use memory_core::testing::samples;
use memory_core::{EpisodeId, EpisodeQuery, StorageBackend};
use memory_metrics::{
    CacheCollector, Instrumented, OperationMetrics, PoolCollector, StatementCollector,
    serve_metrics,
};
use memory_storage_turso::{CacheSettings, CachedStorage, TursoConfig, TursoStorage};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let turso = TursoStorage::open(TursoConfig::local(dir.path().join("memory.db"))).await?;
    let registry = prometheus::Registry::new();
    let metrics = OperationMetrics::register(&registry)?;
    let store = Arc::new(Instrumented::new(
        CachedStorage::new(turso.clone(), &CacheSettings::default())?,
        &metrics,
    ));
    let stats = Arc::new(turso);
    registry.register(Box::new(CacheCollector::new(store.clone(), "main")?))?;
    registry.register(Box::new(PoolCollector::new(stats.clone(), "main")?))?;
    registry.register(Box::new(StatementCollector::new(stats, "main")?))?;

    let episodes: Vec<_> = (0..100).map(samples::episode).collect();
    store.store_episodes(&episodes).await?;
    for e in episodes.iter().cycle().take(1_000) {
        store.get_episode(e.id).await?;
    }
    store.get_episode(EpisodeId::new()).await?;
    let query = EpisodeQuery::new().domain(episodes[0].context.domain.clone());
    for _ in 0..3 {
        store.query_episodes(&query).await?;
    }

    let server = serve_metrics(([127, 0, 0, 1], 0).into(), registry)?;
    let uri: hyper::Uri = format!("http://{}/metrics", server.addr()).parse()?;
    let response = hyper::Client::new().get(uri).await?;
    let body = hyper::body::to_bytes(response.into_body()).await?;
    print!("{}", String::from_utf8(body.to_vec())?);
    server.shutdown().await?;
    Ok(())
}
