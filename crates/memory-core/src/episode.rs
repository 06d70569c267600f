//! [`Episode`]: one recorded task run, with its context, steps, outcome, reward and reflection.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::embedding::Embedding;
use crate::entity::Entity;
use crate::error::{EntityKind, Problem, ValidationError};
use crate::ids::{EpisodeId, HeuristicId, PatternId};
use crate::limits::{
    MAX_DESCRIPTION_BYTES, MAX_LIST_ITEMS, MAX_NAME_BYTES, MAX_PARAMETERS_BYTES,
    MAX_STEPS_PER_EPISODE, MAX_TEXT_BYTES,
};
use crate::time::Timestamp;
use crate::{json_text, validate as check};

/// One task run of an agent.
///
/// ```
/// use memory_core::{Entity, Episode, ExecutionStep, TaskContext, TaskOutcome, TaskType};
///
/// let mut episode = Episode::new(
///     TaskType::Debugging,
///     "fix the flaky login test",
///     TaskContext::new("web").with_language("rust"),
/// );
/// episode.steps.push(ExecutionStep::new(1, "cargo", "test"));
/// episode.complete(TaskOutcome::Success { verdict: "fixed".into(), artifacts: vec![] });
/// assert!(episode.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The episode's id.
    pub id: EpisodeId,
    /// What kind of task was run.
    pub task_type: TaskType,
    /// What the task was (required, at most [`MAX_DESCRIPTION_BYTES`]).
    pub description: String,
    /// Where the task was run.
    pub context: TaskContext,
    /// When the run started; queries filter and order on it.
    pub start_time: Timestamp,
    /// When the run ended (`None` while it runs); never before `start_time`.
    pub end_time: Option<Timestamp>,
    /// The steps, in execution order (step numbers strictly increasing).
    pub steps: Vec<ExecutionStep>,
    /// How it ended (`None` while it runs).
    pub outcome: Option<TaskOutcome>,
    /// The reward computed for the run.
    pub reward: Option<RewardScore>,
    /// What the agent learned from the run.
    pub reflection: Option<Reflection>,
    /// Patterns extracted from or applied in this run. Not checked against stored patterns.
    pub patterns: Vec<PatternId>,
    /// Heuristics extracted from or applied in this run. Not checked against stored heuristics.
    pub heuristics: Vec<HeuristicId>,
    /// Free key/value metadata; queries can filter on exact pairs.
    pub metadata: BTreeMap<String, String>,
    /// Tags; queries can require tags. Unique, non-empty, at most 64 bytes each.
    pub tags: Vec<String>,
    /// The caller's vector for similarity search (optional; one dimension per store).
    pub embedding: Option<Embedding>,
}

/// Format 1's episode (before embeddings): every other field, in the same order.
#[derive(Deserialize)]
pub(crate) struct EpisodeFormat1 {
    id: EpisodeId,
    task_type: TaskType,
    description: String,
    context: TaskContext,
    start_time: Timestamp,
    end_time: Option<Timestamp>,
    steps: Vec<ExecutionStep>,
    outcome: Option<TaskOutcome>,
    reward: Option<RewardScore>,
    reflection: Option<Reflection>,
    patterns: Vec<PatternId>,
    heuristics: Vec<HeuristicId>,
    metadata: BTreeMap<String, String>,
    tags: Vec<String>,
}

impl From<EpisodeFormat1> for Episode {
    fn from(e: EpisodeFormat1) -> Self {
        Episode {
            id: e.id,
            task_type: e.task_type,
            description: e.description,
            context: e.context,
            start_time: e.start_time,
            end_time: e.end_time,
            steps: e.steps,
            outcome: e.outcome,
            reward: e.reward,
            reflection: e.reflection,
            patterns: e.patterns,
            heuristics: e.heuristics,
            metadata: e.metadata,
            tags: e.tags,
            embedding: None,
        }
    }
}

impl Episode {
    /// A new running episode with a fresh id, started now, with no steps yet.
    pub fn new(task_type: TaskType, description: impl Into<String>, context: TaskContext) -> Self {
        Episode {
            id: EpisodeId::new(),
            task_type,
            description: description.into(),
            context,
            start_time: Timestamp::now(),
            end_time: None,
            steps: Vec::new(),
            outcome: None,
            reward: None,
            reflection: None,
            patterns: Vec::new(),
            heuristics: Vec::new(),
            metadata: BTreeMap::new(),
            tags: Vec::new(),
            embedding: None,
        }
    }

