//! Prometheus metrics for the episodic-memory stores, on the `prometheus` crate:
//!
//! - [`Instrumented`]: a `StorageBackend` decorator recording each call's latency by
//!   operation, backend and outcome, batch sizes, and errors by kind ([`OperationMetrics`]);
//! - collectors that read the other crates only through their stats traits:
//!   [`CacheCollector`] (any [`CachedStats`](memory_storage_cached::CachedStats)),
//!   [`PoolCollector`] and [`StatementCollector`] (the libSQL store's
//!   [`PoolStats`](memory_storage_turso::PoolStats) and
//!   [`StatementCacheStats`](memory_storage_turso::StatementCacheStats));
//! - [`serve_metrics`]: `GET /metrics` in the text format, on loopback by default.
//!
//! Names and labels are listed in `docs/METRICS.md`.

mod buckets;
mod collectors;
mod exporter;
mod instrumented;

pub use buckets::{batch_items, latency_seconds};
pub use collectors::{CacheCollector, PoolCollector, StatementCollector};
pub use exporter::{DEFAULT_ADDR, MetricsServer, serve_metrics};
pub use instrumented::{Instrumented, OPERATIONS, OperationMetrics};
