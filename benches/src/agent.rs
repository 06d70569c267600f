//! The standard agent-session workload: what an agent does with its memory while it works.
//!
//! The data set is [`STANDARD_HISTORY`] typical episodes (1–32 KiB each, see
//! [`typical_episode`]), one second apart. Then the agent runs sessions; each session is
//! one task run in one domain (the busier domains more often) and does, in order:
//!
//! 1. a query for the domain's 10 newest episodes ("what did I do here lately");
//! 2. with probability 0.25, a query for the domain's episodes of the last hour (up to 20);
//! 3. 1 + Geometric(mean 6) reads by id: 70 % a recent episode (its age, counted in
//!    episodes back from the newest, is geometric with mean 200), 20 % a well-known old one
//!    (Zipf 0.8 popularity over the starting history), 10 % any episode, uniformly;
//! 4. the run finishes and its episode is stored; with probability 0.2 the run also
//!    produced 2–8 sub-run episodes, stored together in one batch (a burst of writes);
//! 5. two reads of the episode just stored (the agent reviews its run);
//! 6. with probability 0.1, a recent episode (age geometric with mean 50) is stored again
//!    with a revised reflection.
//!
//! Everything is drawn from one seeded generator, so a seed always yields the same
//! operations, and [`AgentWorkload::events`] turns them into the weighted read/write trace
//! on which the offline reference (Belady's rule under the same byte budget) is computed.

use std::collections::HashMap;
use std::ops::Range;

use memory_cache_adaptive::simulator::belady::Event;
use memory_core::testing::samples::{BASE_TIME, sample_uuid};
use memory_core::testing::typical::{TYPICAL_DOMAINS, typical_episode};
use memory_core::{Episode, EpisodeId, EpisodeQuery, Timestamp, codec};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Geometric, Zipf};

/// Episodes in the standard data set: about a year of an agent that finishes some 140 task
/// runs a day; about 440 MiB encoded.
pub const STANDARD_HISTORY: u64 = 50_000;

/// One thing an agent does with its memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentOp {
    /// Read episode `n` by id.
    Get(u64),
    /// Read back episode `n`, which this session has just stored (an agent checking its
    /// write): a hit by construction for a write-through cache, so the dashboard also
    /// reports the hit ratio without these.
    ReadBack(u64),
    /// The newest 10 episodes of a domain.
    Recent(&'static str),
    /// Up to 20 episodes of a domain that started at or after episode `since` did.
    Window {
        /// The domain.
        domain: &'static str,
        /// The first episode number of the window.
        since: u64,
    },
    /// New episodes `range` stored in one call (a batch when more than one).
    Store(Range<u64>),
    /// Episode `n` stored again as revision `revision`.
    Revise {
        /// The episode.
        n: u64,
        /// Its revision number, from 1.
        revision: u32,
    },
}

impl AgentOp {
    /// The query this operation runs, if it is one.
    pub fn query(&self) -> Option<EpisodeQuery> {
        match *self {
            AgentOp::Recent(domain) => Some(EpisodeQuery::new().domain(domain).limit(10)),
            AgentOp::Window { domain, since } => Some(
                EpisodeQuery::new()
                    .domain(domain)
                    .since(start_of(since))
                    .limit(20),
            ),
            _ => None,
        }
    }
}

/// What the cached store's episode cache weighs `episode` at: the memory of the episode as
/// a read decodes it, in its `Arc` (before the cache's per-entry overhead).
pub fn cached_weight(episode: &Episode) -> u64 {
    match codec::encode(episode).and_then(|bytes| codec::decode::<Episode>(&bytes)) {
        Ok(decoded) => memory_core::heap::arc_bytes(&decoded) as u64,
        // Every generated episode encodes; should one not, its size as generated stands in.
        Err(_) => memory_core::heap::arc_bytes(episode) as u64,
    }
}

/// When episode `n` started (the data set's episodes are one second apart).
pub fn start_of(n: u64) -> Timestamp {
    BASE_TIME.plus_micros(n as i64 * 1_000_000)
}

/// The id of episode `n`, in every revision.
pub fn id_of(n: u64) -> EpisodeId {
    // As `typical_episode` makes it, without building the episode.
    sample_uuid(0x7E, n).into()
}

/// Revision `revision` of episode `n` (0 is the original [`typical_episode`]).
pub fn episode(n: u64, revision: u32) -> Episode {
    let mut episode = typical_episode(n);
    if revision > 0
        && let Some(reflection) = episode.reflection.as_mut()
    {
        reflection.insights.push(format!(
            "revision {revision}: checked again after later runs"
        ));
    }
    episode
}

