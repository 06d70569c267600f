//! Striped generation counters: `bump(h)` marks everything hashed to `h`'s stripe as changed.
//!
//! Memory is fixed however many distinct keys or dependencies there are; two that share a
//! stripe invalidate each other (a spurious miss), never the reverse (a stale hit).

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) const STRIPES: usize = 4096;

pub(crate) struct Generations {
    stripes: Box<[AtomicU64]>,
}

/// The generation of one stripe at the moment a read began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    stripe: u32,
    generation: u64,
}

impl Generations {
    pub(crate) fn new() -> Self {
        Generations {
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn stripe(hash: u64) -> usize {
        (hash.rotate_left(17) as usize) & (STRIPES - 1)
    }

    /// The current generation of `hash`'s stripe.
    pub(crate) fn mark(&self, hash: u64) -> Mark {
        let stripe = Self::stripe(hash);
        Mark {
            stripe: stripe as u32,
            generation: self.stripes[stripe].load(Ordering::Acquire),
        }
    }

    /// Whether nothing in `mark`'s stripe changed since it was taken.
    pub(crate) fn is_current(&self, mark: Mark) -> bool {
        self.is_current_after(mark, 0)
    }

    /// Whether nothing but `own` bumps of the caller's changed `mark`'s stripe since it was
    /// taken.
    pub(crate) fn is_current_after(&self, mark: Mark, own: u64) -> bool {
        self.stripes[mark.stripe as usize].load(Ordering::Acquire)
            == mark.generation.wrapping_add(own)
    }

    /// The stripe a mark belongs to.
    pub(crate) fn stripe_of(mark: Mark) -> u32 {
        mark.stripe
    }

    /// Marks `hash`'s stripe as changed.
    pub(crate) fn bump(&self, hash: u64) {
        self.stripes[Self::stripe(hash)].fetch_add(1, Ordering::AcqRel);
    }

    /// Marks every stripe as changed.
    pub(crate) fn bump_all(&self) {
        for stripe in self.stripes.iter() {
            stripe.fetch_add(1, Ordering::AcqRel);
        }
    }
}
