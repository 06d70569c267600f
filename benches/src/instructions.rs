//! Instruction counts of the CPU-bound hot paths under valgrind's callgrind: the same for
//! the same build and inputs whatever else the machine is doing, so they make a tight gate
//! where timings would be noise.
//!
//! Each path runs in a child process (`memory-bench hot-path PATH --ops N`) twice, with
//! `N` = [`FEW`] and [`MANY`] operations; the difference of the two totals divided by
//! `MANY - FEW` is the instructions of one operation, with start-up and set-up cancelled.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::ValueEnum;
use memory_core::testing::typical::TYPICAL_DOMAINS;
use memory_core::{ChangeSignal, EpisodeQuery, InMemoryStorage, StorageBackend, codec};
use memory_storage_turso::{TursoConfig, TursoStorage};

use crate::agent;
use crate::measure::{Layer, Weakening};

/// Operations in the shorter child run.
pub const FEW: u64 = 200;
/// Operations in the longer child run.
pub const MANY: u64 = 1_200;
/// Episodes in a hot path's data set.
const EPISODES: u64 = 100;

/// A CPU-bound path whose instructions the gate counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HotPath {
    /// A read by id that the entity cache answers.
    CachedGet,
    /// A domain query that the query-result cache answers.
    CachedQuery,
    /// Encoding an episode and decoding it again.
    Codec,
    /// A read by id from the libSQL store (in memory) without the entity cache: the
    /// prepared-statement cache lookup, the statement and decoding.
    StoreGet,
}

impl HotPath {
    /// Every path, in the order the gate reports them.
    pub const ALL: [HotPath; 4] = [
        HotPath::CachedGet,
        HotPath::CachedQuery,
        HotPath::Codec,
        HotPath::StoreGet,
    ];

    /// The figure's name in a measurement.
    pub fn figure(self) -> &'static str {
        match self {
            HotPath::CachedGet => "instructions per cached get",
            HotPath::CachedQuery => "instructions per cached query",
            HotPath::Codec => "instructions per encode + decode",
            HotPath::StoreGet => "instructions per libSQL get",
        }
    }
}

impl HotPath {
    /// The relative change of the count that still passes: counts repeat to within 0.01 %
    /// for the same arguments, but the codec's copies of large payloads depend on where
    /// they land in memory (see [`per_operation`]).
    pub fn tolerance(self) -> f64 {
        match self {
            HotPath::Codec => 0.05,
            _ => 0.02,
        }
    }
}

/// Runs `ops` operations of `path` (the child's side). Everything before the loop is
/// set-up, the same for any `ops`.
pub async fn run_hot_path(path: HotPath, ops: u64, weaken: Weakening) -> anyhow::Result<()> {
    let ids: Vec<_> = (0..EPISODES).map(agent::id_of).collect();
    let episodes: Vec<_> = (0..EPISODES).map(|n| agent::episode(n, 0)).collect();
    match path {
        HotPath::CachedGet | HotPath::CachedQuery => {
            // As users run it: the cache watches the store's change position.
            let store = Arc::new(InMemoryStorage::new());
            let signal: Arc<dyn ChangeSignal> = store.clone();
            let cached = memory_storage_cached::layer(store, &weaken.cache(), Some(signal))?;
            cached.store_episodes(&episodes).await?;
            let queries: Vec<EpisodeQuery> = TYPICAL_DOMAINS
                .iter()
                .map(|d| EpisodeQuery::new().domain(*d).limit(10))
                .collect();
            // Twice: the admission policy lets a result in once it is asked for again.
            for _ in 0..2 {
                for query in &queries {
                    cached.query_episodes(query).await?;
                }
            }
            for i in 0..ops as usize {
                if path == HotPath::CachedGet {
                    let id = ids[i % ids.len()];
                    weaken.get(Layer::Cached, cached.as_ref(), id, i).await?;
                } else {
                    cached.query_episodes(&queries[i % queries.len()]).await?;
                }
            }
        }
        HotPath::Codec => {
            for i in 0..ops as usize {
                let bytes = codec::encode(&episodes[i % episodes.len()])?;
                let back: memory_core::Episode = codec::decode(&bytes)?;
                anyhow::ensure!(back.id == ids[i % ids.len()], "the codec changed an id");
            }
        }
        HotPath::StoreGet => {
            let store = TursoStorage::open(weaken.store(TursoConfig::in_memory())).await?;
            store.store_episodes(&episodes).await?;
            for i in 0..ops as usize {
                weaken
                    .get(Layer::Store, &store, ids[i % ids.len()], i)
                    .await?;
            }
        }
    }
    Ok(())
}

