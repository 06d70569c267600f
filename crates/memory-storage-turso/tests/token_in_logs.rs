//! The auth token never reaches the logs: every `tracing` event at every level, this crate's
//! and its dependencies' (libsql, its HTTP client), is captured while a store with a token
//! opens against a real sqld, works, fails against a dead server and prints its errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use memory_core::StorageBackend;
use memory_core::testing::samples;
use memory_storage_turso::{AuthToken, TursoConfig, TursoStorage};

const TOKEN: &str = "tok-3f9a1c77-never-print-me";

/// Every log line written, in one buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_in_no_log_line_at_any_level() -> anyhow::Result<()> {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = support::Sqld::start().await?;
    let config = TursoConfig::remote(server.url(), Some(AuthToken::new(TOKEN)));
    let store = TursoStorage::open(config.clone()).await?;
    store.store_episode(&samples::episode(1)).await?;
    store.get_episode(samples::episode(1).id).await?;
    tracing::info!(?config, "a caller logging its configuration");
    server.kill();
    let failed = store.get_episode(samples::episode(2).id).await;
    if let Err(e) = &failed {
        tracing::error!(error = %e, debug = ?e, "a caller logging the failure");
    }
    assert!(failed.is_err(), "the server is dead");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone())?;
    assert!(logs.lines().count() > 3, "the capture works: {logs}");
    assert!(!logs.contains(TOKEN), "the token reached the logs");
    Ok(())
}
