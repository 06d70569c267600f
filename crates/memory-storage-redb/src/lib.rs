//! Embedded single-file storage for episodic memory on [redb](https://docs.rs/redb):
//! [`RedbStorage`] implements every [`StorageBackend`](memory_core::StorageBackend)
//! operation on one file, with secondary indexes (newest-first by start time, per domain,
//! patterns per domain and per kind) kept in the same write transaction as the items, batches
//! that are one transaction each, durable commits, an exclusive file lock reported as a
//! typed [`Locked`](memory_core::ErrorKind::Locked) error, and a recorded format version.
//!
//! The shared cache from `memory-storage-cached` goes in front with
//! [`RedbStorage::open_cached`].

mod error;
mod store;
mod tables;
mod vectors;

pub use store::RedbStorage;
pub use tables::FORMAT_VERSION;
