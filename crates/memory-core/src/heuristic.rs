//! [`Heuristic`]: a condition → action rule with a confidence and its evidence.

use serde::{Deserialize, Serialize};

use crate::entity::Entity;
use crate::error::{EntityKind, Problem, ValidationError};
use crate::ids::{EpisodeId, HeuristicId};
use crate::limits::{MAX_LIST_ITEMS, MAX_TEXT_BYTES};
use crate::time::Timestamp;
use crate::validate as check;

/// A rule of thumb: when `condition` holds, do `action`.
///
/// ```
/// use memory_core::{Entity, Heuristic};
///
/// let h = Heuristic::new("tests are flaky", "rerun with --test-threads=1", 0.8);
/// assert!(h.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heuristic {
    /// The heuristic's id.
    pub id: HeuristicId,
    /// When it applies (required).
    pub condition: String,
    /// What to do (required).
    pub action: String,
    /// How much to trust it, in `[0, 1]`.
    pub confidence: f64,
    /// What it rests on.
    pub evidence: Evidence,
    /// When it was first derived.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

impl Heuristic {
    /// A new heuristic with no evidence yet, created now.
    pub fn new(condition: impl Into<String>, action: impl Into<String>, confidence: f64) -> Self {
        let now = Timestamp::now();
        Heuristic {
            id: HeuristicId::new(),
            condition: condition.into(),
            action: action.into(),
            confidence,
            evidence: Evidence::default(),
            created_at: now,
            updated_at: now,
        }
    }
}

impl Entity for Heuristic {
    type Id = HeuristicId;
    const KIND: EntityKind = EntityKind::Heuristic;

    fn id(&self) -> HeuristicId {
        self.id
    }

    /// Heuristics are encoded the same way in both formats.
    fn embedding(&self) -> Option<&crate::Embedding> {
        None
    }

    fn decode_format_1(body: &[u8]) -> Result<(Self, &[u8]), postcard::Error> {
        postcard::take_from_bytes::<Heuristic>(body)
    }

    fn validate(&self) -> Result<(), ValidationError> {
        check::required("condition", &self.condition, MAX_TEXT_BYTES)?;
        check::required("action", &self.action, MAX_TEXT_BYTES)?;
        check::unit_interval("confidence", self.confidence)?;
        check::max_items(
            "evidence.episodes",
            self.evidence.episodes.len(),
            MAX_LIST_ITEMS,
        )?;
        check::unit_interval("evidence.success_rate", self.evidence.success_rate)?;
        if self.updated_at < self.created_at {
            return Err(ValidationError::new(
                "updated_at",
                Problem::Invalid("is before created_at".into()),
            ));
        }
        check::payload(self)
    }
}

/// The episodes a heuristic was derived from and how they went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Episodes that support it (at most [`MAX_LIST_ITEMS`]).
    pub episodes: Vec<EpisodeId>,
    /// Share of those episodes that succeeded, in `[0, 1]`.
    pub success_rate: f64,
    /// How many episodes were considered in all.
    pub sample_size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let mut h = Heuristic::new("c", "a", 0.5);
        assert_eq!(h.validate(), Ok(()));
        h.confidence = -0.1;
        assert_eq!(h.validate().unwrap_err().field(), "confidence");
        let mut h = Heuristic::new("", "a", 0.5);
        assert_eq!(h.validate().unwrap_err().field(), "condition");
        h.condition = "c".into();
        h.evidence.success_rate = f64::INFINITY;
        assert_eq!(h.validate().unwrap_err().field(), "evidence.success_rate");
    }
}