    /// Records the outcome and sets the end time to now (never before the start time).
    pub fn complete(&mut self, outcome: TaskOutcome) {
        self.outcome = Some(outcome);
        self.end_time = Some(Timestamp::now().max(self.start_time));
    }

    /// The outcome's kind, if the episode has ended.
    pub fn outcome_kind(&self) -> Option<OutcomeKind> {
        self.outcome.as_ref().map(TaskOutcome::kind)
    }
}

impl Entity for Episode {
    type Id = EpisodeId;
    const KIND: EntityKind = EntityKind::Episode;

    fn id(&self) -> EpisodeId {
        self.id
    }

    fn embedding(&self) -> Option<&Embedding> {
        self.embedding.as_ref()
    }

    fn decode_format_1(body: &[u8]) -> Result<(Self, &[u8]), postcard::Error> {
        postcard::take_from_bytes::<EpisodeFormat1>(body).map(|(e, rest)| (e.into(), rest))
    }

    fn validate(&self) -> Result<(), ValidationError> {
        check::required("description", &self.description, MAX_DESCRIPTION_BYTES)?;
        self.context.validate()?;
        if let Some(end) = self.end_time
            && end < self.start_time
        {
            return Err(ValidationError::new(
                "end_time",
                Problem::Invalid(format!("{end} is before start_time {}", self.start_time)),
            ));
        }
        check::max_items("steps", self.steps.len(), MAX_STEPS_PER_EPISODE)?;
        let mut previous = None;
        for (i, step) in self.steps.iter().enumerate() {
            let field = format!("steps[{i}]");
            step.validate().map_err(|e| e.at(&field))?;
            if previous.is_some_and(|p| step.step_number <= p) {
                return Err(ValidationError::new(
                    format!("{field}.step_number"),
                    Problem::Invalid("step numbers must be strictly increasing".into()),
                ));
            }
            previous = Some(step.step_number);
        }
        if let Some(outcome) = &self.outcome {
            outcome.validate()?;
        }
        if let Some(reward) = &self.reward {
            reward.validate()?;
        }
        if let Some(reflection) = &self.reflection {
            reflection.validate()?;
        }
        if let Some(embedding) = &self.embedding {
            embedding.validate("embedding")?;
        }
        check::max_items("patterns", self.patterns.len(), MAX_LIST_ITEMS)?;
        check::max_items("heuristics", self.heuristics.len(), MAX_LIST_ITEMS)?;
        check::metadata("metadata", &self.metadata)?;
        check::tags("tags", &self.tags)?;
        check::payload(self)
    }
}

/// The kind of task an episode ran. Stored by its [`as_str`](TaskType::as_str) name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TaskType {
    /// Writing new code.
    CodeGeneration,
    /// Finding and fixing a defect.
    Debugging,
    /// Restructuring code without changing behaviour.
    Refactoring,
    /// Writing or running tests.
    Testing,
    /// Reading and explaining code or data.
    Analysis,
    /// Writing documentation.
    Documentation,
    /// Anything else.
    Other,
}

impl TaskType {
    /// Every task type, in declaration order.
    pub const ALL: [TaskType; 7] = [
        TaskType::CodeGeneration,
        TaskType::Debugging,
        TaskType::Refactoring,
        TaskType::Testing,
        TaskType::Analysis,
        TaskType::Documentation,
        TaskType::Other,
    ];

    /// The stable snake-case name stored in indexed columns.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskType::CodeGeneration => "code_generation",
            TaskType::Debugging => "debugging",
            TaskType::Refactoring => "refactoring",
            TaskType::Testing => "testing",
            TaskType::Analysis => "analysis",
            TaskType::Documentation => "documentation",
            TaskType::Other => "other",
        }
    }
}

/// Parsing an unknown name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} name {name:?}")]
pub struct UnknownName {
    what: &'static str,
    name: String,
}

impl UnknownName {
    pub(crate) fn new(what: &'static str, name: &str) -> Self {
        UnknownName {
            what,
            name: name.to_owned(),
        }
    }
}

