//! The file itself: its lock against a second process, its format record, and an item
//! whose stored bytes do not decode.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use memory_core::testing::samples;
use memory_core::{ErrorKind, StorageBackend};
use memory_storage_redb::{FORMAT_VERSION, RedbStorage};

const PATH_ENV: &str = "MEMORY_REDB_HOLDER_PATH";

/// The other process: opens the store, says so, and holds it until its stdin closes.
#[test]
#[ignore = "run by `a_file_held_by_another_process_is_locked` as the holding process"]
fn child_holder() {
    let path = std::env::var(PATH_ENV).expect("run by the lock test only");
    let _store = RedbStorage::open(&path).unwrap();
    println!("MEMORY-HOLDING");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn a_file_held_by_another_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_holder", "--nocapture"])
        .env(PATH_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let held = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("MEMORY-HOLDING"));
    assert!(held, "the child never opened the store");

    let error = RedbStorage::open(&path).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Locked, "{error}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );

    drop(child.stdin.take()); // the child exits and releases the lock
    lines.for_each(drop); // read its last words, so that it can write them
    assert!(child.wait().unwrap().success());
    RedbStorage::open(&path).expect("free again once the holder exited");
}

#[test]
fn a_second_handle_in_the_same_process_is_locked_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.redb");
    let _first = RedbStorage::open(&path).unwrap();
    let error = RedbStorage::open(&path).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Locked, "{error}");
}

#[tokio::test]
async fn a_newer_format_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.redb");
    let episode = samples::episode(1);
    {
        let store = RedbStorage::open(&path).unwrap();
        store.store_episode(&episode).await.unwrap();
    }
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let set_version = |version: u64| {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(meta)
            .unwrap()
            .insert("format_version", version)
            .unwrap();
        txn.commit().unwrap();
    };
    set_version(FORMAT_VERSION + 1);
    let error = RedbStorage::open(&path).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Corrupt, "{error}");
    assert!(error.to_string().contains("newer"), "{error}");

    // Nothing was wiped: with the version put back, the episode is still there.
    set_version(FORMAT_VERSION);
    let store = RedbStorage::open(&path).unwrap();
    assert_eq!(
        store.get_episode(episode.id).await.unwrap().as_deref(),
        Some(&episode)
    );
}

/// `check_items` names the episode whose bytes were damaged and goes on past it; reading
/// that episode gives the `Corrupt` error it reports.
#[tokio::test]
async fn check_items_names_an_item_that_does_not_decode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.redb");
    let episodes: Vec<_> = (0..5).map(samples::episode).collect();
    {
        let store = RedbStorage::open(&path).unwrap();
        store.store_episodes(&episodes).await.unwrap();
    }
    let damaged = episodes[2].id;
    {
        let table: redb::TableDefinition<&[u8; 16], &[u8]> = redb::TableDefinition::new("episodes");
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(table)
            .unwrap()
            .insert(damaged.as_bytes(), &[0xff, 0x00, 0x13][..])
            .unwrap();
        txn.commit().unwrap();
    }
    let store = RedbStorage::open(&path).unwrap();
    let checked = store
        .check_items(memory_core::EntityKind::Episode, None, 100)
        .await
        .unwrap();
    assert_eq!(checked.len(), 5, "the damaged item does not stop the check");
    let bad: Vec<_> = checked.iter().filter(|c| c.problem.is_some()).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].id, memory_core::Uuid::from(damaged));
    assert_eq!(
        bad[0].problem.as_ref().map(|e| e.kind()),
        Some(ErrorKind::Corrupt)
    );
    let read = store.get_episode(damaged).await.unwrap_err();
    assert_eq!(read.kind(), ErrorKind::Corrupt);
}

#[test]
fn another_programs_redb_file_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.redb");
    let table: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("their_data");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(table).unwrap().insert(1, 2).unwrap();
        txn.commit().unwrap();
    }
    let error = RedbStorage::open(&path).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Corrupt, "{error}");
    assert!(error.to_string().contains("their_data"), "{error}");

    use redb::ReadableDatabase;
    let db = redb::Database::create(&path).unwrap();
    let txn = db.begin_read().unwrap();
    assert_eq!(
        txn.open_table(table)
            .unwrap()
            .get(1)
            .unwrap()
            .unwrap()
            .value(),
        2
    );
}

#[test]
fn a_file_that_is_not_redb_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.redb");
    std::fs::write(&path, b"not a database at all, just some text").unwrap();
    let error = RedbStorage::open(&path).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Corrupt | ErrorKind::Unavailable),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"not a database at all, just some text"
    );
}

#[test]
fn paths_that_name_no_file_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [std::path::PathBuf::new(), std::path::PathBuf::from("/")] {
        let e = RedbStorage::open(&bad).expect_err("no file there");
        assert_eq!(
            e.kind(),
            memory_core::ErrorKind::InvalidInput,
            "{bad:?}: {e}"
        );
    }
    // A folder where the file should be: refused, and the folder left as it was.
    let e = RedbStorage::open(dir.path()).expect_err("a folder");
    assert!(!e.to_string().is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
