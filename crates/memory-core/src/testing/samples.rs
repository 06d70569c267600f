//! Deterministic sample items: the golden values pinned by the codec's golden files, and
//! numbered samples for checks and benchmarks.

use crate::Embedding;
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::{
    Complexity, Effectiveness, Episode, EpisodeId, Evidence, ExecutionResult, ExecutionStep,
    Heuristic, HeuristicId, OutcomeStats, Pattern, PatternData, PatternId, PatternKind, Reflection,
    RewardScore, TaskContext, TaskOutcome, TaskType, Timestamp,
};

/// 2024-01-01T00:00:00Z, the start of every sample's timeline.
pub const BASE_TIME: Timestamp = Timestamp::from_micros(1_704_067_200_000_000);

/// Domains the numbered samples cycle through.
pub const DOMAINS: [&str; 3] = ["web", "cli", "data"];

/// A deterministic UUID for sample `n` of entity class `class`.
pub fn sample_uuid(class: u8, n: u64) -> Uuid {
    Uuid::from_u128((u128::from(class) << 120) | u128::from(n))
}

/// A UUID no sample uses.
pub fn unknown_uuid() -> Uuid {
    sample_uuid(0xEE, 0xDEAD_BEEF)
}

/// Sample episode `n`: domain, task type, outcome and tags cycle with `n`; it starts `n`
/// milliseconds after [`BASE_TIME`].
pub fn episode(n: u64) -> Episode {
    let start = BASE_TIME.plus_micros(n as i64 * 1_000);
    let steps = (1..=(n % 4) as u32 + 1)
        .map(|i| ExecutionStep {
            step_number: i,
            timestamp: start.plus_micros(i64::from(i) * 10),
            tool: ["cargo", "git", "grep", "editor"][i as usize % 4].into(),
            action: format!("action {i}"),
            parameters: json!({ "step": i, "args": ["--quiet"] }),
            result: Some(ExecutionResult::Success {
                output: format!("ok {n}/{i}"),
            }),
            latency: Duration::from_millis(u64::from(i) * 7),
            tokens_used: Some(100 * i),
            metadata: BTreeMap::new(),
        })
        .collect();
    let outcome = match n % 4 {
        0 => None,
        1 => Some(TaskOutcome::Success {
            verdict: "done".into(),
            artifacts: vec![format!("out/{n}")],
        }),
        2 => Some(TaskOutcome::PartialSuccess {
            verdict: "half".into(),
            completed: vec!["a".into()],
            failed: vec!["b".into()],
        }),
        _ => Some(TaskOutcome::Failure {
            reason: "tests failed".into(),
            error_details: None,
        }),
    };
    let mut tags = vec![format!("t{}", n % 5)];
    if n.is_multiple_of(2) {
        tags.push("even".into());
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("agent".into(), format!("agent-{}", n % 2));
    Episode {
        id: sample_uuid(0xE0, n).into(),
        task_type: TaskType::ALL[n as usize % TaskType::ALL.len()],
        description: format!("sample episode {n}"),
        context: TaskContext::new(DOMAINS[n as usize % DOMAINS.len()]).with_language("rust"),
        start_time: start,
        end_time: outcome.as_ref().map(|_| start.plus_micros(500)),
        steps,
        outcome,
        reward: None,
        reflection: None,
        patterns: Vec::new(),
        heuristics: Vec::new(),
        metadata,
        tags,
        embedding: None,
    }
}

/// Sample pattern `n`: kind and domain cycle with `n`; success rates are distinct.
pub fn pattern(n: u64) -> Pattern {
    let data = match PatternKind::ALL[n as usize % 4] {
        PatternKind::ToolSequence => PatternData::ToolSequence {
            tools: vec!["grep".into(), "sed".into()],
            average_latency: Duration::from_millis(n),
        },
        PatternKind::DecisionPoint => PatternData::DecisionPoint {
            condition: format!("condition {n}"),
            action: "ask".into(),
            outcome_stats: OutcomeStats {
                successes: n,
                failures: 1,
            },
        },
        PatternKind::ErrorRecovery => PatternData::ErrorRecovery {
            error_type: "timeout".into(),
            recovery_steps: vec!["retry".into()],
        },
        PatternKind::ContextPattern => PatternData::ContextPattern {
            features: vec!["monorepo".into()],
            recommended_approach: format!("approach {n}"),
        },
    };
    let at = BASE_TIME.plus_micros(n as i64);
    Pattern {
        id: sample_uuid(0xA0, n).into(),
        data,
        domain: DOMAINS[n as usize % DOMAINS.len()].into(),
        success_rate: ((n * 37) % 101) as f64 / 100.0,
        occurrence_count: n + 1,
        effectiveness: Effectiveness::default(),
        created_at: at,
        updated_at: at,
        embedding: None,
    }
}

/// Sample heuristic `n`.
pub fn heuristic(n: u64) -> Heuristic {
    let at = BASE_TIME.plus_micros(n as i64);
    Heuristic {
        id: sample_uuid(0xB0, n).into(),
        condition: format!("condition {n}"),
        action: format!("action {n}"),
        confidence: (n % 10) as f64 / 10.0,
        evidence: Evidence {
            episodes: vec![sample_uuid(0xE0, n).into()],
            success_rate: 0.5,
            sample_size: n,
        },
        created_at: at,
        updated_at: at,
    }
}

/// The embedding the golden samples carry (format 2).
pub fn golden_embedding() -> Embedding {
    Embedding::new(vec![0.5, -0.25, 1.0, 0.0, 3.5, -1.5, 0.125, 2.0])
        .unwrap_or_else(|e| panic!("the golden embedding is valid: {e}"))
}

/// The episode pinned by `tests/golden/episode_v2.bin`: every optional field set (the
/// format-1 file holds the same episode without its embedding).
pub fn golden_episode() -> Episode {
    let start = BASE_TIME;
    let mut step_meta = BTreeMap::new();
    step_meta.insert("exit_code".into(), "0".into());
    let mut metadata = BTreeMap::new();
    metadata.insert("agent".into(), "planner".into());
    metadata.insert("repo".into(), "memory".into());
    Episode {
        id: EpisodeId::from_uuid(sample_uuid(0x01, 1)),
        task_type: TaskType::Debugging,
        description: "Fix the flaky login test ✓".into(),
        context: TaskContext {
            domain: "web".into(),
            language: Some("rust".into()),
            framework: Some("axum".into()),
            complexity: Complexity::Complex,
            tags: vec!["auth".into()],
        },
        start_time: start,
        end_time: Some(start.plus_micros(90_000_000)),
        steps: vec![
            ExecutionStep {
                step_number: 1,
                timestamp: start.plus_micros(1_000_000),
                tool: "cargo".into(),
                action: "test".into(),
                parameters: json!({"args": ["--test", "login"], "retries": 3, "ratio": 0.5, "ok": true, "none": null}),
                result: Some(ExecutionResult::Error {
                    message: "1 test failed".into(),
                }),
                latency: Duration::new(12, 345_000_000),
                tokens_used: Some(1_200),
                metadata: step_meta,
            },
            ExecutionStep {
                step_number: 2,
                timestamp: start.plus_micros(60_000_000),
                tool: "editor".into(),
                action: "patch".into(),
                parameters: json!("src/login.rs"),
                result: Some(ExecutionResult::Success {
                    output: "patched".into(),
                }),
                latency: Duration::from_millis(800),
                tokens_used: None,
                metadata: BTreeMap::new(),
            },
        ],
        outcome: Some(TaskOutcome::PartialSuccess {
            verdict: "fixed locally".into(),
            completed: vec!["patch".into()],
            failed: vec!["ci run".into()],
        }),
        reward: Some(RewardScore {
            total: 0.75,
            base: 0.5,
            efficiency: 1.25,
            complexity_bonus: 0.1,
            quality_multiplier: 1.0,
            learning_bonus: -0.05,
        }),
        reflection: Some(Reflection {
            successes: vec!["found the race".into()],
            improvements: vec!["run CI earlier".into()],
            insights: vec!["timeouts hide races".into()],
            generated_at: start.plus_micros(91_000_000),
        }),
        patterns: vec![PatternId::from_uuid(sample_uuid(0x02, 1))],
        heuristics: vec![HeuristicId::from_uuid(sample_uuid(0x03, 1))],
        metadata,
        tags: vec!["flaky".into(), "login".into()],
        embedding: Some(golden_embedding()),
    }
}

/// The patterns pinned by `tests/golden/pattern_<kind>_v1.bin`, one per kind.
pub fn golden_patterns() -> [Pattern; 4] {
    let data = [
        PatternData::ToolSequence {
            tools: vec!["git".into(), "cargo".into(), "editor".into()],
            average_latency: Duration::new(3, 5),
        },
        PatternData::DecisionPoint {
            condition: "tests fail only in CI".into(),
            action: "compare environment variables".into(),
            outcome_stats: OutcomeStats {
                successes: 7,
                failures: 2,
            },
        },
        PatternData::ErrorRecovery {
            error_type: "E0502".into(),
            recovery_steps: vec!["shorten the borrow".into(), "clone the key".into()],
        },
        PatternData::ContextPattern {
            features: vec!["workspace".into(), "async".into()],
            recommended_approach: "test each crate alone".into(),
        },
    ];
    data.map(|data| {
        let n = data.kind() as u64;
        Pattern {
            id: PatternId::from_uuid(sample_uuid(0x02, n + 1)),
            data,
            domain: "rust".into(),
            success_rate: 0.875,
            occurrence_count: 9,
            effectiveness: Effectiveness {
                times_retrieved: 12,
                times_applied: 5,
                successes_when_applied: 4,
                average_reward_delta: 0.25,
            },
            created_at: BASE_TIME,
            updated_at: BASE_TIME.plus_micros(1),
            // One kind with an embedding, the others without: format 2 pins both.
            embedding: (n == PatternKind::ToolSequence as u64).then(golden_embedding),
        }
    })
}

/// The heuristic pinned by `tests/golden/heuristic_v1.bin`.
pub fn golden_heuristic() -> Heuristic {
    Heuristic {
        id: HeuristicId::from_uuid(sample_uuid(0x03, 1)),
        condition: "a test fails only under load".into(),
        action: "look for shared state".into(),
        confidence: 0.8,
        evidence: Evidence {
            episodes: vec![EpisodeId::from_uuid(sample_uuid(0x01, 1))],
            success_rate: 0.75,
            sample_size: 4,
        },
        created_at: BASE_TIME,
        updated_at: BASE_TIME.plus_micros(5),
    }
}