impl FromStr for TaskType {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName::new("task type", s))
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How hard a task was judged to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Complexity {
    /// A few steps, one file.
    Simple,
    /// Several steps or files.
    Moderate,
    /// Many steps, several components.
    Complex,
}

/// Where a task was run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskContext {
    /// The domain (for example `web`, `data-pipeline`); required, queries filter on it.
    pub domain: String,
    /// The programming language, if any.
    pub language: Option<String>,
    /// The framework, if any.
    pub framework: Option<String>,
    /// How hard the task was.
    pub complexity: Complexity,
    /// Context tags (distinct from the episode's own queryable tags).
    pub tags: Vec<String>,
}

impl TaskContext {
    /// A context in `domain`, moderate complexity, nothing else set.
    pub fn new(domain: impl Into<String>) -> Self {
        TaskContext {
            domain: domain.into(),
            language: None,
            framework: None,
            complexity: Complexity::Moderate,
            tags: Vec::new(),
        }
    }

    /// Sets the language.
    pub fn with_language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// Sets the framework.
    pub fn with_framework(mut self, framework: impl Into<String>) -> Self {
        self.framework = Some(framework.into());
        self
    }

    /// Sets the complexity.
    pub fn with_complexity(mut self, complexity: Complexity) -> Self {
        self.complexity = complexity;
        self
    }

    fn validate(&self) -> Result<(), ValidationError> {
        check::required("context.domain", &self.domain, MAX_NAME_BYTES)?;
        if let Some(language) = &self.language {
            check::max_bytes("context.language", language, MAX_NAME_BYTES)?;
        }
        if let Some(framework) = &self.framework {
            check::max_bytes("context.framework", framework, MAX_NAME_BYTES)?;
        }
        check::tags("context.tags", &self.tags)
    }
}

/// One step of a run: a tool call and what came of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionStep {
    /// The step's number; strictly increasing within an episode.
    pub step_number: u32,
    /// When the step ran.
    pub timestamp: Timestamp,
    /// The tool called (required).
    pub tool: String,
    /// What the tool was asked to do.
    pub action: String,
    /// The call's parameters (JSON, at most [`MAX_PARAMETERS_BYTES`] as text, nesting ≤ 64).
    #[serde(with = "json_text")]
    pub parameters: serde_json::Value,
    /// What came of it (`None` if it never returned).
    pub result: Option<ExecutionResult>,
    /// How long the call took.
    pub latency: Duration,
    /// Tokens spent, if known.
    pub tokens_used: Option<u32>,
    /// Free key/value metadata.
    pub metadata: BTreeMap<String, String>,
}

impl ExecutionStep {
    /// A step calling `tool` to do `action`, timestamped now, with no parameters or result.
    pub fn new(step_number: u32, tool: impl Into<String>, action: impl Into<String>) -> Self {
        ExecutionStep {
            step_number,
            timestamp: Timestamp::now(),
            tool: tool.into(),
            action: action.into(),
            parameters: serde_json::Value::Null,
            result: None,
            latency: Duration::ZERO,
            tokens_used: None,
            metadata: BTreeMap::new(),
        }
    }

    fn validate(&self) -> Result<(), ValidationError> {
        check::required("tool", &self.tool, MAX_NAME_BYTES)?;
        check::max_bytes("action", &self.action, MAX_NAME_BYTES)?;
        json_text::validate("parameters", &self.parameters, MAX_PARAMETERS_BYTES)?;
        if let Some(result) = &self.result {
            let (field, text) = match result {
                ExecutionResult::Success { output } => ("result.output", output),
                ExecutionResult::Error { message } => ("result.message", message),
            };
            check::max_bytes(field, text, MAX_TEXT_BYTES)?;
        }
        check::metadata("metadata", &self.metadata)
    }
}

