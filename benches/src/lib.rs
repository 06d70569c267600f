//! Benchmarks of the episodic-memory stores: seeded workload generators, the best any cache
//! could do on them, and the code that runs them against any
//! [`StorageBackend`](memory_core::StorageBackend).
//!
//! - [`zipf`]: reads of equally sized episodes with Zipf popularity, and the frequency
//!   ideal (the hit ratio of a cache that always holds the most popular keys);
//! - [`agent`]: the standard agent-session workload (recent episodes hot, history visited
//!   sometimes, domain and time-window queries, bursts of writes when runs finish);
//! - [`replay`]: loading a data set and running a workload, stopping at the first error.
//!
//! Belady's offline reference for both lives in
//! [`memory_cache_adaptive::simulator::belady`]. The criterion benches in `benches/` use all
//! of this; `docs/BENCHMARKS.md` says how to run them and what they measured.
//!
//! ```
//! use memory_bench::{agent::AgentWorkload, replay};
//! use memory_core::InMemoryStorage;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let workload = AgentWorkload::new(200, 1);
//! let store = InMemoryStorage::new();
//! replay::load(&store, (0..200).map(|n| memory_bench::agent::episode(n, 0)), 100).await?;
//! replay::run_agent(&store, &workload.sessions(20)).await?;
//! # Ok::<(), anyhow::Error>(())
//! # }).unwrap();
//! ```

pub mod agent;
pub mod curves;
pub mod feed;
pub mod figures;
pub mod gate;
pub mod instructions;
pub mod lifecycle;
pub mod measure;
pub mod phases;
pub mod plots;
pub mod raw;
pub mod replay;
pub mod report;
pub mod run;
pub mod search;
pub mod soak;
pub mod tails;
pub mod zipf;

/// The real sqld the benches and the gate start (shared with the libSQL store's tests).
pub use memory_test_sqld as sqld;

/// Popularity rank `rank` as an item of `0..n`: a bijection that scatters the popular items
/// over the table instead of clustering them at its start (where they would share pages).
///
/// ```
/// let mut items: Vec<u64> = (0..1_000).map(|r| memory_bench::scatter(r, 1_000)).collect();
/// items.sort_unstable();
/// assert_eq!(items, (0..1_000).collect::<Vec<u64>>());
/// ```
pub fn scatter(rank: u64, n: u64) -> u64 {
    let n = n.max(1);
    // A prime step is a bijection of 0..n unless it divides n.
    let step: u64 = if n.is_multiple_of(7_919) {
        7_927
    } else {
        7_919
    };
    ((u128::from(rank) * u128::from(step)) % u128::from(n)) as u64
}
