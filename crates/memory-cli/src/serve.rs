//! `memory serve-metrics`: a store's Prometheus metrics at `GET /metrics` until the
//! process is told to stop.
//!
//! What it exports: the store's contents, read every `interval` through an
//! [`Instrumented`] handle (`memory_store_items{kind}`, `memory_store_file_bytes`,
//! `memory_store_layout_version`, and `memory_store_up`, 0 while the last read failed), the
//! operation metrics of those reads, and for libSQL the connection pool's and the
//! statement caches' counters ([`PoolCollector`], [`StatementCollector`]). Names are in
//! docs/METRICS.md.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use memory_core::StorageBackend;
use memory_metrics::{Instrumented, OperationMetrics, PoolCollector, StatementCollector};
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

use crate::location::{Location, Opened};

/// The gauges of what the store holds.
struct Contents {
    items: IntGaugeVec,
    file_bytes: IntGauge,
    layout: IntGauge,
    up: IntGauge,
}

impl Contents {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let items = IntGaugeVec::new(
            Opts::new("memory_store_items", "Items stored, by kind."),
            &["kind"],
        )?;
        let file_bytes = IntGauge::new(
            "memory_store_file_bytes",
            "Size of the store's file (absent for a server).",
        )?;
        let layout = IntGauge::new(
            "memory_store_layout_version",
            "The libSQL schema version, or the redb file format.",
        )?;
        let up = IntGauge::new(
            "memory_store_up",
            "Whether the last read of the store's contents succeeded (1) or failed (0).",
        )?;
        registry.register(Box::new(items.clone()))?;
        registry.register(Box::new(layout.clone()))?;
        registry.register(Box::new(up.clone()))?;
        Ok(Contents {
            items,
            file_bytes,
            layout,
            up,
        })
    }

    async fn refresh(
        &self,
        store: &dyn StorageBackend,
        opened: &Opened,
        location: &Location,
    ) -> anyhow::Result<()> {
        let counts = [
            ("episode", store.count_episodes().await?),
            ("pattern", store.count_patterns().await?),
            ("heuristic", store.count_heuristics().await?),
        ];
        for (kind, n) in counts {
            self.items
                .with_label_values(&[kind])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.layout.set(opened.layout_version().await?);
        if let Some(path) = location.file() {
            let bytes = std::fs::metadata(path)?.len();
            self.file_bytes
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        Ok(())
    }
}

/// Serves the metrics of the store at `location` on `addr` until `stop` completes, reading
/// its contents every `interval`. `ready` is called with the address bound (port 0 picks
/// one).
pub async fn serve(
    location: &Location,
    addr: SocketAddr,
    interval: Duration,
    ready: impl FnOnce(SocketAddr),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let opened = location.open_store().await?;
    let registry = Registry::new();
    let metrics = OperationMetrics::register(&registry)?;
    let store = Instrumented::new(opened.backend(), &metrics);
    if let Opened::Libsql(turso) = &opened {
        registry.register(Box::new(PoolCollector::new(Arc::clone(turso), "memory")?))?;
        registry.register(Box::new(StatementCollector::new(
            Arc::clone(turso),
            "memory",
        )?))?;
    }
    let contents = Contents::register(&registry)?;
    if location.file().is_some() {
        registry.register(Box::new(contents.file_bytes.clone()))?;
    }
    let refresh = async || match contents.refresh(&store, &opened, location).await {
        Ok(()) => contents.up.set(1),
        Err(e) => {
            contents.up.set(0);
            eprintln!("memory: reading the store's contents: {e:#}");
        }
    };
    // Read once before the first scrape can come, so that no scrape sees empty gauges.
    refresh().await;
    let server = memory_metrics::serve_metrics(addr, registry)?;
    ready(server.addr());
    let every = async {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            refresh().await;
        }
    };
    tokio::select! {
        () = stop => {}
        () = every => {}
    }
    server.shutdown().await?;
    Ok(())
}
