//! [`CacheSettings`]: what a store's config says about its cache.

use std::time::Duration;

use memory_cache_adaptive::ConfigError;

/// How a store caches. The defaults suit an agent on one machine: 256 MiB, "not found"
/// remembered for 10 s, every entry reloaded at least every 10 minutes, and other writers'
/// changes noticed within 100 ms.
///
/// ```
/// use std::time::Duration;
/// use memory_storage_cached::CacheSettings;
///
/// let settings = CacheSettings::default()
///     .budget_bytes(64 * 1024 * 1024)
///     .change_check_interval(Duration::from_millis(50));
/// assert!(settings.validate().is_ok());
/// assert!(CacheSettings::default().budget_bytes(0).validate().is_err());
/// assert!(!CacheSettings::disabled().enabled);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// Whether to cache at all; off, a store is used directly and the cache costs nothing.
    pub enabled: bool,
    /// Bytes all caches together may hold (items counted by their encoded size): 70 % for
    /// episodes, 15 % for episode query results, 10 % for patterns and their query
    /// results, 5 % for heuristics.
    pub budget_bytes: u64,
    /// How long a "does not exist" answer is remembered; `None` turns negative caching off.
    pub negative_ttl: Option<Duration>,
    /// The longest any entry is served before it is read again, however often it is used.
    pub max_age: Option<Duration>,
    /// How often the cache asks the store whether someone else wrote (other processes on
    /// the same file, other clients of the server). A foreign write is never served stale
    /// to a read that starts more than this long after the write committed.
    pub change_check_interval: Duration,
    /// Whether a successful write also caches what it wrote (write-through), so that the
    /// next read of it is a hit; off, writes only remove the entries they replace.
    pub write_through: bool,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            enabled: true,
            budget_bytes: 256 * 1024 * 1024,
            negative_ttl: Some(Duration::from_secs(10)),
            max_age: Some(Duration::from_secs(600)),
            change_check_interval: Duration::from_millis(100),
            write_through: true,
        }
    }
}

impl CacheSettings {
    /// No caching.
    pub fn disabled() -> Self {
        CacheSettings {
            enabled: false,
            ..Self::default()
        }
    }

    /// Sets the byte budget.
    pub fn budget_bytes(mut self, bytes: u64) -> Self {
        self.budget_bytes = bytes;
        self
    }

    /// Sets (or with `None` turns off) negative caching.
    pub fn negative_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Sets (or with `None` removes) the maximum age of an entry.
    pub fn max_age(mut self, age: Option<Duration>) -> Self {
        self.max_age = age;
        self
    }

    /// Sets how often other writers' changes are looked for.
    pub fn change_check_interval(mut self, interval: Duration) -> Self {
        self.change_check_interval = interval;
        self
    }

    /// The bytes `part` may hold: its share of [`budget_bytes`](Self::budget_bytes).
    ///
    /// ```
    /// use memory_storage_cached::{CachePart, CacheSettings};
    ///
    /// let settings = CacheSettings::default().budget_bytes(10_000_000);
    /// assert_eq!(settings.part_bytes(CachePart::Episodes), 7_000_000);
    /// ```
    pub fn part_bytes(&self, part: CachePart) -> u64 {
        self.budget_bytes / 1000 * part.per_mille()
    }

    /// Sets whether writes cache what they wrote.
    pub fn write_through(mut self, on: bool) -> Self {
        self.write_through = on;
        self
    }

    /// Checks the values (only when enabled: a disabled cache has nothing to check).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| {
            Err(ConfigError {
                field,
                reason: reason.into(),
            })
        };
        if !self.enabled {
            return Ok(());
        }
        if self.budget_bytes < MIN_BUDGET {
            return bad("budget_bytes", "must be at least 1 MiB");
        }
        if self.change_check_interval.is_zero() {
            return bad("change_check_interval", "must be longer than zero");
        }
        if self.negative_ttl.is_some_and(|t| t.is_zero()) {
            return bad(
                "negative_ttl",
                "must be longer than zero (None turns it off)",
            );
        }
        if self.max_age.is_some_and(|t| t.is_zero()) {
            return bad("max_age", "must be longer than zero (None removes it)");
        }
        Ok(())
    }
}

/// One of a [`CachedStorage`](crate::CachedStorage)'s caches, for its share of the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CachePart {
    /// Episodes by id: 70 %.
    Episodes,
    /// `query_episodes` results: 15 %.
    EpisodeQueries,
    /// Patterns by id: 5 %.
    Patterns,
    /// `query_patterns` results: 5 %.
    PatternQueries,
    /// Heuristics by id: 5 %.
    Heuristics,
}

impl CachePart {
    /// Every part, whose shares add up to the whole budget.
    pub const ALL: [CachePart; 5] = [
        CachePart::Episodes,
        CachePart::EpisodeQueries,
        CachePart::Patterns,
        CachePart::PatternQueries,
        CachePart::Heuristics,
    ];

    /// Thousandths of the budget. Episodes are what agents read most and the largest
    /// items; query pages hold episodes too.
    pub fn per_mille(self) -> u64 {
        match self {
            CachePart::Episodes => 700,
            CachePart::EpisodeQueries => 150,
            CachePart::Patterns | CachePart::PatternQueries | CachePart::Heuristics => 50,
        }
    }
}

/// The smallest budget: below it every shard of the episode cache would hold less than one
/// typical episode.
pub(crate) const MIN_BUDGET: u64 = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_add_up_to_the_budget() {
        let total: u64 = CachePart::ALL.iter().map(|p| p.per_mille()).sum();
        assert_eq!(total, 1000);
    }
}
