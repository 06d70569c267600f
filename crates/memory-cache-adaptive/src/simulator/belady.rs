//! Belady's offline optimum: evict the entry whose next use is farthest in the future, and
//! do not admit a key used later than everything held. No online policy can do better on
//! the same trace with unit-sized entries.

use std::collections::{BTreeSet, HashMap};

use super::{ReplayResult, Trace};

/// Replays `trace` through the optimal policy with room for `capacity` entries.
pub fn replay(trace: &Trace, capacity: usize) -> ReplayResult {
    let n = trace.requests.len();
    // next[i]: index of the next access of the same key after i (n if none).
    let mut next = vec![n; n];
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (i, request) in trace.requests.iter().enumerate().rev() {
        if let Some(&later) = seen.get(&request.key) {
            next[i] = later;
        }
        seen.insert(request.key, i);
    }
    let mut held: HashMap<u64, usize> = HashMap::new();
    let mut by_next: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut result = ReplayResult::default();
    for (i, request) in trace.requests.iter().enumerate() {
        let hit = if let Some(at) = held.get_mut(&request.key) {
            by_next.remove(&(*at, request.key));
            *at = next[i];
            by_next.insert((next[i], request.key));
            true
        } else {
            if held.len() >= capacity {
                let farthest = by_next.last().copied();
                match farthest {
                    Some((far, key)) if far > next[i] => {
                        by_next.remove(&(far, key));
                        held.remove(&key);
                    }
                    _ => {
                        // The new key is needed later than anything held: bypass it.
                        tally(&mut result, request.scan, false);
                        continue;
                    }
                }
            }
            if capacity > 0 {
                held.insert(request.key, next[i]);
                by_next.insert((next[i], request.key));
            }
            false
        };
        tally(&mut result, request.scan, hit);
    }
    result
}

fn tally(result: &mut ReplayResult, scan: bool, hit: bool) {
    result.requests += 1;
    result.hits += u64::from(hit);
    if !scan {
        result.core_requests += 1;
        result.core_hits += u64::from(hit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::traces;

    #[test]
    fn optimum_on_a_loop_bypasses_the_farthest_key() {
        // A loop of 4 keys with room for 3: OPT keeps three keys and bypasses the fourth,
        // hitting 3 of every 4 accesses after warm-up.
        let trace = traces::looping(4, 4_000);
        let r = replay(&trace, 3);
        assert!((r.hit_ratio() - 0.75).abs() < 0.01, "{}", r.hit_ratio());
    }

    #[test]
    fn optimum_beats_everything_on_zipf() {
        let trace = traces::zipf(1_000, 0.99, 20_000, 5);
        let opt = replay(&trace, 100).hit_ratio();
        let ours =
            crate::simulator::replay(&trace, &mut crate::simulator::AdaptivePolicy::new(100))
                .hit_ratio();
        assert!(opt >= ours, "{opt} < {ours}");
    }
}
