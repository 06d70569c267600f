//! [`Crud`]: the per-entity trait methods of [`StorageBackend`] behind one generic interface,
//! so that every entity check is written once and run for episodes, patterns and heuristics.

use std::sync::Arc;

use async_trait::async_trait;

use crate::entity::Entity;
use crate::error::Result;
use crate::storage::StorageBackend;
use crate::testing::samples;
use crate::{Episode, Heuristic, Pattern};

/// Generic access to one entity's trait methods, plus sample values for checks.
#[async_trait]
pub trait Crud: Entity {
    /// `store_*`.
    async fn store(backend: &dyn StorageBackend, item: &Self) -> Result<()>;
    /// `get_*`.
    async fn get(backend: &dyn StorageBackend, id: Self::Id) -> Result<Option<Arc<Self>>>;
    /// `delete_*`.
    async fn delete(backend: &dyn StorageBackend, id: Self::Id) -> Result<()>;
    /// `store_*s`.
    async fn store_many(backend: &dyn StorageBackend, items: &[Self]) -> Result<()>;
    /// `get_*s`.
    async fn get_many(
        backend: &dyn StorageBackend,
        ids: &[Self::Id],
    ) -> Result<Vec<Option<Arc<Self>>>>;
    /// `delete_*s`.
    async fn delete_many(backend: &dyn StorageBackend, ids: &[Self::Id]) -> Result<()>;
    /// `count_*s`.
    async fn count(backend: &dyn StorageBackend) -> Result<u64>;

    /// A valid item, distinct for each `n`, the same for the same `n`.
    fn sample(n: u64) -> Self;
    /// A copy with the same id and different content.
    fn modified(&self) -> Self;
    /// An item that fails validation.
    fn invalid(n: u64) -> Self;
    /// An id that no sample uses.
    fn unknown_id() -> Self::Id;
}

#[async_trait]
impl Crud for Episode {
    async fn store(b: &dyn StorageBackend, item: &Self) -> Result<()> {
        b.store_episode(item).await
    }
    async fn get(b: &dyn StorageBackend, id: Self::Id) -> Result<Option<Arc<Self>>> {
        b.get_episode(id).await
    }
    async fn delete(b: &dyn StorageBackend, id: Self::Id) -> Result<()> {
        b.delete_episode(id).await
    }
    async fn store_many(b: &dyn StorageBackend, items: &[Self]) -> Result<()> {
        b.store_episodes(items).await
    }
    async fn get_many(b: &dyn StorageBackend, ids: &[Self::Id]) -> Result<Vec<Option<Arc<Self>>>> {
        b.get_episodes(ids).await
    }
    async fn delete_many(b: &dyn StorageBackend, ids: &[Self::Id]) -> Result<()> {
        b.delete_episodes(ids).await
    }
    async fn count(b: &dyn StorageBackend) -> Result<u64> {
        b.count_episodes().await
    }
    fn sample(n: u64) -> Self {
        samples::episode(n)
    }
    fn modified(&self) -> Self {
        let mut e = self.clone();
        e.description = format!("{} (revised)", e.description);
        e.context.domain = format!("{}-moved", e.context.domain);
        e.start_time = e.start_time.plus_micros(1);
        e.tags.push("revised".into());
        e
    }
    fn invalid(n: u64) -> Self {
        let mut e = samples::episode(n);
        e.description.clear();
        e
    }
    fn unknown_id() -> Self::Id {
        samples::unknown_uuid().into()
    }
}

#[async_trait]
impl Crud for Pattern {
    async fn store(b: &dyn StorageBackend, item: &Self) -> Result<()> {
        b.store_pattern(item).await
    }
    async fn get(b: &dyn StorageBackend, id: Self::Id) -> Result<Option<Arc<Self>>> {
        b.get_pattern(id).await
    }
    async fn delete(b: &dyn StorageBackend, id: Self::Id) -> Result<()> {
        b.delete_pattern(id).await
    }
    async fn store_many(b: &dyn StorageBackend, items: &[Self]) -> Result<()> {
        b.store_patterns(items).await
    }
    async fn get_many(b: &dyn StorageBackend, ids: &[Self::Id]) -> Result<Vec<Option<Arc<Self>>>> {
        b.get_patterns(ids).await
    }
    async fn delete_many(b: &dyn StorageBackend, ids: &[Self::Id]) -> Result<()> {
        b.delete_patterns(ids).await
    }
    async fn count(b: &dyn StorageBackend) -> Result<u64> {
        b.count_patterns().await
    }
    fn sample(n: u64) -> Self {
        samples::pattern(n)
    }
    fn modified(&self) -> Self {
        let mut p = self.clone();
        p.success_rate = if p.success_rate > 0.5 { 0.125 } else { 0.875 };
        p.occurrence_count += 1;
        p.domain = format!("{}-moved", p.domain);
        p
    }
    fn invalid(n: u64) -> Self {
        let mut p = samples::pattern(n);
        p.success_rate = 2.0;
        p
    }
    fn unknown_id() -> Self::Id {
        samples::unknown_uuid().into()
    }
}

#[async_trait]
impl Crud for Heuristic {
    async fn store(b: &dyn StorageBackend, item: &Self) -> Result<()> {
        b.store_heuristic(item).await
    }
    async fn get(b: &dyn StorageBackend, id: Self::Id) -> Result<Option<Arc<Self>>> {
        b.get_heuristic(id).await
    }
    async fn delete(b: &dyn StorageBackend, id: Self::Id) -> Result<()> {
        b.delete_heuristic(id).await
    }
    async fn store_many(b: &dyn StorageBackend, items: &[Self]) -> Result<()> {
        b.store_heuristics(items).await
    }
    async fn get_many(b: &dyn StorageBackend, ids: &[Self::Id]) -> Result<Vec<Option<Arc<Self>>>> {
        b.get_heuristics(ids).await
    }
    async fn delete_many(b: &dyn StorageBackend, ids: &[Self::Id]) -> Result<()> {
        b.delete_heuristics(ids).await
    }
    async fn count(b: &dyn StorageBackend) -> Result<u64> {
        b.count_heuristics().await
    }
    fn sample(n: u64) -> Self {
        samples::heuristic(n)
    }
    fn modified(&self) -> Self {
        let mut h = self.clone();
        h.action = format!("{} (revised)", h.action);
        h.confidence = 1.0 - h.confidence;
        h
    }
    fn invalid(n: u64) -> Self {
        let mut h = samples::heuristic(n);
        h.confidence = f64::NAN;
        h
    }
    fn unknown_id() -> Self::Id {
        samples::unknown_uuid().into()
    }
}
