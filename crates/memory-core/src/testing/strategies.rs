//! Proptest strategies for valid items and queries.
//!
//! Values are drawn from small pools (a few domains, tags, metadata pairs, a narrow time
//! window) so that random queries match some items and ties in the ordering occur.

use crate::Embedding;
use std::collections::BTreeMap;
use std::time::Duration;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::Value;
use uuid::Uuid;

use crate::testing::samples::BASE_TIME;
use crate::{
    Complexity, Effectiveness, Episode, EpisodeQuery, Evidence, ExecutionResult, ExecutionStep,
    Heuristic, OutcomeKind, OutcomeStats, Pattern, PatternData, PatternKind, PatternQuery,
    Reflection, RewardScore, TaskContext, TaskOutcome, TaskType, Timestamp,
};

/// Domains drawn by the strategies (one needs quoting in SQL).
pub const DOMAINS: [&str; 4] = ["web", "cli", "data", "o'brien"];
/// Tags drawn by the strategies (some look like SQL wildcards or injections).
pub const TAGS: [&str; 6] = ["ci", "prod", "flaky", "50%", "a_b", "x'); DROP TABLE t;--"];
/// Metadata keys drawn by the strategies.
pub const META_KEYS: [&str; 3] = ["agent", "repo", "user"];
/// Metadata values drawn by the strategies.
pub const META_VALUES: [&str; 3] = ["a", "b", "%"];

/// A time in a window of 40 ms after [`BASE_TIME`], in whole milliseconds, so that equal
/// start times are common.
pub fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..40).prop_map(|ms| BASE_TIME.plus_micros(ms * 1_000))
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn name() -> impl Strategy<Value = String> {
    "\\PC{1,16}"
}

fn tags() -> impl Strategy<Value = Vec<String>> {
    subsequence(TAGS.to_vec(), 0..=3).prop_map(|t| t.into_iter().map(String::from).collect())
}

fn metadata() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(
        select(META_KEYS.to_vec()).prop_map(String::from),
        select(META_VALUES.to_vec()).prop_map(String::from),
        0..=2,
    )
}

/// A JSON value of bounded depth and size with numbers that round-trip through text.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1_000_000i32..1_000_000).prop_map(|n| Value::from(f64::from(n) / 64.0)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(name(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn finite() -> impl Strategy<Value = f64> {
    (-1_000_000i32..1_000_000).prop_map(|n| f64::from(n) / 1_024.0)
}

fn unit() -> impl Strategy<Value = f64> {
    (0u32..=100).prop_map(|n| f64::from(n) / 100.0)
}

fn step(number: u32) -> impl Strategy<Value = ExecutionStep> {
    (
        timestamp(),
        name(),
        text(),
        json(),
        prop::option::of(prop_oneof![
            text().prop_map(|output| ExecutionResult::Success { output }),
            text().prop_map(|message| ExecutionResult::Error { message }),
        ]),
        (0u64..100_000, 0u32..1_000_000_000),
        prop::option::of(any::<u32>()),
        metadata(),
    )
        .prop_map(
            move |(timestamp, tool, action, parameters, result, (s, n), tokens_used, metadata)| {
                ExecutionStep {
                    step_number: number,
                    timestamp,
                    tool,
                    action,
                    parameters,
                    result,
                    latency: Duration::new(s, n),
                    tokens_used,
                    metadata,
                }
            },
        )
}

fn outcome() -> impl Strategy<Value = TaskOutcome> {
    prop_oneof![
        (text(), vec(text(), 0..3))
            .prop_map(|(verdict, artifacts)| TaskOutcome::Success { verdict, artifacts }),
        (text(), vec(text(), 0..3), vec(text(), 0..3)).prop_map(|(verdict, completed, failed)| {
            TaskOutcome::PartialSuccess {
                verdict,
                completed,
                failed,
            }
        }),
        (text(), prop::option::of(text())).prop_map(|(reason, error_details)| {
            TaskOutcome::Failure {
                reason,
                error_details,
            }
        }),
    ]
}

fn reward() -> impl Strategy<Value = RewardScore> {
    (finite(), finite(), finite(), finite(), finite(), finite()).prop_map(
        |(total, base, efficiency, complexity_bonus, quality_multiplier, learning_bonus)| {
            RewardScore {
                total,
                base,
                efficiency,
                complexity_bonus,
                quality_multiplier,
                learning_bonus,
            }
        },
    )
}

fn reflection() -> impl Strategy<Value = Reflection> {
    (
        vec(text(), 0..3),
        vec(text(), 0..3),
        vec(text(), 0..3),
        timestamp(),
    )
        .prop_map(
            |(successes, improvements, insights, generated_at)| Reflection {
                successes,
                improvements,
                insights,
                generated_at,
            },
        )
}

fn context() -> impl Strategy<Value = TaskContext> {
    (
        select(DOMAINS.to_vec()),
        prop::option::of(name()),
        prop::option::of(name()),
        select(vec![
            Complexity::Simple,
            Complexity::Moderate,
            Complexity::Complex,
        ]),
        tags(),
    )
        .prop_map(
            |(domain, language, framework, complexity, tags)| TaskContext {
                domain: domain.into(),
                language,
                framework,
                complexity,
                tags,
            },
        )
}

