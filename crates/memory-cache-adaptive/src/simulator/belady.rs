//! Belady's offline optimum: evict the entry whose next use is farthest in the future, and
//! do not admit a key used later than everything held. No online policy can do better on
//! the same trace with unit-sized entries.
//!
//! [`replay_events`] generalises it to entries of different sizes under a byte budget and to
//! writes. With sizes, "evict the farthest next use until the budget holds" is the standard
//! offline reference rather than a proven optimum (packing sizes optimally is NP-hard), so
//! reports call it the *offline reference*. A write hands the new value to the cache for
//! free (as a write-through cache would see it) and makes any held older value useless, so
//! the reference is an upper bound for caches that only invalidate on writes too.

use std::collections::{BTreeSet, HashMap};

use super::{ReplayResult, Trace};

/// One event of a weighted trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The key read or written.
    pub key: u64,
    /// What holding the key's current value costs (bytes, or 1 for unit entries).
    pub weight: u64,
    /// A write (the value changes and is available for free) rather than a read.
    pub write: bool,
}

/// Replays `trace` through the optimal policy with room for `capacity` entries.
pub fn replay(trace: &Trace, capacity: usize) -> ReplayResult {
    let events: Vec<Event> = trace
        .requests
        .iter()
        .map(|r| Event {
            key: r.key,
            weight: 1,
            write: false,
        })
        .collect();
    let scan: Vec<bool> = trace.requests.iter().map(|r| r.scan).collect();
    replay_with(&events, capacity as u64, |i| Some(scan[i]))
}

/// Replays weighted reads and writes under a `budget` of weight; the result counts the reads
/// from index `measure_from` on (earlier events warm the cache up; writes are neither hits
/// nor misses).
///
/// ```
/// use memory_cache_adaptive::simulator::belady::{Event, replay_events};
///
/// let read = |key, weight| Event { key, weight, write: false };
/// // Room for the 3-byte key 1 or the 2-byte key 2, not both: key 1 is read twice more.
/// let events = [read(1, 3), read(2, 2), read(1, 3), read(2, 2), read(1, 3)];
/// let result = replay_events(&events, 4, 0);
/// assert_eq!((result.hits, result.requests), (2, 5));
/// // Counting from the third event: the warm-up's two misses are not counted.
/// assert_eq!(replay_events(&events, 4, 2).requests, 3);
/// ```
pub fn replay_events(events: &[Event], budget: u64, measure_from: usize) -> ReplayResult {
    replay_with(events, budget, |i| (i >= measure_from).then_some(false))
}

/// [`replay_events`], counting apart the reads marked in `aside` (same length as
/// `events`): they count in `hits`/`requests` and are left out of
/// `core_hits`/`core_requests`, so that [`ReplayResult::core_hit_ratio`] is the hit ratio
/// without them.
///
/// ```
/// use memory_cache_adaptive::simulator::belady::{Event, replay_events_aside};
///
/// let read = |key| Event { key, weight: 1, write: false };
/// let events = [read(1), read(1), read(2), read(2)];
/// // The second read of key 2 is set aside: 2 hits of 4 reads, 1 of 3 without it.
/// let result = replay_events_aside(&events, 2, 0, &[false, false, false, true]);
/// assert_eq!((result.hits, result.requests), (2, 4));
/// assert_eq!((result.core_hits, result.core_requests), (1, 3));
/// ```
pub fn replay_events_aside(
    events: &[Event],
    budget: u64,
    measure_from: usize,
    aside: &[bool],
) -> ReplayResult {
    replay_with(events, budget, |i| {
        (i >= measure_from).then(|| aside.get(i).copied().unwrap_or(false))
    })
}

/// `classify(i)`: `None` if read `i` is not counted, else whether it is a scan request.
fn replay_with(
    events: &[Event],
    budget: u64,
    classify: impl Fn(usize) -> Option<bool>,
) -> ReplayResult {
    let n = events.len();
    // next[i]: index of the next read of the same key if no write comes first (n if none):
    // a value held past a write of its key is useless.
    let mut next = vec![n; n];
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (i, event) in events.iter().enumerate().rev() {
        if let Some(&later) = seen.get(&event.key)
            && !events[later].write
        {
            next[i] = later;
        }
        seen.insert(event.key, i);
    }
    // key -> (next use, weight)
    let mut held: HashMap<u64, (usize, u64)> = HashMap::new();
    let mut by_next: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut used = 0u64;
    let mut result = ReplayResult::default();
    for (i, event) in events.iter().enumerate() {
        let hit = match held.remove(&event.key) {
            Some((at, weight)) => {
                by_next.remove(&(at, event.key));
                used -= weight;
                !event.write
            }
            None => false,
        };
        // Held again (a hit, a miss's load or a write's value), then the farthest next
        // uses leave until the budget holds: possibly this very key, i.e. not admitted.
        if next[i] < n && event.weight <= budget {
            held.insert(event.key, (next[i], event.weight));
            by_next.insert((next[i], event.key));
            used += event.weight;
            while used > budget {
                let Some((far, key)) = by_next.pop_last() else {
                    break;
                };
                if let Some((_, weight)) = held.remove(&key) {
                    used -= weight;
                }
                debug_assert!(far >= next[i] || key != event.key);
            }
        }
        if !event.write
            && let Some(scan) = classify(i)
        {
            tally(&mut result, scan, hit);
        }
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

    fn read(key: u64, weight: u64) -> Event {
        Event {
            key,
            weight,
            write: false,
        }
    }

    fn write(key: u64, weight: u64) -> Event {
        Event {
            key,
            weight,
            write: true,
        }
    }

    #[test]
    fn a_write_provides_the_value_and_is_not_counted() {
        // The write makes key 1 available: both later reads hit.
        let r = replay_events(&[write(1, 1), read(1, 1), read(1, 1)], 1, 0);
        assert_eq!((r.hits, r.requests), (2, 2));
    }

    #[test]
    fn a_value_is_useless_past_a_write_of_its_key() {
        // Room for one entry. Key 1's first value is overwritten before it is read again, so
        // the room goes to key 2 (read again at index 3); the write's value for key 1 comes
        // after that, for free, and serves the last read.
        let events = [read(2, 1), read(1, 1), write(1, 1), read(2, 1), read(1, 1)];
        let r = replay_events(&events, 1, 0);
        assert_eq!((r.hits, r.requests), (1, 4));
        let r = replay_events(&events, 2, 0);
        assert_eq!((r.hits, r.requests), (2, 4));
    }

    #[test]
    fn an_entry_larger_than_the_budget_is_never_held() {
        let r = replay_events(&[read(1, 5), read(1, 5)], 4, 0);
        assert_eq!(r.hits, 0);
    }

    #[test]
    fn sizes_decide_what_fits() {
        // Budget 4: the two 2-byte keys fit together and beat the single 4-byte key.
        let events = [
            read(1, 4),
            read(2, 2),
            read(3, 2),
            read(2, 2),
            read(3, 2),
            read(1, 4),
        ];
        let r = replay_events(&events, 4, 0);
        assert!(r.hits >= 2, "{r:?}");
    }
}
