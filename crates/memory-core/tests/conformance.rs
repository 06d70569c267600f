//! The conformance suite against the in-memory reference backend.

use memory_core::InMemoryStorage;
use memory_core::testing::Fixture;

async fn in_memory() -> anyhow::Result<Fixture> {
    Ok(Fixture::new(InMemoryStorage::new()))
}

memory_core::conformance_tests!(in_memory);
