//! The storage core of the episodic-memory engine.
//!
//! Agents record every task run as an [`Episode`] and distil [`Pattern`]s and
//! [`Heuristic`]s from many of them. This crate holds what every layer above speaks:
//!
//! - the domain types, with [`validation`](Entity::validate) against documented
//!   [`limits`];
//! - [`StorageBackend`], the one async, object-safe store interface, and its
//!   [`EpisodeQuery`] / [`PatternQuery`] queries with keyset paging;
//! - [`StorageError`], classified by [`ErrorKind`];
//! - [`codec`], the versioned payload format (postcard behind a version byte);
//! - [`InMemoryStorage`], the reference backend that is the test oracle;
//! - with the `testing` feature, `testing`: the conformance suite every backend passes,
//!   sample data and proptest strategies.
//!
//! ```
//! use memory_core::{
//!     Episode, EpisodeQuery, ExecutionStep, InMemoryStorage, StorageBackend, TaskContext,
//!     TaskOutcome, TaskType,
//! };
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = InMemoryStorage::new();
//! let mut run = Episode::new(TaskType::Debugging, "fix login", TaskContext::new("web"));
//! run.steps.push(ExecutionStep::new(1, "cargo", "test"));
//! run.complete(TaskOutcome::Success { verdict: "fixed".into(), artifacts: vec![] });
//! store.store_episode(&run).await?;
//!
//! let recent = store.query_episodes(&EpisodeQuery::new().domain("web").limit(10)).await?;
//! assert_eq!(recent.items[0].id, run.id);
//! # Ok::<(), memory_core::StorageError>(())
//! # }).unwrap();
//! ```

pub mod ann;
pub mod change;
pub mod codec;
mod embedding;
mod entity;
mod episode;
mod error;
pub mod feed;
mod finish;
pub mod heap;
mod heuristic;
mod ids;
mod json_text;
pub mod limits;
mod memory;
mod pattern;
mod query;
pub mod retention;
pub mod search;
pub mod stats;
mod storage;
pub mod text;
mod time;
mod validate;

#[cfg(feature = "testing")]
pub mod testing;

pub use change::ChangeSignal;
pub use embedding::{Embedding, MAX_EMBEDDING_DIMENSION};
pub use entity::Entity;
pub use episode::{
    Complexity, Episode, ExecutionResult, ExecutionStep, OutcomeKind, Reflection, RewardScore,
    TaskContext, TaskOutcome, TaskType, UnknownName,
};
pub use error::{EntityKind, ErrorKind, Problem, Result, Source, StorageError, ValidationError};
pub use finish::FinishOnDrop;
pub use heuristic::{Evidence, Heuristic};
pub use ids::{EpisodeId, HeuristicId, PatternId};
pub use json_text::MAX_JSON_DEPTH;
pub use memory::{EXACT_SEARCH_BELOW, InMemoryStorage};
pub use pattern::{Effectiveness, OutcomeStats, Pattern, PatternData, PatternKind};
pub use query::{BadCursor, EpisodeCursor, EpisodePage, EpisodeQuery, PatternQuery};
pub use storage::{ItemCheck, StorageBackend};
pub use time::Timestamp;
pub use uuid::Uuid;
pub use validate::{validate_batch, validate_ids, validate_list_limit};
