//! Queries: [`EpisodeQuery`] with keyset paging ([`EpisodeCursor`]) and [`PatternQuery`].
//!
//! The `matches` methods are the normative definition of each filter; every backend must
//! return exactly the items they accept, in the documented order.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::episode::{Episode, OutcomeKind, TaskType};
use crate::error::{Problem, ValidationError};
use crate::ids::EpisodeId;
use crate::limits::{DEFAULT_QUERY_LIMIT, MAX_NAME_BYTES, MAX_QUERY_LIMIT};
use crate::pattern::{Pattern, PatternKind};
use crate::time::Timestamp;
use crate::validate as check;

/// Episodes matching every set filter, newest first (by `start_time`, then by id, both
/// descending), at most `limit` per page.
///
/// ```
/// use memory_core::{EpisodeQuery, OutcomeKind, Timestamp};
///
/// let tuesday = Timestamp::from_micros(1_700_000_000_000_000);
/// let query = EpisodeQuery::new()
///     .domain("web")
///     .since(tuesday)
///     .outcome(OutcomeKind::Success)
///     .tag("ci")
///     .limit(20);
/// assert!(query.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EpisodeQuery {
    /// Only episodes with `start_time >= since`.
    pub since: Option<Timestamp>,
    /// Only episodes with `start_time < until`.
    pub until: Option<Timestamp>,
    /// Only episodes whose `context.domain` equals this.
    pub domain: Option<String>,
    /// Only episodes of this task type.
    pub task_type: Option<TaskType>,
    /// Only finished episodes with this kind of outcome.
    pub outcome: Option<OutcomeKind>,
    /// Only episodes whose `tags` contain every one of these.
    pub tags: Vec<String>,
    /// Only episodes whose `metadata` has every one of these pairs.
    pub metadata: BTreeMap<String, String>,
    /// Most episodes per page, from 1 to [`MAX_QUERY_LIMIT`].
    pub limit: usize,
    /// Continue after this position (from [`EpisodePage::next_cursor`]).
    pub cursor: Option<EpisodeCursor>,
}

impl Default for EpisodeQuery {
    fn default() -> Self {
        EpisodeQuery {
            since: None,
            until: None,
            domain: None,
            task_type: None,
            outcome: None,
            tags: Vec::new(),
            metadata: BTreeMap::new(),
            limit: DEFAULT_QUERY_LIMIT,
            cursor: None,
        }
    }
}

impl EpisodeQuery {
    /// All episodes, [`DEFAULT_QUERY_LIMIT`] per page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only episodes started at or after `time`.
    pub fn since(mut self, time: Timestamp) -> Self {
        self.since = Some(time);
        self
    }

    /// Only episodes started before `time`.
    pub fn until(mut self, time: Timestamp) -> Self {
        self.until = Some(time);
        self
    }

    /// Only episodes in `domain`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Only episodes of `task_type`.
    pub fn task_type(mut self, task_type: TaskType) -> Self {
        self.task_type = Some(task_type);
        self
    }

    /// Only episodes that ended with `outcome`.
    pub fn outcome(mut self, outcome: OutcomeKind) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// Also require `tag`.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Also require the metadata pair `key = value`.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// At most `limit` episodes per page.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Continue after `cursor`.
    pub fn after(mut self, cursor: EpisodeCursor) -> Self {
        self.cursor = Some(cursor);
        self
    }

    /// Checks the limit, the time range and the filter values.
    pub fn validate(&self) -> Result<(), ValidationError> {
        limit("limit", self.limit)?;
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since > until
        {
            return Err(ValidationError::new(
                "since",
                Problem::Invalid(format!("{since} is after until {until}")),
            ));
        }
        if let Some(domain) = &self.domain {
            check::required("domain", domain, MAX_NAME_BYTES)?;
        }
        check::tags("tags", &self.tags)?;
        check::metadata("metadata", &self.metadata)
    }

    /// Whether [`matches`](Self::matches) can refuse any episode.
    pub fn filters_anything(&self) -> bool {
        self.since.is_some()
            || self.until.is_some()
            || self.domain.is_some()
            || self.task_type.is_some()
            || self.outcome.is_some()
            || !self.tags.is_empty()
            || !self.metadata.is_empty()
    }

    /// Whether `episode` passes every filter (the cursor and limit aside).
    pub fn matches(&self, episode: &Episode) -> bool {
        self.since.is_none_or(|t| episode.start_time >= t)
            && self.until.is_none_or(|t| episode.start_time < t)
            && self
                .domain
                .as_ref()
                .is_none_or(|d| &episode.context.domain == d)
            && self.task_type.is_none_or(|t| episode.task_type == t)
            && self
                .outcome
                .is_none_or(|o| episode.outcome_kind() == Some(o))
            && self.tags.iter().all(|t| episode.tags.contains(t))
            && self
                .metadata
                .iter()
                .all(|(k, v)| episode.metadata.get(k) == Some(v))
    }
}

