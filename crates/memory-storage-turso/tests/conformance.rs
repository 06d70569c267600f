//! The shared conformance suite against every location: local file, in-memory, remote sqld
//! and an embedded replica of a sqld primary.

mod support;

use memory_core::testing::Fixture;
use memory_storage_turso::{TursoConfig, TursoStorage};

mod local_file {
    use super::*;

    async fn local_file() -> anyhow::Result<Fixture> {
        let dir = tempfile::tempdir()?;
        let store = TursoStorage::open(TursoConfig::local(dir.path().join("memory.db"))).await?;
        Ok(Fixture::new(store).with_guard(dir))
    }

    memory_core::conformance_tests!(local_file);
}

mod in_memory {
    use super::*;

    async fn in_memory() -> anyhow::Result<Fixture> {
        Ok(Fixture::new(
            TursoStorage::open(TursoConfig::in_memory()).await?,
        ))
    }

    memory_core::conformance_tests!(in_memory);
}

mod remote {
    use super::*;

    async fn remote() -> anyhow::Result<Fixture> {
        let server = support::Sqld::start().await?;
        let store = TursoStorage::open(TursoConfig::remote(server.url(), None)).await?;
        Ok(Fixture::new(store).with_guard(server))
    }

    memory_core::conformance_tests!(remote);
}

mod replica {
    use super::*;

    async fn replica() -> anyhow::Result<Fixture> {
        let server = support::Sqld::start_primary().await?;
        let dir = tempfile::tempdir()?;
        let store = TursoStorage::open(TursoConfig::replica(
            dir.path().join("replica.db"),
            server.url(),
            None,
        ))
        .await?;
        Ok(Fixture::new(store).with_guard((server, dir)))
    }

    memory_core::conformance_tests!(replica);
}

/// The cached decorator over a local file, watching the store's generation.
mod cached_local_file {
    use super::*;

    async fn cached_local_file() -> anyhow::Result<Fixture> {
        let dir = tempfile::tempdir()?;
        let store =
            TursoStorage::open_cached(TursoConfig::local(dir.path().join("memory.db"))).await?;
        Ok(Fixture::from_arc(store).with_guard(dir))
    }

    memory_core::conformance_tests!(cached_local_file);
}

/// The cached decorator over a real sqld.
mod cached_remote {
    use super::*;

    async fn cached_remote() -> anyhow::Result<Fixture> {
        let server = support::Sqld::start().await?;
        let store = TursoStorage::open_cached(TursoConfig::remote(server.url(), None)).await?;
        Ok(Fixture::from_arc(store).with_guard(server))
    }

    memory_core::conformance_tests!(cached_remote);
}
