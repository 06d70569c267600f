//! Deterministic, seeded key traces.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// One access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The key read.
    pub key: u64,
    /// Part of a sequential scan of cold keys (a compulsory miss for every policy).
    pub scan: bool,
}

/// A named sequence of accesses over `keys` distinct keys.
#[derive(Clone, Debug)]
pub struct Trace {
    /// A short name for tables.
    pub name: String,
    /// Distinct keys the workload draws from (what cache sizes are relative to).
    pub keys: u64,
    /// The accesses, in order.
    pub requests: Vec<Request>,
}

impl Trace {
    /// The key sequence.
    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.requests.iter().map(|r| r.key)
    }
}

/// Spreads ranks over the key space so that popular keys do not cluster (a bijection).
fn key_of(rank: u64) -> u64 {
    rank.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D_4C95_7F2D
}

fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

fn zipf_ranks(keys: u64, s: f64, requests: usize, seed: u64) -> Vec<u64> {
    let mut rng = rng(seed);
    match Zipf::new(keys as f64, s) {
        Ok(zipf) => (0..requests)
            .map(|_| (zipf.sample(&mut rng) as u64).saturating_sub(1))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `requests` accesses over `keys` keys with Zipf exponent `s`.
pub fn zipf(keys: u64, s: f64, requests: usize, seed: u64) -> Trace {
    Trace {
        name: format!("zipf-{s}"),
        keys,
        requests: zipf_ranks(keys, s, requests, seed)
            .into_iter()
            .map(|r| Request {
                key: key_of(r),
                scan: false,
            })
            .collect(),
    }
}

/// Zipf 0.99 traffic with a sequential scan of `scan_len` never-repeated cold keys after
/// every `every` Zipf requests.
pub fn zipf_with_scans(
    keys: u64,
    requests: usize,
    every: usize,
    scan_len: usize,
    seed: u64,
) -> Trace {
    let mut out = Vec::with_capacity(requests + requests / every.max(1) * scan_len);
    let mut cold = keys;
    for (i, rank) in zipf_ranks(keys, 0.99, requests, seed)
        .into_iter()
        .enumerate()
    {
        out.push(Request {
            key: key_of(rank),
            scan: false,
        });
        if (i + 1) % every.max(1) == 0 {
            for _ in 0..scan_len {
                out.push(Request {
                    key: key_of(cold),
                    scan: true,
                });
                cold += 1;
            }
        }
    }
    Trace {
        name: "zipf-0.99+scans".into(),
        keys,
        requests: out,
    }
}

/// The keys `0..len` in order, over and over: LRU's worst case when `len` slightly exceeds
/// the cache.
pub fn looping(len: u64, requests: usize) -> Trace {
    Trace {
        name: format!("loop-{len}"),
        keys: len,
        requests: (0..requests as u64)
            .map(|i| Request {
                key: key_of(i % len.max(1)),
                scan: false,
            })
            .collect(),
    }
}

/// Agent sessions: episodes are created over time (each is written, then read a few times
/// while its run is discussed); most reads go to recent episodes, some to history.
///
/// Per request: with probability 0.05 a new episode is created and read; 0.75 reads a
/// recent episode (age drawn from a geometric distribution with mean 200 episodes); 0.15
/// reads an older episode chosen by Zipf-0.8 popularity over all episodes so far; 0.05
/// reads a uniformly random old episode. Starts with `keys / 2` episodes of history.
pub fn agent_sessions(keys: u64, requests: usize, seed: u64) -> Trace {
    let mut rng = rng(seed);
    let mut newest = keys / 2;
    let popular = Zipf::new(keys as f64, 0.8).ok();
    let mut out = Vec::with_capacity(requests);
    while out.len() < requests {
        let roll: f64 = rng.random();
        let episode = if roll < 0.05 && newest < keys - 1 {
            newest += 1;
            newest
        } else if roll < 0.80 {
            let mut age = 0u64;
            while age < newest && rng.random_bool(1.0 - 1.0 / 200.0) {
                age += 1;
            }
            newest - age
        } else if roll < 0.95 {
            let rank = popular
                .as_ref()
                .map_or(0, |z| (z.sample(&mut rng) as u64).saturating_sub(1));
            rank % (newest + 1)
        } else {
            rng.random_range(0..=newest)
        };
        out.push(Request {
            key: key_of(episode),
            scan: false,
        });
    }
    Trace {
        name: "agent-sessions".into(),
        keys,
        requests: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_deterministic_and_sized() {
        assert_eq!(
            zipf(100, 0.99, 500, 1).requests,
            zipf(100, 0.99, 500, 1).requests
        );
        assert_ne!(
            zipf(100, 0.99, 500, 1).requests,
            zipf(100, 0.99, 500, 2).requests
        );
        let scans = zipf_with_scans(100, 1_000, 100, 50, 3);
        assert_eq!(scans.requests.len(), 1_000 + 10 * 50);
        assert_eq!(scans.requests.iter().filter(|r| r.scan).count(), 500);
        assert_eq!(looping(10, 25).requests[10], looping(10, 25).requests[0]);
        assert_eq!(agent_sessions(1_000, 5_000, 4).requests.len(), 5_000);
    }
}