/// The agent-session workload over a starting history, seeded.
///
/// ```
/// use memory_bench::agent::{AgentOp, AgentWorkload};
///
/// let workload = AgentWorkload::new(1_000, 42);
/// let ops = workload.sessions(50);
/// assert_eq!(ops, workload.sessions(50)); // deterministic
/// assert!(ops.iter().any(|op| matches!(op, AgentOp::Store(_))));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentWorkload {
    /// Episodes stored before the sessions start (numbers `0..history`).
    pub history: u64,
    /// The seed.
    pub seed: u64,
}

impl AgentWorkload {
    /// The workload over `history` starting episodes.
    pub fn new(history: u64, seed: u64) -> Self {
        AgentWorkload { history, seed }
    }

    /// The standard workload: [`STANDARD_HISTORY`] episodes, seed 42.
    pub fn standard() -> Self {
        Self::new(STANDARD_HISTORY, 42)
    }

    /// The operations of `sessions` sessions, in order.
    pub fn sessions(&self, sessions: usize) -> Vec<AgentOp> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let history = self.history.max(1);
        let recent = Geometric::new(1.0 / 201.0).ok();
        let revised = Geometric::new(1.0 / 51.0).ok();
        let reads = Geometric::new(1.0 / 7.0).ok();
        let popular = Zipf::new(history as f64, 0.8).ok();
        let mut newest = history - 1;
        let mut revisions: HashMap<u64, u32> = HashMap::new();
        let mut ops = Vec::with_capacity(sessions * 12);
        let draw = |rng: &mut Xoshiro256PlusPlus, g: &Option<Geometric>| {
            g.as_ref().map_or(0, |g| g.sample(rng))
        };
        for _ in 0..sessions {
            let busy: f64 = rng.random();
            let domain = TYPICAL_DOMAINS[(busy * busy * TYPICAL_DOMAINS.len() as f64) as usize];
            ops.push(AgentOp::Recent(domain));
            if rng.random_bool(0.25) {
                ops.push(AgentOp::Window {
                    domain,
                    since: newest.saturating_sub(3_600),
                });
            }
            for _ in 0..1 + draw(&mut rng, &reads) {
                let roll: f64 = rng.random();
                let n = if roll < 0.70 {
                    newest.saturating_sub(draw(&mut rng, &recent))
                } else if roll < 0.90 {
                    let rank = popular
                        .as_ref()
                        .map_or(0, |z| (z.sample(&mut rng) as u64).saturating_sub(1));
                    crate::scatter(rank, history)
                } else {
                    rng.random_range(0..=newest)
                };
                ops.push(AgentOp::Get(n));
            }
            let run = newest + 1;
            let extra = if rng.random_bool(0.2) {
                rng.random_range(2..=8)
            } else {
                0
            };
            newest = run + extra;
            ops.push(AgentOp::Store(run..newest + 1));
            ops.push(AgentOp::ReadBack(run));
            ops.push(AgentOp::ReadBack(run));
            if rng.random_bool(0.1) {
                let n = newest.saturating_sub(draw(&mut rng, &revised));
                let revision = revisions.entry(n).or_insert(0);
                *revision += 1;
                ops.push(AgentOp::Revise {
                    n,
                    revision: *revision,
                });
            }
        }
        ops
    }

    /// How many events [`events`](Self::events) makes of `ops`, without weighing anything
    /// (for the index where a counted part of a trace starts).
    pub fn event_count(ops: &[AgentOp]) -> usize {
        ops.iter()
            .map(|op| match op {
                AgentOp::Get(_) | AgentOp::ReadBack(_) | AgentOp::Revise { .. } => 1,
                AgentOp::Store(range) => (range.end - range.start) as usize,
                AgentOp::Recent(_) | AgentOp::Window { .. } => 0,
            })
            .sum()
    }

    /// For each event of [`events`](Self::events), whether it is a [`AgentOp::ReadBack`].
    pub fn read_back_flags(ops: &[AgentOp]) -> Vec<bool> {
        let mut flags = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                AgentOp::ReadBack(_) => flags.push(true),
                AgentOp::Get(_) | AgentOp::Revise { .. } => flags.push(false),
                AgentOp::Store(range) => flags.extend(std::iter::repeat_n(
                    false,
                    (range.end - range.start) as usize,
                )),
                AgentOp::Recent(_) | AgentOp::Window { .. } => {}
            }
        }
        flags
    }

    /// The entity reads and writes of `ops` as a weighted trace for the offline reference:
    /// each episode weighs its encoded size plus `entry_overhead`, as the cache weighs it.
    pub fn events(ops: &[AgentOp], entry_overhead: u64) -> Vec<Event> {
        let mut weights: HashMap<(u64, u32), u64> = HashMap::new();
        let mut current: HashMap<u64, u32> = HashMap::new();
        let mut weight = |n: u64, revision: u32| {
            *weights
                .entry((n, revision))
                .or_insert_with(|| cached_weight(&episode(n, revision)) + entry_overhead)
        };
        let mut events = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                AgentOp::Get(n) | AgentOp::ReadBack(n) => {
                    let revision = current.get(n).copied().unwrap_or(0);
                    events.push(Event {
                        key: *n,
                        weight: weight(*n, revision),
                        write: false,
                    });
                }
                AgentOp::Store(range) => {
                    for n in range.clone() {
                        events.push(Event {
                            key: n,
                            weight: weight(n, 0),
                            write: true,
                        });
                    }
                }
                AgentOp::Revise { n, revision } => {
                    current.insert(*n, *revision);
                    events.push(Event {
                        key: *n,
                        weight: weight(*n, *revision),
                        write: true,
                    });
                }
                AgentOp::Recent(_) | AgentOp::Window { .. } => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

    use super::*;

    #[test]
    fn reads_only_ever_name_stored_episodes() {
        let w = AgentWorkload::new(500, 9);
        let mut newest = 499;
        for op in w.sessions(2_000) {
            match op {
                AgentOp::Get(n) | AgentOp::ReadBack(n) | AgentOp::Revise { n, .. } => {
                    assert!(n <= newest, "{n}")
                }
                AgentOp::Window { since, .. } => assert!(since <= newest),
                AgentOp::Store(range) => {
                    assert_eq!(range.start, newest + 1);
                    newest = range.end - 1;
                }
                AgentOp::Recent(_) => {}
            }
        }
    }

    #[test]
    fn the_mix_is_as_documented() {
        let ops = AgentWorkload::new(50_000, 1).sessions(20_000);
        let count = |f: fn(&AgentOp) -> bool| ops.iter().filter(|op| f(op)).count() as f64;
        let sessions = count(|op| matches!(op, AgentOp::Recent(_)));
        assert_eq!(sessions, 20_000.0);
        let windows = count(|op| matches!(op, AgentOp::Window { .. })) / sessions;
        assert!((windows - 0.25).abs() < 0.02, "{windows}");
        // 1 + mean 6 lookups plus 2 reviews per session.
        let gets = count(|op| matches!(op, AgentOp::Get(_))) / sessions;
        assert!((gets - 7.0).abs() < 0.2, "{gets}");
        let read_backs = count(|op| matches!(op, AgentOp::ReadBack(_))) / sessions;
        assert_eq!(read_backs, 2.0);
        let batches = ops
            .iter()
            .filter(|op| matches!(op, AgentOp::Store(r) if r.end - r.start > 1))
            .count() as f64
            / sessions;
        assert!((batches - 0.2).abs() < 0.02, "{batches}");
    }

    #[test]
    fn revisions_change_the_episode_but_not_its_id() {
        let a = episode(7, 0);
        let b = episode(7, 2);
        assert_eq!(a.id, b.id);
        assert_ne!(a, b);
        assert_eq!(id_of(7), a.id);
    }

    #[test]
    fn event_count_matches_the_events() {
        let ops = AgentWorkload::new(300, 5).sessions(100);
        assert_eq!(
            AgentWorkload::event_count(&ops),
            AgentWorkload::events(&ops, 64).len()
        );
        let flags = AgentWorkload::read_back_flags(&ops);
        assert_eq!(flags.len(), AgentWorkload::event_count(&ops));
        let read_backs = ops
            .iter()
            .filter(|op| matches!(op, AgentOp::ReadBack(_)))
            .count();
        assert_eq!(flags.iter().filter(|f| **f).count(), read_backs);
        assert_eq!(read_backs, 200, "two per session");
    }

    #[test]
    fn events_weigh_the_revision_read() {
        let ops = vec![
            AgentOp::Get(3),
            AgentOp::Revise { n: 3, revision: 1 },
            AgentOp::Get(3),
        ];
        let events = AgentWorkload::events(&ops, 64);
        assert_eq!(events.len(), 3);
        assert!(events[1].write && !events[2].write);
        assert_eq!(events[1].weight, events[2].weight);
        assert_eq!(events[0].weight, cached_weight(&episode(3, 0)) + 64);
    }
}
