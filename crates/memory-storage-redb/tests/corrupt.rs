//! A redb file with damaged pages: 4 KiB of garbage written over the file at several
//! places. Opening and reading must give typed errors (or the intact data), never a panic,
//! never an episode other than the one stored and never "absent" for a stored one. In
//! release builds the file opens and everything outside the damage stays readable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{Seek, SeekFrom, Write};

use memory_core::testing::samples;
use memory_core::{EpisodeQuery, ErrorKind, StorageBackend};
use memory_storage_redb::RedbStorage;

#[tokio::test]
async fn damaged_pages_are_typed_errors_not_panics() -> anyhow::Result<()> {
    let episodes: Vec<_> = (0..300).map(samples::episode).collect();
    let mut outcomes = Vec::new();
    for tenth in 1..10u64 {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("m.redb");
        {
            let store = RedbStorage::open(&path)?;
            store.store_episodes(&episodes).await?;
        }
        let len = std::fs::metadata(&path)?.len();
        let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
        file.seek(SeekFrom::Start(len * tenth / 10))?;
        file.write_all(&[0xA5; 4096])?;
        file.sync_all()?;
        drop(file);

        let store = match RedbStorage::open(&path) {
            Ok(store) => store,
            // Debug builds of redb walk every page when opening; release builds do not,
            // and there the damaged file must open with the rest of its data readable.
            Err(e) if cfg!(not(debug_assertions)) => panic!("damage at {tenth}/10: {e}"),
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Unavailable),
                    "damage at {tenth}/10: {e}"
                );
                outcomes.push(format!("{tenth}/10: open refused ({:?})", e.kind()));
                continue;
            }
        };
        let (mut intact, mut errors, mut missing) = (0, 0, 0);
        for episode in &episodes {
            match store.get_episode(episode.id).await {
                Ok(Some(read)) => {
                    assert_eq!(*read, *episode, "damage at {tenth}/10 changed an episode");
                    intact += 1;
                }
                Ok(None) => missing += 1,
                Err(e) => {
                    assert!(
                        matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Unavailable),
                        "{e}"
                    );
                    errors += 1;
                }
            }
        }
        if cfg!(not(debug_assertions)) {
            assert!(
                intact >= 250,
                "damage at {tenth}/10 took {errors} of 300 episodes"
            );
        }
        if let Err(e) = store.query_episodes(&EpisodeQuery::new().limit(500)).await {
            assert!(
                matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Unavailable),
                "{e}"
            );
        }
        assert_eq!(
            missing, 0,
            "damage at {tenth}/10 made stored episodes read as absent"
        );
        outcomes.push(format!(
            "{tenth}/10: opened, {intact} intact, {errors} Corrupt, {missing} missing"
        ));
    }
    println!("{}", outcomes.join("\n"));
    Ok(())
}