/// A valid episode.
pub fn episode() -> impl Strategy<Value = Episode> {
    let steps = (0usize..4).prop_flat_map(|n| (1..=n as u32).map(step).collect::<Vec<_>>());
    (
        (
            uuid(),
            select(TaskType::ALL.to_vec()),
            name(),
            context(),
            timestamp(),
        ),
        (0i64..5_000, steps, prop::option::of(outcome())),
        (prop::option::of(reward()), prop::option::of(reflection())),
        (
            vec(uuid(), 0..3),
            vec(uuid(), 0..3),
            metadata(),
            tags(),
            embedding(),
        ),
    )
        .prop_map(
            |(
                (id, task_type, description, context, start_time),
                (duration, steps, outcome),
                (reward, reflection),
                (patterns, heuristics, metadata, tags, embedding),
            )| Episode {
                id: id.into(),
                task_type,
                description,
                context,
                start_time,
                end_time: outcome.as_ref().map(|_| start_time.plus_micros(duration)),
                steps,
                outcome,
                reward,
                reflection,
                patterns: patterns.into_iter().map(Into::into).collect(),
                heuristics: heuristics.into_iter().map(Into::into).collect(),
                metadata,
                tags,
                embedding,
            },
        )
}

/// An optional embedding of dimension 4 (one dimension for every generated item, as a
/// store fixes one).
pub fn embedding() -> impl Strategy<Value = Option<Embedding>> {
    proptest::option::of(
        vec(-1.0f32..1.0, 4).prop_filter_map("all zeros", |v| Embedding::new(v).ok()),
    )
}

/// A valid pattern of any kind.
pub fn pattern() -> impl Strategy<Value = Pattern> {
    let data = prop_oneof![
        (vec(name(), 1..4), 0u64..10_000).prop_map(|(tools, ms)| PatternData::ToolSequence {
            tools,
            average_latency: Duration::from_millis(ms),
        }),
        (name(), name(), any::<u64>(), any::<u64>()).prop_map(|(condition, action, s, f)| {
            PatternData::DecisionPoint {
                condition,
                action,
                outcome_stats: OutcomeStats {
                    successes: s,
                    failures: f,
                },
            }
        }),
        (name(), vec(text(), 0..3)).prop_map(|(error_type, recovery_steps)| {
            PatternData::ErrorRecovery {
                error_type,
                recovery_steps,
            }
        }),
        (vec(text(), 0..3), name()).prop_map(|(features, recommended_approach)| {
            PatternData::ContextPattern {
                features,
                recommended_approach,
            }
        }),
    ];
    (
        uuid(),
        data,
        select(DOMAINS.to_vec()),
        unit(),
        any::<u64>(),
        (any::<u64>(), 0u64..100, 0u64..100, finite()),
        timestamp(),
        0i64..1_000,
    )
        .prop_map(
            |(id, data, domain, success_rate, occurrence_count, eff, created_at, later)| {
                let (times_retrieved, a, b, average_reward_delta) = eff;
                Pattern {
                    id: id.into(),
                    data,
                    domain: domain.into(),
                    success_rate,
                    occurrence_count,
                    effectiveness: Effectiveness {
                        times_retrieved,
                        times_applied: a.max(b),
                        successes_when_applied: a.min(b),
                        average_reward_delta,
                    },
                    created_at,
                    updated_at: created_at.plus_micros(later),
                    embedding: None,
                }
            },
        )
}

/// A valid heuristic.
pub fn heuristic() -> impl Strategy<Value = Heuristic> {
    (
        uuid(),
        name(),
        name(),
        unit(),
        (vec(uuid(), 0..3), unit(), any::<u64>()),
        timestamp(),
        0i64..1_000,
    )
        .prop_map(
            |(
                id,
                condition,
                action,
                confidence,
                (episodes, success_rate, sample_size),
                at,
                later,
            )| {
                Heuristic {
                    id: id.into(),
                    condition,
                    action,
                    confidence,
                    evidence: Evidence {
                        episodes: episodes.into_iter().map(Into::into).collect(),
                        success_rate,
                        sample_size,
                    },
                    created_at: at,
                    updated_at: at.plus_micros(later),
                }
            },
        )
}

/// A valid episode query (no cursor) drawing filter values from the same pools.
pub fn episode_query() -> impl Strategy<Value = EpisodeQuery> {
    (
        prop::option::of(timestamp()),
        prop::option::of(0i64..30_000),
        prop::option::of(select(DOMAINS.to_vec())),
        prop::option::of(select(TaskType::ALL.to_vec())),
        prop::option::of(select(OutcomeKind::ALL.to_vec())),
        subsequence(TAGS.to_vec(), 0..=2),
        metadata(),
        1usize..8,
    )
        .prop_map(
            |(since, span, domain, task_type, outcome, tags, metadata, limit)| EpisodeQuery {
                since,
                until: span.map(|s| since.unwrap_or(BASE_TIME).plus_micros(s)),
                domain: domain.map(String::from),
                task_type,
                outcome,
                tags: tags.into_iter().map(String::from).collect(),
                metadata,
                limit,
                cursor: None,
            },
        )
}

/// A valid pattern query.
pub fn pattern_query() -> impl Strategy<Value = PatternQuery> {
    (
        prop::option::of(select(PatternKind::ALL.to_vec())),
        prop::option::of(unit()),
        prop::option::of(select(DOMAINS.to_vec())),
        1usize..20,
    )
        .prop_map(|(kind, min_success_rate, domain, limit)| PatternQuery {
            kind,
            min_success_rate,
            domain: domain.map(String::from),
            limit,
        })
}
