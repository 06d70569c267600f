//! The conformance suite every [`StorageBackend`] passes, plus sample data and proptest
//! strategies for tests (feature `testing`).
//!
//! A backend crate runs the whole suite with one macro call in an integration test; each
//! check becomes its own `#[test]` with a fresh backend from the factory:
//!
//! ```
//! use memory_core::InMemoryStorage;
//! use memory_core::testing::Fixture;
//!
//! async fn fixture() -> anyhow::Result<Fixture> {
//!     Ok(Fixture::new(InMemoryStorage::new()))
//! }
//!
//! memory_core::conformance_tests!(fixture);
//! # fn main() {}
//! ```
//!
//! The checks are listed in [`conformance_tests!`](crate::conformance_tests); each is an
//! `async fn(&dyn StorageBackend) -> anyhow::Result<()>` in [`checks`].

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::storage::StorageBackend;

pub mod checks;
pub mod crash;
pub mod crud;
pub mod handles;
mod hooked;
pub mod reference;
pub mod samples;
pub mod strategies;
pub mod tour;
pub mod typical;
pub mod vectors;
mod yielding;

pub use hooked::{HookFuture, Hooked};
pub use yielding::Yielding;

/// How long one conformance check may run before it fails as hung.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(180);

/// A backend under test, plus whatever must live as long as it (a temporary directory, a
/// server process).
pub struct Fixture {
    backend: Arc<dyn StorageBackend>,
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    /// A fixture around `backend`.
    pub fn new(backend: impl StorageBackend + 'static) -> Self {
        Fixture {
            backend: Arc::new(backend),
            _guard: None,
        }
    }

    /// A fixture around an already shared backend.
    pub fn from_arc(backend: Arc<dyn StorageBackend>) -> Self {
        Fixture {
            backend,
            _guard: None,
        }
    }

    /// Keeps `guard` alive until the check has finished (it is dropped after the backend).
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }

    /// The backend.
    pub fn backend(&self) -> Arc<dyn StorageBackend> {
        Arc::clone(&self.backend)
    }
}

/// Builds a fixture with `factory` and runs one check on it inside a fresh multi-threaded
/// tokio runtime, panicking with the check's error chain if it fails or exceeds
/// [`CHECK_TIMEOUT`]. The `conformance_tests!` macro calls this; call it directly to run a
/// single check.
pub fn run_check<F, FFut, C, CFut>(name: &str, factory: F, check: C)
where
    F: FnOnce() -> FFut,
    FFut: Future<Output = anyhow::Result<Fixture>>,
    C: FnOnce(Arc<dyn StorageBackend>) -> CFut,
    CFut: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("conformance check {name}: cannot build a tokio runtime: {e}"),
    };
    let outcome = runtime.block_on(async {
        let fixture = factory().await?;
        let result = tokio::time::timeout(CHECK_TIMEOUT, check(fixture.backend())).await;
        drop(fixture);
        match result {
            Ok(outcome) => outcome,
            Err(_) => anyhow::bail!("did not finish within {CHECK_TIMEOUT:?}"),
        }
    });
    if let Err(e) = outcome {
        panic!("conformance check {name} failed: {e:#}");
    }
}

