//! Simultaneous first opens of one new database: four OS processes opening one new local
//! file at the same instant, 25 rounds, and four clients opening one new sqld database at
//! once. Every open succeeds and the schema is applied exactly once (one version row per
//! migration, one generation row).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "support/processes.rs"]
mod processes;
mod support;

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memory_core::StorageBackend;
use memory_storage_turso::{TursoConfig, TursoStorage};

const PATH_ENV: &str = "MEMORY_CONCURRENT_OPEN_PATH";
const START_ENV: &str = "MEMORY_CONCURRENT_OPEN_START_MS";
const OPENERS: usize = 4;
const ROUNDS: usize = 25;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One opening process: sleeps until the agreed instant, opens, prints the outcome.
#[tokio::test]
#[ignore = "run by the concurrent-open test as one of the opening processes"]
async fn child_opener() {
    let path = std::env::var(PATH_ENV).expect("run by the concurrent-open test only");
    let start: u64 = std::env::var(START_ENV).unwrap().parse().unwrap();
    if let Some(wait) = start.checked_sub(now_ms()) {
        std::thread::sleep(Duration::from_millis(wait));
    }
    match TursoStorage::open(TursoConfig::local(&path)).await {
        Ok(store) => {
            store.count_episodes().await.unwrap();
            println!("MEMORY-OPEN-OK");
        }
        Err(e) => println!("MEMORY-OPEN-FAILED {e}"),
    }
}

/// The rows the migrations wrote into `db`: (schema version rows, generation rows).
async fn applied_rows(db: libsql::Database) -> (i64, i64) {
    let conn = db.connect().unwrap();
    let mut counts = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM schema_version",
        "SELECT COUNT(*) FROM store_generation",
    ] {
        let mut rows = conn.query(sql, ()).await.unwrap();
        counts.push(rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap());
    }
    (counts[0], counts[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_one_new_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let path = dir.path().join(format!("round-{round}.db"));
        // Far enough ahead that every child has started and is waiting.
        let start = now_ms() + 400;
        let children: Vec<_> = (0..OPENERS)
            .map(|_| {
                std::process::Command::new(std::env::current_exe().unwrap())
                    .args(processes::child_args("child_opener"))
                    .env(PATH_ENV, &path)
                    .env(START_ENV, start.to_string())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            if !stdout.contains("MEMORY-OPEN-OK") {
                let line = stdout
                    .lines()
                    .find(|l| l.contains("MEMORY-OPEN"))
                    .unwrap_or("no answer")
                    .to_string();
                failures.push(format!("round {round}: {line}"));
            }
        }
        let db = libsql::Builder::new_local(&path).build().await.unwrap();
        assert_eq!(
            applied_rows(db).await,
            (memory_storage_turso::SCHEMA_VERSION, 1),
            "round {round}: the schema was applied once"
        );
    }
    println!(
        "{} of {} simultaneous opens failed",
        failures.len(),
        OPENERS * ROUNDS
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_opening_one_new_sqld_database_at_once_all_succeed() {
    for round in 0..10 {
        let server = support::Sqld::start().await.unwrap();
        let url = server.url();
        let opens = (0..OPENERS).map(|_| {
            let url = url.clone();
            tokio::spawn(async move { TursoStorage::open(TursoConfig::remote(url, None)).await })
        });
        let opens: Vec<_> = opens.collect();
        for open in opens {
            open.await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e} ({e:?})"));
        }
        let db = libsql::Builder::new_remote(url, String::new())
            .build()
            .await
            .unwrap();
        assert_eq!(
            applied_rows(db).await,
            (memory_storage_turso::SCHEMA_VERSION, 1),
            "round {round}"
        );
    }
}
