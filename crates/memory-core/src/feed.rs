//! The change feed: what each write transaction changed, so that a cache can drop exactly
//! what another writer touched instead of everything it holds.
//!
//! A store that keeps a feed records, in the same transaction as the write, one
//! [`FeedEntry`]: the write's position (the [`ChangeSignal`](crate::ChangeSignal) position
//! it produced; a batch is one position) and a [`Change`] per item. The feed is bounded: a
//! reader asking for positions older than what is kept gets [`ChangesSince::Unknown`] and
//! has to assume that anything changed.
//!
//! What a change names is what a cache needs: the item, and for a stored episode or pattern
//! the domain it now has (a cached query of that domain may now hold it). The domain it had
//! before is not needed: a cached result that held the old version depends on the item
//! itself and goes with it.
//!
//! ```
//! use memory_core::feed::{Change, decode_changes, encode_changes};
//! use memory_core::EpisodeId;
//!
//! let changes = vec![
//!     Change::EpisodeStored { id: EpisodeId::new(), domain: "web".into() },
//!     Change::EpisodeDeleted { id: EpisodeId::new() },
//! ];
//! let bytes = encode_changes(&changes).unwrap();
//! assert_eq!(decode_changes(&bytes).unwrap(), Some(changes));
//! assert!(decode_changes(&bytes[..3]).is_err());
//! ```

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::entity::Entity;
use crate::episode::Episode;
use crate::error::{Result, StorageError};
use crate::heuristic::Heuristic;
use crate::ids::{EpisodeId, HeuristicId, PatternId};
use crate::pattern::Pattern;

/// One item a write changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Change {
    /// An episode was stored (inserted or replaced); `domain` is its domain now.
    EpisodeStored {
        /// The episode.
        id: EpisodeId,
        /// Its domain after the write.
        domain: String,
    },
    /// An episode was deleted (or a delete named one that was not there).
    EpisodeDeleted {
        /// The episode.
        id: EpisodeId,
    },
    /// A pattern was stored; `domain` is its domain now.
    PatternStored {
        /// The pattern.
        id: PatternId,
        /// Its domain after the write.
        domain: String,
    },
    /// A pattern was deleted.
    PatternDeleted {
        /// The pattern.
        id: PatternId,
    },
    /// A heuristic was stored.
    HeuristicStored {
        /// The heuristic.
        id: HeuristicId,
    },
    /// A heuristic was deleted.
    HeuristicDeleted {
        /// The heuristic.
        id: HeuristicId,
    },
}

/// How an item kind describes its changes (implemented for the three entities).
pub trait Changed: Entity {
    /// The change storing this item makes.
    fn stored(&self) -> Change;
    /// The change deleting the item `id` makes.
    fn deleted(id: Self::Id) -> Change;
}

impl Changed for Episode {
    fn stored(&self) -> Change {
        Change::EpisodeStored {
            id: self.id,
            domain: self.context.domain.clone(),
        }
    }
    fn deleted(id: EpisodeId) -> Change {
        Change::EpisodeDeleted { id }
    }
}

impl Changed for Pattern {
    fn stored(&self) -> Change {
        Change::PatternStored {
            id: self.id,
            domain: self.domain.clone(),
        }
    }
    fn deleted(id: PatternId) -> Change {
        Change::PatternDeleted { id }
    }
}

impl Changed for Heuristic {
    fn stored(&self) -> Change {
        Change::HeuristicStored { id: self.id }
    }
    fn deleted(id: HeuristicId) -> Change {
        Change::HeuristicDeleted { id }
    }
}

/// One write transaction in the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntry {
    /// The position the write produced.
    pub position: u64,
    /// What it changed, one entry per item (a batch lists all of its items).
    pub changes: Arc<[Change]>,
}

/// Why a feed cannot say what changed since a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedGap {
    /// The store keeps no feed.
    NotKept,
    /// The feed was trimmed past the position asked for (by age or count), or a write in
    /// between recorded no changes (one made before the store kept a feed).
    Trimmed,
    /// More writes happened since the position than one answer carries, or one of them
    /// changed more than [`MAX_FEED_ITEMS`] items (a bulk write lists none).
    TooMany,
}

/// What a store's feed says about the writes after a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangesSince {
    /// Every write after the position asked for up to `position`, in position order, one
    /// entry per position.
    Complete {
        /// The store's position as of the answer.
        position: u64,
        /// The writes, oldest first.
        writes: Vec<FeedEntry>,
    },
    /// The feed cannot list them: treat anything as changed up to `position`.
    Unknown {
        /// The store's position as of the answer.
        position: u64,
        /// Why.
        gap: FeedGap,
    },
}

impl ChangesSince {
    /// The store's position as of the answer.
    pub fn position(&self) -> u64 {
        match self {
            ChangesSince::Complete { position, .. } | ChangesSince::Unknown { position, .. } => {
                *position
            }
        }
    }
}

/// The most items one write lists in a feed: a larger write (a bulk import) is recorded
/// as "too many", and readers behind it flush. Bounds a feed entry to a few KiB.
pub const MAX_FEED_ITEMS: usize = 256;

/// The format byte in front of an encoded change list.
const FEED_FORMAT: u8 = 1;
/// The whole entry of a write with more than [`MAX_FEED_ITEMS`] items.
const FEED_BULK: u8 = 0;

/// Encodes a write's changes for a feed row: a format byte, then postcard; a write of more
/// than [`MAX_FEED_ITEMS`] items is encoded as one byte saying so.
pub fn encode_changes(changes: &[Change]) -> Result<Vec<u8>> {
    if changes.len() > MAX_FEED_ITEMS {
        return Ok(vec![FEED_BULK]);
    }
    postcard::to_extend(changes, vec![FEED_FORMAT])
        .map_err(|e| StorageError::internal(format!("encoding a write's changes: {e}")))
}