/// Expands to one `#[test]` per conformance check, each on a fresh backend from `$factory`
/// (an `async fn() -> anyhow::Result<Fixture>` or a closure returning such a future).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests! { $factory;
            episode_round_trip => $crate::testing::checks::entity::round_trip::<$crate::Episode>,
            episode_replace => $crate::testing::checks::entity::replace::<$crate::Episode>,
            episode_delete => $crate::testing::checks::entity::delete::<$crate::Episode>,
            episode_missing_ids => $crate::testing::checks::entity::missing_ids::<$crate::Episode>,
            episode_invalid_rejected => $crate::testing::checks::entity::invalid_rejected::<$crate::Episode>,
            episode_batch_round_trip => $crate::testing::checks::entity::batch_round_trip::<$crate::Episode>,
            episode_batch_store_is_atomic => $crate::testing::checks::entity::batch_store_is_atomic::<$crate::Episode>,
            episode_batch_duplicate_ids => $crate::testing::checks::entity::batch_duplicate_ids::<$crate::Episode>,
            episode_batch_delete => $crate::testing::checks::entity::batch_delete::<$crate::Episode>,
            episode_batch_delete_is_atomic => $crate::testing::checks::entity::batch_delete_is_atomic::<$crate::Episode>,
            episode_batch_limits => $crate::testing::checks::entity::batch_limits::<$crate::Episode>,
            episode_counts => $crate::testing::checks::entity::counts::<$crate::Episode>,
            episode_concurrent_writes => $crate::testing::checks::entity::concurrent_writes::<$crate::Episode>,
            pattern_round_trip => $crate::testing::checks::entity::round_trip::<$crate::Pattern>,
            pattern_replace => $crate::testing::checks::entity::replace::<$crate::Pattern>,
            pattern_delete => $crate::testing::checks::entity::delete::<$crate::Pattern>,
            pattern_missing_ids => $crate::testing::checks::entity::missing_ids::<$crate::Pattern>,
            pattern_invalid_rejected => $crate::testing::checks::entity::invalid_rejected::<$crate::Pattern>,
            pattern_batch_round_trip => $crate::testing::checks::entity::batch_round_trip::<$crate::Pattern>,
            pattern_batch_store_is_atomic => $crate::testing::checks::entity::batch_store_is_atomic::<$crate::Pattern>,
            pattern_batch_duplicate_ids => $crate::testing::checks::entity::batch_duplicate_ids::<$crate::Pattern>,
            pattern_batch_delete => $crate::testing::checks::entity::batch_delete::<$crate::Pattern>,
            pattern_batch_delete_is_atomic => $crate::testing::checks::entity::batch_delete_is_atomic::<$crate::Pattern>,
            pattern_batch_limits => $crate::testing::checks::entity::batch_limits::<$crate::Pattern>,
            pattern_counts => $crate::testing::checks::entity::counts::<$crate::Pattern>,
            pattern_concurrent_writes => $crate::testing::checks::entity::concurrent_writes::<$crate::Pattern>,
            heuristic_round_trip => $crate::testing::checks::entity::round_trip::<$crate::Heuristic>,
            heuristic_replace => $crate::testing::checks::entity::replace::<$crate::Heuristic>,
            heuristic_delete => $crate::testing::checks::entity::delete::<$crate::Heuristic>,
            heuristic_missing_ids => $crate::testing::checks::entity::missing_ids::<$crate::Heuristic>,
            heuristic_invalid_rejected => $crate::testing::checks::entity::invalid_rejected::<$crate::Heuristic>,
            heuristic_batch_round_trip => $crate::testing::checks::entity::batch_round_trip::<$crate::Heuristic>,
            heuristic_batch_store_is_atomic => $crate::testing::checks::entity::batch_store_is_atomic::<$crate::Heuristic>,
            heuristic_batch_duplicate_ids => $crate::testing::checks::entity::batch_duplicate_ids::<$crate::Heuristic>,
            heuristic_batch_delete => $crate::testing::checks::entity::batch_delete::<$crate::Heuristic>,
            heuristic_batch_delete_is_atomic => $crate::testing::checks::entity::batch_delete_is_atomic::<$crate::Heuristic>,
            heuristic_batch_limits => $crate::testing::checks::entity::batch_limits::<$crate::Heuristic>,
            heuristic_counts => $crate::testing::checks::entity::counts::<$crate::Heuristic>,
            heuristic_concurrent_writes => $crate::testing::checks::entity::concurrent_writes::<$crate::Heuristic>,
            episode_large_payload => $crate::testing::checks::episodes::large_payload,
            episode_invalid_variants => $crate::testing::checks::episodes::invalid_variants,
            episode_literal_strings => $crate::testing::checks::episodes::literal_strings,
            episode_query_each_filter => $crate::testing::checks::episodes::query_each_filter,
            episode_query_time_bounds => $crate::testing::checks::episodes::query_time_bounds,
            episode_query_order_and_ties => $crate::testing::checks::episodes::query_order_and_ties,
            episode_query_paging => $crate::testing::checks::episodes::query_paging,
            episode_query_paging_under_writes => $crate::testing::checks::episodes::query_paging_under_writes,
            episode_query_cursor_follows_the_next_match => $crate::testing::checks::episodes::query_cursor_follows_the_next_match,
            episode_query_follows_updates => $crate::testing::checks::episodes::query_follows_updates,
            episode_query_invalid => $crate::testing::checks::episodes::query_invalid,
            episode_query_matches_reference => $crate::testing::checks::episodes::query_matches_reference,
            pattern_query_filters_and_order => $crate::testing::checks::patterns::query_filters_and_order,
            pattern_query_follows_updates => $crate::testing::checks::patterns::query_follows_updates,
            pattern_query_invalid => $crate::testing::checks::patterns::query_invalid,
            pattern_query_matches_reference => $crate::testing::checks::patterns::query_matches_reference,
            search_episodes_match_the_reference => $crate::testing::checks::search::episodes_match_the_reference,
            search_patterns_match_the_reference => $crate::testing::checks::search::patterns_match_the_reference,
            search_follows_writes => $crate::testing::checks::search::follows_writes,
            search_follows_writes_past_the_exact_bound => $crate::testing::checks::search::follows_writes_past_the_exact_bound,
            search_invalid => $crate::testing::checks::search::invalid_searches,
            search_one_dimension_per_store => $crate::testing::checks::search::one_dimension_per_store,
            search_recall_at_10 => $crate::testing::checks::search::recall_at_10,
            search_text_matches_the_reference => $crate::testing::checks::search::text_matches_the_reference,
            search_text_follows_writes => $crate::testing::checks::search::text_follows_writes,
            search_hybrid_fuses_both => $crate::testing::checks::search::hybrid_fuses_both,
            retention_matches_the_reference => $crate::testing::checks::retention::matches_the_reference,
            retention_invalid_policies => $crate::testing::checks::retention::invalid_policies,
            pattern_list_pages_through_everything => $crate::testing::checks::listing::patterns,
            heuristic_list_pages_through_everything => $crate::testing::checks::listing::heuristics,
            check_items_reports_every_item => $crate::testing::checks::listing::checks,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($factory:expr; $($name:ident => $check:path),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::testing::run_check(stringify!($name), $factory, |backend| async move {
                    $check(&*backend).await
                });
            }
        )*
    };
}
