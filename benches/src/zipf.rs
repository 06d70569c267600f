//! The plain Zipf workload: reads of equally sized episodes whose popularity follows a Zipf
//! law, and the best any cache of a given size could do on it.
//!
//! Every episode encodes to exactly [`ZIPF_EPISODE_BYTES`], so a byte budget is an entry
//! budget and "a cache holding 10 % of the episodes" means what it says.

use memory_core::testing::samples::{self, BASE_TIME, sample_uuid};
use memory_core::{Episode, EpisodeId, codec};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, Zipf};

/// The encoded size of every Zipf-workload episode.
pub const ZIPF_EPISODE_BYTES: usize = 1_024;

/// Reads of `episodes` episodes with Zipf exponent `exponent`, seeded.
///
/// ```
/// use memory_bench::zipf::ZipfWorkload;
///
/// let workload = ZipfWorkload::new(1_000, 0.99, 7);
/// let reads = workload.reads(10_000);
/// assert_eq!(reads, workload.reads(10_000)); // deterministic
/// assert!(reads.iter().all(|&n| n < 1_000));
/// // The 100 most popular of 1,000 keys carry most of the requests.
/// assert!(workload.frequency_ideal(100) > 0.6);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZipfWorkload {
    /// Distinct episodes.
    pub episodes: u64,
    /// The Zipf exponent (0.99 is the usual "skewed web-like" setting).
    pub exponent: f64,
    /// The seed of the request sequence.
    pub seed: u64,
}

impl ZipfWorkload {
    /// A workload over `episodes` episodes.
    pub fn new(episodes: u64, exponent: f64, seed: u64) -> Self {
        ZipfWorkload {
            episodes,
            exponent,
            seed,
        }
    }

    /// Popularity rank `rank` (0 = most popular) as an episode number: a bijection that
    /// scatters popular episodes over the table instead of clustering them at its start.
    pub fn episode_of_rank(&self, rank: u64) -> u64 {
        crate::scatter(rank, self.episodes)
    }

    /// `count` episode numbers to read, in order.
    pub fn reads(&self, count: usize) -> Vec<u64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        match Zipf::new(self.episodes as f64, self.exponent) {
            Ok(zipf) => (0..count)
                .map(|_| {
                    let rank = (zipf.sample(&mut rng) as u64).saturating_sub(1);
                    self.episode_of_rank(rank)
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The share of requests that go to the `held` most popular episodes: the hit ratio of
    /// a cache that always holds exactly those (the frequency ideal).
    pub fn frequency_ideal(&self, held: u64) -> f64 {
        let weight = |k: u64| (k as f64).powf(-self.exponent);
        let total: f64 = (1..=self.episodes).map(weight).sum();
        let top: f64 = (1..=held.min(self.episodes)).map(weight).sum();
        if total > 0.0 { top / total } else { 0.0 }
    }

    /// The id of episode `n` (without building the episode).
    pub fn id_of(n: u64) -> EpisodeId {
        sample_uuid(0x21, n).into()
    }

    /// Episode `n` of the data set, [`ZIPF_EPISODE_BYTES`] encoded.
    pub fn episode(n: u64) -> Episode {
        let mut episode = samples::episode(1);
        episode.id = Self::id_of(n);
        episode.start_time = BASE_TIME.plus_micros(n as i64 * 1_000_000);
        episode.end_time = Some(episode.start_time.plus_micros(1_000));
        for step in &mut episode.steps {
            step.timestamp = episode.start_time.plus_micros(i64::from(step.step_number));
        }
        // Over 127 bytes from the start, so that padding never lengthens the length prefix.
        episode.description = format!("zipf workload episode {n:020} {:.<200}", "");
        let short = ZIPF_EPISODE_BYTES.saturating_sub(codec::encoded_len(&episode));
        episode.description.push_str(&".".repeat(short));
        episode
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

    use super::*;
    use memory_core::Entity;

    #[test]
    fn every_episode_has_the_same_size_and_is_valid() {
        for n in [0, 1, 9, 99_999, 1 << 40] {
            let episode = ZipfWorkload::episode(n);
            assert_eq!(
                codec::encoded_len(&episode),
                ZIPF_EPISODE_BYTES,
                "episode {n}"
            );
            assert!(episode.validate().is_ok());
        }
        assert_ne!(ZipfWorkload::episode(1).id, ZipfWorkload::episode(2).id);
        assert_eq!(ZipfWorkload::episode(7).id, ZipfWorkload::id_of(7));
    }

    #[test]
    fn ranks_map_to_distinct_episodes() {
        let w = ZipfWorkload::new(100_000, 0.99, 1);
        let mut seen: Vec<u64> = (0..100_000).map(|r| w.episode_of_rank(r)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn the_frequency_ideal_matches_the_trace() {
        let w = ZipfWorkload::new(100_000, 0.99, 3);
        // The issue's figure: the top 10 % carry about 80 % of requests.
        let ideal = w.frequency_ideal(10_000);
        assert!((ideal - 0.800).abs() < 0.001, "{ideal}");
        let top: std::collections::HashSet<u64> =
            (0..10_000).map(|r| w.episode_of_rank(r)).collect();
        let reads = w.reads(200_000);
        let share = reads.iter().filter(|n| top.contains(n)).count() as f64 / reads.len() as f64;
        assert!((share - ideal).abs() < 0.01, "{share} vs {ideal}");
    }
}
