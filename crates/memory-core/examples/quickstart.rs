//! Stores a short agent session in the in-memory reference backend and reads it back:
//! a single write, a batch, a point read, a filtered query paged to the end, and the typed
//! error for bad input.
//!
//! Run with `cargo run -p memory-core --example quickstart`.

use memory_core::InMemoryStorage;
use memory_core::testing::tour;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tour::walk_through(&InMemoryStorage::new()).await
}
