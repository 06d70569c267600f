//! Crash trials for durable backends: a child process stores numbered batches in a loop,
//! printing an acknowledgement after each commit, until it is killed; the parent then
//! reopens the store and checks that every acknowledged batch is there in full and no
//! batch is there in part. Each backend's test spawns its own child (itself, run again) and
//! uses these pieces for the writing, the acknowledgements and the checks.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail, ensure};

use super::samples;
use crate::{Episode, EpisodeId, StorageBackend};

/// Episodes per batch.
pub const CRASH_BATCH: u64 = 20;

/// The line a child prints after batch `n` committed: `MEMORY-ACK n`.
pub const ACK_PREFIX: &str = "MEMORY-ACK ";

/// Batch `n`: [`CRASH_BATCH`] episodes whose ids encode `(n, i)`.
pub fn crash_batch(n: u64) -> Vec<Episode> {
    (0..CRASH_BATCH)
        .map(|i| {
            let mut episode = samples::episode(n * CRASH_BATCH + i);
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&n.to_be_bytes());
            id[8..].copy_from_slice(&i.to_be_bytes());
            episode.id = EpisodeId::from_bytes(id);
            episode
        })
        .collect()
}

/// The child's loop: stores batch after batch, acknowledging each on stdout, until it is
/// killed (or a store call fails).
pub async fn write_until_killed(store: &dyn StorageBackend) -> anyhow::Result<()> {
    for n in 0.. {
        store.store_episodes(&crash_batch(n)).await?;
        println!("{ACK_PREFIX}{n}");
    }
    Ok(())
}

/// The last batch a child acknowledged, from its whole output.
pub fn last_ack(output: impl BufRead) -> Option<u64> {
    output
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| line.strip_prefix(ACK_PREFIX)?.trim().parse().ok())
        .last()
}

/// Checks the reopened store after a crash: batches `0..=acked` whole, the next one whole
/// or absent, nothing else. Returns how many whole batches are stored.
pub async fn check_after_crash(
    store: &dyn StorageBackend,
    acked: Option<u64>,
) -> anyhow::Result<u64> {
    let acknowledged = acked.map_or(0, |n| n + 1);
    for n in 0..acknowledged {
        let batch = crash_batch(n);
        let ids: Vec<EpisodeId> = batch.iter().map(|e| e.id).collect();
        for (expected, found) in batch.iter().zip(store.get_episodes(&ids).await?) {
            if found.as_deref() != Some(expected) {
                bail!("acknowledged batch {n} lost or changed");
            }
        }
    }
    let next: Vec<EpisodeId> = crash_batch(acknowledged).iter().map(|e| e.id).collect();
    let present = store
        .get_episodes(&next)
        .await?
        .iter()
        .filter(|e| e.is_some())
        .count() as u64;
    ensure!(
        present == 0 || present == CRASH_BATCH,
        "batch {acknowledged} is partly there: {present} of {CRASH_BATCH}"
    );
    let whole = acknowledged + u64::from(present == CRASH_BATCH);
    let count = store.count_episodes().await?;
    ensure!(
        count == whole * CRASH_BATCH,
        "{count} episodes stored, {} expected: something beyond the last whole batch",
        whole * CRASH_BATCH
    );
    Ok(whole)
}

/// Runs this test binary again as its ignored test `child_test` with `env` set to `path`,
/// kills it with SIGKILL after `delay`, and returns the last batch it acknowledged.
pub fn kill_child_after(
    child_test: &str,
    env: &str,
    path: &Path,
    delay: Duration,
) -> anyhow::Result<Option<u64>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--ignored", "--exact", child_test, "--nocapture"])
        .env(env, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the writing child")?;
    std::thread::sleep(delay);
    child.kill()?; // SIGKILL on Unix
    child.wait()?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    Ok(last_ack(BufReader::new(stdout)))
}

/// Kills the child (as [`kill_child_after`] runs it) at each millisecond `0..millis` of its
/// life, while it is still creating its file, each time on a fresh file in `dir`, and runs
/// `check(path, last acknowledged batch)` after each kill: a crash during creation must
/// leave no file or one that opens.
pub fn kill_during_creation(
    child_test: &str,
    env: &str,
    dir: &Path,
    millis: u64,
    mut check: impl FnMut(&Path, Option<u64>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for ms in 0..millis {
        let path = dir.join(format!("killed-after-{ms}-ms"));
        let acked = kill_child_after(child_test, env, &path, Duration::from_millis(ms))?;
        check(&path, acked).with_context(|| format!("killed after {ms} ms"))?;
    }
    Ok(())
}

/// Runs `trials` crash trials, each killing its child after a pseudo-random 30–400 ms
/// (seeded from the clock, printed), and returns a summary line. `trial(delay)` runs one
/// and returns how many batches were acknowledged. Fails if fewer than half the kills
/// landed after a first acknowledgement (such a run proves little).
pub fn run_trials(
    trials: usize,
    mut trial: impl FnMut(Duration) -> anyhow::Result<u64>,
) -> anyhow::Result<String> {
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("crash trials: seed {seed}");
    let mut x = seed;
    let started = Instant::now();
    let (mut acked, mut mid_run) = (0, 0);
    for _ in 0..trials {
        // xorshift64: a reproducible delay sequence for the printed seed.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = trial(Duration::from_millis(30 + x % 370))?;
        acked += n;
        mid_run += usize::from(n > 0);
    }
    ensure!(
        mid_run >= trials / 2,
        "too few kills landed mid-run ({mid_run} of {trials}): the test proves little"
    );
    Ok(format!(
        "{trials} trials, {mid_run} killed after at least one acknowledged batch, {acked} \
         acknowledged batches checked, {:.1} s",
        started.elapsed().as_secs_f64()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_acknowledgement_wins_and_noise_is_ignored() {
        let output =
            b"running 1 test\nMEMORY-ACK 0\nMEMORY-ACK 1\nMEMORY-ACK 2\nMEMORY-AC" as &[u8];
        assert_eq!(last_ack(output), Some(2));
        assert_eq!(last_ack(b"nothing" as &[u8]), None);
    }

    #[test]
    fn batches_have_distinct_ids() {
        let a = crash_batch(1);
        let b = crash_batch(2);
        assert_eq!(a.len() as u64, CRASH_BATCH);
        assert!(a.iter().all(|x| b.iter().all(|y| x.id != y.id)));
    }

    #[tokio::test]
    async fn the_check_accepts_whole_batches_and_rejects_partial_ones() {
        let store = crate::InMemoryStorage::new();
        store.store_episodes(&crash_batch(0)).await.ok();
        store.store_episodes(&crash_batch(1)).await.ok();
        assert_eq!(check_after_crash(&store, Some(0)).await.ok(), Some(2));
        assert!(
            check_after_crash(&store, Some(2)).await.is_err(),
            "batch 2 was acknowledged"
        );
        store.store_episodes(&crash_batch(2)[..5]).await.ok();
        assert!(
            check_after_crash(&store, Some(1)).await.is_err(),
            "batch 2 is partial"
        );
    }
}