/// A position in the newest-first episode order: the last episode of a page.
///
/// Paging with it never repeats or skips an episode that exists for the whole paging,
/// however many episodes are written meanwhile. `Display`/`FromStr` give an opaque token
/// for passing it through other systems.
///
/// ```
/// use memory_core::{EpisodeCursor, EpisodeId, Timestamp};
///
/// let cursor = EpisodeCursor::new(Timestamp::from_micros(5), EpisodeId::new());
/// let token = cursor.to_string();
/// assert_eq!(token.parse::<EpisodeCursor>().unwrap(), cursor);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EpisodeCursor {
    start_time: Timestamp,
    id: EpisodeId,
}

impl EpisodeCursor {
    /// The position of an episode that started at `start_time` with `id`.
    pub fn new(start_time: Timestamp, id: EpisodeId) -> Self {
        EpisodeCursor { start_time, id }
    }

    /// The position of `episode`.
    pub fn of(episode: &Episode) -> Self {
        Self::new(episode.start_time, episode.id)
    }

    /// The start time of the last episode returned.
    pub fn start_time(&self) -> Timestamp {
        self.start_time
    }

    /// The id of the last episode returned.
    pub fn id(&self) -> EpisodeId {
        self.id
    }

    /// Whether an episode at (`start_time`, `id`) comes after this position in the
    /// newest-first order, i.e. belongs to a later page.
    pub fn admits(&self, start_time: Timestamp, id: EpisodeId) -> bool {
        (start_time, id) < (self.start_time, self.id)
    }
}

impl fmt::Display for EpisodeCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            self.start_time.as_micros(),
            self.id.as_uuid().simple()
        )
    }
}

/// An unparseable cursor token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed episode cursor token")]
pub struct BadCursor;

impl FromStr for EpisodeCursor {
    type Err = BadCursor;
    fn from_str(s: &str) -> Result<Self, BadCursor> {
        let (micros, id) = s.split_once('.').ok_or(BadCursor)?;
        Ok(EpisodeCursor {
            start_time: Timestamp::from_micros(micros.parse().map_err(|_| BadCursor)?),
            id: id.parse().map_err(|_| BadCursor)?,
        })
    }
}

/// One page of [`EpisodeQuery`] results.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpisodePage {
    /// The episodes, newest first.
    pub items: Vec<Arc<Episode>>,
    /// Where the next page starts; `None` when no further episode matches.
    pub next_cursor: Option<EpisodeCursor>,
}

impl EpisodePage {
    /// Builds a page from up to `limit + 1` matching episodes in order: the extra one only
    /// tells that a next page exists. Backends fetch one more row than asked for and call
    /// this.
    pub fn from_overfetch(mut items: Vec<Arc<Episode>>, limit: usize) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more {
            items.last().map(|e| EpisodeCursor::of(e))
        } else {
            None
        };
        EpisodePage { items, next_cursor }
    }
}

/// Patterns matching every set filter, highest `success_rate` first (ties by ascending id),
/// at most `limit`.
///
/// Equality and hashing compare `min_success_rate` by bit pattern, so the query can key a
/// cache.
///
/// ```
/// use memory_core::{PatternKind, PatternQuery};
///
/// let q = PatternQuery::new().kind(PatternKind::ErrorRecovery).min_success_rate(0.8);
/// assert!(q.validate().is_ok());
/// assert!(PatternQuery::new().min_success_rate(f64::NAN).validate().is_err());
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PatternQuery {
    /// Only patterns of this kind.
    pub kind: Option<PatternKind>,
    /// Only patterns with `success_rate >= min_success_rate` (in `[0, 1]`).
    pub min_success_rate: Option<f64>,
    /// Only patterns in this domain.
    pub domain: Option<String>,
    /// Most patterns returned, from 1 to [`MAX_QUERY_LIMIT`].
    pub limit: usize,
}

impl Default for PatternQuery {
    fn default() -> Self {
        PatternQuery {
            kind: None,
            min_success_rate: None,
            domain: None,
            limit: DEFAULT_QUERY_LIMIT,
        }
    }
}

