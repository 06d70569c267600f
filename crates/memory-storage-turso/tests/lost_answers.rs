//! Retries never invent failures: a proxy in front of a real sqld lets a `COMMIT` through,
//! lets the server apply it, and loses the answer. The store must report what happened,
//! not what a blind retry would see: a delete that applied is a success (not `NotFound`),
//! a batch is applied once (the store generation moves by one), and when the outcome
//! cannot be read it says so (`Indeterminate`) rather than guessing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "support/proxy.rs"]
mod proxy;
mod support;

use std::time::Duration;

use memory_core::testing::handles::revision;
use memory_core::{EpisodeId, ErrorKind, StorageBackend};
use memory_storage_turso::{RetryPolicy, TursoConfig, TursoStorage};

async fn setup() -> (
    support::Sqld,
    proxy::LosingProxy,
    TursoStorage,
    TursoStorage,
) {
    let server = support::Sqld::start().await.unwrap();
    let proxy = proxy::LosingProxy::start(server.addr()).await.unwrap();
    let through_proxy = TursoStorage::open(TursoConfig::remote(proxy.url(), None))
        .await
        .unwrap();
    let direct = TursoStorage::open(TursoConfig::remote(server.url(), None))
        .await
        .unwrap();
    (server, proxy, through_proxy, direct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_commit_answer_was_lost_succeeds() {
    let (_server, proxy, store, direct) = setup().await;
    for trial in 0..5 {
        let id = EpisodeId::new();
        store.store_episode(&revision(id, 0)).await.unwrap();
        let before = direct.generation().await.unwrap();
        proxy.lose_next_commit_answers(1);
        let lost_before = proxy.lost();
        store
            .delete_episode(id)
            .await
            .unwrap_or_else(|e| panic!("trial {trial}: the delete applied, yet: {e}"));
        assert_eq!(
            proxy.lost(),
            lost_before + 1,
            "trial {trial}: an answer was lost"
        );
        assert_eq!(direct.get_episode(id).await.unwrap(), None);
        assert_eq!(direct.generation().await.unwrap(), before + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_commit_answer_was_lost_applies_once() {
    let (_server, proxy, store, direct) = setup().await;
    for trial in 0..5 {
        let batch: Vec<_> = (0..20).map(|i| revision(EpisodeId::new(), i)).collect();
        let before = direct.generation().await.unwrap();
        proxy.lose_next_commit_answers(1);
        store.store_episodes(&batch).await.unwrap();
        store
            .store_episode(&revision(EpisodeId::new(), 0))
            .await
            .unwrap();
        let after = direct.generation().await.unwrap();
        assert_eq!(
            after,
            before + 2,
            "trial {trial}: the batch was applied {} times",
            after - before - 1
        );
        let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
        assert!(
            direct
                .get_episodes(&ids)
                .await
                .unwrap()
                .iter()
                .all(Option::is_some)
        );
    }
    println!(
        "{} commit answers lost, every write applied once",
        proxy.lost()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_outcome_is_indeterminate() {
    let server = support::Sqld::start().await.unwrap();
    let proxy = proxy::LosingProxy::start(server.addr()).await.unwrap();
    let mut config = TursoConfig::remote(proxy.url(), None);
    config.retry = RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(10),
    };
    let store = TursoStorage::open(config).await.unwrap();
    let id = EpisodeId::new();
    proxy.lose_next_commit_answers(1);
    proxy.go_dark_after_loss();
    let error = store.store_episode(&revision(id, 0)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Indeterminate, "{error}");
    assert!(!error.is_transient());
    proxy.heal();
    let direct = TursoStorage::open(TursoConfig::remote(server.url(), None))
        .await
        .unwrap();
    assert!(
        direct.get_episode(id).await.unwrap().is_some(),
        "it had applied"
    );
    println!("{error}");
}