/// What a step's tool call returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionResult {
    /// The call succeeded.
    Success {
        /// Its output (at most [`MAX_TEXT_BYTES`]).
        output: String,
    },
    /// The call failed.
    Error {
        /// Why (at most [`MAX_TEXT_BYTES`]).
        message: String,
    },
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// The task was done.
    Success {
        /// A short judgement.
        verdict: String,
        /// What was produced (paths, URLs).
        artifacts: Vec<String>,
    },
    /// Part of the task was done.
    PartialSuccess {
        /// A short judgement.
        verdict: String,
        /// What was done.
        completed: Vec<String>,
        /// What was not.
        failed: Vec<String>,
    },
    /// The task failed.
    Failure {
        /// Why it failed.
        reason: String,
        /// More detail, such as an error message.
        error_details: Option<String>,
    },
}

impl TaskOutcome {
    /// The kind of outcome, as queries filter on it.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            TaskOutcome::Success { .. } => OutcomeKind::Success,
            TaskOutcome::PartialSuccess { .. } => OutcomeKind::PartialSuccess,
            TaskOutcome::Failure { .. } => OutcomeKind::Failure,
        }
    }

    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            TaskOutcome::Success { verdict, artifacts } => {
                check::max_bytes("outcome.verdict", verdict, MAX_TEXT_BYTES)?;
                check::texts(
                    "outcome.artifacts",
                    artifacts,
                    MAX_LIST_ITEMS,
                    MAX_TEXT_BYTES,
                )
            }
            TaskOutcome::PartialSuccess {
                verdict,
                completed,
                failed,
            } => {
                check::max_bytes("outcome.verdict", verdict, MAX_TEXT_BYTES)?;
                check::texts(
                    "outcome.completed",
                    completed,
                    MAX_LIST_ITEMS,
                    MAX_TEXT_BYTES,
                )?;
                check::texts("outcome.failed", failed, MAX_LIST_ITEMS, MAX_TEXT_BYTES)
            }
            TaskOutcome::Failure {
                reason,
                error_details,
            } => {
                check::max_bytes("outcome.reason", reason, MAX_TEXT_BYTES)?;
                match error_details {
                    Some(details) => {
                        check::max_bytes("outcome.error_details", details, MAX_TEXT_BYTES)
                    }
                    None => Ok(()),
                }
            }
        }
    }
}

/// The kind of a [`TaskOutcome`]. Stored by its [`as_str`](OutcomeKind::as_str) name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OutcomeKind {
    /// [`TaskOutcome::Success`].
    Success,
    /// [`TaskOutcome::PartialSuccess`].
    PartialSuccess,
    /// [`TaskOutcome::Failure`].
    Failure,
}

impl OutcomeKind {
    /// Every outcome kind.
    pub const ALL: [OutcomeKind; 3] = [
        OutcomeKind::Success,
        OutcomeKind::PartialSuccess,
        OutcomeKind::Failure,
    ];

    /// The stable snake-case name stored in indexed columns.
    pub const fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Success => "success",
            OutcomeKind::PartialSuccess => "partial_success",
            OutcomeKind::Failure => "failure",
        }
    }
}

impl FromStr for OutcomeKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutcomeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName::new("outcome kind", s))
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reward computed for a run. Every component must be finite.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardScore {
    /// The final score.
    pub total: f64,
    /// The score from the outcome alone.
    pub base: f64,
    /// Efficiency factor (steps and time spent).
    pub efficiency: f64,
    /// Bonus for task complexity.
    pub complexity_bonus: f64,
    /// Multiplier for the quality of the result.
    pub quality_multiplier: f64,
    /// Bonus for what the run taught.
    pub learning_bonus: f64,
}

impl RewardScore {
    fn validate(&self) -> Result<(), ValidationError> {
        check::finite("reward.total", self.total)?;
        check::finite("reward.base", self.base)?;
        check::finite("reward.efficiency", self.efficiency)?;
        check::finite("reward.complexity_bonus", self.complexity_bonus)?;
        check::finite("reward.quality_multiplier", self.quality_multiplier)?;
        check::finite("reward.learning_bonus", self.learning_bonus)
    }
}

/// What the agent concluded after a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reflection {
    /// What went well.
    pub successes: Vec<String>,
    /// What should be done better.
    pub improvements: Vec<String>,
    /// Lessons worth remembering.
    pub insights: Vec<String>,
    /// When the reflection was written.
    pub generated_at: Timestamp,
}

