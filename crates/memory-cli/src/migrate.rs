//! Copying a whole store into another (any backend to any backend), verified: after the
//! copy both sides are exported in the JSON Lines format of [`crate::jsonl`] and their
//! line counts and content checksums must agree.

use std::hash::Hasher;
use std::io::Write;

use std::sync::Arc;

use memory_core::{EpisodeQuery, Heuristic, Pattern, StorageBackend};

use crate::jsonl::{self, Counts, Kinds};

/// What a migration copied and what the verification saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// Items copied, per kind.
    pub copied: Counts,
    /// The source's export checksum (one run's SipHash of the export's bytes: comparable
    /// within a run, not a stable format).
    pub checksum: u64,
    /// Bytes of the export each side produced.
    pub bytes: u64,
}

/// Why a migration did not finish verified.
#[derive(Debug)]
pub enum MigrateError {
    /// The target already holds items: a copy into it could not be verified.
    TargetNotEmpty(Counts),
    /// The two sides differ after the copy.
    Mismatch {
        /// The source's counts, bytes and checksum.
        source: (Counts, u64, u64),
        /// The target's.
        target: (Counts, u64, u64),
    },
}

impl std::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrateError::TargetNotEmpty(c) => write!(
                f,
                "the target holds {} episodes, {} patterns and {} heuristics: migrate into an \
                 empty store",
                c.episodes, c.patterns, c.heuristics
            ),
            MigrateError::Mismatch { source, target } => write!(
                f,
                "the copy differs from the source: source {:?}, {} bytes, checksum {:016x}; \
                 target {:?}, {} bytes, checksum {:016x}",
                source.0, source.1, source.2, target.0, target.1, target.2
            ),
        }
    }
}

impl std::error::Error for MigrateError {}

/// Counts bytes and hashes them.
struct Hashing {
    hasher: std::hash::DefaultHasher,
    bytes: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.write(buf);
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The export of `store`'s every item, as counts, bytes and checksum.
async fn fingerprint(store: &dyn StorageBackend) -> anyhow::Result<(Counts, u64, u64)> {
    let mut out = Hashing {
        hasher: std::hash::DefaultHasher::new(),
        bytes: 0,
    };
    let counts = jsonl::export(store, Kinds::ALL, &EpisodeQuery::new(), &mut out, |_| {}).await?;
    Ok((counts, out.bytes, out.hasher.finish()))
}

async fn counts(store: &dyn StorageBackend) -> anyhow::Result<Counts> {
    Ok(Counts {
        episodes: store.count_episodes().await?,
        patterns: store.count_patterns().await?,
        heuristics: store.count_heuristics().await?,
    })
}

/// Copies every item of `from` into the empty `to` (pages of [`jsonl::PAGE`], each one batch write),
/// then verifies both sides' exports. `tick` gets the running count of items copied.
pub async fn migrate(
    from: &dyn StorageBackend,
    to: &dyn StorageBackend,
    mut tick: impl FnMut(u64),
) -> anyhow::Result<Migrated> {
    let existing = counts(to).await?;
    if existing.total() > 0 {
        return Err(MigrateError::TargetNotEmpty(existing).into());
    }
    let mut copied = Counts::default();
    let mut query = EpisodeQuery::new().limit(jsonl::PAGE);
    loop {
        let page = from.query_episodes(&query).await?;
        let items: Vec<_> = page.items.iter().map(|e| (**e).clone()).collect();
        if !items.is_empty() {
            to.store_episodes(&items).await?;
        }
        copied.episodes += items.len() as u64;
        tick(copied.total());
        match page.next_cursor {
            Some(cursor) => query = query.after(cursor),
            None => break,
        }
    }
    let list = |after, limit| from.list_patterns(after, limit);
    jsonl::each_listed(list, async |page: &[Arc<Pattern>]| {
        let items: Vec<Pattern> = page.iter().map(|p| (**p).clone()).collect();
        to.store_patterns(&items).await?;
        copied.patterns += items.len() as u64;
        tick(copied.total());
        Ok(())
    })
    .await?;
    let list = |after, limit| from.list_heuristics(after, limit);
    jsonl::each_listed(list, async |page: &[Arc<Heuristic>]| {
        let items: Vec<Heuristic> = page.iter().map(|h| (**h).clone()).collect();
        to.store_heuristics(&items).await?;
        copied.heuristics += items.len() as u64;
        tick(copied.total());
        Ok(())
    })
    .await?;
    let source = fingerprint(from).await?;
    let target = fingerprint(to).await?;
    if source != target {
        return Err(MigrateError::Mismatch { source, target }.into());
    }
    Ok(Migrated {
        copied,
        checksum: source.2,
        bytes: source.1,
    })
}