/// Decodes what [`encode_changes`] wrote (`None` for a bulk write, which lists nothing);
/// anything else is a `Corrupt` error.
pub fn decode_changes(bytes: &[u8]) -> Result<Option<Vec<Change>>> {
    let Some((&format, body)) = bytes.split_first() else {
        return Err(StorageError::corrupt("an empty change-feed entry"));
    };
    if format == FEED_BULK && body.is_empty() {
        return Ok(None);
    }
    if format != FEED_FORMAT {
        return Err(StorageError::corrupt(format!(
            "a change-feed entry of format {format}; this build reads format {FEED_FORMAT}"
        )));
    }
    let (changes, rest) = postcard::take_from_bytes::<Vec<Change>>(body)
        .map_err(|e| StorageError::corrupt(format!("a change-feed entry does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(StorageError::corrupt(format!(
            "a change-feed entry has {} bytes after its changes",
            rest.len()
        )));
    }
    Ok(Some(changes))
}

/// A bounded feed kept in memory, for stores that hold their data in memory too; the
/// caller holds it under the same lock as the data, so that an entry is visible exactly
/// when its write is.
#[derive(Debug)]
pub struct MemoryFeed {
    /// `None` changes: a bulk write.
    entries: std::collections::VecDeque<(u64, Option<Arc<[Change]>>)>,
    capacity: usize,
}

impl MemoryFeed {
    /// A feed keeping the newest `capacity` writes (at least one).
    pub fn new(capacity: usize) -> Self {
        MemoryFeed {
            entries: std::collections::VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records the write at `position` (positions must grow by one per write).
    pub fn record(&mut self, position: u64, changes: Vec<Change>) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        let listed = (changes.len() <= MAX_FEED_ITEMS).then(|| changes.into());
        self.entries.push_back((position, listed));
    }

    /// The writes after `since`, with `current` the store's position now; at most `limit`
    /// of them in one answer.
    pub fn since(&self, since: u64, current: u64, limit: usize) -> ChangesSince {
        if since >= current {
            return ChangesSince::Complete {
                position: current,
                writes: Vec::new(),
            };
        }
        let first = self.entries.front().map(|(position, _)| *position);
        if first.is_none_or(|first| first > since + 1) {
            return ChangesSince::Unknown {
                position: current,
                gap: FeedGap::Trimmed,
            };
        }
        if current - since > limit as u64 {
            return ChangesSince::Unknown {
                position: current,
                gap: FeedGap::TooMany,
            };
        }
        let mut writes = Vec::new();
        for (position, changes) in &self.entries {
            if *position <= since || *position > current {
                continue;
            }
            let Some(changes) = changes else {
                return ChangesSince::Unknown {
                    position: current,
                    gap: FeedGap::TooMany,
                };
            };
            writes.push(FeedEntry {
                position: *position,
                changes: Arc::clone(changes),
            });
        }
        ChangesSince::Complete {
            position: current,
            writes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(n: usize) -> Vec<Change> {
        (0..n)
            .map(|_| Change::EpisodeStored {
                id: EpisodeId::new(),
                domain: "web".into(),
            })
            .collect()
    }

    #[test]
    fn every_change_kind_round_trips_and_bad_bytes_are_corrupt() {
        let changes = vec![
            Change::EpisodeStored {
                id: EpisodeId::new(),
                domain: "web".into(),
            },
            Change::EpisodeDeleted {
                id: EpisodeId::new(),
            },
            Change::PatternStored {
                id: PatternId::new(),
                domain: "cli".into(),
            },
            Change::PatternDeleted {
                id: PatternId::new(),
            },
            Change::HeuristicStored {
                id: HeuristicId::new(),
            },
            Change::HeuristicDeleted {
                id: HeuristicId::new(),
            },
        ];
        let bytes = encode_changes(&changes).unwrap();
        assert_eq!(decode_changes(&bytes).unwrap(), Some(changes));
        let bulk = encode_changes(&stored(MAX_FEED_ITEMS + 1)).unwrap();
        assert_eq!(bulk.len(), 1);
        assert_eq!(decode_changes(&bulk).unwrap(), None);
        for bad in [&[][..], &[2, 0][..], &bytes[..bytes.len() - 1]] {
            let e = decode_changes(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{e}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode_changes(&longer).unwrap_err().kind(),
            crate::ErrorKind::Corrupt
        );
    }

    #[test]
    fn a_memory_feed_answers_what_it_keeps_and_says_when_it_cannot() {
        let mut feed = MemoryFeed::new(3);
        for position in 1..=5 {
            feed.record(position, stored(1));
        }
        // Keeps 3, 4, 5.
        match feed.since(2, 5, 10) {
            ChangesSince::Complete { position, writes } => {
                assert_eq!(position, 5);
                let positions: Vec<_> = writes.iter().map(|w| w.position).collect();
                assert_eq!(positions, vec![3, 4, 5]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            feed.since(1, 5, 10),
            ChangesSince::Unknown {
                position: 5,
                gap: FeedGap::Trimmed
            }
        );
        assert_eq!(
            feed.since(2, 5, 2),
            ChangesSince::Unknown {
                position: 5,
                gap: FeedGap::TooMany
            }
        );
        feed.record(6, stored(MAX_FEED_ITEMS + 1));
        assert_eq!(
            feed.since(4, 6, 10),
            ChangesSince::Unknown {
                position: 6,
                gap: FeedGap::TooMany
            },
            "a bulk write lists nothing"
        );
        assert_eq!(
            feed.since(6, 6, 10),
            ChangesSince::Complete {
                position: 6,
                writes: vec![]
            }
        );
    }
}