/// The total instructions (`Ir`) callgrind recorded in `file`.
fn total_instructions(file: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading callgrind output {}", file.display()))?;
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("totals:")
            .or_else(|| line.strip_prefix("summary:"))
        {
            let first = rest.split_whitespace().next().unwrap_or_default();
            return first
                .parse()
                .with_context(|| format!("callgrind total {first:?} is not a count"));
        }
    }
    bail!("{} has no callgrind totals line", file.display())
}

/// The name clap gives `value` on the command line.
fn value_name(value: &impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

fn callgrind(
    exe: &Path,
    dir: &Path,
    path: HotPath,
    ops: u64,
    weaken: Weakening,
) -> anyhow::Result<u64> {
    let name = value_name(&path);
    let out = dir.join(format!("callgrind.{name}.{ops}"));
    let mut command = Command::new("valgrind");
    command
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["hot-path", &name, "--ops", &ops.to_string()]);
    // Only to the paths it changes: the length of the arguments alone moved the codec's
    // count by up to 2.6 % (173.2k, 168.8k, 171.5k instructions for three spellings).
    if path != HotPath::Codec {
        command.args(["--weaken", &value_name(&weaken)]);
    }
    let output = command.output().map_err(|e| {
        anyhow::anyhow!(
            "running valgrind ({e}); the gate counts instructions with valgrind's callgrind: \
             install valgrind (Debian/Ubuntu: apt-get install valgrind)"
        )
    })?;
    if !output.status.success() {
        bail!(
            "callgrind run of {name} with {ops} operations failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    total_instructions(&out)
}

/// Instructions of one operation of `path`, counted by callgrind on this executable.
pub fn per_operation(path: HotPath, weaken: Weakening) -> anyhow::Result<f64> {
    let exe = std::env::current_exe().context("finding memory-bench's own executable")?;
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let few = callgrind(&exe, dir.path(), path, FEW, weaken)?;
    let many = callgrind(&exe, dir.path(), path, MANY, weaken)?;
    per_op(path, few, many)
}

/// Instructions per operation from the totals of the two runs. More operations costing no
/// more instructions is impossible: an error, never a zero that the gate would pass.
fn per_op(path: HotPath, few: u64, many: u64) -> anyhow::Result<f64> {
    match many.checked_sub(few) {
        Some(extra) if extra > 0 => Ok(extra as f64 / (MANY - FEW) as f64),
        _ => bail!(
            "{}: {MANY} operations counted {many} instructions, {FEW} counted {few}:              more operations cannot cost nothing",
            path.figure()
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn reads_the_totals_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        std::fs::write(&file, "events: Ir\nfn=main\n1 5\ntotals: 123456\n").unwrap();
        assert_eq!(total_instructions(&file).unwrap(), 123_456);
        std::fs::write(&file, "events: Ir\nsummary: 42\n").unwrap();
        assert_eq!(total_instructions(&file).unwrap(), 42);
        std::fs::write(&file, "events: Ir\n").unwrap();
        assert!(total_instructions(&file).is_err());
        std::fs::write(&file, "totals: many\n").unwrap();
        assert!(total_instructions(&file).is_err());
    }

    #[tokio::test]
    async fn every_hot_path_runs() {
        for path in HotPath::ALL {
            for weaken in Weakening::value_variants() {
                run_hot_path(path, 30, *weaken).await.unwrap();
            }
        }
    }

    #[test]
    fn an_impossible_count_is_an_error() {
        let path = HotPath::CachedGet;
        assert_eq!(per_op(path, 1_000, 1_000 + 2 * (MANY - FEW)).unwrap(), 2.0);
        assert!(
            per_op(path, 1_000, 999).is_err(),
            "fewer for more operations"
        );
        assert!(
            per_op(path, 1_000, 1_000).is_err(),
            "nothing for more operations"
        );
    }
}
