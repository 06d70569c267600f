//! Prometheus metrics for the episodic-memory stores, on the `prometheus` crate:
//!
//! - [`Instrumented`]: a `StorageBackend` decorator recording each call's latency by
//!   operation, backend and outcome, batch sizes, and errors by kind ([`OperationMetrics`]);
//! - collectors that read the stores only through the stats traits of
//!   [`memory_core::stats`]: [`CacheCollector`] (any
//!   [`CachedStats`](memory_core::stats::CachedStats), such as `memory-storage-cached`'s
//!   store), [`PoolCollector`] and [`StatementCollector`] (any
//!   [`PoolStats`](memory_core::stats::PoolStats) and
//!   [`StatementCacheStats`](memory_core::stats::StatementCacheStats), such as the libSQL
//!   store). This crate depends on no store: exporting a redb store's metrics builds no
//!   libSQL;
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
