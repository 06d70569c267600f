//! How much memory a decoded item holds: the estimate caches weigh their entries by, so
//! that a byte budget bounds real memory rather than the (2–3× smaller) encoded size.
//!
//! The estimate follows what a general-purpose allocator hands out (glibc's malloc: a
//! chunk is the request plus 8 bytes of header, rounded up to 16, at least 32) for every
//! allocation an item owns: string and vector buffers, map nodes, JSON values. It does not
//! walk allocator internals; `memory-bench run` compares the caches' real heap bytes with
//! what they account, on the standard workload.
//!
//! ```
//! use memory_core::heap::{HeapSize, allocation};
//!
//! assert_eq!(allocation(0), 0);
//! assert_eq!(allocation(1), 32);
//! assert_eq!(allocation(100), 112);
//! assert_eq!(String::from("hello").heap_size(), 32);
//! let episode = memory_core::Episode::new(
//!     memory_core::TaskType::Debugging,
//!     "fix the login test",
//!     memory_core::TaskContext::new("web"),
//! );
//! assert!(episode.heap_size() >= 64); // the description and the domain at least
//! ```

use std::collections::BTreeMap;
use std::mem::size_of;

use crate::{
    Episode, ExecutionResult, ExecutionStep, Heuristic, Pattern, PatternData, Reflection,
    TaskContext, TaskOutcome,
};

/// Heap bytes a value owns (not counting its own inline size).
pub trait HeapSize {
    /// The estimate, in bytes.
    fn heap_size(&self) -> usize;
}

/// The bytes an allocator hands out for a request of `bytes` (0 for no allocation).
pub const fn allocation(bytes: usize) -> usize {
    if bytes == 0 {
        return 0;
    }
    let chunk = (bytes + 8 + 15) & !15;
    if chunk < 32 { 32 } else { chunk }
}

/// The bytes an `Arc<T>` of `value` holds in all: its allocation (two counters and the
/// value) and what the value owns.
pub fn arc_bytes<T: HeapSize>(value: &T) -> usize {
    allocation(2 * size_of::<usize>() + size_of::<T>()) + value.heap_size()
}

impl HeapSize for String {
    fn heap_size(&self) -> usize {
        allocation(self.capacity())
    }
}

impl<T: HeapSize> HeapSize for Vec<T> {
    fn heap_size(&self) -> usize {
        allocation(self.capacity() * size_of::<T>())
            + self.iter().map(HeapSize::heap_size).sum::<usize>()
    }
}

impl<T: HeapSize> HeapSize for Option<T> {
    fn heap_size(&self) -> usize {
        self.as_ref().map_or(0, HeapSize::heap_size)
    }
}

/// Items without heap data of their own (ids, numbers, timestamps).
macro_rules! inline_only {
    ($($t:ty),*) => {
        $(impl HeapSize for $t {
            fn heap_size(&self) -> usize {
                0
            }
        })*
    };
}
inline_only!(crate::EpisodeId, crate::PatternId, crate::HeuristicId);

/// Map nodes: the standard library's B-tree holds up to 11 entries a node and keeps nodes
/// at least half full, so a node per 8 entries is the middle of the range (serde_json's
/// ordered map, if a dependency turns it on, costs about as much per entry).
fn map_nodes(len: usize, entry: usize) -> usize {
    const SLOTS: usize = 11;
    // A leaf: the keys, the values, a parent pointer and the lengths.
    let node = allocation(SLOTS * entry + 16);
    len.div_ceil(8) * node
}

impl<V: HeapSize> HeapSize for BTreeMap<String, V> {
    fn heap_size(&self) -> usize {
        map_nodes(self.len(), size_of::<String>() + size_of::<V>())
            + self
                .iter()
                .map(|(k, v)| k.heap_size() + v.heap_size())
                .sum::<usize>()
    }
}

impl HeapSize for serde_json::Value {
    fn heap_size(&self) -> usize {
        use serde_json::Value;
        match self {
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
            Value::String(s) => s.heap_size(),
            Value::Array(items) => items.heap_size(),
            Value::Object(map) => {
                map_nodes(map.len(), size_of::<String>() + size_of::<Value>())
                    + map
                        .iter()
                        .map(|(k, v)| k.heap_size() + v.heap_size())
                        .sum::<usize>()
            }
        }
    }
}

impl HeapSize for TaskContext {
    fn heap_size(&self) -> usize {
        self.domain.heap_size()
            + self.language.heap_size()
            + self.framework.heap_size()
            + self.tags.heap_size()
    }
}

impl HeapSize for ExecutionResult {
    fn heap_size(&self) -> usize {
        match self {
            ExecutionResult::Success { output } => output.heap_size(),
            ExecutionResult::Error { message } => message.heap_size(),
        }
    }
}

impl HeapSize for ExecutionStep {
    fn heap_size(&self) -> usize {
        self.tool.heap_size()
            + self.action.heap_size()
            + self.parameters.heap_size()
            + self.result.heap_size()
            + self.metadata.heap_size()
    }
}

impl HeapSize for TaskOutcome {
    fn heap_size(&self) -> usize {
        match self {
            TaskOutcome::Success { verdict, artifacts } => {
                verdict.heap_size() + artifacts.heap_size()
            }
            TaskOutcome::PartialSuccess {
                verdict,
                completed,
                failed,
            } => verdict.heap_size() + completed.heap_size() + failed.heap_size(),
            TaskOutcome::Failure {
                reason,
                error_details,
            } => reason.heap_size() + error_details.heap_size(),
        }
    }
}

impl HeapSize for Reflection {
    fn heap_size(&self) -> usize {
        self.successes.heap_size() + self.improvements.heap_size() + self.insights.heap_size()
    }
}

impl HeapSize for Episode {
    fn heap_size(&self) -> usize {
        self.description.heap_size()
            + self.context.heap_size()
            + self.steps.heap_size()
            + self.outcome.heap_size()
            + self.reflection.heap_size()
            + self.patterns.heap_size()
            + self.heuristics.heap_size()
            + self.metadata.heap_size()
            + self.tags.heap_size()
            + self.embedding.heap_size()
    }
}

impl HeapSize for PatternData {
    fn heap_size(&self) -> usize {
        match self {
            PatternData::ToolSequence { tools, .. } => tools.heap_size(),
            PatternData::DecisionPoint {
                condition, action, ..
            } => condition.heap_size() + action.heap_size(),
            PatternData::ErrorRecovery {
                error_type,
                recovery_steps,
            } => error_type.heap_size() + recovery_steps.heap_size(),
            PatternData::ContextPattern {
                features,
                recommended_approach,
            } => features.heap_size() + recommended_approach.heap_size(),
        }
    }
}

impl HeapSize for Pattern {
    fn heap_size(&self) -> usize {
        self.data.heap_size() + self.domain.heap_size() + self.embedding.heap_size()
    }
}

impl HeapSize for Heuristic {
    fn heap_size(&self) -> usize {
        self.condition.heap_size() + self.action.heap_size() + self.evidence.episodes.heap_size()
    }
}
