//! A count-min sketch of recent access frequency (TinyLFU), updated without locks.
//!
//! Four rows of 4-bit-saturating counters (held in bytes, saturating at 15) indexed by
//! independent mixes of the key hash, behind a doorkeeper: a key's first access in a sample
//! period only sets two bits of a bloom filter, so one-hit wonders (a scan) neither pollute
//! the counters nor hasten their aging. After `sample` recorded accesses (ten per entry the
//! shard holds, so a cache bounded by bytes with far fewer entries than its entry bound
//! still ages at its real size) every counter is halved and the doorkeeper cleared, so the
//! sketch forgets old popularity. Updates race
//! benignly: a lost increment only makes an estimate slightly low.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

const ROWS: usize = 4;
const MAX_COUNT: u8 = 15;
const SEEDS: [u64; ROWS] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x27D4_EB2F_1656_67C5,
];

/// The shortest aging period: a nearly empty shard still counts a few hundred accesses.
const MIN_SAMPLE: usize = 256;

/// Additions a thread counts locally before adding them to a sketch's shared count.
const ADDITIONS_BATCH: usize = 16;

thread_local! {
    static PENDING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

pub(crate) struct FrequencySketch {
    counters: Box<[AtomicU8]>,
    doorkeeper: Box<[AtomicU64]>,
    door_mask: u64,
    mask: usize,
    /// Written on most increments: kept off the line of the read-only fields.
    additions: CachePadded<AtomicUsize>,
    sample: AtomicUsize,
    max_sample: usize,
}

impl FrequencySketch {
    /// A sketch for a shard holding about `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        let width = capacity.max(16).next_power_of_two();
        let door_bits = (width * 8) as u64;
        FrequencySketch {
            counters: (0..width * ROWS).map(|_| AtomicU8::new(0)).collect(),
            doorkeeper: (0..door_bits / 64).map(|_| AtomicU64::new(0)).collect(),
            door_mask: door_bits - 1,
            mask: width - 1,
            additions: CachePadded::new(AtomicUsize::new(0)),
            sample: AtomicUsize::new(width.saturating_mul(10)),
            max_sample: width.saturating_mul(10),
        }
    }

    /// Sets the aging period for a full shard holding `entries` entries (writers call it):
    /// ten accesses per entry, rounded up as the width is (a shard as large as its entry
    /// bound ages exactly as a sketch sized for it would).
    pub(crate) fn sample_for(&self, entries: usize) {
        let sample = entries
            .max(16)
            .next_power_of_two()
            .saturating_mul(10)
            .clamp(MIN_SAMPLE.min(self.max_sample), self.max_sample);
        self.sample.store(sample, Ordering::Relaxed);
    }

    fn index(&self, hash: u64, row: usize) -> usize {
        let mixed = (hash ^ SEEDS[row]).wrapping_mul(SEEDS[(row + 1) % ROWS]);
        row * (self.mask + 1) + ((mixed >> 32) as usize & self.mask)
    }

    fn door_bits(&self, hash: u64) -> [u64; 2] {
        let mixed = hash.wrapping_mul(SEEDS[0]);
        [mixed & self.door_mask, (mixed >> 32) & self.door_mask]
    }

    fn door_contains(&self, hash: u64) -> bool {
        self.door_bits(hash).iter().all(|bit| {
            self.doorkeeper[(bit / 64) as usize].load(Ordering::Relaxed) & (1 << (bit % 64)) != 0
        })
    }

    /// The estimated recent frequency of `hash` (0–16).
    pub(crate) fn estimate(&self, hash: u64) -> u8 {
        let counted = (0..ROWS)
            .map(|row| self.counters[self.index(hash, row)].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        counted + u8::from(self.door_contains(hash))
    }

    /// Records one access of `hash`.
    pub(crate) fn increment(&self, hash: u64) {
        if !self.door_contains(hash) {
            for bit in self.door_bits(hash) {
                self.doorkeeper[(bit / 64) as usize].fetch_or(1 << (bit % 64), Ordering::Relaxed);
            }
            self.count_addition();
            return;
        }
        let mut added = false;
        for row in 0..ROWS {
            let counter = &self.counters[self.index(hash, row)];
            let value = counter.load(Ordering::Relaxed);
            if value < MAX_COUNT {
                counter.store(value + 1, Ordering::Relaxed);
                added = true;
            }
        }
        if added {
            self.count_addition();
        }
    }

    fn count_addition(&self) {
        // Each thread reports its additions in batches (to whichever sketch it is adding to
        // when a batch fills, which is proportional to every sketch's share): one shared
        // atomic per read would bounce between the cores of every reader.
        let report = PENDING.with(|pending| {
            let count = pending.get() + 1;
            pending.set(count % ADDITIONS_BATCH);
            count == ADDITIONS_BATCH
        });
        if !report {
            return;
        }
        let before = self.additions.fetch_add(ADDITIONS_BATCH, Ordering::Relaxed);
        let sample = self.sample.load(Ordering::Relaxed);
        // `>=` rather than crossing exactly: the period may have just shrunk below the count.
        if before + ADDITIONS_BATCH >= sample {
            self.age(sample);
        }
    }

    /// Halves every counter: popularity decays so a former favourite can be displaced.
    fn age(&self, sample: usize) {
        for counter in self.counters.iter() {
            let value = counter.load(Ordering::Relaxed);
            counter.store(value / 2, Ordering::Relaxed);
        }
        for word in self.doorkeeper.iter() {
            word.store(0, Ordering::Relaxed);
        }
        self.additions.store(sample / 2, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_follow_frequency_and_age() {
        let sketch = FrequencySketch::new(64);
        for _ in 0..10 {
            sketch.increment(42);
        }
        sketch.increment(7);
        assert!(sketch.estimate(42) >= 10);
        assert_eq!(sketch.estimate(3), 0);
        assert!(sketch.estimate(7) >= 1);
        assert!(sketch.estimate(42) > sketch.estimate(7));
        for i in 0..sketch.sample.load(Ordering::Relaxed) as u64 {
            sketch.increment(1_000 + i);
        }
        assert!(sketch.estimate(42) < 10, "aging halves old counts");
        for _ in 0..100 {
            sketch.increment(9);
        }
        assert_eq!(sketch.estimate(9), MAX_COUNT + 1);
    }
}