impl PatternQuery {
    /// All patterns, at most [`DEFAULT_QUERY_LIMIT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Only patterns of `kind`.
    pub fn kind(mut self, kind: PatternKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only patterns at least this successful.
    pub fn min_success_rate(mut self, rate: f64) -> Self {
        self.min_success_rate = Some(rate);
        self
    }

    /// Only patterns in `domain`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// At most `limit` patterns.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Checks the limit and filter values.
    pub fn validate(&self) -> Result<(), ValidationError> {
        limit("limit", self.limit)?;
        if let Some(rate) = self.min_success_rate {
            check::unit_interval("min_success_rate", rate)?;
        }
        if let Some(domain) = &self.domain {
            check::required("domain", domain, MAX_NAME_BYTES)?;
        }
        Ok(())
    }

    /// Whether [`matches`](Self::matches) can refuse any pattern.
    pub fn filters_anything(&self) -> bool {
        self.kind.is_some() || self.min_success_rate.is_some() || self.domain.is_some()
    }

    /// Whether `pattern` passes every filter.
    pub fn matches(&self, pattern: &Pattern) -> bool {
        self.kind.is_none_or(|k| pattern.kind() == k)
            && self
                .min_success_rate
                .is_none_or(|r| pattern.success_rate >= r)
            && self.domain.as_ref().is_none_or(|d| &pattern.domain == d)
    }

    /// The result order: higher success rate first, then ascending id.
    pub fn order(a: &Pattern, b: &Pattern) -> std::cmp::Ordering {
        b.success_rate
            .total_cmp(&a.success_rate)
            .then_with(|| a.id.cmp(&b.id))
    }

    fn key(&self) -> (Option<PatternKind>, Option<u64>, Option<&str>, usize) {
        (
            self.kind,
            self.min_success_rate.map(f64::to_bits),
            self.domain.as_deref(),
            self.limit,
        )
    }
}

impl PartialEq for PatternQuery {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for PatternQuery {}

impl Hash for PatternQuery {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

fn limit(field: &str, limit: usize) -> Result<(), ValidationError> {
    if limit == 0 || limit > MAX_QUERY_LIMIT {
        return Err(ValidationError::new(
            field,
            Problem::OutOfRange {
                min: 1.0,
                max: MAX_QUERY_LIMIT as f64,
                actual: limit as f64,
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TaskContext, TaskOutcome};

    #[test]
    fn filters() {
        let mut e = Episode::new(TaskType::Testing, "t", TaskContext::new("web"));
        e.start_time = Timestamp::from_micros(100);
        e.tags = vec!["a".into(), "b".into()];
        e.metadata.insert("k".into(), "v".into());
        assert!(EpisodeQuery::new().matches(&e));
        assert!(
            EpisodeQuery::new()
                .since(Timestamp::from_micros(100))
                .matches(&e)
        );
        assert!(
            !EpisodeQuery::new()
                .until(Timestamp::from_micros(100))
                .matches(&e)
        );
        assert!(!EpisodeQuery::new().domain("cli").matches(&e));
        assert!(EpisodeQuery::new().tag("b").tag("a").matches(&e));
        assert!(!EpisodeQuery::new().tag("c").matches(&e));
        assert!(EpisodeQuery::new().metadata("k", "v").matches(&e));
        assert!(!EpisodeQuery::new().metadata("k", "w").matches(&e));
        assert!(
            !EpisodeQuery::new()
                .outcome(OutcomeKind::Success)
                .matches(&e)
        );
        e.complete(TaskOutcome::Success {
            verdict: String::new(),
            artifacts: vec![],
        });
        assert!(
            EpisodeQuery::new()
                .outcome(OutcomeKind::Success)
                .matches(&e)
        );
    }

    #[test]
    fn validation() {
        assert!(EpisodeQuery::new().limit(0).validate().is_err());
        assert!(
            EpisodeQuery::new()
                .limit(MAX_QUERY_LIMIT + 1)
                .validate()
                .is_err()
        );
        let t = Timestamp::from_micros(5);
        assert!(EpisodeQuery::new().since(t).until(t).validate().is_ok());
        assert_eq!(
            EpisodeQuery::new()
                .since(t.plus_micros(1))
                .until(t)
                .validate()
                .unwrap_err()
                .field(),
            "since"
        );
        assert!(EpisodeQuery::new().domain("").validate().is_err());
        assert!(EpisodeQuery::new().tag("x").tag("x").validate().is_err());
        assert!(
            PatternQuery::new()
                .min_success_rate(1.1)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn cursor_tokens() {
        assert_eq!("garbage".parse::<EpisodeCursor>(), Err(BadCursor));
        assert_eq!("1.zz".parse::<EpisodeCursor>(), Err(BadCursor));
        let c = EpisodeCursor::new(Timestamp::from_micros(-7), EpisodeId::new());
        assert_eq!(c.to_string().parse::<EpisodeCursor>(), Ok(c));
        assert!(c.admits(Timestamp::from_micros(-8), c.id()));
        assert!(!c.admits(c.start_time(), c.id()));
    }

    #[test]
    fn pattern_query_keys_by_bits() {
        use std::collections::HashSet;
        let a = PatternQuery::new().min_success_rate(0.5);
        let b = PatternQuery::new().min_success_rate(0.5);
        let set: HashSet<_> = [a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_ne!(a, PatternQuery::new().min_success_rate(0.25));
    }
}
