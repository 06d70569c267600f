//! Typical episodes for benchmarks: sizes and shapes like an agent's real task runs, drawn
//! deterministically from the episode's number so every run and every backend sees the same
//! data.
//!
//! An episode's encoded size is log-uniform between about 1 and 32 KiB (median near 6 KiB),
//! spread over 3 to 40 steps whose outputs are word-like text (so compression behaves as on
//! real tool output, not as on random bytes or one repeated letter).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::samples::{BASE_TIME, sample_uuid};
use crate::{
    Episode, ExecutionResult, ExecutionStep, Reflection, RewardScore, TaskContext, TaskOutcome,
    TaskType,
};

/// Domains typical episodes are spread over (the first ones more often).
pub const TYPICAL_DOMAINS: [&str; 8] = [
    "web", "cli", "data", "infra", "mobile", "ml", "docs", "security",
];

const TOOLS: [&str; 8] = [
    "cargo", "git", "grep", "editor", "shell", "browser", "pytest", "http",
];

const WORDS: [&str; 32] = [
    "error",
    "warning",
    "compiling",
    "test",
    "passed",
    "failed",
    "src",
    "lib",
    "main",
    "request",
    "response",
    "timeout",
    "retry",
    "cache",
    "index",
    "query",
    "user",
    "session",
    "token",
    "build",
    "deploy",
    "config",
    "value",
    "expected",
    "found",
    "line",
    "column",
    "module",
    "function",
    "returned",
    "status",
    "ok",
];

/// splitmix64: a fast, well-mixed hash of `(n, salt)`, stable across versions.
fn mix(n: u64, salt: u64) -> u64 {
    let mut z = n
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in `[0, 1)`.
fn unit(n: u64, salt: u64) -> f64 {
    (mix(n, salt) >> 11) as f64 / (1u64 << 53) as f64
}

/// `len` bytes of word-like text.
fn text(n: u64, salt: u64, len: usize) -> String {
    let mut out = String::with_capacity(len + 12);
    let mut i = 0;
    while out.len() < len {
        let word = WORDS[(mix(n, salt.wrapping_add(i)) % WORDS.len() as u64) as usize];
        out.push_str(word);
        out.push(if i % 11 == 10 { '\n' } else { ' ' });
        i += 1;
    }
    out.truncate(len);
    out
}

/// The payload size episode `n` aims for, in bytes: log-uniform over 1–32 KiB.
pub fn typical_size(n: u64) -> usize {
    (1024.0 * 32f64.powf(unit(n, 1))) as usize
}

/// Typical episode `n`: a finished task run with 3 to 40 steps, an outcome, a reward, a
/// reflection, tags and metadata; about [`typical_size`]`(n)` bytes before compression.
/// Episode `n` starts `n` seconds after [`BASE_TIME`]; its id is distinct from every
/// [`samples::episode`](super::samples::episode) id.
///
/// ```
/// use memory_core::Entity;
/// use memory_core::testing::typical::typical_episode;
///
/// let episode = typical_episode(7);
/// assert_eq!(episode, typical_episode(7));
/// assert!(episode.validate().is_ok());
/// ```
pub fn typical_episode(n: u64) -> Episode {
    let start = BASE_TIME.plus_micros(n as i64 * 1_000_000);
    // Fewer steps are commoner than many: the square skews towards the low end.
    let steps = 3 + (unit(n, 2).powi(2) * 38.0) as u32;
    let output_len = typical_size(n).saturating_sub(400) / steps as usize;
    let failed = unit(n, 3) < 0.25;
    let step_list: Vec<ExecutionStep> = (1..=steps)
        .map(|i| {
            let salt = 100 + u64::from(i) * 7;
            let tool = TOOLS[(mix(n, salt) % TOOLS.len() as u64) as usize];
            let output = text(n, salt + 1, output_len);
            ExecutionStep {
                step_number: i,
                timestamp: start.plus_micros(i64::from(i) * 250_000),
                tool: tool.into(),
                action: format!("{tool} step {i}"),
                parameters: json!({ "args": [format!("--arg{}", mix(n, salt + 2) % 100)], "attempt": 1 }),
                result: Some(if failed && i == steps {
                    ExecutionResult::Error { message: output }
                } else {
                    ExecutionResult::Success { output }
                }),
                latency: Duration::from_millis(mix(n, salt + 3) % 2_000),
                tokens_used: Some((mix(n, salt + 4) % 4_000) as u32),
                metadata: BTreeMap::new(),
            }
        })
        .collect();
    // The first domains are the busiest: a square again.
    let domain = TYPICAL_DOMAINS[(unit(n, 4).powi(2) * TYPICAL_DOMAINS.len() as f64) as usize];
    let outcome = if failed {
        TaskOutcome::Failure {
            reason: "the last step failed".into(),
            error_details: Some(text(n, 5, 120)),
        }
    } else {
        TaskOutcome::Success {
            verdict: "task complete".into(),
            artifacts: vec![format!("out/{n}.txt")],
        }
    };
    let mut metadata = BTreeMap::new();
    metadata.insert("agent".into(), format!("agent-{}", n % 4));
    metadata.insert("model".into(), ["small", "large"][(n % 2) as usize].into());
    let reward = if failed { 0.1 } else { 0.6 + unit(n, 6) * 0.4 };
    Episode {
        id: sample_uuid(0x7E, n).into(),
        task_type: TaskType::ALL[(mix(n, 7) % TaskType::ALL.len() as u64) as usize],
        description: format!("typical task run {n}: {}", text(n, 8, 60)),
        context: TaskContext::new(domain).with_language("rust"),
        start_time: start,
        end_time: Some(start.plus_micros(i64::from(steps + 1) * 250_000)),
        steps: step_list,
        outcome: Some(outcome),
        reward: Some(RewardScore {
            total: reward,
            base: reward,
            efficiency: 1.0,
            complexity_bonus: 0.0,
            quality_multiplier: 1.0,
            learning_bonus: 0.0,
        }),
        reflection: Some(Reflection {
            successes: vec![text(n, 9, 40)],
            improvements: vec![text(n, 10, 40)],
            insights: vec![text(n, 11, 40)],
            generated_at: start.plus_micros(i64::from(steps + 2) * 250_000),
        }),
        patterns: Vec::new(),
        heuristics: Vec::new(),
        metadata,
        tags: vec![format!("t{}", n % 16), domain.to_string()],
        embedding: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entity, codec};

    #[test]
    fn sizes_span_one_to_thirty_two_kib_and_every_episode_is_valid() {
        let sizes: Vec<usize> = (0..2_000)
            .map(|n| {
                let episode = typical_episode(n);
                assert!(episode.validate().is_ok(), "episode {n} is invalid");
                codec::encode(&episode).map(|b| b.len()).unwrap_or(0)
            })
            .collect();
        let min = sizes.iter().copied().min().unwrap_or(0);
        let max = sizes.iter().copied().max().unwrap_or(0);
        let mut sorted = sizes.clone();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        assert!((700..=1_600).contains(&min), "min {min}");
        assert!((28_000..=36_000).contains(&max), "max {max}");
        assert!((4_000..=8_000).contains(&median), "median {median}");
    }

    #[test]
    fn the_same_number_gives_the_same_episode() {
        assert_eq!(typical_episode(42), typical_episode(42));
        assert_ne!(typical_episode(42).id, typical_episode(43).id);
    }
}
