//! [`Pattern`]: a regularity distilled from many episodes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::embedding::Embedding;
use crate::entity::Entity;
use crate::episode::UnknownName;
use crate::error::{EntityKind, Problem, ValidationError};
use crate::ids::PatternId;
use crate::limits::{MAX_LIST_ITEMS, MAX_NAME_BYTES, MAX_TEXT_BYTES};
use crate::time::Timestamp;
use crate::validate as check;

/// A pattern extracted from episodes, with how well it has worked.
///
/// ```
/// use memory_core::{Entity, Pattern, PatternData, PatternKind};
///
/// let pattern = Pattern::new(
///     PatternData::ErrorRecovery {
///         error_type: "borrow checker".into(),
///         recovery_steps: vec!["clone the key".into()],
///     },
///     "rust",
///     0.9,
/// );
/// assert_eq!(pattern.kind(), PatternKind::ErrorRecovery);
/// assert!(pattern.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    /// The pattern's id.
    pub id: PatternId,
    /// What the pattern says; its variant is the pattern's [`PatternKind`].
    pub data: PatternData,
    /// The domain the pattern was seen in (required); queries filter on it.
    pub domain: String,
    /// Share of the episodes showing it that succeeded, in `[0, 1]`; queries filter on it.
    pub success_rate: f64,
    /// How many episodes showed it.
    pub occurrence_count: u64,
    /// How it has fared when it was retrieved and applied.
    pub effectiveness: Effectiveness,
    /// When it was first extracted.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
    /// The caller's vector for similarity search (optional; one dimension per store).
    pub embedding: Option<Embedding>,
}

/// Format 1's pattern (before embeddings): every other field, in the same order.
#[derive(Deserialize)]
pub(crate) struct PatternFormat1 {
    id: PatternId,
    data: PatternData,
    domain: String,
    success_rate: f64,
    occurrence_count: u64,
    effectiveness: Effectiveness,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<PatternFormat1> for Pattern {
    fn from(p: PatternFormat1) -> Self {
        Pattern {
            id: p.id,
            data: p.data,
            domain: p.domain,
            success_rate: p.success_rate,
            occurrence_count: p.occurrence_count,
            effectiveness: p.effectiveness,
            created_at: p.created_at,
            updated_at: p.updated_at,
            embedding: None,
        }
    }
}

impl Pattern {
    /// A new pattern seen once, created now.
    pub fn new(data: PatternData, domain: impl Into<String>, success_rate: f64) -> Self {
        let now = Timestamp::now();
        Pattern {
            id: PatternId::new(),
            data,
            domain: domain.into(),
            success_rate,
            occurrence_count: 1,
            effectiveness: Effectiveness::default(),
            created_at: now,
            updated_at: now,
            embedding: None,
        }
    }

    /// The kind of pattern.
    pub fn kind(&self) -> PatternKind {
        self.data.kind()
    }
}

impl Entity for Pattern {
    type Id = PatternId;
    const KIND: EntityKind = EntityKind::Pattern;

    fn id(&self) -> PatternId {
        self.id
    }

    fn embedding(&self) -> Option<&Embedding> {
        self.embedding.as_ref()
    }

    fn decode_format_1(body: &[u8]) -> Result<(Self, &[u8]), postcard::Error> {
        postcard::take_from_bytes::<PatternFormat1>(body).map(|(p, rest)| (p.into(), rest))
    }

    fn validate(&self) -> Result<(), ValidationError> {
        self.data.validate()?;
        check::required("domain", &self.domain, MAX_NAME_BYTES)?;
        check::unit_interval("success_rate", self.success_rate)?;
        self.effectiveness.validate()?;
        if self.updated_at < self.created_at {
            return Err(ValidationError::new(
                "updated_at",
                Problem::Invalid("is before created_at".into()),
            ));
        }
        if let Some(embedding) = &self.embedding {
            embedding.validate("embedding")?;
        }
        check::payload(self)
    }
}

/// What a pattern says, by kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PatternData {
    /// Tools that, used in this order, tend to work.
    ToolSequence {
        /// The tools, in order (at least one).
        tools: Vec<String>,
        /// Typical time the sequence takes.
        average_latency: Duration,
    },
    /// A decision that recurs, and the action that tends to work.
    DecisionPoint {
        /// When the decision comes up.
        condition: String,
        /// What to do.
        action: String,
        /// How often doing it led to success.
        outcome_stats: OutcomeStats,
    },
    /// How to recover from a kind of error.
    ErrorRecovery {
        /// The kind of error.
        error_type: String,
        /// What fixed it, in order.
        recovery_steps: Vec<String>,
    },
    /// Context features that call for an approach.
    ContextPattern {
        /// The features that identify the context.
        features: Vec<String>,
        /// The approach that works there.
        recommended_approach: String,
    },
}

