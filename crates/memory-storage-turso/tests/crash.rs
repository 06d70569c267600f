//! Crash durability of a local libSQL file (WAL, `synchronous=NORMAL`: a committed
//! transaction survives the process, not necessarily the machine): a child process stores
//! batches in a loop, printing an acknowledgement after each commit, and is killed with
//! SIGKILL at a random moment. After reopening the file, every acknowledged batch is there
//! in full and no batch is there in part (`memory_core::testing::crash` holds the writing,
//! the killing and the checks).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use memory_core::testing::crash::{
    check_after_crash, kill_child_after, kill_during_creation, run_trials, write_until_killed,
};
use memory_storage_turso::{TursoConfig, TursoStorage};

const PATH_ENV: &str = "MEMORY_LIBSQL_CRASH_PATH";

/// The writing process: batch after batch until it is killed.
#[tokio::test]
#[ignore = "run by the crash test as the process that gets killed"]
async fn child_writer() {
    let path = std::env::var(PATH_ENV).expect("run by the crash test only");
    let store = TursoStorage::open(TursoConfig::local(&path)).await.unwrap();
    write_until_killed(&store).await.unwrap();
}

#[test]
fn acknowledged_batches_survive_sigkill_whole() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let summary = run_trials(50, |delay| {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("crash.db");
        let acked = kill_child_after("child_writer", PATH_ENV, &path, delay)?;
        rt.block_on(async {
            let store = TursoStorage::open(TursoConfig::local(&path)).await?;
            check_after_crash(&store, acked).await.map(|_| ())
        })?;
        Ok(acked.map_or(0, |n| n + 1))
    })
    .unwrap();
    println!("{summary}");
}

/// Kills landing while the child creates the file and its schema (the first milliseconds
/// of its life) must leave no file, or one that opens: never one the store refuses.
#[test]
fn a_kill_during_creation_leaves_an_openable_file() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    kill_during_creation("child_writer", PATH_ENV, dir.path(), 40, |path, acked| {
        rt.block_on(async {
            let store = TursoStorage::open(TursoConfig::local(path)).await?;
            check_after_crash(&store, acked).await.map(|_| ())
        })
    })
    .unwrap();
}
