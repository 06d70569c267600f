//! The store generations this handle's own write transactions produced, so that a cache
//! can tell its own writes (already invalidated) from other writers' (which need a flush).

use std::collections::BTreeSet;

use parking_lot::Mutex;

/// Own generations remembered; older ones are forgotten, and a question about a range
/// reaching below them is answered "someone else may have written".
const REMEMBERED: usize = 4_096;

#[derive(Default)]
pub(crate) struct OwnWrites {
    inner: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    generations: BTreeSet<u64>,
    /// Every own generation at or below this has been forgotten.
    forgotten_through: u64,
}

impl OwnWrites {
    pub(crate) fn record(&self, generation: u64) {
        let mut inner = self.inner.lock();
        if generation <= inner.forgotten_through {
            return;
        }
        inner.generations.insert(generation);
        if inner.generations.len() > REMEMBERED
            && let Some(oldest) = inner.generations.pop_first()
        {
            inner.forgotten_through = oldest;
        }
    }

    /// Whether a generation in `(from, to]` is not one of ours (true when unsure).
    pub(crate) fn written_elsewhere(&self, from: u64, to: u64) -> bool {
        if to <= from {
            return false;
        }
        let inner = self.inner.lock();
        if from < inner.forgotten_through {
            return true;
        }
        let own = inner.generations.range(from + 1..=to).count() as u64;
        own < to - from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_ranges_are_told_from_foreign_ones() {
        let own = OwnWrites::default();
        own.record(3);
        own.record(4);
        assert!(!own.written_elsewhere(2, 4), "3 and 4 are ours");
        assert!(own.written_elsewhere(2, 5), "5 is not");
        assert!(own.written_elsewhere(1, 3), "2 is not");
        assert!(!own.written_elsewhere(4, 4), "nothing happened");
        for generation in 10..10 + REMEMBERED as u64 + 1 {
            own.record(generation);
        }
        assert!(own.written_elsewhere(9, 12), "forgotten: unsure, so yes");
        assert!(!own.written_elsewhere(20, 30));
    }
}