impl PatternData {
    /// The kind of this data.
    pub fn kind(&self) -> PatternKind {
        match self {
            PatternData::ToolSequence { .. } => PatternKind::ToolSequence,
            PatternData::DecisionPoint { .. } => PatternKind::DecisionPoint,
            PatternData::ErrorRecovery { .. } => PatternKind::ErrorRecovery,
            PatternData::ContextPattern { .. } => PatternKind::ContextPattern,
        }
    }

    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            PatternData::ToolSequence { tools, .. } => {
                if tools.is_empty() {
                    return Err(ValidationError::new("data.tools", Problem::Empty));
                }
                check::texts("data.tools", tools, MAX_LIST_ITEMS, MAX_NAME_BYTES)
            }
            PatternData::DecisionPoint {
                condition, action, ..
            } => {
                check::required("data.condition", condition, MAX_TEXT_BYTES)?;
                check::required("data.action", action, MAX_TEXT_BYTES)
            }
            PatternData::ErrorRecovery {
                error_type,
                recovery_steps,
            } => {
                check::required("data.error_type", error_type, MAX_NAME_BYTES)?;
                check::texts(
                    "data.recovery_steps",
                    recovery_steps,
                    MAX_LIST_ITEMS,
                    MAX_TEXT_BYTES,
                )
            }
            PatternData::ContextPattern {
                features,
                recommended_approach,
            } => {
                check::texts("data.features", features, MAX_LIST_ITEMS, MAX_TEXT_BYTES)?;
                check::required(
                    "data.recommended_approach",
                    recommended_approach,
                    MAX_TEXT_BYTES,
                )
            }
        }
    }
}

/// Success and failure counts of a decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeStats {
    /// Times the action led to success.
    pub successes: u64,
    /// Times it did not.
    pub failures: u64,
}

/// The four kinds of pattern. Stored by its [`as_str`](PatternKind::as_str) name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PatternKind {
    /// [`PatternData::ToolSequence`].
    ToolSequence,
    /// [`PatternData::DecisionPoint`].
    DecisionPoint,
    /// [`PatternData::ErrorRecovery`].
    ErrorRecovery,
    /// [`PatternData::ContextPattern`].
    ContextPattern,
}

impl PatternKind {
    /// Every pattern kind.
    pub const ALL: [PatternKind; 4] = [
        PatternKind::ToolSequence,
        PatternKind::DecisionPoint,
        PatternKind::ErrorRecovery,
        PatternKind::ContextPattern,
    ];

    /// The stable snake-case name stored in indexed columns.
    pub const fn as_str(self) -> &'static str {
        match self {
            PatternKind::ToolSequence => "tool_sequence",
            PatternKind::DecisionPoint => "decision_point",
            PatternKind::ErrorRecovery => "error_recovery",
            PatternKind::ContextPattern => "context_pattern",
        }
    }
}

impl FromStr for PatternKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PatternKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName::new("pattern kind", s))
    }
}

impl fmt::Display for PatternKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a pattern has fared once agents started using it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Effectiveness {
    /// Times it was retrieved for a task.
    pub times_retrieved: u64,
    /// Times it was applied.
    pub times_applied: u64,
    /// Times applying it ended in success (≤ `times_applied`).
    pub successes_when_applied: u64,
    /// Mean change in reward when applied (finite).
    pub average_reward_delta: f64,
}

impl Effectiveness {
    /// Share of applications that succeeded, or `None` if never applied.
    pub fn success_rate_when_applied(&self) -> Option<f64> {
        (self.times_applied > 0)
            .then(|| self.successes_when_applied as f64 / self.times_applied as f64)
    }

    fn validate(&self) -> Result<(), ValidationError> {
        check::finite(
            "effectiveness.average_reward_delta",
            self.average_reward_delta,
        )?;
        if self.successes_when_applied > self.times_applied {
            return Err(ValidationError::new(
                "effectiveness.successes_when_applied",
                Problem::Invalid("exceeds times_applied".into()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool_sequence() -> Pattern {
        Pattern::new(
            PatternData::ToolSequence {
                tools: vec!["grep".into(), "sed".into()],
                average_latency: Duration::from_millis(30),
            },
            "cli",
            0.75,
        )
    }

    #[test]
    fn validation() {
        assert_eq!(tool_sequence().validate(), Ok(()));
        let mut p = tool_sequence();
        p.success_rate = 1.5;
        assert_eq!(p.validate().unwrap_err().field(), "success_rate");
        p.success_rate = f64::NAN;
        assert!(matches!(
            p.validate().unwrap_err().problem(),
            Problem::NotFinite(_)
        ));
        let mut p = tool_sequence();
        p.data = PatternData::ToolSequence {
            tools: vec![],
            average_latency: Duration::ZERO,
        };
        assert_eq!(p.validate().unwrap_err().field(), "data.tools");
        let mut p = tool_sequence();
        p.effectiveness.successes_when_applied = 1;
        assert_eq!(
            p.validate().unwrap_err().field(),
            "effectiveness.successes_when_applied"
        );
    }

    #[test]
    fn kind_names_round_trip() {
        for k in PatternKind::ALL {
            assert_eq!(k.as_str().parse::<PatternKind>(), Ok(k));
        }
        let mut e = Effectiveness::default();
        assert_eq!(e.success_rate_when_applied(), None);
        e.times_applied = 4;
        e.successes_when_applied = 3;
        assert_eq!(e.success_rate_when_applied(), Some(0.75));
    }
}