impl Reflection {
    fn validate(&self) -> Result<(), ValidationError> {
        check::texts(
            "reflection.successes",
            &self.successes,
            MAX_LIST_ITEMS,
            MAX_TEXT_BYTES,
        )?;
        check::texts(
            "reflection.improvements",
            &self.improvements,
            MAX_LIST_ITEMS,
            MAX_TEXT_BYTES,
        )?;
        check::texts(
            "reflection.insights",
            &self.insights,
            MAX_LIST_ITEMS,
            MAX_TEXT_BYTES,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{MAX_PAYLOAD_BYTES, MAX_TAGS};

    fn episode() -> Episode {
        let mut e = Episode::new(TaskType::Testing, "t", TaskContext::new("cli"));
        e.steps.push(ExecutionStep::new(1, "cargo", "test"));
        e
    }

    fn problem(e: &Episode) -> (String, Problem) {
        let err = e.validate().unwrap_err();
        (err.field().to_owned(), err.problem().clone())
    }

    #[test]
    fn a_plain_episode_is_valid() {
        assert_eq!(episode().validate(), Ok(()));
    }

    #[test]
    fn names_round_trip() {
        for t in TaskType::ALL {
            assert_eq!(t.as_str().parse::<TaskType>(), Ok(t));
        }
        for k in OutcomeKind::ALL {
            assert_eq!(k.as_str().parse::<OutcomeKind>(), Ok(k));
        }
        assert!("nope".parse::<TaskType>().is_err());
    }

    #[test]
    fn every_limit_is_enforced_with_its_field() {
        let mut e = episode();
        e.description.clear();
        assert_eq!(problem(&e), ("description".into(), Problem::Empty));

        let mut e = episode();
        e.description = "x".repeat(MAX_DESCRIPTION_BYTES + 1);
        assert!(matches!(problem(&e), (f, Problem::TooLong { .. }) if f == "description"));

        let mut e = episode();
        e.context.domain.clear();
        assert_eq!(problem(&e).0, "context.domain");

        let mut e = episode();
        e.steps = (1..=MAX_STEPS_PER_EPISODE as u32 + 1)
            .map(|n| ExecutionStep::new(n, "t", "a"))
            .collect();
        assert!(matches!(problem(&e), (f, Problem::TooMany { .. }) if f == "steps"));

        let mut e = episode();
        e.steps.push(ExecutionStep::new(1, "again", "a"));
        assert_eq!(problem(&e).0, "steps[1].step_number");

        let mut e = episode();
        e.steps[0].tool.clear();
        assert_eq!(problem(&e).0, "steps[0].tool");

        let mut e = episode();
        e.reward = Some(RewardScore {
            total: f64::NAN,
            base: 0.0,
            efficiency: 0.0,
            complexity_bonus: 0.0,
            quality_multiplier: 1.0,
            learning_bonus: 0.0,
        });
        assert_eq!(problem(&e).0, "reward.total");

        let mut e = episode();
        e.tags = vec!["a".into(), "a".into()];
        assert_eq!(problem(&e), ("tags".into(), Problem::Duplicate("a".into())));

        let mut e = episode();
        e.tags = vec!["x".repeat(65)];
        assert_eq!(problem(&e).0, "tags[0]");

        let mut e = episode();
        e.tags = (0..=MAX_TAGS).map(|i| i.to_string()).collect();
        assert_eq!(problem(&e).0, "tags");

        let mut e = episode();
        e.metadata.insert(String::new(), "v".into());
        assert_eq!(problem(&e).0, "metadata.key");

        let mut e = episode();
        e.end_time = Some(e.start_time.plus_micros(-1));
        assert_eq!(problem(&e).0, "end_time");
    }

    #[test]
    fn payload_limit_applies_to_the_encoded_size() {
        let mut e = episode();
        // Each step stays inside every field limit; together they exceed the payload limit.
        let output = "o".repeat(MAX_TEXT_BYTES);
        let n = MAX_PAYLOAD_BYTES / MAX_TEXT_BYTES + 1;
        e.steps = (1..=n as u32)
            .map(|i| {
                let mut s = ExecutionStep::new(i, "t", "a");
                s.result = Some(ExecutionResult::Success {
                    output: output.clone(),
                });
                s
            })
            .collect();
        assert!(matches!(problem(&e), (f, Problem::TooLong { .. }) if f == "payload"));
    }
}
