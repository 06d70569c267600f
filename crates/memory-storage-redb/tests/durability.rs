//! Crash durability: a child process stores batches in a loop, printing an acknowledgement
//! after each commit, and is killed with SIGKILL at a random moment. After reopening the
//! file, every acknowledged batch is there in full and no batch is there in part.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use memory_core::testing::samples;
use memory_core::{Episode, EpisodeId, StorageBackend};
use memory_storage_redb::RedbStorage;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

const PATH_ENV: &str = "MEMORY_REDB_DURABILITY_PATH";
const BATCH: u64 = 20;
const TRIALS: usize = 30;

fn episode(batch: u64, i: u64) -> Episode {
    let mut episode = samples::episode(batch * BATCH + i);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&batch.to_be_bytes());
    id[8..].copy_from_slice(&i.to_be_bytes());
    episode.id = EpisodeId::from_bytes(id);
    episode
}

fn batch(n: u64) -> Vec<Episode> {
    (0..BATCH).map(|i| episode(n, i)).collect()
}

/// The writing process: batch after batch until it is killed.
#[tokio::test]
#[ignore = "run by the durability test as the process that gets killed"]
async fn child_writer() {
    let path = std::env::var(PATH_ENV).expect("run by the durability test only");
    let store = RedbStorage::open(&path).unwrap();
    for n in 0.. {
        store.store_episodes(&batch(n)).await.unwrap();
        println!("MEMORY-ACK {n}");
    }
}

/// One trial; returns how many batches were acknowledged.
fn trial(rng: &mut Xoshiro256PlusPlus) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_writer", "--nocapture"])
        .env(PATH_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(rng.random_range(30..400)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut acked: Option<u64> = None;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if let Some(n) = line.strip_prefix("MEMORY-ACK ") {
            acked = Some(n.trim().parse().unwrap());
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = RedbStorage::open(&path).expect("the file opens after a crash");
    rt.block_on(async {
        let complete = acked.map_or(0, |n| n + 1);
        for n in 0..complete {
            let ids: Vec<EpisodeId> = batch(n).iter().map(|e| e.id).collect();
            let found = store.get_episodes(&ids).await.unwrap();
            for (expected, found) in batch(n).iter().zip(found) {
                assert_eq!(
                    found.as_deref(),
                    Some(expected),
                    "acknowledged batch {n} lost"
                );
            }
        }
        // The batch in flight when the kill came may have committed, but only whole.
        let next: Vec<EpisodeId> = batch(complete).iter().map(|e| e.id).collect();
        let present = store
            .get_episodes(&next)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.is_some())
            .count() as u64;
        assert!(
            present == 0 || present == BATCH,
            "batch {complete} is partly there: {present} of {BATCH}"
        );
        let whole = complete + u64::from(present == BATCH);
        assert_eq!(
            store.count_episodes().await.unwrap(),
            whole * BATCH,
            "episodes beyond the last whole batch"
        );
    });
    acked.map_or(0, |n| n + 1)
}

#[test]
fn acknowledged_batches_survive_sigkill_whole() {
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let started = Instant::now();
    let mut acked = 0;
    let mut killed_mid_run = 0;
    for _ in 0..TRIALS {
        let n = trial(&mut rng);
        acked += n;
        killed_mid_run += usize::from(n > 0);
    }
    println!(
        "{TRIALS} trials, {killed_mid_run} killed after at least one acknowledged batch, {acked} \
         acknowledged batches checked, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        killed_mid_run >= TRIALS / 2,
        "too few kills landed mid-run ({killed_mid_run} of {TRIALS}): the test proves little"
    );
}
