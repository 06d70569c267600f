//! Coalesced loads: concurrent misses for one key share one loader run.
//!
//! A flight records the generation marks of what it reads at the moment it starts. A caller
//! joins a flight only while those marks are current, and the result is stored only if they
//! still are when it lands, so a load that overlapped a write is returned to the callers
//! that were already waiting but never cached, and nobody who arrives after the write gets
//! it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::OnceCell;

use crate::generations::{Generations, Mark};

/// Flights in progress, type-erased so that callers with different error types can use the
/// same cache (a caller joins only a flight of its own types).
pub(crate) type FlightMap<K> = HashMap<K, Arc<dyn Any + Send + Sync>, foldhash::fast::FixedState>;

pub(crate) struct Flight<T, E> {
    pub(crate) cell: OnceCell<Result<T, E>>,
    pub(crate) marks: Box<[Mark]>,
    settled: AtomicBool,
}

impl<T, E> Flight<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    pub(crate) fn new(marks: Box<[Mark]>) -> Self {
        Flight {
            cell: OnceCell::new(),
            marks,
            settled: AtomicBool::new(false),
        }
    }

    /// Whether no write touched what this flight reads since it started.
    pub(crate) fn is_current(&self, generations: &Generations) -> bool {
        self.marks.iter().all(|m| generations.is_current(*m))
    }

    /// True for exactly one caller: the one that unregisters and stores the result.
    pub(crate) fn settle(&self) -> bool {
        !self.settled.swap(true, Ordering::AcqRel)
    }

    /// The current flight for `key` if it is of these types and still current, else a new
    /// one registered in its place.
    pub(crate) fn join_or_start<K: std::hash::Hash + Eq + Clone>(
        flights: &mut FlightMap<K>,
        key: &K,
        generations: &Generations,
        marks: impl FnOnce() -> Box<[Mark]>,
    ) -> Arc<Self> {
        let existing = flights
            .get(key)
            .cloned()
            .and_then(|f| f.downcast::<Self>().ok())
            .filter(|f| f.is_current(generations));
        match existing {
            Some(flight) => flight,
            None => {
                let flight = Arc::new(Flight::new(marks()));
                flights.insert(
                    key.clone(),
                    Arc::clone(&flight) as Arc<dyn Any + Send + Sync>,
                );
                flight
            }
        }
    }

    /// Unregisters this flight if it is still the one registered for `key`.
    pub(crate) fn unregister<K: std::hash::Hash + Eq>(
        self: &Arc<Self>,
        flights: &mut FlightMap<K>,
        key: &K,
    ) {
        let registered = flights
            .get(key)
            .is_some_and(|f| std::ptr::addr_eq(Arc::as_ptr(f), Arc::as_ptr(self)));
        if registered {
            flights.remove(key);
        }
    }
}
